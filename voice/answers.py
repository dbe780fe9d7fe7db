"""The SHORT spoken form of an answer: the conclusion and the key number, nothing else.

``short_answer(AskResult)`` -> e.g. "Two white blood cells.", "Yes. One polyp.", "Blood smear.",
"I could not count polyps."  Built from the typed fields (value, unit, label, abstained, status);
the full answer with its evidence is printed and logged, not read aloud.  Pure functions.
"""

from __future__ import annotations

import re

from tools.answer import AskResult

from .normalize import number_to_words

__all__ = ["short_answer", "spoken_number", "first_sentence"]

_UNIT_WORDS = {"mm": "millimetres", "mm2": "square millimetres", "cm": "centimetres", "px": "pixels",
               "%": "percent", "px2": "square pixels", "days": "days"}


def spoken_number(value: float) -> str:
    """12.0 -> 'twelve'; 12.34 -> '12.3' (TTS reads decimals itself); 1234 -> '1234'."""
    if float(value).is_integer() and 0 <= value < 1000:
        return number_to_words(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


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


def first_sentence(text: str, max_words: int = 24) -> str:
    """First sentence, evidence tags and parentheses removed, cut at a colon, at most ``max_words``."""
    t = _clean(text)
    m = re.match(r"(.+?[.!?])(\s|$)", t)
    t = m.group(1) if m else t
    t = t.split(":", 1)[0].strip().rstrip(".!?") + "."
    words = t.split()
    return " ".join(words[:max_words]).rstrip(",;") + ("." if len(words) > max_words else "")


def short_answer(r: AskResult) -> str:
    if r.status == "error":
        return "Sorry, that failed. The details are on screen."
    if r.abstained or r.status == "stopped":
        return first_sentence(r.answer)
    yes_no = f"{r.label.capitalize()}." if r.label in ("yes", "no") else ""
    if r.value is not None:
        unit = (r.unit or "").strip()
        words = _UNIT_WORDS.get(unit) or (_singular(unit) if r.value == 1 else unit)
        phrase = f"{spoken_number(r.value)} {words}".strip()
        return f"{yes_no} {phrase[0].upper()}{phrase[1:]}.".strip()
    if yes_no:
        tail = _tail(r.answer, r.label)
        return f"{yes_no} {tail}".strip() if tail and tail != "." else yes_no
    return first_sentence(r.answer)


def _tail(answer: str, label: str | None) -> str:
    """The first sentence after a leading 'Yes.'/'No.'."""
    rest = re.sub(rf"^\s*{label}\b[.,]?\s*", "", answer, flags=re.I) if label else answer
    return first_sentence(rest) if rest.strip() else ""
