"""Colour, layout and texture features of an image, for the modality gate (pure numpy + OpenCV).

``gate_features(rgb)`` takes uint8 RGB ``(H, W, 3)`` (any size) and returns float32
``(FEATURE_DIM,)``.  The image is first squashed to 128x128 and then 64x64 (INTER_AREA), so the
features see layout and colour, not resolution, aspect or file format.  Groups, in order (``FEATURE_GROUPS``):

* ``rgb``      mean and std of R, G, B; mean |R-G|, |G-B|, |R-B| (greyness)          9
* ``hue``      hue histogram weighted by saturation, 12 bins (sums to the mean sat)  12
* ``sat``      saturation histogram, 8 bins                                          8
* ``val``      value (brightness) histogram, 8 bins                                  8
* ``grid_v``   mean value on a 4x4 grid                                              16
* ``grid_s``   mean saturation on a 4x4 grid                                         16
* ``grid_dark`` fraction of near-black pixels (V < 0.1) on a 4x4 grid                16
* ``rings``    mean value and dark fraction in 6 rings around the centre            12
* ``grad``     gradient-magnitude histogram (8 bins) + mean, at 64 and 32 px         18
* ``lbp``      uniform 8-neighbour local binary pattern histogram (10 bins)          10
* ``sym``      left-right and top-bottom correlation of the grey image               2
* ``chroma``   mean a*, b* (CIELAB) of non-dark pixels, fraction of red-dominant px  3
* ``ab_hist``  3x3 histogram of (a*, b*) of non-dark pixels                         9
* ``fine``     at 128 px: mean |Laplacian|, specular-highlight fraction (V > 0.92,
               S < 0.2), near-white fraction, near-black fraction                    4

All values are O(1); the gate standardises them with the training mean/std it stores.
"""

from __future__ import annotations

import numpy as np

__all__ = ["FEATURE_VERSION", "FEATURE_GROUPS", "FEATURE_DIM", "gate_features"]

FEATURE_VERSION = "gate-features-v2"
FEATURE_GROUPS: tuple[tuple[str, int], ...] = (
    ("rgb", 9), ("hue", 12), ("sat", 8), ("val", 8), ("grid_v", 16), ("grid_s", 16), ("grid_dark", 16),
    ("rings", 12), ("grad", 18), ("lbp", 10), ("sym", 2), ("chroma", 3), ("ab_hist", 9), ("fine", 4),
)
FEATURE_DIM = sum(n for _, n in FEATURE_GROUPS)
_SIZE = 64


def _grid(a: np.ndarray, n: int = 4) -> np.ndarray:
    h, w = a.shape
    return a.reshape(n, h // n, n, w // n).mean(axis=(1, 3)).ravel()


def _grad_hist(g: np.ndarray) -> np.ndarray:
    import cv2

    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy)
    hist, _ = np.histogram(np.clip(mag, 0, 2.0), bins=8, range=(0, 2.0))
    return np.concatenate([hist / mag.size, [mag.mean()]])


def _lbp_uniform(g: np.ndarray) -> np.ndarray:
    """Histogram of rotation-invariant uniform LBP codes (P=8, R=1): 0..8 uniform, 9 non-uniform."""
    c = g[1:-1, 1:-1]
    offs = [(-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1)]
    bits = np.stack([(g[1 + dy:g.shape[0] - 1 + dy, 1 + dx:g.shape[1] - 1 + dx] >= c + 0.01) for dy, dx in offs])
    ones = bits.sum(axis=0)
    transitions = (bits != np.roll(bits, 1, axis=0)).sum(axis=0)
    code = np.where(transitions <= 2, ones, 9)
    return np.bincount(code.ravel(), minlength=10)[:10] / code.size


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-9 else 1.0


def gate_features(rgb: np.ndarray) -> np.ndarray:
    """Feature vector ``(FEATURE_DIM,)`` float32 of a uint8 RGB ``(H, W, 3)`` image (grey ``(H, W)`` accepted)."""
    import cv2

    img = np.asarray(rgb)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    img = img[..., :3].astype(np.uint8, copy=False)
    interp = cv2.INTER_AREA if min(img.shape[:2]) >= 2 * _SIZE else cv2.INTER_LINEAR
    mid = cv2.resize(img, (2 * _SIZE, 2 * _SIZE), interpolation=interp)  # 128 px: fine texture
    small = cv2.resize(mid, (_SIZE, _SIZE), interpolation=cv2.INTER_AREA)  # 64 px: everything else
    f = small.astype(np.float32) / 255.0
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV).astype(np.float32)
    h, s, v = hsv[..., 0] / 180.0, hsv[..., 1] / 255.0, hsv[..., 2] / 255.0
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    r, g, b = f[..., 0], f[..., 1], f[..., 2]

    feats: list[np.ndarray] = []
    feats.append(np.array([r.mean(), g.mean(), b.mean(), r.std(), g.std(), b.std(),
                           np.abs(r - g).mean(), np.abs(g - b).mean(), np.abs(r - b).mean()]))
    hue_hist, _ = np.histogram(h, bins=12, range=(0, 1), weights=s)
    feats.append(hue_hist / h.size)
    feats.append(np.histogram(s, bins=8, range=(0, 1))[0] / s.size)
    feats.append(np.histogram(v, bins=8, range=(0, 1))[0] / v.size)
    dark = (v < 0.1).astype(np.float32)
    feats += [_grid(v), _grid(s), _grid(dark)]

    yy, xx = np.mgrid[0:_SIZE, 0:_SIZE].astype(np.float32)
    c = (_SIZE - 1) / 2.0
    rad = np.sqrt((yy - c) ** 2 + (xx - c) ** 2) / (_SIZE / 2.0)
    edges = [0.0, 0.3, 0.55, 0.75, 0.9, 1.0, 1.5]
    ring_v, ring_d = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (rad >= lo) & (rad < hi)
        ring_v.append(v[sel].mean())
        ring_d.append(dark[sel].mean())
    feats.append(np.array(ring_v + ring_d))

    half = cv2.resize(grey, (_SIZE // 2, _SIZE // 2), interpolation=cv2.INTER_AREA)
    feats += [_grad_hist(grey), _grad_hist(half)]
    feats.append(_lbp_uniform(grey))
    feats.append(np.array([_corr(grey, grey[:, ::-1]), _corr(grey, grey[::-1, :])]))

    lab = cv2.cvtColor(f, cv2.COLOR_RGB2LAB)
    lit = v >= 0.1
    a_mean = float(lab[..., 1][lit].mean()) / 50.0 if lit.any() else 0.0
    b_mean = float(lab[..., 2][lit].mean()) / 50.0 if lit.any() else 0.0
    red = float(((r > g + 0.08) & (r > b + 0.08) & lit).mean())
    feats.append(np.array([a_mean, b_mean, red]))
    if lit.any():
        ab, _, _ = np.histogram2d(np.clip(lab[..., 1][lit], -60, 60), np.clip(lab[..., 2][lit], -60, 60),
                                  bins=3, range=[[-60, 60], [-60, 60]])
        feats.append(ab.ravel() / lit.size)
    else:
        feats.append(np.zeros(9))
    mid_hsv = cv2.cvtColor(mid, cv2.COLOR_RGB2HSV)
    mid_grey = cv2.cvtColor(mid, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    mv, ms = mid_hsv[..., 2] / 255.0, mid_hsv[..., 1] / 255.0
    feats.append(np.array([np.abs(cv2.Laplacian(mid_grey, cv2.CV_32F)).mean(), ((mv > 0.92) & (ms < 0.2)).mean(),
                           (mid_grey > 0.95).mean(), (mid_grey < 0.03).mean()]))
    out = np.concatenate([np.asarray(x, np.float32).ravel() for x in feats])
    if out.shape[0] != FEATURE_DIM:  # pragma: no cover - guards edits of the groups above
        raise RuntimeError(f"gate features: {out.shape[0]} values, expected {FEATURE_DIM}")
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
