"""What every expert looks like, per task, and the raw outputs they hand back.

An expert is built without reading weights; ``load()`` is the only place weights are read
(lazy, idempotent); ``predict`` takes a :class:`~experts.imaging.StudyImage` and returns plain
arrays plus provenance.  The session turns those into the typed tool contracts of ``tools``.

Array conventions: boxes ``(N, 4)`` float32 ``xyxy`` in original-image pixels; masks ``(H, W)``
bool of the original image size; probabilities sum to 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from tools.common import Provenance

from .imaging import StudyImage

__all__ = [
    "Expert",
    "Detections",
    "Detector",
    "Masks",
    "Segmenter",
    "ClassProbabilities",
    "Classifier",
]


@runtime_checkable
class Expert(Protocol):
    """Optional attribute ``thread_safe = True``: ``predict`` may run in several threads at once (nothing in the
    expert changes after ``load``), so its handle takes no lock (:mod:`experts.handles`)."""

    name: str
    backend: str
    model_id: str

    def load(self) -> None:
        """Read weights (once).  Raises ExpertUnavailableError when they are missing."""


@dataclass
class Detections:
    """Raw detector output.  ``boxes`` (N, 4) xyxy pixels; ``scores`` (N,); ``labels`` N strings."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: list[str]
    min_score: float
    provenance: Provenance

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        if not (len(self.boxes) == len(self.scores) == len(self.labels)):
            raise ValueError("boxes, scores and labels must have the same length")


class Detector(Expert, Protocol):
    classes: tuple[str, ...]
    default_min_score: float

    def predict(self, image: StudyImage, *, min_score: float | None = None) -> Detections: ...


@dataclass
class Masks:
    """Raw segmenter output: one bool (H, W) mask per region, with a label and a score each."""

    masks: list[np.ndarray]
    labels: list[str]
    scores: list[float | None]
    provenance: Provenance


class Segmenter(Expert, Protocol):
    promptable: bool

    def predict(
        self,
        image: StudyImage,
        *,
        box: tuple[float, float, float, float] | None = None,
        points: list[tuple[float, float, bool]] | None = None,
    ) -> Masks: ...


@dataclass
class ClassProbabilities:
    """Raw classifier output."""

    probabilities: dict[str, float]
    calibrated: bool
    provenance: Provenance
    saliency: np.ndarray | None = field(default=None, repr=False)  # (H, W) float in [0, 1]
    source: str | None = None  # the modality gate: "dicom" or "pixels"
    trusted: bool = True  # the modality gate: False when it does not know (out of distribution, low margin)
    doubt: str | None = None  # the modality gate: why the verdict is not trusted
    distance: float | None = None  # the modality gate: distance to the training images of the label's kind
    decided_label: str | None = None  # the CXR classifier: set when its tuned threshold decides, not the arg-max
    threshold: float | None = None  # the CXR classifier: the P(pneumonia) threshold that decided
    uncertain: bool = False  # the CXR classifier: too close to the threshold to state a class
    uncertain_reason: str | None = None
    uncertain_kind: str | None = None  # "close_call" or "not_read" (see tools.classification.ClassificationResult)

    @property
    def label(self) -> str:
        if self.decided_label is not None:
            return self.decided_label
        return max(self.probabilities, key=self.probabilities.__getitem__)


class Classifier(Expert, Protocol):
    labels: tuple[str, ...]

    def predict(self, image: StudyImage, *, explain: bool = False) -> ClassProbabilities: ...
