"""YOLO detectors (ultralytics models) for blood cells, polyps and any site checkpoint.

Weights are local files only (never a model name: nothing is downloaded).  Two formats load:

* ``osler-yolo-v1`` (what ``training/train_yolo.py`` writes and :func:`save_checkpoint` makes): a
  dict of plain types and fp16 tensors, read with ``torch.load(weights_only=True)`` --
  ``{"format", "yaml" (model yaml dict), "names" (list), "imgsz", "state_dict", "train" (metadata)}``;
* an ultralytics ``.pt`` (``best.pt``), read with ultralytics' restricted loader
  (``weights_only=True`` with its allow-list of model classes).

Pre/post-processing is ours (no ultralytics predictor): each image is scaled so its long side is
``imgsz`` and padded (value 114) to a multiple of the stride, the model runs in float32, then
ultralytics' NMS; boxes are mapped back to ``xyxy`` pixels of the ORIGINAL image and clipped.
Images much larger than the training field of view (``tile_size`` original pixels, long side >
``tile_trigger * tile_size``) are cut into overlapping tiles that are each run at ``imgsz``; boxes
touching an inner tile edge are dropped (the overlap sees them whole) and the rest merged with
class-wise NMS.  Tiling assumes the image has the training magnification (µm per pixel).
"""

from __future__ import annotations

import logging
import threading
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tools.common import Provenance
from tools.errors import ExpertFailedError, ExpertUnavailableError
from tools.settings import OslerSettings

from .imaging import StudyImage
from .protocols import Detections
from .weights import resolve_device, resolve_weights, sha256_of

__all__ = ["YoloDetector", "save_checkpoint", "BLOOD_LABELS", "build_blood", "check_blood", "build_polyp",
           "check_polyp", "build_custom", "check_custom"]

log = logging.getLogger(__name__)

FORMAT = "osler-yolo-v1"
BLOOD_LABELS = ("RBC", "WBC", "Platelets")
_BLOOD_ALIASES = {
    "rbc": "RBC", "rbcs": "RBC", "red blood cell": "RBC", "red blood cells": "RBC", "erythrocyte": "RBC",
    "wbc": "WBC", "wbcs": "WBC", "white blood cell": "WBC", "white blood cells": "WBC", "leukocyte": "WBC",
    "platelets": "Platelets", "platelet": "Platelets", "plt": "Platelets", "thrombocyte": "Platelets",
}
_SETTINGS = {"blood": "OSLER_MODELS__YOLO_BLOOD", "polyp": "OSLER_MODELS__YOLO_POLYP",
             "custom": "OSLER_MODELS__YOLO_EXTRA"}


def save_checkpoint(model: Any, names: Sequence[str], imgsz: int, path: Path, meta: dict | None = None) -> Path:
    """Write an ultralytics ``DetectionModel`` as an ``osler-yolo-v1`` fp16 state dict."""
    import torch

    cfg = {k: v for k, v in dict(model.yaml).items() if k != "yaml_file"}
    payload = {
        "format": FORMAT,
        "yaml": cfg,
        "names": [str(n) for n in names],
        "imgsz": int(imgsz),
        "state_dict": {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
                       for k, v in model.state_dict().items()},
        "train": dict(meta or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def _read_checkpoint(path: Path, setting: str) -> tuple[Any, list[str], int | None, dict]:
    """(model in float32 eval mode, class names, training imgsz or None, metadata)."""
    import pickle

    import torch

    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        payload = None  # an ultralytics checkpoint: pickled model objects
    except Exception as exc:  # noqa: BLE001 - corrupt or not a torch file
        raise ExpertUnavailableError(f"{setting}: {path.name} is not a readable PyTorch checkpoint ({exc})") from exc
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        from ultralytics.nn.tasks import DetectionModel

        names = list(payload["names"])
        cfg = dict(payload["yaml"])
        if "scale" not in cfg and len(cfg.get("scales") or {}) == 1:
            cfg["scale"] = next(iter(cfg["scales"]))  # the one scale it was trained at
        model = DetectionModel(cfg=cfg, nc=len(names), verbose=False)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
        return model.float().eval(), names, int(payload["imgsz"]), dict(payload.get("train") or {})
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ExpertUnavailableError(
            f"{setting}: {path.name} is neither an osler-yolo-v1 state dict nor an ultralytics checkpoint that loads "
            f"with weights_only=True ({type(exc).__name__}: {exc}); re-export it with training/train_yolo.py"
        ) from exc
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
    if model is None or not hasattr(model, "names"):
        raise ExpertUnavailableError(f"{setting}: {path.name} holds no detection model")
    raw = model.names
    names = [raw[i] for i in range(len(raw))] if isinstance(raw, dict) else list(raw)
    args = ckpt.get("train_args") or getattr(model, "args", None) or {}
    imgsz = args.get("imgsz") if isinstance(args, dict) else None
    return model.float().eval(), [str(n) for n in names], int(imgsz) if isinstance(imgsz, int) else None, {}


def _letterbox(rgb: np.ndarray, size: int, canvas: tuple[int, int]) -> tuple[np.ndarray, float, tuple[float, float]]:
    """Scale so the long side is ``size``, pad centred to ``canvas`` (h, w).  Returns the padded
    uint8 image, the scale and the (x, y) padding."""
    import cv2

    h, w = rgb.shape[:2]
    r = size / max(h, w)
    nw, nh = max(1, round(w * r)), max(1, round(h * r))
    img = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR if r > 1 else cv2.INTER_AREA) if r != 1 else rgb
    ch, cw = canvas
    px, py = (cw - nw) / 2, (ch - nh) / 2
    top, left = int(round(py - 0.1)), int(round(px - 0.1))
    out = cv2.copyMakeBorder(img, top, ch - nh - top, left, cw - nw - left, cv2.BORDER_CONSTANT, value=(114, 114, 114))
    return out, r, (left, top)


def _canvas(shape: tuple[int, int], size: int, stride: int) -> tuple[int, int]:
    h, w = shape
    r = size / max(h, w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    return int(np.ceil(nh / stride) * stride), int(np.ceil(nw / stride) * stride)


def _tiles(h: int, w: int, tile: int, overlap: float) -> list[tuple[int, int, int, int]]:
    """Tile windows ``(x0, y0, x1, y1)`` covering the image with at least ``overlap`` (fraction)."""
    def starts(n: int) -> list[int]:
        if n <= tile:
            return [0]
        k = int(np.ceil((n - tile) / (tile * (1 - overlap)))) + 1
        return [round(i * (n - tile) / (k - 1)) for i in range(k)]

    return [(x, y, min(x + tile, w), min(y + tile, h)) for y in starts(h) for x in starts(w)]


class YoloDetector:
    """Detector protocol over an ultralytics detection model.

    ``classes`` are the checkpoint's names (mapped through ``label_map``); reading them loads
    the checkpoint when the factory did not declare them.  ``class_filter`` keeps only those labels.
    """

    backend = "yolo"

    def __init__(
        self,
        weights: Path | None,
        *,
        name: str = "yolo_detector",
        setting: str = _SETTINGS["custom"],
        device: str = "cpu",
        config_dir: Path | None = None,
        classes: tuple[str, ...] | None = None,
        label_map: Any = None,
        class_filter: Sequence[str] | None = None,
        default_min_score: float = 0.25,
        iou: float = 0.5,
        imgsz: int | None = None,
        max_det: int = 300,
        tile_size: int | None = None,
        tile_trigger: float = 2.0,
        tile_overlap: float = 0.3,
        model: Any = None,
        names: Sequence[str] | None = None,
    ) -> None:
        self.weights, self.name, self.setting, self.device = weights, name, setting, device
        self.config_dir, self.label_map = config_dir, label_map
        self.class_filter = tuple(class_filter) if class_filter else None
        self.default_min_score, self.iou, self.max_det = default_min_score, iou, max_det
        self.tile_size, self.tile_trigger, self.tile_overlap = tile_size, tile_trigger, tile_overlap
        self._declared, self._imgsz = classes, imgsz
        self._model, self._names = model, list(names) if names is not None else None
        self._labels: list[str] | None = None
        self._meta: dict = {}
        self._sha: str | None = None
        self._lock = threading.Lock()
        self.model_id = weights.stem if weights is not None else "in-memory"
        if model is not None:
            if self._names is None:
                raise ValueError("an in-memory model needs its class names")
            self._finish_load(model, self._names, imgsz, {})

    # -- loading ---------------------------------------------------------------------------
    @property
    def classes(self) -> tuple[str, ...]:
        if self._labels is None and self._declared is not None:
            return self._declared
        self.load()
        labels = tuple(dict.fromkeys(self._labels or []))
        return tuple(c for c in labels if self.class_filter is None or c in self.class_filter)

    @property
    def imgsz(self) -> int:
        self.load()
        return int(self._imgsz or 640)

    def load(self) -> None:
        """Read the checkpoint once (the only place weights are read)."""
        with self._lock:
            if self._model is not None:
                return
            if self.weights is None:
                raise ExpertUnavailableError(f"no YOLO weights for {self.name}: set {self.setting}")
            if not Path(self.weights).is_file():
                raise ExpertUnavailableError(f"{self.setting} points to {self.weights}, which is not a file")
            if self.config_dir is not None:
                from .ultralytics_env import prepare_ultralytics

                prepare_ultralytics(self.config_dir)
            t0 = time.perf_counter()
            self._sha = sha256_of(Path(self.weights))
            model, names, imgsz, meta = _read_checkpoint(Path(self.weights), self.setting)
            self._finish_load(model, names, self._imgsz or imgsz, meta)
            log.info("loaded %s (%s, %d classes) on %s in %.0f ms", self.model_id, self.weights.name, len(names),
                     self.device, (time.perf_counter() - t0) * 1000)

    def _finish_load(self, model: Any, names: list[str], imgsz: int | None, meta: dict) -> None:
        labels = [self._map_label(n) for n in names]
        if self._declared is not None and len(self._declared) == 1 == len(labels) and labels != list(self._declared):
            log.info("single-class checkpoint: reading its class %r as %r", names[0], self._declared[0])
            labels = list(self._declared)
        if self._declared is not None:
            missing = [c for c in self._declared if c not in labels]
            if missing:
                raise ExpertUnavailableError(
                    f"{self.setting}: checkpoint classes {names} do not provide {missing}; use a checkpoint "
                    f"trained for {list(self._declared)}")
        if hasattr(model, "fuse"):
            model = model.fuse(verbose=False) if "verbose" in model.fuse.__code__.co_varnames else model.fuse()
        model = model.to(self.device).float().eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self._model, self._names, self._labels, self._imgsz, self._meta = model, list(names), labels, imgsz, meta
        self.model_id = str(meta.get("model_id") or self.model_id)
        stride = getattr(model, "stride", None)
        self._stride = int(max(stride.max().item() if hasattr(stride, "max") else 32, 32))

    def _map_label(self, raw: str) -> str:
        if callable(self.label_map):
            return str(self.label_map(raw))
        if isinstance(self.label_map, dict):
            return self.label_map.get(raw, raw)
        return raw

    # -- inference -------------------------------------------------------------------------
    def _forward(self, batch: list[np.ndarray], min_score: float) -> list[np.ndarray]:
        """Run letterboxed uint8 RGB images of one shape; (K, 6) arrays x0 y0 x1 y1 score cls
        in letterbox pixels."""
        import torch
        from ultralytics.utils.nms import non_max_suppression

        x = torch.from_numpy(np.ascontiguousarray(np.stack(batch).transpose(0, 3, 1, 2))).to(self.device)
        x = x.float() / 255.0
        keep_idx = None
        if self.class_filter is not None:
            keep_idx = [i for i, lab in enumerate(self._labels or []) if lab in self.class_filter]
        with torch.inference_mode():
            preds = self._model(x)
            out = non_max_suppression(preds, conf_thres=min_score, iou_thres=self.iou, classes=keep_idx,
                                      max_det=self.max_det, nc=0)
        return [o[:, :6].float().cpu().numpy() for o in out]

    def _run(self, images: list[np.ndarray], min_score: float) -> list[np.ndarray]:
        """Full-image inference for several RGB arrays; (K, 6) per image in original pixels."""
        size, stride = self.imgsz, self._stride
        canvases = [_canvas(im.shape[:2], size, stride) for im in images]
        canvas = (max(c[0] for c in canvases), max(c[1] for c in canvases))
        boxed = [_letterbox(im, size, canvas) for im in images]
        results = []
        for (_, r, (px, py)), det, im in zip(boxed, self._forward([b[0] for b in boxed], min_score), images):
            det = det.copy()
            det[:, [0, 2]] = (det[:, [0, 2]] - px) / r
            det[:, [1, 3]] = (det[:, [1, 3]] - py) / r
            h, w = im.shape[:2]
            det[:, [0, 2]] = det[:, [0, 2]].clip(0, w)
            det[:, [1, 3]] = det[:, [1, 3]].clip(0, h)
            results.append(det[(det[:, 2] > det[:, 0]) & (det[:, 3] > det[:, 1])])
        return results

    def _run_tiled(self, rgb: np.ndarray, min_score: float) -> np.ndarray:
        import torch
        from torchvision.ops import batched_nms

        h, w = rgb.shape[:2]
        wins = _tiles(h, w, int(self.tile_size or 640), self.tile_overlap)
        parts = []
        for i in range(0, len(wins), 8):
            chunk = wins[i:i + 8]
            for (x0, y0, x1, y1), det in zip(chunk, self._run([rgb[y0:y1, x0:x1] for x0, y0, x1, y1 in chunk],
                                                                min_score)):
                m = 2.0  # drop boxes cut by an inner tile edge: a neighbouring tile holds them whole
                inner = ((det[:, 0] <= m) & (x0 > 0)) | ((det[:, 1] <= m) & (y0 > 0)) | \
                        ((det[:, 2] >= x1 - x0 - m) & (x1 < w)) | ((det[:, 3] >= y1 - y0 - m) & (y1 < h))
                det = det[~inner].copy()
                det[:, [0, 2]] += x0
                det[:, [1, 3]] += y0
                parts.append(det)
        det = np.concatenate(parts) if parts else np.zeros((0, 6), np.float32)
        if len(det) == 0:
            return det
        t = torch.from_numpy(det)
        keep = batched_nms(t[:, :4], t[:, 4], t[:, 5].long(), self.iou).numpy()
        return det[np.sort(keep)][: self.max_det]

    def _needs_tiles(self, shape: tuple[int, ...]) -> bool:
        return self.tile_size is not None and max(shape[:2]) > self.tile_trigger * self.tile_size

    def _detections(self, det: np.ndarray, thr: float, t0: float, note: str | None) -> Detections:
        labels = [self._labels[int(c)] for c in det[:, 5]] if self._labels else []
        prov = Provenance(
            expert=self.name, backend=self.backend, model=self.model_id, weights_sha256=self._sha,
            device=self._device_name(), elapsed_ms=(time.perf_counter() - t0) * 1000, note=note,
        )
        return Detections(boxes=det[:, :4], scores=det[:, 4], labels=labels, min_score=thr, provenance=prov)

    def _device_name(self) -> str:
        if str(self.device).startswith("cuda"):
            import torch

            return f"cuda:{torch.cuda.current_device()}" if self.device == "cuda" else str(self.device)
        return "cpu"

    def predict(self, image: StudyImage, *, min_score: float | None = None) -> Detections:
        """Boxes ``(N, 4)`` xyxy in original-image pixels, scores, labels, at ``min_score``
        (default ``default_min_score``)."""
        return self.predict_batch([image], min_score=min_score)[0]

    def predict_batch(self, images: Sequence[StudyImage], *, min_score: float | None = None) -> list[Detections]:
        """Several images in one forward pass where their shapes allow (tiled ones run alone)."""
        self.load()
        thr = self.default_min_score if min_score is None else float(min_score)
        t0 = time.perf_counter()
        out: list[Detections | None] = [None] * len(images)
        try:
            whole = [i for i, im in enumerate(images) if not self._needs_tiles(im.pixels.shape)]
            for j in range(0, len(whole), 16):
                idx = whole[j:j + 16]
                for i, det in zip(idx, self._run([images[i].pixels for i in idx], thr)):
                    out[i] = self._detections(det, thr, t0, None)
            for i, im in enumerate(images):
                if out[i] is None:
                    det = self._run_tiled(im.pixels, thr)
                    out[i] = self._detections(det, thr, t0, f"tiled inference ({self.tile_size} px tiles)")
        except (RuntimeError, ValueError) as exc:
            raise ExpertFailedError(f"{self.name}: YOLO inference failed ({exc})") from exc
        return [d for d in out if d is not None]


# -- factories (registered in experts/registry.py) ----------------------------------------------
def _blood_label(raw: str) -> str:
    return _BLOOD_ALIASES.get(raw.strip().lower(), raw)


def _polyp_label(raw: str) -> str:
    return "polyp" if "polyp" in raw.strip().lower() else raw


def _config_dir(settings: OslerSettings) -> Path:
    from .ultralytics_env import default_config_dir

    return default_config_dir(settings.data_dir)


def _check(settings: OslerSettings, configured: Path | None, bundled: str | None, kind: str) -> str | None:
    for pkg in ("torch", "ultralytics"):
        if find_spec(pkg) is None:
            return f"the YOLO backend needs the Python package '{pkg}' (pip install 'osler[full]')"
    setting = _SETTINGS[kind]
    try:
        path = resolve_weights(configured, bundled, setting)
    except ExpertUnavailableError as exc:
        return str(exc)
    if path is None:
        what = f"the bundled experts/weights/{bundled} is missing" if bundled else "it is not set"
        return f"no YOLO weights for {kind}: set {setting}=/path/to/weights.pt ({what})"
    if settings.device == "cuda":
        try:
            resolve_device("cuda")
        except ExpertUnavailableError as exc:
            return str(exc)
    return None


def _build(settings: OslerSettings, configured: Path | None, bundled: str | None, kind: str, **kw: Any) -> YoloDetector:
    setting = _SETTINGS[kind]
    path = resolve_weights(configured, bundled, setting)
    if path is None:
        raise ExpertUnavailableError(f"no YOLO weights for {kind}: set {setting}=/path/to/weights.pt")
    return YoloDetector(path, setting=setting, device=resolve_device(settings.device),
                        config_dir=_config_dir(settings), **kw)


def check_blood(settings: OslerSettings) -> str | None:
    return _check(settings, settings.models.yolo_blood, "bccd_yolo.pt", "blood")


def build_blood(settings: OslerSettings) -> YoloDetector:
    """RBC / WBC / Platelets on Wright-Giemsa smears; tiles images over 2x the 640 px BCCD field."""
    return _build(settings, settings.models.yolo_blood, "bccd_yolo.pt", "blood", name="blood_cell_detector",
                  classes=BLOOD_LABELS, label_map=_blood_label, class_filter=BLOOD_LABELS, default_min_score=0.35,
                  iou=0.5, tile_size=640)


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
