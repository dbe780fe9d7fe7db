"""Flip test-time augmentation for detectors: pure array functions.

A detector runs on the image and on its left-right and up-down mirrors (:func:`flip_views`); each
view's boxes are mapped back to the original frame (:func:`unflip`) and merged (:func:`merge_views`):
per class, boxes overlapping more than ``iou`` are one object, kept with the box of its highest-scoring
view and the **mean over views** of each view's best score (a view that missed the object adds 0).
An object seen by one view only at 0.6 scores 0.2; one seen by all three at 0.6 scores 0.6, so a
spurious box that one view produces falls under the threshold while a real object seen by every
view keeps its score.

Detections are ``(K, 6)`` float arrays ``x0 y0 x1 y1 score class`` in pixels of the original image.
"""

from __future__ import annotations

import numpy as np

from .geometry import box_iou

__all__ = ["FLIPS", "flip_views", "unflip", "merge_views"]

FLIPS = (None, "lr", "ud")  # the original, its left-right and its up-down mirror


def flip_views(rgb: np.ndarray) -> list[np.ndarray]:
    """The (H, W, 3) image and its mirrors, in the order of :data:`FLIPS` (contiguous copies)."""
    return [rgb, np.ascontiguousarray(rgb[:, ::-1]), np.ascontiguousarray(rgb[::-1])]


def unflip(det: np.ndarray, flip: str | None, width: int, height: int) -> np.ndarray:
    """Map ``(K, 6)`` detections found on a mirrored view back to the original frame."""
    out = np.array(det, dtype=np.float32, copy=True).reshape(-1, 6)
    if flip == "lr":
        out[:, [0, 2]] = width - out[:, [2, 0]]
    elif flip == "ud":
        out[:, [1, 3]] = height - out[:, [3, 1]]
    return out


def merge_views(views: list[np.ndarray], iou: float) -> np.ndarray:
    """One ``(M, 6)`` array from per-view ``(K, 6)`` detections (already in the original frame):
    greedy by score within each class; the score is the mean over views of each view's best score
    in the group.  Sorted by descending score."""
    n = len(views)
    parts = [np.asarray(v, dtype=np.float32).reshape(-1, 6) for v in views]
    det = np.concatenate(parts) if parts else np.zeros((0, 6), np.float32)
    if len(det) == 0:
        return np.zeros((0, 6), np.float32)
    view = np.concatenate([np.full(len(p), k) for k, p in enumerate(parts)])
    overlap = box_iou(det[:, :4], det[:, :4])
    used = np.zeros(len(det), bool)
    out = []
    for i in np.argsort(-det[:, 4], kind="stable"):
        if used[i]:
            continue
        group = np.where(~used & (det[:, 5] == det[i, 5]) & (overlap[i] > iou))[0]
        group = np.union1d(group, [i])
        used[group] = True
        best = np.zeros(n, np.float32)
        for j in group:
            best[view[j]] = max(best[view[j]], det[j, 4])
        out.append(np.r_[det[i, :4], best.mean(), det[i, 5]])
    merged = np.array(out, dtype=np.float32).reshape(-1, 6)
    return merged[np.argsort(-merged[:, 4], kind="stable")]
