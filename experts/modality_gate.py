"""Modality gate: what kind of image is this (``tools.kinds.IMAGE_KINDS``)?

Decision, in order:

1. **DICOM tags** (:func:`kind_from_dicom`), when they are decisive: Modality CT/MR/PT -> ``ct_mr``;
   CR/DX/DR with BodyPartExamined (or SeriesDescription) naming the chest -> ``chest_xray``, naming
   another part -> ``other``; ES -> ``endoscopy``; SM/GM (microscopy) -> ``blood_smear``; OP ->
   ``fundus``; US, MG, NM, XA, RF, SEG, SR, ... -> ``other``.  ``out.source = "dicom"``.
2. Otherwise **pixels**: a small MLP (one hidden ReLU layer; ``W0, b0, W1, b1`` in the npz) on
   :func:`experts.gate_features.gate_features` (colour, layout, texture) joined with a PCA projection
   (``pca_mu``, ``pca_W``) of the ImageNet MobileNetV2 embedding (:mod:`experts.gate_deep`), trained by
   ``training/train_gate.py`` (bundled ``experts/weights/modality_gate.npz``), temperature-scaled.
   A radiograph without a body part (CR/DX/DR) is restricted to ``chest_xray`` / ``other``; an
   OT/secondary-capture DICOM is judged on pixels alone.  ``out.source = "pixels"``.

Probabilities always cover every kind and sum to 1.  With tags they are 0.98 on the tagged kind
(the pixel model's opinion is named in the provenance note when it disagrees).

**Knowing when it does not know** (pixels only; tags are trusted): the pixel verdict is *untrusted*
(``out.trusted = False``, ``out.doubt`` says why) when its top probability is below the tuned floor
(``meta.min_probability``), or when the image lies farther from the training images of the kind it
resembles than a tuned limit.  Two distances are checked, each the Mahalanobis distance to that kind's
training mean under a shrunk per-kind covariance, divided by sqrt(D): of all standardised inputs
(``ood_mu``, ``ood_prec``; limits ``meta.distance_limits``) and of the ImageNet-embedding part alone
(``deep_mu``, ``deep_prec``; limits ``meta.deep_distance_limits``), which tells objects apart that share
a medical image's colours (a coffee cup and a colon).  Both limits are tuned by ``training/train_gate.py`` on held-out
images (and transformed copies of them) that training never saw.  Whatever the source, an image of a kind
with tools is also untrusted when it is too small to read (:func:`too_small`), and a chest film when it looks
turned (:meth:`ModalityGate.turned`).  The agent withholds every diagnosis tool from an untrusted image.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from tools.common import Provenance
from tools.errors import ExpertUnavailableError
from tools.kinds import IMAGE_KINDS
from tools.settings import OslerSettings

from .cxr_preprocess import unframed
from .gate_deep import DEEP_VERSION, DeepEmbedder
from .gate_features import FEATURE_DIM, FEATURE_VERSION, gate_features
from .imaging import StudyImage
from .input_floors import (COPIES_NCC, MIN_JPEG_QUALITY_BY_KIND, MIN_SIDE, MIN_SIDE_BY_KIND, copies,  # noqa: F401
                           too_compressed, too_small)
from .protocols import ClassProbabilities
from .weights import bundled, sha256_of

__all__ = ["ModalityGate", "build", "kind_from_dicom", "allowed_kinds_from_dicom", "mahalanobis", "model_inputs",
           "raw_features", "too_small", "too_compressed", "copies", "MIN_JPEG_QUALITY_BY_KIND", "RAW_VERSION", "BUNDLED_NAME", "MIN_SIDE", "MIN_SIDE_BY_KIND"]

BUNDLED_NAME = "modality_gate.npz"
TAG_CONFIDENCE = 0.98
RAW_VERSION = f"{FEATURE_VERSION}+{DEEP_VERSION}"

_DICOM_KIND = {
    "CT": "ct_mr", "MR": "ct_mr", "PT": "ct_mr",
    "ES": "endoscopy", "SM": "blood_smear", "GM": "blood_smear", "OP": "fundus",
    "US": "other", "IVUS": "other", "MG": "other", "NM": "other", "XA": "other", "RF": "other", "XC": "other",
    "OPT": "other", "OCT": "other", "SEG": "other", "SR": "other", "ECG": "other", "RTDOSE": "other",
    "RTPLAN": "other", "RTSTRUCT": "other", "RTIMAGE": "other", "KO": "other", "PR": "other", "DOC": "other",
    "IO": "other", "PX": "other", "BMD": "other", "HD": "other",
}
_RADIOGRAPH = ("CR", "DX", "DR", "RG")
_CHEST_WORDS = ("CHEST", "THORAX", "LUNG", "THOR", "PULM")


def _is_chest(text: str) -> bool:
    t = text.upper()
    return any(w in t for w in _CHEST_WORDS)


def kind_from_dicom(tags: dict[str, str]) -> str | None:
    """The image kind the DICOM tags decide, or None when they do not decide (no Modality; OT;
    a radiograph that names no body part)."""
    mod = tags.get("Modality", "").strip().upper()
    if not mod:
        return None
    part = tags.get("BodyPartExamined", "").strip()
    if mod in _RADIOGRAPH:
        if part:
            return "chest_xray" if _is_chest(part) else "other"
        if _is_chest(tags.get("SeriesDescription", "")):
            return "chest_xray"
        return None
    return _DICOM_KIND.get(mod)  # OT and unknown modalities: the pixels decide


def allowed_kinds_from_dicom(tags: dict[str, str]) -> tuple[str, ...] | None:
    """Kinds the pixels may choose from when the tags do not decide; None = any kind."""
    if tags.get("Modality", "").strip().upper() in _RADIOGRAPH:
        return ("chest_xray", "other")
    return None


def raw_features(rgb: np.ndarray, embedder: DeepEmbedder) -> np.ndarray:
    """``(FEATURE_DIM + DEEP_DIM,)``: colour/texture features, then the MobileNetV2 embedding."""
    return np.concatenate([gate_features(rgb), embedder(rgb)]).astype(np.float32)


def model_inputs(raw: np.ndarray, params: dict[str, np.ndarray]) -> np.ndarray:
    """Standardised model inputs ``(N, FEATURE_DIM + k)`` of raw features ``(N, FEATURE_DIM + DEEP_DIM)``: the
    embedding is projected on its ``k`` principal components (``pca_mu``, ``pca_W (DEEP_DIM, k)``)."""
    raw = np.atleast_2d(np.asarray(raw, np.float64))
    proj = (raw[:, FEATURE_DIM:] - params["pca_mu"]) @ params["pca_W"]
    return (np.concatenate([raw[:, :FEATURE_DIM], proj], axis=1) - params["mu"]) / params["sd"]


def mahalanobis(Z: np.ndarray, mu: np.ndarray, prec: np.ndarray) -> np.ndarray:
    """Distance ``(N, K)`` of standardised features ``Z (N, D)`` to each kind's mean ``mu (K, D)`` under
    its precision ``prec (K, D, D)``, divided by sqrt(D) (about 1 for a typical training image)."""
    diff = Z[:, None, :] - mu[None, :, :]  # (N, K, D)
    d2 = np.einsum("nkd,kde,nke->nk", diff, prec, diff)
    return np.sqrt(np.maximum(d2, 0.0) / Z.shape[1])


class ModalityGate:
    """Classifier protocol for the image kind (``labels`` = ``IMAGE_KINDS``)."""

    name = "modality_gate"
    backend = "gate"
    labels = IMAGE_KINDS

    def __init__(self, weights: Path | None = None, embedder: DeepEmbedder | None = None) -> None:
        self.weights = Path(weights) if weights is not None else bundled(BUNDLED_NAME)
        self.model_id = "gate-softmax"
        self._params: dict[str, np.ndarray] | None = None
        self._layers: list[tuple[np.ndarray, np.ndarray]] = []
        self._kinds: tuple[str, ...] = IMAGE_KINDS
        self._temperature = 1.0
        self._sha: str | None = None
        self._limits: dict[str, float] = {}
        self._deep_limits: dict[str, float] = {}
        self._min_probability = 0.0
        self._embedder = embedder or DeepEmbedder()

    def load(self) -> None:
        """Read the pixel model (once)."""
        if self._params is not None:
            return
        if not self.weights.exists():
            raise ExpertUnavailableError(
                f"modality gate weights {self.weights.name} are missing; reinstall Osler or run training/train_gate.py"
            )
        with np.load(self.weights, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            mu, sd = np.asarray(z["mu"], np.float64), np.asarray(z["sd"], np.float64)
            layers = []
            while f"W{len(layers)}" in z.files:
                i = len(layers)
                layers.append((np.asarray(z[f"W{i}"], np.float64), np.asarray(z[f"b{i}"], np.float64)))
            names = ("ood_mu", "ood_prec", "deep_mu", "deep_prec", "pca_mu", "pca_W")
            ood = {k: np.asarray(z[k], np.float64) for k in names if k in z.files}
        if meta.get("feature_version") != RAW_VERSION or not layers or len(ood) != len(names) \
                or layers[0][0].shape[1] != FEATURE_DIM + ood["pca_W"].shape[1]:
            raise ExpertUnavailableError(
                f"{self.weights.name} was trained on features '{meta.get('feature_version')}', this build computes "
                f"'{RAW_VERSION}'; retrain with training/train_gate.py"
            )
        kinds = tuple(meta["kinds"])
        if set(kinds) != set(IMAGE_KINDS):
            raise ExpertUnavailableError(f"{self.weights.name} knows kinds {kinds}, expected {IMAGE_KINDS}")
        self._kinds = kinds
        self._temperature = float(meta.get("temperature", 1.0))
        self.model_id = str(meta.get("model_id", self.model_id))
        self._sha = sha256_of(self.weights)
        if "distance_limits" not in meta or "deep_distance_limits" not in meta:
            raise ExpertUnavailableError(f"{self.weights.name} has no refusal limits (distance_limits, "
                                         f"deep_distance_limits); retrain with training/train_gate.py")
        self._params = {"mu": mu, "sd": sd, **ood}
        self._layers = layers
        self._limits = {k: float(v) for k, v in meta["distance_limits"].items()}
        self._deep_limits = {k: float(v) for k, v in meta["deep_distance_limits"].items()}
        self._min_probability = float(meta.get("min_probability", 0.0))

    def pixel_probabilities(self, rgb: np.ndarray) -> dict[str, float]:
        """Calibrated kind probabilities of the pixel model for uint8 RGB ``(H, W, 3)``."""
        return self.pixel_verdict(rgb)[0]

    def pixel_verdict(self, rgb: np.ndarray) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
        """``(probabilities, distances)`` by kind for uint8 RGB ``(H, W, 3)``: calibrated probabilities
        and the (all inputs, embedding part) distances to each kind's training images (:func:`mahalanobis`)."""
        self.load()
        p = self._params
        if p is None:  # pragma: no cover - load() raises first
            raise ExpertUnavailableError("modality gate weights are not loaded")
        h = model_inputs(raw_features(rgb, self._embedder), p)
        d_all = mahalanobis(h, p["ood_mu"], p["ood_prec"])[0]
        d_deep = mahalanobis(h[:, FEATURE_DIM:], p["deep_mu"], p["deep_prec"])[0]
        dist = {k: (float(a), float(b)) for k, a, b in zip(self._kinds, d_all, d_deep)}
        h = h[0]
        for i, (W, b) in enumerate(self._layers):
            h = W @ h + b
            if i < len(self._layers) - 1:
                h = np.maximum(h, 0.0)  # ReLU between layers
        z = h / self._temperature
        e = np.exp(z - z.max())
        e /= e.sum()
        by_kind = dict(zip(self._kinds, e.tolist()))
        return {k: float(by_kind[k]) for k in IMAGE_KINDS}, {k: dist[k] for k in IMAGE_KINDS}

    def doubt(self, probs: dict[str, float], dist: dict[str, tuple[float, float]]) -> str | None:
        """Why the pixel verdict ``probs`` is not to be trusted, or None (see the module docstring)."""
        ranked = sorted(probs, key=probs.__getitem__, reverse=True)
        top, second = ranked[0], ranked[1]
        if top == "other":  # no tool diagnoses 'other': nothing to withhold
            return None
        if probs[top] < self._min_probability:
            return (f"the pixel model is unsure: {top} p={probs[top]:.2f} is below {self._min_probability:.2f} "
                    f"(next: {second} p={probs[second]:.2f})")
        far = self._too_far(top, dist)
        return f"the image is unlike the {top} images the gate was trained on ({far})" if far else None

    def _too_far(self, kind: str, dist: dict[str, tuple[float, float]]) -> str | None:
        """'features distance 4.10, limit 3.20' when the image lies beyond a distance limit of ``kind``, else None."""
        for what, d, limit in (("features", dist[kind][0], self._limits.get(kind, float("inf"))),
                               ("ImageNet embedding", dist[kind][1], self._deep_limits.get(kind, float("inf")))):
            if d > limit:
                return f"{what} distance {d:.2f}, limit {limit:.2f}"
        return None

    def tag_doubt(self, kind: str, pixel: dict[str, float], dist: dict[str, tuple[float, float]]) -> str | None:
        """Why the kind the DICOM tags name is not to be trusted for these pixels, or None: tags say what the file
        claims, the pixels what it holds.  A colour endoscopy frame tagged CR / CHEST had been read as pneumonia
        at 98 %, and a screenshot or two films side by side in a DX file were answered where the same pixels as a PNG
        are refused.  The same distance limits as for pixel-decided images apply, and a pixel verdict of another
        diagnosable kind at p >= :data:`TAG_CONFLICT` overrules the tags."""
        if kind not in MIN_SIDE_BY_KIND or kind not in self._limits:  # CT/MR (tags are reliable, windows vary) and
            return None  # kinds without a diagnosis tool of their own: the tags stand
        if pixel[kind] < self._min_probability:
            return (f"the DICOM tags say {kind}, but the pixel model gives it only p={pixel[kind]:.2f} (below "
                    f"{self._min_probability:.2f})")
        if (far := self._too_far(kind, dist)) is not None:
            return f"the DICOM tags say {kind}, but the pixels are unlike the {kind} images the gate was trained on ({far})"
        top = max(pixel, key=pixel.__getitem__)
        if top not in (kind, "other") and pixel[top] >= TAG_CONFLICT:
            return f"the DICOM tags say {kind}, but the pixels look like {top} (p={pixel[top]:.2f})"
        return None

    def turned(self, rgb: np.ndarray, upright: float) -> str | None:
        """Why a chest film looks turned (90, 180 or 270 degrees), or None: it does when a turned copy lies closer
        to the gate's chest X-rays than the film as given, by more than :data:`TURN_MARGIN`.  The pneumonia
        classifier had read an upside-down pneumonia film as pneumonia at 95 %, a sideways normal one near its
        threshold: what it says on a turned film is not what it was validated on."""
        turned = {90 * k: self.pixel_verdict(np.ascontiguousarray(np.rot90(rgb, k)))[1]["chest_xray"][0]
                  for k in (1, 2, 3)}
        angle = min(turned, key=turned.__getitem__)
        if upright - turned[angle] <= TURN_MARGIN:
            return None
        return (f"the film looks turned: rotated by {angle} degrees it fits the chest X-rays the gate knows better "
                f"(distance {turned[angle]:.2f} against {upright:.2f}); turn it upright and ask again")

    def predict(self, image: StudyImage, *, explain: bool = False) -> ClassProbabilities:
        """Kind probabilities; ``out.source`` is ``"dicom"`` or ``"pixels"``.  ``explain`` is ignored."""
        t0 = time.perf_counter()
        tags = image.dicom_tags or {}
        pixel, dist = self.pixel_verdict(image.pixels)
        pixel_label = max(pixel, key=pixel.__getitem__)
        kind = kind_from_dicom(tags)
        doubt: str | None = None
        seen = image.pixels  # what the verdict read: the picture inside a wide uniform frame when it came from there
        if kind is not None:
            source = "dicom"
            rest = (1.0 - TAG_CONFIDENCE) / (len(IMAGE_KINDS) - 1)
            probs = {k: (TAG_CONFIDENCE if k == kind else rest) for k in IMAGE_KINDS}
            note = f"decided by DICOM tags (Modality={tags.get('Modality')})"
            if pixel_label != kind:
                note += f"; the pixel model would say {pixel_label} ({pixel[pixel_label]:.2f})"
            doubt = self.tag_doubt(kind, pixel, dist)
        else:
            source = "pixels"
            allowed = allowed_kinds_from_dicom(tags)
            if allowed is not None:
                total = sum(pixel[k] for k in allowed) or 1.0
                probs = {k: (pixel[k] / total if k in allowed else 0.0) for k in IMAGE_KINDS}
                note = f"decided by pixels among {'/'.join(allowed)} (DICOM Modality={tags.get('Modality')})"
            else:
                probs = pixel
                note = "decided by pixels (colour/texture model)"
            doubt = self.doubt(probs, dist)
            if doubt is not None and allowed is None:  # a picture letterboxed in a wide uniform frame: read inside it
                inner, box = unframed(image.pixels)
                if box is not None:
                    p2, d2 = self.pixel_verdict(inner)
                    if self.doubt(p2, d2) is None:
                        probs, dist, doubt, seen = p2, d2, None, inner
                        note = (f"decided by pixels (colour/texture model) on the picture inside a uniform frame "
                                f"({box[2] - box[0]}x{box[3] - box[1]} px at x {box[0]}, y {box[1]})")
        label = max(probs, key=probs.__getitem__)
        if label != "other" and doubt is None:
            doubt = (too_small(seen, label) or too_compressed(image.meta.jpeg_quality, label) or copies(seen))
        if label == "chest_xray" and doubt is None:
            doubt = self.turned(seen, dist["chest_xray"][0])
        if doubt:
            note += f"; not trusted: {doubt}"
        note += f"; MobileNetV2 embedding on {self._embedder.runtime}"
        prov = Provenance(expert=self.name, backend=self.backend, model=self.model_id, weights_sha256=self._sha,
                          device="cpu", elapsed_ms=(time.perf_counter() - t0) * 1000, note=note)
        return ClassProbabilities(probabilities=probs, calibrated=source == "pixels", provenance=prov, source=source,
                                  trusted=doubt is None, doubt=doubt, distance=dist[label][0] if source == "pixels" else None)


TAG_CONFLICT = 0.9
"""Pixel-model probability of another diagnosable kind above which DICOM tags are not trusted
(:meth:`ModalityGate.tag_doubt`)."""

TURN_MARGIN = 0.08
"""Distance by which a turned copy must fit better for a chest film to count as turned (:meth:`ModalityGate.turned`).
On 162 dev films (Kermany, Hannover) and their three turns: upright films flagged 1 of 162, turned ones caught
153/162 (90), 145/162 (180), 153/162 (270); every upright dev film: Hannover 1/165, Kermany 0/261, NIH 1/97
flagged.  0.05 (first choice, on 77 films) flagged 2 of 165 upright Hannover films; docs in
experts/weights/modality_gate.md."""

GATE_ONNX = "gate_mobilenet_v2.onnx"  # the ONNX export of the embedding network (training/export_onnx.py)


def build(settings: OslerSettings) -> ModalityGate:
    """The gate with its bundled weights (no setting: it ships with Osler); its MobileNetV2 embedding runs on
    onnxruntime when ``settings.expert_runtime`` allows (:func:`experts.onnx_runtime.use_onnx`), else in torch."""
    from .onnx_runtime import OnnxModel, use_onnx

    onnx, _ = use_onnx(settings, GATE_ONNX)
    return ModalityGate(embedder=DeepEmbedder(OnnxModel(GATE_ONNX, threads=settings.torch_threads) if onnx else None))
