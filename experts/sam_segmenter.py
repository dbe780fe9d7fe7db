"""Promptable segmentation with segment-anything (SAM ViT-B/L/H) or MedSAM, from a local checkpoint.

Nothing is bundled or downloaded: ``settings.models.sam_checkpoint`` names a ``.pth`` file and
``settings.models.sam_model_type`` its image encoder (``vit_b``/``vit_l``/``vit_h``).  The file is
a ``Sam`` state dict (also accepted wrapped as ``{"model": ...}`` or ``{"state_dict": ...}``, with
``module.`` prefixes).  A MedSAM checkpoint is a ViT-B state dict; a file whose name contains
``medsam`` is run the MedSAM way.

Two variants of pre/post-processing:

* ``sam`` (as ``segment_anything.SamPredictor``): long side resized to the encoder's ``img_size``
  (1024), pixel mean/std normalisation and padding (``Sam.preprocess``); prompts scaled the same way;
  ``multimask_output=True`` and the mask with the highest predicted IoU is returned;
* ``medsam`` (as MedSAM's inference script): the image resized to ``img_size x img_size`` (aspect not
  kept), min-max scaled to [0, 1], fed to the encoder as is; one mask (``multimask_output=False``),
  low-res logits resized to the image size.

Prompts are in original-image pixels: a box ``xyxy`` and/or points ``(x, y, positive)``.  The
returned mask is ``(H, W)`` bool of the original image; its score is the predicted IoU.  The image
embedding is computed once per image (key: a hash of the pixels) and kept for the next prompts
(the last ``cache_size`` images).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from tools.common import Provenance
from tools.errors import ExpertUnavailableError, InvalidInputError
from tools.settings import OslerSettings

from .embedding_cache import Embedding, EmbeddingCache, pixels_key
from .imaging import StudyImage
from .protocols import Masks
from .weights import load_torch_state, resolve_device, sha256_of

__all__ = ["SamSegmenter", "build", "check", "extract_state_dict", "pixels_key"]

log = logging.getLogger(__name__)

_SETTING = "OSLER_MODELS__SAM_CHECKPOINT"


def extract_state_dict(obj: Any) -> dict[str, Any]:
    """The ``Sam`` state dict inside a loaded checkpoint (plain, ``{"model": sd}``, ``{"state_dict": sd}``),
    with any ``module.`` prefix removed."""
    if isinstance(obj, dict):
        for key in ("model", "state_dict"):
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise ExpertUnavailableError(f"the SAM checkpoint holds no state dict; set {_SETTING} to a SAM/MedSAM .pth")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in obj.items()}


class SamSegmenter:
    """Segmenter protocol over a segment-anything ``Sam`` model (see the module docstring)."""

    name = "promptable_segmenter"
    backend = "sam"
    promptable = True

    def __init__(self, checkpoint: Path | None, model_type: str = "vit_b", device: str = "auto",
                 variant: str = "sam", cache_size: int = 4) -> None:
        if variant not in ("sam", "medsam"):
            raise ValueError(f"variant must be 'sam' or 'medsam', got {variant!r}")
        self.checkpoint, self.model_type, self.device_setting = checkpoint, model_type, device
        self.variant, self.cache_size = variant, cache_size
        self.model_id = f"{'medsam' if variant == 'medsam' else 'sam'}-{model_type}"
        self.sha256: str | None = None
        self.device = "cpu"
        self.sam: Any = None
        self._cache = EmbeddingCache(cache_size)

    @classmethod
    def from_model(cls, sam: Any, *, variant: str = "sam", device: str = "cpu", model_id: str = "sam-custom",
                   cache_size: int = 4) -> "SamSegmenter":
        """Wrap an already built ``segment_anything.modeling.Sam`` (e.g. a tiny random one in tests)."""
        seg = cls(None, device=device, variant=variant, cache_size=cache_size)
        seg.model_id, seg.device = model_id, device
        seg.sam = sam.to(device).eval()
        return seg

    # -- loading -------------------------------------------------------------------------------
    def load(self) -> None:
        """Build the model and read the checkpoint, once."""
        if self.sam is not None:
            return
        if self.checkpoint is None or not Path(self.checkpoint).exists():
            raise ExpertUnavailableError(f"no SAM checkpoint: set {_SETTING} to a local SAM or MedSAM .pth file")
        from segment_anything import sam_model_registry

        if self.model_type not in ("vit_b", "vit_l", "vit_h"):
            raise ExpertUnavailableError(f"unknown SAM model type {self.model_type!r}: use vit_b, vit_l or vit_h")
        sam = sam_model_registry[self.model_type]()
        state = extract_state_dict(load_torch_state(Path(self.checkpoint)))
        try:
            sam.load_state_dict(state)
        except RuntimeError as exc:
            raise ExpertUnavailableError(
                f"{Path(self.checkpoint).name} does not fit SAM {self.model_type}: set OSLER_MODELS__SAM_MODEL_TYPE "
                f"to the checkpoint's encoder (vit_b for MedSAM) ({str(exc).splitlines()[0]})") from exc
        device = resolve_device(self.device_setting)
        self.sam = sam.to(device).eval()
        self.device = device if device == "cpu" else str(next(sam.parameters()).device)
        self.sha256 = sha256_of(Path(self.checkpoint))

    # -- embedding -----------------------------------------------------------------------------
    def _input(self, rgb: np.ndarray) -> tuple[Any, tuple[int, int]]:
        """(1, 3, S, S) encoder input tensor on the device, and the resized (h, w) before padding."""
        import torch

        size = int(self.sam.image_encoder.img_size)
        if self.variant == "medsam":
            import cv2

            x = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_CUBIC).astype(np.float32)
            x = (x - x.min()) / max(float(x.max() - x.min()), 1e-8)
            t = torch.from_numpy(x).permute(2, 0, 1)[None].to(self.device)
            return t, (size, size)
        from segment_anything.utils.transforms import ResizeLongestSide

        resized = ResizeLongestSide(size).apply_image(rgb)
        t = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
        return self.sam.preprocess(t), (int(resized.shape[0]), int(resized.shape[1]))

    def embedding(self, rgb: np.ndarray) -> Embedding:
        """(features (1, C, h, w), original (H, W), resized input (h, w)), computed once per image."""
        import torch

        def encode(x_rgb: np.ndarray) -> tuple[Any, tuple[int, int]]:
            x, input_size = self._input(x_rgb)
            with torch.inference_mode():
                return self.sam.image_encoder(x), input_size

        return self._cache.get(rgb, encode)

    @property
    def embeddings_computed(self) -> int:
        return self._cache.computed

    # -- prediction ----------------------------------------------------------------------------
    def predict(
        self,
        image: StudyImage,
        *,
        box: tuple[float, float, float, float] | None = None,
        points: list[tuple[float, float, bool]] | None = None,
    ) -> Masks:
        """One (H, W) bool mask for the prompt (none when SAM returns an empty mask)."""
        import torch

        t0 = time.perf_counter()
        if box is None and not points:
            raise InvalidInputError("SAM needs a box or points to segment (it has no automatic mode here)")
        self.load()
        rgb = np.ascontiguousarray(image.pixels)
        H, W = rgb.shape[:2]
        if box is not None and (box[2] <= box[0] or box[3] <= box[1] or box[2] <= 0 or box[3] <= 0
                                or box[0] >= W or box[1] >= H):
            raise InvalidInputError(f"prompt box {tuple(box)} is empty or outside the {W}x{H} image")
        cached_before = self.embeddings_computed
        feats, orig, input_size = self.embedding(rgb)
        sx, sy = input_size[1] / W, input_size[0] / H
        pts = None
        if points:
            coords = torch.tensor([[[x * sx, y * sy] for x, y, _ in points]], dtype=torch.float, device=self.device)
            labels = torch.tensor([[1 if p else 0 for _, _, p in points]], dtype=torch.int, device=self.device)
            pts = (coords, labels)
        boxes = None
        if box is not None:
            b = np.clip(np.asarray(box, dtype=np.float64), 0, [W, H, W, H]) * [sx, sy, sx, sy]
            boxes = torch.tensor(b[None], dtype=torch.float, device=self.device)
        multimask = self.variant == "sam"
        with torch.inference_mode():
            sparse, dense = self.sam.prompt_encoder(points=pts, boxes=boxes, masks=None)
            low, iou = self.sam.mask_decoder(image_embeddings=feats, image_pe=self.sam.prompt_encoder.get_dense_pe(),
                                             sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                             multimask_output=multimask)
            best = int(torch.argmax(iou[0]))
            if self.variant == "medsam":
                logits = torch.nn.functional.interpolate(low[:, best:best + 1], size=orig, mode="bilinear",
                                                         align_corners=False)
            else:
                logits = self.sam.postprocess_masks(low[:, best:best + 1], input_size, orig)
        mask = (logits[0, 0] > self.sam.mask_threshold).cpu().numpy()
        score = float(np.clip(float(iou[0, best]), 0.0, 1.0))
        note = "image embedding reused" if self.embeddings_computed == cached_before else None
        prov = Provenance(expert=self.name, backend=self.backend, model=self.model_id, weights_sha256=self.sha256,
                          device=self.device, elapsed_ms=(time.perf_counter() - t0) * 1000, note=note)
        masks = [mask] if mask.any() else []
        return Masks(masks=masks, labels=["region"] * len(masks), scores=[score] * len(masks), provenance=prov)


def check(settings: OslerSettings) -> str | None:
    """None when a SAM checkpoint is configured, exists and segment-anything imports."""
    path = settings.models.sam_checkpoint
    if path is None:
        return (f"no SAM checkpoint is configured (none is bundled): set {_SETTING} to a local SAM ViT-B/L/H "
                "or MedSAM .pth file (and OSLER_MODELS__SAM_MODEL_TYPE to its encoder)")
    if not Path(path).expanduser().exists():
        return f"{_SETTING} points to {path}, which does not exist; fix the setting"
    try:
        import segment_anything  # noqa: F401
    except ModuleNotFoundError:
        return "backend 'sam' needs the Python package 'segment-anything' (pip install segment-anything==1.0)"
    return None


def build(settings: OslerSettings) -> SamSegmenter:
    path = settings.models.sam_checkpoint
    path = Path(path).expanduser() if path is not None else None
    variant = settings.models.sam_variant
    if variant == "auto":
        variant = "medsam" if path is not None and "medsam" in path.name.lower() else "sam"
    return SamSegmenter(path, model_type=settings.models.sam_model_type, device=settings.device, variant=variant)
