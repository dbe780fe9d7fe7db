"""The class a classifier decided, said the other way: 'the film shows pneumonia [E2]' where E2 reads the film as
normal, 'no pneumonia' or 'not normal' where it reads it as pneumonia.  Every class is a key of the result's
probabilities, so its name alone backs no claim that the image *is* (or is not) of that class: the decided label
must agree.  A class named with its probability ('pneumonia 28 %') must carry that class's probability; a class
among alternatives ('normal or pneumonia') or of an uncertain result (no class decided) is not checked here."""

from __future__ import annotations

import re
from typing import Any

from agent.grounding.terms import TERMS, _has, _words

__all__ = ["decided_label", "class_claims", "normal_claim"]

_CLASSES = tuple(t for t in TERMS if t.name in ("pneumonia", "bacterial", "viral", "normal"))
_NEG_BEFORE = re.compile(r"(?:\bno|\bnot|\bwithout|\bnegative for|\bfree (?:of|from)|n't|\bnor|\bneither|\bexclud\w*|"
                         r"\brules? out|\bruled out|\bunlikely|\bagainst|\babsence of)\b(?:\s+[\w-]+){0,3}?\s*$",
                         re.IGNORECASE)
_NEG_AFTER = re.compile(r"^(?:\s+[\w-]+){0,3}?\s*(?:[:=-]\s*(?:no|negative|absent)\b|(?:is|was|are|were|seems|appears)?"
                        r"\s*(?:absent|excluded|ruled out|unlikely|negative|not (?:seen|present|found|detected|shown|"
                        r"likely|supported|suggested)))\b", re.IGNORECASE)
_POSSIBLE = re.compile(r"^(?:\s+[\w-]+){0,3}?\s*(?:cannot|can ?not|can't|could not|couldn't|not) (?:be )?"
                       r"(?:excluded|ruled out)\b", re.IGNORECASE)
_CLASS = r"(?:(?:bacterial|viral)\s+pneumonia|normal|pneumonia|bacterial|viral|either)"
_CHOICES = re.compile(rf"\b{_CLASS}(?:\s*(?:,|\bor\b|/|\bvs\.?|\bversus\b)\s*(?:(?!not\b|no\b|but\b)\w+\s+)?"
                      rf"{_CLASS}\b)+", re.IGNORECASE)
"""Classes named as alternatives ('normal or pneumonia', 'bacterial vs viral'): the span claims neither (not
'pneumonia, not normal')."""
_SCOPE = re.compile(r"[,;:.!?()]")


def decided_label(data: Any) -> str | None:
    """The label a classification result decided ('viral_pneumonia'), None for other results and uncertain ones."""
    if isinstance(data, dict) and isinstance(data.get("probabilities"), dict) and isinstance(data.get("label"), str) \
            and not data.get("uncertain") and data["label"] in data["probabilities"]:
        return data["label"]
    return None


_NORMAL_SAID = re.compile(r"\b(?:unremarkable|no acute (?:cardio)?pulmonary (?:process|disease|abnormalit\w*|findings?)|"
                          r"(?:lungs?|lung fields?|film|chest|x-ray|image) (?:(?:is|are|looks?|appears?|seems?) )+"
                          r"(?:clear|healthy|normal)|healthy|no (?:disease|abnormalit\w+|pathology))\b", re.IGNORECASE)
"""Other words for 'normal' ('the lungs are clear', 'unremarkable'): they claim the film is normal."""
_PNEUMONIC = re.compile(r"\bpneumonic\b", re.IGNORECASE)
_ATTACHED = re.compile(r"^\W*(?:(?:of either kind|of any kind|with (?:a )?probability(?: of)?|probability|p\s*=|at|is|of)"
                       r"\W*){0,3}(\d+(?:[.,]\d+)?)\s*(%|per ?cent)?", re.IGNORECASE)
_ASSERT = re.compile(r"\b(?:shows?|showing|has|have|present|there (?:is|are)|reveals?|consistent with|indicat\w*|"
                     r"suggest\w*|diagnos\w*|confirm\w*|positive for|sure|certain\w*|definite\w*)\b", re.IGNORECASE)
_PROBS_OF = {"normal": ("normal",), "bacterial": ("bacterial_pneumonia",), "viral": ("viral_pneumonia",),
             "pneumonia": ("pneumonia", "bacterial_pneumonia", "viral_pneumonia")}


def _class_probability(term: str, probs: dict[str, float]) -> list[float]:
    out = [probs[k] for k in _PROBS_OF[term] if k in probs]
    if term == "pneumonia" and "normal" in probs:
        out.append(1.0 - probs["normal"])  # pneumonia of either kind
    return out


def _attached(after: str) -> tuple[str, float, float] | None:
    """(as written, probability, rounding tolerance) of the probability written right after a class word
    ('pneumonia 28 %', 'normal with probability 0.72')."""
    m = _ATTACHED.match(after)
    if m is None:
        return None
    tok, v = m.group(1), float(m.group(1).replace(",", "."))
    decimals = len(re.split(r"[.,]", tok)[1]) if re.search(r"[.,]", tok) else 0
    tol = 0.5 * 10 ** -decimals + 1e-9
    if m.group(2) or v > 1:  # a percentage
        return tok + (m.group(2) or ""), v / 100, tol / 100
    return tok, v, tol


def class_claims(clause: str, labels: list[str], probs: list[dict[str, float]] | None = None
                 ) -> list[tuple[str, str]]:
    """(word, reason) of each class the clause says the image is (is not) that no cited decided label is (is).  A
    class written with its probability ('pneumonia 28 %') is a probability statement: the probability must be that
    class's; it claims the class only beside a word that asserts it ('shows', 'is present', 'sure')."""
    clause = _CHOICES.sub(" ", re.sub(r"\[?\bE\d+\b\]?", " ", clause))  # 'of the two (normal or pneumonia): pneumonia'
    if not labels:
        return []
    out = []
    matches = [(t, m) for t in _CLASSES for m in t.regex.finditer(clause)]
    normal = next(t for t in _CLASSES if t.name == "normal")
    pneumonia = next(t for t in _CLASSES if t.name == "pneumonia")
    matches += [(normal, m) for m in _NORMAL_SAID.finditer(clause)] + [(pneumonia, m) for m in _PNEUMONIC.finditer(clause)]
    for term, m in matches:
        if (said := _attached(clause[m.end():])) is not None:
            tok, p, tol = said
            have = [q for pr in probs or [] for q in _class_probability(term.name, pr)]
            if have and not any(abs(p - q) <= tol for q in have):
                out.append((m.group(0).lower(), f"'{m.group(0)} {tok}': the cited classifier gives {term.name} "
                                                f"{' / '.join(f'{100 * q:.0f}%' for q in have)}"))
                continue
            if not _ASSERT.search(clause):
                continue  # a probability statement, not a claim that the image is of the class
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


def normal_claim(clause: str) -> str | None:
    """Other words for 'normal' in a clause ('the lungs are clear'), or None: a claim no result without a decided
    'normal' label backs."""
    m = _NORMAL_SAID.search(clause)
    return m.group(0) if m else None
