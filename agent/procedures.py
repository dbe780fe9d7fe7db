"""The built-in planner's procedures: which tools to call for each intent, in what order, and how
to phrase the evidence-bound answer from their typed results.

``procedure`` is a generator: it yields a batch of :class:`Call` and receives the batch's
:class:`Outcome` list; it returns the :class:`~tools.answer.FinalAnswer`.  Routing respects the
modality gate: a target that is not valid for the image's kind is refused without a call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Generator

from tools.answer import FinalAnswer, Finding
from tools.detection import CountResult
from tools.kinds import KIND_NAMES, TARGET_KINDS

from .draft import SINGULAR, UNITS, Call, Draft, Outcome, call_or_fail, nothing_found
from .intents import Intent
from .summaries import backend_label, fmt, summarize

__all__ = ["Call", "Outcome", "procedure"]  # Call and Outcome are re-exported from .draft

def _resolve_target(it: Intent, kind: str) -> str | None:
    if it.target == "lesion":
        return {"endoscopy": "polyp"}.get(kind)
    return it.target


def _refuse(d: Draft, it: Intent, target: str | None, kind: str) -> None:
    what = (target or it.target or "that").replace("_", " ")
    accepted = TARGET_KINDS.get(target or "", ())
    if not accepted:
        d.step(f"No tool was run for '{it.clause}': Osler has no tool for {what} on {KIND_NAMES[kind]}.")
        d.sentences.append(f"I cannot answer '{it.clause}': Osler has no tool for {what} on {KIND_NAMES[kind]}, "
                           f"so I do not guess.")
        d.abstained.append(True)
        return
    need = " or ".join(KIND_NAMES[k] for k in accepted)
    d.step(f"No tool was run for '{it.clause}': finding {what} needs {need}, and this image is {KIND_NAMES[kind]}.")
    d.sentences.append(f"I cannot answer '{it.clause}' on this image: it is {KIND_NAMES[kind]}, and the tools for "
                       f"{what} work only on {need}.")
    d.abstained.append(True)


def _yes_no_count(d: Draft, it: Intent, n: int, noun: str, eid: str) -> None:
    if it.expected is not None:
        yes = n == it.expected
    else:
        yes = n > 0
    if it.negated:
        yes = not yes if it.expected is None else yes
    d.yes_no = d.yes_no or ("yes" if yes else "no")


def procedure(question: str, intents: list[Intent], *, has_prior: bool) -> Generator[list[Call], list[Outcome], FinalAnswer]:
    d = Draft()
    info_call = Call("image_info", {"image": "current"}, "identify the kind of image, so only valid tools are used")
    info = yield from call_or_fail(d, info_call)
    if info is None:
        return d.answer()
    kind = info.kind
    d.step(f"Identified the image to choose valid tools: {summarize(info)}.", info.evidence_id)
    if not info.kind_trusted:
        _withheld(d, info)
        return d.answer()
    if info.kind_confidence < 0.5:
        d.caveats.append(f"the image kind is uncertain (p={info.kind_confidence:.2f})")
    context: dict[str, Any] = {}
    for it in intents:
        yield from _run_intent(d, it, kind, info, has_prior, context)
    if not d.sentences:
        d.sentences.append("No tool can answer this question, so I give no answer rather than guess.")
        d.abstained.append(True)
    return d.answer()


def _withheld(d: Draft, info: Any) -> None:
    """The gate does not know this image: say what it looks like and which tools were withheld; run none."""
    tools = ", ".join(info.withheld_tools) or "none"
    d.step(f"The modality gate does not trust its verdict ({info.kind_doubt}), so no diagnosis tool was run "
           f"(withheld: {tools}).", info.evidence_id)
    d.label = d.label or "not_recognised"
    d.sentences.append(f"This image looks most like {KIND_NAMES[info.kind]} (gate confidence "
                       f"{info.kind_confidence:.2f}), but the gate does not know it well enough to route it: "
                       f"{info.kind_doubt.rstrip('.')} [{info.evidence_id}]. I ran no diagnosis tool on it (withheld: "
                       f"{tools}) and give no finding "
                       f"[{info.evidence_id}].")
    d.caveats.append("the image kind is not recognised with confidence: check that this is the intended image")
    d.abstained.append(True)


def _run_intent(d: Draft, it: Intent, kind: str, info: Any, has_prior: bool, ctx: dict) -> Generator:
    if it.action == "image_kind":
        d.label = d.label or kind
        d.findings.append(Finding(text=f"image kind: {kind}", evidence=[info.evidence_id]))
        d.sentences.append(f"This image is {KIND_NAMES[kind]} (gate confidence {info.kind_confidence:.2f}, "
                           f"decided from {info.kind_source}) [{info.evidence_id}].")
        d.abstained.append(False)
        return
    if it.action == "unknown":
        term = f" ('{it.unsupported}')" if it.unsupported else ""
        d.step(f"No tool covers '{it.clause}'{term}: the tools only count/locate blood cells and polyps, segment "
               f"polyps and lungs, classify pneumonia on chest X-rays and compare with a prior study.")
        d.sentences.append(f"No tool can answer '{it.clause}'{term}, so I do not answer it rather than guess.")
        d.abstained.append(True)
        return
    if it.action == "compare":
        yield from _compare(d, it, kind, has_prior)
        return
    if it.action == "describe":
        yield from _describe(d, it, kind, info, has_prior, ctx)
        return
    if it.action == "classify":
        yield from _classify(d, it, kind)
        return
    if it.extras.get("point") is not None:  # a point prompt: the polyp model on endoscopy, else SAM / GrabCut
        target = "polyp" if kind == "endoscopy" and it.target in (None, "polyp", "lesion") else "prompt"
        yield from _segment_measure(d, it, target, ctx)
        return
    target = _resolve_target(it, kind)
    if target is None or kind not in TARGET_KINDS.get(target, ()):
        _refuse(d, it, target, kind)
        return
    if target == "lung" and it.action in ("count", "detect"):
        it = replace(it, action="segment")  # lungs are outlined, not counted
    if it.action in ("count", "detect") or (target == "blood_cells" and it.action in ("segment", "measure")):
        det = ctx.get("last_count") if it.action in ("segment", "measure") else None
        if det is None:
            det = yield from _count(d, it, target, detect_only=it.action == "detect")
        if det is None:
            return
        ctx["last_count"] = det
        if it.action in ("count", "detect"):
            return
    yield from _segment_measure(d, it, target, ctx)


DESCRIBE_PLAN: dict[str, list[tuple[str, str | None]]] = {
    "blood_smear": [("count", "blood_cells")],
    "endoscopy": [("count", "polyp"), ("measure", "polyp")],
    "chest_xray": [("classify", None), ("segment", "lung")],
}


def _describe(d: Draft, it: Intent, kind: str, info: Any, has_prior: bool, ctx: dict) -> Generator:
    """'Describe this image': the kind's standard read, each part a tool call."""
    d.sentences.append(f"This is {KIND_NAMES[kind]} [{info.evidence_id}].")
    plan = DESCRIBE_PLAN.get(kind)
    if not plan:
        d.step(f"Osler has no tools for {KIND_NAMES[kind]} beyond identifying it.")
        d.sentences.append("Osler has no further tools for this kind of image, so it reports nothing else.")
        d.abstained.append(False)
        return
    d.abstained.append(False)
    for action, target in plan:
        sub = Intent(action, target=target, clause=f"{action} {target or ''}".strip())
        if action == "measure" and ctx.get("last_count") is not None and not any(
                c.count for c in ctx["last_count"].counts):
            continue  # nothing to measure
        yield from _run_intent(d, sub, kind, info, has_prior, ctx)


def _noun(label: str, n: int) -> str:
    return (SINGULAR if n == 1 else UNITS).get(label, label if n == 1 else f"{label}s")


def _count(d: Draft, it: Intent, target: str, detect_only: bool, quiet: bool = False) -> Generator:
    args: dict[str, Any] = {"target": target}
    if it.classes:
        args["classes"] = list(it.classes)
    name = "detect" if detect_only and not it.yes_no else "count"
    what = ", ".join(it.classes) if it.classes else target.replace("_", " ")
    call = Call(name, args, f"{'locate' if name == 'detect' else 'count'} {what}")
    r = yield from call_or_fail(d, call)
    if r is None:
        return None
    eid = r.evidence_id
    d.step(f"Called {name} to {call.why}: {summarize(r)}.", eid)
    d.caveats.append(f"{target.replace('_', ' ')} from {backend_label(r)}, confidence threshold {r.min_score:.2f}")
    if r.provenance.backend == "opencv":
        d.caveats.append("counts come from the classical OpenCV fallback, not a trained detector")
    if quiet:  # a step of a larger procedure (boxes that prompt the segmenter): no sentence of its own
        return r
    if name == "detect":
        groups: dict[str, list] = {}
        for det in r.detections:
            groups.setdefault(det.label, []).append(det)
        if not groups:
            d.sentences.append(f"No {what} was found (score >= {r.min_score:.2f}) [{eid}].")
            d.set_value(0, target)
        for label, dets in groups.items():
            where = "; ".join(f"#{x.index} at x {fmt(x.box.x_min, 0)}-{fmt(x.box.x_max, 0)}, "
                              f"y {fmt(x.box.y_min, 0)}-{fmt(x.box.y_max, 0)}" for x in dets[:6])
            more = f" and {len(dets) - 6} more" if len(dets) > 6 else ""
            d.sentences.append(f"Found {len(dets)} {_noun(label, len(dets))}: {where}{more} (boxes numbered on the "
                               f"overlay) [{eid}].")
            d.findings.append(Finding(text=f"{len(dets)} {label}", evidence=[eid]))
            d.set_value(len(dets), label)
        d.abstained.append(False)
        return r
    labels = [c for c in r.counts]
    parts = [f"{c.count} {_noun(c.label, c.count)}" for c in labels]
    total = sum(c.count for c in labels)
    for c in labels:
        d.findings.append(Finding(text=f"{c.count} {c.label}", evidence=[eid]))
    if it.yes_no:
        _yes_no_count(d, it, total, what, eid)
    if len(labels) == 1:
        d.set_value(labels[0].count, UNITS.get(labels[0].label, labels[0].label).split(" (")[0])
    else:
        d.set_value(total, "cells" if target == "blood_cells" else target)
    joined = ", ".join(parts) if parts else f"no {what}"
    d.sentences.append(f"I count {joined} (confidence threshold {r.min_score:.2f}) [{eid}].")
    _cross_check_sentence(d, r, eid)
    d.abstained.append(False)
    return r


def _cross_check_sentence(d: Draft, r: CountResult, eid: str) -> None:
    """Say so when an independent counter (CountResult.cross_check) disagrees beyond its tolerance."""
    cc = r.cross_check
    if cc is None or cc.agrees:
        return
    other = ", ".join(f"{c.count} {_noun(c.label, c.count)}" for c in cc.disagreements())
    d.sentences.append(f"An independent method ({cc.backend}) found {other} instead, so check both overlays [{eid}].")
    d.caveats.append(f"the {cc.backend} cross-check disagrees: {other}")


def _segment_measure(d: Draft, it: Intent, target: str, ctx: dict) -> Generator:
    noun_of = {"blood_cells": "cell", "prompt": "region"}.get(target, target)
    point = it.extras.get("point")
    if point is not None:
        seg_args: dict[str, Any] = {"target": target, "points": [{"x": point[0], "y": point[1], "positive": True}]}
        why = f"outline the {noun_of} at the given point ({fmt(point[0])}, {fmt(point[1])})"
    elif target == "blood_cells":
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
        if target == "polyp":  # the detector's boxes prompt the segmenter, shown as its own step (Dice 0.83 vs 0.78 alone)
            det = ctx.get("last_count")
            if det is None:
                det = yield from _count(d, replace(it, yes_no=False), "polyp", detect_only=True, quiet=True)
                if det is None:
                    return
                ctx["last_count"] = det
            boxes = det.detections if hasattr(det, "detections") else [x for c in det.counts for x in c.instances]
            if not boxes:
                nothing_found(d, it.yes_no, it.negated, f"No polyp was detected (score >= {det.min_score:.2f}), so "
                              f"there is nothing to outline or measure [{det.evidence_id}].", "no polyp detected",
                              det.evidence_id, "polyps")
                return
            seg_args = {"target": "polyp", "from_evidence": det.evidence_id}
            why = f"outline the {len(boxes)} detected polyp(s) from their boxes"
    call = Call("segment", seg_args, why)
    seg = yield from call_or_fail(d, call)
    if seg is None:
        return
    eid = seg.evidence_id
    named_by = ctx["last_count"].evidence_id if target == "blood_cells" and point is None and ctx.get("last_count") else ""
    d.step(f"Called segment to {why}: {summarize(seg)}.", eid, named_by)  # the count named the cell it outlines
    what = "region" if noun_of == "region" else f"{noun_of} region"
    if not seg.regions:
        nothing_found(d, it.yes_no, it.negated, f"No {what} was found, so there is nothing to measure [{eid}].",
                      f"no {what}", eid, "regions")
        return
    if it.yes_no and d.yes_no is None:
        d.yes_no = "no" if it.negated else "yes"
    regions = sorted(seg.regions, key=lambda r: -r.area_px)
    if it.action == "segment":
        desc = "; ".join(f"#{r.index}: {r.area_px} px" + (f" ({fmt(r.area_mm2)} mm²)" if r.area_mm2 is not None else "")
                         for r in regions)
        d.sentences.append(f"Segmented {len(regions)} {what}(s): {desc} (overlay and masks listed) [{eid}].")
        d.findings.append(Finding(text=f"{len(regions)} {what}(s)", evidence=[eid]))
        if target != "lung":
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
    noun = ctx.get("cell_label", "cell") if target == "blood_cells" and point is None else noun_of
    who = f"the {size + ' ' if size else ''}{noun}"
    # the sentence cites what it rests on: the measurement, the region, and the count that named the cell
    cite = ", ".join(dict.fromkeys(e for e in (meid, eid, named_by) if e))
    wants_diam = any(w in it.clause.lower() for w in ("diameter", "long", "wide", "width", "length"))
    if m.area_mm2 is not None:
        sent = (f"{who[0].upper() + who[1:]} measures {fmt(m.long_diameter_mm)} x {fmt(m.short_diameter_mm)} mm "
                f"(longest diameter x perpendicular), area {fmt(m.area_mm2)} mm² [{cite}].")
        if wants_diam:
            d.set_value(round(m.long_diameter_mm, 1), "mm")
        else:
            d.set_value(round(m.area_mm2, 1), "mm²")
    else:
        sent = (f"{who[0].upper() + who[1:]} covers {m.area_px} px, longest diameter {fmt(m.long_diameter_px)} px, "
                f"perpendicular {fmt(m.short_diameter_px)} px [{cite}]; no pixel spacing is known, so no millimetres.")
        if wants_diam:
            d.set_value(round(m.long_diameter_px, 1), "px")
        else:
            d.set_value(m.area_px, "px")
        d.caveats.append(m.provenance.note if m.provenance.note and "ignored" in m.provenance.note else
                         "sizes are in pixels: the image carries no pixel spacing (DICOM gives mm)")
    if len(regions) > 1:
        sent = f"Found {len(regions)} {noun_of} regions [{eid}]. " + sent
    d.sentences.append(sent)
    d.findings.append(Finding(text=f"{who}: area {m.area_px} px", evidence=[e for e in (meid, eid, named_by) if e]))
    d.abstained.append(False)


def _classify(d: Draft, it: Intent, kind: str) -> Generator:
    if kind != "chest_xray":
        d.step(f"No tool was run for '{it.clause}': the pneumonia classifier needs a chest X-ray, and this image is "
               f"{KIND_NAMES[kind]}.")
        d.sentences.append(f"I cannot answer '{it.clause}': the classifier works only on chest X-rays and this "
                           f"image is {KIND_NAMES[kind]}.")
        d.abstained.append(True)
        return
    call = Call("classify", {"task": "cxr_pneumonia", "explain": True}, "classify the chest X-ray")
    r = yield from call_or_fail(d, call)
    if r is None:
        return
    eid = r.evidence_id
    p = r.probabilities
    d.step(f"Called classify: {summarize(r)}.", eid)
    pneu = 1.0 - p["normal"] if "normal" in p else p.get("bacterial_pneumonia", 0.0) + p.get("viral_pneumonia", 0.0)
    q = it.clause.lower()
    label = r.label
    if r.uncertain:  # too close to the classifier's tuned threshold: probabilities, not a class
        _classify_uncertain(d, r, it.yes_no, pneu)
        return
    if it.choices:  # either-or: answer with the alternative chosen, not yes/no
        chosen = _choose(it.choices, label, p)
        d.label = d.label or chosen
        asked = " or ".join(c.replace("_", " ") for c in it.choices)
        if chosen == label or (chosen == "pneumonia" and label != "normal"):
            d.sentences.append(f"Of the two ({asked}): {chosen.replace('_', ' ')} [{eid}].")
        else:
            d.sentences.append(f"Of {asked}, {chosen.replace('_', ' ')} is the more probable "
                               f"({fmt(100 * p[chosen])}%), but the classifier reads this film as "
                               f"{label.replace('_', ' ')} [{eid}].")
    elif it.yes_no and ("normal" in q or "healthy" in q):
        yes = label == "normal"
        if it.negated:
            yes = not yes
        d.yes_no = d.yes_no or ("yes" if yes else "no")
    elif it.yes_no:
        key = "viral_pneumonia" if "viral" in q or "virus" in q else "bacterial_pneumonia" if "bacteri" in q else None
        yes = (label == key) if key else label != "normal"
        if it.negated:
            yes = not yes
        d.yes_no = d.yes_no or ("yes" if yes else "no")
    d.label = d.label or label
    nice = label.replace("_", " ")
    own = ("the project's ImageNet-pretrained CNN fine-tuned on paediatric films" if r.provenance.backend == "torchvision"
           else backend_label(r))
    d.sentences.append(f"The classifier ({own}) reads this chest X-ray as {nice} with probability "
                       f"{fmt(100 * p[label])}% (pneumonia of either kind {fmt(100 * pneu)}%) [{eid}].")
    if r.saliency is not None:
        d.sentences.append(f"The Grad-CAM overlay is an approximate explanation of where the model looked [{eid}].")
    d.findings.append(Finding(text=f"{nice} (p={p[label]:.2f})", evidence=[eid]))
    d.set_value(round(100 * p[label], 1), "%")
    d.caveats.append("a small classifier trained on paediatric chest X-rays; not a diagnosis" +
                     ("" if r.calibrated else "; probabilities not calibrated"))
    d.abstained.append(False)


def _choose(choices: tuple[str, ...], label: str, p: dict[str, float]) -> str:
    """The alternative of an either-or question the classification picks: its label, 'pneumonia' for either
    kind of pneumonia, else (a normal film asked 'bacterial or viral?') the more probable alternative."""
    if label in choices:
        return label
    if label != "normal" and "pneumonia" in choices:
        return "pneumonia"
    pneu = 1.0 - p.get("normal", 0.0)
    return max(choices, key=lambda c: pneu if c == "pneumonia" else p.get(c, 0.0))


def _classify_uncertain(d: Draft, r: Any, yes_no: bool, pneu: float) -> None:
    """Answer 'uncertain' with the probabilities when the classification result says it is uncertain."""
    eid, p = r.evidence_id, r.probabilities
    if yes_no:
        d.yes_no = d.yes_no or "uncertain"
    d.label = d.label or "uncertain"
    own = "the project's own CNN" if r.provenance.backend == "torchvision" else backend_label(r)
    near = f" of {fmt(100 * r.threshold)}%" if r.threshold is not None else ""
    d.sentences.append(f"The classifier ({own}) is uncertain about this chest X-ray: pneumonia of either kind "
                       f"{fmt(100 * pneu)}%, normal {fmt(100 * p.get('normal', 1.0 - pneu))}%, close to its "
                       f"decision threshold{near}, so it states no class [{eid}].")
    d.findings.append(Finding(text=f"uncertain (p(pneumonia)={pneu:.2f})", evidence=[eid]))
    d.set_value(round(100 * pneu, 1), "%")
    d.caveats.append("uncertain classifier output: have a radiologist read this film")
    d.abstained.append(False)


def _compare(d: Draft, it: Intent, kind: str, has_prior: bool) -> Generator:
    if not has_prior:
        d.step("No comparison was run: no prior study is loaded.")
        d.sentences.append("I need a prior study of the same patient to compare with; please load one "
                           "(--prior FILE, or the prior upload).")
        d.abstained.append(True)
        return
    target = {"blood_cells": "blood_cells", "polyp": "polyp", "lung": "lung"}.get(it.target or "", "auto")
    call = Call("compare_with_prior", {"target": target}, "compare the current study with the prior")
    r = yield from call_or_fail(d, call)
    if r is None:
        return
    eid = r.evidence_id
    d.step(f"Called compare_with_prior: {summarize(r)}.", eid)
    if r.status == "refused":
        d.sentences.append(f"I did not compare the studies: {r.reason} [{eid}].")
        d.abstained.append(True)
        return
    when = f"the study of {r.interval_days} days earlier" if r.interval_days is not None else "the prior study (date unknown)"
    parts = []
    for c in r.changes:
        if c.status in ("grown", "shrunk") and c.area_change_pct is not None:
            parts.append(f"#{c.index} {c.label} {c.status} by {fmt(abs(c.area_change_pct))}% in area")
        else:
            parts.append(f"#{c.index} {c.label} {c.status}")
    for cc in r.count_changes:
        parts.append(f"{cc.label} {cc.prior} -> {cc.current} ({'+' if cc.delta >= 0 else ''}{cc.delta})")
    if r.lung_opacity_change is not None:
        trend = "denser" if r.lung_opacity_change > 0.01 else "clearer" if r.lung_opacity_change < -0.01 else "about the same"
        parts.append(f"lung opacity change {fmt(r.lung_opacity_change, 3)} (lungs {trend}; positive = denser)")
    body = "; ".join(parts) if parts else "no matched findings changed"
    asked = _asked_change(it, r)  # the class or finding the question names leads: value, unit, first sentence
    if asked is not None:
        d.sentences.append(asked.sentence(when, eid))
    d.sentences.append(f"Compared with {when}: {body} [{eid}].")
    if r.change_map is not None or r.side_by_side is not None:
        d.sentences.append(f"The side-by-side overlay numbers matched findings alike, and the change map shows where "
                           f"the registered studies differ [{eid}].")
    if r.provenance.note:
        d.caveats.append(r.provenance.note)
    q = it.clause.lower()
    statuses = {c.status for c in r.changes}
    if it.yes_no and asked is not None and asked.count is not None:
        more, fewer = re.search(r"\bmore\b", q), re.search(r"\b(fewer|less)\b", q)
        delta = asked.count.delta
        d.yes_no = "yes" if (delta > 0 if more else delta < 0 if fewer else delta != 0) else "no"
    elif it.yes_no:
        if "grow" in q or "grown" in q or "bigger" in q or "larger" in q:
            d.yes_no = "yes" if "grown" in statuses else "no"
        elif "new" in q:
            d.yes_no = "yes" if "new" in statuses else "no"
        else:
            d.yes_no = "yes" if statuses - {"unchanged"} or any(cc.delta for cc in r.count_changes) else "no"
    for c in r.changes:
        d.findings.append(Finding(text=f"{c.label} #{c.index}: {c.status}", evidence=[eid]))
    if asked is not None:
        d.set_value(asked.value, asked.unit)
    elif r.interval_days is not None:
        d.set_value(r.interval_days, "days")
    d.abstained.append(False)


_COUNT_WORDS = r"\b(how many|more|fewer|less|number|count|difference)\b"
_SIZE_WORDS = r"\b(grow\w*|grew|grown|shr[iau]nk\w*|bigger|smaller|larger|size|area|how much|how big)\b"


@dataclass(frozen=True)
class _AskedChange:
    """The change the question asks about: a count change of one class, or the area change of one finding."""

    value: float
    unit: str
    count: Any = None  # CountChange
    finding: Any = None  # FindingChange

    def sentence(self, when: str, eid: str) -> str:
        if self.count is not None:
            cc = self.count
            n = abs(cc.delta)
            if cc.delta == 0:
                return (f"There are as many {UNITS.get(cc.label, cc.label)} as in {when}: {cc.prior} then, "
                        f"{cc.current} now [{eid}].")
            verb = "is" if n == 1 else "are"
            return (f"There {verb} {n} {'more' if cc.delta > 0 else 'fewer'} {_noun(cc.label, n)} than in {when} "
                    f"({cc.prior} then, {cc.current} now) [{eid}].")
        c = self.finding
        return (f"{c.label.capitalize()} #{c.index} has {c.status} by {fmt(abs(c.area_change_pct))}% in area since "
                f"{when} [{eid}].")


def _asked_change(it: Intent, r: Any) -> _AskedChange | None:
    """The count change of the class the question names ('how many more white cells'), or the area change of
    the finding it names ('how much has the polyp grown'); None when the question names neither."""
    q = it.clause.lower()
    labels = [c.lower() for c in (it.classes or ())] or ([it.target] if it.target in ("polyp",) else [])
    if re.search(_COUNT_WORDS, q) and labels:
        for cc in r.count_changes:
            if cc.label.lower() in labels:
                return _AskedChange(value=cc.delta, unit=f"change in {UNITS.get(cc.label, cc.label)}", count=cc)
    if re.search(_SIZE_WORDS, q) and it.target in ("polyp",):
        sized = [c for c in r.changes if c.label.lower() == it.target and c.area_change_pct is not None]
        if sized:
            main = max(sized, key=lambda c: abs(c.area_change_pct))
            return _AskedChange(value=main.area_change_pct, unit=f"% change in {it.target} area", finding=main)
    return None
