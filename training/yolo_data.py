"""Convert the dev data in ``../shared/data`` to YOLO format (in /tmp, never in the repo).

Layout written under ``out``::

    images/{train,val}/<stem>.jpg   (symlinks to the source images)
    labels/{train,val}/<stem>.txt   (one line per box: class cx cy w h, normalised to [0, 1])
    data.yaml                       (absolute paths, class names)
    split.json                      ({"train": [...], "val": [...]} file names)

A background image (no polyp) gets an empty label file, which ultralytics reads as a negative.
With ``crop=N`` each image is instead cut into N x N windows at its native resolution (written as
JPEG, ``<stem>_x<x0>_y<y0>.jpg``; boxes clipped to the window, dropped when less than 40 % of
them is inside): training at ``imgsz=N`` then sees objects at their original pixel size, and the
model runs on whole images at their full size (e.g. 640).
Ground truth is read with the same functions the benchmark uses
(:mod:`eval_scenarios.bench_detection`), so training and evaluation agree on the boxes.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval_scenarios.ground_truth import GroundTruth, mask_ground_truth, voc_ground_truth

__all__ = ["BCCD_CLASSES", "POLYP_CLASSES", "seeded_split", "crop_windows", "write_yolo_dataset", "bccd_dataset", "polyp_dataset",
           "PreparedData"]

BCCD_CLASSES = ("RBC", "WBC", "Platelets")
POLYP_CLASSES = ("polyp",)


@dataclass(frozen=True)
class PreparedData:
    yaml: Path
    train: list[str]
    val: list[str]


def seeded_split(names: list[str], val_frac: float, seed: int) -> tuple[list[str], list[str]]:
    """Sort names, shuffle with ``random.Random(seed)``, take the first ``round(val_frac * n)`` as
    validation.  Both lists are returned sorted."""
    order = sorted(names)
    random.Random(seed).shuffle(order)
    n_val = int(round(val_frac * len(order)))
    return sorted(order[n_val:]), sorted(order[:n_val])


def _label_lines(gt: GroundTruth, classes: tuple[str, ...]) -> list[str]:
    w, h = gt.width, gt.height
    lines = []
    for (x0, y0, x1, y1), lab in zip(gt.boxes, gt.labels):
        x0, x1 = np.clip([x0, x1], 0, w)
        y0, y1 = np.clip([y0, y1], 0, h)
        if x1 - x0 < 1 or y1 - y0 < 1:
            continue
        cls = classes.index(lab)
        lines.append(f"{cls} {(x0 + x1) / 2 / w:.6f} {(y0 + y1) / 2 / h:.6f} {(x1 - x0) / w:.6f} {(y1 - y0) / h:.6f}")
    return lines


def crop_windows(gt: GroundTruth, size: int, min_visible: float = 0.4) -> list[tuple[tuple[int, int], GroundTruth]]:
    """Non-overlapping (where the image allows) ``size`` windows covering the image; each with its
    ground truth shifted into window pixels."""
    def starts(n: int) -> list[int]:
        k = max(1, int(np.ceil(n / size)))
        return [0] if n <= size else [round(i * (n - size) / (k - 1)) for i in range(k)]

    out = []
    area = (gt.boxes[:, 2] - gt.boxes[:, 0]) * (gt.boxes[:, 3] - gt.boxes[:, 1])
    for y0 in starts(gt.height):
        for x0 in starts(gt.width):
            w, h = min(size, gt.width - x0), min(size, gt.height - y0)
            b = gt.boxes - np.array([x0, y0, x0, y0], np.float32)
            b = np.stack([b[:, 0].clip(0, w), b[:, 1].clip(0, h), b[:, 2].clip(0, w), b[:, 3].clip(0, h)], 1)
            vis = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) / np.maximum(area, 1e-6)
            keep = vis >= min_visible
            out.append(((x0, y0), GroundTruth(gt.image, b[keep], [lab for lab, k in zip(gt.labels, keep) if k], w, h)))
    return out


def write_yolo_dataset(
    out: Path, classes: tuple[str, ...], splits: dict[str, list[GroundTruth]], crop: int | None = None
) -> Path:
    """Write images (symlinks, or JPEG crops with ``crop``), label files and ``data.yaml`` under
    ``out``; returns the yaml path."""
    import cv2

    out = Path(out).resolve()
    for split, items in splits.items():
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        (out / "labels" / split).mkdir(parents=True, exist_ok=True)
        for gt in items:
            if crop:
                img = cv2.imread(str(gt.image))
                for (x0, y0), sub in crop_windows(gt, crop):
                    stem = f"{gt.image.stem}_x{x0}_y{y0}"
                    cv2.imwrite(str(out / "images" / split / f"{stem}.jpg"), img[y0:y0 + sub.height, x0:x0 + sub.width],
                                [cv2.IMWRITE_JPEG_QUALITY, 95])
                    (out / "labels" / split / f"{stem}.txt").write_text("\n".join(_label_lines(sub, classes)) + "\n")
                continue
            link = out / "images" / split / gt.image.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(gt.image.resolve())
            (out / "labels" / split / f"{gt.image.stem}.txt").write_text("\n".join(_label_lines(gt, classes)) + "\n")
    names = "\n".join(f"  {i}: {c}" for i, c in enumerate(classes))
    yaml = out / "data.yaml"
    yaml.write_text(f"path: {out}\ntrain: images/train\nval: images/val\nnames:\n{names}\n")
    (out / "split.json").write_text(json.dumps({k: [g.image.name for g in v] for k, v in splits.items()}, indent=1))
    return yaml


def bccd_dataset(
    data_root: Path, out: Path, seed: int = 0, val_frac: float = 0.2, crop: int | None = None
) -> PreparedData:
    """BCCD dev smears (``split.txt``), VOC boxes -> RBC / WBC / Platelets (``crop``: see above)."""
    root = Path(data_root) / "bccd"
    stems = [s.strip() for s in (root / "split.txt").read_text().split() if s.strip()]
    train, val = seeded_split([f"{s}.jpg" for s in stems], val_frac, seed)

    def gts(names: list[str]) -> list[GroundTruth]:
        return [voc_ground_truth(root / "annotations" / f"{Path(n).stem}.xml", root / "images" / n) for n in names]

    yaml = write_yolo_dataset(out, BCCD_CLASSES, {"train": gts(train), "val": gts(val)}, crop=crop)
    return PreparedData(yaml, train, val)


def polyp_dataset(
    data_root: Path, out: Path, seed: int = 0, val_frac: float = 0.2, neg_val_frac: float = 0.5,
    crop: int | None = None,
) -> PreparedData:
    """EndoTect polyp frames (boxes of mask components > 50 px) plus the negative frames as
    background images; positives (``val_frac``) and negatives (``neg_val_frac``: there are only
    10, so half are held out to measure false positives) are split separately with the same seed."""
    root = Path(data_root) / "endotect_polyps"
    pos = sorted(p.name for p in (root / "images").glob("*.jpg"))
    neg = sorted(p.name for p in (root / "negatives" / "images").glob("*.jpg"))
    ptr, pva = seeded_split(pos, val_frac, seed)
    ntr, nva = seeded_split(neg, neg_val_frac, seed)

    def gts(names: list[str], sub: Path) -> list[GroundTruth]:
        return [mask_ground_truth(sub / "masks" / f"{Path(n).stem}.png", sub / "images" / n, "polyp") for n in names]

    neg_root = root / "negatives"
    splits = {"train": gts(ptr, root) + gts(ntr, neg_root), "val": gts(pva, root) + gts(nva, neg_root)}
    yaml = write_yolo_dataset(out, POLYP_CLASSES, splits, crop=crop)
    return PreparedData(yaml, ptr + ntr, pva + nva)
