"""Checkpoints of the chest X-ray classifier: the network builder (torchvision / timm, random weights, never
downloads), the reader that turns every accepted checkpoint form into one dict, and the logits -> probabilities
step.  Moved out of :mod:`experts.cxr_classifier` (which re-exports these names); the accepted forms are
described there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tools.errors import ExpertUnavailableError

from .weights import load_torch_state

__all__ = ["TIMM_ARCHS", "build_net", "read_checkpoint"]

_SETTING = "models.cxr_classifier (OSLER_MODELS__CXR_CLASSIFIER)"


TIMM_ARCHS = frozenset({"tf_efficientnet_lite0"})  # built with timm, everything else with torchvision


def build_net(arch: str, num_classes: int, in_channels: int = 3) -> Any:
    """A torchvision (or, for :data:`TIMM_ARCHS`, timm) classification network with random weights
    (never downloads).

    ``in_channels`` other than 3 replaces the first ``Conv2d`` with one of the same geometry.
    """
    import torch.nn as nn
    import torchvision

    if arch in TIMM_ARCHS:
        import timm

        net = timm.create_model(arch, pretrained=False, num_classes=num_classes, in_chans=in_channels)
        return net
    ctor = getattr(torchvision.models, arch, None)
    if ctor is None or not callable(ctor) or arch.startswith("_"):
        raise ExpertUnavailableError(f"unknown torchvision architecture '{arch}' in the checkpoint")
    net = ctor(weights=None, num_classes=num_classes)
    if in_channels != 3:
        for parent in net.modules():
            for name, child in parent.named_children():
                if isinstance(child, nn.Conv2d):
                    parent._modules[name] = nn.Conv2d(
                        in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                        child.dilation, child.groups, child.bias is not None,
                    )
                    return net
    return net


def _strip_prefixes(state: dict[str, Any]) -> dict[str, Any]:
    for prefix in ("module.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read any accepted checkpoint form into ``{"arch", "labels", "state_dict", "in_channels",
    "input_size", "mean", "std", "temperature", "activation", "model_id", "intensity", "threshold",
    "uncertain_band", "tta"}``.  Defaults for older checkpoints: ``intensity="uint8"``, ``threshold=0.5``,
    ``uncertain_band=0`` (never uncertain), ``tta="none"``.

    Raises:
        ExpertUnavailableError: unreadable file, or no label list / architecture to be found.
    """
    try:
        obj = load_torch_state(path)
    except ExpertUnavailableError:
        raise
    except Exception as exc:  # torch raises many kinds for a non-weights file
        raise ExpertUnavailableError(
            f"{path.name}: cannot be read as a weights-only torch checkpoint ({exc}); "
            f"export a state dict with labels, or fix {_SETTING}"
        ) from exc
    if not isinstance(obj, dict):
        raise ExpertUnavailableError(f"{path.name}: expected a dict checkpoint, got {type(obj).__name__}")
    if "state_dict" in obj:
        meta, state = {k: v for k, v in obj.items() if k != "state_dict"}, obj["state_dict"]
    else:
        meta, state = {}, obj
        for side in (path.with_suffix(".json"), path.parent / "labels.json"):
            if side.exists():
                loaded = json.loads(side.read_text())
                meta = {"labels": loaded} if isinstance(loaded, list) else dict(loaded)
                break
    labels = meta.get("labels")
    if not labels or not all(isinstance(x, str) for x in labels):
        raise ExpertUnavailableError(
            f"{path.name}: no label list; save {{'arch', 'labels', 'state_dict'}} or put a "
            f"{path.with_suffix('.json').name} with the labels next to it"
        )
    state = _strip_prefixes(dict(state))
    first_conv = next((v for v in state.values() if hasattr(v, "dim") and v.dim() == 4), None)
    in_ch = int(meta.get("in_channels") or (first_conv.shape[1] if first_conv is not None else 3))
    default_mean, default_std = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]) if in_ch == 3 else ([0.5], [0.25])
    mean = [float(v) for v in meta.get("mean", default_mean)]
    std = [float(v) for v in meta.get("std", default_std)]
    if len(mean) == 1 and in_ch > 1:
        mean, std = mean * in_ch, std * in_ch
    return {
        "arch": str(meta.get("arch", "resnet18")),
        "labels": tuple(str(x) for x in labels),
        "state_dict": state,
        "in_channels": in_ch,
        "input_size": int(meta.get("input_size", 224)),
        "mean": mean,
        "std": std,
        "temperature": float(meta.get("temperature", 1.0) or 1.0),
        "calibrated": "temperature" in meta,
        "intensity": str(meta.get("intensity", "uint8")),  # v1 checkpoints: pixel / 255
        "threshold": float(meta.get("threshold", 0.5)),
        "uncertain_band": float(meta.get("uncertain_band", 0.0)),
        "tta": str(meta.get("tta", "none")),
        "activation": str(meta.get("activation", "softmax")),
        "model_id": str(meta.get("model_id", f"{meta.get('arch', 'resnet18')}:{path.name}")),
    }


def _probabilities(logits: "np.ndarray", activation: str, temperature: float) -> np.ndarray:
    z = logits.astype(np.float64) / temperature
    if activation == "sigmoid":
        p = 1.0 / (1.0 + np.exp(-z))
        return p / max(p.sum(), 1e-12)
    z = z - z.max()
    e = np.exp(z)
    return e / e.sum()
