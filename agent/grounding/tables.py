"""Markdown tables of a prior and a current value, read as the sentences they stand for.

A table's cells carry no role words beside their numbers, so "| WBC | 2 | 5 |" under "| | prior | current |" had
been checked as the bag of numbers {2, 5} and passed on a result reporting a fall from 5 to 2 (a lying planner's
probe, 2026-12-03).  Each row (or, with the roles as rows, each column) of a table whose header names a prior and a
current column is read as "<label>: prior <a>, current <b>", which the change checks of :mod:`agent.grounding.sentence`
hold to the cited order.
"""

from __future__ import annotations

import re

__all__ = ["table_readings"]

_PRIOR = re.compile(r"\b(prior|before|previous(?:ly)?|earlier|baseline|initial)\b", re.I)
_CURRENT = re.compile(r"\b(current|now|today|follow[- ]?up|latest|most recent|this study)\b", re.I)
"""Role words of a header cell (not 'first' / 'second' / 'new': a table of two polyps or of new lesions has no roles)."""
_NUMBER = re.compile(r"[-+−]?\d[\d,]*(?:\.\d+)?")


def _cells(line: str) -> list[str]:
    return [c.strip().strip("*_` ").strip() for c in line.strip().strip("|").split("|")]


def _role(cell: str) -> str | None:
    prior, current = _PRIOR.search(cell), _CURRENT.search(cell)
    if bool(prior) == bool(current):
        return None
    return "prior" if prior else "current"


def _tables(text: str) -> list[list[list[str]]]:
    """Every markdown table of ``text``: rows of cells, header first, the separator row left out."""
    out, block = [], []
    for line in text.splitlines() + [""]:
        if line.strip().startswith("|") and line.count("|") >= 2:
            block.append(line)
            continue
        if len(block) >= 3 and re.fullmatch(r"[\s|:\-]+", block[1]):
            out.append([_cells(block[0])] + [_cells(r) for r in block[2:]])
        block = []
    return out


def _pair(label: str, a: str, b: str) -> str | None:
    if not (_NUMBER.search(a) and _NUMBER.search(b)) or not label:
        return None
    return f"{label}: prior {a}, current {b}."


def table_readings(text: str) -> list[str]:
    """'<label>: prior <a>, current <b>.' for every labelled pair of numbers that a table of ``text`` puts in a prior
    and a current column (or row); empty when no table names both roles."""
    out: list[str] = []
    for rows in _tables(text):
        header, body = rows[0], rows[1:]
        cols = {_role(c): i for i, c in enumerate(header) if _role(c)}
        if {"prior", "current"} <= set(cols):  # roles as columns: one pair per row, labelled by its first cell
            p, c = cols["prior"], cols["current"]
            for r in body:
                if max(p, c) < len(r):
                    label = next((x for i, x in enumerate(r) if i not in (p, c) and x and not _NUMBER.fullmatch(x)), "")
                    out += filter(None, [_pair(label, r[p], r[c])])
            continue
        roles = {_role(r[0]): r for r in body if r and _role(r[0])}
        if {"prior", "current"} <= set(roles):  # roles as rows: one pair per column, labelled by the header
            pr, cr = roles["prior"], roles["current"]
            for j, label in enumerate(header[1:], start=1):
                if j < len(pr) and j < len(cr):
                    out += filter(None, [_pair(label, pr[j], cr[j])])
    return out
