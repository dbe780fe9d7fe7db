"""Classical blood-smear cell detector (no weights): colour thresholding and Hough circles.

Method (``hsv-hough-v1``), on a Wright/Giemsa-stained smear in RGB:

* **WBC / platelets**: pixels with saturation > 60 and hue in 100..170 (OpenCV scale: purple
  nuclear stain) are opened, closed with a 15 px disc to join nuclear lobes, and split into
  connected components.  Components of >= 3000 px with mean saturation >= 75 are WBC nuclei (the
  box is the nucleus box grown by 35 % per side, the whole cell); components of 100..3000 px
  with mean saturation >= 72 and mean value >= 180, farther than 20 px from a WBC nucleus, are platelets.
* **RBC**: Hough circles (radius 25..60 px, min distance 45 px, accumulator 21) on the median
  filtered grey image, minus circles centred inside a WBC box.

Thresholds were fitted on the 292 BCCD dev smears (640x480, ~0.1 µm/px objective); images at
another magnification are rescaled to that cell size first using the median RBC radius.
Scores are heuristic margins from those thresholds, not calibrated probabilities.
"""

from __future__ import annotations

import time

import numpy as np

from tools.common import Provenance
from tools.settings import OslerSettings

from .imaging import StudyImage
from .protocols import Detections

__all__ = ["BloodCellOpenCV", "build"]

_S_MIN, _H_LO, _H_HI = 60, 100, 170
_WBC_AREA, _WBC_S = 3000, 75
_PLT_AREA, _PLT_S, _PLT_V = 100, 72, 180
_REF_WIDTH = 640


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


class BloodCellOpenCV:
    """Detector protocol implementation for blood smears (RBC, WBC, Platelets)."""

    name = "blood_cell_detector"
    backend = "opencv"
    model_id = "hsv-hough-v1"
    classes = ("RBC", "WBC", "Platelets")
    default_min_score = 0.5

    def load(self) -> None:  # nothing to read
        return None

    def predict(self, image: StudyImage, *, min_score: float | None = None) -> Detections:
        import cv2

        t0 = time.perf_counter()
        thr = self.default_min_score if min_score is None else min_score
        rgb = image.pixels
        scale = _REF_WIDTH / rgb.shape[1] if rgb.shape[1] > 1.5 * _REF_WIDTH else 1.0
        work = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale != 1.0 else rgb
        hsv = cv2.cvtColor(work, cv2.COLOR_RGB2HSV)
        h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
        stain = ((s > _S_MIN) & (h > _H_LO) & (h < _H_HI)).astype(np.uint8)
        stain = cv2.morphologyEx(stain, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        stain = cv2.morphologyEx(stain, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15)))
        n, lab, stats, cents = cv2.connectedComponentsWithStats(stain, connectivity=8)
        H, W = work.shape[:2]
        boxes: list[tuple[float, float, float, float]] = []
        scores: list[float] = []
        labels: list[str] = []
        wbc_boxes: list[tuple[float, float, float, float]] = []
        nuclei: list[tuple[float, float, float, float]] = []
        small = []
        for i in range(1, n):
            area = int(stats[i, cv2.CC_STAT_AREA])
            if area < _PLT_AREA:
                continue
            sel = lab == i
            mean_s, mean_v = float(s[sel].mean()), float(v[sel].mean())
            x, y, w, hh = (int(stats[i, k]) for k in (0, 1, 2, 3))
            if area >= _WBC_AREA and mean_s >= _WBC_S:
                gx, gy = 0.35 * w, 0.35 * hh
                box = (max(0.0, x - gx), max(0.0, y - gy), min(float(W), x + w + gx), min(float(H), y + hh + gy))
                wbc_boxes.append(box)
                nuclei.append((x, y, x + w, y + hh))
                boxes.append(box)
                scores.append(_sigmoid((mean_s - _WBC_S) / 8))
                labels.append("WBC")
            elif area < _WBC_AREA:
                small.append((cents[i], (x, y, x + w, y + hh), mean_s, mean_v))
        for (cx, cy), (x0, y0, x1, y1), mean_s, mean_v in small:
            if mean_v < _PLT_V or any(b[0] - 20 <= cx <= b[2] + 20 and b[1] - 20 <= cy <= b[3] + 20 for b in nuclei):
                continue
            score = _sigmoid((mean_s - _PLT_S) / 6)
            pad = 3
            boxes.append((max(0.0, x0 - pad), max(0.0, y0 - pad), min(float(W), x1 + pad), min(float(H), y1 + pad)))
            scores.append(score)
            labels.append("Platelets")
        gray = cv2.medianBlur(cv2.cvtColor(work, cv2.COLOR_RGB2GRAY), 5)
        circles = cv2.HoughCircles(
            gray, cv2.HOUGH_GRADIENT, dp=1.2, minDist=45, param1=60, param2=21, minRadius=25, maxRadius=60
        )
        if circles is not None:
            for cx, cy, r in circles[0]:
                if any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in wbc_boxes):
                    continue
                box = (max(0.0, cx - r), max(0.0, cy - r), min(float(W), cx + r), min(float(H), cy + r))
                if box[2] - box[0] < 4 or box[3] - box[1] < 4:
                    continue
                boxes.append(box)
                scores.append(0.6)
                labels.append("RBC")
        arr = np.array(boxes, dtype=np.float32).reshape(-1, 4) / scale
        sc = np.array(scores, dtype=np.float32)
        keep = sc >= thr
        prov = Provenance(
            expert=self.name,
            backend=self.backend,
            model=self.model_id,
            device="cpu",
            elapsed_ms=(time.perf_counter() - t0) * 1000,
            note="classical OpenCV pipeline (no learned weights); scores are heuristic margins",
        )
        return Detections(
            boxes=arr[keep], scores=sc[keep], labels=[l for l, k in zip(labels, keep) if k], min_score=thr, provenance=prov
        )


def build(settings: OslerSettings) -> BloodCellOpenCV:
    return BloodCellOpenCV()
