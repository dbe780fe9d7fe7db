"""What each tool does, on a session: run the chosen expert, store artifacts, build the typed
result.  Called only through :func:`agent.boundary.toolset.invoke`, which times, records and audits.
"""

from __future__ import annotations

import dataclasses
import time

from experts.geometry import coverage_fraction, dedup_boxes, measure_mask
from experts.handles import DetectorHandle
from experts.overlay import draw_boxes, draw_heatmap
from tools.classification import ClassificationResult, ClassifyRequest, ImageInfoRequest
from tools.common import Box, Provenance
from tools.detection import (ClassCount, CountResult, CrossCheck, CrossCheckCount, DetectRequest, Detection,
                             DetectionResult)
from tools.errors import ExpertFailedError, ExpertUnavailableError, InvalidInputError
from tools.kinds import CLASSIFY_TASK_KINDS
from tools.segmentation import MeasurementResult, MeasureRequest
from tools.targets import TARGET_KINDS, LiveTable, targets

from agent.boundary.gate import ensure_colour, ensure_kind, image_info
from agent.session import Session

__all__ = ["detect", "count", "measure", "classify"]
"""The image kind (``image_info``, the refusals) is :mod:`agent.boundary.gate`; ``segment`` is
:mod:`agent.boundary.segment`."""

DEDUP_IOU = 0.5


def _detections(session: Session, req: DetectRequest, backend: str | None = None
                ) -> tuple[list[Detection], float, Provenance, DetectorHandle]:
    what = f"detecting {req.target.replace('_', ' ')}"
    ensure_kind(session, req.image, TARGET_KINDS[req.target], what)
    ensure_colour(session, req.image, req.target, what)
    img = session.image(req.image)
    expert = session.pool.detector(req.target, backend=backend)
    raw = expert.predict(img, min_score=req.min_score)
    wanted = {c.lower() for c in req.classes} if req.classes else None
    if wanted is not None:
        known = {c.lower() for c in expert.classes}
        unknown = wanted - known
        if unknown:
            raise InvalidInputError(f"unknown class(es) {sorted(unknown)}; this detector knows {list(expert.classes)}")
    keep = dedup_boxes(raw.boxes, raw.scores, raw.labels, DEDUP_IOU)
    dets: list[Detection] = []
    for i in keep:
        if wanted is not None and raw.labels[i].lower() not in wanted:
            continue
        x0, y0, x1, y1 = (float(v) for v in raw.boxes[i])
        x1, y1 = min(x1, img.meta.width), min(y1, img.meta.height)
        if x1 - max(x0, 0) < 1 or y1 - max(y0, 0) < 1:
            continue
        dets.append(Detection(index=len(dets) + 1, label=raw.labels[i], score=float(raw.scores[i]),
                              box=Box(x_min=max(x0, 0.0), y_min=max(y0, 0.0), x_max=x1, y_max=y1)))
    prov = raw.provenance.model_copy(update={"note": "; ".join(filter(None, [raw.provenance.note, expert.why]))})
    thr = raw.min_score  # with per-class thresholds: the lowest applied, unless fewer classes were asked for
    per_class = getattr(expert.expert, "class_min_scores", None) or {}
    if req.min_score is None and per_class and wanted is not None:
        thr = min(per_class.get(c, expert.default_min_score) for c in expert.classes if c.lower() in wanted)
    return dets, thr, prov, expert


def _box_overlay(session: Session, role: str, dets: list[Detection], title: str):
    img = session.image(role)
    drawn = draw_boxes(img.pixels, [(d.index, d.label, d.box.xyxy) for d in dets], title=title)
    return session.add_artifact("overlay", drawn)


def detect(session: Session, req: DetectRequest, eid: str) -> DetectionResult:
    dets, thr, prov, _ = _detections(session, req)
    overlay = _box_overlay(session, req.image, dets, f"{eid} detect {req.target} (score >= {thr:.2f})")
    return DetectionResult(evidence_id=eid, image=req.image, target=req.target, detections=dets, min_score=thr,
                           overlay=overlay, provenance=prov)


# Counts checked by a second, independent backend of the same task (YOLO <-> classical OpenCV), per class: the
# count difference beyond which the two disagree (TargetClass.cross_check_tolerance; for WBC tuned by `osler bench
# counts-cv` on the smears the YOLO never saw, highest catch rate with <= 10 % false alarms, and flagged answers at
# least twice as often wrong as unflagged ones; experts/weights/bccd_yolo.md).
CROSS_CHECK_TOLERANCE: LiveTable = LiveTable(lambda: {
    n: {c.label: c.cross_check_tolerance for c in s.classes if c.cross_check_tolerance is not None}
    for n, s in targets().items() if any(c.cross_check_tolerance is not None for c in s.classes)})


def _cross_check(session: Session, req: DetectRequest, primary: Provenance, counts: list[ClassCount], eid: str
                 ) -> CrossCheck | None:
    """Run the first other backend that can run here; None when there is none or it fails."""
    tolerance = CROSS_CHECK_TOLERANCE.get(req.target, {})
    checked = [c for c in counts if c.label in tolerance]
    others = [name for name, reason in session.pool.backends(f"detect:{req.target}")
              if name != primary.backend and reason is None]
    if not checked or not others:
        return None
    try:
        dets, thr, prov, _ = _detections(session, req.model_copy(update={"min_score": None}), backend=others[0])
    except (ExpertUnavailableError, ExpertFailedError):
        return None
    items = []
    for c in checked:
        n = sum(d.label.lower() == c.label.lower() for d in dets)
        items.append(CrossCheckCount(label=c.label, count=n, primary_count=c.count, tolerance=tolerance[c.label],
                                     agrees=abs(n - c.count) <= tolerance[c.label]))
    agrees = all(i.agrees for i in items)
    overlay = None
    if not agrees:  # the second overlay is shown only when it tells the reader something
        shown = [d for d in dets if d.label in {c.label for c in checked}]
        overlay = _box_overlay(session, req.image, shown, f"{eid} cross-check: {prov.backend} {prov.model} "
                                                          f"(score >= {thr:.2f})")
    return CrossCheck(backend=prov.backend, counts=items, agrees=agrees, overlay=overlay, provenance=prov)


def count(session: Session, req: DetectRequest, eid: str) -> CountResult:
    dets, thr, prov, expert = _detections(session, req)
    labels = list(req.classes) if req.classes else list(expert.classes)
    canon = {c.lower(): c for c in expert.classes}
    counts = []
    for lab in labels:
        name = canon.get(lab.lower(), lab)
        inst = [d for d in dets if d.label.lower() == name.lower()]
        counts.append(ClassCount(label=name, count=len(inst), instances=inst))
    check = _cross_check(session, req, prov, counts, eid)  # its overlay first: the count's own overlay stays last
    overlay = _box_overlay(session, req.image, dets, f"{eid} count {req.target} (score >= {thr:.2f})")
    return CountResult(evidence_id=eid, image=req.image, target=req.target, counts=counts,
                       total=sum(c.count for c in counts), min_score=thr, dedup_iou=DEDUP_IOU, overlay=overlay,
                       provenance=prov, cross_check=check)


def measure(session: Session, req: MeasureRequest, eid: str) -> MeasurementResult:
    t0 = time.perf_counter()
    mask = session.mask(req.mask_id)
    role, label = "current", ""
    for ev in session.evidence.values():
        for r in getattr(ev, "regions", []):
            if r.mask.id == req.mask_id:
                role, label = ev.image, r.label
    spacing = session.images[role].spacing if role in session.images else None
    m = measure_mask(mask, spacing)
    implausible = implausible_size(label, m.long_mm, spacing)
    if implausible:  # a wrong PixelSpacing tag: the millimetres would be invented, the pixels still hold
        m = dataclasses.replace(m, area_mm2=None, long_mm=None, short_mm=None)
    frac = None
    if req.within_mask_id:
        organ = session.mask(req.within_mask_id)
        if organ.shape != mask.shape:
            raise InvalidInputError("the two masks come from images of different sizes")
        frac = coverage_fraction(mask, organ)
    prov = Provenance(expert="measurement", backend="numpy", model="convex-hull-calipers-v1", device="cpu",
                      elapsed_ms=(time.perf_counter() - t0) * 1000,
                      note=implausible or ("mm from DICOM pixel spacing" if spacing else _no_spacing_note(session, role)),
                      doubt=implausible)
    return MeasurementResult(
        evidence_id=eid, mask_id=req.mask_id, area_px=m.area_px, area_mm2=m.area_mm2, long_diameter_px=m.long_px,
        long_diameter_mm=m.long_mm, short_diameter_px=m.short_px, short_diameter_mm=m.short_mm,
        bbox=Box.from_xyxy(m.bbox) if m.bbox else None, centroid=m.centroid, within_mask_id=req.within_mask_id,
        fraction_of_within=frac, spacing_mm=None if implausible else spacing, provenance=prov,
    )


PLAUSIBLE_LONG_MM = {"lung": (40.0, 400.0), "polyp": (0.5, 120.0), "wbc": (0.004, 0.05), "rbc": (0.002, 0.02),
                     "platelet": (0.0005, 0.01)}
"""Longest diameter (mm) a structure of each kind can have in a patient, generous: a lung field of an infant to a
tall adult, a diminutive to a giant polyp, blood cells in micrometres.  A measurement outside it means the DICOM
pixel spacing does not belong to these pixels (a probe's PixelSpacing of 5 mm had given a '1517 x 1049 mm' polyp)."""


def implausible_size(label: str, long_mm: float | None, spacing: tuple[float, float] | None) -> str | None:
    """Why millimetres computed with ``spacing`` are withheld for a structure named ``label``, or None."""
    key = next((k for k in PLAUSIBLE_LONG_MM if k in label.lower()), None)
    if key is None or long_mm is None or not spacing:
        return None
    lo, hi = PLAUSIBLE_LONG_MM[key]
    if lo <= long_mm <= hi:
        return None
    return (f"the DICOM pixel spacing ({spacing[0]:g} x {spacing[1]:g} mm) would make this {label} {long_mm:.4g} mm "
            f"long, outside {lo:g}-{hi:g} mm for a {key}: the spacing does not fit these pixels, so sizes are given "
            f"in pixels only; check the file's PixelSpacing")


def _no_spacing_note(session: Session, role: str) -> str:
    """Why sizes are in pixels: no spacing at all, or a DICOM spacing tag that was not plausible."""
    image = session.images.get(role)
    why = image.meta.spacing_note if image is not None else None
    return why or "no pixel spacing known: pixels only"


def classify(session: Session, req: ClassifyRequest, eid: str) -> ClassificationResult:
    if req.task == "image_kind":
        info = image_info(session, ImageInfoRequest(image=req.image), eid)
        return ClassificationResult(evidence_id=eid, image=req.image, task=req.task, label=info.kind,
                                    probabilities=info.kind_probabilities or {info.kind: 1.0}, calibrated=False,
                                    provenance=info.provenance)
    ensure_kind(session, req.image, CLASSIFY_TASK_KINDS[req.task], "the pneumonia classifier")
    img = session.image(req.image)
    expert = session.pool.classifier(req.task)
    out = expert.predict(img, explain=req.explain)
    saliency = None
    if out.saliency is not None:
        saliency = session.add_artifact("saliency", draw_heatmap(
            img.pixels, out.saliency, title=f"{eid} Grad-CAM for '{out.label}' (approximate explanation)"))
    prov = out.provenance.model_copy(update={"note": "; ".join(filter(None, [out.provenance.note, expert.why]))})
    return ClassificationResult(evidence_id=eid, image=req.image, task=req.task, label=out.label,
                                probabilities=out.probabilities, calibrated=out.calibrated, saliency=saliency,
                                threshold=out.threshold, uncertain=out.uncertain,
                                uncertain_reason=out.uncertain_reason,
                                uncertain_kind=out.uncertain_kind, provenance=prov)

