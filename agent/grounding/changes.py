"""Which end of a change a sentence gives each number: a change written as its two ends in either order ('from 5 to
2', 'to 2 from 5', '5 -> 2', '2 <- 5', '5 then 2') and numbers said to be the prior or the current value ('2 now,
previously 5', '5 before and 2 now', 'was 5 and is now 2', 'prior 5, current 2').  A cited change must have them
in that order: 'went to 5 from 2' or 'now 5, previously 2' is not backed by a change from 5 to 2."""

from __future__ import annotations

import re
from typing import Iterable

from agent.grounding.numbers import METRIC_UNITS, PERCENT, _supported, _unit, written_numbers
from agent.grounding.terms import number_value
from agent.number_words import SPELLED_NUMBER

__all__ = ["pair_claims", "role_claims"]

Pairs = list[tuple[float, float, bool]]  # (prior, current, in millimetres), evidence._pairs

_END = r"(?P<{}>[-+]?(?:\d+(?:[.,]\d+)?|\.\d+)(?![\w.,-]?\d)|" + SPELLED_NUMBER + ")"
_UNIT = r"(?:\s*[^\W\d]+[²23]?)"
_ARROW = r"(?:-+>|=+>|[—–]+>|→|⇒|⟶|⟹|➔|➜|➝|➞|↦)"
_BACK = r"(?:<-+|<=+|←|⇐|⟵)"
_FORWARD = re.compile(
    r"\bfrom\s+" + _END.format("a") + _UNIT + r"{0,3}?\s*(?:\bto\b|" + _ARROW + r")\s*" + _END.format("b") +
    r"|(?<![\w.,-])" + _END.format("c") + r"\s*" + _ARROW + r"\s*" + _END.format("d") +
    r"|(?<![\w.,-])" + _END.format("e") + _UNIT + r"?\s*,?\s+(?:and\s+)?then\s+(?:to\s+)?" + _END.format("f") +
    r"|\b(?:went|gone|goes|changed|moved)\s+" + _END.format("g") + _UNIT + r"?\s*\bto\s+" + _END.format("h") +
    r"|(?<=[A-Za-z)] )" + _END.format("i") + r"\s*(?:\bto\b|>>?|[—–]|↗|↘)\s*" + _END.format("j"),
    re.IGNORECASE)
"""A change written as its two ends, prior first: 'from 5 to 2', 'WBC 5 -> 2', '5 then 2', 'went 5 to 2', 'WBC 5 to 2',
'WBC 5 > 2'."""
_BACKWARD = re.compile(
    r"\bto\s+" + _END.format("b") + _UNIT + r"{0,3}?\s*,?\s*\bfrom\s+" + _END.format("a") +
    r"|(?<![\w.,-])" + _END.format("d") + r"\s*" + _BACK + r"\s*" + _END.format("c") +
    r"|(?<![\w.,-])" + _END.format("l") + _UNIT + r"?\s*\(\s*(?:was|previously|before|prior:?)\s+" + _END.format("k") +
    r"\s*\)", re.IGNORECASE)
"""A change written current first: 'went to 2 from 5', '2 <- 5', '2 (was 5)'."""

_SEGMENT = re.compile(r"[,;:()\[\]]|\b(?:and|but|vs\.?|versus|whereas|while|against|compared (?:with|to))\b",
                      re.IGNORECASE)
_WAS = re.compile(r"\b(?:previous(?:ly)?|before|prior|earlier|formerly|initially|originally|at first|baseline|"
                  r"ago|last time|in the past|first|initial|on admission|at admission|older|original)\b", re.IGNORECASE)
_NOW = re.compile(r"\b(?:now|currently|current|today|presently|at present|latest|this time|follow-?up|second|"
                  r"most recent|recent|repeat|newest|newer|later|at discharge|new study)\b", re.IGNORECASE)
_WAS_WEAK = re.compile(r"\b(?:was|were|had been|used to be)\b", re.IGNORECASE)
_THEN = re.compile(r"\bthen\b", re.IGNORECASE)
_NOT_AN_END = re.compile(r"\s*(?:more|fewer|less|larger|smaller|bigger|higher|lower|extra|additional|times|"
                         r"days?|weeks?|months?|years?|hours?)\b", re.IGNORECASE)
"""A number followed by these is a difference or an interval ('3 fewer', '30 days earlier'), not a change's end."""


def _value(tok: str) -> float:
    return float(tok.replace(",", ".")) if tok[-1].isdigit() else float(number_value(tok))


def _matches(tok: str, x: float, unit: str | None, v: float, in_mm: bool) -> bool:
    per_mm = METRIC_UNITS.get(unit or "")
    if per_mm is not None and not in_mm:  # a size in mm is never a change in pixels
        return False
    return _supported(tok, x, [v / per_mm if per_mm is not None else v])


def pair_claims(text: str, pairs: Pairs) -> list[tuple[str, str]]:
    """(claim, reason) of each change written as its two ends ('from 2 to 5', 'to 5 from 2') that no cited change has, in
    that order."""
    out = []
    for rx in (_FORWARD, _BACKWARD):
        for m in rx.finditer(text):
            names = next(n for n in ("ab", "cd", "ef", "gh", "ij", "kl")
                         if n[0] in rx.groupindex and m.group(n[0]) is not None)
            (ta, tb) = m.group(names[0], names[1])
            unit = _unit(text, m.end(names[1])) or _unit(text, m.end(names[0]))
            x, y = _value(ta), _value(tb)
            if not any(_matches(ta, x, unit, p, mm) and _matches(tb, y, unit, c, mm) for p, c, mm in pairs):
                out.append((m.group(0).lower(), f"'{m.group(0)}': no change of the cited result went from {ta} to {tb}"))
    return out


def _tagged(text: str, pairs: Pairs) -> Iterable[tuple[str, str, float, str | None]]:
    """(role 'was' / 'now' / 'was?' (only 'was'), token, number, unit) of each number a segment of the sentence
    says is the prior or current value of a change (a segment with one end of a cited change in it)."""
    for seg in _SEGMENT.split(text):
        if not seg or not seg.strip():
            continue
        ends = [(tok, x, u) for tok, x, u in written_numbers(seg) if u != PERCENT
                and not _NOT_AN_END.match(seg, seg.find(tok) + len(tok))
                and not re.search(r"\bby\s*$", seg[:seg.find(tok)], re.IGNORECASE)
                and any(_matches(tok, x, u, v, mm) for p, c, mm in pairs for v in (p, c))]
        if len(ends) != 1:
            continue
        tok, x, u = ends[0]
        then = _THEN.search(seg)
        was = bool(_WAS.search(seg) or (then and then.start() > seg.find(tok)))  # '5 then' / 'then 2'
        now = bool(_NOW.search(seg) or (then and then.start() < seg.find(tok)))
        if was != now:
            yield ("was" if was else "now"), tok, x, u
        elif not was and _WAS_WEAK.search(seg):
            yield "was?", tok, x, u


def role_claims(text: str, pairs: Pairs) -> list[tuple[str, str]]:
    """(number token, reason) of a number said to be the prior (current) value that is no prior (current) end of a cited change, and
    a prior and a current value written together that are not the ends of one cited change."""
    tags = list(_tagged(text, pairs))
    out = []
    for role, tok, x, u in tags:
        if role == "was?":
            continue
        k = 0 if role == "was" else 1
        if not any(_matches(tok, x, u, pc[k], pc[2]) for pc in pairs):
            out.append((tok, f"number {tok}: no change of the cited result has it as its "
                       f"{'prior' if role == 'was' else 'current'} value"))
    prior = next((t for t in tags if t[0] in ("was", "was?")), None)
    now = next((t for t in tags if t[0] == "now"), None)
    if not out and prior and now and not any(_matches(prior[1], prior[2], prior[3], p, mm) and
                                             _matches(now[1], now[2], now[3], c, mm) for p, c, mm in pairs):
        out.append((now[1], f"'{prior[1]}' before, '{now[1]}' now: no change of the cited result went from "
                            f"{prior[1]} to {now[1]}"))
    return out
