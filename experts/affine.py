"""2x3 affine matrices and the image operations around them (OpenCV does the math).

Convention (as in ``experts.registration``): a 2x3 affine maps a **prior pixel (x, y) to a current
pixel** (``[x', y'] = A [x, y] + t``), original-image pixels, origin top-left, x right, y down.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "to_gray", "normalise_exposure", "shrink", "homogeneous", "scale_matrix", "invert", "compose", "decompose",
    "transform_points", "stretch_matrix", "corner_error", "warp_image", "warp_mask", "ncc",
]


def to_gray(pixels: np.ndarray) -> np.ndarray:
    """uint8 (H, W) from uint8 (H, W) or RGB (H, W, 3)."""
    import cv2

    if pixels.ndim == 2:
        return pixels.astype(np.uint8, copy=False)
    return cv2.cvtColor(pixels.astype(np.uint8, copy=False), cv2.COLOR_RGB2GRAY)


def normalise_exposure(gray: np.ndarray, clip: float = 2.0, tiles: int = 8) -> np.ndarray:
    """CLAHE: local histogram equalisation, so exposure and contrast changes matter less."""
    import cv2

    return cv2.createCLAHE(clipLimit=clip, tileGridSize=(tiles, tiles)).apply(gray)


def shrink(gray: np.ndarray, work_size: int) -> tuple[np.ndarray, float]:
    """Resize so the longer side is ``work_size``; returns (image, factor small/full)."""
    import cv2

    h, w = gray.shape
    s = min(1.0, work_size / max(h, w))
    if s >= 1.0:
        return gray, 1.0
    small = cv2.resize(gray, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return small, small.shape[1] / w


def homogeneous(m: np.ndarray) -> np.ndarray:
    """2x3 -> 3x3 homogeneous."""
    return np.vstack([np.asarray(m, dtype=np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])


def scale_matrix(s: float) -> np.ndarray:
    return np.array([[s, 0.0, 0.0], [0.0, s, 0.0], [0.0, 0.0, 1.0]])


def invert(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine."""
    return np.linalg.inv(homogeneous(matrix))[:2]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """``outer . inner`` of two 2x3 affines (apply ``inner`` first)."""
    return (homogeneous(outer) @ homogeneous(inner))[:2]


def decompose(matrix: np.ndarray) -> tuple[float, float, float, float]:
    """(dx, dy, rotation_deg, scale) of a 2x3 affine; rotation and scale of its closest similarity."""
    a = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    # closest similarity [[p, -q], [q, p]] in the least-squares sense
    p = (a[0, 0] + a[1, 1]) / 2.0
    q = (a[1, 0] - a[0, 1]) / 2.0
    rot = math.degrees(math.atan2(q, p))
    scale = math.sqrt(abs(float(np.linalg.det(a[:, :2]))))
    return float(a[0, 2]), float(a[1, 2]), -rot, scale  # y down: screen-counter-clockwise is negative atan2


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (N, 2) x, y points."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    a = np.asarray(matrix, dtype=np.float64).reshape(2, 3)
    return pts @ a[:, :2].T + a[:, 2]


def stretch_matrix(prior_shape: tuple[int, int], current_shape: tuple[int, int]) -> np.ndarray:
    """The affine that stretches the prior frame onto the current frame ((H, W) shapes)."""
    (hp, wp), (hc, wc) = prior_shape[:2], current_shape[:2]
    return np.array([[wc / wp, 0.0, 0.0], [0.0, hc / hp, 0.0]])


def corner_error(estimated: np.ndarray, true: np.ndarray, prior_shape: tuple[int, int]) -> float:
    """Mean distance (current pixels) between the prior's four corners mapped by each matrix."""
    h, w = prior_shape[:2]
    corners = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    d = transform_points(estimated, corners) - transform_points(true, corners)
    return float(np.linalg.norm(d, axis=1).mean())


def warp_image(image: np.ndarray, matrix: np.ndarray, shape: tuple[int, int], *, nearest: bool = False,
               border: int = 0) -> np.ndarray:
    """Warp a prior-frame image (H, W) or (H, W, C) into the current frame of ``shape`` (H, W)."""
    import cv2

    flags = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    return cv2.warpAffine(image, np.asarray(matrix, dtype=np.float64).reshape(2, 3), (int(shape[1]), int(shape[0])),
                          flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def warp_mask(mask: np.ndarray, matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Warp a bool prior mask into the current frame: bool (H, W) of ``shape`` (bilinear, >= 0.5)."""
    warped = warp_image(mask.astype(np.float32), matrix, shape)
    return warped >= 0.5


def ncc(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Zero-mean normalised cross-correlation of two same-size images, inside ``mask`` if given."""
    x = a.astype(np.float64)
    y = b.astype(np.float64)
    if mask is not None:
        x, y = x[mask], y[mask]
    else:
        x, y = x.ravel(), y.ravel()
    if x.size < 16:
        return 0.0
    x = x - x.mean()
    y = y - y.mean()
    den = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else 0.0
