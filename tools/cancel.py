"""Cooperative cancellation of tool calls.

The tool boundary (:func:`agent.boundary.toolset.invoke`) runs every tool inside :func:`cancellable` with the
session's cancel event; when an ask runs past ``planner_timeout_s`` the assistant sets the event and
long-running work stops at its next :func:`check_cancelled` (experts call it between frames, tiles,
iterations), so a timed-out call neither keeps the CPU nor holds its memory, and its late result is
never recorded.  Outside a tool call :func:`check_cancelled` does nothing.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from .errors import ToolCancelledError

__all__ = ["cancellable", "check_cancelled", "is_cancelled"]

_EVENT: ContextVar[threading.Event | None] = ContextVar("osler_cancel_event", default=None)


@contextmanager
def cancellable(event: threading.Event) -> Iterator[None]:
    """Within this block, :func:`check_cancelled` raises once ``event`` is set."""
    token = _EVENT.set(event)
    try:
        yield
    finally:
        _EVENT.reset(token)


def is_cancelled() -> bool:
    event = _EVENT.get()
    return event is not None and event.is_set()


def check_cancelled() -> None:
    """Raise :class:`~tools.errors.ToolCancelledError` when the current tool call was cancelled."""
    if is_cancelled():
        raise ToolCancelledError("the tool call was cancelled: the planner's time limit (OSLER_PLANNER_TIMEOUT_S) "
                                 "ran out; its result is discarded")
