"""Pure array helpers of the YOLO backend: letterboxing, canvas size, tile windows and tile merging.

Each image is scaled so its long side is ``imgsz`` and padded (value 114) to a multiple of the stride
(:func:`_letterbox`, :func:`_canvas`).  Large images are cut into overlapping tiles (:func:`_tiles`);
per object, the box seen farthest from an inner tile edge is kept (:func:`_merge_tiles`).
"""

from __future__ import annotations

import numpy as np

__all__ = ["_letterbox", "_canvas", "_tiles", "_merge_tiles"]


def _letterbox(rgb: np.ndarray, size: int, canvas: tuple[int, int]) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Scale so the long side is ``size``, pad centred to ``canvas`` (h, w).  Returns the padded
    uint8 image, the scale and the (x, y) padding."""
    import cv2

    h, w = rgb.shape[:2]
    r = size / max(h, w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    img = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR if r > 1 else cv2.INTER_AREA) if r != 1 else rgb
    ch, cw = canvas
    px, py = (cw - nw) / 2, (ch - nh) / 2
    top, left = int(round(py - 0.1)), int(round(px - 0.1))
    out = cv2.copyMakeBorder(img, top, ch - nh - top, left, cw - nw - left, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return out, r, (left, top)


def _canvas(shape: tuple[int, int], size: int, stride: int) -> tuple[int, int]:
    h, w = shape
    r = size / max(h, w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    return int(np.ceil(nh / stride) * stride), int(np.ceil(nw / stride) * stride)


def _tiles(h: int, w: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Tile windows ``(x0, y0, x1, y1)`` covering the image with at least ``overlap`` (fraction)."""
    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        k = int(np.ceil((n - tile) / (tile * (1 - overlap)))) + 1
        return [round(i * (n - tile) / (k - 1)) for i in range(k)]

    return [(x, y, min(x + tile, w), min(y + tile, h)) for y in starts(h) for x in starts(w)]


def _merge_tiles(det: np.ndarray, margin: np.ndarray, iou: float, contain: float = 0.7) -> np.ndarray:
    """Merge (K, 6) detections from overlapping tiles: one box per object, the one seen farthest
    from an inner tile edge (``margin`` px, capped at 64; ties by score).  Two boxes of a class are
    one object when their IoU exceeds ``iou`` or one lies ``contain`` inside the other (a part of
    a cell seen at a tile's border)."""
    from .geometry import box_iou

    order = np.lexsort((-det[:, 4], -np.minimum(margin, 64.0)))
    iou_m = box_iou(det[:, :4], det[:, :4])
    area = (det[:, 2] - det[:, 0]) * (det[:, 3] - det[:, 1])
    inter = iou_m * (area[:, None] + area[None, :]) / (1.0 + iou_m)
    ios = inter / np.maximum(np.minimum(area[:, None], area[None, :]), 1e-6)
    same = det[:, 5][:, None] == det[:, 5][None, :]
    clash = same & ((iou_m > iou) | (ios > contain))
    kept: list[int] = []
    for i in order:
        if not any(clash[i, j] for j in kept):
            kept.append(int(i))
    out = det[kept]
    return out[np.argsort(-out[:, 4], kind="stable")]
