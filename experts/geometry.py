"""Pure array functions: box IoU, de-duplication, mask measurements.  No models, no I/O.

Boxes are ``(N, 4)`` ``xyxy`` pixels; masks are ``(H, W)`` bool; spacing is ``(row_mm, col_mm)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tools.cancel import check_cancelled

__all__ = [
    "box_iou",
    "dedup_boxes",
    "MaskMeasurement",
    "measure_mask",
    "mask_bbox",
    "connected_regions",
    "coverage_fraction",
]


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of two xyxy box arrays."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def dedup_boxes(boxes: np.ndarray, scores: np.ndarray, labels: list[str], iou: float = 0.5) -> np.ndarray:
    """Indices to keep so that no two kept boxes of the same label overlap more than ``iou``
    (greedy by score), i.e. overlapping instances are not counted twice."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    names = np.asarray(labels, dtype=object)
    clash = (box_iou(boxes, boxes) > iou) & (names[:, None] == names[None, :])  # one IoU matrix, not one per pair
    keep: list[int] = []
    for i in order:
        if not clash[i, keep].any():
            keep.append(int(i))
    return np.array(sorted(keep), dtype=np.int64)


def mask_bbox(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """xyxy (exclusive max) of the True pixels, or None for an empty mask."""
    xs, ys = np.flatnonzero(np.any(mask, axis=0)), np.flatnonzero(np.any(mask, axis=1))
    if len(xs) == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def connected_regions(mask: np.ndarray, min_area: int = 1) -> list[np.ndarray]:
    """Split a bool mask into its 8-connected components of at least ``min_area`` pixels,
    largest first."""
    import cv2

    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    comps = [(int(stats[i, cv2.CC_STAT_AREA]), i) for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_area]
    out = []
    for _, i in sorted(comps, reverse=True):
        check_cancelled()  # one full-image pass per component: long on huge images with many components
        out.append(lab == i)
    return out


@dataclass(frozen=True)
class MaskMeasurement:
    area_px: int
    long_px: float
    short_px: float
    bbox: tuple[float, float, float, float] | None
    centroid: tuple[float, float] | None
    area_mm2: float | None
    long_mm: float | None
    short_mm: float | None


def _hull_points(mask: np.ndarray) -> np.ndarray:
    """Corner points of every foreground pixel's square, reduced to their convex hull: (K, 2) x, y.

    Only the leftmost and rightmost pixel of each row can contribute to the hull, so the corners of
    those two squares per row are enough: O(H) points instead of 4 per foreground pixel (a full
    9000 x 9000 mask would otherwise need 1.3 G coordinates)."""
    import cv2

    rows = np.flatnonzero(mask.any(axis=1))
    if len(rows) == 0:
        return np.zeros((0, 2), dtype=np.float64)
    sub = mask[rows]
    left = np.argmax(sub, axis=1)
    right = sub.shape[1] - np.argmax(sub[:, ::-1], axis=1)  # exclusive: the right edge of the last pixel
    corners = np.concatenate([np.stack([x, rows + dy], axis=1) for x in (left, right) for dy in (0, 1)],
                             axis=0).astype(np.float32)
    hull = cv2.convexHull(corners).reshape(-1, 2)
    return hull.astype(np.float64)


def _diameters(points: np.ndarray, sx: float, sy: float) -> tuple[float, float]:
    """Longest distance between hull points (scaled by sx, sy), and the longest extent
    perpendicular to it."""
    if len(points) < 2:
        return (0.0, 0.0)
    p = points * np.array([sx, sy])
    d = np.linalg.norm(p[:, None, :] - p[None, :, :], axis=-1)
    i, j = np.unravel_index(int(np.argmax(d)), d.shape)
    long = float(d[i, j])
    axis = (p[j] - p[i]) / max(long, 1e-12)
    normal = np.array([-axis[1], axis[0]])
    proj = p @ normal
    return long, float(proj.max() - proj.min())


def measure_mask(mask: np.ndarray, spacing_mm: tuple[float, float] | None = None) -> MaskMeasurement:
    """Area, longest diameter and its perpendicular extent, bbox and centroid of a bool mask.

    Diameters are measured on pixel *edges* (a single pixel is 1x1 px, diagonal sqrt(2)).
    With ``spacing_mm=(row_mm, col_mm)`` the mm values are filled; area in mm² uses
    row_mm * col_mm per pixel.
    """
    mask = np.asarray(mask, dtype=bool)
    area = int(mask.sum())
    if area == 0:
        return MaskMeasurement(0, 0.0, 0.0, None, None, 0.0 if spacing_mm else None, 0.0 if spacing_mm else None,
                               0.0 if spacing_mm else None)
    col_counts, row_counts = mask.sum(axis=0), mask.sum(axis=1)  # no (N, 2) index arrays on huge masks
    centroid = (float(col_counts @ np.arange(mask.shape[1]) / area + 0.5),
                float(row_counts @ np.arange(mask.shape[0]) / area + 0.5))
    check_cancelled()
    hull = _hull_points(mask)
    long_px, short_px = _diameters(hull, 1.0, 1.0)
    area_mm2 = long_mm = short_mm = None
    if spacing_mm:
        row_mm, col_mm = spacing_mm
        area_mm2 = float(area * row_mm * col_mm)
        long_mm, short_mm = _diameters(hull, col_mm, row_mm)
    return MaskMeasurement(area, long_px, short_px, mask_bbox(mask), centroid, area_mm2, long_mm, short_mm)


def coverage_fraction(finding: np.ndarray, organ: np.ndarray) -> float:
    """Fraction of the organ mask's pixels that the finding mask covers (0 when the organ is empty)."""
    organ = np.asarray(organ, dtype=bool)
    total = int(organ.sum())
    if total == 0:
        return 0.0
    return float((np.asarray(finding, dtype=bool) & organ).sum() / total)
