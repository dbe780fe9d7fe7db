"""The ``segment`` tool: automatic (an organ whole, a paired organ as its two sides, a lesion as its connected
regions, or the target's detector boxes as prompts) or prompted (a box, points, an earlier detection).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from experts.geometry import connected_regions, measure_mask
from experts.overlay import draw_masks, draw_prompts
from tools.cancel import check_cancelled
from tools.common import Box, Provenance
from tools.errors import ExpertFailedError, ExpertUnavailableError, InvalidInputError
from tools.segmentation import Region, SegmentationResult, SegmentRequest
from tools.targets import TARGET_KINDS, LiveTable, targets

from agent.boundary.gate import ensure_colour, ensure_kind
from agent.session import Session

__all__ = ["AUTO_PROMPT_DETECTORS", "paired_parts", "segment"]


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
