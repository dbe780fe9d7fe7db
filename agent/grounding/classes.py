"""The class a classifier decided, said the other way: 'the film shows pneumonia [E2]' where E2 reads the film as
normal, 'no pneumonia' or 'not normal' where it reads it as pneumonia.  Every class is a key of the result's
probabilities, so its name alone backs no claim that the image *is* (or is not) of that class: the decided label
must agree.  A class named with a number ('pneumonia 28 %'), among alternatives ('normal or pneumonia') or by an
uncertain result (no class decided) is not checked here."""

from __future__ import annotations

import re
from typing import Any

from agent.grounding.terms import TERMS, _has, _words

__all__ = ["decided_label", "class_claims"]

_CLASSES = tuple(t for t in TERMS if t.name in ("pneumonia", "bacterial", "viral", "normal"))
_NEG_BEFORE = re.compile(r"(?:\bno|\bnot|\bwithout|\bnegative for|\bfree (?:of|from)|n't|\bnor|\bneither|\bexclud\w*|"
                         r"\brules? out|\bruled out|\bunlikely|\bagainst|\babsence of)\b(?:\s+[\w-]+){0,3}?\s*$",
                         re.IGNORECASE)
_NEG_AFTER = re.compile(r"^(?:\s+[\w-]+){0,3}?\s*(?:[:=-]\s*(?:no|negative|absent)\b|(?:is|was|are|were|seems|appears)?"
                        r"\s*(?:absent|excluded|ruled out|unlikely|negative|not (?:seen|present|found|detected|shown|"
                        r"likely|supported|suggested)))\b", re.IGNORECASE)
_POSSIBLE = re.compile(r"^(?:\s+[\w-]+){0,3}?\s*(?:cannot|can ?not|can't|could not|couldn't|not) (?:be )?"
                       r"(?:excluded|ruled out)\b", re.IGNORECASE)
_CHOICES = re.compile(r"\b(?:normal|pneumonia|bacterial|viral)\b\s*(?:,|\bor\b|/|\bvs\.?|\bversus\b)\s*(?:\w+\s+)?"
                      r"(?:normal|pneumonia|bacterial|viral|either)\b", re.IGNORECASE)
_SCOPE = re.compile(r"[,;:.!?()]")


def decided_label(data: Any) -> str | None:
    """The label a classification result decided ('viral_pneumonia'), None for other results and uncertain ones."""
    if isinstance(data, dict) and isinstance(data.get("probabilities"), dict) and isinstance(data.get("label"), str) \
            and not data.get("uncertain") and data["label"] in data["probabilities"]:
        return data["label"]
    return None


def class_claims(clause: str, labels: list[str]) -> list[tuple[str, str]]:
    """(word, reason) of each class the clause says the image is (is not) that no cited decided label is (is)."""
    clause = re.sub(r"\[?\bE\d+\b\]?", " ", clause)
    if not labels or re.search(r"\d", clause) or _CHOICES.search(clause):
        return []
    out = []
    for term in _CLASSES:
        for m in term.regex.finditer(clause):
            before = clause[:m.start()]
            before = before[max((x.end() for x in _SCOPE.finditer(before)), default=0):]
            after = clause[m.end():]
            negated = not _POSSIBLE.match(after) and bool(_NEG_BEFORE.search(before) or _NEG_AFTER.match(after))
            if any(_has(_words(lab), term.backers) != negated for lab in labels):
                continue
            out.append((m.group(0).lower(), f"'{m.group(0)}': the cited classifier reads the image as "
                                            f"{' / '.join(lab.replace('_', ' ') for lab in labels)}"
                                            f"{', not that' if not negated else ''}"))
    return out
