"""Numbers in the grounding check: the numbers a text writes (ids, instance numbers, ordinals and list
numbering left out), the numbers a tool result states (plus percentages of probabilities, complements of a
probability distribution, absolute values and list lengths), and whether a written number is backed by a
pool of them at its written rounding."""

from __future__ import annotations

import re
from typing import Any, Iterable

from pydantic import BaseModel

from agent.number_words import NUMBER_WORDS

__all__ = ["evidence_numbers", "numbers_in", "unsupported_numbers"]

_ID_PATTERNS = (
    r"\[?\bE\d+\b\]?",  # evidence ids
    r"#\d+",  # instance numbers on overlays
    r"\b[a-z]+(?:-[a-z]+)*-\d+\b",  # artifact ids: mask-3, change-map-5
    r"\b\d+(?:st|nd|rd|th)\b",  # ordinals
    r"^\s*\d+[.)]\s",  # list numbering
)
_NUM = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)?(?![\w])")


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
    for m in _SPELLED.finditer(clean):  # "twelve millimetres", "ninety percent": a measurement in words
        out.append((m.group(1), float(_SPELLED_VALUES[" ".join(m.group(1).lower().split())])))
    return out


_SPELLED_VALUES = {w: n for w, n in NUMBER_WORDS.items() if n}  # "no millimetres" is no measurement
_SPELLED = re.compile(r"\b(" + "|".join(sorted(_SPELLED_VALUES, key=len, reverse=True)) + r")\s+(?:mm|millimet\w*|cm|"
                      r"centimet\w*|px|pixels?|%|per ?cent|days?|weeks?|months?|years?)\b", re.IGNORECASE)


def _supported(token: str, x: float, pool: Iterable[float]) -> bool:
    decimals = len(token.split(".")[1]) if "." in token else 0
    tol = 0.5 * 10 ** (-decimals) + 1e-9
    return any(abs(abs(x) - abs(v)) <= tol for v in pool)


def unsupported_numbers(text: str, pool: list[float]) -> list[str]:
    return [tok for tok, x in numbers_in(text) if not _supported(tok, x, pool)]
