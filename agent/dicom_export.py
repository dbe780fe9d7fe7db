"""DICOM out, with highdicom: masks as a binary Segmentation, measurements and counts as a TID 1500
Measurement Report (Comprehensive 3D SR), the overlay as a Secondary Capture when asked.

Every object gets new UIDs and copies the source's patient and study modules (highdicom does the
copying; nothing about the patient is ever typed in here).  Each SR measurement group carries a
tracking identifier that starts with the evidence id (``"E3 lung"``), the algorithm identification
(expert name, model version, parameters ``backend=...``, ``weights_sha256=...``, ``evidence=E3``) and
references the source image (and, for regions, its segment in the SEG).  Completion flag PARTIAL,
verification flag UNVERIFIED: a draft for review.

Only the *current* study is exported (masks of a prior refer to another image).  A SEG frame is the
mask pixel for pixel: the mask is image-sized, in the source's pixel matrix (Osler never resamples).

highdicom and pydicom are imported inside the functions (they are heavy-ish and only exports need them).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from tools.classification import ClassificationResult
from tools.common import Provenance
from tools.detection import CountResult, DetectionResult
from tools.errors import InvalidInputError
from tools.segmentation import MeasurementResult, SegmentationResult

from .dicom_deid import UidMap, deidentify

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["SegmentPlan", "plan_segments", "build_segmentation", "build_measurement_report",
           "build_secondary_capture", "write_dicom", "UCUM", "ucum_unit", "SOFTWARE", "LOCAL_SCHEME"]

log = logging.getLogger(__name__)

MANUFACTURER = "Osler (open-source research software)"
LOCAL_SCHEME = "99OSLER"  # private coding scheme for concepts no standard codes (counts, model labels)
SEG_SERIES_NUMBER, SR_SERIES_NUMBER, SC_SERIES_NUMBER = 9001, 9002, 9003


def _software() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"osler {version('osler')}"
    except PackageNotFoundError:
        return "osler (not installed)"


SOFTWARE = _software()

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

# segment target -> (category, type) as (code, scheme, meaning), SNOMED CT / DCM codes from pydicom's tables
SEGMENT_CODES: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]] = {
    "lung": (("91723000", "SCT", "Anatomical Structure"), ("39607008", "SCT", "Lung")),
    "polyp": (("49755003", "SCT", "Morphologically Abnormal Structure"), ("68496003", "SCT", "Polyp of colon")),
    "prompt": (("309825002", "SCT", "Spatial and Relational Concept"), ("111030", "DCM", "Image Region")),
}


def _code(triple: tuple[str, str, str]) -> Any:
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
            plans.append(SegmentPlan(len(plans) + 1, region.mask.id, f"{region.label} {region.index}",
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


def _algorithm_sequence(prov: Provenance, evidence_id: str) -> Any:
    import highdicom as hd

    return hd.AlgorithmIdentificationSequence(
        name=prov.expert, version=prov.model, family=_code(("123110", "DCM", "Artificial Intelligence")),
        source=f"backend {prov.backend}", parameters={"evidence": evidence_id,
                                                     "weights_sha256": prov.weights_sha256 or "none"})


def _algorithm_id(prov: Provenance, evidence_id: str) -> Any:
    from highdicom.sr import AlgorithmIdentification

    return AlgorithmIdentification(name=prov.expert, version=prov.model, parameters=[
        f"backend={prov.backend}", f"weights_sha256={prov.weights_sha256 or 'none (classical method)'}",
        f"evidence={evidence_id}"])


def _tracking(evidence_id: str, what: str) -> Any:
    import highdicom as hd
    from highdicom.sr import TrackingIdentifier

    return TrackingIdentifier(uid=hd.UID(), identifier=f"{evidence_id} {what}"[:64])


def build_segmentation(source: Dataset, plans: Sequence[SegmentPlan], mask_of: Callable[[str], np.ndarray]) -> Dataset:
    """A binary SEG over the source's pixel matrix, one segment per plan (empty masks are skipped by the
    caller).  ``mask_of(mask_id)`` -> bool (rows, cols) array."""
    import highdicom as hd

    if "NumberOfFrames" in source and int(source.NumberOfFrames or 1) > 1:
        raise InvalidInputError("exporting a segmentation of a multi-frame DICOM is not supported yet")
    rows, cols = int(source.Rows), int(source.Columns)
    stack = np.zeros((1, rows, cols, len(plans)), dtype=bool)
    descriptions = []
    for i, plan in enumerate(plans):
        mask = np.asarray(mask_of(plan.mask_id), dtype=bool)
        if mask.shape != (rows, cols):
            raise InvalidInputError(f"mask {plan.mask_id} is {mask.shape[1]}x{mask.shape[0]}, the source image "
                                    f"{cols}x{rows}; cannot write it as a segmentation of that image")
        stack[0, :, :, i] = mask
        category, kind = SEGMENT_CODES[plan.target]
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=plan.number, segment_label=plan.label[:64], segmented_property_category=_code(category),
            segmented_property_type=_code(kind), algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=_algorithm_sequence(plan.provenance, plan.evidence_id),
            tracking_uid=hd.UID(), tracking_id=f"{plan.evidence_id} {plan.mask_id}"))
    seg = hd.seg.Segmentation(
        source_images=[source], pixel_array=stack, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name="Osler",
        software_versions=SOFTWARE, device_serial_number="none", content_label="OSLER_SEG",
        content_description="Osler draft segmentation for review", series_description="Osler segmentation (draft)")
    if "FrameOfReferenceUID" not in source and "PatientOrientation" in source:
        seg.PatientOrientation = source.PatientOrientation  # General Image, Type 2C: the same pixel matrix
    return seg


def _measurement(name: Any, value: float, unit: str, prov: Provenance, eid: str, what: str, source: Dataset) -> Any:
    from highdicom.sr import Measurement, SourceImageForMeasurement

    return Measurement(name=name, value=float(value), unit=ucum_unit(unit), tracking_identifier=_tracking(eid, what),
                       algorithm_id=_algorithm_id(prov, eid),
                       referenced_images=[SourceImageForMeasurement.from_source_image(source)])


def _local(code: str, meaning: str) -> Any:
    from highdicom.sr import CodedConcept

    return CodedConcept(value=code[:16], scheme_designator=LOCAL_SCHEME, meaning=meaning[:64])


def _frame_of(seg: Dataset, segment_number: int) -> int:
    """1-based SEG frame that holds a segment (one source frame: one SEG frame per segment)."""
    shared = seg.SharedFunctionalGroupsSequence[0]
    for i, item in enumerate(seg.PerFrameFunctionalGroupsSequence, 1):
        ident = item.get("SegmentIdentificationSequence") or shared.get("SegmentIdentificationSequence")
        if int(ident[0].ReferencedSegmentNumber) == segment_number:
            return i
    raise InvalidInputError(f"segment {segment_number} has no frame in the segmentation")


def _region_group(source: Dataset, seg: Dataset, plan: SegmentPlan, measurements: list[Any], eid: str,
                  prov: Provenance) -> Any:
    from highdicom.sr import (PlanarROIMeasurementsAndQualitativeEvaluations, ReferencedSegmentationFrame,
                              SourceImageForSegmentation)

    category, kind = SEGMENT_CODES[plan.target]
    return PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(eid, plan.label), finding_type=_code(kind), finding_category=_code(category),
        referenced_segment=ReferencedSegmentationFrame(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, frame_number=_frame_of(seg, plan.number),
            segment_number=plan.number, source_image=SourceImageForSegmentation.from_source_image(source)),
        algorithm_id=_algorithm_id(prov, eid), measurements=measurements)


def _image_group(source: Dataset, eid: str, what: str, prov: Provenance, measurements: list[Any],
                 evaluations: list[Any] | None = None) -> Any:
    from highdicom.sr import MeasurementsAndQualitativeEvaluations, SourceImageForMeasurementGroup

    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(eid, what), algorithm_id=_algorithm_id(prov, eid),
        measurements=measurements or None, qualitative_evaluations=evaluations or None,
        source_images=[SourceImageForMeasurementGroup.from_source_image(source)])


def _mask_measurements(m: MeasurementResult, eid: str, source: Dataset) -> list[Any]:
    from pydicom.sr.codedict import codes

    p, out = m.provenance, []
    area, area_unit = (m.area_mm2, "mm2") if m.area_mm2 is not None else (m.area_px, "px")
    out.append(_measurement(codes.SCT.Area, area, area_unit, p, eid, "area", source))
    long_, short, unit = ((m.long_diameter_mm, m.short_diameter_mm, "mm") if m.long_diameter_mm is not None
                          else (m.long_diameter_px, m.short_diameter_px, "px"))
    out.append(_measurement(codes.SCT.LongAxis, long_, unit, p, eid, "long axis", source))
    out.append(_measurement(codes.SCT.ShortAxis, short, unit, p, eid, "short axis", source))
    if m.fraction_of_within is not None:
        out.append(_measurement(_local("fraction-within", f"Fraction of {m.within_mask_id} covered"),
                                100.0 * m.fraction_of_within, "%", p, eid, "fraction", source))
    return out


def _count_unit(target: str) -> str:
    return "cells" if target == "blood_cells" else "polyps" if target == "polyp" else "1"


def build_measurement_report(source: Dataset, seg: Dataset | None, plans: Sequence[SegmentPlan],
                             results: dict[str, BaseModel]) -> Dataset:
    """TID 1500 Measurement Report of every measurement, region, count and classification of the current study."""
    import highdicom as hd
    from highdicom.sr import (DeviceObserverIdentifyingAttributes, MeasurementReport, ObservationContext,
                              ObserverContext, QualitativeEvaluation)
    from pydicom.sr.codedict import codes

    by_mask = {p.mask_id: p for p in plans}
    groups: list[Any] = []
    measured: set[str] = set()
    for eid, r in results.items():
        if isinstance(r, MeasurementResult) and r.mask_id in by_mask and seg is not None:
            plan = by_mask[r.mask_id]
            measured.add(r.mask_id)
            groups.append(_region_group(source, seg, plan, _mask_measurements(r, eid, source), eid, r.provenance))
        elif isinstance(r, CountResult) and r.image == "current":
            ms = [_measurement(_local(f"count-{c.label}", f"Number of {c.label} in image"), c.count,
                               _count_unit(r.target), r.provenance, eid, f"{c.label} count", source) for c in r.counts]
            groups.append(_image_group(source, eid, f"{r.target} count", r.provenance, ms))
        elif isinstance(r, DetectionResult) and r.image == "current":
            labels = sorted({d.label for d in r.detections})
            ms = [_measurement(_local(f"count-{lab}", f"Number of {lab} detected"),
                               sum(d.label == lab for d in r.detections), _count_unit(r.target), r.provenance, eid,
                               f"{lab} detected", source) for lab in labels]
            if ms:
                groups.append(_image_group(source, eid, f"{r.target} detections", r.provenance, ms))
        elif isinstance(r, ClassificationResult) and r.image == "current" and r.task != "image_kind":
            ev = QualitativeEvaluation(name=codes.SCT.Finding, value=_local(r.label, r.label))
            prob = _measurement(codes.DCM.Probability, r.probabilities[r.label], "1", r.provenance, eid,
                                f"p({r.label})", source)
            groups.append(_image_group(source, eid, f"{r.task} {r.label}", r.provenance, [prob], [ev]))
    for plan in plans:  # regions nobody measured: their area, as the segmenter reported it
        if plan.mask_id in measured or seg is None or plan.area_px is None:
            continue
        area, unit = (plan.area_mm2, "mm2") if plan.area_mm2 is not None else (plan.area_px, "px")
        ms = [_measurement(codes.SCT.Area, area, unit, plan.provenance, plan.evidence_id, "area", source)]
        groups.append(_region_group(source, seg, plan, ms, plan.evidence_id, plan.provenance))
    if not groups:
        raise InvalidInputError("no measurement, region, count or classification of the current study to report")
    observer = ObserverContext(observer_type=codes.DCM.Device, observer_identifying_attributes=(
        DeviceObserverIdentifyingAttributes(uid=hd.UID(), name="Osler", manufacturer_name=MANUFACTURER,
                                            model_name=SOFTWARE)))
    # the image library entry of a projection radiograph needs its imager pixel spacing (highdicom); without a
    # usable one the library (optional in TID 1500) is left out, the groups still reference the image
    projection = str(source.get("Modality", "")) in ("CR", "DX", "MG", "IO", "RF", "XA", "RG", "PX")
    library = [source] if "ImagerPixelSpacing" in source or not projection else None
    report = MeasurementReport(observation_context=ObservationContext(observer_device_context=observer),
                               procedure_reported=codes.SCT.ImagingProcedure, imaging_measurements=groups,
                               referenced_images=library)
    evidence = [source] + ([seg] if seg is not None else [])
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report[0], series_instance_uid=hd.UID(), series_number=SR_SERIES_NUMBER,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER, is_complete=False,
        is_final=False, is_verified=False, series_description="Osler measurements (draft, unverified)")
    _frame_references_only(sr)
    if _uses_local_codes(sr):
        from pydicom.dataset import Dataset as _Dataset

        scheme = _Dataset()
        scheme.CodingSchemeDesignator = LOCAL_SCHEME
        scheme.CodingSchemeName = "Osler local concepts (counts, model labels)"
        scheme.CodingSchemeResponsibleOrganization = "Osler project"
        sr.CodingSchemeIdentificationSequence = [scheme]  # SOP Common: declares the private scheme used
    return sr


def _uses_local_codes(ds: Dataset) -> bool:
    for elem in ds:
        if elem.VR != "SQ":
            continue
        for item in elem.value:
            if item.get("CodingSchemeDesignator") == LOCAL_SCHEME or _uses_local_codes(item):
                return True
    return False


def _frame_references_only(ds: Dataset) -> None:
    """A 'Referenced Segmentation Frame' item references the SEG frame; PS3.3 Table 10-3 forbids a Referenced
    Segment Number beside a Referenced Frame Number (highdicom writes both; dciodvfy reports it).  Each SEG
    frame holds one segment, so the frame alone identifies the segment."""
    for elem in ds:
        if elem.VR != "SQ":
            continue
        for item in elem.value:
            if "ReferencedFrameNumber" in item and "ReferencedSegmentNumber" in item:
                del item.ReferencedSegmentNumber
            _frame_references_only(item)


def build_secondary_capture(source: Dataset, rgb: np.ndarray) -> Dataset:
    """The overlay (uint8 (H, W, 3)) as a Secondary Capture image in the source's study."""
    import highdicom as hd

    orientation = tuple(source.PatientOrientation) if "PatientOrientation" in source and \
        len(source.PatientOrientation) == 2 else None
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source, pixel_array=np.ascontiguousarray(rgb, dtype=np.uint8), photometric_interpretation="RGB",
        bits_allocated=8, coordinate_system="PATIENT" if orientation else None, series_instance_uid=hd.UID(),
        series_number=SC_SERIES_NUMBER, sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
        patient_orientation=orientation, series_description="Osler overlay (draft)")
    if "Laterality" not in sc:
        sc.Laterality = ""  # General Series, Type 2C: unknown, left empty (never guessed)
    return sc


def _for_export(source: Dataset, spacing_known: bool) -> Dataset:
    """The source as highdicom sees it: a pixel spacing Osler refused (zero, implausible) is left out, so the
    SEG states no spacing rather than a wrong one."""
    if spacing_known:
        return source
    src = copy.deepcopy(source)
    for kw in ("PixelSpacing", "ImagerPixelSpacing"):
        if kw in src:
            delattr(src, kw)
    return src


def write_dicom(source_path: str | Path, results: dict[str, BaseModel], mask_of: Callable[[str], np.ndarray],
                out_dir: str | Path, *, spacing_known: bool, deidentify_output: bool = False,
                overlay: np.ndarray | None = None) -> dict[str, Path]:
    """Write ``segmentation.dcm`` (when there are non-empty masks), ``measurements-sr.dcm`` (when there is
    anything to report), ``overlay-sc.dcm`` (when ``overlay`` is given) and, with ``deidentify_output``,
    ``image-deid.dcm`` (the de-identified source the others reference).  Returns {kind: path}."""
    import pydicom

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source = pydicom.dcmread(str(source_path))
    uids = UidMap() if deidentify_output else None
    if uids is not None:
        source = deidentify(source, uids)
    src = _for_export(source, spacing_known)
    written: dict[str, Path] = {}
    plans = [p for p in plan_segments(results) if np.asarray(mask_of(p.mask_id)).any()]
    plans = [dataclasses.replace(p, number=i) for i, p in enumerate(plans, 1)]
    objects: dict[str, Any] = {}
    seg = build_segmentation(src, plans, mask_of) if plans else None
    if seg is not None:
        objects["seg"] = seg
    try:
        objects["sr"] = build_measurement_report(src, seg, plans, results)
    except InvalidInputError as exc:
        log.info("no SR written: %s", exc)
    if overlay is not None:
        objects["sc"] = build_secondary_capture(src, overlay)
    if uids is not None:
        objects["image"] = source
    names = {"seg": "segmentation.dcm", "sr": "measurements-sr.dcm", "sc": "overlay-sc.dcm", "image": "image-deid.dcm"}
    for kind, ds in objects.items():
        if uids is not None and kind != "image":
            deidentify(ds, None)  # dates, times, names of the new objects; their UIDs are new already
        path = out / names[kind]
        ds.save_as(str(path), enforce_file_format=True)
        written[kind] = path
    return written
