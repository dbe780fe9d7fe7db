"""Is a blood smear's tone outside what the cell counter was checked on?  One measure, the **plasma brightness**:
the median HSV value (V, 0-255) of the least saturated 30 % of pixels, which on a Wright-Giemsa smear are the pale
plasma between the cells.

The 292 development smears (BCCD) lie within 179-208 (median 200): their tone is uniform.  A probe's smears brightened
by 40 levels or given a gamma of 0.5-0.7 lost platelets with no warning (5-9 of 16).  On the 58 smears the detector
never trained on, brightness +40 moves the plasma to 237-247, gamma 0.5 to 223-229, +20 and gamma 0.7 to 212-228,
-40 down to 157-168; contrast x0.7 and gamma 1.5 keep it inside.  The limits widen the development range by half its
reach from the median on each side (the 1.5x margin of :mod:`experts.frame_quality`): 168.5-212.  The doubt marks a
tone the counts were not checked at, not a count known to be wrong: most such counts are still right.

A smear beyond a limit still gets its counts; the detector's :class:`~tools.common.Provenance` then carries a
``doubt`` and the answer says "Uncertain:" with the reason.  Measurement: ``osler bench smear-tone``."""

from __future__ import annotations

import numpy as np

__all__ = ["smear_stats", "smear_doubt", "PLASMA_RANGE"]

PLASMA_RANGE = (168.5, 212.0)
"""Development smears 179-208 (median 200), each side widened by half its distance from the median."""
_DEV = "179-208"
_PIXELS = 320_000  # larger images are read on a regular subsample of about this many pixels (a few ms)


def smear_stats(rgb: np.ndarray) -> float:
    """The plasma brightness of an RGB uint8 smear ``(H, W, 3)``: median V of its least saturated 30 % of pixels."""
    import cv2

    step = max(1, int(np.sqrt(rgb.shape[0] * rgb.shape[1] / _PIXELS)))
    hsv = cv2.cvtColor(np.ascontiguousarray(rgb[::step, ::step, :3]), cv2.COLOR_RGB2HSV)
    s, v = hsv[..., 1].ravel(), hsv[..., 2].ravel()
    return float(np.median(v[s <= np.percentile(s, 30)]))


def smear_doubt(rgb: np.ndarray) -> str | None:
    """Why counts on this smear may be wrong (its plasma brighter or darker than the limits), or None."""
    plasma = smear_stats(rgb)
    lo, hi = PLASMA_RANGE
    if lo <= plasma <= hi:
        return None
    side = "brighter" if plasma > hi else "darker"
    return (f"the smear's plasma background is {side} than in any development smear (brightness {plasma:.0f} of 255, "
            f"development smears {_DEV}), as after a brightness or gamma change, so platelets and other cells may be "
            f"missed and the counts may be wrong")
