"""What makes an image unreadable for the diagnosis tools whatever its kind: too small, compressed too hard, or a
montage of one picture.  Each floor was measured on held-out images (``osler bench min-size``, ``osler bench
compression``) or set from the development images' own range; the modality gate (:mod:`experts.modality_gate`)
withholds the tools, with the reason, when one applies."""

from __future__ import annotations

import numpy as np

__all__ = ["MIN_SIDE", "MIN_SIDE_BY_KIND", "MIN_JPEG_QUALITY_BY_KIND", "COPIES_NCC", "too_small", "too_compressed",
           "copies"]

MIN_SIDE = 32
"""Shortest side in pixels below which no diagnosis tool gets an image (:func:`too_small`), whatever its kind or
DICOM tags say.  A Hannover film shrunk to 16x16 had been read as pneumonia at 95 % (the film itself: uncertain,
30.8 %); on 40 films of the gate's tuning groups shrunk to a square, the pneumonia answer changed against the film's
own on 2 of 15 Kermany films at 16 px, 1 at 24 px, none at 32 or 48 px.  The smallest dev films (NIH, 64x64) pass."""

MIN_SIDE_BY_KIND = {"chest_xray": 32, "blood_smear": 48, "endoscopy": 64}
"""Per kind, the smallest shorter side at which the default counter stays within 5 points of its full-size exact
rate on held-out images, and every larger side too (``osler bench min-size``, 2026-12-03): 58 unseen smears, WBC exact
0.966 full size, 0.91 at 32 px, 0.95 at 48; 33 held-out EndoTect frames, polyp count exact 0.970 full size, 0.79 at
32 px, 0.85 at 48, 0.94 at 64.  Chest films: :data:`MIN_SIDE`."""


def too_small(rgb: np.ndarray, kind: str | None = None) -> str | None:
    """Why an image is too small for the diagnosis tools of ``kind`` (shortest side below its
    :data:`MIN_SIDE_BY_KIND`, else :data:`MIN_SIDE`), or None."""
    h, w = rgb.shape[:2]
    need = MIN_SIDE_BY_KIND.get(kind or "", MIN_SIDE)
    if min(h, w) >= need:
        return None
    return (f"the image is only {w}x{h} pixels, too small to read (the tools need at least {need} pixels a side); "
            f"send the image at its full resolution")


MIN_JPEG_QUALITY_BY_KIND = {"chest_xray": 10, "blood_smear": 10, "endoscopy": 10}
"""Per kind, the lowest JPEG quality (libjpeg scale, estimated from the file's quantisation table by
:func:`experts.imaging.jpeg_quality`) at which the default expert stays within 5 points of its rate on the original
file, and at every higher quality too (``osler bench compression``, 2026-12-03, qualities 90 to 5; rule written
before the run): 58 unseen smears WBC exact 0.966 original, 0.93 at 10, 0.83 at 5; 33 held-out EndoTect frames
polyp count exact 0.970, 0.94 at 10, 0.88 at 5; 120 shifted-hold-out Kermany films normal-vs-pneumonia 0.975, 0.99
at 10, 0.89 at 5 with 7 wrong answers given as certain (0-1 at 10 and up).  Every JPEG of the development data is
quality 75 or higher.  A file that is not a JPEG (a PNG saved from a compressed copy) is not checked."""


def too_compressed(quality: int | None, kind: str | None = None) -> str | None:
    """Why a JPEG of estimated ``quality`` is compressed too hard for the diagnosis tools of ``kind`` (below its
    :data:`MIN_JPEG_QUALITY_BY_KIND`), or None (also for a file that is no JPEG: its history is unknown)."""
    need = MIN_JPEG_QUALITY_BY_KIND.get(kind or "", 0)
    if quality is None or quality >= need:
        return None
    return (f"the file is a JPEG compressed to quality {quality} (read from its quantisation table), harder than the "
            f"{(kind or 'image').replace('_', ' ')} tools were checked on (quality {need} and up: detail is lost and "
            f"blocks can look like findings); send the original or a copy saved at a higher quality")


COPIES_NCC = 0.98
"""Correlation of an image's two halves (left / right or top / bottom, 64 x 64 grey) above which it is taken for two
copies of one picture.  Development images: at most 0.94 (a Kermany film; smears 0.45, endoscopy 0.60, Hannover
0.75, NIH 0.82 over 2072 images); a frame or film beside or above itself, or tiled 2 x 2: 1.00."""


def copies(rgb: np.ndarray) -> str | None:
    """Why an image looks like two copies of one picture side by side or stacked, or None.  A negative endoscopy
    frame beside itself had been counted '1 polyp', a polyp frame '2 polyps'; no tool was validated on a montage."""
    import cv2

    g = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float32)
    h, w = g.shape
    if min(h, w) < 16:
        return None
    for where, a, b in (("side by side", g[:, :w // 2], g[:, w - w // 2:]), ("one above the other", g[:h // 2],
                                                                            g[h - h // 2:])):
        a = cv2.resize(a, (64, 64), interpolation=cv2.INTER_AREA).ravel()
        b = cv2.resize(b, (64, 64), interpolation=cv2.INTER_AREA).ravel()
        a, b = a - a.mean(), b - b.mean()
        den = float(np.sqrt((a * a).sum() * (b * b).sum()))
        if den > 1e-6 and float((a * b).sum()) / den > COPIES_NCC:
            return (f"the image looks like two copies of one picture {where} (its halves correlate at "
                    f"{float((a * b).sum()) / den:.2f}); send the single image")
    return None
