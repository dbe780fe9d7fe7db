"""What each tool does, on a session: run the chosen expert, store artifacts, build the typed
result.  Called only through :func:`agent.boundary.toolset.invoke`, which times, records and audits.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from experts.geometry import connected_regions, coverage_fraction, dedup_boxes, measure_mask
from experts.handles import DetectorHandle
from experts.overlay import draw_boxes, draw_heatmap, draw_masks, draw_prompts
from tools.cancel import check_cancelled
from tools.classification import ClassificationResult, ClassifyRequest, ImageInfoRequest, ImageInfoResult
from tools.common import Box, Provenance
from tools.detection import (ClassCount, CountResult, CrossCheck, CrossCheckCount, DetectRequest, Detection,
                             DetectionResult)
from tools.errors import ExpertFailedError, ExpertUnavailableError, InvalidInputError, WrongImageKindError
from tools.kinds import CLASSIFY_TASK_KINDS, IMAGE_KINDS, KIND_NAMES
from tools.segmentation import MeasurementResult, MeasureRequest, Region, SegmentationResult, SegmentRequest
from tools.targets import TARGET_KINDS, LiveTable, targets

from agent.session import Session

__all__ = ["image_info", "detect", "count", "segment", "measure", "classify", "ensure_colour", "ensure_kind",
           "diagnosis_tools"]

DEDUP_IOU = 0.5


def diagnosis_tools(kind: str) -> list[str]:
    """The tools that diagnose on ``kind`` (withheld when the gate does not trust that kind)."""
    tools = [f"classify {t}" for t, kinds in CLASSIFY_TASK_KINDS.items() if kind in kinds and kinds != IMAGE_KINDS]
    found = [t for t, kinds in TARGET_KINDS.items() if kind in kinds and kinds != IMAGE_KINDS]
    tools += [f"detect/count/segment/measure {t}" for t in found]
    return tools + (["compare_with_prior"] if found else [])


def image_info(session: Session, req: ImageInfoRequest, eid: str) -> ImageInfoResult:
    cached = session.image_kinds.get(req.image)
    if cached is not None:
        return cached.model_copy(update={"evidence_id": eid})
    img = session.image(req.image)
    out = session.pool.classifier("image_kind").predict(img)
    result = ImageInfoResult(
        evidence_id=eid, image=req.image, meta=img.meta, kind=out.label, kind_confidence=out.probabilities[out.label],
        kind_source=out.source or "pixels", kind_probabilities=out.probabilities, provenance=out.provenance,
        kind_trusted=out.trusted, kind_doubt=out.doubt, withheld_tools=[] if out.trusted else diagnosis_tools(out.label),
    )
    session.image_kinds[req.image] = result
    return result


def _vouched(session: Session, role: str, info: ImageInfoResult) -> bool:
    """A prior study that looks like the same kind as a trusted current study is accepted: the pair is two
    studies of one thing, and the current one vouches for the kind."""
    current = session.image_kinds.get("current")
    return role == "prior" and current is not None and current.kind_trusted and current.kind == info.kind


def ensure_kind(session: Session, role: str, accepted: tuple[str, ...], what: str) -> ImageInfoResult:
    """The modality gate at the tool boundary: refuse to run a tool on the wrong kind of image, or on an
    image whose kind the gate does not trust (unless :func:`_vouched`)."""
    info = session.image_kinds.get(role) or image_info(session, ImageInfoRequest(image=role), "gate")
    if info.kind not in accepted:
        want = " or ".join(KIND_NAMES[k] for k in accepted)
        raise WrongImageKindError(
            f"{what} needs {want}, but the {role} image looks like {KIND_NAMES[info.kind]} "
            f"(confidence {info.kind_confidence:.2f}); no result was produced",
            kind=info.kind, accepted=accepted,
        )
    if not info.kind_trusted and set(accepted) != set(IMAGE_KINDS) and not _vouched(session, role, info):
        raise WrongImageKindError(
            f"{what} was withheld: the {role} image looks most like {KIND_NAMES[info.kind]} (confidence "
            f"{info.kind_confidence:.2f}), but the modality gate does not trust that: {info.kind_doubt}; "
            f"no result was produced", kind=info.kind, accepted=accepted,
        )
    return info


def ensure_colour(session: Session, role: str, target: str, what: str) -> None:
    """Refuse a target whose experts read colour (TargetSpec.colour) on an image without any: a grey smear gave
    'I count 0 white blood cells' (the stain colours are what the detector and the cross-check see)."""
    spec = targets().get(target)
    if spec is not None and spec.colour and session.image(role).colourless:
        raise WrongImageKindError(
            f"{what} needs a colour image: the {role} image has no colour, and the {target.replace('_', ' ')} tools "
            f"were trained on colour images; no result was produced",
            kind=session.image_kinds[role].kind if role in session.image_kinds else "unknown", accepted=spec.kinds)


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


def paired_parts(mask: np.ndarray) -> list[tuple[np.ndarray, str | None]]:
    """A paired organ's mask as (part, patient's side): its two largest connected parts when the smaller holds at
    least a fifth of the larger, the part on the image's left being the patient's right (the standard display);
    smaller islands join the part on their side of the midline between the two. One part, side None, otherwise."""
    comps = connected_regions(mask, min_area=max(16, int(0.01 * mask.sum())))
    if len(comps) < 2 or comps[1].sum() < 0.2 * comps[0].sum():
        return [(mask, None)]
    xs = np.arange(mask.shape[1])
    ca, cb = (float((c.sum(axis=0) * xs).sum() / c.sum()) for c in comps[:2])
    image_left, image_right = (comps[0], comps[1]) if ca < cb else (comps[1], comps[0])
    rest = mask & ~image_left & ~image_right
    left_of_mid = (xs < (ca + cb) / 2)[None, :]
    return [(image_left | (rest & left_of_mid), "right"), (image_right | (rest & ~left_of_mid), "left")]


def _regions(session: Session, role: str, label: str, masks: list[np.ndarray], scores: list[float | None],
             sides: list[str | None] | None = None) -> list[Region]:
    img = session.image(role)
    out: list[Region] = []
    for mask, score, side in zip(masks, scores, sides or [None] * len(masks)):
        check_cancelled()
        m = measure_mask(mask, img.spacing)
        if m.area_px == 0 or m.bbox is None:
            continue
        ref = session.add_artifact("mask", mask)
        out.append(Region(index=len(out) + 1, label=label, mask=ref, area_px=m.area_px, area_mm2=m.area_mm2,
                          bbox=Box.from_xyxy(m.bbox), centroid=m.centroid,
                          score=None if score is None else float(min(max(score, 0.0), 1.0)), side=side))
    return out


# Targets whose automatic segmentation is "the detector proposes boxes, each prompts the segmenter" when the
# segmenter takes prompts (LiteMedSAM by default, the U-Net as fallback): TargetSpec.auto_prompt.  Polyps: measured
# on 28 held-out EndoTect frames + 5 negatives, experts/weights/litemedsam.md and polyp_unet.md.
AUTO_PROMPT_DETECTORS: LiveTable = LiveTable(lambda: {n: s.auto_prompt for n, s in targets().items() if s.auto_prompt})
"""Segmentation target -> the detector target whose boxes prompt it."""


def _detector_boxes(session: Session, img: Any, target: str
                    ) -> tuple[list[tuple[float, float, float, float]] | None, Provenance | None, str]:
    """(xyxy boxes, provenance, note) of the target's detector at its default threshold; boxes and
    provenance are None when no detector can run or it fails (the segmenter then works alone)."""
    try:
        out = session.pool.detector(AUTO_PROMPT_DETECTORS[target]).predict(img)
    except (ExpertUnavailableError, ExpertFailedError) as exc:
        return None, None, f"automatic: no {target} detector ({str(exc).splitlines()[0][:160]}), the segmenter ran alone"
    boxes = [tuple(float(v) for v in b) for b in np.asarray(out.boxes).reshape(-1, 4)]
    p = out.provenance
    det_note = f": {p.note}" if p.note else ""
    return boxes, p, (f"automatic: {len(boxes)} box(es) of the {target} detector ({p.backend} {p.model}{det_note}) "
                      "prompted the segmenter")


def segment(session: Session, req: SegmentRequest, eid: str) -> SegmentationResult:
    img = session.image(req.image)
    prompts: list[tuple[tuple[float, float, float, float] | None, list[tuple[float, float, bool]] | None]] = []
    if req.from_evidence:
        prior = session.evidence.get(req.from_evidence)
        if prior is None or not hasattr(prior, "detections") and not hasattr(prior, "counts"):
            raise InvalidInputError(f"'{req.from_evidence}' is not a detection or count result of this session")
        dets = prior.detections if hasattr(prior, "detections") else [d for c in prior.counts for d in c.instances]
        prompts = [(d.box.xyxy, None) for d in dets]
        if not prompts:
            raise InvalidInputError(f"{req.from_evidence} found nothing to segment")
    elif req.box is not None or req.points:
        pts = [(p.x, p.y, p.positive) for p in req.points or []]
        prompts = [(req.box.xyxy if req.box else None, pts or None)]
    if req.target == "prompt" and not prompts:
        raise InvalidInputError("target 'prompt' needs a box, points or from_evidence")
    label = "region" if req.target == "prompt" else req.target
    if req.target != "prompt":
        ensure_kind(session, req.image, TARGET_KINDS[req.target], f"segmenting the {req.target}")
        ensure_colour(session, req.image, req.target, f"segmenting the {req.target}")
    expert = session.pool.segmenter(req.target)
    masks: list[np.ndarray] = []
    scores: list[float | None] = []
    sides: list[str | None] = []
    t0 = time.perf_counter()
    prov = None
    auto_note, detected = None, False
    if not prompts and req.target in AUTO_PROMPT_DETECTORS and expert.promptable:
        boxes, det_prov, auto_note = _detector_boxes(session, img, req.target)
        if boxes is not None:  # the detector ran: its boxes (maybe none) are the prompts
            detected, prov = True, det_prov
            prompts = [(b, None) for b in boxes]
    for box, pts in prompts or ([] if detected else [(None, None)]):
        if (box is not None or pts) and not expert.promptable:
            raise ExpertUnavailableError(f"the {expert.backend} segmenter for {req.target} takes no prompts")
        raw = expert.predict(img, box=box, points=pts)
        prov = raw.provenance
        for m, s in zip(raw.masks, raw.scores):
            spec = targets().get(req.target)
            if not prompts and spec is not None and spec.paired:  # the lungs: the right and the left one
                parts = paired_parts(m)
            elif prompts or (spec is not None and spec.organ):
                parts = [(m, None)]
            else:  # automatic lesion segmentation: one region per connected component
                parts = [(c, None) for c in connected_regions(m, min_area=max(16, int(1e-4 * m.size)))]
            for part, side in parts:
                masks.append(part)
                scores.append(s)
                sides.append(side)
    prov = prov.model_copy(update={"elapsed_ms": (time.perf_counter() - t0) * 1000,
                                   "note": "; ".join(filter(None, [prov.note, auto_note, expert.why]))})
    if any(sides):
        prov = prov.model_copy(update={"note": f"{prov.note}; sides as displayed: the patient's right on the "
                                               f"image's left (a flipped image swaps them)"})
    regions = _regions(session, req.image, label, masks, scores, sides)
    union = None
    if regions:
        u = np.zeros((img.meta.height, img.meta.width), dtype=bool)
        for m in masks:
            u |= m
        union = session.add_artifact("mask", u) if len(regions) > 1 else regions[0].mask
    drawn = draw_masks(img.pixels, [(r.index, f"{r.side} {r.label}" if r.side else r.label, session.mask(r.mask.id))
                                    for r in regions], title=f"{eid} segment {label}")
    if prompts:  # show where the box / click / detector box was
        drawn = draw_prompts(drawn, [b for b, _ in prompts if b is not None], [p for _, pts in prompts for p in pts or []])
    overlay = session.add_artifact("overlay", drawn)
    return SegmentationResult(evidence_id=eid, image=req.image, target=req.target, regions=regions, union_mask=union,
                              overlay=overlay, provenance=prov)


def measure(session: Session, req: MeasureRequest, eid: str) -> MeasurementResult:
    t0 = time.perf_counter()
    mask = session.mask(req.mask_id)
    role = "current"
    for ev in session.evidence.values():
        for r in getattr(ev, "regions", []):
            if r.mask.id == req.mask_id:
                role = ev.image
    spacing = session.images[role].spacing if role in session.images else None
    m = measure_mask(mask, spacing)
    frac = None
    if req.within_mask_id:
        organ = session.mask(req.within_mask_id)
        if organ.shape != mask.shape:
            raise InvalidInputError("the two masks come from images of different sizes")
        frac = coverage_fraction(mask, organ)
    prov = Provenance(expert="measurement", backend="numpy", model="convex-hull-calipers-v1", device="cpu",
                      elapsed_ms=(time.perf_counter() - t0) * 1000,
                      note="mm from DICOM pixel spacing" if spacing else _no_spacing_note(session, role))
    return MeasurementResult(
        evidence_id=eid, mask_id=req.mask_id, area_px=m.area_px, area_mm2=m.area_mm2, long_diameter_px=m.long_px,
        long_diameter_mm=m.long_mm, short_diameter_px=m.short_px, short_diameter_mm=m.short_mm,
        bbox=Box.from_xyxy(m.bbox) if m.bbox else None, centroid=m.centroid, within_mask_id=req.within_mask_id,
        fraction_of_within=frac, spacing_mm=spacing, provenance=prov,
    )


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
                                uncertain_reason=out.uncertain_reason, provenance=prov)

