"""The grounding check shared by every planner: each number, label and change word of the final
answer must be backed by a tool result of this run (or by the question itself).  Unbacked
sentences are removed from the answer text; unbacked findings and steps are marked unverified;
an unbacked ``value`` is dropped.  The report says what was removed and why.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from pydantic import BaseModel

from tools.answer import FinalAnswer

__all__ = ["evidence_numbers", "numbers_in", "unsupported_numbers", "check_grounding", "GroundingReport"]

_ID_PATTERNS = (
    r"\[?\bE\d+\b\]?",  # evidence ids
    r"#\d+",  # instance numbers on overlays
    r"\b[a-z]+(?:-[a-z]+)*-\d+\b",  # artifact ids: mask-3, change-map-5
    r"\b\d+(?:st|nd|rd|th)\b",  # ordinals
    r"^\s*\d+[.)]\s",  # list numbering
)
_NUM = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)?(?![\w])")
CHANGE_WORDS = ("new", "resolved", "grown", "shrunk", "unchanged")
SIDE_WORDS = ("left", "right")


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


def _supported(token: str, x: float, pool: list[float]) -> bool:
    decimals = len(token.split(".")[1]) if "." in token else 0
    tol = 0.5 * 10 ** (-decimals) + 1e-9
    return any(abs(abs(x) - abs(v)) <= tol for v in pool)


def unsupported_numbers(text: str, pool: list[float]) -> list[str]:
    return [tok for tok, x in numbers_in(text) if not _supported(tok, x, pool)]


class GroundingReport(BaseModel):
    checked_numbers: int = 0
    unsupported: list[str] = []
    removed_sentences: list[str] = []
    unverified_findings: list[str] = []
    dropped_value: float | None = None
    unknown_evidence_ids: list[str] = []
    unsupported_words: list[str] = []

    @property
    def ok(self) -> bool:
        return not (self.unsupported or self.removed_sentences or self.unverified_findings or
                    self.dropped_value is not None or self.unknown_evidence_ids or self.unsupported_words)

    def discrepancy(self) -> str:
        parts = []
        if self.unsupported:
            parts.append(f"numbers not found in any tool result: {', '.join(self.unsupported)}")
        if self.unsupported_words:
            parts.append(f"claims not supported by any tool result: {', '.join(self.unsupported_words)}")
        if self.unknown_evidence_ids:
            parts.append(f"evidence ids that do not exist: {', '.join(self.unknown_evidence_ids)}")
        return "; ".join(parts)


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(#])", text.strip()) if s]


def check_grounding(answer: FinalAnswer, results: dict[str, Any], question: str = "") -> tuple[FinalAnswer, GroundingReport]:
    """Return the answer with unbacked claims removed/marked, and the report."""
    pool = evidence_numbers(results.values()) + [x for _, x in numbers_in(question)]
    evidence_text = " ".join(str(r.model_dump(mode="json")) if isinstance(r, BaseModel) else str(r)
                             for r in results.values()).lower()
    report = GroundingReport()
    ids = set(results)

    def words_unbacked(text: str) -> list[str]:
        low = text.lower()
        bad = []
        for w in CHANGE_WORDS + SIDE_WORDS:
            if re.search(rf"\b{w}\b", low) and w not in evidence_text and w not in question.lower():
                bad.append(w)
        return bad

    kept = []
    for sent in _sentences(answer.answer):
        nums = numbers_in(sent)
        report.checked_numbers += len(nums)
        bad = unsupported_numbers(sent, pool)
        badw = words_unbacked(sent)
        cited = re.findall(r"\bE\d+\b", sent)
        unknown = [c for c in cited if c not in ids]
        if bad or badw or unknown:
            report.unsupported.extend(bad)
            report.unsupported_words.extend(badw)
            report.unknown_evidence_ids.extend(unknown)
            report.removed_sentences.append(sent)
        else:
            kept.append(sent)
    text = " ".join(kept)
    if report.removed_sentences:
        note = "[Osler removed a statement that no tool result supports.]"
        text = f"{text} {note}".strip()
    findings = []
    for f in answer.findings:
        bad = unsupported_numbers(f.text, pool) + words_unbacked(f.text)
        unknown = [e for e in f.evidence if e not in ids]
        if bad or unknown or not f.evidence:
            report.unverified_findings.append(f.text)
            report.unknown_evidence_ids.extend(unknown)
            findings.append(f.model_copy(update={"verified": False}))
        else:
            findings.append(f)
    value = answer.value
    if value is not None and not _supported(repr(float(value)), float(value), pool + [round(v, 1) for v in pool]):
        report.dropped_value = value
        value = None
    steps = []
    for s in answer.steps:
        unknown = [e for e in s.evidence if e not in ids]
        report.unknown_evidence_ids.extend(unknown)
        steps.append(s.model_copy(update={"evidence": [e for e in s.evidence if e in ids]}))
    report.unknown_evidence_ids = sorted(set(report.unknown_evidence_ids))
    fixed = answer.model_copy(update={"answer": text or "No statement of the planner could be verified against the "
                                                     "tool results.", "findings": findings, "value": value,
                                      "steps": steps})
    return fixed, report
