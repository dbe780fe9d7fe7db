"""Is a chest film whole, or a part of one?  Read from the pneumonia classifier's own features, at no extra cost.

The classifier learnt from whole films; a crop of one (a zoomed screenshot, a half film, a region cut out) is still a
chest X-ray to the modality gate, and had been answered confidently against the whole film's answer (a 30 % crop of
a normal film: "viral pneumonia, 88 %").  A logistic regression on the classifier's pooled penultimate features
(the film and its mirror image, as it answers) trained on whole training films, with random site-like changes,
against random parts of them (``training/cxr_crop.py``) gives P(part); above the threshold (at most 1 % of the
validation fold's whole films) the class is withheld with the reason.  Measured on the shifted hold-out: model card
``experts/weights/cxr_classifier.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .catalogue import WEIGHTS_DIR

__all__ = ["CROP_WEIGHTS", "PartVerdict", "CropCheck", "bundled_check"]

CROP_WEIGHTS = WEIGHTS_DIR / "cxr_crop.npz"


@dataclass(frozen=True)
class PartVerdict:
    """P(part of a film) of one image and the threshold it was held against."""

    p_part: float
    threshold: float

    @property
    def flagged(self) -> bool:
        return self.p_part >= self.threshold

    def reason(self) -> str:
        return (f"the image does not look like the whole children's chest films the classifier learnt from "
                f"(whole-film check {self.p_part:.2f} >= {self.threshold:.2f}): it looks like a part of a film, or a "
                f"film of another kind such as an adult's, so the classifier states no class; send the whole film")


class CropCheck:
    """The regression of ``cxr_crop.npz``; it belongs to one classifier checkpoint (``model_id``)."""

    def __init__(self, path: Path = CROP_WEIGHTS) -> None:
        with np.load(path) as z:
            self._w = {k: z[k] for k in ("mu", "sd", "coef", "intercept")}
            self.threshold = float(z["threshold"])
            self.model_id = str(z["model_id"])

    def check(self, features: np.ndarray) -> PartVerdict:
        """Verdict for the pooled penultimate features ``(D,)`` of one film (mean of the film and its mirror)."""
        z = float(((np.asarray(features, np.float64) - self._w["mu"]) / self._w["sd"]) @ self._w["coef"]
                  + float(self._w["intercept"]))
        return PartVerdict(p_part=1.0 / (1.0 + np.exp(-z)), threshold=self.threshold)


def bundled_check() -> CropCheck | None:
    """The shipped check (None when its file is missing); a classifier drops it on load when its model id differs."""
    return CropCheck(CROP_WEIGHTS) if CROP_WEIGHTS.is_file() else None
