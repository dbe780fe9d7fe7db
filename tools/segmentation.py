"""Contracts of the segmentation and measurement tools."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import ArtifactRef, Box, Frozen, Point, Provenance
from .kinds import ImageRole
from .targets import SegmentTarget

__all__ = ["SegmentRequest", "Region", "SegmentationResult", "MeasureRequest", "MeasurementResult"]


class SegmentRequest(Frozen):
    """Arguments of ``segment``.

    Give a ``target`` for automatic segmentation ('polyp', 'lung'), or ``target='prompt'`` with
    a ``box`` and/or ``points``, or ``from_evidence`` to prompt with every box of an earlier
    detection result ("segment every polyp the detector found").  Automatic 'polyp' segmentation
    is the polyp detector's boxes prompting the segmenter (when the segmenter takes prompts);
    the provenance note says so.
    """

    target: SegmentTarget = Field(description="a target of the expert catalogue with a segmenter "
                                  "('polyp', 'lung', ...), or 'prompt' (use box/points)")
    image: ImageRole = Field(default="current")
    box: Box | None = Field(default=None, description="box prompt, xyxy original-image pixels")
    points: list[Point] | None = Field(default=None, description="point prompts (positive and negative)")
    from_evidence: str | None = Field(
        default=None, description="evidence id of a detection result whose boxes become box prompts"
    )


class Region(Frozen):
    """One segmented connected region."""

    index: int = Field(ge=1, description="1-based, as drawn on the overlay")
    label: str
    mask: ArtifactRef = Field(description="binary mask, image size, stored by the session")
    area_px: int = Field(ge=0)
    area_mm2: float | None = Field(default=None, description="when the pixel spacing is known")
    bbox: Box
    centroid: tuple[float, float] = Field(description="(x, y) pixels")
    score: float | None = Field(default=None, ge=0.0, le=1.0, description="model confidence / predicted IoU")
    side: Literal["left", "right"] | None = Field(
        default=None, description="the patient's side of one part of a paired organ (the left or right lung), read "
        "from the standard display: the patient's right on the image's left")


class SegmentationResult(Frozen):
    """What ``segment`` returns."""

    evidence_id: str
    image: ImageRole
    target: SegmentTarget
    regions: list[Region] = Field(description="empty when nothing was found")
    union_mask: ArtifactRef | None = Field(default=None, description="all regions together")
    overlay: ArtifactRef | None = None
    provenance: Provenance


class MeasureRequest(Frozen):
    """Arguments of ``measure``."""

    mask_id: str = Field(description="artifact id of a mask from a segmentation result, e.g. 'mask-2'")
    within_mask_id: str | None = Field(
        default=None, description="artifact id of an organ mask; reports the fraction of it that mask_id covers"
    )


class MeasurementResult(Frozen):
    """What ``measure`` returns.  mm values are None unless the pixel spacing is known (DICOM)."""

    evidence_id: str
    mask_id: str
    area_px: int = Field(ge=0)
    area_mm2: float | None = None
    long_diameter_px: float = Field(ge=0, description="longest distance between two boundary points")
    long_diameter_mm: float | None = None
    short_diameter_px: float = Field(ge=0, description="longest extent perpendicular to the long diameter")
    short_diameter_mm: float | None = None
    bbox: Box | None = None
    centroid: tuple[float, float] | None = None
    within_mask_id: str | None = None
    fraction_of_within: float | None = Field(default=None, ge=0.0, le=1.0, description="covered fraction of the organ")
    spacing_mm: tuple[float, float] | None = Field(default=None, description="(row, column) spacing used")
    provenance: Provenance
