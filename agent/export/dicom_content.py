"""What the DICOM objects Osler writes share: the manufacturer and software strings, the coded concepts
(segment categories and types, UCUM units, the private ``99OSLER`` scheme), the plan of the SEG's segments
from the tool results, and the algorithm identification / tracking identifier content of each result.
highdicom is imported inside the functions.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tools.common import Provenance
from tools.segmentation import MeasurementResult, SegmentationResult
from tools.targets import LiveTable, targets

__all__ = ["MANUFACTURER", "LOCAL_SCHEME", "software", "UCUM", "SEGMENT_CODES", "ucum_unit", "coded", "local_code",
           "SegmentPlan", "plan_segments", "algorithm_sequence", "algorithm_id", "tracking"]

MANUFACTURER = "Osler (open-source research software)"
LOCAL_SCHEME = "99OSLER"  # private coding scheme for concepts no standard codes (counts, model labels)


@functools.cache
def software() -> str:
    """'osler <version>' of the installed distribution (Software Versions, device observer model)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"osler {version('osler')}"
    except PackageNotFoundError:
        return "osler (not installed)"

# Osler unit (FinalAnswer.unit, tool fields) -> UCUM (code, meaning).  One table for SR and tests.
UCUM: dict[str, tuple[str, str]] = {
    "mm": ("mm", "millimeter"),
    "mm2": ("mm2", "square millimeter"),
    "mm²": ("mm2", "square millimeter"),
    "px": ("{pixels}", "pixels"),
    "%": ("%", "percent"),
    "cells": ("{cells}", "cells"),
    "polyps": ("{polyps}", "polyps"),
    "1": ("1", "no units"),
}

# segment target -> (category, type) as (code, scheme, meaning), SNOMED CT / DCM codes from pydicom's tables:
# each target's TargetSpec.codes (plugins included); the generic 'Image Region' for a prompt or a target without
IMAGE_REGION = (("309825002", "SCT", "Spatial and Relational Concept"), ("111030", "DCM", "Image Region"))
SEGMENT_CODES: LiveTable = LiveTable(lambda: {n: s.codes or IMAGE_REGION for n, s in targets().items()}
                                     | {"prompt": IMAGE_REGION})


def coded(triple: tuple[str, str, str]) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(value=triple[0], scheme_designator=triple[1], meaning=triple[2])


def ucum_unit(unit: str) -> Any:
    """An Osler unit ('mm²', 'px', 'cells', ...) as a UCUM CodedConcept."""
    from highdicom.sr import CodedConcept

    code, meaning = UCUM.get(unit, ("{" + unit + "}", unit))
    return CodedConcept(value=code, scheme_designator="UCUM", meaning=meaning)


@dataclass(frozen=True)
class SegmentPlan:
    """One segment of the SEG: which mask, what it is, which tool result made it."""

    number: int
    mask_id: str
    label: str
    target: str
    evidence_id: str
    provenance: Provenance
    area_px: int | None = None
    area_mm2: float | None = None


def plan_segments(results: dict[str, BaseModel]) -> list[SegmentPlan]:
    """Segments for every region of every segmentation of the current study, plus any measured mask that
    is not one of those regions (a union of several regions), in evidence order."""
    plans: list[SegmentPlan] = []
    unions: dict[str, tuple[str, SegmentationResult]] = {}
    for eid, r in results.items():
        if not isinstance(r, SegmentationResult) or r.image != "current":
            continue
        for region in r.regions:
            side = f"{region.side} " if region.side else ""  # "right lung 1"
            plans.append(SegmentPlan(len(plans) + 1, region.mask.id, f"{side}{region.label} {region.index}",
                                     r.target, eid, r.provenance, region.area_px, region.area_mm2))
        if r.union_mask is not None:
            unions[r.union_mask.id] = (eid, r)
    known = {p.mask_id for p in plans}
    for r in results.values():
        if isinstance(r, MeasurementResult) and r.mask_id not in known and r.mask_id in unions:
            eid, seg = unions[r.mask_id]
            label = seg.regions[0].label if seg.regions else seg.target
            plans.append(SegmentPlan(len(plans) + 1, r.mask_id, f"{label} (all regions)", seg.target, eid,
                                     seg.provenance))
            known.add(r.mask_id)
    return plans


def algorithm_sequence(prov: Provenance, evidence_id: str) -> Any:
    import highdicom as hd

    return hd.AlgorithmIdentificationSequence(
        name=prov.expert, version=prov.model, family=coded(("123110", "DCM", "Artificial Intelligence")),
        source=f"backend {prov.backend}", parameters={"evidence": evidence_id,
                                                     "weights_sha256": prov.weights_sha256 or "none"})


def algorithm_id(prov: Provenance, evidence_id: str) -> Any:
    from highdicom.sr import AlgorithmIdentification

    return AlgorithmIdentification(name=prov.expert, version=prov.model, parameters=[
        f"backend={prov.backend}", f"weights_sha256={prov.weights_sha256 or 'none (classical method)'}",
        f"evidence={evidence_id}"])


def tracking(evidence_id: str, what: str) -> Any:
    import highdicom as hd
    from highdicom.sr import TrackingIdentifier

    return TrackingIdentifier(uid=hd.UID(), identifier=f"{evidence_id} {what}"[:64])


def local_code(code: str, meaning: str) -> Any:
    """A concept of the private ``99OSLER`` scheme (declared in the SR's Coding Scheme Identification)."""
    from highdicom.sr import CodedConcept

    return CodedConcept(value=code[:16], scheme_designator=LOCAL_SCHEME, meaning=meaning[:64])

