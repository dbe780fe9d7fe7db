"""Promptable segmentation without weights: OpenCV GrabCut from a box and/or points.

A box initialises GrabCut's rectangle; positive/negative points are painted as sure
foreground/background (radius ~1 % of the image).  Points alone use a box around the
positive points grown by 60 %.  The output is the largest connected component that overlaps
the prompt.  Score: None (GrabCut has no confidence).
"""

from __future__ import annotations

import time

import numpy as np

from tools.common import Provenance
from tools.errors import InvalidInputError
from tools.settings import OslerSettings

from .geometry import connected_regions
from .imaging import StudyImage
from .protocols import Masks

__all__ = ["GrabCutSegmenter", "build"]


class GrabCutSegmenter:
    name = "promptable_segmenter"
    backend = "opencv"
    model_id = "grabcut-v1"
    promptable = True

    def __init__(self, iterations: int = 5) -> None:
        self.iterations = iterations

    def load(self) -> None:
        return None

    def predict(
        self,
        image: StudyImage,
        *,
        box: tuple[float, float, float, float] | None = None,
        points: list[tuple[float, float, bool]] | None = None,
    ) -> Masks:
        import cv2

        t0 = time.perf_counter()
        rgb = image.pixels
        H, W = rgb.shape[:2]
        pos = [(x, y) for x, y, p in (points or []) if p]
        if box is None:
            if not pos:
                raise InvalidInputError("GrabCut needs a box or at least one positive point")
            xs, ys = [p[0] for p in pos], [p[1] for p in pos]
            half = max(0.08 * min(H, W), 0.6 * max(max(xs) - min(xs), max(ys) - min(ys)))
            box = (min(xs) - half, min(ys) - half, max(xs) + half, max(ys) + half)
        x0, y0 = int(max(0, np.floor(box[0]))), int(max(0, np.floor(box[1])))
        x1, y1 = int(min(W, np.ceil(box[2]))), int(min(H, np.ceil(box[3])))
        if x1 - x0 < 3 or y1 - y0 < 3:
            raise InvalidInputError(f"prompt box {box} is too small or outside the {W}x{H} image")
        # work on a margin-padded crop for speed on large images
        mx, my = max(10, (x1 - x0) // 2), max(10, (y1 - y0) // 2)
        cx0, cy0, cx1, cy1 = max(0, x0 - mx), max(0, y0 - my), min(W, x1 + mx), min(H, y1 + my)
        crop = np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1, ::-1])
        scale = min(1.0, 512 / max(crop.shape[:2]))
        if scale < 1.0:
            crop = cv2.resize(crop, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        mask = np.full(crop.shape[:2], cv2.GC_BGD, np.uint8)
        rx0, ry0 = int((x0 - cx0) * scale), int((y0 - cy0) * scale)
        rx1, ry1 = int((x1 - cx0) * scale), int((y1 - cy0) * scale)
        mask[ry0:ry1, rx0:rx1] = cv2.GC_PR_FGD
        radius = max(2, int(0.01 * max(crop.shape[:2])))
        for x, y, p in points or []:
            px, py = int((x - cx0) * scale), int((y - cy0) * scale)
            if 0 <= px < crop.shape[1] and 0 <= py < crop.shape[0]:
                cv2.circle(mask, (px, py), radius, int(cv2.GC_FGD if p else cv2.GC_BGD), -1)
        bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
        cv2.grabCut(crop, mask, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
        fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
        if scale < 1.0:
            fg = cv2.resize(fg.astype(np.uint8), (cx1 - cx0, cy1 - cy0), interpolation=cv2.INTER_NEAREST).astype(bool)
        full = np.zeros((H, W), dtype=bool)
        full[cy0:cy1, cx0:cx1] = fg
        regions = connected_regions(full, min_area=16)
        chosen: list[np.ndarray] = []
        if regions:
            anchor = [(int(y), int(x)) for x, y in pos] or [(int((y0 + y1) / 2), int((x0 + x1) / 2))]
            hits = [r for r in regions if any(0 <= a < H and 0 <= b < W and r[a, b] for a, b in anchor)]
            chosen = [hits[0] if hits else regions[0]]
        prov = Provenance(
            expert=self.name, backend=self.backend, model=self.model_id, device="cpu",
            elapsed_ms=(time.perf_counter() - t0) * 1000, note="classical GrabCut (no learned weights)",
        )
        return Masks(masks=chosen, labels=["region"] * len(chosen), scores=[None] * len(chosen), provenance=prov)


def build(settings: OslerSettings) -> GrabCutSegmenter:
    return GrabCutSegmenter()
