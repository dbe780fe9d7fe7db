"""Whether a bare 'Yes' / 'No' answers the question the way the cited results do.

A yes/no question about presence ('Are there any polyps?', 'Does this film show pneumonia?', 'Is the film
normal?') has one answer that the tools back: the current image's count of that class (more than 0 is 'yes'), or
the class a classifier decided.  The check reads the verdict (the answer's first word, else the ``label`` field)
against it: 'No. The detector's 2 boxes are artefacts [E1].' for 'Are there any polyps?' says the opposite of the
result it cites.  A count the expert itself doubts (``provenance.doubt``) or a classification inside its uncertain
band backs neither word.  Questions with numbers, comparisons, alternatives or negations are not read here (their
verdicts depend on more than presence), nor are results comparing two studies."""

from __future__ import annotations

import re
from typing import Any

from agent.grounding.terms import TERMS
from agent.number_words import SPELLED_NUMBER

__all__ = ["presence_question", "verdict_problem"]

_ASK = re.compile(
    r"^\s*(?:osler[,:]?\s+)?(?:please[,]?\s+)?(?:"
    r"(?:is|are)\s+there\s+(?:any\s+|a\s+|an\s+|some\s+)?(?P<a>.+?)"
    r"|(?:does|do)\s+(?:this|the|it|that)(?:\s+[\w-]+){0,3}?\s+(?:show|have|contain|demonstrate|depict)\s+"
    r"(?:any\s+|a\s+|an\s+|some\s+|signs?\s+of\s+)?(?P<b>.+?)"
    r"|(?:can|do)\s+you\s+see\s+(?:any\s+|a\s+|an\s+)?(?P<c>.+?)"
    r"|(?:is|are)\s+(?:any\s+|a\s+|an\s+|there\s+)?(?P<d>.+?)\s+(?:present|visible|seen|found|there)"
    r"|is\s+(?:this|the|it)(?:\s+(?:film|image|x-?ray|radiograph|study|chest film|cxr))?\s+(?P<e>normal)"
    r"|is\s+(?:this|it)\s+(?:a\s+case\s+of\s+)?(?P<f>(?:bacterial\s+|viral\s+)?pneumonia)"
    r")\s*(?:in\s+(?:this|the)\s+\w+(?:\s+\w+)?\s*)?[?.!]*\s*$", re.IGNORECASE)
_NOT_PRESENCE = re.compile(r"\d|\b(?:more|fewer|less|than|least|most|over|under|above|below|changed?|chang\w+|"
                           r"grow\w*|grown|shr[iau]nk\w*|increas\w*|decreas\w*|new|prior|previous|before|since|"
                           r"or|not|no|without|else|other|larger|smaller|bigger|many|how)\b|\b(?:" + SPELLED_NUMBER + r")\b",
                           re.IGNORECASE)
_PNEUMONIA = re.compile(r"^(?:(bacterial|viral)\s+)?pneumonia$", re.IGNORECASE)


def presence_question(question: str) -> tuple[str, str] | None:
    """('count', class key) or ('class', 'pneumonia' / 'bacterial_pneumonia' / 'viral_pneumonia' / 'normal') of a
    yes/no question about what the current image shows, or None."""
    m = _ASK.match(" ".join(question.split()))
    if m is None:
        return None
    what = next(g for g in m.groups() if g is not None).strip().lower()
    if _NOT_PRESENCE.search(what):
        return None
    if what == "normal":
        return ("class", "normal")
    if (p := _PNEUMONIA.match(what)) is not None:
        return ("class", f"{p.group(1).lower()}_pneumonia" if p.group(1) else "pneumonia")
    for term in TERMS:
        if term.count_key and re.fullmatch(rf"(?:{term.pattern})", what, re.IGNORECASE):
            return ("count", term.count_key)
    return None


def _current_count(data: dict[str, Any], key: str) -> int | None:
    """The current image's count of class ``key`` in one result (a count or detection result), or None."""
    if data.get("image") != "current" or "prior" in data:
        return None
    norm = key.lower()
    if isinstance(data.get("counts"), list):
        found = [c.get("count") for c in data["counts"] if str(c.get("label", "")).lower().rstrip("s") == norm.rstrip("s")]
        return int(found[0]) if found else 0
    if isinstance(data.get("detections"), list):
        target = str(data.get("target", "")).lower()
        labels = [str(d.get("label", "")).lower().rstrip("s") for d in data["detections"]]
        if target.rstrip("s") == norm.rstrip("s"):
            return len(labels)
        if norm.rstrip("s") in labels:
            return labels.count(norm.rstrip("s"))
    return None


def _truth(kind: str, key: str, results: list[dict[str, Any]]) -> tuple[str, str] | None:
    """('yes' / 'no' / 'uncertain', what the results say) for the presence question, or None."""
    for data in results:
        if kind == "count" and (n := _current_count(data, key)) is not None:
            if (data.get("provenance") or {}).get("doubt"):
                return "uncertain", f"{data.get('evidence_id')} doubts its own count ({n})"
            return ("yes" if n > 0 else "no"), f"{data.get('evidence_id')} counts {n}"
        if kind == "class" and data.get("task") == "cxr_pneumonia" and data.get("image") == "current":
            label = str(data.get("label", ""))
            if data.get("uncertain"):
                return "uncertain", f"{data.get('evidence_id')} is uncertain"
            if key == "normal":
                hit = label == "normal"
            elif key == "pneumonia":
                hit = label.endswith("pneumonia")
            else:
                hit = label == key
            return ("yes" if hit else "no"), f"{data.get('evidence_id')} decided {label.replace('_', ' ')}"
    return None


def verdict_problem(question: str, said: str, results: list[dict[str, Any]]) -> str | None:
    """Why the verdict ``said`` ('yes' / 'no') is not the answer the results (model dumps) give to ``question``,
    or None (backed, or not a presence question the check reads)."""
    asked = presence_question(question)
    if asked is None:
        return None
    truth = _truth(*asked, results)
    if truth is None or truth[0] == said:
        return None
    what = asked[1].replace("_", " ")
    if truth[0] == "uncertain":
        return f"'{said.capitalize()}' about {what}: {truth[1]}, so neither yes nor no is backed"
    return f"'{said.capitalize()}' about {what}: {truth[1]}, so the answer is '{truth[0]}'"
