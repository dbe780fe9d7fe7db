"""Tried / handled / failed per category, for the reliability summary (printed by this folder's conftest).

A corpus case is one test (its outcome is the tally); a property test records every example it runs
through :func:`check`, which calls the parser and sorts the outcome: an expected, clear refusal or a
valid result is *handled*, anything else *failed* (and re-raised, so Hypothesis shrinks and reports it).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Callable

__all__ = ["TALLY", "record", "check", "summary_lines"]

TALLY: dict[str, Counter] = defaultdict(Counter)


def record(category: str, handled: bool) -> None:
    TALLY[category]["tried"] += 1
    TALLY[category]["handled" if handled else "failed"] += 1


def check(category: str, fn: Callable[[], Any], expected: tuple[type[BaseException], ...] = (),
          valid: Callable[[Any], bool] = lambda _: True) -> Any:
    """Run ``fn()``; an ``expected`` exception or a result ``valid`` accepts is handled, all else failed."""
    try:
        out = fn()
    except expected:
        record(category, True)
        return None
    except BaseException:
        record(category, False)
        raise
    ok = bool(valid(out))
    record(category, ok)
    assert ok, f"{category}: invalid result {out!r:.200}"
    return out


def summary_lines() -> list[str]:
    if not TALLY:
        return []
    width = max(len(c) for c in TALLY) + 2
    lines = [f"{'category':<{width}}{'tried':>8}{'handled':>9}{'failed':>8}"]
    total: Counter = Counter()
    for cat in sorted(TALLY):
        c = TALLY[cat]
        total.update(c)
        lines.append(f"{cat:<{width}}{c['tried']:>8}{c['handled']:>9}{c['failed']:>8}")
    lines.append(f"{'total':<{width}}{total['tried']:>8}{total['handled']:>9}{total['failed']:>8}")
    return lines
