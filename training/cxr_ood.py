"""Is this film like the films the chest X-ray classifier learnt from?  A distance on the classifier's own features.

The modality gate decides *what kind* of image a file is; a part of a chest film (a 30 % crop) is still a chest
X-ray to it, but the pneumonia classifier never saw one and had answered such crops confidently, against the whole
film's answer (probe of 2026-12-03).  This script fits, on the classifier's training films only, the distribution
of its pooled penultimate features (the input of its last linear layer; mean over the film and its mirror image,
as the classifier's test-time augmentation), and a limit on the distance to it:

* features of the training films (all of them, or ``--train-n`` drawn with a seed): mean, PCA to ``--dims``
  components, distance = RMS of the whitened components plus the RMS of what the components leave out (scaled by
  its training spread), i.e. a Mahalanobis distance in the principal subspace and a residual term;
* the limit: the ``--quantile`` of the distances of the **validation fold** films (real films, no crops: nothing
  that is flagged later chooses it);
* reported, never tuned on: the **shifted** hold-out (earliest ids) and its site-like changes (gamma, blur, JPEG,
  contrast, the classifier card's robustness set) -- how many real films would be called unlike; and its crops
  (30 / 45 / 60 % of each side, halves) -- how many parts of films are caught, and how many of those had been
  answered against the whole film.

``python -m training.cxr_ood --out runs/cxr_ood`` writes ``cxr_ood.npz`` (the statistics and the limit) and
``report.json``; the npz is shipped as ``experts/weights/cxr_ood.npz`` when the rule written before the run holds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["features", "fit", "distance", "views_of", "main"]


def _classifier() -> Any:
    from experts.cxr_classifier import build_torchvision
    from tools.settings import OslerSettings

    clf = build_torchvision(OslerSettings())
    clf.load()
    return clf


def features(clf: Any, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pooled penultimate features ``(N, D)``, P(pneumonia) ``(N,)``) of preprocessed inputs, both views averaged."""
    import torch

    from experts.cxr_checkpoint import _probabilities

    net = clf._net
    head = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    seen: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0].detach()))
    try:
        with torch.inference_mode():
            x = torch.from_numpy(batch)
            z = (net(x).float() + net(x.flip(-1)).float()) / 2
    finally:
        hook.remove()
    feats = ((seen[0] + seen[1]) / 2).float().numpy()
    c = clf._ckpt
    p = np.array([_probabilities(row, c["activation"], c["temperature"]) for row in z.numpy()])
    return feats, 1.0 - p[:, list(clf.labels).index("normal")]


def fit(feats: np.ndarray, dims: int) -> dict[str, np.ndarray]:
    mu = feats.mean(0)
    x = feats - mu
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    comp = vt[:dims]
    var = (s[:dims] ** 2) / (len(x) - 1)
    resid = x - (x @ comp.T) @ comp
    r = np.sqrt((resid ** 2).sum(1))
    return {"mu": mu.astype(np.float32), "components": comp.astype(np.float32), "scale": np.sqrt(var).astype(np.float32),
            "resid_scale": np.float32(r.mean())}


def distance(stats: dict[str, np.ndarray], feats: np.ndarray) -> np.ndarray:
    x = feats - stats["mu"]
    z = (x @ stats["components"].T) / stats["scale"]
    resid = x - (x @ stats["components"].T) @ stats["components"]
    r = np.sqrt((resid ** 2).sum(1)) / float(stats["resid_scale"])
    return np.sqrt((z ** 2).mean(1)) + r


def _read(path: Path) -> np.ndarray:
    import cv2

    g = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return np.repeat(g[..., None], 3, axis=2)


def _embed(clf: Any, images: list[np.ndarray], bs: int = 32) -> tuple[np.ndarray, np.ndarray]:
    fs, ps = [], []
    for i in range(0, len(images), bs):
        batch = np.stack([clf.input_for(im) for im in images[i:i + bs]])
        f, p = features(clf, batch)
        fs.append(f)
        ps.append(p)
    return np.concatenate(fs), np.concatenate(ps)


def _crops(rgb: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    h, w = rgb.shape[:2]
    out = {}
    for frac in (0.3, 0.45, 0.6):
        ch, cw = int(h * frac), int(w * frac)
        y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out[f"crop{int(frac * 100)}"] = rgb[y:y + ch, x:x + cw]
    out["left_half"] = rgb[:, : w // 2]
    out["upper_half"] = rgb[: h // 2]
    return out


def _site(rgb: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    import cv2

    g = rgb[..., 0].astype(np.float32) / 255
    out = {"gamma0.6": (g ** 0.6), "gamma1.6": (g ** 1.6), "low_contrast": 0.3 + 0.4 * g,
           "blur": cv2.GaussianBlur(g, (0, 0), 2.0)}
    ok, buf = cv2.imencode(".jpg", (g * 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 15])
    out = {k: np.clip(v * 255, 0, 255).astype(np.uint8) for k, v in out.items()}
    out["jpeg15"] = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    out["scale0.9_pad"] = cv2.copyMakeBorder(cv2.resize(rgb[..., 0], None, fx=0.9, fy=0.9), 12, 12, 12, 12,
                                             cv2.BORDER_CONSTANT, value=0)
    return {k: np.repeat(v[..., None], 3, axis=2) for k, v in out.items()}


def views_of(names: list[str], files: dict[str, Path], rng: np.random.Generator
             ) -> tuple[dict[str, list[np.ndarray]], dict[str, list[str]]]:
    """Every crop and site-like change of each film: (view name -> images, view name -> the film of each)."""
    views: dict[str, list[np.ndarray]] = {}
    owners: dict[str, list[str]] = {}
    for n in names:
        rgb = _read(files[n])
        for k, v in {**_crops(rgb, rng), **_site(rgb, rng)}.items():
            views.setdefault(k, []).append(v)
            owners.setdefault(k, []).append(n)
    return views, owners


def _rate(d: np.ndarray, limit: float) -> float:
    return round(float((d > limit).mean()), 4)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.cxr_ood", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("runs/cxr_ood"))
    p.add_argument("--train-n", type=int, default=1500)
    p.add_argument("--dims", type=int, default=64)
    p.add_argument("--quantile", type=float, default=0.99)
    p.add_argument("--report-n", type=int, default=300, help="shifted films perturbed and cropped")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    clf = _classifier()
    import torch

    split = torch.load(clf.weights, map_location="cpu", weights_only=True)["split"]
    root = args.data_root / "kermany_cxr" / "train"
    files = {f.name: f for f in sorted(root.glob("*/*.jpeg"))}
    val, shifted = set(split["val"]), set(split["shifted"])
    train = sorted(n for n in files if n not in val and n not in shifted)
    pick = sorted(rng.choice(len(train), min(args.train_n, len(train)), replace=False))
    train = [train[i] for i in pick]
    args.out.mkdir(parents=True, exist_ok=True)

    def embed_names(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return _embed(clf, [_read(files[n]) for n in names])

    f_train, _ = embed_names(train)
    stats = fit(f_train, args.dims)
    f_val, p_val = embed_names(sorted(val))
    d_val = distance(stats, f_val)
    limit = float(np.quantile(d_val, args.quantile))
    sh = sorted(shifted)
    f_sh, p_sh = embed_names(sh)
    d_sh = distance(stats, f_sh)
    report: dict[str, Any] = {"train_films": len(train), "dims": args.dims, "quantile": args.quantile, "limit": limit,
                              "flagged": {"train": _rate(distance(stats, f_train), limit), "validation": _rate(d_val, limit),
                                          "shifted": _rate(d_sh, limit)}}
    thr = float(clf._ckpt["threshold"])
    sub = [sh[i] for i in sorted(rng.choice(len(sh), min(args.report_n, len(sh)), replace=False))]
    whole = {n: p_sh[sh.index(n)] for n in sub}
    views, owners = views_of(sub, files, rng)
    per_view = {}
    for k, ims in views.items():
        f, pv = _embed(clf, ims)
        d = distance(stats, f)
        flipped = np.array([(pv[i] >= thr) != (whole[owners[k][i]] >= thr) for i in range(len(ims))])
        per_view[k] = {"n": len(ims), "flagged": _rate(d, limit), "answer_flipped": round(float(flipped.mean()), 4),
                       "flipped_and_flagged": int((flipped & (d > limit)).sum()), "flipped": int(flipped.sum())}
    report["views_of_shifted_films"] = per_view
    others: dict[str, Callable[[], list[Path]]] = {
        "hannover_adult": lambda: sorted((args.data_root / "hannover_cxr" / "png").glob("*.png")),
        "nih_64px": lambda: sorted((args.data_root / "nih_cxr14_64" / "images").glob("*.png"))[:300],
    }
    for k, lister in others.items():
        paths = lister()
        if paths:
            f, _ = _embed(clf, [_read(x) for x in paths])
            report["flagged"][k] = _rate(distance(stats, f), limit)
    report["wall_s"] = round(time.time() - t0, 1)
    np.savez(args.out / "cxr_ood.npz", **stats, limit=np.float32(limit), dims=np.int32(args.dims),
             model_id=np.array(clf.model_id), quantile=np.float32(args.quantile))
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
