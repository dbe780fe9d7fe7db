"""The blood-cell YOLO on onnxruntime: :class:`YoloOnnxDetector`, the same detector as
:class:`experts.yolo_backend.YoloDetector` (letterbox, tiling, flip test-time augmentation, per-class
thresholds, boxes in original pixels) with the forward pass and the NMS run by onnxruntime and numpy
instead of torch and ultralytics.

The model is the ONNX export of the bundled checkpoint (``training/export_onnx.py``; the export keeps the
checkpoint's fp16 weights exactly): the boxes equal the torch backend's to float rounding
(``tests/test_onnx_experts.py`` compares both on real smears).  Its results say so: backend ``yolo``, the same
model id, the ONNX file's sha256, and the runtime in the provenance note.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from tools.common import Provenance

from .onnx_runtime import OnnxModel, nms, onnxruntime_version
from .protocols import Detections
from .yolo_backend import YoloDetector

__all__ = ["YoloOnnxDetector"]

log = logging.getLogger("experts.yolo_detector")


class YoloOnnxDetector(YoloDetector):
    """A YOLO detector whose network is an ONNX file run by onnxruntime on the CPU (no torch import)."""

    uses_torch = False  # ExpertPool sets torch's thread count only for experts that run torch
    thread_safe = True  # nothing changes after load(); onnxruntime runs concurrent calls on one session

    def __init__(self, onnx: Path, *, threads: int | None = None, **kw: Any) -> None:
        self.onnx = OnnxModel(Path(onnx).name, threads=threads, path=Path(onnx))
        super().__init__(Path(onnx), device="cpu", **kw)

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            t0 = time.perf_counter()
            self.onnx.load()
            meta = self.onnx.meta
            names = list(json.loads(meta["names"]))
            self._labels = self._labels_of(names)
            self._imgsz = self._imgsz or int(meta.get("imgsz", 640))
            self._stride = int(meta.get("stride", 32))
            self._sha = self.onnx.sha256
            self._meta = {"model_id": meta.get("model_id"), "source": meta.get("source")}
            self.model_id = str(meta.get("model_id") or self.model_id)
            self._model = self.onnx
            log.info("loaded %s (%s, %d classes) on onnxruntime in %.0f ms", self.model_id, self.onnx.path.name,
                     len(names), (time.perf_counter() - t0) * 1000)

    def _forward(self, batch: list[np.ndarray], min_score: float) -> list[np.ndarray]:
        x = np.ascontiguousarray(np.stack(batch).transpose(0, 3, 1, 2), dtype=np.float32)  # NCHW, one pass
        np.divide(x, 255.0, out=x)
        keep_idx = None
        if self.class_filter is not None:
            keep_idx = [i for i, lab in enumerate(self._labels or []) if lab in self.class_filter]
        preds = self._model(x)
        return [nms(p, min_score, self.iou, classes=keep_idx, max_det=self.max_det) for p in preds]

    def _device_name(self) -> str:
        return "cpu"

    def _detections(self, det: np.ndarray, thr: float, t0: float, note: str | None) -> Detections:
        out = super()._detections(det, thr, t0, note)
        runtime = f"onnxruntime {onnxruntime_version()} ({self.onnx.path.name}, export of {self._meta.get('source')})"
        prov: Provenance = out.provenance.model_copy(update={"note": "; ".join(filter(None, [runtime, note]))})
        return Detections(boxes=out.boxes, scores=out.scores, labels=out.labels, min_score=out.min_score,
                          provenance=prov)
