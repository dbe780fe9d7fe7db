"""Modality gate: what kind of image is this (``tools.kinds.IMAGE_KINDS``)?

Decision, in order:

1. **DICOM tags** (:func:`kind_from_dicom`), when they are decisive: Modality CT/MR/PT -> ``ct_mr``;
   CR/DX/DR with BodyPartExamined (or SeriesDescription) naming the chest -> ``chest_xray``, naming
   another part -> ``other``; ES -> ``endoscopy``; SM/GM (microscopy) -> ``blood_smear``; OP ->
   ``fundus``; US, MG, NM, XA, RF, SEG, SR, ... -> ``other``.  ``out.source = "dicom"``.
2. Otherwise **pixels**: a small MLP (one hidden ReLU layer; ``W0, b0, W1, b1`` in the npz) on
   :func:`experts.gate_features.gate_features`, trained by ``training/train_gate.py`` (bundled
   ``experts/weights/modality_gate.npz``, a few kB), temperature-scaled.
   A radiograph without a body part (CR/DX/DR) is restricted to ``chest_xray`` / ``other``; an
   OT/secondary-capture DICOM is judged on pixels alone.  ``out.source = "pixels"``.

Probabilities always cover every kind and sum to 1.  With tags they are 0.98 on the tagged kind
(the pixel model's opinion is named in the provenance note when it disagrees).
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

from .imaging import StudyImage
from .protocols import ClassProbabilities
from .weights import bundled, sha256_of

__all__ = ["ModalityGate", "build", "kind_from_dicom", "allowed_kinds_from_dicom", "BUNDLED_NAME"]

BUNDLED_NAME = "modality_gate.npz"
TAG_CONFIDENCE = 0.98

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


class ModalityGate:
    """Classifier protocol for the image kind (``labels`` = ``IMAGE_KINDS``)."""

    name = "modality_gate"
    backend = "gate"
    labels = IMAGE_KINDS

    def __init__(self, weights: Path | None = None) -> None:
        self.weights = Path(weights) if weights is not None else bundled(BUNDLED_NAME)
        self.model_id = "gate-softmax"
        self._params: dict[str, np.ndarray] | None = None
        self._layers: list[tuple[np.ndarray, np.ndarray]] = []
        self._kinds: tuple[str, ...] = IMAGE_KINDS
        self._temperature = 1.0
        self._sha: str | None = None

    def load(self) -> None:
        """Read the pixel model (once)."""
        if self._params is not None:
            return
        if not self.weights.exists():
            raise ExpertUnavailableError(
                f"modality gate weights {self.weights.name} are missing; reinstall Osler or run training/train_gate.py"
            )
        from .gate_features import FEATURE_DIM, FEATURE_VERSION

        with np.load(self.weights, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            mu, sd = np.asarray(z["mu"], np.float64), np.asarray(z["sd"], np.float64)
            layers = []
            while f"W{len(layers)}" in z.files:
                i = len(layers)
                layers.append((np.asarray(z[f"W{i}"], np.float64), np.asarray(z[f"b{i}"], np.float64)))
        if meta.get("feature_version") != FEATURE_VERSION or not layers or layers[0][0].shape[1] != FEATURE_DIM:
            raise ExpertUnavailableError(
                f"{self.weights.name} was trained on features '{meta.get('feature_version')}', this build computes "
                f"'{FEATURE_VERSION}'; retrain with training/train_gate.py"
            )
        kinds = tuple(meta["kinds"])
        if set(kinds) != set(IMAGE_KINDS):
            raise ExpertUnavailableError(f"{self.weights.name} knows kinds {kinds}, expected {IMAGE_KINDS}")
        self._kinds = kinds
        self._temperature = float(meta.get("temperature", 1.0))
        self.model_id = str(meta.get("model_id", self.model_id))
        self._sha = sha256_of(self.weights)
        self._params = {"mu": mu, "sd": sd}
        self._layers = layers

    def pixel_probabilities(self, rgb: np.ndarray) -> dict[str, float]:
        """Calibrated kind probabilities of the pixel model for uint8 RGB ``(H, W, 3)``."""
        from .gate_features import gate_features

        self.load()
        p = self._params
        if p is None:  # pragma: no cover - load() raises first
            raise ExpertUnavailableError("modality gate weights are not loaded")
        h = (gate_features(rgb).astype(np.float64) - p["mu"]) / p["sd"]
        for i, (W, b) in enumerate(self._layers):
            h = W @ h + b
            if i < len(self._layers) - 1:
                h = np.maximum(h, 0.0)  # ReLU between layers
        z = h / self._temperature
        e = np.exp(z - z.max())
        e /= e.sum()
        by_kind = dict(zip(self._kinds, e.tolist()))
        return {k: float(by_kind[k]) for k in IMAGE_KINDS}

    def predict(self, image: StudyImage, *, explain: bool = False) -> ClassProbabilities:
        """Kind probabilities; ``out.source`` is ``"dicom"`` or ``"pixels"``.  ``explain`` is ignored."""
        t0 = time.perf_counter()
        tags = image.dicom_tags or {}
        pixel = self.pixel_probabilities(image.pixels)
        pixel_label = max(pixel, key=pixel.__getitem__)
        kind = kind_from_dicom(tags)
        if kind is not None:
            source = "dicom"
            rest = (1.0 - TAG_CONFIDENCE) / (len(IMAGE_KINDS) - 1)
            probs = {k: (TAG_CONFIDENCE if k == kind else rest) for k in IMAGE_KINDS}
            note = f"decided by DICOM tags (Modality={tags.get('Modality')})"
            if pixel_label != kind:
                note += f"; the pixel model would say {pixel_label} ({pixel[pixel_label]:.2f})"
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
        prov = Provenance(expert=self.name, backend=self.backend, model=self.model_id, weights_sha256=self._sha,
                          device="cpu", elapsed_ms=(time.perf_counter() - t0) * 1000, note=note)
        out = ClassProbabilities(probabilities=probs, calibrated=source == "pixels", provenance=prov, source=source)
        return out


def build(settings: OslerSettings) -> ModalityGate:
    """The gate with its bundled weights (no setting: it ships with Osler)."""
    return ModalityGate()
