"""How tests read an answer's tool-call records.

An answer lists its calls in the order they finished (a nested call before the call that made it), so two calls
of one planner response, which run concurrently, may be listed either way.  Their evidence ids are reserved in
the planner's order, so tests that check which calls were made compare them in evidence-id order."""

from __future__ import annotations

from typing import Any


def in_planner_order(calls: list[Any]) -> list[Any]:
    """The call records sorted by evidence id ('E2' before 'E10')."""
    return sorted(calls, key=lambda c: int(c.id.lstrip("E")))
