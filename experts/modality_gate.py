"""Modality gate: what kind of image is this?  (Interim rule-based version; see model card.)

DICOM tags decide when present (Modality CR/DX/MG -> chest_xray when the body part is chest or
unspecified, CT/MR/PT -> ct_mr, ES/GM -> endoscopy, SM -> blood_smear, OP -> fundus,
US/other -> other).  Otherwise simple colour statistics decide.
"""

from __future__ import annotations

import time

import numpy as np

from tools.common import Provenance
from tools.kinds import IMAGE_KINDS
from tools.settings import OslerSettings

from .imaging import StudyImage
from .protocols import ClassProbabilities

__all__ = ["ModalityGate", "build", "kind_from_dicom"]

_DICOM_KIND = {"CR": "chest_xray", "DX": "chest_xray", "CT": "ct_mr", "MR": "ct_mr", "PT": "ct_mr",
               "ES": "endoscopy", "GM": "endoscopy", "SM": "blood_smear", "XC": "other", "OP": "fundus"}


def kind_from_dicom(tags: dict[str, str]) -> str | None:
    mod = tags.get("Modality", "").upper()
    if not mod:
        return None
    kind = _DICOM_KIND.get(mod, "other")
    part = tags.get("BodyPartExamined", "").upper()
    if kind == "chest_xray" and part and part not in ("CHEST", "THORAX", "LUNG"):
        return "other"
    return kind


def _one_hot(kind: str, p: float) -> dict[str, float]:
    rest = (1.0 - p) / (len(IMAGE_KINDS) - 1)
    return {k: (p if k == kind else rest) for k in IMAGE_KINDS}


class ModalityGate:
    name = "modality_gate"
    backend = "gate"
    model_id = "rules-v0"
    labels = IMAGE_KINDS

    def load(self) -> None:
        return None

    def predict(self, image: StudyImage, *, explain: bool = False) -> ClassProbabilities:
        import cv2

        t0 = time.perf_counter()
        kind = kind_from_dicom(image.dicom_tags)
        source = "dicom"
        if kind is not None:
            probs = _one_hot(kind, 0.97)
        else:
            source = "pixels"
            small = cv2.resize(image.pixels, (128, 128), interpolation=cv2.INTER_AREA)
            hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
            sat = float(hsv[..., 1].mean())
            dark = float((hsv[..., 2] < 25).mean())
            if sat < 18:
                kind = "ct_mr" if dark > 0.35 else "chest_xray"
            elif float(hsv[..., 2].mean()) > 150 and dark < 0.02:
                kind = "blood_smear"
            elif dark > 0.2 and float(np.median(hsv[..., 0][hsv[..., 2] >= 25])) < 25 and dark > 0.3:
                kind = "fundus"
            else:
                kind = "endoscopy"
            probs = _one_hot(kind, 0.7)
        prov = Provenance(expert=self.name, backend=self.backend, model=self.model_id, device="cpu",
                          elapsed_ms=(time.perf_counter() - t0) * 1000, note=f"decided from {source}")
        out = ClassProbabilities(probabilities=probs, calibrated=False, provenance=prov)
        out.source = source  # type: ignore[attr-defined]
        return out


def build(settings: OslerSettings) -> ModalityGate:
    return ModalityGate()
