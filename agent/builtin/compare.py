"""The comparison procedure: compare the current study with the prior and phrase the change asked about."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Generator

from tools.answer import Finding
from tools.targets import targets

from agent.builtin.draft import UNITS, Call, Draft, call_or_fail
from agent.builtin.intents import Intent
from agent.builtin.count import _noun
from agent.summaries import fmt, summarize


def _compare(d: Draft, it: Intent, kind: str, has_prior: bool) -> Generator:
    if not has_prior:
        d.step("No comparison was run: no prior study is loaded.")
        d.sentences.append("I need a prior study of the same patient to compare with; please load one "
                           "(--prior FILE, or the prior upload).")
        d.abstained.append(True)
        return
    spec = targets().get(it.target or "")
    target = spec.name if spec is not None and spec.compare is not None else "auto"
    call = Call("compare_with_prior", {"target": target}, "compare the current study with the prior")
    r = yield from call_or_fail(d, call)
    if r is None:
        return
    eid = r.evidence_id
    d.step(f"Called compare_with_prior: {summarize(r)}.", eid)
    if r.status == "refused":
        # the reason's own full stop or question mark would end the sentence before its citation
        d.sentences.append(f"I did not compare the studies: {r.reason.rstrip(' .?!')} [{eid}].")
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
        trend = ("denser" if r.lung_opacity_change > _OPACITY_SAME else "clearer" if r.lung_opacity_change < -_OPACITY_SAME
                 else "about the same")
        parts.append(f"lung opacity change {fmt(r.lung_opacity_change, 3)} (lungs {trend}; positive = denser)")
    body = "; ".join(parts) if parts else "no matched findings changed"
    asked = _asked_change(it, r)  # the class or finding the question names leads: value, unit, first sentence
    if asked is not None:
        d.sentences.append(asked.sentence(when, eid))
    if re.search(_MM_WORDS, it.clause.lower()):  # sizes in mm asked: only from both studies' pixel spacings
        sized = [c for c in r.changes if c.prior_area_mm2 is not None and c.current_area_mm2 is not None]
        if asked is not None and asked.finding in sized:  # the finding asked about, not every cell
            sized = [asked.finding]
        for c in sized[:4]:
            d.sentences.append(f"{c.label.capitalize()} #{c.index} covers {fmt(c.prior_area_mm2)} mm² in the prior and "
                               f"{fmt(c.current_area_mm2)} mm² now [{eid}].")
        if not sized:
            d.sentences.append(f"I give no millimetres: the two studies do not both carry a pixel spacing that agrees "
                               f"with their alignment, so sizes are compared in pixels and per cent [{eid}].")
            d.caveats.append("no millimetres: pixel spacing not known (or inconsistent) for both studies")
    d.sentences.append(f"Compared with {when}: {body} [{eid}].")
    if r.change_map is not None or r.side_by_side is not None:
        d.sentences.append(f"The side-by-side overlay numbers matched findings alike, and the change map shows where "
                           f"the registered studies differ [{eid}].")
    if r.patient_check != "same_patient_id":
        d.sentences.append(f"Nothing in the files says they are of the same patient (no DICOM patient ID in both), and "
                           f"that they line up does not show it, so check that the prior is this patient's [{eid}].")
        d.caveats.append("not checked that the prior is of the same patient")
    if r.provenance.note:
        d.caveats.append(r.provenance.note)
    q = it.clause.lower()
    statuses = {c.status for c in r.changes}
    if (diagnosis := re.search(_DIAGNOSIS, q)) is not None:
        # "is the pneumonia worse?": the tool measures outlines, counts and opacity, not the disease: no yes/no
        d.sentences.append(f"This is the change the comparison measures, not a grading of the '{diagnosis.group(0)}' "
                           f"itself: no tool compares diagnoses, so I give no yes or no.")
        d.caveats.append(f"no tool grades '{diagnosis.group(0)}' over time; the comparison measures the images")
    elif it.yes_no and asked is not None and asked.count is not None:
        more, fewer = re.search(r"\bmore\b", q), re.search(r"\b(fewer|less)\b", q)
        delta = asked.count.delta
        d.yes_no = "yes" if (delta > 0 if more else delta < 0 if fewer else delta != 0) else "no"
    elif it.yes_no and r.lung_opacity_change is not None and re.search(r"\b(opacit\w*|dens\w*|clear\w*|whiter|"
                                                                      r"hazy|haze|worse|better|improv\w*|"
                                                                      r"deteriorat\w*)\b", q):
        d.yes_no = _opacity_yes_no(q, r.lung_opacity_change)  # as the sentence's denser / clearer ('worse': denser)
    elif it.yes_no:
        if "grow" in q or "grown" in q or "bigger" in q or "larger" in q:
            d.yes_no = "yes" if "grown" in statuses else "no"
        elif "new" in q:
            d.yes_no = "yes" if "new" in statuses else "no"
        else:
            d.yes_no = "yes" if statuses - {"unchanged"} or any(cc.delta for cc in r.count_changes) or (
                r.lung_opacity_change is not None and abs(r.lung_opacity_change) > _OPACITY_SAME) else "no"
            # "has anything changed?": a denser lung is a change even when the outlines kept their areas
    if r.provenance.doubt:  # a side's count is disputed or its expert doubts the image: no bare yes / no
        d.sentences.append(f"Uncertain: the findings compared may be wrong ({r.provenance.doubt}) [{eid}].")
        d.caveats.append("uncertain comparison: a side's findings are in doubt")
        if it.yes_no:
            d.yes_no = "uncertain"
    for c in r.changes:
        d.findings.append(Finding(text=f"{c.label} #{c.index}: {c.status}", evidence=[eid]))
    if asked is not None:
        d.set_value(asked.value, asked.unit)
    elif r.interval_days is not None:
        d.set_value(r.interval_days, "days")
    d.abstained.append(False)


_OPACITY_SAME = 0.01
"""A lung opacity change within this is 'about the same' (the answer's wording and its yes/no)."""
_DENSER = r"\b(worse|denser|whiter|hazier|more (opaque|dense|hazy)|increas\w*)\b"
_CLEARER = r"\b(better|clearer|darker|less (opaque|dense|hazy)|improv\w*|decreas\w*)\b"
"""A question that asks one direction of opacity change ('has the opacity got worse?', 'are the lungs clearer?')."""


def _opacity_yes_no(q: str, change: float) -> str:
    """Yes / no to a question about lung opacity: to the direction it names when it names one ('worse' is denser,
    'clearer' the other way), else whether the opacity changed at all."""
    denser, clearer = re.search(_DENSER, q), re.search(_CLEARER, q)
    if denser and not clearer:
        return "yes" if change > _OPACITY_SAME else "no"
    if clearer and not denser:
        return "yes" if change < -_OPACITY_SAME else "no"
    return "yes" if abs(change) > _OPACITY_SAME else "no"


_DIAGNOSIS = r"\b(pneumonia|infection|consolidation|disease|covid\w*|condition|illness|patient)\b"
"""A question about the disease over time ('is the pneumonia worse?', 'has the patient improved?')."""
_MM_WORDS = r"(\bmm\b|mm2|mm²|\bmillimet\w*|\bcm\b|\bcentimet\w*)"
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
        if c.status not in ("grown", "shrunk"):  # 'unchanged': "has unchanged by 0%" read wrong
            return (f"{c.label.capitalize()} #{c.index} is {c.status} in area ({fmt(c.area_change_pct)}%) since "
                    f"{when} [{eid}].")
        return (f"{c.label.capitalize()} #{c.index} has {c.status} by {fmt(abs(c.area_change_pct))}% in area since "
                f"{when} [{eid}].")


def _asked_change(it: Intent, r: Any) -> _AskedChange | None:
    """The count change of the class the question names ('how many more white cells'), or the area change of
    the finding it names ('how much has the polyp grown'); None when the question names neither."""
    q = it.clause.lower()
    spec = targets().get(it.target or "")
    regions = spec is not None and spec.compare == "regions"  # findings labelled with the target's name
    labels = [c.lower() for c in (it.classes or ())] or ([it.target] if regions else [])
    if re.search(_COUNT_WORDS, q) and labels:
        for cc in r.count_changes:
            if cc.label.lower() in labels:
                return _AskedChange(value=cc.delta, unit=f"change in {UNITS.get(cc.label, cc.label)}", count=cc)
    if re.search(_SIZE_WORDS, q) and regions:
        sized = [c for c in r.changes if c.label.lower() == it.target and c.area_change_pct is not None]
        if sized:
            main = max(sized, key=lambda c: abs(c.area_change_pct))
            return _AskedChange(value=main.area_change_pct, unit=f"% change in {it.target} area", finding=main)
    return None
