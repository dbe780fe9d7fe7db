"""Benchmark a detection backend on a labelled folder: mAP, per-class precision/recall, counting
error and speed.

    python -m eval_scenarios.bench_detection --target blood_cells --backend yolo \\
        --images ../shared/data/bccd/images --labels ../shared/data/bccd/annotations --format voc \\
        --files experts/weights/bccd_yolo_val.txt

Ground truth: a folder of Pascal VOC XML files (``--format voc``; one ``<stem>.xml`` per image), or
a folder of binary masks (``--format mask``; one ``<stem>.png`` per image, every 8-connected
component of more than 50 px is one object of ``--mask-label``).  ``--images/--labels`` may be
given several times (paired in order), e.g. polyp frames and negative frames.  ``--files`` (a
text file, one image file name or stem a line) restricts the images.

Metrics (boxes ``xyxy`` in original-image pixels):

* ``ap50`` / ``ap50_95``: per-class COCO-style AP (101-point interpolated; IoU 0.5, and the mean
  over IoU 0.50:0.05:0.95), from every detection at ``--map-min-score``; ``map50`` averages classes.
* ``precision`` / ``recall`` at IoU 0.5, ``count_mae``, ``count_bias`` (mean predicted - true)
  and ``count_exact`` (fraction of images with exactly the true count), from detections at or
  above ``--count-min-score`` (default: the detector's own ``default_min_score``).
* ``negatives``: images with no ground-truth object: how many got a detection, and how many boxes.
* ``images_per_s``: predictions per second of wall time, model already loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .ground_truth import GroundTruth, mask_ground_truth, voc_ground_truth  # noqa: F401 (re-exported)

__all__ = ["GroundTruth", "voc_ground_truth", "mask_ground_truth", "average_precision", "evaluate", "main"]

_IOUS = np.linspace(0.5, 0.95, 10)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from experts.geometry import box_iou

    return box_iou(a, b)


def _match(pred: np.ndarray, scores: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(P, 10) bool: prediction i (any order) is a true positive at each IoU threshold, matching
    greedily by descending score to the unmatched ground truth of highest IoU."""
    tp = np.zeros((len(pred), len(_IOUS)), bool)
    if len(pred) == 0 or len(gt) == 0:
        return tp
    iou = _iou(pred, gt)
    for t, thr in enumerate(_IOUS):
        used = np.zeros(len(gt), bool)
        for i in np.argsort(-scores, kind="stable"):
            cand = np.where(~used & (iou[i] >= thr), iou[i], -1.0)
            j = int(np.argmax(cand))
            if cand[j] >= 0:
                used[j] = True
                tp[i, t] = True
    return tp


def average_precision(tp: np.ndarray, scores: np.ndarray, n_gt: int) -> np.ndarray:
    """COCO 101-point interpolated AP per IoU threshold; ``tp`` (P, T) bool, ``scores`` (P,)."""
    if n_gt == 0:
        return np.full(tp.shape[1], np.nan)
    order = np.argsort(-scores, kind="stable")
    tp = tp[order].astype(np.float64)
    ctp, cfp = np.cumsum(tp, 0), np.cumsum(1 - tp, 0)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    out = np.zeros(tp.shape[1])
    grid = np.linspace(0, 1, 101)
    for t in range(tp.shape[1]):
        p = np.maximum.accumulate(precision[::-1, t])[::-1] if len(order) else np.zeros(0)
        idx = np.searchsorted(recall[:, t], grid, side="left")
        out[t] = np.mean([p[i] if i < len(p) else 0.0 for i in idx])
    return out


def evaluate(records: list[tuple[GroundTruth, object]], classes: list[str], count_min_score: float) -> dict:
    """Metrics from ``(ground truth, Detections)`` pairs (Detections at the low mAP threshold)."""
    per_class = {}
    for c in classes:
        tps, scs, n_gt, abs_err, signed, exact, tp50, n_pred = [], [], 0, [], [], [], 0, 0
        for gt, det in records:
            g = gt.boxes[[lab == c for lab in gt.labels]]
            sel = np.array([lab == c for lab in det.labels], bool)
            p, s = det.boxes[sel], det.scores[sel]
            tps.append(_match(p, s, g))
            scs.append(s)
            n_gt += len(g)
            keep = s >= count_min_score
            m = _match(p[keep], s[keep], g)
            tp50 += int(m[:, 0].sum())
            n_pred += int(keep.sum())
            d = int(keep.sum()) - len(g)
            abs_err.append(abs(d))
            signed.append(d)
            exact.append(d == 0)
        ap = average_precision(np.concatenate(tps) if tps else np.zeros((0, 10), bool),
                               np.concatenate(scs) if scs else np.zeros(0), n_gt)
        per_class[c] = {
            "n_gt": n_gt,
            "n_pred": n_pred,
            "ap50": float(ap[0]),
            "ap50_95": float(np.mean(ap)),
            "precision": tp50 / n_pred if n_pred else float("nan"),
            "recall": tp50 / n_gt if n_gt else float("nan"),
            "count_mae": float(np.mean(abs_err)) if abs_err else float("nan"),
            "count_bias": float(np.mean(signed)) if signed else float("nan"),
            "count_exact": float(np.mean(exact)) if exact else float("nan"),
        }
    negs = [(gt, det) for gt, det in records if len(gt.boxes) == 0]
    neg_boxes = [int((det.scores >= count_min_score).sum()) for _, det in negs]
    valid = [v for v in per_class.values() if v["n_gt"]]
    return {
        "n_images": len(records),
        "count_min_score": count_min_score,
        "map50": float(np.mean([v["ap50"] for v in valid])) if valid else float("nan"),
        "map50_95": float(np.mean([v["ap50_95"] for v in valid])) if valid else float("nan"),
        "classes": per_class,
        "negatives": {"n_images": len(negs), "images_with_detections": sum(b > 0 for b in neg_boxes),
                      "false_boxes": sum(neg_boxes)},
    }


def _build(backend: str, target: str, device: str):
    from experts.registry import default_registry
    from tools.settings import ModelPaths, OslerSettings

    if backend.endswith(".pt"):
        from experts.yolo_detector import build_custom

        return build_custom(OslerSettings(device=device, models=ModelPaths(yolo_extra=Path(backend))))
    settings = OslerSettings(device=device)
    for spec in default_registry()[f"detect:{target}"]:
        if spec.name == backend:
            return spec.build(settings)
    raise SystemExit(f"no backend '{backend}' for detect:{target}")


def _table(res: dict) -> str:
    head = f"{'class':<10} {'n_gt':>5} {'AP50':>6} {'AP50-95':>7} {'P':>6} {'R':>6} {'MAE':>6} {'bias':>6} {'exact':>6}"
    rows = [head, "-" * len(head)]
    for c, v in res["classes"].items():
        rows.append(f"{c:<10} {v['n_gt']:>5} {v['ap50']:>6.3f} {v['ap50_95']:>7.3f} {v['precision']:>6.3f} "
                    f"{v['recall']:>6.3f} {v['count_mae']:>6.2f} {v['count_bias']:>+6.2f} {v['count_exact']:>6.1%}")
    neg = res["negatives"]
    rows.append(f"mAP50 {res['map50']:.3f}  mAP50-95 {res['map50_95']:.3f}  images {res['n_images']}  "
                f"{res['images_per_s']:.2f} img/s  negatives {neg['images_with_detections']}/{neg['n_images']} "
                f"with detections ({neg['false_boxes']} boxes)")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", default="yolo", help="registry backend name (yolo, opencv, unet) or a YOLO .pt path")
    ap.add_argument("--target", default="blood_cells", choices=["blood_cells", "polyp"])
    ap.add_argument("--images", type=Path, action="append", required=True)
    ap.add_argument("--labels", type=Path, action="append", required=True)
    ap.add_argument("--format", choices=["voc", "mask"], default="voc")
    ap.add_argument("--mask-label", default="polyp")
    ap.add_argument("--files", type=Path,
                    help="text file: image names (or stems) to keep, one a line; or a .pt from training/train_yolo.py "
                         "(its recorded validation list)")
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--map-min-score", type=float, default=0.001)
    ap.add_argument("--count-min-score", type=float, default=None)
    ap.add_argument("--json", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    if len(args.images) != len(args.labels):
        ap.error("--images and --labels must be given the same number of times")

    from experts.imaging import load_image

    keep = None
    if args.files and args.files.suffix == ".pt":  # an osler-yolo-v1 checkpoint: its recorded validation list
        import torch

        names = torch.load(args.files, map_location="cpu", weights_only=True).get("train", {}).get("val", [])
        keep = {Path(n).stem for n in names}
    elif args.files:
        keep = {Path(s.strip()).stem for s in args.files.read_text().splitlines() if s.strip()}
    gts: list[GroundTruth] = []
    for img_dir, lab_dir in zip(args.images, args.labels):
        for img in sorted(p for p in img_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"}):
            if keep is not None and img.stem not in keep:
                continue
            if args.format == "voc":
                gts.append(voc_ground_truth(lab_dir / f"{img.stem}.xml", img))
            else:
                gts.append(mask_ground_truth(lab_dir / f"{img.stem}.png", img, args.mask_label))
    if not gts:
        print("no images matched", file=sys.stderr)
        return 2
    from tools.errors import OslerError

    try:
        det = _build(args.backend, args.target, args.device)
        det.load()
    except OslerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    count_thr = det.default_min_score if args.count_min_score is None else args.count_min_score
    images = [load_image(g.image) for g in gts]
    det.predict(images[0], min_score=args.map_min_score)  # warm-up, not timed
    t0 = time.perf_counter()
    preds = [det.predict(im, min_score=args.map_min_score) for im in images]
    elapsed = time.perf_counter() - t0
    classes = list(det.classes)
    res = evaluate(list(zip(gts, preds)), classes, count_thr)
    res.update(backend=det.backend, model=det.model_id, device=preds[0].provenance.device,
               weights_sha256=preds[0].provenance.weights_sha256, images_per_s=len(images) / elapsed)
    text = json.dumps(res, indent=1)
    print(text)
    print(_table(res))
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
