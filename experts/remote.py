"""What travels between the agent and an expert served elsewhere (a Ray Serve replica), without Ray itself.

* :func:`describe` — the attributes the tool layer reads from an expert (backend, model id, classes,
  thresholds, labels, ``promptable``), as a plain dict the replica sends once.
* :func:`run_batch` — one batch of calls on one expert: calls with the same keyword arguments go through the
  expert's ``predict_batch`` (one forward pass; the YOLO detectors have one) when it has one, else one
  ``predict`` after another; a call that fails becomes a :class:`RemoteFailure` in its slot, so one bad image
  never fails the other sessions' calls of the same batch.
* :class:`RemoteFailure` — an error as data (exception classes with keyword-only arguments do not pickle
  back), raised again on the agent's side by :meth:`RemoteFailure.error` as the same Osler error type.

* :func:`warm_up` — one call on a synthetic image when a replica starts, so the first user's call is not the
  replica's slowest.

Pure Python: importable and testable without Ray.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from tools.errors import (ExpertFailedError, ExpertUnavailableError, InvalidInputError, OslerError,
                          ToolCancelledError)

from .imaging import StudyImage

__all__ = ["RemoteFailure", "describe", "run_batch", "warm_up", "Call"]

log = logging.getLogger(__name__)

Call = tuple[StudyImage, dict[str, Any]]  # (image, keyword arguments of predict)

# Error types a replica may hand back as themselves; anything else comes back as ExpertFailedError.
_PASSED_THROUGH: tuple[type[OslerError], ...] = (ExpertUnavailableError, ExpertFailedError, ToolCancelledError,
                                                 InvalidInputError)


@dataclass(frozen=True)
class RemoteFailure:
    """A failed call, as data: the Osler error type to raise and its message."""

    kind: str  # the name of one of _PASSED_THROUGH, else "ExpertFailedError"
    message: str

    @classmethod
    def of(cls, exc: BaseException, expert_name: str) -> RemoteFailure:
        for err in _PASSED_THROUGH:
            if type(exc) is err:
                return cls(err.__name__, str(exc))
        return cls("ExpertFailedError", f"{expert_name}: {type(exc).__name__}: {exc}")

    def error(self) -> OslerError:
        by_name = {e.__name__: e for e in _PASSED_THROUGH}
        return by_name.get(self.kind, ExpertFailedError)(self.message)


def describe(expert: Any, why: str) -> dict[str, Any]:
    """The expert's attributes that callers read besides ``predict`` (see :mod:`experts.handles` and the
    tool implementations), as plain values."""
    out: dict[str, Any] = {"name": expert.name, "backend": expert.backend, "model_id": expert.model_id, "why": why}
    for attr in ("classes", "labels"):
        if hasattr(expert, attr):
            out[attr] = tuple(getattr(expert, attr))
    if hasattr(expert, "default_min_score"):
        out["default_min_score"] = float(expert.default_min_score)
    if getattr(expert, "class_min_scores", None):
        out["class_min_scores"] = dict(expert.class_min_scores)
    if hasattr(expert, "promptable"):
        out["promptable"] = bool(expert.promptable)
    return out


def _key(kwargs: dict[str, Any]) -> str:
    return repr(sorted(kwargs.items()))


def run_batch(expert: Any, calls: list[Call]) -> list[Any]:
    """Results of ``calls`` in order: a ``Detections`` / ``Masks`` / ``ClassProbabilities`` or a
    :class:`RemoteFailure` per call."""
    out: list[Any] = [None] * len(calls)
    groups: dict[str, list[int]] = {}
    for i, (_, kwargs) in enumerate(calls):
        groups.setdefault(_key(kwargs), []).append(i)
    batched = getattr(expert, "predict_batch", None)
    for idx in groups.values():
        kwargs = calls[idx[0]][1]
        if batched is not None and len(idx) > 1:
            try:
                for i, r in zip(idx, batched([calls[i][0] for i in idx], **kwargs)):
                    out[i] = r
                continue
            except Exception:  # one bad image: run the group's calls one by one to find it
                log.debug("batch of %d failed on %s; running its calls one by one", len(idx), expert.name)
        for i in idx:
            try:
                out[i] = expert.predict(calls[i][0], **kwargs)
            except Exception as exc:  # noqa: BLE001 - every failure goes back to its caller as data
                out[i] = RemoteFailure.of(exc, expert.name)
    return out


def warm_up(expert: Any, size: int = 320) -> float | None:
    """Run ``expert.predict`` once on a mid-grey ``size`` x ``size`` RGB image (first-call costs: lazy kernels,
    allocator growth); milliseconds, or None when the expert refuses such an image (a segmenter without a prompt)."""
    from tools.common import ImageMeta

    meta = ImageMeta(role="current", source="warm-up", format="other", width=size, height=size, channels=3)
    image = StudyImage(pixels=np.full((size, size, 3), 128, np.uint8), meta=meta)
    t0 = time.perf_counter()
    try:
        expert.predict(image)
    except Exception as exc:  # noqa: BLE001 - a warm-up that fails only means the first real call is the warm-up
        log.debug("%s: no warm-up (%s)", expert.name, exc)
        return None
    return (time.perf_counter() - t0) * 1000
