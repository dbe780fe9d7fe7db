"""A third-party Osler expert, as a plugin package would ship it (the test of ``tests/test_catalogue.py``).

Target ``dense_spots``: small radiodense spots on a chest X-ray (metal clips and wires, ECG electrodes, burned-in
markers, calcified nodes): whatever is much brighter than the bone and soft tissue around it.  The backend is
a classical detector with no weights: a white top-hat (structuring element 21 px at 640 px width) removes the
broad bright anatomy, a pixel is a spot pixel when its top-hat is >= 40 grey levels AND it is among the image's
brightest 0.5 %; touching spot pixels (after a 3x3 dilation) form one spot; spots under 12 px (at 640 px width)
are dropped; the score is the spot's mean top-hat / 100, clipped to [0, 1].  Deterministic; not validated on
any labelled set: it proves the plugin route, it claims no accuracy.

A real plugin declares, in its own ``pyproject.toml``::

    [project.entry-points."osler.experts"]
    spots = "osler_spots:expert"

and nothing else in Osler changes: the tools accept ``target='dense_spots'``, the question parser and the
voice grammar know "dense spots", answers name them, and ``compare_with_prior`` matches them across studies.
"""

from __future__ import annotations

import time

import numpy as np

from experts.catalogue import BackendSpec, ExpertEntry
from experts.imaging import StudyImage
from experts.protocols import Detections
from tools.common import Provenance
from tools.settings import OslerSettings
from tools.targets import TargetClass, TargetSpec

__all__ = ["SPOTS", "DenseSpotDetector", "build", "expert"]

SPOTS = TargetSpec(
    name="dense_spots", description="small radiodense spots (metal, electrodes, markers, calcifications) on a chest "
    "X-ray", kinds=("chest_xray",), tasks=("detect",), noun="dense spot",
    pattern=r"\b((radio)?dense spots?|radiopaque (spots?|objects?))\b", spoken=("dense spots",), compare="instances",
    classes=(TargetClass(label="dense spot", singular="dense spot", plural="dense spots"),),
)


class DenseSpotDetector:
    """Detector protocol: ``predict`` -> boxes xyxy in original-image pixels of every dense spot."""

    name = "dense_spot_detector"
    backend = "opencv"
    model_id = "tophat-spots-v1"
    classes = SPOTS.labels
    default_min_score = 0.5

    def load(self) -> None:  # no weights
        return None

    def predict(self, image: StudyImage, *, min_score: float | None = None) -> Detections:
        import cv2

        t0 = time.perf_counter()
        thr = self.default_min_score if min_score is None else min_score
        gray = image.gray
        scale = gray.shape[1] / 640.0
        k = max(9, int(round(21 * scale)) | 1)
        tophat = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
        spot = ((tophat >= 40) & (gray >= np.percentile(gray, 99.5))).astype(np.uint8)
        spot = cv2.dilate(spot, np.ones((3, 3), np.uint8))
        n, lab, stats, _ = cv2.connectedComponentsWithStats(spot, connectivity=8)
        boxes, scores = [], []
        for i in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[i])
            if area < 12 * scale * scale:
                continue
            score = float(np.clip(tophat[lab == i].mean() / 100.0, 0.0, 1.0))
            if score >= thr:
                boxes.append((x, y, x + w, y + h))
                scores.append(score)
        prov = Provenance(expert=self.name, backend=self.backend, model=self.model_id, device="cpu",
                          elapsed_ms=(time.perf_counter() - t0) * 1000,
                          note="test plugin osler_spots: classical top-hat threshold, not validated")
        return Detections(boxes=np.array(boxes, np.float32).reshape(-1, 4), scores=np.array(scores, np.float32),
                          labels=[SPOTS.labels[0]] * len(boxes), min_score=thr, provenance=prov)


def build(settings: OslerSettings) -> DenseSpotDetector:
    return DenseSpotDetector()


def expert() -> ExpertEntry:
    """The entry point: this plugin's one catalogue entry."""
    return ExpertEntry(SPOTS, detectors=(BackendSpec("opencv", build, None, "white top-hat threshold (no weights)"),))
