"""Grad-CAM (Selvaraju et al. 2017) with plain torch hooks.

``grad_cam(model, x, target_layer, class_index)`` runs one forward and one backward pass and
returns a float32 ``(H, W)`` map in ``[0, 1]`` at the model *input* size (the size of ``x``),
for the requested class (default: the predicted one).  The map is an approximate explanation:
where the last convolutional features most raised that class's logit, upsampled bilinearly from
the layer's coarse grid (e.g. 5x5 for a 160 px input to MobileNetV3).  Callers resize it to the
original image and label it as approximate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = ["grad_cam", "last_conv_layer"]


def last_conv_layer(model: "torch.nn.Module") -> "torch.nn.Module":
    """The module whose output Grad-CAM should use: the last conv block of known torchvision
    families (ResNet ``layer4``, MobileNet/EfficientNet/MNASNet ``features[-1]``/``layers``,
    ShuffleNet ``conv5``, DenseNet ``features``), else the last ``nn.Conv2d`` found.

    Raises:
        ValueError: the model has no 2-D convolution.
    """
    import torch.nn as nn

    for attr in ("layer4", "conv5"):
        mod = getattr(model, attr, None)
        if isinstance(mod, nn.Module):
            return mod
    feats = getattr(model, "features", None)
    if isinstance(feats, nn.Sequential) and len(feats) > 0:
        return feats if type(model).__name__.lower().startswith("densenet") else feats[-1]
    layers = getattr(model, "layers", None)
    if isinstance(layers, nn.Sequential) and len(layers) > 0:
        return layers
    last = None
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            last = mod
    if last is None:
        raise ValueError(f"{type(model).__name__} has no Conv2d layer: Grad-CAM needs a convolutional feature map")
    return last


def grad_cam(
    model: "torch.nn.Module",
    x: "torch.Tensor",
    target_layer: "torch.nn.Module | None" = None,
    class_index: int | None = None,
    logits_fn: Any = None,
) -> tuple[np.ndarray, int]:
    """Grad-CAM map for one image.

    Args:
        model: a classifier in eval mode; ``model(x)`` returns logits ``(1, K)`` (or an object
            that ``logits_fn`` turns into them, e.g. a transformers output).
        x: input tensor ``(1, C, H, W)`` on the model's device.
        target_layer: module whose output ``(1, C', h, w)`` is explained (default: :func:`last_conv_layer`).
        class_index: class to explain; default the arg-max of the logits.
        logits_fn: optional callable mapping the model output to logits.

    Returns:
        ``(cam, class_index)``: ``cam`` float32 ``(H, W)`` in ``[0, 1]`` (all zeros when no
        location raises the class), and the class explained.
    """
    import torch
    import torch.nn.functional as F

    layer = target_layer if target_layer is not None else last_conv_layer(model)
    store: dict[str, torch.Tensor] = {}

    def fwd_hook(_m: Any, _inp: Any, out: Any) -> None:
        out = out[0] if isinstance(out, (tuple, list)) else out
        store["act"] = out
        out.register_hook(lambda g: store.__setitem__("grad", g))

    handle = layer.register_forward_hook(fwd_hook)
    try:
        with torch.enable_grad():
            inp = x.detach().clone().requires_grad_(True)  # makes the graph exist even with frozen weights
            out = model(inp)
            logits = logits_fn(out) if logits_fn is not None else out
            idx = int(logits[0].argmax()) if class_index is None else int(class_index)
            model.zero_grad(set_to_none=True)
            logits[0, idx].backward()
    finally:
        handle.remove()
    act, grad = store.get("act"), store.get("grad")
    if act is None or grad is None or act.dim() != 4:
        raise ValueError("the target layer did not produce a (1, C, h, w) feature map with a gradient")
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * act).sum(dim=1, keepdim=True)).detach().float()
    cam = F.interpolate(cam, size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0, 0]
    top = float(cam.max())
    cam = cam / top if top > 0 else torch.zeros_like(cam)
    return cam.clamp_(0.0, 1.0).cpu().numpy().astype(np.float32), idx
