"""Intensity normalisation of single-channel images: one display window for every bit depth and format.

The same film stored as 8-bit PNG, 16-bit TIFF (full 16-bit range, or 12 bits inside 16), float TIFF,
or DICOM MONOCHROME1/2 without a window of its own must reach the experts as the same uint8 pixels,
so that no answer depends on the container.  The rule (:func:`default_window`):

1. The window is the container's **nominal range**: ``[0, 2**bits - 1]`` for unsigned integers
   (``bits`` from DICOM BitsStored, else the smallest of 8, 10, 12, 14, 16, 24, 32 bits that holds the
   largest value), ``[-2**(bits-1), 2**(bits-1) - 1]`` for signed ones, ``[0, 1]`` or ``[0, 255]`` for
   floats that lie inside them.  A film that was scaled into a wider container maps back exactly
   onto its 8-bit values (8-bit grey images are therefore unchanged).
2. When the values use too little of that range to be seen (the 0.5-99.5 percentile span covers fewer
   than :data:`MIN_LEVELS` of 256 grey levels; floats outside ``[0, 255]``), the window is the 0.5-99.5
   percentile span instead (the "auto window" of a viewer).

A DICOM ``WindowCenter``/``WindowWidth`` (the sender's choice) is applied before this and wins.
Inversion (MONOCHROME1) commutes with the rule: ``255 - window(v)`` equals the window of the
inverted values.  Pure numpy; used by :mod:`experts.imaging`.
"""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_LEVELS", "default_window", "nominal_range"]

MIN_LEVELS = 32
"""Fewest grey levels (of 256) that the 0.5-99.5 percentile span must cover in the nominal window."""
_BITS = (8, 10, 12, 14, 16, 24, 32)


def nominal_range(values: np.ndarray, *, bits: int | None = None, signed: bool | None = None
                  ) -> tuple[float, float] | None:
    """``(lo, hi)`` of the container that holds ``values``; None for floats outside ``[0, 255]``.

    ``bits``/``signed`` describe stored integers (DICOM BitsStored / PixelRepresentation); without
    them they are read from the dtype and the largest value.
    """
    a = np.asarray(values)
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    if finite.size == 0:
        return None
    vmin, vmax = float(finite.min()), float(finite.max())
    if bits is None and a.dtype.kind == "f":
        if vmin >= 0.0 and vmax <= 1.0:
            return 0.0, 1.0
        if vmin >= 0.0 and vmax <= 255.0 and np.allclose(finite, np.round(finite)):
            return 0.0, 255.0
        return None
    is_signed = bool(signed) if signed is not None else (a.dtype.kind == "i" and vmin < 0)
    if bits is None:
        need = max(abs(vmin), vmax + 1.0) if is_signed else vmax + 1.0
        bits = next((b for b in _BITS if (2.0 ** (b - 1) if is_signed else 2.0 ** b) >= need), 32)
    if is_signed:
        return -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1.0
    return 0.0, 2.0 ** bits - 1.0


def default_window(values: np.ndarray, nominal: tuple[float, float] | None = None) -> tuple[float, float]:
    """``(center, width)`` for :func:`experts.imaging.window_to_uint8` (see the module docstring).

    ``values``: ``(H, W)`` numbers of any dtype; ``nominal``: the container range in the same units
    (e.g. DICOM BitsStored mapped through the rescale), else :func:`nominal_range` of ``values``.
    """
    a = np.asarray(values)
    data = a[np.isfinite(a)] if a.dtype.kind == "f" else a.ravel()
    if data.size == 0:
        return 0.5, 1.0
    lo_p, hi_p = (float(x) for x in np.percentile(data, [0.5, 99.5]))
    rng = nominal if nominal is not None else nominal_range(a)
    if rng is not None:
        lo, hi = rng
        if hi > lo and (hi_p - lo_p) / (hi - lo) * 255.0 >= MIN_LEVELS:
            return (lo + hi) / 2.0, hi - lo
    return (lo_p + hi_p) / 2.0, max(hi_p - lo_p, 1e-6 if a.dtype.kind == "f" else 1.0)

