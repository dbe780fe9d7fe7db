"""Typed handles on loaded experts: what :class:`~experts.registry.ExpertPool`'s getters return.

A handle serialises its expert itself (``predict`` takes the expert's lock: the planner may call tools
concurrently, and a GPU model runs one request at a time), unless the expert says it is ``thread_safe``
(nothing in it changes after loading: the onnxruntime YOLO, whose session runs concurrent calls, and the
classical OpenCV counter), so that sessions answering at once use both cores; it says which backend serves it
and why that one was chosen, and is typed against the task's Protocol in :mod:`experts.protocols`, so a caller sees
``Detections`` / ``Masks`` / ``ClassProbabilities`` rather than ``Any``.

>>> det = pool.detector("blood_cells")          # doctest: +SKIP
>>> det.predict(image).boxes.shape, det.backend, det.why
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Generic, TypeVar

from .imaging import StudyImage
from .protocols import ClassProbabilities, Classifier, Detections, Detector, Expert, Masks, Segmenter

__all__ = ["ExpertHandle", "DetectorHandle", "SegmenterHandle", "ClassifierHandle"]

E = TypeVar("E", bound=Expert)


class ExpertHandle(Generic[E]):
    """A loaded expert, the lock that serialises it, and why its backend was chosen."""

    def __init__(self, expert: E, lock: threading.Lock, why: str) -> None:
        self.expert = expert
        self._lock: AbstractContextManager[Any] = nullcontext() if getattr(expert, "thread_safe", False) else lock
        self.why = why  # e.g. "backend 'yolo', best available"

    @property
    def backend(self) -> str:
        return self.expert.backend

    @property
    def model_id(self) -> str:
        return self.expert.model_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.expert.name!r}, backend={self.backend!r})"


class DetectorHandle(ExpertHandle[Detector]):
    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.expert.classes)

    @property
    def default_min_score(self) -> float:
        return self.expert.default_min_score

    def predict(self, image: StudyImage, *, min_score: float | None = None) -> Detections:
        """Boxes ``(N, 4)`` xyxy in original-image pixels; the expert's lock is held during the call (none for a
        ``thread_safe`` expert)."""
        with self._lock:
            return self.expert.predict(image, min_score=min_score)


class SegmenterHandle(ExpertHandle[Segmenter]):
    @property
    def promptable(self) -> bool:
        return bool(getattr(self.expert, "promptable", False))

    def predict(
        self,
        image: StudyImage,
        *,
        box: tuple[float, float, float, float] | None = None,
        points: list[tuple[float, float, bool]] | None = None,
    ) -> Masks:
        """Bool ``(H, W)`` masks of the original image size; the expert's lock is held during the call."""
        with self._lock:
            return self.expert.predict(image, box=box, points=points)


class ClassifierHandle(ExpertHandle[Classifier]):
    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.expert.labels)

    def predict(self, image: StudyImage, *, explain: bool = False) -> ClassProbabilities:
        """Probabilities summing to 1; the expert's lock is held during the call."""
        with self._lock:
            return self.expert.predict(image, explain=explain)
