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
    label: str = Field(description="most probable label")
    probabilities: dict[str, float] = Field(description="label -> probability; sums to 1")
    calibrated: bool = Field(description="True when probabilities were temperature-scaled on held-out data")
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
    provenance: Provenance
