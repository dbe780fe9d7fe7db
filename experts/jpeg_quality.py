"""How hard a JPEG was compressed: the libjpeg quality (1-100) its own luminance quantisation table matches.  Read
when an image is loaded (``ImageMeta.jpeg_quality``); the modality gate refuses files below a measured floor
(:data:`experts.input_floors.MIN_JPEG_QUALITY_BY_KIND`)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["jpeg_quality"]

_IJG_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                      14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                      92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)
"""The JPEG standard's example luminance table (Annex K), which libjpeg scales by its quality setting."""


def _ijg_table(quality: int) -> np.ndarray:
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((_IJG_LUMA * scale + 50) / 100), 1, 255)


_IJG_SORTED = {q: np.sort(_ijg_table(q)) for q in range(1, 101)}


def jpeg_quality(im: Any) -> int | None:
    """The libjpeg quality (1-100) whose luminance table is closest to the first quantisation table of the PIL
    image ``im`` (exact for files written by libjpeg, PIL, OpenCV; the nearest equivalent for cameras' own tables),
    or None when ``im`` is not a JPEG.  Values are compared sorted, so the table's storage order does not matter."""
    tables = getattr(im, "quantization", None)
    if not tables or len(tables.get(0, ())) != 64:
        return None
    t = np.sort(np.asarray(tables[0], np.float64))
    err = {q: float(np.abs(np.log(t) - np.log(ref)).mean()) for q, ref in _IJG_SORTED.items()}
    return min(err, key=lambda q: (err[q], -q))
