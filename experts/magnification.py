"""Magnification of a smear against the one the cell detector was trained at, read from the cells themselves.

A detector trained on one field of view (BCCD: 640x480 px, red cells about 106 px across) counts wrongly when the
cells are much larger (a high-resolution photo or scan of the field, a higher objective: 8000 px gave 76 white cells
for 1) or smaller (a lower objective: a half-size field gave 0 white cells for 1); tiling a large image does not help,
because each tile is then a magnified view.  The red cells are the ruler: their median box side, from one quick
pass on the image scaled to the training field, against its value at training magnification.  Outside the band
the image is resampled so the cells have their training size, detected there, and the boxes are mapped back; far
outside it the image is refused.  ``osler bench magnification`` measures it on smears the detector never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Ruler", "median_side", "resample"]


@dataclass(frozen=True)
class Ruler:
    """A reference class and its median box side (px) at training magnification, with the band of ratios read as
    'the training magnification' and the lowest ratio that can be resampled at all."""

    label: str
    side_px: float
    band: tuple[float, float] = (0.75, 1.33)
    lowest: float = 0.4
    min_count: int = 5

    def doubt(self) -> str:
        """Why counts are in doubt when the ruler found too few of its class (noise, another stain or colour order,
        heavy compression, another magnification: 4 of 292 development smears show this)."""
        return (f"fewer than {self.min_count} whole {self.label} were found, which 288 of 292 development smears "
                f"show: the image may be noisier, compressed, coloured or stained differently, or at another "
                f"magnification than the smears the detector was validated on, so its counts may be wrong")

    def note(self, ratio: float | None, scale: float | None, seen: float | None = None) -> str:
        if ratio is None:
            return f"magnification not checked (fewer than {self.min_count} {self.label} seen whole)"
        if scale is None:
            at = "" if seen is None or abs(seen - ratio) < 1e-6 else f", {seen:.2f}x once the image is scaled to one field"
            return f"{self.label} size {ratio:.2f}x that at training magnification{at}: read as is"
        return (f"{self.label} {ratio:.2f}x their size at training magnification (median side "
                f"{ratio * self.side_px:.0f} px against {self.side_px:.0f}): the image was resampled by {scale:.2f} "
                f"before detection and the boxes mapped back")


def median_side(boxes: np.ndarray, labels: list[str], label: str, shape: tuple[int, ...], min_count: int,
                edge: float = 2.0) -> float | None:
    """Median of (width + height) / 2 of the boxes of ``label`` that do not touch the image border; None when fewer
    than ``min_count`` are left."""
    h, w = shape[:2]
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)[np.asarray(labels) == label] if len(labels) else \
        np.zeros((0, 4), np.float32)
    inside = (b[:, 0] > edge) & (b[:, 1] > edge) & (b[:, 2] < w - edge) & (b[:, 3] < h - edge)
    b = b[inside]
    if len(b) < min_count:
        return None
    return float(np.median(((b[:, 2] - b[:, 0]) + (b[:, 3] - b[:, 1])) / 2))


def resample(rgb: np.ndarray, scale: float) -> np.ndarray:
    """``rgb`` scaled by ``scale`` (area averaging when shrinking, linear when enlarging)."""
    import cv2

    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
