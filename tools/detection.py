"""Contracts of the detection and counting tools."""

from __future__ import annotations

from pydantic import Field

from .common import ArtifactRef, Box, Frozen, Provenance
from .kinds import ImageRole
from .targets import DetectTarget

__all__ = ["DetectRequest", "Detection", "DetectionResult", "ClassCount", "CrossCheckCount", "CrossCheck", "CountResult"]


class DetectRequest(Frozen):
    """Arguments of ``detect`` and ``count``."""

    target: DetectTarget = Field(description="what to look for: a target of the expert catalogue with a "
                                 "detector, e.g. 'blood_cells' (RBC, WBC, Platelets) or 'polyp'")
    image: ImageRole = Field(default="current", description="which study: 'current' or 'prior'")
    classes: list[str] | None = Field(
        default=None, description="keep only these class labels (e.g. ['WBC']); None keeps all"
    )
    min_score: float | None = Field(
        default=None, ge=0.0, le=1.0, description="confidence threshold; None uses the expert's calibrated default"
    )


class Detection(Frozen):
    """One detected instance."""

    index: int = Field(ge=1, description="1-based number, as drawn on the overlay")
    label: str = Field(description="class label, from the model")
    score: float = Field(ge=0.0, le=1.0, description="confidence")
    box: Box = Field(description="xyxy, original-image pixels")


class DetectionResult(Frozen):
    """What ``detect`` returns."""

    evidence_id: str = Field(description="id to cite in the answer, e.g. 'E1'")
    image: ImageRole
    target: DetectTarget
    detections: list[Detection]
    min_score: float = Field(description="confidence threshold that was applied")
    overlay: ArtifactRef | None = Field(default=None, description="boxes numbered on the image")
    provenance: Provenance


class ClassCount(Frozen):
    """How many instances of one class, and which ones."""

    label: str
    count: int = Field(ge=0)
    instances: list[Detection] = Field(description="the instances counted; len(instances) == count")


class CrossCheckCount(Frozen):
    """One class counted by a second, independent method."""

    label: str
    count: int = Field(ge=0, description="the independent method's count")
    primary_count: int = Field(ge=0, description="the count of this result (the primary detector's)")
    tolerance: int = Field(ge=0, description="counts that differ by more than this disagree (tuned on validation)")
    agrees: bool = Field(description="abs(count - primary_count) <= tolerance")


class CrossCheck(Frozen):
    """An independent second opinion on a count: another backend (e.g. the classical OpenCV counter for a
    learned YOLO detector) run on the same image.  The primary counts stay the answer; a disagreement
    beyond the tolerance means one of the two is probably wrong and both overlays should be looked at."""

    backend: str = Field(description="backend of the independent method, e.g. 'opencv'")
    counts: list[CrossCheckCount] = Field(description="the cross-checked classes (those with a validated tolerance)")
    agrees: bool = Field(description="True when every cross-checked class agrees within its tolerance")
    overlay: ArtifactRef | None = Field(default=None, description="the independent method's boxes on the image")
    provenance: Provenance

    def disagreements(self) -> list[CrossCheckCount]:
        return [c for c in self.counts if not c.agrees]


class CountResult(Frozen):
    """What ``count`` returns: per-class counts that list the instances they come from."""

    evidence_id: str
    image: ImageRole
    target: DetectTarget
    counts: list[ClassCount] = Field(description="one entry per requested class, zero counts included")
    total: int = Field(ge=0)
    min_score: float = Field(description="confidence threshold that was applied")
    dedup_iou: float = Field(description="instances overlapping more than this IoU were merged (not double counted)")
    overlay: ArtifactRef | None = None
    provenance: Provenance
    cross_check: CrossCheck | None = Field(
        default=None, description="an independent method's counts of the same classes and whether they agree; "
        "None when no independent method exists for the target or it could not run")

    def count_of(self, label: str) -> int:
        for c in self.counts:
            if c.label.lower() == label.lower():
                return c.count
        return 0
