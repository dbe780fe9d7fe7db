"""The U-Net network of :mod:`experts.unet_segmenter`: its config (architecture and preprocessing, as stored in
an ``osler-unet-v1`` checkpoint), the network builder (segmentation-models-pytorch, ``encoder_weights=None``:
nothing is downloaded) and the image -> network input step.  Moved out of :mod:`experts.unet_segmenter`,
which re-exports these names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["CHECKPOINT_FORMAT", "UnetConfig", "build_model", "preprocess"]

CHECKPOINT_FORMAT = "osler-unet-v1"
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class UnetConfig:
    """Everything needed to rebuild the network and its preprocessing from a checkpoint."""

    arch: str = "Unet"
    encoder: str = "mobilenet_v2"
    encoder_depth: int = 5
    decoder_channels: tuple[int, ...] = (128, 64, 32, 16, 8)
    in_channels: int = 3
    in_size: int = 256
    norm: str = "imagenet"  # "imagenet" | "per_image"
    mean: tuple[float, ...] = _IMAGENET_MEAN
    std: tuple[float, ...] = _IMAGENET_STD
    threshold: float = 0.5
    label: str = "region"
    model_id: str = "unet"

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["decoder_channels"], d["mean"], d["std"] = list(self.decoder_channels), list(self.mean), list(self.std)
        return {"format": CHECKPOINT_FORMAT, **d}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "UnetConfig":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        for k in ("decoder_channels", "mean", "std"):
            if k in known:
                known[k] = tuple(known[k])
        return cls(**known)


def build_model(cfg: UnetConfig) -> Any:
    """The smp network of a config, randomly initialised (``encoder_weights=None``)."""
    import segmentation_models_pytorch as smp

    return smp.create_model(cfg.arch, encoder_name=cfg.encoder, encoder_weights=None,
                            encoder_depth=cfg.encoder_depth, decoder_channels=list(cfg.decoder_channels),
                            in_channels=cfg.in_channels, classes=1)


def preprocess(rgb: np.ndarray, cfg: UnetConfig, size: int | None = None) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float32 (C, size, size) network input (``size`` defaults to ``in_size``)."""
    import cv2

    h, w = rgb.shape[:2]
    s = size or cfg.in_size
    interp = cv2.INTER_AREA if h > s and w > s else cv2.INTER_LINEAR
    x = cv2.resize(np.ascontiguousarray(rgb), (s, s), interpolation=interp).astype(np.float32) / 255.0
    if cfg.norm == "per_image":
        g = x.mean(axis=2, keepdims=True)
        g = (g - g.mean()) / max(float(g.std()), 1e-3)
        x = np.repeat(g, cfg.in_channels, axis=2) if cfg.in_channels > 1 else g
    else:
        x = (x - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
        if cfg.in_channels == 1:
            x = x.mean(axis=2, keepdims=True)
    return np.ascontiguousarray(x.transpose(2, 0, 1))
