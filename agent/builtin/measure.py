"""The outline-and-measure procedure: segment (from a point, from the detector's boxes, or the target whole; a
paired organ by side), then measure the region asked for, and phrase sizes in mm when the spacing is known."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Generator

from tools.answer import Finding
from tools.targets import targets

from agent.builtin.count import _count
from agent.builtin.draft import Call, Draft, call_or_fail, nothing_found
from agent.builtin.intents import Intent
from agent.summaries import fmt, summarize


_SIDE = r"\b(left|right)\b"


def _measure_paired(d: Draft, it: Intent, spec: Any, seg: Any, sided: dict, ctx: dict) -> Generator:
    """A paired organ's measurement: the side the question names ('the left lung'), else both parts together
    (their union's area, each part's area from the segmentation; no diameter across both)."""
    eid = seg.evidence_id
    asked = re.search(_SIDE, it.clause.lower())
    part = sided.get(asked.group(1)) if asked else None
    if part is not None:
        ctx["side_answered"] = part.side  # the whole-image note does not apply
        mcall = Call("measure", {"mask_id": part.mask.id}, f"measure the {part.side} {spec.noun} (#{part.index})")
    elif seg.union_mask is not None:
        mcall = Call("measure", {"mask_id": seg.union_mask.id}, f"measure both {spec.plural} together")
    else:
        return
    m = yield from call_or_fail(d, mcall)
    if m is None:
        return
    meid = m.evidence_id
    d.step(f"Called measure on {mcall.args['mask_id']}: {summarize(m)}.", meid)
    cite = f"{meid}, {eid}"
    if part is not None:
        other = "left" if part.side == "right" else "right"
        d.sentences.append(_size_sentence(d, m, f"the {part.side} {spec.noun} (as displayed, the patient's {part.side} "
                                             f"is on the image's {other})", cite, _wants_diameter(it)))
    else:
        unit, total = ("mm²", m.area_mm2) if m.area_mm2 is not None else ("px", m.area_px)
        each = ", ".join(f"{side} {fmt(r.area_mm2) if unit == 'mm²' else r.area_px} {unit}"
                         for side, r in sorted(sided.items(), key=lambda kv: kv[1].index))
        d.sentences.append(f"The {spec.plural} cover {fmt(total)} {unit} together ({each}) [{cite}]; ask for the "
                           f"left or the right {spec.noun} for its diameters.")
        d.set_value(round(total, 1) if unit == "mm²" else total, unit)
        if m.area_mm2 is None:
            d.caveats.append(_pixel_caveat(m))
    d.caveats.append("sides as displayed: the patient's right on the image's left")
    d.findings.append(Finding(text=f"{spec.plural}: area {m.area_px} px", evidence=[meid, eid]))
    d.abstained.append(False)


def _segment_measure(d: Draft, it: Intent, target: str, ctx: dict) -> Generator:
    spec = targets().get(target)  # None for 'prompt'
    noun_of = "region" if spec is None else spec.noun
    by_box = spec is not None and "segment" not in spec.tasks  # no segmenter: the detector's box prompts SAM
    point = it.extras.get("point")
    if point is not None:
        seg_args: dict[str, Any] = {"target": target, "points": [{"x": point[0], "y": point[1], "positive": True}]}
        why = f"outline the {noun_of} at the given point ({fmt(point[0])}, {fmt(point[1])})"
    elif by_box:
        det = ctx.get("last_count")
        insts = [x for c in det.counts for x in c.instances] if hasattr(det, "counts") else list(det.detections)
        if not insts:
            d.sentences.append("There is nothing to outline or measure.")
            return
        pick = max(insts, key=lambda x: x.box.area) if not it.smallest else min(insts, key=lambda x: x.box.area)
        seg_args = {"target": "prompt", "box": {k: round(v, 1) for k, v in pick.box.model_dump().items()}}
        ctx["cell_label"] = pick.label
        why = f"outline the {'smallest' if it.smallest else 'largest'} {pick.label} (#{pick.index}) from its box"
    else:
        seg_args = {"target": target}
        why = f"outline the {target}"
        if spec is not None and spec.auto_prompt:  # the detector's boxes prompt the segmenter, shown as its own
            det = ctx.get("last_count")          # step (polyps: Dice 0.83 vs 0.78 alone)
            if det is None:
                det = yield from _count(d, replace(it, yes_no=False), spec.auto_prompt, detect_only=True, quiet=True)
                if det is None:
                    return
                ctx["last_count"] = det
            boxes = det.detections if hasattr(det, "detections") else [x for c in det.counts for x in c.instances]
            if not boxes:
                nothing_found(d, it.yes_no, it.negated, f"No {spec.noun} was detected (score >= {det.min_score:.2f}), "
                              f"so there is nothing to outline or measure [{det.evidence_id}].",
                              f"no {spec.noun} detected", det.evidence_id, spec.plural)
                return
            seg_args = {"target": target, "from_evidence": det.evidence_id}
            why = f"outline the {len(boxes)} detected {spec.noun}(s) from their boxes"
    call = Call("segment", seg_args, why)
    seg = yield from call_or_fail(d, call)
    if seg is None:
        return
    eid = seg.evidence_id
    named_by = ctx["last_count"].evidence_id if by_box and point is None and ctx.get("last_count") else ""
    d.step(f"Called segment to {why}: {summarize(seg)}.", eid, named_by)  # the count named the cell it outlines
    what = "region" if noun_of == "region" else f"{noun_of} region"
    if not seg.regions:
        nothing_found(d, it.yes_no, it.negated, f"No {what} was found, so there is nothing to measure [{eid}].",
                      f"no {what}", eid, "regions")
        return
    if it.yes_no and d.yes_no is None:
        d.yes_no = "no" if it.negated else "yes"
    regions = sorted(seg.regions, key=lambda r: -r.area_px)
    sided = {r.side: r for r in seg.regions if r.side}
    if sided and it.action == "measure":  # the lungs: the side asked for, or both together
        yield from _measure_paired(d, it, spec, seg, sided, ctx)
        return
    if it.action == "segment":  # the lungs as their right and left one (sides), other targets by size
        listed = seg.regions if sided else regions
        desc = "; ".join(f"#{r.index}{f' {r.side} {noun_of}' if r.side else ''}: {r.area_px} px" + (
            f" ({fmt(r.area_mm2)} mm²)" if r.area_mm2 is not None else "") for r in listed)
        head = f"Segmented the {spec.plural}" if sided else f"Segmented {len(regions)} {what}(s)"
        sides = "sides as displayed, the patient's right on the image's left; " if sided else ""
        d.sentences.append(f"{head}: {desc} ({sides}overlay and masks listed) [{eid}].")
        d.findings.append(Finding(text=f"{len(regions)} {what}(s)", evidence=[eid]))
        if spec is None or not spec.organ:
            d.set_value(len(regions), "regions")
        d.abstained.append(False)
        return
    main = regions[0] if not it.smallest else regions[-1]
    mcall = Call("measure", {"mask_id": main.mask.id}, f"measure region #{main.index}")
    m = yield from call_or_fail(d, mcall)
    if m is None:
        return
    meid = m.evidence_id
    d.step(f"Called measure on {main.mask.id}: {summarize(m)}.", meid)
    size = ("smallest" if it.smallest else "largest") if len(regions) > 1 or it.largest or it.smallest else ""
    noun = ctx.get("cell_label", noun_of) if by_box and point is None else noun_of
    who = f"the {size + ' ' if size else ''}{noun}"
    # the sentence cites what it rests on: the measurement, the region, and the count that named the cell
    cite = ", ".join(dict.fromkeys(e for e in (meid, eid, named_by) if e))
    sent = _size_sentence(d, m, who, cite, _wants_diameter(it))
    if len(regions) > 1:
        sent = f"Found {len(regions)} {noun_of} regions [{eid}]. " + sent
    d.sentences.append(sent)
    d.findings.append(Finding(text=f"{who}: area {m.area_px} px", evidence=[e for e in (meid, eid, named_by) if e]))
    d.abstained.append(False)


def _wants_diameter(it: Intent) -> bool:
    """Whether the answer's value is the longest diameter ('how wide is it?'), else the area."""
    return any(w in it.clause.lower() for w in ("diameter", "long", "wide", "width", "length"))


def _pixel_caveat(m: Any) -> str:
    if m.provenance.doubt:  # a spacing that would give an impossible size
        return m.provenance.doubt
    return (m.provenance.note if m.provenance.note and "ignored" in m.provenance.note else
            "sizes are in pixels: the image carries no pixel spacing (DICOM gives mm)")


def _size_sentence(d: Draft, m: Any, who: str, cite: str, diameter: bool) -> str:
    """The sentence of one measurement (in mm when the spacing is known, else pixels, said so), and the answer's
    value: the longest diameter when ``diameter``, else the area."""
    who = who[0].upper() + who[1:]
    if m.area_mm2 is not None:
        d.set_value(*((round(m.long_diameter_mm, 1), "mm") if diameter else (round(m.area_mm2, 1), "mm²")))
        return (f"{who} measures {fmt(m.long_diameter_mm)} x {fmt(m.short_diameter_mm)} mm (longest diameter x "
                f"perpendicular), area {fmt(m.area_mm2)} mm² [{cite}].")
    d.set_value(*((round(m.long_diameter_px, 1), "px") if diameter else (m.area_px, "px")))
    d.caveats.append(_pixel_caveat(m))
    why = ("the file's pixel spacing would give an impossible size, so no millimetres" if m.provenance.doubt else
           "no pixel spacing is known, so no millimetres")
    return (f"{who} covers {m.area_px} px, longest diameter {fmt(m.long_diameter_px)} px, perpendicular "
            f"{fmt(m.short_diameter_px)} px [{cite}]; {why}.")
