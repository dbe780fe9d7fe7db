"""YOLO detectors (ultralytics models) for blood cells, polyps and any site checkpoint.

Weights are local files only (never a model name: nothing is downloaded): an ``osler-yolo-v1``
fp16 state dict (what ``training/train_yolo.py`` writes) or an ultralytics ``best.pt``, both read
with ``weights_only=True`` by :func:`experts.ultralytics_env.read_checkpoint`.

Pre/post-processing is ours (no ultralytics predictor): each image is scaled so its long side is
``imgsz`` and padded (value 114) to a multiple of the stride, the model runs in float32, then
ultralytics' NMS; boxes are mapped back to ``xyxy`` pixels of the ORIGINAL image and clipped.
Images much larger than the training field of view (``tile_size`` original pixels, long side >
``tile_trigger * tile_size``) are cut into overlapping tiles that are each run at ``imgsz``; boxes
touching an inner tile edge are dropped (the overlap sees them whole) and, per object, the box seen
farthest from an inner tile edge is kept (:func:`_merge_tiles`).  Tiling assumes the image has the
training magnification (µm per pixel).

The backend class lives in :mod:`experts.yolo_backend`, checkpoint resolution in :mod:`experts.yolo_weights`
and the pure array helpers in :mod:`experts.yolo_postprocess`; this module holds the factories the registry
uses and re-exports those names.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import Any

from tools.errors import ExpertUnavailableError
from tools.settings import OslerSettings
from tools.targets import BLOOD_CELLS

from .magnification import Ruler
from .onnx_runtime import use_onnx
from .smear_tone import smear_doubt
from .ultralytics_env import FORMAT, save_checkpoint
from .weights import bundled, resolve_device
from .yolo_backend import _TTA_FLOOR, YoloDetector  # noqa: F401 (re-exported)
from .yolo_postprocess import _canvas, _letterbox, _merge_tiles, _tiles  # noqa: F401 (re-exported)
from .yolo_weights import _SETTINGS, _config_dir, _weights

__all__ = ["YoloDetector", "save_checkpoint", "FORMAT", "BLOOD_LABELS", "build_blood", "check_blood", "build_polyp",
           "check_polyp", "build_custom", "check_custom"]

BLOOD_LABELS = BLOOD_CELLS.labels  # ("RBC", "WBC", "Platelets")


# -- factories (bound to their targets in experts/catalogue.py) ---------------------------------
def _blood_label(raw: str) -> str:
    """A checkpoint's class name as the blood-cell label it means ('white blood cells' -> 'WBC'), by the class
    synonyms of :data:`tools.targets.BLOOD_CELLS`."""
    return BLOOD_CELLS.canonical_label(raw)


def _polyp_label(raw: str) -> str:
    return "polyp" if "polyp" in raw.strip().lower() else raw


def _check(settings: OslerSettings, configured: Path | None, bundled: str | None, kind: str) -> str | None:
    for pkg in ("torch", "ultralytics"):
        if find_spec(pkg) is None:
            return f"the YOLO backend needs the Python package '{pkg}' (it is a default dependency of osler: reinstall with 'pip install -e .')"
    try:
        _weights(configured, bundled, kind)
        if settings.device == "cuda":
            resolve_device("cuda")
    except ExpertUnavailableError as exc:
        return str(exc)
    return None


def _build(settings: OslerSettings, configured: Path | None, bundled: str | None, kind: str, **kw: Any) -> YoloDetector:
    return YoloDetector(_weights(configured, bundled, kind), setting=_SETTINGS[kind],
                        device=resolve_device(settings.device), config_dir=_config_dir(settings), **kw)


def check_blood(settings: OslerSettings) -> str | None:
    return _check(settings, settings.models.yolo_blood, "bccd_yolo.pt", "blood")


BLOOD_ONNX = "bccd_yolo.onnx"
BLOOD_RULER = Ruler("RBC", 106.0)
"""Red cells are the smear's ruler: median box side 106 px in the bundled model's own pass on the BCCD dev smears
(per-smear 95-114 px), so the band 0.75-1.33 leaves every dev smear as it is (experts/magnification.py)."""  # the ONNX export of bccd_yolo.pt (training/export_onnx.py)


def build_blood(settings: OslerSettings) -> YoloDetector:
    """RBC / WBC / Platelets on Wright-Giemsa smears; tiles images over 2x the 640 px BCCD field.  Flip
    test-time augmentation and per-class thresholds (WBC 0.30, platelets 0.20, RBC 0.25) were chosen by
    ``osler bench counts-cv`` on the smears the model never trained on (experts/weights/bccd_yolo.md).  A smear
    whose tone is outside the development smears' gets a doubt (:mod:`experts.smear_tone`, ``osler bench smear-tone``).
    Runs the bundled model's ONNX export on onnxruntime when ``settings.expert_runtime`` allows
    (:func:`experts.onnx_runtime.use_onnx`), else the checkpoint in torch."""
    kw: dict[str, Any] = dict(name="blood_cell_detector", classes=BLOOD_LABELS, label_map=_blood_label,
                              class_filter=BLOOD_LABELS, default_min_score=0.25,
                              class_min_scores={"WBC": 0.30, "Platelets": 0.20}, tta=True, iou=0.5, tile_size=640,
                              ruler=BLOOD_RULER, input_doubt=smear_doubt)
    onnx, _ = use_onnx(settings, BLOOD_ONNX, settings.models.yolo_blood)
    if onnx:
        from .yolo_onnx import YoloOnnxDetector

        return YoloOnnxDetector(bundled(BLOOD_ONNX), threads=settings.torch_threads, setting=_SETTINGS["blood"], **kw)
    return _build(settings, settings.models.yolo_blood, "bccd_yolo.pt", "blood", **kw)


def check_polyp(settings: OslerSettings) -> str | None:
    return _check(settings, settings.models.yolo_polyp, "polyp_yolo.pt", "polyp")


def build_polyp(settings: OslerSettings) -> YoloDetector:
    """Polyps in colonoscopy frames (whole frame, no tiling)."""
    return _build(settings, settings.models.yolo_polyp, "polyp_yolo.pt", "polyp", name="polyp_detector",
                  classes=("polyp",), label_map=_polyp_label, class_filter=("polyp",), default_min_score=0.35,
                  iou=0.5, tile_size=None)


def check_custom(settings: OslerSettings) -> str | None:
    return _check(settings, settings.models.yolo_extra, None, "custom")


def build_custom(settings: OslerSettings) -> YoloDetector:
    """Any YOLO detection checkpoint from ``OSLER_MODELS__YOLO_EXTRA``; classes from the checkpoint."""
    return _build(settings, settings.models.yolo_extra, None, "custom", name="yolo_detector")
