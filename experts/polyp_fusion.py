"""Polyp detector that fuses the polyp YOLO with the polyp U-Net (backend ``yolo_unet``).

Rule (:func:`fuse_boxes`, pure; boxes ``xyxy`` in original-image pixels):

1. the YOLO boxes with score >= ``min_score`` (default 0.45), highest first; a box whose intersection
   with a box already kept covers >= ``contain`` (60 %) of the smaller of the two is a part or a
   double of that polyp and is dropped;
2. when no box is left, the U-Net's most confident connected component becomes the one box, if its mean
   probability is >= ``fallback_min`` (0.90); its score is that mean probability.

Chosen by nested cross-validation on the 33 frames held out from both polyp models (3 folds; the grid
also tried accepting low-score YOLO boxes that a U-Net component confirms; the folds picked this simpler
rule): count exact 0.82 / 0.91 / 1.00 on the test folds against 0.82 / 0.73 / 1.00 for the YOLO alone at
0.35, negatives clean in every fold (experts/weights/polyp_yolo.md).  The U-Net runs only when the YOLO
keeps no box.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tools.common import Provenance
from tools.settings import OslerSettings

from .frame_quality import FLAT_LIMIT, flat_boxes, frame_doubt
from .geometry import mask_bbox
from .imaging import StudyImage
from .protocols import Detections

__all__ = ["MIN_SCORE", "FALLBACK_MIN", "CONTAIN", "fuse_boxes", "PolypFusionDetector", "check", "build"]

MIN_SCORE, FALLBACK_MIN, CONTAIN = 0.45, 0.90, 0.6


def _overlap_of_smaller(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection of two boxes over the area of the smaller one (1 when one lies inside the other)."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = max(1e-9, min(float((a[2] - a[0]) * (a[3] - a[1])), float((b[2] - b[0]) * (b[3] - b[1]))))
    return iw * ih / smaller


def fuse_boxes(det_boxes: np.ndarray, det_scores: np.ndarray, unet_boxes: np.ndarray, unet_scores: np.ndarray,
               *, min_score: float = MIN_SCORE, fallback_min: float = FALLBACK_MIN, contain: float = CONTAIN
               ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(boxes (N, 4), scores (N,), source per box: ``"yolo"`` or ``"unet"``) by the module's rule."""
    db = np.asarray(det_boxes, np.float32).reshape(-1, 4)
    ds = np.asarray(det_scores, np.float32).reshape(-1)
    kept: list[int] = []
    for i in np.argsort(-ds, kind="stable"):
        if ds[i] < min_score:
            break
        if any(_overlap_of_smaller(db[i], db[k]) >= contain for k in kept):
            continue
        kept.append(int(i))
    if kept:
        return db[kept], ds[kept], ["yolo"] * len(kept)
    ub = np.asarray(unet_boxes, np.float32).reshape(-1, 4)
    us = np.asarray(unet_scores, np.float32).reshape(-1)
    if len(us) and float(us.max()) >= fallback_min:
        j = int(np.argmax(us))
        return ub[j:j + 1], us[j:j + 1], ["unet"]
    return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), []


def _drop_flat(rgb: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """``boxes`` and ``scores`` without the boxes on a flat single-colour mark (:func:`flat_boxes`), and those
    boxes' grey-level spreads."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1)
    flat = flat_boxes(rgb, boxes)
    keep = np.array([f is None for f in flat], bool).reshape(-1)
    return boxes[keep], scores[keep], [f for f in flat if f is not None]


class PolypFusionDetector:
    """Detector protocol: the polyp YOLO, with the polyp U-Net as a fallback when YOLO keeps no box."""

    name = "polyp_detector"
    backend = "yolo_unet"
    classes = ("polyp",)

    def __init__(self, yolo: Any, unet: Any, *, default_min_score: float = MIN_SCORE,
                 fallback_min: float = FALLBACK_MIN, contain: float = CONTAIN) -> None:
        self.yolo, self.unet = yolo, unet
        self.default_min_score, self.fallback_min, self.contain = default_min_score, fallback_min, contain

    @property
    def model_id(self) -> str:
        return f"{self.yolo.model_id}+{self.unet.model_id}"

    def load(self) -> None:
        self.yolo.load()
        self.unet.load()

    def predict(self, image: StudyImage, *, min_score: float | None = None) -> Detections:
        """Boxes ``(N, 4)`` xyxy in original-image pixels; ``min_score`` is the YOLO threshold
        (default 0.45); a U-Net fallback box carries the component's mean probability as its score."""
        t0 = time.perf_counter()
        thr = self.default_min_score if min_score is None else float(min_score)
        det = self.yolo.predict(image, min_score=thr)
        # a box on a flat mark (paint, an on-screen graphic) is no polyp: left out before the fallback decides
        yb, ys, flat = _drop_flat(image.pixels, det.boxes, det.scores)
        ub, us = np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        ran_unet = False
        if not len(ys):
            ran_unet = True
            raw = self.unet.predict(image)
            pairs = [(mask_bbox(m), s) for m, s in zip(raw.masks, raw.scores) if s is not None]
            pairs = [(b, s) for b, s in pairs if b is not None]
            if pairs:
                ub, us, flat_u = _drop_flat(image.pixels, np.asarray([b for b, _ in pairs], np.float32),
                                            np.asarray([s for _, s in pairs], np.float32))
                flat += flat_u
        boxes, scores, sources = fuse_boxes(yb, ys, ub, us, min_score=thr,
                                            fallback_min=self.fallback_min, contain=self.contain)
        if sources == ["unet"]:
            note = (f"no YOLO box >= {thr:.2f}: the polyp U-Net's most confident component (mean probability "
                    f"{float(scores[0]):.2f} >= {self.fallback_min:.2f}) is the box")
        elif ran_unet:
            note = f"no YOLO box >= {thr:.2f} and no U-Net component >= {self.fallback_min:.2f}"
        else:
            note = f"YOLO boxes >= {thr:.2f}; boxes overlapping a stronger one by >= {self.contain:.0%} dropped"
        p = det.provenance
        doubt = frame_doubt(image.pixels)  # noise or scan lines beyond the development frames: 'Uncertain:'
        if flat:
            why = (f"a detection on a flat single-colour region was left out (grey-level spread "
                   f"{', '.join(sorted({f'{f:.1f}' for f in flat}))} in the box's centre; every annotated polyp of the "
                   f"EndoTect frames >= 10, limit {FLAT_LIMIT:g}): a painted mark or an on-screen graphic, not tissue")
            doubt = f"{doubt}; {why}" if doubt else why
            note += f"; {why}"
        prov = Provenance(expert=self.name, backend=self.backend, model=self.model_id, weights_sha256=p.weights_sha256,
                          device=p.device, elapsed_ms=(time.perf_counter() - t0) * 1000, note=note, doubt=doubt)
        return Detections(boxes=boxes, scores=scores, labels=["polyp"] * len(boxes), min_score=thr, provenance=prov)


def check(settings: OslerSettings) -> str | None:
    """None when both the polyp YOLO and the polyp U-Net can run."""
    from .unet_segmenter import check_polyp as check_unet
    from .yolo_detector import check_polyp as check_yolo

    return check_yolo(settings) or check_unet(settings)


def build(settings: OslerSettings) -> PolypFusionDetector:
    from .unet_segmenter import build_polyp as build_unet
    from .yolo_detector import build_polyp as build_yolo

    return PolypFusionDetector(build_yolo(settings), build_unet(settings))
