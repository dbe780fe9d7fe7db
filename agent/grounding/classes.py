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
    out += _confidence_claims(clause, {t.name for t, _ in matches}, probs or [])
    for term, m in matches:
        if (said := _attached(clause[m.end():])) is not None:
            tok, p, tol = said
            kind = re.search(r"\b(bacterial|viral)\s+$", clause[:m.start()], re.IGNORECASE)  # 'bacterial pneumonia 96%'
            name = kind.group(1).lower() if term.name == "pneumonia" and kind else term.name
            have = [q for pr in probs or [] for q in _class_probability(name, pr)]
            if have and not any(abs(p - q) <= tol for q in have):
                out.append((m.group(0).lower(), f"'{m.group(0)} {tok}': the cited classifier gives {name} "
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


_CONFIDENT = re.compile(r"\b(?:confiden\w*|probab\w*|likel\w*|chance|sure|certain\w*|odds)\b", re.IGNORECASE)
_AFTER_CLASS = re.compile(r"\b(?:normal|pneumonia|bacterial|viral|kind)\W*(?:(?:with (?:a )?probability(?: of)?|"
                          r"probability|p\s*=|at|is|of)\W*){0,3}$", re.IGNORECASE)
_PERCENT = re.compile(r"(?<![\w.])(\d+(?:[.,]\d+)?)\s*(?:%|per ?cent\b)", re.IGNORECASE)


def _confidence_claims(clause: str, names: set[str], probs: list[dict[str, float]]) -> list[tuple[str, str]]:
    """(word, reason) of a percentage given as the confidence in the one class a clause names, wherever it stands
    ('92 % confident the film is normal', 'a 30 % chance of bacterial pneumonia'), that is not that class's
    probability."""
    if not probs or not _CONFIDENT.search(clause):
        return []
    name = ("bacterial" if "bacterial" in names and "viral" not in names else
            "viral" if "viral" in names and "bacterial" not in names else
            next(iter(names)) if len(names) == 1 else None)
    if name is None or (name in ("bacterial", "viral") and "normal" in names):
        return []
    have = [q for pr in probs for q in _class_probability(name, pr)]
    out = []
    for m in _PERCENT.finditer(clause):
        if _AFTER_CLASS.search(clause[:m.start()]):
            continue  # 'pneumonia of either kind 96%', 'normal 72%': written after its class, checked as such
        tok = m.group(1)
        decimals = len(re.split(r"[.,]", tok)[1]) if re.search(r"[.,]", tok) else 0
        if have and not any(abs(float(tok.replace(",", ".")) / 100 - q) <= 0.5 * 10 ** -decimals / 100 + 1e-9
                            for q in have):
            out.append((m.group(0), f"'{m.group(0)}' for {name}: the cited classifier gives {name} "
                                    f"{' / '.join(f'{100 * q:.0f}%' for q in have)}"))
    return out


def normal_claim(clause: str) -> str | None:
    """Other words for 'normal' in a clause ('the lungs are clear'), or None: a claim no result without a decided
    'normal' label backs."""
    m = _NORMAL_SAID.search(clause)
    return m.group(0) if m else None
