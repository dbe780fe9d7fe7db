"""``compare_with_prior``: register the prior onto the current study, run the same expert on both,
match findings across time and report what changed, with overlays.

Steps (every expert call goes through the tool boundary, :func:`agent.boundary.toolset.invoke`, which the toolset
passes in as ``invoke``, so it is recorded and audited):

1. The modality gate (``image_info``) on both studies: different kinds of image are refused.
2. Target: the request's, or by kind for ``auto`` (blood smear -> ``blood_cells`` counts and
   instance matching; endoscopy -> ``polyp`` segmentation regions; chest X-ray -> ``lung``
   segmentation and opacity change inside the lung fields).
3. Pairs that cannot be compared as given are refused (:mod:`agent.boundary.compare_guards`: a prior dated
   after the current study, the same picture twice, a prior that lines up far better mirrored); then
   registration (:func:`experts.registration.register`); a failed alignment is refused with the numbers that
   show why.
4. The expert on both studies (``count`` / ``segment``), prior findings mapped through the
   registration, matched and classified (:func:`experts.change.compare_findings`); counts per class
   within the common field of view; for chest films, ``lung_opacity_change``.
5. Overlays: prior (registered) and current side by side with matched findings numbered alike, and a
   change map (exposure-normalised difference, findings outlined in their status colour).

Interval: current minus prior study date (``ImageMeta.study_date``: DICOM StudyDate or given by the user).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any, Callable

import numpy as np

from experts.change import (
    AREA_THRESHOLD,
    ChangeRecord,
    Finding,
    clip_to_view,
    compare_findings,
    count_changes,
    difference_map,
    finding_from_box,
    finding_from_mask,
    map_finding,
    opacity_change,
)
from experts.geometry import connected_regions
from experts.overlay import draw_boxes, draw_heatmap, draw_masks, side_by_side
from experts.registration import METHOD_ID, RegistrationOutcome, register, to_gray, warp_image, warp_mask
from tools.classification import ImageInfoRequest
from tools.common import Provenance
from tools.comparison import ComparisonResult, CompareRequest, CountChange, FindingChange, Registration
from tools.detection import DetectRequest
from tools.errors import ExpertUnavailableError, WrongImageKindError
from tools.kinds import KIND_NAMES
from tools.segmentation import SegmentRequest
from tools.targets import TARGET_KINDS, LiveTable, TargetSpec, targets

from agent.session import Session
from agent.boundary.compare_guards import (copy_refusal, mirror_refusal, mm_spacings, order_refusal,  # noqa: F401
                                           projection_caveat, same_picture)
from agent.boundary.gate import ensure_colour, ensure_kind

__all__ = ["Invoke", "compare_studies", "run_comparison", "AUTO_TARGET", "MATCHED_CELL_CLASSES", "interval_days",
           "same_picture"]

log = logging.getLogger(__name__)

Invoke = Callable[[Session, str, Any], Any]
"""The tool boundary, ``(session, tool name, request) -> typed result`` (:func:`agent.boundary.toolset.invoke`)."""

def _auto_targets() -> dict[str, str]:
    out: dict[str, str] = {}
    for s in targets().values():
        for kind in s.kinds if s.compare_by_default else ():
            out.setdefault(kind, s.name)
    return out


AUTO_TARGET: LiveTable = LiveTable(_auto_targets)
"""Image kind -> what ``target='auto'`` compares (TargetSpec.compare_by_default): blood smear -> blood_cells, ..."""
MATCHED_CELL_CLASSES = tuple(c.label for c in targets()["blood_cells"].classes if c.matched)
"""Cells listed one by one across time (TargetClass.matched); RBCs (dozens, overlapping) are only counted."""
EXPERT = "prior_comparison"


def interval_days(prior_date: str | None, current_date: str | None) -> int | None:
    """Days from the prior to the current study (ISO dates); None when either is unknown."""
    if not prior_date or not current_date:
        return None
    try:
        return (dt.date.fromisoformat(current_date) - dt.date.fromisoformat(prior_date)).days
    except ValueError:
        return None


def _kind(session: Session, role: str, invoke: Invoke) -> Any:
    return session.image_kinds.get(role) or invoke(session, "image_info", ImageInfoRequest(image=role))


def _registration_model(reg: RegistrationOutcome) -> Registration:
    return Registration(method=reg.method, matrix=[[float(v) for v in row] for row in reg.matrix],
                        shift_px=(round(reg.shift_px[0], 2), round(reg.shift_px[1], 2)),
                        rotation_deg=round(reg.rotation_deg, 3), scale=round(reg.scale, 4),
                        ncc_before=round(reg.ncc_before, 4), ncc_after=round(reg.ncc_after, 4), success=reg.success)


def _findings(session: Session, target: str, role: str, invoke: Invoke
              ) -> tuple[list[Finding], Any, np.ndarray | None]:
    """(findings of one study in its own pixels, the tool result they come from, organ union mask).
    How depends on the target's ``compare`` mode: 'instances' (the count's boxes), 'regions' (segmented
    regions), 'organ' (the two largest components of the organ mask: the left and right lung fields)."""
    spec = targets()[target]
    if spec.compare == "instances":
        r = invoke(session, "count", DetectRequest(target=target, image=role))
        insts = [d for c in r.counts for d in c.instances]
        return [finding_from_box(d.label, d.box.xyxy, source=f"{r.evidence_id}#{d.index}") for d in insts], r, None
    r = invoke(session, "segment", SegmentRequest(target=target, image=role))
    masks = [session.mask(reg.mask.id) for reg in r.regions]
    if spec.compare != "organ":
        return [finding_from_mask(reg.label, m, source=reg.mask.id) for reg, m in zip(r.regions, masks)], r, None
    img = session.image(role)
    union = np.zeros((img.meta.height, img.meta.width), dtype=bool)
    for m in masks:
        union |= m
    if spec.paired and any(reg.side for reg in r.regions):  # the right and the left lung, matched side to side
        return [finding_from_mask(f"{reg.side} {spec.noun}" if reg.side else spec.noun, m, source=r.evidence_id)
                for reg, m in zip(r.regions, masks)], r, union
    comps = connected_regions(union, min_area=max(64, int(0.005 * union.size)))[:2]  # left and right fields
    return [finding_from_mask(spec.noun, c, source=r.evidence_id) for c in comps], r, union


def _pct(x: float | None) -> float | None:
    return None if x is None else round(float(x), 1)


def _change_model(rec: ChangeRecord) -> FindingChange:
    p, c = rec.prior, rec.current
    return FindingChange(
        index=rec.index, label=rec.label, status=rec.status,  # type: ignore[arg-type]
        prior_area_px=None if p is None else round(p.area_px, 1),
        current_area_px=None if c is None else round(c.area_px, 1),
        area_change_pct=_pct(rec.area_change_pct),
        prior_diameter_px=None if p is None else round(p.diameter_px, 1),
        current_diameter_px=None if c is None else round(c.diameter_px, 1),
        diameter_change_pct=_pct(rec.diameter_change_pct),
        prior_area_mm2=None if rec.prior_area_mm2 is None else round(rec.prior_area_mm2, 2),
        current_area_mm2=None if rec.current_area_mm2 is None else round(rec.current_area_mm2, 2),
    )


def _draw(pixels: np.ndarray, items: list[tuple[int, str, Finding]], title: str | None = None) -> np.ndarray:
    """Findings in their status colour, numbered: masks filled and outlined, boxes as rectangles."""
    masks = [(i, status, f.mask) for i, status, f in items if f.mask is not None]
    boxes = [(i, status, f.box) for i, status, f in items if f.mask is None and f.box is not None]
    out = draw_masks(pixels, masks, alpha=0.25) if masks else pixels
    return draw_boxes(out, boxes, title=title)


def _refused(eid: str, reason: str, t0: float, *, target: str | None = None, days: int | None = None,
             reg: RegistrationOutcome | None = None, note: str | None = None) -> ComparisonResult:
    prov = Provenance(expert=EXPERT, backend="opencv", model=METHOD_ID, device="cpu",
                      elapsed_ms=(time.perf_counter() - t0) * 1000, note=note)
    return ComparisonResult(evidence_id=eid, status="refused", reason=reason, interval_days=days, target=target,
                            registration=None if reg is None else _registration_model(reg), provenance=prov)


def _refused_pair(*args: Any, **kwargs: Any) -> tuple[ComparisonResult, list[ChangeRecord]]:
    return _refused(*args, **kwargs), []


def compare_studies(session: Session, req: CompareRequest, eid: str, invoke: Invoke) -> ComparisonResult:
    """Compare the prior with the current study (see the module docstring).  Raises
    WrongImageKindError for a target the images are not valid for, ExpertUnavailableError when the
    expert for the target cannot run; returns status 'refused' when the studies cannot be compared."""
    return run_comparison(session, req, eid, invoke)[0]


def run_comparison(session: Session, req: CompareRequest, eid: str, invoke: Invoke
                   ) -> tuple[ComparisonResult, list[ChangeRecord]]:
    """:func:`compare_studies`, also returning the change records (findings with their geometry,
    prior ones in the current frame) for evaluation and drawing."""
    import cv2

    t0 = time.perf_counter()
    cur_img, pri_img = session.image("current"), session.image("prior")
    days = interval_days(pri_img.meta.study_date, cur_img.meta.study_date)
    k_cur, k_pri = _kind(session, "current", invoke), _kind(session, "prior", invoke)
    if k_cur.kind != k_pri.kind:
        return _refused_pair(eid, f"the prior looks like {KIND_NAMES[k_pri.kind]} but the current image is "
                                  f"{KIND_NAMES[k_cur.kind]}: they are not two studies of the same thing", t0,
                             days=days, note=f"modality gate: current {k_cur.evidence_id}, prior {k_pri.evidence_id}")
    target = req.target if req.target != "auto" else AUTO_TARGET.get(k_cur.kind)
    if target is None:
        raise WrongImageKindError(f"comparison needs a blood smear, an endoscopy frame or a chest X-ray; these "
                                  f"images are {KIND_NAMES[k_cur.kind]}", kind=k_cur.kind,
                                  accepted=tuple(AUTO_TARGET))
    for role in ("current", "prior"):
        ensure_kind(session, role, TARGET_KINDS[target], f"comparing {target.replace('_', ' ')}")
        ensure_colour(session, role, target, f"comparing {target.replace('_', ' ')}")

    if why := order_refusal(pri_img, cur_img, days):
        return _refused_pair(eid, why, t0, target=target, days=days)
    keys = (cur_img.patient_key, pri_img.patient_key)
    if None not in keys and keys[0] != keys[1]:
        return _refused_pair(eid, "the two files name different patients (DICOM patient ID): a prior must be a study "
                                  "of the same patient", t0, target=target, days=days)
    patient_check = "same_patient_id" if None not in keys else "not_checked"
    if why := copy_refusal(pri_img, cur_img):
        return _refused_pair(eid, why, t0, target=target, days=days)
    reg = register(pri_img.pixels, cur_img.pixels)
    if not reg.success:
        return _refused_pair(eid, f"the prior could not be aligned to the current image: {reg.reason}", t0,
                             target=target, days=days, reg=reg, note="; ".join(reg.notes) or None)
    if why := mirror_refusal(pri_img, cur_img, reg):
        return _refused_pair(eid, why, t0, target=target, days=days, reg=reg)
    spacings = mm_spacings(pri_img.spacing, cur_img.spacing, reg.scale)

    try:
        f_pri, r_pri, lung_pri = _findings(session, target, "prior", invoke)
        f_cur, r_cur, lung_cur = _findings(session, target, "current", invoke)
    except ExpertUnavailableError as exc:
        raise ExpertUnavailableError(  # no numbers here: a failure has no result to back them
            f"the prior was aligned to the current image, but no {target.replace('_', ' ')} expert can run here, "
            f"so no change can be measured ({exc})") from exc

    shape = (cur_img.meta.height, cur_img.meta.width)
    valid = warp_image(np.full(pri_img.pixels.shape[:2], 255, np.uint8), reg.matrix, shape, nearest=True) > 0
    valid = cv2.erode(valid.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0  # drop the interpolated rim
    spec = targets()[target]
    cells = spec.compare == "instances"
    matched = {c.label for c in spec.classes if c.matched}
    records, aside = compare_findings(
        [f for f in f_pri if not cells or f.label in matched],
        [f for f in f_cur if not cells or f.label in matched],
        reg.matrix, shape, prior_valid=valid, prior_spacing=spacings[0], current_spacing=spacings[1],
        threshold=AREA_THRESHOLD)
    counts = _count_changes(spec, f_pri, f_cur, records, reg.matrix, valid)

    g_cur = to_gray(cur_img.pixels)
    g_pri_w = warp_image(to_gray(pri_img.pixels), reg.matrix, shape)
    opacity = None
    if spec.compare == "organ" and lung_cur is not None and lung_pri is not None:
        opacity = opacity_change(g_pri_w, g_cur, lung_cur & warp_mask(lung_pri, reg.matrix, shape), valid)
        opacity = None if opacity is None else round(opacity, 4)
    sbs, cmap = _overlays(session, eid, records, warp_image(pri_img.pixels, reg.matrix, shape), g_pri_w, g_cur,
                          valid, (pri_img.meta.study_date, cur_img.meta.study_date))

    note = (f"registration {reg.method}: {reg.inliers} feature inliers, NCC {reg.ncc_before:.2f} -> "
            f"{reg.ncc_after:.2f}, overlap {reg.overlap:.0%}; findings from {'count' if cells else 'segment'} "
            f"{target} ({r_cur.provenance.backend} {r_cur.provenance.model}; {r_pri.evidence_id} prior, "
            f"{r_cur.evidence_id} current); areas compared in the current frame, within the field of view both "
            f"studies show, change threshold "
            f"+-{AREA_THRESHOLD:.0%}")
    if cells:
        note += f"; {_listed(spec, True)} matched one by one{_listed(spec, False, ', {} counted only')}; counts within " \
                "the common field of view"
    if aside:
        note += f"; {aside} finding(s) outside the common field of view not compared"
    if spacings[2]:
        note += f"; {spacings[2]}"
    if projection := projection_caveat(pri_img, cur_img):
        note += f"; {projection}"
    if days is None:
        note += "; interval unknown (no study date on one or both images)"
    if opacity is not None:
        note += ("; opacity change = mean grey change (0..1) inside both lung masks, prior exposure matched to the "
                 "current outside the lungs")
    prov = Provenance(expert=EXPERT, backend="opencv", model=METHOD_ID, device="cpu",
                      elapsed_ms=(time.perf_counter() - t0) * 1000, note=note, doubt=_doubts(r_pri, r_cur))
    return ComparisonResult(
        evidence_id=eid, status="compared", interval_days=days, registration=_registration_model(reg), target=target,
        changes=[_change_model(r) for r in records], count_changes=counts, lung_opacity_change=opacity,
        side_by_side=sbs, change_map=cmap, patient_check=patient_check, provenance=prov,
    ), records


def _doubts(r_pri: Any, r_cur: Any) -> str | None:
    """Why the findings compared may be wrong: a side whose expert doubts its output on that image, or whose count
    an independent counter disputes (a single count says so; a comparison of two counts must too)."""
    out = []
    for role, r in (("prior", r_pri), ("current", r_cur)):
        if getattr(r.provenance, "doubt", None):
            out.append(f"{role} image: {r.provenance.doubt}")
        cc = getattr(r, "cross_check", None)
        if cc is not None and not cc.agrees:
            other = ", ".join(f"{c.count} {c.label}" for c in cc.disagreements())
            out.append(f"{role} image: an independent method ({cc.backend}) counted {other} there")
    return "; ".join(out) or None


def _listed(spec: TargetSpec, matched: bool, fmt: str = "{}") -> str:
    """The classes matched one by one (or only counted) as a note names them: 'WBC and platelets'."""
    names = [c.label if c.label.isupper() else c.plural for c in spec.classes if c.matched == matched]
    return fmt.format(" and ".join(names)) if names else ""


def _count_changes(spec: TargetSpec, f_pri: list[Finding], f_cur: list[Finding], records: list[ChangeRecord],
                   matrix: np.ndarray, valid: np.ndarray) -> list[CountChange]:
    """Instances (blood cells): every class, counting only instances inside the field of view both studies
    show; regions (polyps): regions on each side of the matched records; organs (lungs): none."""
    out: list[CountChange] = []
    if spec.compare == "instances":
        h, w = valid.shape

        def seen(pt: tuple[float, float]) -> bool:
            return 0 <= pt[0] < w and 0 <= pt[1] < h and bool(valid[int(pt[1]), int(pt[0])])

        # a cell cut by the edge of one study's view counts where its part inside the common view lies, on both sides
        in_p = [f.label for f in f_pri if seen(clip_to_view(map_finding(f, matrix, (h, w)), valid).centroid)]
        in_c = [f.label for f in f_cur if seen(clip_to_view(f, valid).centroid)]
        rows = count_changes(in_p, in_c, spec.labels)
        out = [CountChange(label=c, prior=p, current=q, delta=d) for c, p, q, d in rows]
    elif spec.compare == "regions":
        p = sum(1 for r in records if r.prior is not None)
        q = sum(1 for r in records if r.current is not None)
        out.append(CountChange(label=spec.name, prior=p, current=q, delta=q - p))
    return out


def _overlays(session: Session, eid: str, records: list[ChangeRecord], prior_rgb_w: np.ndarray, g_pri_w: np.ndarray,
              g_cur: np.ndarray, valid: np.ndarray, dates: tuple[str | None, str | None]) -> tuple[Any, Any]:
    """Side by side (registered prior | current, findings numbered alike) and the change map."""
    cur_rgb = session.image("current").pixels
    items_p = [(r.index, r.status, r.prior) for r in records if r.prior is not None]
    items_c = [(r.index, r.status, r.current) for r in records if r.current is not None]
    d_pri, d_cur = (d or "date unknown" for d in dates)
    panel = side_by_side(_draw(prior_rgb_w, items_p), _draw(cur_rgb, items_c),
                         labels=(f"{eid} prior {d_pri} (registered)", f"current {d_cur}"))
    heat = difference_map(g_pri_w, g_cur, valid, sigma=max(1.5, max(valid.shape) / 300))
    resolved = [(r.index, r.status, r.prior) for r in records if r.current is None and r.prior is not None]
    cmap = _draw(draw_heatmap(cur_rgb, heat), items_c + resolved,
                 f"{eid} change map: |current - registered prior|; findings by status")
    return session.add_artifact("overlay", panel), session.add_artifact("change_map", cmap)
