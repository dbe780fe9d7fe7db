"""Chest X-ray classifier (normal / bacterial / viral pneumonia) behind the Classifier protocol.

Two backends:

* ``torchvision``: a torchvision architecture built with ``weights=None`` and filled from a local
  checkpoint (``settings.models.cxr_classifier``, else the bundled ``cxr_classifier.pt`` that
  ``training/train_cxr.py`` trains on Kermany dev data).  Accepted checkpoint forms, all read with
  ``torch.load(weights_only=True)``:

  1. Osler's dict ``{"arch", "labels", "state_dict", "input_size", "mean", "std", "temperature", ...}``;
  2. any dict with ``"arch"``, ``"labels"`` and ``"state_dict"`` (e.g. a TorchXRayVision-style export;
     ``"activation": "sigmoid"`` for multi-label heads, whose scores are then normalised to sum to 1);
  3. a bare state dict with a sidecar ``<stem>.json`` (or ``labels.json`` in the same folder) giving
     ``{"arch", "labels", ...}`` or just a label list (then ``"arch"`` defaults to ``resnet18``).

  Labels always come from the checkpoint.  Input channels are read from the first conv weight.
  Intensity (``"intensity"``): ``"percentile"`` (v2 checkpoints, trained with it) maps each film's 0.5th /
  99.5th percentiles to 0 / 1 before resizing, so 8-bit, 16-bit and float copies of a film give the same
  input; ``"uint8"`` (default, older checkpoints) is ``pixel / 255``.  Then ``(x - mean) / std`` per channel
  (TorchXRayVision's [-1024, 1024] scaling is ``mean=[0.5], std=[1/2048]``).  Images are converted to grey
  (1 channel) or grey replicated to 3 channels, resized to ``input_size`` square (aspect not kept: Kermany
  images were stored that way).  ``"tta": "hflip"`` averages the logits of the film and its mirror image.

  Decision (:mod:`experts.cxr_decision`): with a ``normal`` label, the film is pneumonia when
  ``1 - P(normal) >= "threshold"`` (default 0.5) and *uncertain* when its log-odds lie within
  ``"uncertain_band"`` (default 0: never) of the threshold; both are tuned on validation folds at
  training and stored in the checkpoint.  ``ClassProbabilities.label`` is the decided label.
* ``transformers``: a local image-classification checkpoint directory
  (``settings.models.hf_classifier_dir``) loaded with ``AutoModelForImageClassification`` and
  ``AutoImageProcessor``, ``local_files_only=True``; labels from ``config.id2label``.

``predict(image, explain=True)`` adds a Grad-CAM saliency ``(H, W)`` float in ``[0, 1]`` at the model
input size (see :mod:`experts.gradcam`); the tool layer resizes it and labels it approximate.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tools.common import Provenance
from tools.errors import ExpertFailedError, ExpertUnavailableError
from tools.settings import OslerSettings

from .cxr_checkpoint import TIMM_ARCHS, _probabilities, _strip_prefixes, build_net, read_checkpoint  # noqa: F401
from .cxr_decision import decide
from .cxr_preprocess import percentile_normalise, preprocess, to_gray, unframed  # noqa: F401  (re-exported)
from .imaging import StudyImage
from .protocols import ClassProbabilities
from .weights import resolve_device, resolve_weights, sha256_of

__all__ = [
    "DEFAULT_LABELS",
    "BUNDLED_NAME",
    "build_net",
    "preprocess",
    "percentile_normalise",
    "to_gray",
    "read_checkpoint",
    "TorchvisionClassifier",
    "TransformersClassifier",
    "build_torchvision",
    "check_torchvision",
    "build_transformers",
    "check_transformers",
]

log = logging.getLogger(__name__)

DEFAULT_LABELS: tuple[str, ...] = ("normal", "bacterial_pneumonia", "viral_pneumonia")
BUNDLED_NAME = "cxr_classifier.pt"
_SETTING = "models.cxr_classifier (OSLER_MODELS__CXR_CLASSIFIER)"
_HF_SETTING = "models.hf_classifier_dir (OSLER_MODELS__HF_CLASSIFIER_DIR)"


class TorchvisionClassifier:
    """Classifier protocol over a torchvision network read from a local checkpoint."""

    name = "cxr_classifier"
    backend = "torchvision"

    def __init__(self, weights: Path, device: str = "auto", crop_check: Any = None) -> None:
        self.weights = Path(weights)
        self.device_setting = device
        self.crop_check = crop_check  # experts.cxr_crop.CropCheck of this checkpoint: parts of films get no class
        self.labels: tuple[str, ...] = DEFAULT_LABELS  # replaced by the checkpoint's labels in load()
        self.model_id = f"torchvision:{self.weights.name}"
        self._net: Any = None
        self._head: Any = None
        self._ckpt: dict[str, Any] = {}
        self._sha: str | None = None
        self._device = "cpu"

    def load(self) -> None:
        """Read the checkpoint and build the network (once)."""
        if self._net is not None:
            return
        import torch

        ckpt = read_checkpoint(self.weights)
        net = build_net(ckpt["arch"], len(ckpt["labels"]), ckpt["in_channels"])
        state = {k: (v.float() if torch.is_floating_point(v) else v) for k, v in ckpt["state_dict"].items()}
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise ExpertUnavailableError(
                f"{self.weights.name}: weights do not fit a torchvision '{ckpt['arch']}' with "
                f"{len(ckpt['labels'])} classes ({str(exc).splitlines()[0]})"
            ) from exc
        self._device = resolve_device(self.device_setting)
        self._net = net.eval().to(self._device)
        self._head = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]  # its input: the pooled features
        self._ckpt = {k: v for k, v in ckpt.items() if k != "state_dict"}
        self._sha = sha256_of(self.weights)
        self.labels = ckpt["labels"]
        self.model_id = ckpt["model_id"]
        if self.crop_check is not None and self.crop_check.model_id != self.model_id:
            log.warning("whole-film check skipped: it was fitted on %s, not %s", self.crop_check.model_id, self.model_id)
            self.crop_check = None

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """Raw logits ``(N, K)`` for preprocessed inputs ``(N, C, S, S)`` (used by the benchmark)."""
        return self.logits_and_features(batch)[0]

    def logits_and_features(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits ``(N, K)`` and the pooled features the last layer reads ``(N, D)`` (each the mean over the
        film and its mirror image when the checkpoint's test-time augmentation is 'hflip')."""
        import torch

        self.load()
        seen: list[torch.Tensor] = []
        hook = self._head.register_forward_hook(lambda _m, inp, _out: seen.append(inp[0].detach().float()))
        try:
            with torch.inference_mode():
                x = torch.from_numpy(batch).to(self._device)
                z = self._net(x).float()
                if self._ckpt["tta"] == "hflip":  # test-time augmentation chosen on validation at training
                    z = (z + self._net(x.flip(-1)).float()) / 2
        finally:
            hook.remove()
        return z.cpu().numpy(), (sum(seen) / len(seen)).cpu().numpy()

    def input_for(self, rgb: np.ndarray) -> np.ndarray:
        """Preprocessed ``(C, S, S)`` input for one image (a wide uniform frame around the film cut off first)."""
        return self._input(unframed(rgb)[0])

    def _input(self, film: np.ndarray) -> np.ndarray:
        self.load()
        c = self._ckpt
        return preprocess(film, c["input_size"], c["in_channels"], c["mean"], c["std"], c["intensity"])

    @property
    def temperature(self) -> float:
        self.load()
        return float(self._ckpt["temperature"])

    @property
    def threshold(self) -> float:
        """P(pneumonia) threshold stored in the checkpoint (tuned on validation folds; 0.5 if none)."""
        self.load()
        return float(self._ckpt["threshold"])

    @property
    def uncertain_band(self) -> float:
        """Log-odds half-width around the threshold inside which an answer is uncertain (0: never)."""
        self.load()
        return float(self._ckpt["uncertain_band"])

    def predict(self, image: StudyImage, *, explain: bool = False) -> ClassProbabilities:
        import torch

        from .gradcam import grad_cam

        self.load()
        t0 = time.perf_counter()
        film, box = unframed(image.pixels)
        x = torch.from_numpy(self._input(film)[None]).to(self._device)
        saliency = None
        try:
            if explain:
                saliency, _ = grad_cam(self._net, x)
                if box is not None:  # back onto the whole image: nothing outside the film
                    saliency = _framed(saliency, box, image.pixels.shape[:2])
            z, feats = self.logits_and_features(x.detach().cpu().numpy())
            logits = z[0]
        except (RuntimeError, ValueError) as exc:
            raise ExpertFailedError(f"the chest X-ray classifier failed on this image ({exc})") from exc
        c = self._ckpt
        p = _probabilities(logits, c["activation"], c["temperature"])
        notes = [f"temperature-scaled (T={c['temperature']:.3f})" if c["calibrated"] else "not calibrated"]
        if box is not None:
            notes.append(f"a uniform frame around the film was cut off (the film is {box[2] - box[0]}x"
                         f"{box[3] - box[1]} px at x {box[0]}, y {box[1]})")
        if c["activation"] == "sigmoid":
            notes.append("multi-label scores normalised to sum to 1")
        if c["tta"] == "hflip":
            notes.append("test-time augmentation: mean logits of the film and its mirror image")
        probs = {lab: float(v) for lab, v in zip(self.labels, p)}
        decision = None
        if "normal" in probs and len(probs) > 1:
            decision = decide(probs, c["threshold"], c["uncertain_band"])
            notes.append(f"pneumonia when P(pneumonia) = 1 - P(normal) >= {c['threshold']:.3f}"
                         f" (uncertain within log-odds {c['uncertain_band']:.2f} of it)")
        if decision is not None and self.crop_check is not None:
            part = self.crop_check.check(feats[0])
            notes.append(f"whole-film check {part.p_part:.2f} (a part of a film at >= {part.threshold:.2f})")
            if part.flagged:
                decision = replace(decision, uncertain=True, reason=part.reason(), kind="not_read")
        if explain:
            notes.append("saliency: Grad-CAM on the last conv block (approximate)")
        prov = Provenance(
            expert=self.name, backend=self.backend, model=self.model_id, weights_sha256=self._sha,
            device=self._device, elapsed_ms=(time.perf_counter() - t0) * 1000, note="; ".join(notes),
        )
        return ClassProbabilities(
            probabilities=probs, calibrated=bool(c["calibrated"]), provenance=prov, saliency=saliency,
            decided_label=decision.label if decision else None, threshold=c["threshold"] if decision else None,
            uncertain=bool(decision and decision.uncertain), uncertain_reason=decision.reason if decision else None,
            uncertain_kind=decision.kind if decision else None,
        )


def _framed(saliency: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int]) -> np.ndarray:
    """A saliency map of the film cut from ``box`` placed on a zero map of the whole image's ``shape``."""
    import cv2

    x0, y0, x1, y1 = box
    full = np.zeros(shape, np.float32)
    full[y0:y1, x0:x1] = cv2.resize(np.asarray(saliency, np.float32), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    return full


class TransformersClassifier:
    """Classifier protocol over a local transformers image-classification checkpoint directory."""

    name = "cxr_classifier"
    backend = "transformers"

    def __init__(self, directory: Path, device: str = "auto") -> None:
        self.directory = Path(directory)
        self.device_setting = device
        self.labels: tuple[str, ...] = ()
        self.model_id = f"transformers:{self.directory.name}"
        self._model: Any = None
        self._processor: Any = None
        self._sha: str | None = None
        self._device = "cpu"

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            from transformers import AutoImageProcessor, AutoModelForImageClassification
        except ImportError as exc:
            raise ExpertUnavailableError("the transformers backend needs the 'transformers' package") from exc
        try:
            processor = AutoImageProcessor.from_pretrained(str(self.directory), local_files_only=True)
            model = AutoModelForImageClassification.from_pretrained(str(self.directory), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ExpertUnavailableError(
                f"{self.directory} is not a loadable image-classification checkpoint ({exc}); fix {_HF_SETTING}"
            ) from exc
        self._device = resolve_device(self.device_setting)
        self._model = model.eval().to(self._device)
        self._processor = processor
        id2label = model.config.id2label
        self.labels = tuple(str(id2label[i]) for i in range(len(id2label)))
        weight_files = sorted(self.directory.glob("*.safetensors")) + sorted(self.directory.glob("*.bin"))
        self._sha = sha256_of(weight_files[0]) if weight_files else None
        arch = (model.config.architectures or [type(model).__name__])[0]
        self.model_id = f"{arch}:{self.directory.name}"

    def predict(self, image: StudyImage, *, explain: bool = False) -> ClassProbabilities:
        import torch

        from .gradcam import grad_cam

        self.load()
        t0 = time.perf_counter()
        inputs = self._processor(images=np.array(image.pixels), return_tensors="pt")  # a writable copy
        x = inputs["pixel_values"].to(self._device)
        saliency = None
        try:
            if explain:
                saliency, _ = grad_cam(self._model, x, logits_fn=lambda out: out.logits)
            with torch.inference_mode():
                logits = self._model(pixel_values=x).logits.float().cpu().numpy()[0]
        except (RuntimeError, ValueError) as exc:
            raise ExpertFailedError(f"the transformers classifier failed on this image ({exc})") from exc
        p = _probabilities(logits, "softmax", 1.0)
        note = "not calibrated"
        if explain:
            note += "; saliency: Grad-CAM on the last conv layer (approximate)"
        prov = Provenance(
            expert=self.name, backend=self.backend, model=self.model_id, weights_sha256=self._sha,
            device=self._device, elapsed_ms=(time.perf_counter() - t0) * 1000, note=note,
        )
        return ClassProbabilities(probabilities={lab: float(v) for lab, v in zip(self.labels, p)},
                                  calibrated=False, provenance=prov, saliency=saliency)


def _torchvision_weights(settings: OslerSettings) -> Path | None:
    return resolve_weights(settings.models.cxr_classifier, BUNDLED_NAME, _SETTING)


def check_torchvision(settings: OslerSettings) -> str | None:
    """None when a torchvision checkpoint is configured or bundled and torchvision is installed."""
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        return "backend 'torchvision' needs the Python package 'torchvision'"
    try:
        path = _torchvision_weights(settings)
    except ExpertUnavailableError as exc:
        return str(exc)
    if path is None:
        return f"no chest X-ray classifier weights: set {_SETTING} or run training/train_cxr.py"
    return None


def build_torchvision(settings: OslerSettings) -> TorchvisionClassifier:
    path = _torchvision_weights(settings)
    if path is None:
        raise ExpertUnavailableError(f"no chest X-ray classifier weights: set {_SETTING}")
    from .cxr_crop import bundled_check

    return TorchvisionClassifier(path, settings.device, crop_check=bundled_check())


def check_transformers(settings: OslerSettings) -> str | None:
    """None only when ``models.hf_classifier_dir`` names a local checkpoint folder with a config."""
    import importlib.util

    directory = settings.models.hf_classifier_dir
    if directory is None:
        return f"no transformers checkpoint configured: set {_HF_SETTING} to a local image-classification folder"
    if importlib.util.find_spec("transformers") is None:
        return "backend 'transformers' needs the Python package 'transformers'"
    path = Path(directory).expanduser()
    if not (path / "config.json").is_file():
        return f"{path} has no config.json: point {_HF_SETTING} at a save_pretrained() folder"
    return None


def build_transformers(settings: OslerSettings) -> TransformersClassifier:
    if settings.models.hf_classifier_dir is None:
        raise ExpertUnavailableError(f"set {_HF_SETTING} to use the transformers classifier")
    return TransformersClassifier(Path(settings.models.hf_classifier_dir).expanduser(), settings.device)
