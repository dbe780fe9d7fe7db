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
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

from tools.errors import InvalidInputError

from agent.export.dicom_content import MANUFACTURER, SEGMENT_CODES, SegmentPlan, algorithm_sequence, coded, plan_segments, software
from agent.export.dicom_deid import UidMap, deidentify
from agent.export.dicom_sr import build_measurement_report
from agent.private_files import make_private, private_dir

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

__all__ = ["build_segmentation", "build_secondary_capture", "write_dicom", "SEG_SERIES_NUMBER", "SC_SERIES_NUMBER"]

SEG_SERIES_NUMBER, SC_SERIES_NUMBER = 9001, 9003

log = logging.getLogger(__name__)


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
            segment_number=plan.number, segment_label=plan.label[:64], segmented_property_category=coded(category),
            segmented_property_type=coded(kind), algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm_sequence(plan.provenance, plan.evidence_id),
            tracking_uid=hd.UID(), tracking_id=f"{plan.evidence_id} {plan.mask_id}"))
    seg = hd.seg.Segmentation(
        source_images=[source], pixel_array=stack, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name="Osler",
        software_versions=software(), device_serial_number="none", content_label="OSLER_SEG",
        content_description="Osler draft segmentation for review", series_description="Osler segmentation (draft)")
    if "FrameOfReferenceUID" not in source and "PatientOrientation" in source:
        seg.PatientOrientation = source.PatientOrientation  # General Image, Type 2C: the same pixel matrix
    return seg


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
    import pydicom.errors

    out = private_dir(out_dir)
    try:
        source = pydicom.dcmread(str(source_path))
    except (pydicom.errors.InvalidDicomError, OSError) as exc:
        raise InvalidInputError(f"{Path(source_path).name}: not a readable DICOM file ({exc})") from exc
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
        make_private(path)
        written[kind] = path
    return written
