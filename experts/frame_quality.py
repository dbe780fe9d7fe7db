"""Is an endoscopy frame degraded beyond what the polyp detector was checked on?  Two measures of the lit field
(pixels brighter than 20 of 255), each with a limit set from every development frame (150 EndoTect frames):

* **noise**: Immerkaer's estimate of the noise standard deviation (the mean absolute response of a Laplacian
  difference kernel, scaled); development frames 0.4-6.9, a frame with camera noise of sigma 15 about 10;
* **scan lines**: the median second difference of the row means (a line pattern of a bad cable, an interlaced
  capture, a screen photographed); development frames 0.1-1.6, every 4th row darkened 3-42;
* **proportions**: width over height; development frames 1.08-1.79 (4:3, 5:4, 16:9 and near-square crops), so a
  frame wider than 2.4:1 or narrower than 1:2 has been stretched or cut (a probe's negative frame stretched 3:1 had
  been counted '1 polyp').

A frame beyond a limit still gets its detections; the detector's :class:`~tools.common.Provenance` then carries a
``doubt`` and the answer says "Uncertain:" with the reason.  A probe's frames with scan lines or camera noise had
been answered "No. I count 0 polyps" with the polyp in plain view.  Tone (gamma) is not measured here: bright and dark
frames overlap the development range.  Limits and measurement: ``osler bench frame-quality``.

Per box, :func:`flat_boxes` asks whether a detection lies on tissue at all: the grey-level spread of the box's central
half.  Every annotated polyp of the 140 EndoTect polyp frames here (146 polyps, the 28 held-out frames among them;
also after JPEG quality 30 and a halved resolution) spreads 10-71 grey levels there; a flat painted mark or an on-screen graphic
(a record dot, a marker) 0-1, and a probe's red disc painted on a negative frame had been counted "1 polyp"."""

from __future__ import annotations

import numpy as np

__all__ = ["frame_stats", "frame_doubt", "flat_boxes", "NOISE_LIMIT", "SCAN_LIMIT", "ASPECT_RANGE", "FLAT_LIMIT"]

NOISE_LIMIT = 8.9
"""1.3 x the noisiest development frame (6.87)."""
SCAN_LIMIT = 2.4
"""1.5 x the most line-patterned development frame (1.58)."""
ASPECT_RANGE = (0.5, 2.4)
"""Width / height a frame may have: development frames span 1.08-1.79; a portrait or square crop, 16:9 and the
wide frames of some capture cards fit inside, a stretched picture does not."""
FLAT_LIMIT = 3.0
"""Grey-level standard deviation of a box's central half below which the box is a flat mark, not tissue: the
flattest annotated polyp spreads 10.0 (after a halved resolution; 11.3 as recorded)."""
_LIT = 20


def frame_stats(rgb: np.ndarray) -> tuple[float, float]:
    """(noise sigma, scan-line strength) of the lit field of an RGB uint8 frame."""
    import cv2

    g = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float64)
    if min(g.shape) < 8:
        return 0.0, 0.0
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float64)
    response = cv2.filter2D(g, -1, kernel)[1:-1, 1:-1]
    lit = g[1:-1, 1:-1] > _LIT
    sigma = float(np.sqrt(np.pi / 2) * np.abs(response[lit]).mean() / 6) if lit.any() else 0.0
    mask = g > _LIT
    counts = mask.sum(axis=1)
    sums = (g * mask).sum(axis=1)
    rows = sums[counts > 10] / counts[counts > 10]
    scan = float(np.median(np.abs(rows[1:-1] - (rows[:-2] + rows[2:]) / 2))) if len(rows) > 2 else 0.0
    return sigma, scan


def frame_doubt(rgb: np.ndarray) -> str | None:
    """Why detections on this endoscopy frame may be wrong (noise, scan lines or proportions beyond the limits), or
    None."""
    sigma, scan = frame_stats(rgb)
    why = []
    h, w = rgb.shape[:2]
    aspect = w / max(h, 1)
    if not ASPECT_RANGE[0] <= aspect <= ASPECT_RANGE[1]:
        why.append(f"proportions {aspect:.2f}:1 where development frames are 1.08-1.79:1, so the picture looks "
                   f"stretched or cut")
    if sigma > NOISE_LIMIT:
        why.append(f"noise sigma about {sigma:.0f} (development frames up to 7)")
    if scan > SCAN_LIMIT:
        why.append(f"a pattern of scan lines (strength {scan:.1f}, development frames up to 1.6)")
    if not why:
        return None
    return (f"the frame is degraded beyond what the polyp detector was checked on ({'; '.join(why)}), so polyps may "
            f"be missed or invented")


def flat_boxes(rgb: np.ndarray, boxes: np.ndarray) -> list[float | None]:
    """Per box (xyxy pixels): the grey-level standard deviation of its central half when it is below
    :data:`FLAT_LIMIT` (a flat single-colour mark: paint, a sticker, an on-screen graphic), else None."""
    import cv2

    if not len(boxes):
        return []
    rgb = np.ascontiguousarray(rgb)
    g = (rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).astype(np.float32)  # a grey frame as it is
    h, w = g.shape
    out: list[float | None] = []
    for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
        bw, bh = x1 - x0, y1 - y0
        a, b = int(np.clip(round(x0 + bw / 4), 0, w - 1)), int(np.clip(round(x1 - bw / 4), 0, w))
        c, d = int(np.clip(round(y0 + bh / 4), 0, h - 1)), int(np.clip(round(y1 - bh / 4), 0, h))
        centre = g[c:max(d, c + 1), a:max(b, a + 1)]
        sd = float(centre.std()) if centre.size >= 16 else None  # too small to judge: left to the detector
        out.append(sd if sd is not None and sd < FLAT_LIMIT else None)
    return out
