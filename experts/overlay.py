"""Drawing overlays: numbered boxes, translucent masks with outlines, side-by-side panels.

Inputs are uint8 RGB ``(H, W, 3)`` arrays; outputs are new arrays (inputs are not modified).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["PALETTE", "color_for", "draw_boxes", "draw_masks", "draw_prompts", "draw_heatmap", "side_by_side",
           "save_png", "recompress_png"]

PALETTE: dict[str, tuple[int, int, int]] = {
    "WBC": (255, 215, 0),
    "RBC": (220, 40, 40),
    "Platelets": (30, 144, 255),
    "polyp": (0, 255, 127),
    "lung": (0, 191, 255),
    "new": (255, 64, 64),
    "resolved": (128, 128, 128),
    "grown": (255, 140, 0),
    "shrunk": (65, 105, 225),
    "unchanged": (60, 179, 113),
}


def color_for(label: str) -> tuple[int, int, int]:
    if label in PALETTE:
        return PALETTE[label]
    h = sum(ord(c) * 31 for c in label)
    return (80 + h % 170, 80 + (h // 7) % 170, 80 + (h // 49) % 170)


def _text(img: np.ndarray, text: str, org: tuple[int, int], color: tuple[int, int, int], scale: float) -> None:
    import cv2

    thick = max(1, int(round(scale * 2)))
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thick, cv2.LINE_AA)


def draw_boxes(
    pixels: np.ndarray, items: list[tuple[int, str, tuple[float, float, float, float]]], title: str | None = None
) -> np.ndarray:
    """Boxes numbered as ``items`` say: (index, label, xyxy)."""
    import cv2

    out = pixels.copy()
    scale = max(0.4, min(out.shape[:2]) / 900)
    for index, label, (x0, y0, x1, y1) in items:
        c = color_for(label)
        cv2.rectangle(out, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), c, max(1, int(scale * 3)))
        _text(out, f"{index}", (int(x0) + 2, max(int(y0) - 4, 12)), c, scale)
    if title:
        _text(out, title, (8, int(24 * scale / 0.6)), (255, 255, 255), scale)
    return out


def draw_masks(
    pixels: np.ndarray, masks: list[tuple[int, str, np.ndarray]], alpha: float = 0.35, title: str | None = None
) -> np.ndarray:
    """Translucent fill plus outline per mask: (index, label, bool mask)."""
    import cv2

    out = pixels.astype(np.float32)
    scale = max(0.4, min(pixels.shape[:2]) / 900)
    outlines = []
    for index, label, mask in masks:
        c = np.array(color_for(label), dtype=np.float32)
        m = mask.astype(bool)
        out[m] = out[m] * (1 - alpha) + c * alpha
        outlines.append((index, label, m))
    img = np.clip(out, 0, 255).astype(np.uint8)
    for index, label, m in outlines:
        contours, _ = cv2.findContours(m.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(img, contours, -1, color_for(label), max(1, int(scale * 3)))
        ys, xs = np.nonzero(m)
        if len(xs):
            _text(img, str(index), (int(xs.mean()), int(ys.mean())), (255, 255, 255), scale)
    if title:
        _text(img, title, (8, int(24 * scale / 0.6)), (255, 255, 255), scale)
    return img


def draw_prompts(
    pixels: np.ndarray,
    boxes: Sequence[tuple[float, float, float, float]] = (),
    points: Sequence[tuple[float, float, bool]] = (),
) -> np.ndarray:
    """The prompts a segmenter was given, on a copy: boxes as thin white rectangles, positive points as green
    circled crosses, negative points as red crosses (so a reader sees where the click or box was)."""
    import cv2

    img = pixels.copy()
    scale = max(0.4, min(pixels.shape[:2]) / 900)
    t = max(2, int(round(3 * scale)))
    r = max(8, int(round(18 * scale)))
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(img, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), (255, 255, 255), t)
    for x, y, positive in points:  # a black halo under each marker keeps it visible on any mask colour
        c = (int(round(x)), int(round(y)))
        marker, color = (cv2.MARKER_CROSS, (0, 255, 0)) if positive else (cv2.MARKER_TILTED_CROSS, (255, 0, 0))
        for col, width in (((0, 0, 0), t + 2), (color, t)):
            if positive:
                cv2.circle(img, c, r, col, width)
            cv2.drawMarker(img, c, col, marker, 2 * r, width)
    return img


def draw_heatmap(pixels: np.ndarray, heat: np.ndarray, title: str | None = None, alpha: float = 0.45) -> np.ndarray:
    """Blend a [0, 1] heat map (any size; resized) over the image with a JET colour map."""
    import cv2

    h, w = pixels.shape[:2]
    heat = cv2.resize(np.clip(heat, 0, 1).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    colored = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
    out = (pixels.astype(np.float32) * (1 - alpha) + colored.astype(np.float32) * alpha).astype(np.uint8)
    if title:
        _text(out, title, (8, 24), (255, 255, 255), max(0.4, min(h, w) / 900))
    return out


def side_by_side(left: np.ndarray, right: np.ndarray, labels: tuple[str, str] = ("prior", "current")) -> np.ndarray:
    """Two panels at the same height, captioned."""
    import cv2

    h = max(left.shape[0], right.shape[0])

    def fit(img: np.ndarray) -> np.ndarray:
        s = h / img.shape[0]
        return cv2.resize(img, (max(1, int(round(img.shape[1] * s))), h), interpolation=cv2.INTER_AREA)

    a, b = fit(left), fit(right)
    gap = np.full((h, 8, 3), 255, dtype=np.uint8)
    out = np.concatenate([a, gap, b], axis=1)
    scale = max(0.5, h / 900)
    _text(out, labels[0], (10, int(30 * scale)), (255, 255, 255), scale)
    _text(out, labels[1], (a.shape[1] + 18, int(30 * scale)), (255, 255, 255), scale)
    return out


def save_png(path: str, pixels: np.ndarray, *, fast: bool = False) -> None:
    """Write RGB (H, W, 3) or gray (H, W) uint8 as PNG.  ``fast``: stored without row filters or deflate
    (a 720x576 frame in ~4 ms instead of ~15 ms, ~2.6x the bytes), for a file that must exist now and is
    recompressed later (:func:`recompress_png`)."""
    import cv2

    arr = pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    params: list[int] = []
    if fast:
        params = [cv2.IMWRITE_PNG_COMPRESSION, 0]
        if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.10
            params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    if not cv2.imwrite(str(path), arr, params):
        raise OSError(f"could not write {path}")


def recompress_png(path: str, pixels: np.ndarray) -> bool:
    """Replace the PNG at ``path`` by the same pixels with OpenCV's default compression, atomically (a reader
    sees the old file or the new one, never part of one).  False, and nothing written, when the file is gone
    (its session was deleted) or cannot be replaced."""
    import os

    tmp = f"{path}.compact.png"
    try:
        save_png(tmp, pixels)
        if not os.path.exists(path):
            os.unlink(tmp)
            return False
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False
