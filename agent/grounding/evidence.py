"""What each evidence id of an ask backs, read once from its tool result and its call: numbers, millimetres,
percentages, label text, counts by class, the (prior, current) ends of its changes and their classes, which ways
its changes went, signed and per-cent changes, intervals in days, scores, fractions, box sizes, and the arguments
and error of the call.  The per-sentence step (:mod:`agent.grounding.sentence`) checks sentences against these."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from pydantic import BaseModel

from tools.answer import ToolCallRecord

from agent.grounding.classes import decided_label
from agent.grounding.numbers import evidence_numbers, millimetre_numbers, numbers_in, percent_numbers
from agent.grounding.quantities import box_sizes, fraction_numbers, score_numbers, strip_positions
from agent.grounding.terms import _words

__all__ = ["_Backing", "_backings"]

_STATUS_TREND = {"new": "up", "grown": "up", "shrunk": "down", "resolved": "down", "unchanged": "same"}


def _pairs(obj: Any, out: list[tuple[float, float, bool]], labels: list[str] | None = None) -> None:
    """The (prior, current, in millimetres) ends of every change a result reports: count changes
    (``prior``/``current``) and a finding's ``prior_X``/``current_X`` fields (area, diameter, mm²); ``labels``
    gets each pair's class (lower case, '' when the change names none)."""
    def num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    labels = labels if labels is not None else []
    if isinstance(obj, dict):
        label = str(obj.get("label") or "").lower()
        if num(obj.get("prior")) and num(obj.get("current")):
            out.append((float(obj["prior"]), float(obj["current"]), False))
            labels.append(label)
        for k, v in obj.items():
            if str(k).startswith("prior_") and num(v) and num(obj.get("current_" + k[6:])):
                out.append((float(v), float(obj["current_" + k[6:]]), bool(re.search(r"_mm2?$", k))))
                labels.append(label)
        for v in obj.values():
            _pairs(v, out, labels)
    elif isinstance(obj, list):
        for v in obj:
            _pairs(v, out, labels)


def _trends(obj: Any, out: set[str]) -> None:
    """Which ways the changes a result reports went: 'up', 'down', 'same' (count deltas, area and diameter
    changes, a finding's new/grown/shrunk/resolved/unchanged status)."""
    if isinstance(obj, dict):
        if "index" in obj and isinstance(obj.get("status"), str) and obj["status"] in _STATUS_TREND:  # FindingChange
            out.add(_STATUS_TREND[obj["status"]])
            if obj["status"] == "resolved":
                out.add("gone")
        if obj.get("current") == 0 and isinstance(obj.get("prior"), int) and obj["prior"] > 0:  # a count that fell to 0
            out.add("gone")
        for key in ("delta", "area_change_pct", "diameter_change_pct"):
            v = obj.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.add("up" if v > 0 else "down" if v < 0 else "same")
        for v in obj.values():
            _trends(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _trends(v, out)


_SIGNED_KEYS = ("delta", "area_change_pct", "diameter_change_pct", "lung_opacity_change")


def _numeric_fields(obj: Any, keep: Callable[[str], bool]) -> Iterable[tuple[dict, float]]:
    """(the dict, its number) of every numeric field, at any depth, whose name ``keep`` accepts."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if keep(str(k)) and isinstance(v, (int, float)) and not isinstance(v, bool):
                yield obj, float(v)
            else:
                yield from _numeric_fields(v, keep)
    elif isinstance(obj, list):
        for v in obj:
            yield from _numeric_fields(v, keep)


def _signed(obj: Any) -> list[float]:
    """Every change a result reports with its sign: count deltas, area and diameter changes, the opacity change."""
    return [v for _, v in _numeric_fields(obj, lambda k: k in _SIGNED_KEYS)]


def _change_pct(obj: Any) -> list[tuple[str, float]]:
    """(class, per cent) of every change a result reports in per cent (a finding's area or diameter change)."""
    return [(str(d.get("label") or "").lower(), v)
            for d, v in _numeric_fields(obj, lambda k: k in ("area_change_pct", "diameter_change_pct"))]


def _day_numbers(obj: Any) -> list[float]:
    """The numbers of every field whose name speaks of days ('interval_days'): what an interval in days cites."""
    return [abs(v) for _, v in _numeric_fields(obj, lambda k: re.search(r"days?\b|_days?_", k) is not None)]


def _strings(obj: Any) -> Iterable[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _strings(v)
    elif isinstance(obj, str):
        yield obj


def _counts(obj: Any, out: dict[str, set[int]]) -> None:
    """Every count a result states, by class ('*': any class): class counts and totals, detections,
    regions and changes per label and per target, count changes (prior, current, |delta|)."""
    def add(label: Any, n: Any) -> None:
        if isinstance(n, int) and not isinstance(n, bool):
            out.setdefault(str(label).lower().replace("_", " "), set()).add(abs(n))
            out.setdefault("*", set()).add(abs(n))

    if isinstance(obj, dict):
        if "label" in obj and "count" in obj:
            add(obj["label"], obj["count"])
        if isinstance(obj.get("index"), int) and not isinstance(obj["index"], bool):  # 'polyp #2'
            out.setdefault("#", set()).add(obj["index"])
        if "counts" in obj and "total" in obj:
            add("*", obj["total"])
        if {"label", "prior", "current", "delta"} <= obj.keys():
            for k in ("prior", "current", "delta"):
                add(obj["label"], obj[k])
        for key in ("detections", "regions", "changes"):
            items = obj.get(key)
            if isinstance(items, list):
                if obj.get("target"):
                    add(obj["target"], len(items))
                add("*", len(items))
                labels = Counter(str(i.get("label", "")) for i in items if isinstance(i, dict))
                for lab, n in labels.items():
                    add(lab, n)
                if key == "changes":
                    for (lab, st), n in Counter((str(i.get("label")), str(i.get("status"))) for i in items
                                                if isinstance(i, dict)).items():
                        add(lab, n)
                        add(st, n)
        for v in obj.values():
            _counts(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _counts(v, out)


@dataclass
class _Backing:
    """What one evidence id backs."""

    numbers: list[float] = field(default_factory=list)
    mm: list[float] = field(default_factory=list)  # the numbers of its millimetre fields (*_mm, *_mm2)
    pct: list[float] = field(default_factory=list)  # the percentages it states (numbers.percent_numbers)
    pairs: list[tuple[float, float, bool]] = field(default_factory=list)  # its changes' ends (_pairs)
    pair_labels: list[str] = field(default_factory=list)  # the class of each of them
    text: str = " "  # labels and fields of the result (provenance left out)
    args_numbers: list[float] = field(default_factory=list)
    args_pct: list[float] = field(default_factory=list)
    args_text: str = " "
    counts: dict[str, set[int]] = field(default_factory=dict)
    trends: set[str] = field(default_factory=set)  # which ways the changes it reports went (_trends)
    error: str | None = None  # a failed call: its message
    label: str | None = None  # the class a classifier decided (classes.decided_label)
    positions: list[float] = field(default_factory=list)  # box corners, centroids, points: only for positions
    scores: list[float] = field(default_factory=list)  # scores and probabilities (quantities.score_numbers)
    fractions: list[float] = field(default_factory=list)  # fractions it states, settings left out
    box_sizes: list[float] = field(default_factory=list)  # widths, heights, areas of its boxes: only for sizes
    probs: dict[str, float] = field(default_factory=dict)  # a classification's probabilities
    signed: list[float] = field(default_factory=list)  # its changes with their signs (delta, *_change_pct, ...)
    change_pct: list[tuple[str, float]] = field(default_factory=list)  # (class, per-cent change) of its changes
    days: list[float] | None = None  # the numbers of its fields named for days (interval_days): None when it has none
    data: Any = None  # the result itself, as JSON (read again by the yes / no check)


def _backings(results: dict[str, Any], calls: Iterable[ToolCallRecord]) -> dict[str, _Backing]:
    out: dict[str, _Backing] = {}
    for eid, r in results.items():
        data = r.model_dump(mode="json") if isinstance(r, BaseModel) else r
        b = out.setdefault(eid, _Backing())
        b.data = data
        if isinstance(data, dict):
            prov = data.get("provenance") if isinstance(data.get("provenance"), dict) else {}
            body = {k: v for k, v in data.items() if k != "provenance"}
            named = " ".join(str(v) for v in prov.values() if isinstance(v, str))  # model names, the note
            sized, b.positions = strip_positions(body)  # a box corner is no quantity ('40 years old')
            b.numbers = evidence_numbers([sized]) + [x for _, x in numbers_in(named)]
            b.box_sizes = box_sizes(body)
            if isinstance(body.get("probabilities"), dict):
                b.probs = {str(k): float(v) for k, v in body["probabilities"].items() if isinstance(v, (int, float))}
            b.mm = millimetre_numbers(body)
            b.pct = percent_numbers(sized)
            b.scores = score_numbers(body)
            b.fractions = fraction_numbers(sized)
            _pairs(body, b.pairs, b.pair_labels)
            b.days = _day_numbers(body) or None
            b.text = _words(" ".join([*_strings(body), str(prov.get("doubt") or "")]))  # the expert's own doubt
            b.label = decided_label(body)
            _counts(body, b.counts)
            _trends(body, b.trends)
            b.signed = _signed(body)
            b.change_pct = _change_pct(body)
        else:
            b.numbers = evidence_numbers([data])
            b.pct = percent_numbers(data)
            b.text = _words(str(data))
    for c in calls:
        b = out.setdefault(c.id, _Backing())
        b.args_numbers = evidence_numbers([c.args])
        b.args_pct = percent_numbers(c.args)
        b.args_text = _words(" ".join(_strings(c.args)))
        if not c.ok:
            b.error = c.error or c.summary
    return out
