"""Classical blood-smear cell counter (no weights): nucleus stain, connected components, Hough circles.

Method (``hsv-cc-v2``), on a Wright/Giemsa-stained smear in RGB (pure functions below, one
parameter set :class:`BloodParams`):

* **Stain components** (:func:`stain_components`): pixels with saturation > 60 and hue in 100..170
  (OpenCV scale: the purple nuclear stain) are opened (3 px), closed with a ``close_px`` disc to join
  nuclear lobes, and split into 8-connected components with their area, mean saturation and value.
* **WBC** (:func:`wbc_cells`): components of >= ``wbc_area`` px with mean saturation >= ``wbc_s``
  are nuclei; nuclei whose boxes overlap after growing by ``merge_gap`` px are lobes of one cell;
  a cell that touches the image border with less than ``edge_area`` px of nucleus is not counted
  (a cell mostly outside the field: the BCCD annotators leave those out).  The box is the nucleus
  box grown by 35 % per side (the whole cell).
* **Platelets** (:func:`platelet_blobs`): components of ``plt_area``..``wbc_area`` px with mean
  saturation >= ``plt_s`` and mean value >= ``plt_v``, farther than 20 px from a WBC nucleus.
* **RBC**: Hough circles (radius 25..60 px, min distance 45 px, accumulator 21) on the median
  filtered grey image, minus circles centred inside a WBC box.  RBC counts are rough.

The defaults are what a grid search picks on the 292 BCCD dev smears; ``osler bench counts-cv`` runs
the same search inside 5-fold cross-validation (tuned on the training folds only, scored on the held-out
fold; numbers per fold in ``experts/weights/bccd_yolo.md``).  Images at another magnification are scaled to the 640 px BCCD field first.  Scores are
heuristic margins from those thresholds, not calibrated probabilities.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from tools.common import Provenance
from tools.settings import OslerSettings
from tools.targets import BLOOD_CELLS

from .imaging import StudyImage
from .protocols import Detections

__all__ = ["BloodCellOpenCV", "BloodParams", "Component", "stain_components", "wbc_cells", "platelet_blobs", "build"]

_S_MIN, _H_LO, _H_HI = 60, 100, 170
_REF_WIDTH = 640
Box4 = tuple[float, float, float, float]


@dataclass(frozen=True)
class BloodParams:
    """Thresholds of the classical counter (pixels at the 640 px BCCD field; saturation/value 0..255)."""

    close_px: int = 11  # disc that closes the stain mask (joins nuclear lobes); 15, 11 or 9 in the CV grid
    wbc_area: int = 3000  # min nucleus component area
    wbc_s: float = 70.0  # min mean saturation of a nucleus
    merge_gap: int = 0  # nuclei whose boxes are within this many px are one cell
    edge_area: int = 6000  # a cell touching the border needs this much nucleus to count
    plt_area: int = 100  # min platelet component area
    plt_s: float = 66.0  # min mean saturation of a platelet
    plt_v: float = 190.0  # min mean value (brightness) of a platelet


@dataclass(frozen=True)
class Component:
    """One connected component of the stain mask; ``box`` xyxy (exclusive max) in work pixels."""

    area: int
    mean_s: float
    mean_v: float
    box: Box4
    centroid: tuple[float, float]
    touches_edge: bool


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def stain_components(rgb: np.ndarray, close_px: int = BloodParams.close_px, min_area: int = 30) -> list[Component]:
    """Components of the purple-stain mask of an (H, W, 3) uint8 RGB smear (closed with a ``close_px``
    disc), ``min_area`` px and up."""
    import cv2

    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
    stain = ((s > _S_MIN) & (h > _H_LO) & (h < _H_HI)).astype(np.uint8)
    stain = cv2.morphologyEx(stain, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    stain = cv2.morphologyEx(stain, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (close_px,) * 2))
    n, lab, stats, cents = cv2.connectedComponentsWithStats(stain, connectivity=8)
    H, W = stain.shape
    out = []
    for i in range(1, n):
        area = int(stats[i, cv2.CC_STAT_AREA])
        if area < min_area:
            continue
        sel = lab == i
        x, y, w, hh = (int(stats[i, k]) for k in (0, 1, 2, 3))
        out.append(Component(area=area, mean_s=float(s[sel].mean()), mean_v=float(v[sel].mean()),
                             box=(float(x), float(y), float(x + w), float(y + hh)),
                             centroid=(float(cents[i][0]), float(cents[i][1])),
                             touches_edge=x <= 0 or y <= 0 or x + w >= W or y + hh >= H))
    return out


def _near(a: Box4, b: Box4, gap: float) -> bool:
    return a[0] - gap <= b[2] and b[0] - gap <= a[2] and a[1] - gap <= b[3] and b[1] - gap <= a[3]


def wbc_cells(comps: list[Component], shape: tuple[int, int], p: BloodParams) -> list[tuple[Box4, Box4, float]]:
    """WBC as ``(cell box, nucleus box, score)``: nuclei merged into cells, edge fragments dropped."""
    nuclei = [c for c in comps if c.area >= p.wbc_area and c.mean_s >= p.wbc_s]
    groups: list[list[Component]] = []
    for c in nuclei:  # union of every group this nucleus is near
        near = [g for g in groups if any(_near(c.box, o.box, p.merge_gap) for o in g)]
        merged = [c] + [o for g in near for o in g]
        groups = [g for g in groups if not any(g is n for n in near)] + [merged]
    H, W = shape
    out = []
    for g in groups:
        area = sum(c.area for c in g)
        if any(c.touches_edge for c in g) and area < p.edge_area:
            continue
        x0, y0 = min(c.box[0] for c in g), min(c.box[1] for c in g)
        x1, y1 = max(c.box[2] for c in g), max(c.box[3] for c in g)
        gx, gy = 0.35 * (x1 - x0), 0.35 * (y1 - y0)
        cell = (max(0.0, x0 - gx), max(0.0, y0 - gy), min(float(W), x1 + gx), min(float(H), y1 + gy))
        s = sum(c.mean_s * c.area for c in g) / area
        out.append((cell, (x0, y0, x1, y1), _sigmoid((s - p.wbc_s) / 8)))
    return out


def platelet_blobs(comps: list[Component], nuclei: list[Box4], shape: tuple[int, int], p: BloodParams
                   ) -> list[tuple[Box4, float]]:
    """Platelets as ``(box, score)``: small stained blobs away from WBC nuclei."""
    H, W = shape
    out = []
    for c in comps:
        if not p.plt_area <= c.area < p.wbc_area or c.mean_s < p.plt_s or c.mean_v < p.plt_v:
            continue
        cx, cy = c.centroid
        if any(b[0] - 20 <= cx <= b[2] + 20 and b[1] - 20 <= cy <= b[3] + 20 for b in nuclei):
            continue
        x0, y0, x1, y1 = c.box
        out.append(((max(0.0, x0 - 3), max(0.0, y0 - 3), min(float(W), x1 + 3), min(float(H), y1 + 3)),
                    _sigmoid((c.mean_s - p.plt_s) / 6 + 1.0)))
    return out


def _rbc_circles(work: np.ndarray, wbc_boxes: list[Box4]) -> list[Box4]:
    import cv2

    H, W = work.shape[:2]
    gray = cv2.medianBlur(cv2.cvtColor(work, cv2.COLOR_RGB2GRAY), 5)
    circles = cv2.HoughCircles(gray, cv2.HOUGH_GRADIENT, dp=1.2, minDist=45, param1=60, param2=21,
                               minRadius=25, maxRadius=60)
    out = []
    for cx, cy, r in circles[0] if circles is not None else []:
        if any(b[0] <= cx <= b[2] and b[1] <= cy <= b[3] for b in wbc_boxes):
            continue
        box = (max(0.0, cx - r), max(0.0, cy - r), min(float(W), cx + r), min(float(H), cy + r))
        if box[2] - box[0] >= 4 and box[3] - box[1] >= 4:
            out.append(box)
    return out


class BloodCellOpenCV:
    """Detector protocol implementation for blood smears (RBC, WBC, Platelets)."""

    name = "blood_cell_detector"
    backend = "opencv"
    model_id = "hsv-cc-v2"
    classes = BLOOD_CELLS.labels  # ("RBC", "WBC", "Platelets"): tools.targets.BLOOD_CELLS
    default_min_score = 0.5
    thread_safe = True  # a pure function of the image (experts.handles: no lock)

    def __init__(self, params: BloodParams | None = None) -> None:
        self.params = params or BloodParams()

    def load(self) -> None:  # nothing to read
        return None

    def predict(self, image: StudyImage, *, min_score: float | None = None) -> Detections:
        import cv2

        t0 = time.perf_counter()
        thr = self.default_min_score if min_score is None else min_score
        rgb = image.pixels
        scale = _REF_WIDTH / rgb.shape[1] if rgb.shape[1] > 1.5 * _REF_WIDTH else 1.0
        work = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale != 1.0 else rgb
        shape = work.shape[:2]
        comps = stain_components(work, self.params.close_px)
        cells = wbc_cells(comps, shape, self.params)
        plts = platelet_blobs(comps, [n for _, n, _ in cells], shape, self.params)
        rbcs = _rbc_circles(work, [c for c, _, _ in cells])
        boxes = [c for c, _, _ in cells] + [b for b, _ in plts] + rbcs
        scores = [s for _, _, s in cells] + [s for _, s in plts] + [0.6] * len(rbcs)
        rbc, wbc, plt = self.classes
        labels = [wbc] * len(cells) + [plt] * len(plts) + [rbc] * len(rbcs)
        arr = np.array(boxes, dtype=np.float32).reshape(-1, 4) / scale
        sc = np.array(scores, dtype=np.float32)
        keep = sc >= thr
        prov = Provenance(
            expert=self.name, backend=self.backend, model=self.model_id, device="cpu",
            elapsed_ms=(time.perf_counter() - t0) * 1000,
            note="classical OpenCV pipeline (no learned weights); scores are heuristic margins",
        )
        return Detections(boxes=arr[keep], scores=sc[keep], labels=[l for l, k in zip(labels, keep) if k],
                          min_score=thr, provenance=prov)


def build(settings: OslerSettings) -> BloodCellOpenCV:
    return BloodCellOpenCV()
