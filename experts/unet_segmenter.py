"""U-Net segmenters (segmentation-models-pytorch) for colon polyps and lungs, and a polyp detector
made of the polyp mask's connected components.

Checkpoint format (``osler-unet-v1``, read with ``torch.load(weights_only=True)``): a dict with the
architecture (``arch``, ``encoder``, ``encoder_depth``, ``decoder_channels``, ``in_channels``),
preprocessing (``in_size``: square network input in pixels; ``norm``: ``"imagenet"`` = per-channel
mean/std of ``mean``/``std`` on [0, 1] RGB, ``"per_image"`` = grey z-score of the image itself),
``threshold``, ``label``, ``model_id`` and ``state_dict`` (fp16 is fine; cast to fp32 on load).
The encoder is built with ``encoder_weights=None``: nothing is downloaded.

Inference: the whole image (or a crop) is resized to ``in_size x in_size`` (aspect not kept, as in
training), the sigmoid probability map (averaged with its horizontal flip) is resized back with
bilinear interpolation and thresholded.  Every mask returned is ``(H, W)`` bool of the original image.

Polyp prompts (``promptable``):

* box ``xyxy``: the model runs on a crop of the box grown by ``box_margin`` of its size per side;
  the component overlapping the box most and any lying mostly (>= 50 %) inside it are kept, clipped
  to the box (a neighbour reaching into the box is left out); when none reach the threshold, the
  threshold drops to half the highest probability in the box.
* points ``(x, y, positive)``: the components that contain a positive point are kept (when none does,
  a box of 25 % of the short image side around the points is used as a box prompt); pixels closer
  to a negative point than to every positive point are removed.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from tools.common import Provenance
from tools.errors import ExpertFailedError, ExpertUnavailableError, InvalidInputError
from tools.settings import OslerSettings

from .geometry import connected_regions, mask_bbox
from .imaging import StudyImage
from .protocols import Detections, Masks
from .unet_model import CHECKPOINT_FORMAT, UnetConfig, build_model, preprocess  # noqa: F401  (re-exported)
from .weights import load_torch_state, resolve_device, resolve_weights, sha256_of

__all__ = [
    "CHECKPOINT_FORMAT", "UnetConfig", "build_model", "preprocess", "UnetSegmenter", "UnetPolypDetector",
    "make_segmenter", "build_polyp", "check_polyp", "build_lung", "check_lung", "build_polyp_detector",
]

log = logging.getLogger(__name__)

POLYP_WEIGHTS, LUNG_WEIGHTS = "polyp_unet.pt", "lung_unet.pt"


def _clip_box(box: tuple[float, float, float, float], w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0 = int(max(0, np.floor(box[0]))), int(max(0, np.floor(box[1])))
    x1, y1 = int(min(w, np.ceil(box[2]))), int(min(h, np.ceil(box[3])))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise InvalidInputError(f"prompt box {tuple(box)} is too small or outside the {w}x{h} image")
    return x0, y0, x1, y1


def _grow(box: tuple[int, int, int, int], frac: float, w: int, h: int) -> tuple[int, int, int, int]:
    x0, y0, x1, y1 = box
    mx, my = int(round(frac * (x1 - x0))), int(round(frac * (y1 - y0)))
    return max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)


class UnetSegmenter:
    """Segmenter protocol over an smp U-Net checkpoint (see the module docstring)."""

    backend = "unet"

    def __init__(self, *, name: str, label: str, weights: Path | None, setting: str, device: str = "auto",
                 promptable: bool = False, min_area_frac: float = 0.002, max_regions: int | None = None,
                 box_margin: float = 0.5, tta: bool = True, note: str | None = None) -> None:
        self.name, self.label, self.weights, self.setting = name, label, weights, setting
        self.device_setting, self.promptable = device, promptable
        self.min_area_frac, self.max_regions, self.box_margin, self.tta = min_area_frac, max_regions, box_margin, tta
        self.note = note
        self.model_id = f"unet-{label}"
        self.cfg: UnetConfig | None = None
        self.sha256: str | None = None
        self.device = "cpu"
        self._net: Any = None

    # -- loading -------------------------------------------------------------------------------
    def load(self) -> None:
        """Read the checkpoint once.  Raises ExpertUnavailableError when it is missing or not ours."""
        if self._net is not None:
            return
        if self.weights is None or not Path(self.weights).exists():
            raise ExpertUnavailableError(
                f"no {self.label} U-Net weights: set {self.setting} to an {CHECKPOINT_FORMAT} .pt file")
        ckpt = load_torch_state(Path(self.weights))
        if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "encoder" not in ckpt:
            raise ExpertUnavailableError(f"{Path(self.weights).name} is not an {CHECKPOINT_FORMAT} checkpoint "
                                         f"(a dict with 'encoder', 'in_size', 'state_dict'); fix {self.setting}")
        import torch

        cfg = UnetConfig.from_dict(ckpt)
        net = build_model(cfg)
        try:
            net.load_state_dict({k: v.float() for k, v in ckpt["state_dict"].items()})
        except RuntimeError as exc:
            raise ExpertUnavailableError(f"{Path(self.weights).name} does not match its architecture: {exc}") from exc
        self.device = resolve_device(self.device_setting)
        self._net = net.to(self.device).eval()
        if self.device == "cuda":
            self.device = f"cuda:{torch.cuda.current_device()}"
        self.cfg, self.model_id, self.sha256 = cfg, cfg.model_id, sha256_of(Path(self.weights))

    @property
    def config(self) -> UnetConfig:
        """The checkpoint's config (loads the checkpoint on first use)."""
        self.load()
        if self.cfg is None:  # load() sets it or raises
            raise ExpertFailedError(f"{self.name}: the checkpoint did not load")
        return self.cfg

    # -- inference -----------------------------------------------------------------------------
    def probability(self, rgb: np.ndarray) -> np.ndarray:
        """float32 (h, w) foreground probability of an RGB array (a whole image or a crop)."""
        import cv2
        import torch

        x = torch.from_numpy(preprocess(rgb, self.config))[None]
        if self.tta:
            x = torch.cat([x, torch.flip(x, dims=[3])])
        with torch.inference_mode():
            p = torch.sigmoid(self._net(x.to(self.device)).float()).cpu()
        if self.tta:
            p = 0.5 * (p[0:1] + torch.flip(p[1:2], dims=[3]))
        prob = p[0, 0].numpy()
        return cv2.resize(prob, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR)

    def _components(self, fg: np.ndarray, min_area: int) -> list[np.ndarray]:
        comps = connected_regions(fg, min_area=max(1, min_area))
        if self.label == "lung":
            from scipy.ndimage import binary_fill_holes

            comps = [binary_fill_holes(c) for c in comps]
        return comps[: self.max_regions] if self.max_regions else comps

    def _provenance(self, t0: float, note: str | None = None) -> Provenance:
        return Provenance(expert=self.name, backend=self.backend, model=self.model_id, weights_sha256=self.sha256,
                          device=self.device, elapsed_ms=(time.perf_counter() - t0) * 1000,
                          note="; ".join(filter(None, [self.note, note])) or None)

    def predict(
        self,
        image: StudyImage,
        *,
        box: tuple[float, float, float, float] | None = None,
        points: list[tuple[float, float, bool]] | None = None,
    ) -> Masks:
        """Automatic: one mask per connected component (lung: one mask of both lungs, possibly empty);
        with a box and/or points: one mask (or none) for the prompted object."""
        t0 = time.perf_counter()
        cfg = self.config
        rgb = image.pixels
        H, W = rgb.shape[:2]
        if (box is not None or points) and not self.promptable:
            raise InvalidInputError(f"the {self.label} U-Net segments automatically and takes no box or points")
        if box is not None or points:
            mask, score, note = self._prompted(rgb, box, points or [])
            masks = [mask] if mask is not None and mask.any() else []
            return Masks(masks, [self.label] * len(masks), [score] * len(masks), self._provenance(t0, note))
        prob = self.probability(rgb)
        comps = self._components(prob >= cfg.threshold, int(self.min_area_frac * H * W))
        if self.label == "lung":
            union = np.zeros((H, W), dtype=bool)
            for c in comps:
                union |= c
            score = float(prob[union].mean()) if union.any() else None
            return Masks([union], [self.label], [score], self._provenance(t0))
        scores: list[float | None] = [float(prob[c].mean()) for c in comps]
        return Masks(comps, [self.label] * len(comps), scores, self._provenance(t0))

    def _box_prob(self, rgb: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """Full-size probability map, computed on the crop of ``box`` grown by ``box_margin`` (0 elsewhere)."""
        H, W = rgb.shape[:2]
        cx0, cy0, cx1, cy1 = _grow(box, self.box_margin, W, H)
        prob = np.zeros((H, W), dtype=np.float32)
        prob[cy0:cy1, cx0:cx1] = self.probability(rgb[cy0:cy1, cx0:cx1])
        return prob

    def _prompted(self, rgb: np.ndarray, box: tuple[float, float, float, float] | None,
                  points: list[tuple[float, float, bool]]) -> tuple[np.ndarray | None, float | None, str | None]:
        cfg = self.config
        H, W = rgb.shape[:2]
        pos = [(x, y) for x, y, p in points if p and 0 <= x < W and 0 <= y < H]
        neg = [(x, y) for x, y, p in points if not p and 0 <= x < W and 0 <= y < H]
        if box is None and not pos:
            raise InvalidInputError("a point prompt needs at least one positive point inside the image")
        note = None
        chosen: np.ndarray | None = None
        prob = np.zeros((H, W), dtype=np.float32)
        if box is None:  # points only: the automatic mask first
            prob = self.probability(rgb)
            comps = self._components(prob >= cfg.threshold, 16)
            hits = [c for c in comps if any(c[int(y), int(x)] for x, y in pos)]
            if hits:
                chosen = np.any(hits, axis=0)
            else:
                half = 0.125 * min(H, W)
                xs, ys = [p[0] for p in pos], [p[1] for p in pos]
                box = (min(xs) - half, min(ys) - half, max(xs) + half + 1, max(ys) + half + 1)
                note = "no component at the point: segmented a box around it"
        if chosen is None and box is not None:
            ib = _clip_box(box, W, H)
            prob = self._box_prob(rgb, ib)
            inside = np.zeros((H, W), dtype=bool)
            inside[ib[1]:ib[3], ib[0]:ib[2]] = True
            chosen = self._select_in_box(prob, inside, pos)
            if chosen is None:
                peak = float(prob[inside].max())
                if peak >= 0.1:
                    chosen = self._select_in_box(prob, inside, pos, thr=0.5 * peak)
                    low = f"low confidence: threshold lowered to {0.5 * peak:.2f} in the box"
                    note = "; ".join(filter(None, [note, low]))
            if chosen is not None:
                chosen &= inside
        if chosen is None or not chosen.any():
            return None, None, note or "nothing found at the prompt"
        if neg and pos:
            yy, xx = np.nonzero(chosen)
            dpos = np.min([(xx - x) ** 2 + (yy - y) ** 2 for x, y in pos], axis=0)
            dneg = np.min([(xx - x) ** 2 + (yy - y) ** 2 for x, y in neg], axis=0)
            drop = dneg < dpos
            chosen[yy[drop], xx[drop]] = False
        elif neg:
            for comp in connected_regions(chosen):
                if any(comp[int(y), int(x)] for x, y in neg):
                    chosen &= ~comp
        return chosen, (float(prob[chosen].mean()) if chosen.any() else None), note

    def _select_in_box(self, prob: np.ndarray, inside: np.ndarray, pos: list[tuple[float, float]],
                       thr: float | None = None) -> np.ndarray | None:
        """Union of the components holding a positive point, else of the one overlapping the box most
        and those lying mostly (>= 50 %) inside it; None when no component touches the box."""
        fg = prob >= (self.config.threshold if thr is None else thr)
        comps = [c for c in connected_regions(fg, min_area=max(4, int(1e-4 * fg.size))) if (c & inside).any()]
        if not comps:
            return None
        hits = [c for c in comps if any(c[int(y), int(x)] for x, y in pos)]
        if not hits:
            overlap = [int((c & inside).sum()) for c in comps]
            best = int(np.argmax(overlap))
            hits = [c for i, (c, o) in enumerate(zip(comps, overlap)) if i == best or o >= 0.5 * c.sum()]
        return np.any(hits, axis=0)


class UnetPolypDetector:
    """Detector protocol: boxes of the polyp mask's components (>= ``min_area_frac`` of the image);
    score = mean probability inside the component; label ``"polyp"``."""

    backend = "unet"
    name = "polyp_detector"
    classes = ("polyp",)
    default_min_score = 0.5

    def __init__(self, segmenter: UnetSegmenter) -> None:
        self.segmenter = segmenter
        self.segmenter.name = self.name

    @property
    def model_id(self) -> str:
        return self.segmenter.model_id

    def load(self) -> None:
        self.segmenter.load()

    def predict(self, image: StudyImage, *, min_score: float | None = None) -> Detections:
        """Boxes ``(N, 4)`` xyxy (exclusive max) in original-image pixels."""
        thr = self.default_min_score if min_score is None else min_score
        raw = self.segmenter.predict(image)
        keep = [(mask_bbox(m), s) for m, s in zip(raw.masks, raw.scores) if s is not None and s >= thr]
        boxes = [b for b, _ in keep if b is not None]
        scores = [s for b, s in keep if b is not None]
        prov = raw.provenance.model_copy(update={"note": "; ".join(filter(None, [
            raw.provenance.note, "boxes of the connected components of the U-Net polyp mask"]))})
        return Detections(np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores, np.float32),
                          ["polyp"] * len(boxes), thr, prov)


# -- registry factories and checks ------------------------------------------------------------------
_POLYP_SETTING, _LUNG_SETTING = "OSLER_MODELS__UNET_POLYP", "OSLER_MODELS__UNET_LUNG"
_POLYP_NOTE = ("Osler default trained on 112 EndoTect frames (val Dice 0.78 alone, 0.83 prompted by the polyp detector, "
               "0.92 from a box); not for clinical use")
_LUNG_NOTE = "Osler default trained on 41 adult COVID-19 CXRs (val Dice 0.93 mean); not for clinical use"


def _check(configured: Path | None, bundled_name: str, setting: str) -> str | None:
    try:
        path = resolve_weights(configured, bundled_name, setting)
    except ExpertUnavailableError as exc:
        return str(exc)
    if path is None:
        return f"no bundled {bundled_name}: set {setting} to a U-Net checkpoint"
    try:
        import segmentation_models_pytorch  # noqa: F401
    except ModuleNotFoundError:
        return "backend 'unet' needs the Python package 'segmentation-models-pytorch' (it is a default dependency of osler: reinstall with 'pip install -e .')"
    return None


def check_polyp(settings: OslerSettings) -> str | None:
    """None when the polyp U-Net can run; otherwise what to set or install."""
    return _check(settings.models.unet_polyp, POLYP_WEIGHTS, _POLYP_SETTING)


def check_lung(settings: OslerSettings) -> str | None:
    """None when the lung U-Net can run; otherwise what to set or install."""
    return _check(settings.models.unet_lung, LUNG_WEIGHTS, _LUNG_SETTING)


def make_segmenter(label: str, weights: Path | None, *, device: str = "auto", note: str | None = None
                   ) -> UnetSegmenter:
    """The segmenter of a target (``"polyp"``: promptable, components >= 0.2 % of the image;
    ``"lung"``: automatic only, the two largest components >= 1 %, holes filled)."""
    if label == "polyp":
        return UnetSegmenter(name="polyp_segmenter", label="polyp", weights=weights, setting=_POLYP_SETTING,
                             device=device, promptable=True, min_area_frac=0.002, note=note)
    if label == "lung":
        return UnetSegmenter(name="lung_segmenter", label="lung", weights=weights, setting=_LUNG_SETTING,
                             device=device, promptable=False, min_area_frac=0.01, max_regions=2, note=note)
    raise ValueError(f"no U-Net segmenter for {label!r}")


def build_polyp(settings: OslerSettings) -> UnetSegmenter:
    path = resolve_weights(settings.models.unet_polyp, POLYP_WEIGHTS, _POLYP_SETTING)
    return make_segmenter("polyp", path, device=settings.device,
                          note=None if settings.models.unet_polyp else _POLYP_NOTE)


def build_lung(settings: OslerSettings) -> UnetSegmenter:
    path = resolve_weights(settings.models.unet_lung, LUNG_WEIGHTS, _LUNG_SETTING)
    return make_segmenter("lung", path, device=settings.device, note=None if settings.models.unet_lung else _LUNG_NOTE)


def build_polyp_detector(settings: OslerSettings) -> UnetPolypDetector:
    return UnetPolypDetector(build_polyp(settings))
