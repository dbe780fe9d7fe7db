"""Contracts of the classification tools and of ``image_info`` (the modality gate)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import ArtifactRef, Frozen, ImageMeta, Provenance
from .kinds import ClassifyTask, ImageKind, ImageRole

__all__ = ["ClassifyRequest", "ClassificationResult", "ImageInfoRequest", "ImageInfoResult"]


class ClassifyRequest(Frozen):
    """Arguments of ``classify``."""

    task: ClassifyTask = Field(description="'cxr_pneumonia' (normal / bacterial / viral) or 'image_kind'")
    image: ImageRole = Field(default="current")
    explain: bool = Field(default=False, description="also produce a saliency overlay (approximate explanation)")


class ClassificationResult(Frozen):
    """What ``classify`` returns."""

    evidence_id: str
    image: ImageRole
    task: ClassifyTask
    label: str = Field(description="decided label: for 'cxr_pneumonia' pneumonia when P(pneumonia) = "
                                   "1 - P(normal) >= threshold (then bacterial or viral by the larger), else normal; "
                                   "otherwise the most probable label. Not a confident class when uncertain")
    probabilities: dict[str, float] = Field(description="label -> probability; sums to 1")
    calibrated: bool = Field(description="True when probabilities were temperature-scaled on held-out data")
    threshold: float | None = Field(default=None, ge=0.0, le=1.0,
                                    description="P(pneumonia) decision threshold tuned on validation folds "
                                                "(from the checkpoint); None when the arg-max decided")
    uncertain: bool = Field(default=False, description="True when P(pneumonia) lies within the validation-tuned "
                                                       "band around the threshold: report the probabilities, "
                                                       "not a class")
    uncertain_reason: str | None = Field(default=None, description="why the result is uncertain (one sentence)")
    uncertain_kind: Literal["close_call", "not_read"] | None = Field(
        default=None, description="close_call: P(pneumonia) is too near the threshold to state a class; not_read: "
                                  "the image is not one the classifier reads (e.g. a part of a film), so its "
                                  "probabilities are no answer at all; None when certain or not said")
    saliency: ArtifactRef | None = Field(default=None, description="approximate explanation (Grad-CAM), when asked")
    provenance: Provenance


class ImageInfoRequest(Frozen):
    """Arguments of ``image_info``."""

    image: ImageRole = Field(default="current")


class ImageInfoResult(Frozen):
    """What ``image_info`` returns: metadata and the image kind with its confidence."""

    evidence_id: str
    image: ImageRole
    meta: ImageMeta
    kind: ImageKind
    kind_confidence: float = Field(ge=0.0, le=1.0)
    kind_source: Literal["dicom", "pixels"] = Field(description="whether DICOM tags or pixels decided the kind")
    kind_probabilities: dict[str, float] = Field(default_factory=dict)
    kind_trusted: bool = Field(default=True, description="False when the modality gate does not know: the image is "
                               "unlike its training images of that kind, or the top probability is too low. "
                               "'kind' is then only what the image looks most like, and every diagnosis tool "
                               "refuses it")
    kind_doubt: str | None = Field(default=None, description="why the kind is not trusted (one sentence)")
    withheld_tools: list[str] = Field(default_factory=list, description="diagnosis tools withheld from this image "
                                      "because its kind is not trusted")
    provenance: Provenance
