"""Counting and locating procedures: the count/detect call, its sentences, yes/no and the cross-check."""

from __future__ import annotations

import operator
from typing import Any, Generator

from tools.answer import Finding
from tools.detection import CountResult
from tools.targets import targets

from agent.builtin.draft import SINGULAR, UNITS, Call, Draft, call_or_fail
from agent.builtin.intents import Intent
from agent.summaries import backend_label, fmt, summarize


_COMPARE = {"eq": operator.eq, "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le}


def _yes_no_count(d: Draft, it: Intent, n: int, noun: str, eid: str) -> None:
    if it.expected is not None:  # "are there three?", "more than 3?", "at least two?"
        yes = _COMPARE[it.extras.get("compare", "eq")](n, it.expected)
    else:
        yes = n > 0
    if it.negated:
        yes = not yes if it.expected is None else yes
    d.yes_no = d.yes_no or ("yes" if yes else "no")


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
            none = " or ".join(_noun(c, 2) for c in it.classes) if it.classes else what
            d.sentences.append(f"No {none} found (score >= {r.min_score:.2f}) [{eid}].")
            d.set_value(0, target)
        for label, dets in groups.items():
            where = "; ".join(f"#{x.index} at x {fmt(x.box.x_min, 0)}-{fmt(x.box.x_max, 0)}, "
                              f"y {fmt(x.box.y_min, 0)}-{fmt(x.box.y_max, 0)}" for x in dets[:6])
            more = f" and {len(dets) - 6} more" if len(dets) > 6 else ""
            d.sentences.append(f"Found {len(dets)} {_noun(label, len(dets))}: {where}{more} (boxes numbered on the "
                               f"overlay) [{eid}].")
            d.findings.append(Finding(text=f"{len(dets)} {label}", evidence=[eid]))
            d.set_value(len(dets), label)
        _doubt_sentence(d, r, eid, False)
        d.abstained.append(False)
        return r
    labels = [c for c in r.counts]
    parts = [f"{c.count} {_noun(c.label, c.count)}" for c in labels]
    total = sum(c.count for c in labels)
    for c in labels:
        d.findings.append(Finding(text=f"{c.count} {c.label}", evidence=[eid]))
    if it.yes_no and (only := it.extras.get("all_of")) is not None:  # "are all the cells red cells?"
        d.yes_no = d.yes_no or ("yes" if any(c.count for c in labels if c.label == only) and not any(
            c.count for c in labels if c.label != only) else "no")
    elif it.yes_no and it.extras.get("versus") is None:
        _yes_no_count(d, it, total, what, eid)
    if len(labels) == 1:
        d.set_value(labels[0].count, UNITS.get(labels[0].label, labels[0].label).split(" (")[0])
    else:
        spec = targets().get(target)
        d.set_value(total, (spec.count_unit if spec is not None else None) or target)
    joined = ", ".join(parts) if parts else f"no {what}"
    versus = it.extras.get("versus")
    if versus is not None and it.classes and len(it.classes) == 2:
        _versus_sentence(d, it, versus, {c.label: c.count for c in labels}, r.min_score, eid)
    else:
        d.sentences.append(f"I count {joined} (confidence threshold {r.min_score:.2f}) [{eid}].")
    if (kind := it.extras.get("subtype")) is not None:  # "how many neutrophils?"
        word, plural = kind
        d.sentences.append(f"The detector does not tell {plural} apart by kind, so '{word}s' is answered with the "
                           f"count of all of them.")
        d.caveats.append(f"{word}s are not counted separately: the count includes every kind of {plural}")
    if (left_out := it.extras.get("excluding")) is not None:  # "except the platelets": no single number
        d.sentences.append(f"The question leaves something out ('{left_out}'); I give the count of each class found "
                           f"and no single number, so take away what you leave out [{eid}].")
        d.value = d.unit = None
        d.caveats.append("a count with an exclusion is answered with every class's count, not a difference")
    _class_caveats(d, target, [c.label for c in labels])
    _cross_check_sentence(d, r, eid)
    _doubt_sentence(d, r, eid, it.yes_no)
    d.abstained.append(False)
    return r


def _versus_sentence(d: Draft, it: Intent, versus: str, counts: dict[str, int], min_score: float, eid: str) -> None:
    """Two classes of one image compared ('more red cells than white cells?', 'the ratio of red to white cells')."""
    a, b = it.classes[0], it.classes[1]
    na, nb = counts.get(a, 0), counts.get(b, 0)
    counted = f"I count {na} {_noun(a, na)} and {nb} {_noun(b, nb)} (confidence threshold {min_score:.2f})"
    plural_a, plural_b = _noun(a, 2), _noun(b, 2)
    # a difference or a ratio is written with the two counts themselves ("10 to 1"): every number an answer
    # writes must be one a tool stated (the grounding check), and a clinician can check the arithmetic
    if versus in _COMPARE:
        if it.yes_no:
            d.yes_no = d.yes_no or ("yes" if _COMPARE[versus](na, nb) else "no")
        d.sentences.append(f"{counted} [{eid}].")
    elif versus == "diff" and na != nb:
        more, fewer = (plural_a, plural_b) if na > nb else (plural_b, plural_a)
        d.sentences.append(f"{counted}: more {more} than {fewer} ({max(na, nb)} against {min(na, nb)}) [{eid}].")
    elif versus == "diff":
        d.sentences.append(f"{counted}: as many {plural_a} as {plural_b} [{eid}].")
    elif nb == 0:  # a ratio to nothing
        d.sentences.append(f"{counted}; with no {plural_b} counted there is no ratio [{eid}].")
    else:
        d.sentences.append(f"{counted}: {plural_a} to {plural_b} {na} to {nb} [{eid}].")


def _class_caveats(d: Draft, target: str, labels: list[str]) -> None:
    """Each reported class's caveat (TargetClass.caveat: 'red cell counts are approximate ...')."""
    spec = targets().get(target)
    for cls in spec.classes if spec is not None else ():
        if cls.caveat and cls.label in labels and cls.caveat not in d.caveats:
            d.caveats.append(cls.caveat)


def _doubt_sentence(d: Draft, r: CountResult, eid: str, yes_no: bool) -> None:
    """Say so when the detector doubts its own output on this image (Provenance.doubt): the count stays, marked."""
    if not r.provenance.doubt:
        return
    d.sentences.append(f"Uncertain: {r.provenance.doubt} [{eid}].")
    d.caveats.append("uncertain count: the image looks unlike the images the detector was validated on")
    if yes_no:
        d.yes_no = "uncertain"


def _cross_check_sentence(d: Draft, r: CountResult, eid: str) -> None:
    """Say so when an independent counter (CountResult.cross_check) disagrees beyond its tolerance."""
    cc = r.cross_check
    if cc is None or cc.agrees:
        return
    other = ", ".join(f"{c.count} {_noun(c.label, c.count)}" for c in cc.disagreements())
    d.sentences.append(f"An independent method ({cc.backend}) found {other} instead, so check both overlays [{eid}].")
    d.caveats.append(f"the {cc.backend} cross-check disagrees: {other}")

