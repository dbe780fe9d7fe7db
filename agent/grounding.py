"""The grounding check shared by every planner: each claim of the final answer is bound to the tool
results it cites, one sentence at a time (answer, findings and reasoning steps alike).

* A number is backed only by the results of the evidence ids its sentence cites (``[E2]``).  Numbers in
  the question never back anything; a number in a sentence that cites nothing is unbacked.  A number
  written before a class noun ("42 white blood cells") must be a count of that class in a cited result
  (class count, detections, regions, count change).  Percentages of probabilities, the complement of a
  probability distribution (p(pneumonia) = 1 - p(normal)), absolute values and the written rounding
  (``98.4`` for 0.98437) are accepted.
* A finding, diagnosis, class or change word (:data:`TERMS`) is backed only by a label or field of a
  cited result; a tool class name also by the arguments of the cited call ("no WBC was found").
* A declining clause ("I cannot answer 'is there leukemia?' ...") claims nothing: the question text it
  quotes, tool class names, and numbers that a failed tool call of this ask reported are allowed in it;
  a diagnosis outside the quotation is not.
* ``value`` must be backed by the evidence the kept answer cites (a count unit: by a count of it);
  ``label`` is 'yes'/'no' or a label of cited evidence.

Unbacked sentences are removed from the answer text and the answer says so; unbacked findings are marked
unverified; unbacked sentences of a step are replaced by a notice; an unbacked value or label is dropped.
The :class:`~tools.answer.Grounding` record lists every removal with its reasons.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from pydantic import BaseModel

from tools.answer import FinalAnswer, Finding, Grounding, ReasoningStep, RemovedClaim, ToolCallRecord

__all__ = ["evidence_numbers", "numbers_in", "unsupported_numbers", "check_grounding", "discrepancy", "TERMS", "Term",
           "UNDECIDED_LABELS"]

_ID_PATTERNS = (
    r"\[?\bE\d+\b\]?",  # evidence ids
    r"#\d+",  # instance numbers on overlays
    r"\b[a-z]+(?:-[a-z]+)*-\d+\b",  # artifact ids: mask-3, change-map-5
    r"\b\d+(?:st|nd|rd|th)\b",  # ordinals
    r"^\s*\d+[.)]\s",  # list numbering
)
_NUM = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)?(?![\w])")
_CITE = re.compile(r"\bE\d+\b")


@dataclass(frozen=True)
class Term:
    """A word that names a finding, diagnosis, class or change.  ``backers``: result words (lower case,
    ``_`` read as a space) any of which backs it; ``tool``: a name Osler's tools report or take as an
    argument; ``count_key``: the class a number written before it must be a count of."""

    name: str
    pattern: str
    backers: tuple[str, ...]
    tool: bool = False
    count_key: str | None = None

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(rf"\b(?:{self.pattern})\b", re.IGNORECASE)


def _dx(name: str, pattern: str, *backers: str) -> Term:
    return Term(name, pattern, backers or (name,))


TERMS: tuple[Term, ...] = (
    # class and label names the tools report
    Term("WBC", r"white (?:blood )?cells?|wbcs?|leu[ck]ocytes?", ("wbc",), True, "wbc"),
    Term("RBC", r"red (?:blood )?cells?|rbcs?|erythrocytes?", ("rbc",), True, "rbc"),
    Term("platelets", r"platelets?|thrombocytes?", ("platelets", "platelet"), True, "platelets"),
    Term("polyp", r"polyps?", ("polyp",), True, "polyp"),
    Term("pneumonia", r"pneumonias?", ("pneumonia",), True),
    Term("bacterial", r"bacterial|bacteria", ("bacterial",), True),
    Term("viral", r"viral|virus", ("viral",), True),
    Term("normal", r"normal", ("normal",), True),
    # change and side words
    *(Term(w, w, (w,), True) for w in ("new", "resolved", "grown", "shrunk", "unchanged", "left", "right")),
    # findings and diagnoses no tool of Osler reports: backed only if a result ever names them
    _dx("leukaemia", r"leuka?emi\w*", "leukemia", "leukaemia"), _dx("lymphoma", r"lymphomas?"),
    _dx("anaemia", r"ana?emi[ac]\w*", "anemia", "anaemia"), _dx("malaria", r"malaria\w*"),
    _dx("parasite", r"parasit\w*"), _dx("sickle cell", r"sickle"), _dx("blast", r"blasts?"),
    _dx("thrombocytopenia", r"thrombocytop\w*"), _dx("leukocytosis", r"leu[ck]ocytosis|leu[ck]openi\w*"),
    _dx("infection", r"infect\w*"), _dx("sepsis", r"seps[ie]s|septic"), _dx("fracture", r"fractur\w*"),
    _dx("nodule", r"nodul\w*"), _dx("tumour", r"tumou?rs?", "tumor", "tumour"), _dx("cancer", r"cancer\w*"),
    _dx("carcinoma", r"\w*carcinoma\w*"), _dx("malignancy", r"malignan\w*"), _dx("metastasis", r"metasta\w*"),
    _dx("mass", r"mass(?:es)?"), _dx("cardiomegaly", r"cardiomegaly"), _dx("effusion", r"effusions?"),
    _dx("pneumothorax", r"pneumothora\w*"), _dx("oedema", r"o?edema\w*", "edema", "oedema"),
    _dx("atelectasis", r"atelecta\w*"), _dx("consolidation", r"consolidat\w*"),
    _dx("tuberculosis", r"tuberculo\w*"), _dx("COVID-19", r"covid(?:-?19)?|sars-cov-2|coronavirus", "covid"),
    _dx("emphysema", r"emphysema\w*"), _dx("fibrosis", r"fibros[ie]s|fibrotic"),
    _dx("opacity", r"opacit(?:y|ies)", "opacity"), _dx("infiltrate", r"infiltrat\w*"),
    _dx("haemorrhage", r"ha?emorrha\w*", "hemorrhage", "haemorrhage"), _dx("bleeding", r"bleed\w*"),
    _dx("ulcer", r"ulcer\w*"), _dx("colitis", r"colitis"), _dx("Crohn's disease", r"crohn'?s?", "crohn"),
    _dx("adenoma", r"\w*adenomas?"), _dx("dysplasia", r"dysplas\w*"), _dx("hyperplasia", r"hyperplas\w*"),
    _dx("stroke", r"strokes?"), _dx("aneurysm", r"aneurysms?"), _dx("stenosis", r"stenos[ie]s|stenotic"),
    _dx("glaucoma", r"glaucoma"), _dx("retinopathy", r"retinopath\w*"),
    # cell types no detector of Osler tells apart
    _dx("lymphocyte", r"lymphocyt\w*"), _dx("neutrophil", r"neutrophil\w*"), _dx("monocyte", r"monocyt\w*"),
    _dx("eosinophil", r"eosinophil\w*"), _dx("basophil", r"basophil\w*"),
)
"""The claim vocabulary of the check, in one place."""

UNDECIDED_LABELS = ("yes", "no", "uncertain", "not recognised", "not recognized")
"""Labels that answer a yes/no question or say the tools could not decide: they name no finding."""

_FILLER = r"(?:(?:more|fewer|less|new|additional|other|detected|visible|distinct|separate|matched|further|extra)\s+)"
_COUNT_PHRASES = tuple(
    (t, re.compile(rf"(?<![\w.#-])([-+]?\d+)\s+{_FILLER}{{0,2}}(?:{t.pattern})\b", re.IGNORECASE))
    for t in TERMS if t.count_key) + (
    (Term("cells", r"(?:blood )?cells?", (), True, "*"),
     re.compile(rf"(?<![\w.#-])([-+]?\d+)\s+{_FILLER}{{0,2}}(?:blood )?cells?\b", re.IGNORECASE)),)
_DECLINE = re.compile(r"\b(cannot|can ?not|could not|couldn't|can't|unable|no tool|not (?:run|answer|compare|guess)|"
                      r"do not|did not|does not|only on|work only|works only|need|needs)\b", re.IGNORECASE)
_CLAUSE = re.compile(r";|\bbut\b|\bhowever\b|\balthough\b|\bthough\b|\byet\b", re.IGNORECASE)
_BARE_VERDICT = re.compile(r"(?:yes|no)\s*[.!,]?", re.IGNORECASE)
_QUOTE = re.compile(r"(?<![\w])['\"\u2018\u201c](.+?)['\"\u2019\u201d](?![\w])")
_COUNT_UNITS = ("cells", "blood cells", "regions", "region", "instances", "count", "findings", "change in count")


# ---- numbers -------------------------------------------------------------------------------------
def _walk(obj: Any) -> Iterable[Any]:
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    if isinstance(obj, dict):
        vals = list(obj.values())
        if vals and all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in vals) and abs(sum(vals) - 1.0) < 1e-3:
            for v in vals:  # a probability distribution: "not X" = 1 - p(X) is backed too
                yield 1.0 - v
        for v in vals:
            yield from _walk(v)
    elif isinstance(obj, (list, tuple)):
        yield len(obj)
        for v in obj:
            yield from _walk(v)
    else:
        yield obj


def evidence_numbers(results: Iterable[Any]) -> list[float]:
    """Every number in the results, plus percentages of probabilities/fractions and list lengths."""
    out: list[float] = []
    for r in results:
        for v in _walk(r):
            if isinstance(v, bool) or v is None:
                continue
            if isinstance(v, (int, float)):
                out.append(float(v))
                if -1.0 <= v <= 1.0:
                    out.append(float(v) * 100.0)
                out.append(abs(float(v)))
            elif isinstance(v, str):
                out.extend(n for _, n in numbers_in(v))
    return out


def numbers_in(text: str) -> list[tuple[str, float]]:
    """Numbers written in a text, skipping ids (E3, #2, mask-4) and list numbering."""
    clean = text
    for pat in _ID_PATTERNS:
        clean = re.sub(pat, " ", clean, flags=re.MULTILINE)
    clean = re.sub(r"(\d)x(\d)", r"\1 x \2", clean)
    out = []
    for m in _NUM.finditer(clean):
        s = m.group(0).replace(",", ".")
        try:
            out.append((m.group(0), float(s)))
        except ValueError:
            continue
    return out


def _supported(token: str, x: float, pool: Iterable[float]) -> bool:
    decimals = len(token.split(".")[1]) if "." in token else 0
    tol = 0.5 * 10 ** (-decimals) + 1e-9
    return any(abs(abs(x) - abs(v)) <= tol for v in pool)


def unsupported_numbers(text: str, pool: list[float]) -> list[str]:
    return [tok for tok, x in numbers_in(text) if not _supported(tok, x, pool)]


# ---- what each piece of evidence backs -------------------------------------------------------------
def _words(text: str) -> str:
    return " " + re.sub(r"[_\-/]+", " ", text.lower()) + " "


def _strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def _counts(obj: Any, out: dict[str, set[int]]) -> None:
    """Every count a result states, by class ('*': any class): class counts and totals, detections,
    regions and changes per label and per target, count changes (prior, current, |delta|)."""
    def add(label: Any, n: Any) -> None:
        if isinstance(n, int) and not isinstance(n, bool):
            out.setdefault(str(label).lower().replace("_", " "), set()).add(abs(n))
            out.setdefault("*", set()).add(abs(n))

    if isinstance(obj, dict):
        if "label" in obj and "count" in obj:
            add(obj["label"], obj["count"])
        if "counts" in obj and "total" in obj:
            add("*", obj["total"])
        if {"label", "prior", "current", "delta"} <= obj.keys():
            for k in ("prior", "current", "delta"):
                add(obj["label"], obj[k])
        for key in ("detections", "regions", "changes"):
            items = obj.get(key)
            if isinstance(items, list):
                if obj.get("target"):
                    add(obj["target"], len(items))
                add("*", len(items))
                labels = Counter(str(i.get("label", "")) for i in items if isinstance(i, dict))
                for lab, n in labels.items():
                    add(lab, n)
                if key == "changes":
                    for (lab, st), n in Counter((str(i.get("label")), str(i.get("status"))) for i in items
                                                if isinstance(i, dict)).items():
                        add(lab, n)
                        add(st, n)
        for v in obj.values():
            _counts(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _counts(v, out)


@dataclass
class _Backing:
    """What one evidence id backs."""

    numbers: list[float] = field(default_factory=list)
    text: str = " "  # labels and fields of the result (provenance left out)
    args_numbers: list[float] = field(default_factory=list)
    args_text: str = " "
    counts: dict[str, set[int]] = field(default_factory=dict)
    error: str | None = None  # a failed call: its message


def _backings(results: dict[str, Any], calls: Iterable[ToolCallRecord]) -> dict[str, _Backing]:
    out: dict[str, _Backing] = {}
    for eid, r in results.items():
        data = r.model_dump(mode="json") if isinstance(r, BaseModel) else r
        b = out.setdefault(eid, _Backing())
        if isinstance(data, dict):
            prov = data.get("provenance") if isinstance(data.get("provenance"), dict) else {}
            body = {k: v for k, v in data.items() if k != "provenance"}
            named = " ".join(str(v) for v in prov.values() if isinstance(v, str))  # model names, the note
            b.numbers = evidence_numbers([body]) + [x for _, x in numbers_in(named)]
            b.text = _words(" ".join(_strings(body)))
            _counts(body, b.counts)
        else:
            b.numbers = evidence_numbers([data])
            b.text = _words(str(data))
    for c in calls:
        b = out.setdefault(c.id, _Backing())
        b.args_numbers = evidence_numbers([c.args])
        b.args_text = _words(" ".join(_strings(c.args)))
        if not c.ok:
            b.error = c.error or c.summary
    return out


# ---- one sentence ------------------------------------------------------------------------------------
def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(#\[])", text.strip()) if s]


def _strip_quotes(clause: str, question: str) -> str:
    """Remove the spans of a declining clause that quote the question verbatim."""
    q = " ".join(question.lower().split())

    def repl(m: re.Match[str]) -> str:
        span = " ".join(m.group(1).lower().split()).strip(" ?.!,")
        return " " if span and span in q else m.group(0)

    return _QUOTE.sub(repl, clause)


def _has(text: str, backers: tuple[str, ...]) -> bool:
    return any(re.search(rf"(?<![a-z0-9]){re.escape(b)}(?![a-z0-9])", text) for b in backers)


def _sentence_reasons(sent: str, cited: list[str], ev: dict[str, _Backing], question: str, failures: list[float],
                      *, with_args: bool = False) -> tuple[list[str], list[str], list[str]]:
    """(reasons, unbacked number tokens, unbacked words) for one sentence citing ``cited``."""
    backs = [ev[e] for e in cited if e in ev]
    where = ", ".join(cited) if cited else ""
    pool = [x for b in backs for x in b.numbers + (b.args_numbers if with_args else [])]
    counts: dict[str, set[int]] = {}
    for b in backs:
        for k, v in b.counts.items():
            counts.setdefault(k, set()).update(v)
    text = " ".join(b.text for b in backs)
    args_text = " ".join(b.args_text for b in backs)
    reasons: list[str] = []
    bad_nums: list[str] = []
    bad_words: list[str] = []
    for clause in _CLAUSE.split(sent):
        declining = bool(_DECLINE.search(clause))
        body = _strip_quotes(clause, question) if declining else clause
        for tok, x in numbers_in(body):
            if _supported(tok, x, pool) or (declining and _supported(tok, x, failures)):
                continue
            bad_nums.append(tok)
            reasons.append(f"number {tok}: not in the cited result {where}" if cited else
                           f"number {tok}: the sentence cites no tool result")
        for term, rx in _COUNT_PHRASES:
            for m in rx.finditer(body):
                n = abs(int(m.group(1)))
                have = counts.get(term.count_key or "*", set())
                if cited and n not in have and m.group(1) not in bad_nums:
                    bad_nums.append(m.group(1))
                    reasons.append(f"count {n} {term.name}: the cited result {where} counts "
                                   f"{', '.join(map(str, sorted(have))) or f'no {term.name}'}")
        for term in TERMS:
            m = term.regex.search(body)
            if m is None or _has(text, term.backers) or (term.tool and (declining or _has(args_text, term.backers))):
                continue
            bad_words.append(m.group(0).lower())
            reasons.append(f"'{m.group(0)}': no label or field of {where} names it" if cited else
                           f"'{m.group(0)}': the sentence cites no tool result that names it")
    return reasons, bad_nums, bad_words


@dataclass
class _Check:
    ev: dict[str, _Backing]
    question: str
    failures: list[float]
    known: set[str]
    g: dict[str, Any] = field(default_factory=lambda: {
        "checked_numbers": 0, "unsupported": [], "unsupported_words": [], "unknown_evidence_ids": [],
        "removed_sentences": [], "unverified_findings": [], "rewritten_steps": [], "removed": []})

    def sentence(self, sent: str, extra: list[str], where: str, *, with_args: bool = False) -> list[str]:
        """Reasons ``sent`` is unbacked (empty: backed); records them."""
        cited = list(dict.fromkeys(_CITE.findall(sent) + list(extra)))
        unknown = [c for c in cited if c not in self.known]
        self.g["checked_numbers"] += len(numbers_in(sent))
        reasons, nums, words = _sentence_reasons(sent, [c for c in cited if c in self.known], self.ev,
                                                 self.question, self.failures, with_args=with_args)
        reasons += [f"evidence id {u} does not exist" for u in unknown]
        if reasons:
            self.g["unsupported"] += nums
            self.g["unsupported_words"] += words
            self.g["unknown_evidence_ids"] += unknown
            self.g["removed"].append(RemovedClaim(where=where, text=sent, cited=cited, reasons=reasons))  # type: ignore[arg-type]
        return reasons


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
    pool = [x for b in backs for x in b.numbers]
    return _supported(repr(float(value)), float(value), pool + [round(v, 1) for v in pool])


def _label_backed(label: str, cited: list[str], ev: dict[str, _Backing]) -> bool:
    if " ".join(_words(label).split()) in UNDECIDED_LABELS:
        return True
    text = " ".join(ev[e].text for e in cited if e in ev)
    return _has(text, (" ".join(_words(label).split()),))


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
    cited = list(dict.fromkeys([e for s in kept for e in _CITE.findall(s)] +
                               [e for f in findings if f.verified for e in f.evidence]))
    value, label, dropped_value, dropped_label = answer.value, answer.label, None, None
    if value is not None and not _value_backed(value, answer.unit, cited, ev):
        dropped_value, value = value, None
        chk.g["removed"].append(RemovedClaim(where="value", text=f"{dropped_value:g} {answer.unit or ''}".strip(),
                                             cited=cited, reasons=[f"no count or number of {', '.join(cited) or 'a cited result'} "
                                                                   f"equals it"]))
    if label is not None and not (cited and _label_backed(label, cited, ev)):
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
    fixed = answer.model_copy(update={"answer": text, "findings": findings, "value": value, "label": label,
                                      "steps": steps})
    return fixed, report
