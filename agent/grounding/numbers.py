"""Numbers in the grounding check: the numbers a text writes (ids, instance numbers, ordinals and list
numbering left out; a unit may follow without a space: '12mm'; '.99' is 0.99; a number in words where it states a
quantity: 'seven others', not 'one of the polyps', 'no polyp' or 'the two images'), the numbers a tool result states
(plus complements of a probability distribution, absolute values and list lengths; 100 x a probability only where
a percentage is written),
the millimetre numbers a result states (fields named ``*_mm``, ``*_mm2``), the percentages it states, and whether
a written number is backed by a pool of them at its written rounding.  A length or area written in mm, cm or µm
is backed only by a millimetre number of the result, converted to the written unit: a size in pixels is never
millimetres.  A number written as a percentage is backed only by a percentage (100 x a probability or fraction,
a ``*_pct`` field): '0.72 %' is not a probability of 0.72."""

from __future__ import annotations

import re
from typing import Any, Iterable

from pydantic import BaseModel

from agent.number_words import SPELLED_NUMBER, spelled_value

__all__ = ["evidence_numbers", "millimetre_numbers", "percent_numbers", "numbers_in", "written_numbers", "unit_scale",
           "unsupported_numbers", "METRIC_UNITS", "PERCENT"]

_ID_PATTERNS = (
    r"\[?\bE\d+\b\]?",  # evidence ids
    r"#\d+",  # instance numbers on overlays
    r"\b[a-z]+(?:-[a-z]+)*-\d+\b",  # artifact ids: mask-3, change-map-5
    r"\b\d+(?:st|nd|rd|th)\b",  # ordinals
    r"^\s*\d+[.)]\s",  # list numbering
)
_NUM = re.compile(r"(?<![\w.])[-+]?(?:[1-9]\d{0,2}(?:,\d{3})+(?![.,]?\d)|\d+(?:[.,]\d+)?|\.\d+)"
                  r"(?=(?:[^\W\d_]+[23]?)?(?!\w))")  # '12mm', '.99', '1,000' (a thousand, never 1.0)
METRIC_UNITS: dict[str, float] = {"mm": 1.0, "cm": 10.0, "um": 1e-3, "mm2": 1.0, "cm2": 100.0, "um2": 1e-6, "in": 25.4}
"""A written unit of length or area -> millimetres (mm²) per unit."""
PERCENT = "%"
"""The unit :func:`written_numbers` gives a number written as a percentage ('72 %', '72%', 'seventy-two percent')."""
_PCT = re.compile(r"\s*(?:%|per ?cent\b|pct\b)", re.IGNORECASE)
_DIM = re.compile(r"\s*(?:x|×|by)\s*[-+]?\d+(?:[.,]\d+)?(?=\s*[^\W\d_])", re.IGNORECASE)
_METRIC = re.compile(r"(?:\s*|\s*-\s*)[(\[]?\s*(?:(?P<area>mm2|mm²|mm\^2|cm2|cm²|cm\^2|[µμu]m2|[µμu]m²|"
                     r"sq(?:uare|\.)? ?(?:mil+i|cent+i)met\w*|sq(?:uare|\.)? ?[mc]m\b)|(?P<len>mms?|cms?|[µμu]m|"
                     r"mil+imet\w*|cent+imet\w*|micromet\w*|microns?|inch(?:es)?|in\.(?=\s)))(?:\b|(?<=\.))", re.IGNORECASE)
"""A length or area unit after a number, misspelt ('mms', 'milimetres') or bracketed ('50 (mm)') too; inches are
converted (a planner that writes '2 inches' claims 50.8 mm)."""


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
    """Every number in the results (and its absolute value), the numbers their texts write, and list lengths.
    Percentages of probabilities are in :func:`percent_numbers` only."""
    out: list[float] = []
    for r in results:
        for v in _walk(r):
            if isinstance(v, bool) or v is None:
                continue
            if isinstance(v, (int, float)):
                out.append(float(v))  # 100 x a probability backs only a percentage (percent_numbers): a bare
                out.append(abs(float(v)))  # '72' ('72 years old') is not p = 0.72
            elif isinstance(v, str):
                out.extend(n for _, n in numbers_in(v))
    return out


def numbers_in(text: str) -> list[tuple[str, float]]:
    """Numbers written in a text, skipping ids (E3, #2, mask-4) and list numbering."""
    return [(tok, x) for tok, x, _ in _tokens(text)]


def written_numbers(text: str) -> list[tuple[str, float, str | None]]:
    """(token, number, unit) of every number of a text; the unit is a key of :data:`METRIC_UNITS` for a length or
    area in mm, cm or µm ('12 x 8 mm': both; 'twelve millimetres'), :data:`PERCENT` for a percentage, else None."""
    return _tokens(text)


def unit_scale(unit: str | None) -> float | None:
    """Millimetres (mm²) per ``unit`` ('mm', 'cm', 'mm²', 'square millimetres'); None for any other unit."""
    u = _unit(" " + (unit or ""), 0)
    return METRIC_UNITS.get(u or "") if _METRIC.fullmatch(" " + (unit or "").strip()) else None


def millimetre_numbers(obj: Any) -> list[float]:
    """The numbers of the fields named ``*_mm`` / ``*_mm2`` of a result (dicts and lists walked), and the sizes
    its texts write in mm, cm or µm ('PixelSpacing 500 mm is implausible'), in millimetres."""
    out: list[float] = []
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    if isinstance(obj, str):
        out.extend(x * METRIC_UNITS[u] for _, x, u in written_numbers(obj) if u in METRIC_UNITS)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if re.search(r"_mm2?$", str(k), re.IGNORECASE):
                out.extend(float(x) for x in (v if isinstance(v, list) else [v])
                           if isinstance(x, (int, float)) and not isinstance(x, bool))
            out.extend(millimetre_numbers(v))
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            out.extend(millimetre_numbers(v))
    return out


def percent_numbers(obj: Any) -> list[float]:
    """The numbers that back a percentage: 100 x every number of a result in [-1, 1] (probabilities, fractions,
    the complements of a distribution), the numbers of its fields named ``*_pct`` / ``*percent`` (percentages
    already) and the percentages its texts write."""
    out = [100.0 * v for v in _walk(obj) if isinstance(v, (int, float)) and not isinstance(v, bool) and -1 <= v <= 1]
    return out + _percent_fields(obj)


def _percent_fields(obj: Any) -> list[float]:
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    if isinstance(obj, str):
        return [x for _, x, u in written_numbers(obj) if u == PERCENT]
    out: list[float] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if re.search(r"(?:_pct|percent)$", str(k), re.IGNORECASE) and isinstance(v, (int, float)) \
                    and not isinstance(v, bool):
                out.append(float(v))
            out.extend(_percent_fields(v))
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            out.extend(_percent_fields(v))
    return out


def _unit(text: str, end: int) -> str | None:
    if _PCT.match(text, end):
        return PERCENT
    dim = _DIM.match(text, end)  # '12 x 8 mm': the first number is in mm too
    m = _METRIC.match(text, dim.end() if dim else end)
    if m is None:
        return None
    u = m.group(0).lower().replace("μ", "u").replace("µ", "u").strip(" -")
    u = re.sub(r"^sq(?:uare|\.)? ?", "sq ", u)  # 'square cm', 'sq. cm', 'sqcm' -> 'sq cm'
    u = u.lstrip("([ ")
    if u.startswith("in"):
        return "in"
    scale = ("cm" if u.startswith(("c", "sq cent", "sq cm")) else "um" if u.startswith(("u", "micro")) else "mm")
    return scale + ("2" if m.group("area") else "")


def _tokens(text: str) -> list[tuple[str, float, str | None]]:
    clean = text
    for pat in _ID_PATTERNS:
        clean = re.sub(pat, " ", clean, flags=re.MULTILINE)
    clean = re.sub(r"(\d)x(\d)", r"\1 x \2", clean)
    out = []
    for m in _NUM.finditer(clean):
        thousands = re.fullmatch(r"[-+]?[1-9]\d{0,2}(?:,\d{3})+", m.group(0)) is not None
        s = m.group(0).replace(",", "" if thousands else ".")
        try:
            x = float(s)
        except ValueError:
            continue
        if re.match(r"[kK](?![^\W\d_])", clean[m.end():m.end() + 2]):  # '2k cells' is 2000
            x *= 1000
        out.append((m.group(0), x, _unit(clean, m.end())))
    for m in _SPELLED.finditer(clean):  # "twelve millimetres", "seven others": a quantity in words, like digits
        one = re.fullmatch(r"one|a single|single", m.group(1), re.IGNORECASE)
        end = m.end(1)
        if _MEASURE.match(clean, end) or (_MORE.match(clean, end) if one else not (
                _INPUTS.match(clean, end) or _OF_THE.search(clean, 0, m.start(1)))):
            out.append((m.group(1), float(spelled_value(m.group(1))), _unit(clean, end)))
    return out


_SPELLED = re.compile(r"(?<![\w-])(?!no\b|none\b|zero\b)(" + SPELLED_NUMBER + r")(?![\w-])", re.IGNORECASE)
"""A number in words ('no', 'none' and 'zero' are left to the count phrases: 'no polyp' states no number)."""
_MEASURE = re.compile(r"\s+(?:mm|millimet\w*|cm|centimet\w*|px|pixels?|%|per ?cent|days?|weeks?|months?|years?)\b",
                      re.IGNORECASE)
_MORE = re.compile(r"\s+(?:more|others?|additional|further|extra|else)\b", re.IGNORECASE)
"""'one' states a quantity only as 'one more', 'one other' ('one of the polyps', 'a single box' state none)."""
_INPUTS = re.compile(r"\s+(?:(?:prior|current|chest|input|loaded|uploaded)\s+)?(?:images?|stud(?:y|ies)|films?|"
                     r"scans?|smears?|frames?|pictures?|sides?|lungs?|halves|views?|time ?points?|visits?|"
                     r"questions?|tools?)\b", re.IGNORECASE)
"""'the two images', 'both lungs': the inputs and the anatomy a sentence refers to, not a quantity a tool states."""
_OF_THE = re.compile(r"\bof (?:the|these|those)\s+$", re.IGNORECASE)
"""'of the two (normal or pneumonia)': the choices the question offered, not a quantity a tool states."""


def _supported(token: str, x: float, pool: Iterable[float]) -> bool:
    decimals = len(re.split(r"[.,]", token)[1]) if re.search(r"[.,]", token) else 0  # '0,8' is written to 0.1
    tol = 0.5 * 10 ** (-decimals) + 1e-9
    return any(abs(abs(x) - abs(v)) <= tol for v in pool)


def unsupported_numbers(text: str, pool: list[float]) -> list[str]:
    return [tok for tok, x in numbers_in(text) if not _supported(tok, x, pool)]
