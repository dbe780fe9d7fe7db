"""The TID 1500 Measurement Report (Comprehensive 3D SR) of the current study: one measurement group per
measured mask (referencing its SEG frame and the source image), per region nobody measured, per count,
detection result and classification.  Each group and measurement carries a tracking identifier that
starts with the evidence id and the algorithm identification of the tool that produced it.  Completion
flag PARTIAL, verification flag UNVERIFIED: a draft for review.  highdicom is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from tools.classification import ClassificationResult
from tools.common import Provenance
from tools.detection import CountResult, DetectionResult
from tools.errors import InvalidInputError
from tools.segmentation import MeasurementResult
from tools.targets import targets

from agent.export.dicom_content import (LOCAL_SCHEME, MANUFACTURER, SEGMENT_CODES, SegmentPlan, algorithm_id, coded, local_code,
                            software, tracking, ucum_unit)

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["build_measurement_report", "SR_SERIES_NUMBER"]

SR_SERIES_NUMBER = 9002


def _measurement(name: Any, value: float, unit: str, prov: Provenance, eid: str, what: str, source: Dataset) -> Any:
    from highdicom.sr import Measurement, SourceImageForMeasurement

    return Measurement(name=name, value=float(value), unit=ucum_unit(unit), tracking_identifier=tracking(eid, what),
                       algorithm_id=algorithm_id(prov, eid),
                       referenced_images=[SourceImageForMeasurement.from_source_image(source)])


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
        tracking_identifier=tracking(eid, plan.label), finding_type=coded(kind), finding_category=coded(category),
        referenced_segment=ReferencedSegmentationFrame(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, frame_number=_frame_of(seg, plan.number),
            segment_number=plan.number, source_image=SourceImageForSegmentation.from_source_image(source)),
        algorithm_id=algorithm_id(prov, eid), measurements=measurements)


def _image_group(source: Dataset, eid: str, what: str, prov: Provenance, measurements: list[Any],
                 evaluations: list[Any] | None = None) -> Any:
    from highdicom.sr import MeasurementsAndQualitativeEvaluations, SourceImageForMeasurementGroup

    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking(eid, what), algorithm_id=algorithm_id(prov, eid),
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
        out.append(_measurement(local_code("fraction-within", f"Fraction of {m.within_mask_id} covered"),
                                100.0 * m.fraction_of_within, "%", p, eid, "fraction", source))
    return out


def _count_unit(target: str) -> str:
    """UCUM-style annotation unit of a count of ``target`` ('cells', 'polyps'; '1' when it is not counted)."""
    spec = targets().get(target)
    return "1" if spec is None or "detect" not in spec.tasks else spec.count_unit or spec.plural


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
            ms = [_measurement(local_code(f"count-{c.label}", f"Number of {c.label} in image"), c.count,
                               _count_unit(r.target), r.provenance, eid, f"{c.label} count", source) for c in r.counts]
            groups.append(_image_group(source, eid, f"{r.target} count", r.provenance, ms))
        elif isinstance(r, DetectionResult) and r.image == "current":
            labels = sorted({d.label for d in r.detections})
            ms = [_measurement(local_code(f"count-{lab}", f"Number of {lab} detected"),
                               sum(d.label == lab for d in r.detections), _count_unit(r.target), r.provenance, eid,
                               f"{lab} detected", source) for lab in labels]
            if ms:
                groups.append(_image_group(source, eid, f"{r.target} detections", r.provenance, ms))
        elif isinstance(r, ClassificationResult) and r.image == "current" and r.task != "image_kind":
            ev = QualitativeEvaluation(name=codes.SCT.Finding, value=local_code(r.label, r.label))
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
                                            model_name=software())))
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
