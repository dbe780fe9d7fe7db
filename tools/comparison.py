"""Contracts of prior-study comparison."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import ArtifactRef, Frozen, Provenance
from .targets import CompareTarget

__all__ = ["CompareRequest", "Registration", "FindingChange", "CountChange", "ComparisonResult"]

ChangeStatus = Literal["new", "resolved", "grown", "shrunk", "unchanged"]


class CompareRequest(Frozen):
    """Arguments of ``compare_with_prior``."""

    target: CompareTarget = Field(
        default="auto", description="which findings to match across time; 'auto' picks by image kind"
    )


class Registration(Frozen):
    """How the prior was aligned to the current image."""

    method: str = Field(description="e.g. 'orb+ecc-affine'")
    matrix: list[list[float]] = Field(description="2x3 affine, maps prior pixels to current pixels")
    shift_px: tuple[float, float] = Field(description="(dx, dy) translation")
    rotation_deg: float
    scale: float
    ncc_before: float = Field(description="normalised cross-correlation before alignment")
    ncc_after: float = Field(description="normalised cross-correlation after alignment")
    success: bool


class FindingChange(Frozen):
    """One finding matched (or not) across the two studies."""

    index: int = Field(ge=1, description="numbered alike on both overlays")
    label: str
    status: ChangeStatus
    prior_area_px: float | None = None
    current_area_px: float | None = None
    area_change_pct: float | None = None
    prior_diameter_px: float | None = None
    current_diameter_px: float | None = None
    diameter_change_pct: float | None = None
    prior_area_mm2: float | None = None
    current_area_mm2: float | None = None


class CountChange(Frozen):
    label: str
    prior: int
    current: int
    delta: int


class ComparisonResult(Frozen):
    """What ``compare_with_prior`` returns."""

    evidence_id: str
    status: Literal["compared", "refused"]
    reason: str | None = Field(default=None, description="why the comparison was refused")
    interval_days: int | None = Field(default=None, description="current date minus prior date, days")
    registration: Registration | None = None
    target: str | None = None
    changes: list[FindingChange] = Field(default_factory=list)
    count_changes: list[CountChange] = Field(default_factory=list)
    lung_opacity_change: float | None = Field(
        default=None, description="mean intensity change inside the lung fields (current - prior, 0..1 scale)"
    )
    side_by_side: ArtifactRef | None = None
    change_map: ArtifactRef | None = None
    patient_check: Literal["same_patient_id", "not_checked"] = Field(
        default="not_checked", description="'same_patient_id': both files are DICOM naming the same patient; "
        "'not_checked': nothing in the files says whose they are (alignment alone does not show it: unrelated "
        "patients' chest films align too); files naming different patients are refused")
    provenance: Provenance
