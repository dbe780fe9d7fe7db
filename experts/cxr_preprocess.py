"""Preprocessing of chest films for the CXR classifier: any dtype / channel count -> normalised network input.

Pure numpy + OpenCV.  ``percentile_normalise`` makes the input independent of bit depth and of any linear
rescaling of the stored values (8-bit, 12/16-bit, float, windowed DICOM); ``preprocess`` is the whole path
used at training (``training/cxr_data.py`` caches its output) and at inference.
"""

from __future__ import annotations

import numpy as np

__all__ = ["percentile_normalise", "to_gray", "content_box", "unframed", "preprocess"]

FRAME_SHARE = 0.8
"""A uniform frame is cut off only when the picture inside it covers less than this share of the image (a film
letterboxed on a wide screen capture); the few-pixel margins of ordinary films stay, as the classifier learnt them."""


def percentile_normalise(gray: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """Any-dtype grey ``(H, W)`` -> float32 in ``[0, 1]``: the ``low`` / ``high`` percentiles map to 0 / 1.

    The same film as 8-bit, 12-bit, 16-bit or float (any linear rescaling of the values) gives the same
    output up to rounding; a constant image gives zeros.
    """
    g = np.asarray(gray, np.float32)
    lo, hi = np.percentile(g, [low, high])
    if not np.isfinite(lo) or not np.isfinite(hi) or hi - lo <= 1e-6 * max(abs(hi), abs(lo), 1.0):
        return np.zeros(g.shape, np.float32)
    return np.clip((g - lo) / (hi - lo), 0.0, 1.0)


def to_gray(img: np.ndarray) -> np.ndarray:
    """``(H, W)`` / ``(H, W, 1)`` / ``(H, W, 3|4)`` of any dtype -> float32 grey ``(H, W)`` (RGB luma)."""
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 3:
        a = a[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    if a.ndim != 2:
        raise ValueError(f"expected an (H, W) or (H, W, C) image, got shape {a.shape}")
    return a.astype(np.float32)


def content_box(image: np.ndarray, tol: int = 10) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the picture without its uniform border rows and columns (rows / columns varying by at
    most ``tol`` grey levels, JPEG ringing allowed); the whole image when it is uniform throughout."""
    g = image.mean(axis=2) if image.ndim == 3 else image.astype(np.float32)
    h, w = g.shape
    row_flat = (g.max(axis=1) - g.min(axis=1)) <= tol
    col_flat = (g.max(axis=0) - g.min(axis=0)) <= tol

    def inner(flat: np.ndarray) -> tuple[int, int]:
        idx = np.flatnonzero(~flat)
        return (int(idx[0]), int(idx[-1]) + 1) if idx.size else (0, flat.size)

    y0, y1 = inner(row_flat)
    x0, x1 = inner(col_flat)
    if y1 - y0 < 2 or x1 - x0 < 2:
        return 0, 0, w, h
    return x0, y0, x1, y1


def unframed(img: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """The film without a wide uniform frame (a letterboxed screen capture: the picture covers less than
    ``FRAME_SHARE`` of the image), and the box it was cut from (None: the image as it is).  A 16:9 capture with
    the film in the middle had been squeezed into the classifier's square input and read as no film it knew."""
    h, w = img.shape[:2]
    x0, y0, x1, y1 = content_box(percentile_normalise(to_gray(img)) * 255)
    if (x1 - x0) * (y1 - y0) >= FRAME_SHARE * h * w:
        return img, None
    return img[y0:y1, x0:x1], (x0, y0, x1, y1)


def preprocess(rgb: np.ndarray, size: int, in_channels: int, mean: list[float], std: list[float],
               intensity: str = "percentile") -> np.ndarray:
    """Image ``(H, W)`` / ``(H, W, 3)`` of any dtype -> float32 ``(C, size, size)`` normalised input.

    ``intensity="percentile"`` (checkpoints trained with it): grey, then per-image percentile
    normalisation to ``[0, 1]`` (:func:`percentile_normalise`) *before* resizing, so bit depth, window and
    format do not change the answer.  ``"uint8"`` (older checkpoints): ``pixel / 255``.  Then resize to a
    ``size`` square (aspect not kept), replicate to ``in_channels`` and apply ``(x - mean) / std``.
    """
    import cv2

    gray = to_gray(rgb)
    if intensity == "percentile":
        unit = percentile_normalise(gray)
    else:
        unit = gray / 255.0
    interp = cv2.INTER_AREA if min(unit.shape[:2]) >= size else cv2.INTER_LINEAR
    small = cv2.resize(unit, (size, size), interpolation=interp).astype(np.float32)
    x = np.repeat(small[None], in_channels, axis=0)
    m = np.asarray(mean, np.float32).reshape(-1, 1, 1)
    s = np.asarray(std, np.float32).reshape(-1, 1, 1)
    return (x - m) / s
