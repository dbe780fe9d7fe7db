"""The SHORT spoken form of an answer: the conclusion and the key number, nothing else.

``short_answer(AskResult)`` -> e.g. "Two white blood cells.", "Yes. One polyp.", "Blood smear.",
"I could not count polyps."  Built from the typed fields (value, unit, label, abstained, status);
the full answer with its evidence is printed and logged, not read aloud.  Pure functions.
"""

from __future__ import annotations

import re

from tools.answer import AskResult

from .normalize import number_to_words

__all__ = ["short_answer", "spoken_number", "first_sentence", "for_speech"]

_UNIT_WORDS = {"mm": "millimetres", "mm2": "square millimetres", "mm²": "square millimetres", "cm": "centimetres",
               "cm2": "square centimetres", "cm²": "square centimetres", "px": "pixels", "%": "percent",
               "px2": "square pixels", "px²": "square pixels", "days": "days"}
# a TTS reads "mm²" as "em em two": a unit the table lacks is spoken with its superscripts as words
_SUPERSCRIPTS = {"²": " squared", "³": " cubed"}
_NUM = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]*\d)")


def spoken_number(value: float) -> str:
    """12.0 -> 'twelve'; 12.34 -> '12.3' (TTS reads decimals itself); 1234 -> '1234'."""
    if float(value).is_integer() and 0 <= value < 1000:
        return number_to_words(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def _written_number(value: float, answer: str) -> str | None:
    """``value`` as the written answer writes it ('447.5' in "area 447.5 mm²"), so that speech and text
    state the same number; None when the answer writes no number that ``value`` rounds to."""
    for tok in _NUM.findall(answer or ""):
        decimals = len(tok.split(".", 1)[1]) if "." in tok else 0
        try:
            if round(float(value), decimals) == float(tok) and (decimals or float(value).is_integer()):
                return tok
        except ValueError:  # pragma: no cover - the pattern only matches numbers
            continue
    return None


def _say_number(value: float, answer: str) -> str:
    tok = _written_number(value, answer)
    if tok is None or float(tok).is_integer():
        return spoken_number(value)
    return tok


def _unit_words(unit: str, value: float) -> str:
    words = _UNIT_WORDS.get(unit) or (_singular(unit) if value == 1 else unit)
    for sup, word in _SUPERSCRIPTS.items():
        words = words.replace(sup, word)
    return words


def _singular(unit: str) -> str:
    if unit.endswith("cells"):
        return unit[:-1]
    if unit.endswith("ies"):
        return unit[:-3] + "y"
    if unit.endswith("s") and not unit.endswith("ss"):
        return unit[:-1]
    return unit


def _clean(text: str) -> str:
    text = re.sub(r"\s*\[E\d+(?:,\s*E\d+)*\]", "", text)
    text = re.sub(r"\s*\([^()]*\)", "", text)
    return re.sub(r"\s+", " ", text).strip()


_NEGATION = re.compile(r"\b(not|no|none|never|neither|nor|without|cannot|can't|isn't|aren't|wasn't|don't|doesn't|"
                       r"didn't|excluded|ruled out)\b", re.IGNORECASE)


def first_sentence(text: str, max_words: int = 24) -> str:
    """First sentence, evidence tags and parentheses removed, cut at a colon, at most ``max_words``."""
    t = _clean(text)
    m = re.match(r"(.+?[.!?])(\s|$)", t)
    t = m.group(1) if m else t
    t = t.split(":", 1)[0].strip().rstrip(".!?") + "."
    words = t.split()
    if len(words) > max_words and _NEGATION.search(" ".join(words[max_words:])):
        return t  # a cut would drop a "not" (or "no", "without"...) and say the opposite: the whole sentence
    return " ".join(words[:max_words]).rstrip(",;") + ("." if len(words) > max_words else "")


def short_answer(r: AskResult) -> str:
    if r.status == "error":
        return "Sorry, that failed. The details are on screen."
    if r.abstained or r.status == "stopped":
        return first_sentence(r.answer)
    # "uncertain" is the conclusion of an undecided classification: never dropped from the spoken form
    yes_no = f"{r.label.capitalize()}." if r.label in ("yes", "no", "uncertain") else ""
    compared = _compared(r)
    if compared and (r.value is None or (r.unit or "").strip() == "days"):  # the value is then the interval
        return f"{yes_no} {compared}".strip()  # ("No. Two days." had answered "has it changed?")
    if r.value is not None:
        unit = (r.unit or "").strip()
        if unit == "%":  # a probability: say what it is the probability of, as the written answer does
            clause = _clause_with(r.value, r.answer)
            if clause:
                return f"{yes_no} {clause}".strip()
        phrase = f"{_say_number(r.value, r.answer)} {_unit_words(unit, r.value)}".strip()
        return f"{yes_no} {phrase[0].upper()}{phrase[1:]}.{_disagreement(r)}".strip()
    if yes_no:
        tail = _tail(r.answer, r.label)
        return f"{yes_no} {tail}".strip() if tail and tail != "." else yes_no
    return first_sentence(r.answer)


def _compared(r: AskResult) -> str | None:
    """A comparison's spoken form: its first sentence with up to three of the changes it lists after the colon
    ("Compared with the prior study: right lung grown by 42.3%; left lung unchanged."), and the same-patient warning
    when the written answer gives it.  (Cut at the colon, it had said only "Compared with the prior study.")"""
    if not any(c.name == "compare_with_prior" and c.ok for c in r.tool_calls):
        return None
    t = _clean(re.sub(r"^\s*(yes|no)\b[.,]?\s*", "", r.answer or "", flags=re.I))
    m = re.match(r"(.+?[.!?])(\s|$)", t)
    head, sep, items = (m.group(1) if m else t).rstrip(".!?").partition(":")
    if not sep or not items.strip():
        return None
    parts = [re.sub(r"^#\d+\s*", "", p.strip()) for p in items.split(";") if p.strip()]
    said = f"{head.strip()}: {'; '.join(parts[:3])}."
    if "prior is this patient's" in (r.answer or ""):
        said += " Check that the prior is this patient's."
    return said


def for_speech(text: str) -> str:
    """A written answer read out in full ("read back the last finding"): without its evidence tags ([E2])."""
    return re.sub(r"\s+", " ", re.sub(r"\s*\[E\d+(?:,\s*E\d+)*\]", "", text or "")).strip()


def _tail(answer: str, label: str | None) -> str:
    """The first sentence after a leading 'Yes.'/'No.'."""
    rest = re.sub(rf"^\s*{label}\b[.,]?\s*", "", answer, flags=re.I) if label else answer
    return first_sentence(rest) if rest.strip() else ""


def _clause_with(value: float, answer: str) -> str | None:
    """The clause of the written answer that states ``value`` percent ("The classifier reads this chest X-ray
    as bacterial pneumonia with probability 50.3%"), "%" as a word; None when no clause states it."""
    text = _clean(re.sub(rf"^\s*(yes|no|uncertain)\b[.,]?\s*", "", answer or "", flags=re.I))
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        for clause in re.split(r":\s+|;\s+|,\s+", sentence.rstrip(".!?")):
            tok = _written_number(value, clause)
            if tok is not None and re.search(rf"(?<![\w.]){re.escape(tok)}\s*%", clause):
                clause = re.sub(r"(\d)\s*%", r"\1 percent", clause.strip())
                return clause[0].upper() + clause[1:] + "."
    return None


def _disagreement(r: AskResult) -> str:
    """A count whose independent cross-check disagrees (``CountResult.cross_check``) says so aloud, as the
    written answer does: " An independent method counts two white blood cells: check both overlays." """
    if r.value is None or not float(r.value).is_integer():
        return ""
    for call in r.tool_calls:
        cc = (call.result or {}).get("cross_check") if call.ok else None
        if not isinstance(cc, dict) or cc.get("agrees", True):
            continue
        for c in cc.get("counts") or []:
            if not c.get("agrees", True) and c.get("primary_count") == int(r.value):
                n = int(c.get("count", 0))
                unit = (r.unit or "").strip()
                return (f" An independent method counts {spoken_number(n)} {_unit_words(unit, n)}:"
                        f" check both overlays.")
    return ""
