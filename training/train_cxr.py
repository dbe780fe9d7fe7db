"""Train Osler's chest X-ray classifier: normal / bacterial / viral pneumonia, on Kermany dev data.

Data: ``<data>/NORMAL`` and ``<data>/PNEUMONIA`` (label of a pneumonia image from its name:
``personN_bacteria_M`` / ``personN_virus_M``).  Split by patient (``personN``; ``IM-xxxx`` /
``NORMAL2-IM-xxxx`` for normal images), seeded: ``--val-frac`` of the patients for validation,
``--cal-frac`` for temperature calibration, the rest for training (stratified by the patient's label).

Model: a torchvision architecture with ``weights=None`` (default ``mobilenet_v3_small``), 1 grey input
channel, ``--size`` px square input, trained from scratch with AdamW, class-weighted cross-entropy,
random affine / flip / brightness-contrast augmentation, and a warm-up + cosine learning rate that
follows the wall-clock budget (``--budget-min``) or the step count, whichever runs out first.  The
epoch with the lowest loss on the calibration patients is kept; a temperature is then fitted on the
same patients.  Validation patients are used only for the final metrics.

Output: fp16 checkpoint ``{"format", "arch", "labels", "in_channels", "input_size", "mean", "std",
"temperature", "state_dict", "metrics", "split", ...}`` read by ``experts.cxr_classifier``.

Usage (2 shared CPU cores; measure one epoch first, then run in the background and poll the log):
    nice -n 10 .venv/bin/python training/train_cxr.py --size 128 --epochs 1 --out runs/cxr_probe.pt
    nohup nice -n 10 .venv/bin/python training/train_cxr.py --size 128 --epochs 40 --budget-min 22 \
        --out runs/cxr_classifier.pt > runs/train_cxr.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("train_cxr")

LABELS = ("normal", "bacterial_pneumonia", "viral_pneumonia")
MEAN, STD = [0.5], [0.25]


def patient_id(name: str) -> str:
    """Patient key of a Kermany file name (``person123_virus_4.jpeg`` -> ``p123``,
    ``NORMAL2-IM-0383-0001.jpeg`` -> ``n2im0383``, ``IM-0115-0001.jpeg`` -> ``im0115``)."""
    m = re.match(r"person(\d+)_", name)
    if m:
        return f"p{m.group(1)}"
    m = re.match(r"(NORMAL2-)?IM-(\d+)", name)
    if m:
        return f"{'n2' if m.group(1) else ''}im{m.group(2)}"
    return name


def label_of(path: Path) -> int:
    if path.parent.name.upper() == "NORMAL":
        return 0
    return 1 if "_bacteria_" in path.name else 2


def split_by_patient(files: list[Path], seed: int, val_frac: float, cal_frac: float) -> dict[str, list[str]]:
    """Seeded, label-stratified patient split -> {"train", "val", "cal"} lists of file names."""
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(patient_id(f.name), []).append(f)
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {"train": [], "val": [], "cal": []}
    by_label: dict[int, list[str]] = {}
    for g, fs in sorted(groups.items()):
        by_label.setdefault(max(label_of(f) for f in fs), []).append(g)  # mixed patients go with viral
    for lab in sorted(by_label):
        keys = by_label[lab]
        rng.shuffle(keys)
        n_val, n_cal = round(len(keys) * val_frac), round(len(keys) * cal_frac)
        for i, g in enumerate(keys):
            part = "val" if i < n_val else "cal" if i < n_val + n_cal else "train"
            out[part].extend(sorted(f.name for f in groups[g]))
    return out


def load_images(files: list[Path], size: int) -> np.ndarray:
    """uint8 ``(N, size, size)`` grey images, resized exactly as at inference."""
    import cv2

    from experts.cxr_classifier import preprocess

    out = np.empty((len(files), size, size), np.uint8)
    for i, f in enumerate(files):
        rgb = cv2.cvtColor(cv2.imread(str(f), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        x = preprocess(rgb, size, 1, [0.0], [1.0])[0]  # grey in [0, 1]
        out[i] = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def augment(x: "torch.Tensor", gen: "torch.Generator") -> "torch.Tensor":  # noqa: F821
    """Batch augmentation of normalised ``(N, 1, S, S)``: affine (+-8 deg, scale 0.9-1.12, shift
    +-6 %), horizontal flip, brightness/contrast jitter."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    ang = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(8)
    scale = 0.9 + torch.rand(n, generator=gen) * 0.22
    flip = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    tx, ty = ((torch.rand(2, n, generator=gen) * 2 - 1) * 0.12)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    bg = x.amin(dim=(1, 2, 3), keepdim=True)
    out = F.grid_sample(x - bg, grid, align_corners=False, padding_mode="zeros") + bg
    contrast = 0.8 + torch.rand(n, 1, 1, 1, generator=gen) * 0.4
    bright = (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * 0.3
    return out * contrast + bright


def evaluate_logits(net: "torch.nn.Module", X: np.ndarray, batch: int = 128) -> np.ndarray:  # noqa: F821
    import torch

    net.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(X), batch):
            xb = torch.from_numpy(X[i:i + batch]).float().div_(255.0).sub_(MEAN[0]).div_(STD[0]).unsqueeze(1)
            outs.append(net(xb).float().numpy())
    return np.concatenate(outs)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/kermany_cxr/train")
    ap.add_argument("--arch", default="mobilenet_v3_small")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=24)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-frac", type=float, default=0.15)
    ap.add_argument("--cal-frac", type=float, default=0.10)
    ap.add_argument("--threads", type=int, default=1, help="1 is fastest on a shared 2-core machine")
    ap.add_argument("--budget-min", type=float, default=22.0,
                    help="wall-clock budget of the training loop; the LR schedule follows it")
    ap.add_argument("--out", default="experts/weights/cxr_classifier.pt")
    ap.add_argument("--report", default="runs/train_cxr_report.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch
    import torch.nn.functional as F

    from eval_scenarios.bench_classification import classification_report, ece, fit_temperature, softmax
    from experts.cxr_classifier import build_net

    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    root = Path(args.data)
    files = sorted(p for p in root.glob("*/*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
    split = split_by_patient(files, args.seed, args.val_frac, args.cal_frac)
    by_name = {f.name: f for f in files}
    parts = {k: [by_name[n] for n in v] for k, v in split.items()}
    log.info("files %d; patients split: %s", len(files), {k: len(v) for k, v in parts.items()})
    data = {k: load_images(v, args.size) for k, v in parts.items()}
    ys = {k: np.array([label_of(f) for f in v]) for k, v in parts.items()}
    log.info("loaded in %.1f s; train label counts %s", time.perf_counter() - t_start, np.bincount(ys["train"]))

    net = build_net(args.arch, len(LABELS), in_channels=1)
    for m in net.modules():  # torchvision's MobileNetV3 BN momentum 0.01 lags on a short run
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    steps_per_epoch = math.ceil(len(data["train"]) / args.batch)
    total_steps = args.epochs * steps_per_epoch
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=args.wd)
    t_loop = time.perf_counter()
    budget_s = args.budget_min * 60

    def progress(step: int) -> float:
        """Fraction of training done: by steps or by wall-clock budget, whichever is further."""
        return max(step / total_steps, (time.perf_counter() - t_loop) / budget_s)

    def lr_at(frac: float) -> float:
        warm = 0.08
        if frac < warm:
            return args.lr * (0.1 + 0.9 * frac / warm)
        return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min((frac - warm) / (1 - warm), 1.0))))
    counts = np.bincount(ys["train"], minlength=len(LABELS))
    class_w = torch.tensor((counts.sum() / (len(LABELS) * counts)) ** 0.5, dtype=torch.float32)
    gen = torch.Generator().manual_seed(args.seed)
    Xtr = torch.from_numpy(data["train"])
    ytr = torch.from_numpy(ys["train"])
    best: dict = {"cal_loss": float("inf")}
    history = []
    step = 0
    for epoch in range(args.epochs):
        if progress(step) >= 1.0:
            log.info("stopping before epoch %d: wall-clock budget of %.0f min spent", epoch + 1, args.budget_min)
            break
        t0 = time.perf_counter()
        net.train()
        perm = torch.randperm(len(Xtr), generator=gen)
        total, seen = 0.0, 0
        for i in range(steps_per_epoch):
            frac = progress(step)
            if frac >= 1.0:
                break
            for group in opt.param_groups:
                group["lr"] = lr_at(frac)
            idx = perm[i * args.batch:(i + 1) * args.batch]
            xb = Xtr[idx].float().div_(255.0).sub_(MEAN[0]).div_(STD[0]).unsqueeze(1)
            xb = augment(xb, gen)
            loss = F.cross_entropy(net(xb), ytr[idx], weight=class_w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            total += loss.item() * len(idx)
            seen += len(idx)
            if step % 20 == 0:
                log.info("  step %d (epoch %d) loss %.4f lr %.2e progress %.2f  %.1f img/s", step, epoch + 1,
                         total / seen, lr_at(frac), frac, seen / (time.perf_counter() - t0))
        train_time = time.perf_counter() - t0
        # model selection on the calibration patients; validation stays untouched until the end
        logits = evaluate_logits(net, data["cal"])
        cal_loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(ys["cal"])))
        rep = classification_report(softmax(logits), ys["cal"], list(LABELS))
        history.append({"epoch": epoch + 1, "steps": step, "train_loss": total / max(seen, 1), "cal_loss": cal_loss,
                        "cal_acc": rep["accuracy"], "cal_np_acc": rep["normal_vs_pneumonia_accuracy"],
                        "train_s": train_time, "epoch_s": time.perf_counter() - t0})
        log.info("epoch %d train %.4f cal %.4f acc %.4f n-vs-p %.4f b-vs-v %.4f  (%.0f s train, %.0f s total)",
                 epoch + 1, total / max(seen, 1), cal_loss, rep["accuracy"], rep["normal_vs_pneumonia_accuracy"],
                 rep.get("bacterial_vs_viral_accuracy", float("nan")), train_time, time.perf_counter() - t0)
        if cal_loss < best["cal_loss"]:
            best = {"cal_loss": cal_loss, "epoch": epoch + 1,
                    "state": {k: v.detach().clone() for k, v in net.state_dict().items()}}
    train_wall = time.perf_counter() - t_start
    net.load_state_dict(best["state"])
    net.eval()
    cal_logits = evaluate_logits(net, data["cal"])
    temperature = fit_temperature(cal_logits, ys["cal"])
    t0 = time.perf_counter()
    val_logits = evaluate_logits(net, data["val"], batch=32)
    ips = len(val_logits) / (time.perf_counter() - t0)
    report = classification_report(softmax(val_logits, temperature), ys["val"], list(LABELS))
    report.update({
        "ece_before_temperature": ece(softmax(val_logits), ys["val"]),
        "ece_after_temperature": report["ece"],
        "cal_ece_before": ece(softmax(cal_logits), ys["cal"]),
        "cal_ece_after": ece(softmax(cal_logits, temperature), ys["cal"]),
        "temperature": temperature, "best_epoch": best["epoch"], "epochs_run": len(history),
        "train_wall_s": train_wall, "cpu_images_per_s_batch32": ips, "threads": args.threads, "steps": step,
        "split_counts": {k: {"images": len(v), "patients": len({patient_id(f.name) for f in v}),
                             "labels": np.bincount(ys[k], minlength=3).tolist()} for k, v in parts.items()},
    })
    state = {k: (v.half() if torch.is_floating_point(v) else v) for k, v in best["state"].items()}
    ckpt = {
        "format": "osler-classifier-v1", "model_id": f"kermany-{args.arch}-{args.size}-v1", "arch": args.arch,
        "labels": list(LABELS), "in_channels": 1, "input_size": args.size, "mean": MEAN, "std": STD,
        "temperature": temperature, "activation": "softmax", "state_dict": state,
        "metrics": {k: v for k, v in report.items() if isinstance(v, (int, float))},
        "split": {"seed": args.seed, "val": split["val"], "cal": split["cal"]},
        "data": "Kermany et al. 2018 pediatric CXR (CC BY 4.0), ../shared/data/kermany_cxr/train",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, str(out))
    report["history"] = history
    report["args"] = vars(args)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=2, default=float))
    log.info("saved %s (%.2f MB); T=%.3f; report %s", out, out.stat().st_size / 1e6, temperature, args.report)
    summary = {k: v for k, v in report.items() if k not in ("history", "per_class", "args")}
    log.info("validation: %s", json.dumps(summary, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
