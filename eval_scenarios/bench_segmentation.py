"""Benchmark a segmentation backend on a folder of images and ground-truth masks.

    python -m eval_scenarios.bench_segmentation --target polyp \\
        --images ../shared/data/endotect_polyps/images --masks ../shared/data/endotect_polyps/masks \\
        --images ../shared/data/endotect_polyps/negatives/images --masks ../shared/data/endotect_polyps/negatives/masks \\
        --list experts/weights/polyp_unet.md [--backend unet|sam|opencv] [--weights PATH]

Masks are PNGs named like their image (``<stem>.png``): 0 background, 255 (any value > 127)
foreground, 127 = ignore (excluded from every metric).  Modes:

* ``auto``: the segmenter without prompts (the union of its masks is compared with the GT);
* ``box``: one box prompt per GT connected component (>= 50 px; xyxy of the component, exclusive
  max), the union of the answers compared with the GT;
* ``detect``: automatic end to end as the planner runs it: every box of the target's detector
  (``detect:<target>``, e.g. the polyp YOLO) prompts the segmenter; no box gives an empty mask.
  Its time per image includes the detector.

Per mode it reports the mean over images with foreground of Dice, IoU and HD95 (pixels of the
original image; images where either mask is empty are left out of HD95 and counted), how many of
them got no mask at all (``no_mask``), images per second (predict calls only), and for images with
an empty GT how many came back empty.  ``--folds K`` deals the images into K seeded folds and adds
the Dice of each fold with their mean and standard deviation.
Prints one JSON object, then a table.  ``main(argv) -> int``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterable

import numpy as np

__all__ = ["read_mask", "dice_iou", "hd95", "gt_boxes", "list_items", "read_names", "evaluate", "main"]


def read_mask(path: Path, shape: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(foreground, ignore) bool masks of a GT PNG; resized (nearest) to ``shape`` (H, W) if given."""
    import cv2

    m = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if m is None:
        raise FileNotFoundError(f"cannot read mask {path}")
    if shape is not None and m.shape != tuple(shape):
        m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    ignore = m == 127
    return (m > 127), ignore


def dice_iou(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> tuple[float, float]:
    """Dice and IoU of two bool masks outside ``ignore``; (1, 1) when both are empty."""
    if ignore is not None:
        pred, gt = pred & ~ignore, gt & ~ignore
    inter, ps, gs = int((pred & gt).sum()), int(pred.sum()), int(gt.sum())
    if ps + gs == 0:
        return 1.0, 1.0
    return 2.0 * inter / (ps + gs), inter / (ps + gs - inter)


def _boundary(m: np.ndarray) -> np.ndarray:
    import cv2

    er = cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return m & ~er.astype(bool)


def hd95(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None) -> float | None:
    """Symmetric 95th-percentile Hausdorff distance (pixels) between mask boundaries; None if one is empty."""
    import cv2

    if ignore is not None:
        pred, gt = pred & ~ignore, gt & ~ignore
    if not pred.any() or not gt.any():
        return None
    bp, bg = _boundary(pred), _boundary(gt)
    dist_to_g = cv2.distanceTransform((~bg).astype(np.uint8), cv2.DIST_L2, 5)
    dist_to_p = cv2.distanceTransform((~bp).astype(np.uint8), cv2.DIST_L2, 5)
    d = np.concatenate([dist_to_g[bp], dist_to_p[bg]])
    return float(np.percentile(d, 95))


def gt_boxes(gt: np.ndarray, min_area: int = 50) -> list[tuple[float, float, float, float]]:
    """xyxy boxes (exclusive max) of the GT's connected components of >= ``min_area`` pixels."""
    from experts.geometry import connected_regions, mask_bbox

    return [b for b in (mask_bbox(c) for c in connected_regions(gt, min_area=min_area)) if b is not None]


def list_items(folders: list[tuple[Path, Path]], names: Iterable[str] | None = None) -> list[tuple[Path, Path]]:
    """(image, mask) pairs from (images folder, masks folder) pairs; ``names`` are image file names
    (or stems) to keep, in that order, each looked up in every folder."""
    exts = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm"}
    by_stem: dict[str, tuple[Path, Path]] = {}
    for images, masks in folders:
        for p in sorted(images.iterdir()):
            if p.suffix.lower() in exts:
                by_stem.setdefault(p.stem, (p, masks / f"{p.stem}.png"))
    stems = [Path(n).stem for n in names] if names is not None else sorted(by_stem)
    out = []
    for s in stems:
        if s not in by_stem:
            raise FileNotFoundError(f"{s}: no image in {[str(f[0]) for f in folders]}")
        if not by_stem[s][1].exists():
            raise FileNotFoundError(f"{by_stem[s][1]}: no mask for {s}")
        out.append(by_stem[s])
    return out


def read_names(path: Path) -> list[str]:
    """Image names from a text file (one a line, '#' comments) or from a model card: the first fenced
    block after a heading that contains 'Validation files'."""
    lines = path.read_text().splitlines()
    if path.suffix.lower() == ".md":
        start = next((i for i, ln in enumerate(lines) if ln.startswith("#") and "validation files" in ln.lower()), None)
        if start is None:
            raise ValueError(f"{path}: no 'Validation files' heading")
        fences = [i for i in range(start, len(lines)) if lines[i].startswith("```")][:2]
        if len(fences) < 2:
            raise ValueError(f"{path}: no fenced block after the 'Validation files' heading")
        lines = lines[fences[0] + 1 : fences[1]]
    return [ln.split("#")[0].strip() for ln in lines if ln.split("#")[0].strip()]


def _union(masks: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    u = np.zeros(shape, dtype=bool)
    for m in masks:
        u |= m
    return u


def _predict(segmenter: Any, detector: Any, img: Any, gt: np.ndarray, ign: np.ndarray, mode: str
             ) -> np.ndarray | None:
    """The union mask of one mode on one image; None when the mode does not apply (box mode, no GT)."""
    shape = img.pixels.shape[:2]
    if mode == "auto":
        return _union(segmenter.predict(img).masks, shape)
    if mode == "detect":
        if detector is None:
            raise ValueError("mode 'detect' needs a detector")
        dets = detector.predict(img)
        return _union([m for b in np.asarray(dets.boxes).reshape(-1, 4)
                       for m in segmenter.predict(img, box=tuple(float(v) for v in b)).masks], shape)
    boxes = gt_boxes(gt & ~ign)
    if not boxes:
        return None
    return _union([m for b in boxes for m in segmenter.predict(img, box=b).masks], shape)


def folds_of(names: list[str], k: int, seed: int = 0) -> dict[str, int]:
    """Image name -> fold 0..k-1: names sorted, shuffled with ``random.Random(seed)``, dealt round robin."""
    import random

    order = sorted(names)
    random.Random(seed).shuffle(order)
    return {n: i % k for i, n in enumerate(order)}


def _summary(rows: list[dict[str, Any]], neg: list[bool], seconds: float) -> dict[str, Any]:
    hds = [r["hd95"] for r in rows if r["hd95"] is not None]
    n_run = len(rows) + len(neg)
    return {
        "n": len(rows),
        "dice": float(np.mean([r["dice"] for r in rows])) if rows else None,
        "iou": float(np.mean([r["iou"] for r in rows])) if rows else None,
        "hd95_px": float(np.mean(hds)) if hds else None,
        "hd95_missing": len(rows) - len(hds),
        "images_per_s": n_run / seconds if seconds > 0 else None,
        "s_per_image": seconds / n_run if n_run else None,
        "negatives": len(neg),
        "negatives_empty": int(sum(neg)),
        "no_mask": int(sum(r["empty"] for r in rows)),
    }


def evaluate(segmenter: Any, items: list[tuple[Path, Path]], modes: Iterable[str] = ("auto", "box"),
             per_image: bool = False, detector: Any = None, folds: int = 0, seed: int = 0) -> dict[str, Any]:
    """Metrics per mode (see the module docstring) of a loaded Segmenter on (image, mask) pairs;
    mode ``detect`` needs ``detector`` (a Detector whose boxes prompt the segmenter).  Every mode runs
    on an image before the next image is read (a promptable segmenter's embedding is reused).  With
    ``folds`` >= 2 the images are dealt into that many folds (:func:`folds_of`) and each mode also
    reports its Dice per fold and their mean and standard deviation."""
    from experts.imaging import load_image

    modes = list(modes)
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    neg: dict[str, list[tuple[str, bool]]] = {m: [] for m in modes}
    seconds = {m: 0.0 for m in modes}
    for img_path, mask_path in items:
        img = load_image(img_path)
        gt, ign = read_mask(mask_path, img.pixels.shape[:2])
        for mode in modes:
            t = time.perf_counter()
            pred = _predict(segmenter, detector, img, gt, ign, mode)
            if pred is None:
                continue
            seconds[mode] += time.perf_counter() - t
            if not (gt & ~ign).any():
                neg[mode].append((img_path.name, not (pred & ~ign).any()))
                continue
            d, j = dice_iou(pred, gt, ign)
            rows[mode].append({"image": img_path.name, "dice": d, "iou": j, "hd95": hd95(pred, gt, ign),
                               "empty": not (pred & ~ign).any()})
    fold_of = folds_of([p.name for p, _ in items], folds, seed) if folds >= 2 else {}
    out: dict[str, Any] = {}
    for mode in modes:
        res = _summary(rows[mode], [e for _, e in neg[mode]], seconds[mode])
        if fold_of:
            per = []
            for f in range(folds):
                fr = [r for r in rows[mode] if fold_of[r["image"]] == f]
                fn = [e for n, e in neg[mode] if fold_of[n] == f]
                per.append({"fold": f, "n": len(fr), "dice": float(np.mean([r["dice"] for r in fr])) if fr else None,
                            "negatives": len(fn), "negatives_empty": int(sum(fn))})
            ds = [p["dice"] for p in per if p["dice"] is not None]
            res["folds"] = per
            res["fold_dice_mean"] = float(np.mean(ds)) if ds else None
            res["fold_dice_sd"] = float(np.std(ds, ddof=1)) if len(ds) > 1 else None
        if per_image:
            res["per_image"] = rows[mode]
        out[mode] = res
    return out


def _table(results: dict[str, Any]) -> str:
    def f(v: Any, p: int = 3) -> str:
        return "-" if v is None else f"{v:.{p}f}"

    lines = ["mode    n    dice   iou    hd95px  img/s  negatives_empty  no_mask  folds dice mean+-sd", "-" * 84]
    for mode, r in results.items():
        folds = f"{f(r.get('fold_dice_mean'))} +- {f(r.get('fold_dice_sd'))}" if r.get("folds") else "-"
        lines.append(f"{mode:<7} {r['n']:<4} {f(r['dice'])}  {f(r['iou'])}  {f(r['hd95_px'], 1):>6}  "
                     f"{f(r['images_per_s'], 2):>5}  {r['negatives_empty']:>7}/{r['negatives']:<7}  "
                     f"{r['no_mask']:>7}  {folds}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_segmentation", description=__doc__.split("\n\n")[0])
    p.add_argument("--target", choices=["polyp", "lung", "prompt"], required=True)
    p.add_argument("--backend", default="auto", help="litemedsam | unet | sam | opencv | auto (registry order)")
    p.add_argument("--images", type=Path, action="append", required=True, help="image folder (repeatable)")
    p.add_argument("--masks", type=Path, action="append", required=True, help="mask folder, one per --images")
    p.add_argument("--list", type=Path, help="image names to use: a text file, one a line, or a model card (.md) "
                   "whose fenced block after a 'Validation files' heading lists them")
    p.add_argument("--modes", default="auto,box", help="comma list of auto, box, detect")
    p.add_argument("--detector-backend", default="auto", help="backend of detect:<target> for mode 'detect'")
    p.add_argument("--detector-weights", type=Path, help="checkpoint of that detector (overrides settings)")
    p.add_argument("--weights", type=Path, help="checkpoint for this target/backend (overrides settings)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=None)
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads (1 is fastest on a busy CPU)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--per-image", action="store_true")
    p.add_argument("--folds", type=int, default=0, help="also report Dice per fold (images dealt into K seeded folds)")
    p.add_argument("--seed", type=int, default=0, help="seed of the fold assignment")
    p.add_argument("--json", type=Path, help="also write the JSON here")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("YOLO_OFFLINE", "1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from experts.registry import ExpertPool
    from tools.settings import OslerSettings

    settings = OslerSettings()
    paths: dict[str, Any] = {}
    if args.weights:
        paths[{"polyp": "unet_polyp", "lung": "unet_lung", "prompt": "sam_checkpoint"}[args.target]] = args.weights
    if args.detector_weights:
        if args.target != "polyp":
            p.error(f"no detector weights setting for target {args.target!r}")
        paths["yolo_polyp"] = args.detector_weights
    settings = settings.model_copy(update={"models": settings.models.model_copy(update=paths),
                                           **({"device": args.device} if args.device else {})})
    names = read_names(args.list) if args.list else None
    if len(args.images) != len(args.masks):
        p.error("give one --masks folder per --images folder")
    items = list_items(list(zip(args.images, args.masks)), names)[: args.limit]
    pool = ExpertPool(settings)
    handle = pool.segmenter(args.target, None if args.backend == "auto" else args.backend)
    expert, why = handle.expert, handle.why
    modes = [m for m in args.modes.split(",") if m]
    if not getattr(expert, "promptable", False):
        modes = [m for m in modes if m not in ("box", "detect")]
    if args.target == "prompt":
        modes = [m for m in modes if m not in ("auto", "detect")]
    detector, det_info = None, None
    if "detect" in modes:
        detector = pool.detector(args.target, None if args.detector_backend == "auto" else args.detector_backend)
        det_info = {"backend": detector.backend, "model": detector.model_id, "why": detector.why}
    results = {"target": args.target, "backend": expert.backend, "model": expert.model_id, "why": why,
               "detector": det_info, "images": len(items),
               "results": evaluate(expert, items, modes, per_image=args.per_image, detector=detector,
                                   folds=args.folds, seed=args.seed)}
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    print(_table(results["results"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
