"""Polyp count as the planner gives it: each polyp detector backend at its own default (no threshold
override), exact count per frame, negatives clean, recall of the polyps at IoU 0.5, per seeded fold.

    python -m eval_scenarios.bench_polyp_count --backends yolo,yolo_unet \\
        --images ../shared/data/endotect_polyps/images --masks ../shared/data/endotect_polyps/masks \\
        --images ../shared/data/endotect_polyps/negatives/images --masks ../shared/data/endotect_polyps/negatives/masks \\
        --list experts/weights/polyp_val.txt --folds 3

Ground truth: one polyp per 8-connected component of more than 50 px of the mask (as
``bench_detection --format mask``).  ``count_exact``: fraction of frames whose count equals the
ground truth; ``negatives_clean``: frames without a polyp that got no box; ``recall50``: polyps
matched by a box at IoU >= 0.5 (greedy by score).  With ``--folds K`` the frames are dealt into the
same seeded folds as ``bench_segmentation --folds K`` and the count exact of each fold with their
mean and standard deviation is added.  Prints one JSON object, then a table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .bench_detection import mask_ground_truth
from .bench_segmentation import folds_of, list_items, read_names

__all__ = ["evaluate_counts", "main"]


def _matched(boxes: np.ndarray, gt: np.ndarray) -> int:
    from experts.geometry import box_iou

    if not len(boxes) or not len(gt):
        return 0
    iou = box_iou(np.asarray(gt, np.float32), np.asarray(boxes, np.float32))
    hit, used = 0, set()
    for g in range(len(gt)):
        order = [j for j in np.argsort(-iou[g]) if j not in used and iou[g, j] >= 0.5]
        if order:
            used.add(int(order[0]))
            hit += 1
    return hit


def evaluate_counts(detector: Any, items: list[tuple[Path, Path]], folds: int = 0, seed: int = 0) -> dict[str, Any]:
    """Counts of one loaded polyp Detector (at its default threshold) on (image, mask) pairs."""
    from experts.imaging import load_image

    rows = []
    for img_path, mask_path in items:
        gt = mask_ground_truth(mask_path, img_path, "polyp")
        det = detector.predict(load_image(img_path))
        rows.append({"image": img_path.name, "true": len(gt.boxes), "predicted": len(det.boxes),
                     "matched50": _matched(det.boxes, gt.boxes), "note": det.provenance.note})

    def summary(rs: list[dict[str, Any]]) -> dict[str, Any]:
        neg = [r for r in rs if r["true"] == 0]
        n_gt = sum(r["true"] for r in rs)
        exact = float(np.mean([r["predicted"] == r["true"] for r in rs])) if rs else None
        return {"frames": len(rs), "count_exact": exact,
                "count_mae": float(np.mean([abs(r["predicted"] - r["true"]) for r in rs])) if rs else None,
                "negatives": len(neg), "negatives_clean": sum(r["predicted"] == 0 for r in neg),
                "polyps": n_gt, "recall50": sum(r["matched50"] for r in rs) / n_gt if n_gt else None,
                "frames_without_box": sum(r["predicted"] == 0 for r in rs if r["true"] > 0)}

    out = summary(rows)
    if folds >= 2:
        fold_of = folds_of([r["image"] for r in rows], folds, seed)
        per = [{"fold": f, **summary([r for r in rows if fold_of[r["image"]] == f])} for f in range(folds)]
        ex = [p["count_exact"] for p in per if p["count_exact"] is not None]
        out.update(folds=per, fold_exact_mean=float(np.mean(ex)), fold_exact_sd=float(np.std(ex, ddof=1)))
    out["wrong"] = [{k: r[k] for k in ("image", "true", "predicted")} for r in rows if r["predicted"] != r["true"]]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_polyp_count", description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="yolo_unet,yolo", help="comma list of detect:polyp backends")
    p.add_argument("--images", type=Path, action="append", required=True)
    p.add_argument("--masks", type=Path, action="append", required=True)
    p.add_argument("--list", type=Path, help="image names: a text file or a model card (see bench_segmentation)")
    p.add_argument("--folds", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from experts.registry import ExpertPool
    from tools.settings import OslerSettings

    items = list_items(list(zip(args.images, args.masks)), read_names(args.list) if args.list else None)
    pool = ExpertPool(OslerSettings(device="cpu"))
    results = {}
    for backend in [b for b in args.backends.split(",") if b]:
        det = pool.detector("polyp", backend).expert
        results[backend] = {"model": det.model_id, "default_min_score": det.default_min_score,
                            **evaluate_counts(det, items, args.folds, args.seed)}
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(f"{'backend':<10} {'frames':>6} {'exact':>6} {'folds mean+-sd':>15} {'MAE':>5} {'recall50':>8} "
          f"{'neg clean':>9} {'no box':>6}")
    for b, r in results.items():
        fm = f"{r['fold_exact_mean']:.3f}+-{r['fold_exact_sd']:.3f}" if "folds" in r else "-"
        print(f"{b:<10} {r['frames']:>6} {r['count_exact']:>6.3f} {fm:>15} {r['count_mae']:>5.2f} "
              f"{r['recall50'] or 0:>8.3f} {r['negatives_clean']:>4}/{r['negatives']:<4} {r['frames_without_box']:>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
