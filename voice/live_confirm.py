"""Confirmation on doubt in live mode: the one proposal ("Did you mean: how many polyps? Say yes or no.") that may
wait for a reply.  A recognised "yes" within the timeout runs the proposed command on the frame of the utterance
that prompted it; "no", any other command, or the timeout drops it (:class:`voice.live_video.LiveEngine` decides
which; this module only keeps the proposal, thread-safe)."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Proposal", "Proposals", "prompt"]

log = logging.getLogger(__name__)


def prompt(spoken_form: str) -> str:
    """What Osler says: 'Did you mean: how many polyps? Say yes or no.' for 'How many polyps?'."""
    return f"Did you mean: {spoken_form[:1].lower()}{spoken_form[1:].rstrip('.?')}? Say yes or no."


@dataclass(frozen=True)
class Proposal:
    command: Any  # the voice.commands.Command proposed
    snap: Any  # the voice.live_video.Snapshot of the utterance it came from
    note: dict[str, Any]  # what the evidence shows: the spoken form, the meaning, the spotter's probability, the frame
    asked: float = field(default_factory=time.monotonic)


class Proposals:
    """At most one waiting proposal; it expires ``timeout_s`` after it was made."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._waiting: Proposal | None = None
        self._lock = threading.Lock()

    def offer(self, proposal: Proposal) -> None:
        with self._lock:
            self._waiting = proposal

    def waiting(self) -> Proposal | None:
        with self._lock:
            if self._waiting is not None and time.monotonic() - self._waiting.asked > self.timeout_s:
                log.info("proposal %s expired unanswered", self._waiting.note.get("proposed"))
                self._waiting = None
            return self._waiting

    def drop(self) -> None:
        with self._lock:
            self._waiting = None
