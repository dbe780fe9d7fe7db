"""Ground truth read from the annotations of the development data (../shared/data): BCCD Pascal VOC
cell counts, EndoTect polyp counts (8-connected mask components of more than ``POLYP_MIN_PX``),
Hannover longitudinal pairs, Kermany labels from folder and file name."""

from __future__ import annotations

import collections
import csv
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .voc import read_voc

__all__ = ["GroundTruth", "voc_ground_truth", "mask_ground_truth", "POLYP_MIN_PX", "voc_counts", "bccd_counts", "mask_components", "polyp_counts", "hannover_pairs",
           "kermany_picks", "spread"]

POLYP_MIN_PX = 50


def voc_counts(xml_path: Path) -> collections.Counter:
    """Objects per class name in one Pascal VOC file."""
    return collections.Counter(o.label for o in read_voc(xml_path).objects)


@functools.lru_cache(maxsize=4)
def bccd_counts(root: Path) -> dict[str, collections.Counter]:
    """Stem -> counts of RBC / WBC / Platelets for every smear of ``bccd/split.txt`` (the dev set)."""
    names = (root / "bccd" / "split.txt").read_text().split()
    return {n: voc_counts(root / "bccd" / "annotations" / f"{n}.xml") for n in names}


def mask_components(mask_path: Path, min_px: int = POLYP_MIN_PX) -> int:
    """8-connected components of more than ``min_px`` pixels of a {0,255} mask."""
    import cv2

    m = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    n, _, stats, _ = cv2.connectedComponentsWithStats((m > 127).astype("uint8"), connectivity=8)
    return int(sum(stats[i, cv2.CC_STAT_AREA] > min_px for i in range(1, n)))


@functools.lru_cache(maxsize=4)
def polyp_counts(root: Path) -> dict[str, int]:
    """``endotect_polyps/...`` image path (relative to the data root) -> polyp count."""
    out = {}
    base = root / "endotect_polyps"
    for sub in ("", "negatives/"):
        for img in sorted((base / sub / "images").glob("*.jpg")):
            out[f"endotect_polyps/{sub}images/{img.name}"] = mask_components(base / sub / "masks" / f"{img.stem}.png")
    return out


def hannover_pairs(root: Path) -> list[dict[str, str]]:
    with open(root / "hannover_cxr" / "longitudinal_pairs.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r["split"] == "dev"]


def kermany_picks(root: Path, per_class: int, names: set[str] | None = None) -> list[tuple[str, str]]:
    """(path under the data root, label): the last ``per_class`` file names (sorted) of each class,
    from ``names`` when given (e.g. the classifier's held-out list)."""
    base = root / "kermany_cxr" / "train"
    groups: dict[str, list[str]] = {"normal": [], "bacterial_pneumonia": [], "viral_pneumonia": []}
    for folder in ("NORMAL", "PNEUMONIA"):
        for f in sorted((base / folder).glob("*.jpeg")):
            if names is not None and f.name not in names:
                continue
            label = "normal" if folder == "NORMAL" else "bacterial_pneumonia" if "_bacteria_" in f.name else \
                "viral_pneumonia"
            groups[label].append(f"kermany_cxr/train/{folder}/{f.name}")
    return [(p, lab) for lab, paths in groups.items() for p in paths[-per_class:]]


def spread(items: Sequence[Any], k: int) -> list[Any]:
    """``k`` items evenly spaced over a sequence (all of them when ``k >= len``)."""
    if k >= len(items):
        return list(items)
    return [items[int(i * len(items) / k)] for i in range(k)]


@dataclass
class GroundTruth:
    """Boxes ``(N, 4)`` float xyxy in pixels of ``image``, one label each; image size in pixels."""

    image: Path
    boxes: np.ndarray
    labels: list[str]
    width: int
    height: int


def voc_ground_truth(xml_path: Path, image_path: Path) -> GroundTruth:
    """Read a Pascal VOC file (:func:`eval_scenarios.voc.read_voc`): 0-based boxes, exclusive max, clipped to
    the image; degenerate boxes dropped."""
    voc = read_voc(xml_path)
    w, h = voc.width, voc.height
    boxes, labels = [], []
    for obj in voc.objects:
        if obj.box is None:
            continue
        x0, y0, x1, y1 = obj.box
        x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))
        if x1 > x0 and y1 > y0:
            boxes.append((x0, y0, x1, y1))
            labels.append(obj.label)
    return GroundTruth(Path(image_path), np.array(boxes, np.float32).reshape(-1, 4), labels, w, h)


def mask_ground_truth(mask_path: Path, image_path: Path, label: str, min_area: int = 51) -> GroundTruth:
    """One box per 8-connected component of at least ``min_area`` px (default: more than 50) of
    a binary mask (any value > 127 is foreground)."""
    import cv2

    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise FileNotFoundError(f"cannot read mask {mask_path}")
    n, _, stats, _ = cv2.connectedComponentsWithStats((mask > 127).astype(np.uint8), connectivity=8)
    boxes = [
        (float(x), float(y), float(x + w), float(y + h))
        for x, y, w, h, area in stats[1:]
        if area >= min_area
    ]
    return GroundTruth(Path(image_path), np.array(boxes, np.float32).reshape(-1, 4), [label] * len(boxes),
                       mask.shape[1], mask.shape[0])
