"""onnxruntime for the default CPU experts: the ONNX exports of the blood-cell YOLO and the modality gate's
MobileNetV2 (``training/export_onnx.py``), so a process that answers a first smear question never imports
torch (1.5-3 s of a cold start on this machine).

* :data:`ONNX_SHA256`: the bundled exports and their checksums (also in the model cards); a file whose
  checksum differs is refused.
* :class:`OnnxModel`: one ``InferenceSession`` built on first use (thread-safe), CPU only, with the thread
  count of ``settings.torch_threads``; its metadata (class names, imgsz, stride, model id) is read from the file.
* :func:`use_onnx`: the pure runtime choice of a default expert (``settings.expert_runtime``).
* :func:`nms`: ultralytics' non-maximum suppression (best class per box, class-offset boxes, greedy IoU
  suppression) in numpy, for the raw ``(4 + classes, anchors)`` head output.
"""

from __future__ import annotations

import ctypes
import importlib.util
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

from tools.errors import ExpertUnavailableError
from tools.settings import OslerSettings

from .weights import bundled, sha256_of

__all__ = ["ONNX_SHA256", "OnnxModel", "use_onnx", "nms", "cuda_visible", "onnxruntime_version"]

ONNX_SHA256 = {
    "bccd_yolo.onnx": "f1f84cf85a7a886986297a5d85b8a5b3b0043a1be485c8d0355fa941e530f5ce",
    "gate_mobilenet_v2.onnx": "24293d867a36199a4e2e2af9708c5ae6f4c1861954cd9e73d495d2ce34629631",
}
MAX_WH = 7680  # ultralytics' per-class box offset for class-aware NMS


def onnxruntime_version() -> str | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return None
    from importlib.metadata import version

    return version("onnxruntime")


def cuda_visible() -> bool:
    """Whether a CUDA GPU is visible, without importing torch (the CUDA driver API; torch's answer once torch
    is imported)."""
    if "torch" in sys.modules:
        return bool(sys.modules["torch"].cuda.is_available())
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return False
    count = ctypes.c_int(0)
    try:
        return lib.cuInit(0) == 0 and lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0
    except (AttributeError, OSError):  # pragma: no cover - a broken driver library
        return False


def use_onnx(settings: OslerSettings, name: str, configured: Path | None = None) -> tuple[bool, str]:
    """Whether a default expert runs its ONNX export ``name`` on onnxruntime, and why (for the provenance).

    ``expert_runtime``: ``torch`` never; ``onnx`` always (ExpertUnavailableError when it cannot: no
    onnxruntime, no export, a site checkpoint configured instead of the bundled one, or ``device=cuda``);
    ``auto`` when all of that allows and no CUDA GPU would run the torch model."""
    runtime = settings.expert_runtime
    if runtime == "torch":
        return False, "torch (expert_runtime=torch)"
    reason = None
    if configured is not None:
        reason = f"a configured checkpoint ({Path(configured).name}) has no ONNX export"
    elif onnxruntime_version() is None:
        reason = "onnxruntime is not installed"
    elif not bundled(name).is_file():
        reason = f"experts/weights/{name} is missing (training/export_onnx.py writes it)"
    elif settings.device == "cuda":
        reason = "device=cuda runs the torch model"
    if reason is not None:
        if runtime == "onnx":
            raise ExpertUnavailableError(f"OSLER_EXPERT_RUNTIME=onnx cannot run {name}: {reason}")
        return False, f"torch ({reason})"
    if runtime == "auto" and settings.device == "auto" and cuda_visible():
        return False, "torch (a CUDA GPU is visible)"
    return True, f"onnxruntime {onnxruntime_version()} ({name})"


class OnnxModel:
    """A bundled ONNX file run by onnxruntime on the CPU; the session is built on first use."""

    def __init__(self, name: str, threads: int | None = None, path: Path | None = None) -> None:
        self.name = name
        self.path = Path(path) if path is not None else bundled(name)
        self.threads = threads
        self.sha256: str | None = None
        self.meta: dict[str, str] = {}
        self._session: Any = None
        self._input = ""
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            if not self.path.is_file():
                raise ExpertUnavailableError(f"{self.path} is missing; run training/export_onnx.py")
            sha = sha256_of(self.path)
            expected = ONNX_SHA256.get(self.path.name)
            if expected and sha != expected:
                raise ExpertUnavailableError(f"{self.path.name}: checksum mismatch (sha256 {sha[:12]}..., expected "
                                             f"{expected[:12]}...); the file is corrupt or replaced: rerun "
                                             "training/export_onnx.py and update the model card")
            import onnxruntime as ort

            opts = ort.SessionOptions()
            if self.threads:
                opts.intra_op_num_threads = self.threads
                opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            session = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"])
            self.meta = dict(session.get_modelmeta().custom_metadata_map)
            self._input = session.get_inputs()[0].name
            self.sha256, self._session = sha, session

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The first output for a float32 input batch."""
        self.load()
        return self._session.run(None, {self._input: np.ascontiguousarray(x, dtype=np.float32)})[0]


def nms(pred: np.ndarray, conf_thres: float, iou_thres: float, classes: list[int] | None = None,
        max_det: int = 300, max_nms: int = 30000) -> np.ndarray:
    """``(K, 6)`` x0 y0 x1 y1 score class of one image's raw head output ``pred (4 + nc, anchors)`` (cx cy w h,
    class scores), as ``ultralytics.utils.nms.non_max_suppression`` computes it (best class per box, score >
    ``conf_thres``, per-class greedy suppression of IoU > ``iou_thres``, at most ``max_det``)."""
    x = np.asarray(pred, np.float32).T  # (anchors, 4 + nc)
    cls = x[:, 4:]
    conf, j = cls.max(1), cls.argmax(1)
    keep = conf > conf_thres
    if classes is not None:
        keep &= np.isin(j, classes)
    x, conf, j = x[keep], conf[keep], j[keep].astype(np.float32)
    if not len(x):
        return np.zeros((0, 6), np.float32)
    xy, wh = x[:, :2], x[:, 2:4] / 2
    det = np.concatenate([xy - wh, xy + wh, conf[:, None], j[:, None]], axis=1).astype(np.float32)
    if len(det) > max_nms:
        det = det[np.argsort(-det[:, 4], kind="stable")[:max_nms]]
    boxes = det[:, :4] + det[:, 5:6] * MAX_WH
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-det[:, 4], kind="stable")
    kept = []
    while order.size:
        i = order[0]
        kept.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        if inter.sum() == 0:  # as ultralytics: nothing overlaps, every other box stays
            order = rest
            continue
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= iou_thres]
    return det[np.array(kept[:max_det], dtype=np.int64)]
