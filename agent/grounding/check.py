"""The grounding check shared by every planner: each claim of the final answer is bound to the tool
results it cites, one sentence at a time (answer, findings and reasoning steps alike).

* A number is backed only by the results of the evidence ids its sentence cites (``[E2]``).  Numbers in
  the question never back anything; a number in a sentence that cites nothing is unbacked.  A number
  written before a class noun ("42 white blood cells") must be a count of that class in a cited result
  (class count, detections, regions, count change).  Percentages of probabilities, the complement of a
  probability distribution (p(pneumonia) = 1 - p(normal)), absolute values and the written rounding
  (``98.4`` for 0.98437; '.98' is 0.98) are accepted.  A number written as a percentage (or ``value`` in %)
  is backed only by a percentage or 100 x a probability or fraction ('0.98 %' is not a probability of 0.98).
  A size in mm, cm or µm (or mm², cm²; ``value`` in such a unit) is backed only by a millimetre field of a
  cited result, converted: pixels never become millimetres.  A change written as its two ends ('from 5 to 2',
  '5 -> 2') must be the prior and current ends, in that order, of a change a cited result reports.
* A finding, diagnosis, class or change word (:data:`TERMS`) is backed only by a label or field of a
  cited result; a tool class name also by the arguments of the cited call ("no WBC was found").  A word
  saying which way a change went ("rose", "grew", "fewer") needs a cited change that went that way.
* A declining clause ("I cannot answer 'is there leukemia?' ...") claims nothing: the question text it
  quotes, tool class names, and numbers that a failed tool call of this ask reported are allowed in it;
  a diagnosis outside the quotation is not.
* ``value`` must be backed by the evidence the kept answer cites (a count unit: by a count of it) and be a number
  the kept answer writes (or their total); ``label`` is 'yes'/'no' or a label of cited evidence.
* A bare 'Yes' / 'No' (the answer's first word, else ``label``) to a presence question ('Are there any polyps?',
  'Is the film normal?') must be the answer the cited results give (:mod:`agent.grounding.verdict`): a count above
  0 is 'yes', a classifier's decided class says which; a doubted count or an uncertain class backs neither.

Unbacked sentences are removed from the answer text and the answer says so; unbacked findings are marked
unverified; unbacked sentences of a step are replaced by a notice; an unbacked value or label is dropped.
The :class:`~tools.answer.Grounding` record lists every removal with its reasons.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Iterable

from tools.answer import FinalAnswer, Grounding, RemovedClaim, ToolCallRecord

from agent.grounding.numbers import (_supported, evidence_numbers, numbers_in, unit_scale, unsupported_numbers,
                                     written_numbers)
from agent.grounding.plain import plain
from agent.grounding.evidence import _Backing, _backings
from agent.grounding.sentence import _CITE, _Check, _sentence_reasons, _sentences, _strip_quotes
from agent.grounding.terms import _COUNT_PHRASES, _COUNT_UNITS, TERMS, UNDECIDED_LABELS, Term, _has, _words
from agent.grounding.verdict import verdict_problem

__all__ = ["evidence_numbers", "numbers_in", "unsupported_numbers", "check_grounding", "discrepancy", "TERMS", "Term",
           "UNDECIDED_LABELS"]

_BARE_VERDICT = re.compile(r"(?:yes|no)\s*[.!,]?", re.IGNORECASE)


def _value_backed(value: float, unit: str | None, cited: list[str], ev: dict[str, _Backing]) -> bool:
    backs = [ev[e] for e in cited if e in ev]
    u = " ".join(_words(unit or "").split())
    if re.search(r"%|\b(area|px|mm|mm2|mm²|diameter|days?|percent)\b", u):  # a measure, not a count
        u = ""
    key = next((t.count_key for t, _ in _COUNT_PHRASES if re.search(rf"\b(?:{t.pattern})\b", u, re.I)), None)
    if key is None and u in _COUNT_UNITS:
        key = "*"
    if key is not None:  # a count: one of the cited results must count exactly this
        have = {n for b in backs for n in b.counts.get(key, set())}
        return float(value).is_integer() and abs(int(value)) in have
    metric = re.search(r"(?<![a-z])(?:mm2|mm²|cm2|cm²|mm|cm|[µu]m|millimet\w*|centimet\w*|micromet\w*)(?![a-z])",
                       unit or "", re.IGNORECASE)
    per_mm = unit_scale(metric.group(0) if metric else unit)  # a size in mm, cm, mm² ('mm diameter' too): only by
    # a millimetre field of the cited results
    pool = [x for b in backs for x in b.numbers] if per_mm is None else [x / per_mm for b in backs for x in b.mm]
    if re.search(r"%|\bper ?cent\b", unit or "", re.IGNORECASE):  # a percentage: never the bare probability
        pool = [x for b in backs for x in b.pct]
    return _supported(repr(float(value)), float(value), pool + [round(v, 1) for v in pool])


def _label_backed(label: str, cited: list[str], ev: dict[str, _Backing]) -> bool:
    if " ".join(_words(label).split()) in UNDECIDED_LABELS:
        return True
    said = " ".join(_words(label).split())
    decided = [ev[e].label for e in cited if e in ev and ev[e].label]
    if decided:  # a classification: only the class it decided ('pneumonia' for 'bacterial_pneumonia'), not any key
        return any(_has(_words(lab), (said,)) for lab in decided)
    text = " ".join(ev[e].text for e in cited if e in ev)
    return _has(text, (said,))


def discrepancy(report: Grounding) -> str:
    """The problems of a grounding record, in one line (for the planner's follow-up and the audit)."""
    parts = []
    if report.unsupported:
        parts.append(f"numbers not backed by the evidence their sentence cites: {', '.join(report.unsupported)}")
    if report.unsupported_words:
        parts.append(f"findings or class names no cited tool result names: {', '.join(report.unsupported_words)}")
    if report.unknown_evidence_ids:
        parts.append(f"evidence ids that do not exist: {', '.join(report.unknown_evidence_ids)}")
    if report.dropped_value is not None:
        parts.append(f"a value ({report.dropped_value:g}) no cited result backs")
    if report.dropped_label is not None:
        parts.append(f"a label ({report.dropped_label}) no cited result backs")
    return "; ".join(parts)


def _note(removed: list[RemovedClaim]) -> str:
    n = sum(1 for r in removed if r.where == "answer")
    what = [f"{n} statement{'s' if n != 1 else ''} that no cited tool result supports"] if n else []
    what += [f"the {w}" for w in ("value", "label") if any(r.where == w for r in removed)]
    return f"[Osler removed {', '.join(what)}; the grounding record lists why.]" if what else ""


def _result_strings(results: dict[str, Any]) -> str:
    """Every string of the results (notes included), joined: a caveat found verbatim in it quotes a tool."""
    out: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, str):
            out.append(obj)
        elif isinstance(obj, dict):
            for v in obj.values():
                walk(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    for r in results.values():
        walk(r.model_dump(mode="json") if hasattr(r, "model_dump") else r)
    return "\n".join(out)


def check_grounding(answer: FinalAnswer, results: dict[str, Any], question: str = "",
                    calls: Iterable[ToolCallRecord] = ()) -> tuple[FinalAnswer, Grounding]:
    """Return the answer with unbacked claims removed / marked, and the record of what was done.
    ``results``: evidence id -> tool result of this ask; ``calls``: this ask's tool-call records (their
    arguments back class names, failed calls' messages back numbers of declining sentences)."""
    calls = list(calls)
    ev = _backings(results, calls)
    failures = [x for b in ev.values() if b.error for _, x in numbers_in(b.error)]
    chk = _Check(ev=ev, question=question, failures=failures, known=set(results) | {c.id for c in calls})
    kept = [s for s in _sentences(answer.answer) if not chk.sentence(s, [], "answer")]
    chk.g["removed_sentences"] = [r.text for r in chk.g["removed"] if r.where == "answer"]
    findings = []
    for f in answer.findings:
        reasons = chk.sentence(f.text, f.evidence, "finding")
        if not f.evidence and not reasons:
            reasons = ["the finding cites no tool result"]
            chk.g["removed"].append(RemovedClaim(where="finding", text=f.text, reasons=reasons))
        if reasons:
            chk.g["unverified_findings"].append(f.text)
            findings.append(f.model_copy(update={"verified": False}))
        else:
            findings.append(f)
    steps = []
    for s in answer.steps:
        good = [x for x in _sentences(s.text) if not chk.sentence(x, s.evidence, "step", with_args=True)]
        if len(good) < len(_sentences(s.text)):
            chk.g["rewritten_steps"].append(s.text)
            good.append("[Osler removed a statement of this step that no cited tool result supports.]")
        steps.append(s.model_copy(update={"text": " ".join(good), "evidence": [e for e in s.evidence if e in chk.known]}))
    caveats = answer.uncertainty
    if caveats:  # shown as "Caveats" beside the answer: a number or finding there needs a result of this ask too
        quoted = _result_strings(results)  # a tool's own note, quoted (the built-in planner's caveats are)
        pieces = [p.strip() for p in re.split(r";\s+|\n+", caveats) if p.strip()]
        good = [p for p in pieces if (len(p.split()) >= 3 and p in quoted)  # the question quoted is no claim either
                or not chk.sentence(_strip_quotes(p, question), sorted(chk.known), "caveat", with_args=True)]
        if len(good) < len(pieces):
            good.append("[Osler removed a caveat that no tool result of this answer supports.]")
        caveats = "; ".join(good) or None
    cited = list(dict.fromkeys([e for s in kept for e in _CITE.findall(s)] +
                               [e for f in findings if f.verified for e in f.evidence]))
    value, label, dropped_value, dropped_label = answer.value, answer.label, None, None
    if value is not None and not _value_backed(value, answer.unit, cited, ev):
        dropped_value, value = value, None
        chk.g["removed"].append(RemovedClaim(where="value", text=f"{dropped_value:g} {answer.unit or ''}".strip(),
                                             cited=cited, reasons=[f"no count or number of {', '.join(cited) or 'a cited result'} "
                                                                   f"equals it"]))
    written = [x for tok, x, _ in written_numbers(" ".join(kept))]
    ints = sorted({x for x in written if float(x).is_integer() and x > 0})[:12]
    total = [sum(c) for k in (2, 3) for c in itertools.combinations(ints, k)]  # '18 red and 1 white cell': 19 cells
    if value is not None and written and not _supported(repr(float(value)), float(value), written + total + [
            100 * x for x in written] + [x / 100 for x in written]):
        dropped_value, value = value, None  # "The WBC count is now 2 [E3]." with value 5 (the prior count)
        chk.g["removed"].append(RemovedClaim(where="value", text=f"{dropped_value:g} {answer.unit or ''}".strip(),
                                             cited=cited, reasons=[f"the answer's text states "
                                                                   f"{', '.join(f'{x:g}' for x in written)}, not it"]))
    unit_reasons = _sentence_reasons(plain(answer.unit or ""), cited, ev, question, [])[0] if value is not None else []
    unit = None if unit_reasons else answer.unit
    if unit_reasons:  # the unit is spoken and shown with the value: "2 malignant polyps"
        dropped_value, value = value, None
        chk.g["removed"].append(RemovedClaim(where="value", text=f"{dropped_value:g} {answer.unit}", cited=cited,
                                             reasons=unit_reasons))
    verdict = re.match(r"\s*(yes|no)\b", " ".join(kept), re.IGNORECASE)
    said = verdict.group(1).lower() if verdict is not None else label if label in ("yes", "no") else None
    why = said and verdict_problem(question, said, [ev[e].data for e in (cited or sorted(results))
                                                    if e in results and isinstance(ev[e].data, dict)])
    if why:  # "No. The 2 boxes are artefacts [E1]." for "Are there any polyps?"
        if verdict is not None:
            chk.g["removed"].append(RemovedClaim(where="answer", text=kept[0], cited=cited, reasons=[why]))
            chk.g["removed_sentences"].append(kept[0])
            kept = kept[1:]
            verdict = None
        if label == said:
            dropped_label, label = label, None
            chk.g["removed"].append(RemovedClaim(where="label", text=said, cited=cited, reasons=[why]))
    if label in ("yes", "no") and verdict is not None and verdict.group(1).lower() != label:
        dropped_label, label = label, None  # "No. ..." answered with label 'yes': the voice would say "Yes."
        chk.g["removed"].append(RemovedClaim(where="label", text=dropped_label, cited=cited,
                                             reasons=[f"the answer starts with '{verdict.group(1)}'"]))
    elif label is not None and not (cited and _label_backed(label, cited, ev)):
        dropped_label, label = label, None
        chk.g["removed"].append(RemovedClaim(where="label", text=dropped_label, cited=cited, reasons=[
            f"no label or field of {', '.join(cited)} names it" if cited else "no kept statement cites a tool result"]))
        kept = [x for x in kept if not _BARE_VERDICT.fullmatch(x.strip())]  # a 'Yes.' with nothing behind it
    text = " ".join(kept) or "No statement of the planner could be verified against the tool results."
    note = _note(chk.g["removed"])
    text = f"{text} {note}".strip()
    g = chk.g
    report = Grounding(checked_numbers=g["checked_numbers"], unsupported=list(dict.fromkeys(g["unsupported"])),
                       unsupported_words=list(dict.fromkeys(g["unsupported_words"])),
                       unknown_evidence_ids=sorted(set(g["unknown_evidence_ids"])),
                       removed_sentences=g["removed_sentences"], unverified_findings=g["unverified_findings"],
                       rewritten_steps=g["rewritten_steps"], dropped_value=dropped_value, dropped_label=dropped_label,
                       removed=g["removed"])
    fixed = answer.model_copy(update={"answer": text, "findings": findings, "value": value, "unit": unit, "label": label,
                                      "steps": steps, "uncertainty": caveats})
    return fixed, report
