"""The YOLO backend: :class:`YoloDetector`, the Detector protocol over an ultralytics detection model.

Weights are local files only, read once by :meth:`YoloDetector.load` with ``weights_only=True``
(:func:`experts.ultralytics_env.read_checkpoint`).  Pre/post-processing is ours (no ultralytics
predictor, see :mod:`experts.yolo_postprocess`): letterbox, float32 forward pass, ultralytics' NMS,
boxes mapped back to ``xyxy`` pixels of the ORIGINAL image and clipped; tiling for images much larger
than the training field of view; optional flip test-time augmentation.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tools.common import Provenance
from tools.errors import ExpertFailedError, ExpertUnavailableError, InvalidInputError

from .imaging import StudyImage
from .magnification import Ruler, median_side, resample
from .detection_tta import FLIPS, flip_views, merge_views, unflip
from .protocols import Detections
from .ultralytics_env import read_checkpoint
from .weights import sha256_of
from .yolo_postprocess import _canvas, _letterbox, _merge_tiles, _tiles
from .yolo_weights import _SETTINGS

__all__ = ["YoloDetector"]

log = logging.getLogger("experts.yolo_detector")  # the logger name it had before the split

_TTA_FLOOR = 0.02  # per-view confidence floor under flip TTA: a box seen by one view still enters the mean


class YoloDetector:
    """Detector protocol over an ultralytics detection model.

    ``classes`` are the checkpoint's names (mapped through ``label_map``); reading them loads
    the checkpoint when the factory did not declare them.  ``class_filter`` keeps only those labels.
    """

    backend = "yolo"

    def __init__(
        self,
        weights: Path | None,
        *,
        name: str = "yolo_detector",
        setting: str = _SETTINGS["custom"],
        device: str = "cpu",
        config_dir: Path | None = None,
        classes: tuple[str, ...] | None = None,
        label_map: Callable[[str], str] | None = None,
        class_filter: Sequence[str] | None = None,
        default_min_score: float = 0.25,
        iou: float = 0.5,
        imgsz: int | None = None,
        max_det: int = 300,
        tile_size: int | None = None,
        tile_trigger: float = 2.0,
        tile_overlap: float = 0.3,
        model: Any = None,
        names: Sequence[str] | None = None,
        tta: bool = False,
        class_min_scores: dict[str, float] | None = None,
        ruler: Ruler | None = None,
        input_doubt: Callable[[np.ndarray], str | None] | None = None,
    ) -> None:
        self.weights, self.name, self.setting, self.device = weights, name, setting, device
        self.config_dir, self.label_map = config_dir, label_map
        self.class_filter = tuple(class_filter) if class_filter else None
        self.default_min_score, self.iou, self.max_det = default_min_score, iou, max_det
        self.tile_size, self.tile_trigger, self.tile_overlap = tile_size, tile_trigger, tile_overlap
        self.tta, self.class_min_scores = tta, dict(class_min_scores or {})
        self.ruler = ruler  # the cells' magnification is read and normalised (experts.magnification)
        self.input_doubt = input_doubt  # why an image is outside what the detector was checked on (experts.smear_tone)
        self._declared, self._imgsz = classes, imgsz
        self._model = model
        self._labels: list[str] | None = None
        self._meta: dict = {}
        self._sha: str | None = None
        self._lock = threading.Lock()
        self.model_id = weights.stem if weights is not None else "in-memory"
        if model is not None:
            if names is None:
                raise ValueError("an in-memory model needs its class names")
            self._finish_load(model, list(names), imgsz, {})

    # -- loading ---------------------------------------------------------------------------
    @property
    def classes(self) -> tuple[str, ...]:
        if self._labels is None and self._declared is not None:
            return self._declared
        self.load()
        labels = tuple(dict.fromkeys(self._labels or []))
        return tuple(c for c in labels if self.class_filter is None or c in self.class_filter)

    @property
    def imgsz(self) -> int:
        self.load()
        return int(self._imgsz or 640)

    def load(self) -> None:
        """Read the checkpoint once (the only place weights are read)."""
        with self._lock:
            if self._model is not None:
                return
            if self.weights is None:
                raise ExpertUnavailableError(f"no YOLO weights for {self.name}: set {self.setting}")
            if not Path(self.weights).is_file():
                raise ExpertUnavailableError(f"{self.setting} points to {self.weights}, which is not a file")
            if self.config_dir is not None:
                from .ultralytics_env import prepare_ultralytics

                prepare_ultralytics(self.config_dir)
            t0 = time.perf_counter()
            self._sha = sha256_of(Path(self.weights))
            model, names, imgsz, meta = read_checkpoint(Path(self.weights), self.setting)
            self._finish_load(model, names, self._imgsz or imgsz, meta)
            log.info("loaded %s (%s, %d classes) on %s in %.0f ms", self.model_id, self.weights.name, len(names),
                     self.device, (time.perf_counter() - t0) * 1000)

    def _finish_load(self, model: Any, names: list[str], imgsz: int | None, meta: dict) -> None:
        labels = self._labels_of(names)
        if hasattr(model, "fuse"):
            model = model.fuse(verbose=False) if "verbose" in model.fuse.__code__.co_varnames else model.fuse()
        model = model.to(self.device).float().eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self._model, self._labels, self._imgsz, self._meta = model, labels, imgsz, meta
        self.model_id = str(meta.get("model_id") or self.model_id)
        stride = getattr(model, "stride", None)
        self._stride = int(max(stride.max().item() if hasattr(stride, "max") else 32, 32))

    def _labels_of(self, names: list[str]) -> list[str]:
        """The checkpoint's class names as this detector's labels (ExpertUnavailableError when a declared class
        is missing)."""
        labels = [self.label_map(n) if self.label_map else n for n in names]
        if self._declared is not None and len(self._declared) == 1 == len(labels) and labels != list(self._declared):
            log.info("single-class checkpoint: reading its class %r as %r", names[0], self._declared[0])
            labels = list(self._declared)
        if self._declared is not None:
            missing = [c for c in self._declared if c not in labels]
            if missing:
                raise ExpertUnavailableError(
                    f"{self.setting}: checkpoint classes {names} do not provide {missing}; use a checkpoint "
                    f"trained for {list(self._declared)}")
        return labels

    # -- inference -------------------------------------------------------------------------
    def _forward(self, batch: list[np.ndarray], min_score: float) -> list[np.ndarray]:
        """Run letterboxed uint8 RGB images of one shape; (K, 6) arrays x0 y0 x1 y1 score cls
        in letterbox pixels."""
        import torch
        from ultralytics.utils.nms import non_max_suppression

        x = torch.from_numpy(np.ascontiguousarray(np.stack(batch).transpose(0, 3, 1, 2))).to(self.device)
        x = x.float() / 255.0
        keep_idx = None
        if self.class_filter is not None:
            keep_idx = [i for i, lab in enumerate(self._labels or []) if lab in self.class_filter]
        with torch.inference_mode():
            preds = self._model(x)
            out = non_max_suppression(preds, conf_thres=min_score, iou_thres=self.iou, classes=keep_idx,
                                      max_det=self.max_det, nc=0)
        return [o[:, :6].float().cpu().numpy() for o in out]

    def _run(self, images: list[np.ndarray], min_score: float) -> list[np.ndarray]:
        """Full-image inference for several RGB arrays; (K, 6) per image in original pixels."""
        size, stride = self.imgsz, self._stride
        canvases = [_canvas(im.shape[:2], size, stride) for im in images]
        canvas = (max(c[0] for c in canvases), max(c[1] for c in canvases))
        boxed = [_letterbox(im, size, canvas) for im in images]
        results = []
        for (_, r, (px, py)), det, im in zip(boxed, self._forward([b[0] for b in boxed], min_score), images):
            det = det.copy()
            det[:, [0, 2]] = (det[:, [0, 2]] - px) / r
            det[:, [1, 3]] = (det[:, [1, 3]] - py) / r
            h, w = im.shape[:2]
            det[:, [0, 2]] = det[:, [0, 2]].clip(0, w)
            det[:, [1, 3]] = det[:, [1, 3]].clip(0, h)
            results.append(det[(det[:, 2] > det[:, 0]) & (det[:, 3] > det[:, 1])])
        return results

    def _run_tiled(self, rgb: np.ndarray, min_score: float) -> np.ndarray:
        h, w = rgb.shape[:2]
        wins = _tiles(h, w, int(self.tile_size or 640), self.tile_overlap)
        parts, margins = [], []
        for i in range(0, len(wins), 8):
            chunk = wins[i:i + 8]
            for (x0, y0, x1, y1), det in zip(chunk, self._run([rgb[y0:y1, x0:x1] for x0, y0, x1, y1 in chunk],
                                                                min_score)):
                inf = np.full(len(det), np.inf, np.float32)  # distance to the nearest INNER tile edge
                margin = np.minimum.reduce([
                    det[:, 0] if x0 > 0 else inf, det[:, 1] if y0 > 0 else inf,
                    (x1 - x0) - det[:, 2] if x1 < w else inf, (y1 - y0) - det[:, 3] if y1 < h else inf,
                ])
                keep = margin > 2.0  # cut by an inner edge: a neighbouring tile holds it whole
                det = det[keep].copy()
                det[:, [0, 2]] += x0
                det[:, [1, 3]] += y0
                parts.append(det)
                margins.append(margin[keep])
        if not parts or not sum(len(p) for p in parts):
            return np.zeros((0, 6), np.float32)
        return _merge_tiles(np.concatenate(parts), np.concatenate(margins), self.iou)[: self.max_det]

    def _needs_tiles(self, shape: tuple[int, ...], force: bool = False) -> bool:
        """Tiles for an image much larger than the training field, or (``force``: an image resampled to the
        training magnification) for any image larger than one field."""
        return self.tile_size is not None and max(shape[:2]) > (1.0 if force else self.tile_trigger) * self.tile_size

    def _detections(self, det: np.ndarray, thr: float, t0: float, note: str | None) -> Detections:
        labels = [self._labels[int(c)] for c in det[:, 5]] if self._labels else []
        prov = Provenance(
            expert=self.name, backend=self.backend, model=self.model_id, weights_sha256=self._sha,
            device=self._device_name(), elapsed_ms=(time.perf_counter() - t0) * 1000, note=note,
        )
        return Detections(boxes=det[:, :4], scores=det[:, 4], labels=labels, min_score=thr, provenance=prov)

    def _device_name(self) -> str:
        if self.device != "cuda":
            return str(self.device)
        import torch

        return f"cuda:{torch.cuda.current_device()}"

    def predict(self, image: StudyImage, *, min_score: float | None = None) -> Detections:
        """Boxes ``(N, 4)`` xyxy in original-image pixels, scores, labels, at ``min_score``
        (default ``default_min_score``)."""
        return self.predict_batch([image], min_score=min_score)[0]

    def _run_tta(self, rgb: np.ndarray, min_score: float) -> np.ndarray:
        """The image and its two mirrors in one batch, mapped back and merged (mean score over views)."""
        h, w = rgb.shape[:2]
        views = self._run(flip_views(rgb), min(min_score, _TTA_FLOOR))
        return merge_views([unflip(d, f, w, h) for d, f in zip(views, FLIPS)], self.iou)

    def _thresholded(self, det: np.ndarray, thr: float, per_class: dict[str, float]) -> np.ndarray:
        if not per_class or not self._labels:
            return det[det[:, 4] >= thr]
        need = np.array([per_class.get(self._labels[int(c)], thr) for c in det[:, 5]], dtype=np.float32)
        return det[det[:, 4] >= need]

    def predict_batch(self, images: Sequence[StudyImage], *, min_score: float | None = None,
                      force_tiles: bool = False) -> list[Detections]:
        """Several images in one forward pass where their shapes allow (tiled ones run alone).  With
        ``tta`` each whole image runs with its two mirrors (:mod:`experts.detection_tta`); without an
        explicit ``min_score`` each class in ``class_min_scores`` gets its own threshold and the result's
        ``min_score`` is the lowest one applied (the provenance note lists them).  With a ``ruler`` each image's
        magnification is read first and normalised (:meth:`_at_training_magnification`).  With an ``input_doubt``
        its reason for an image joins the provenance's ``doubt``."""
        self.load()
        if self.ruler is not None and not force_tiles:
            out = [self._at_training_magnification(im, min_score) for im in images]
        else:
            out = self._predict_batch(images, min_score, force_tiles)
        if self.input_doubt is not None:
            for d, im in zip(out, images):
                why = "; ".join(filter(None, [d.provenance.doubt, self.input_doubt(im.pixels)]))
                d.provenance = d.provenance.model_copy(update={"doubt": why or None})
        return out

    def _magnification(self, rgb: np.ndarray) -> float | None:
        """The ruler class's median size against its size at training magnification (None when too few are seen
        whole): first in one field cut from the centre at the image's own pixel size (a larger field of view at the
        training magnification reads 1 there), else on the whole image scaled to one field (an enlarged copy of a
        field; the detector finds cells at a third of their size less well, so this read is the second)."""
        assert self.ruler is not None
        h, w = rgb.shape[:2]
        t = int(self.tile_size or max(h, w))
        y0, x0 = max(0, (h - t) // 2), max(0, (w - t) // 2)
        views = [(rgb[y0:y0 + t, x0:x0 + t], 1.0)]
        if max(h, w) > t:
            views.append((resample(rgb, t / max(h, w)), t / max(h, w)))
        for view, s in views:
            det = self._run([np.ascontiguousarray(view)], self.default_min_score)[0]
            labels = [self._labels[int(c)] for c in det[:, 5]] if self._labels else []
            side = median_side(det[:, :4], labels, self.ruler.label, view.shape, self.ruler.min_count)
            if side is not None:
                return side / s / self.ruler.side_px
        return None

    def _at_training_magnification(self, image: StudyImage, min_score: float | None) -> Detections:
        """Detections at the training magnification: read as is when the network sees the ruler class inside the
        band (a whole image is scaled to one field, a tiled one is read at its own pixel size), else on the image
        resampled so the ruler class has its training size (boxes mapped back); refused far below the band."""
        assert self.ruler is not None
        rgb = image.pixels
        try:
            ratio = self._magnification(rgb)
        except (RuntimeError, ValueError) as exc:
            raise ExpertFailedError(f"{self.name}: YOLO inference failed ({exc})") from exc
        lo, hi = self.ruler.band
        long = max(rgb.shape[:2])
        field = float(self.tile_size or long)
        seen = ratio if ratio is None or self._needs_tiles(rgb.shape) else ratio * field / long  # as the net sees it
        if seen is None or lo <= seen <= hi:
            d = self._predict_batch([image], min_score, False)[0]
            d.provenance = d.provenance.model_copy(update={"note": "; ".join(filter(None, [
                d.provenance.note, self.ruler.note(ratio, None, seen)])), "doubt": None if ratio else self.ruler.doubt()})
            return d
        if ratio < self.ruler.lowest:
            raise InvalidInputError(
                f"the {self.ruler.label} in this image are {ratio:.2f}x their size in the images the {self.name} was "
                f"trained on (median {ratio * self.ruler.side_px:.0f} px against {self.ruler.side_px:.0f}): the "
                f"magnification is too low to count cells; use a higher objective or a detector trained at this "
                f"magnification")
        scale = 1.0 / ratio
        small = resample(rgb, scale)
        d = self._predict_batch([StudyImage.from_pixels(small, source=image.meta.source)], min_score,
                                small.shape[0] > (self.tile_size or 0) or small.shape[1] > (self.tile_size or 0))[0]
        h, w = rgb.shape[:2]
        fx, fy = w / small.shape[1], h / small.shape[0]
        boxes = np.clip(d.boxes * np.array([fx, fy, fx, fy], np.float32), 0, [w, h, w, h])
        prov = d.provenance.model_copy(update={"note": "; ".join(filter(None, [
            d.provenance.note, self.ruler.note(ratio, scale)]))})
        return Detections(boxes=boxes, scores=d.scores, labels=d.labels, min_score=d.min_score, provenance=prov)

    def _predict_batch(self, images: Sequence[StudyImage], min_score: float | None,
                       force_tiles: bool) -> list[Detections]:
        per_class = self.class_min_scores if min_score is None else {}
        thr = self.default_min_score if min_score is None else float(min_score)
        floor = min([thr, *per_class.values()])
        class_note = ("per-class thresholds " + ", ".join(f"{k} {v:.2f}" for k, v in per_class.items())
                      + f", others {thr:.2f}") if per_class else None
        tta_note = f"flip test-time augmentation ({len(FLIPS)} views, mean score)"
        t0 = time.perf_counter()
        out: list[Detections | None] = [None] * len(images)
        try:
            whole = [i for i, im in enumerate(images) if not self._needs_tiles(im.pixels.shape, force_tiles)]
            if self.tta:  # three views of one image fill a batch
                for i in whole:
                    det = self._thresholded(self._run_tta(images[i].pixels, floor), thr, per_class)
                    out[i] = self._detections(det, floor, t0, "; ".join(filter(None, [tta_note, class_note])))
            for j in range(0, 0 if self.tta else len(whole), 16):
                idx = whole[j:j + 16]
                for i, det in zip(idx, self._run([images[i].pixels for i in idx], floor)):
                    out[i] = self._detections(self._thresholded(det, thr, per_class), floor, t0, class_note)
            for i, im in enumerate(images):
                if out[i] is None:
                    det = self._thresholded(self._run_tiled(im.pixels, floor), thr, per_class)
                    tiles = f"tiled inference ({self.tile_size} px tiles)"
                    out[i] = self._detections(det, floor, t0, "; ".join(filter(None, [tiles, class_note])))
        except (RuntimeError, ValueError) as exc:
            raise ExpertFailedError(f"{self.name}: YOLO inference failed ({exc})") from exc
        return [d for d in out if d is not None]

