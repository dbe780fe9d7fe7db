"""The dialog state machine: confirmation of state changes, cancel / repeat / louder, barge-in.

States and transitions (``DialogManager.handle``)::

    IDLE --question--> (ask the planner; speak the short answer)            --> IDLE
    IDLE --read back--> (speak the last full answer)                        --> IDLE
    IDLE --state change ("switch image to next", "load the prior", "clear")
         --> speak the read-back "Switch to the next image? Say yes or no." --> CONFIRMING
    CONFIRMING --yes--> execute the pending change                          --> IDLE
    CONFIRMING --no / cancel / timeout--> drop it ("Cancelled.")            --> IDLE
    CONFIRMING --any other command--> drop the pending change, handle that  --> IDLE
    CONFIRMING --not a command--> "Say yes or no."                          --> CONFIRMING
    any --yes/no with nothing pending--> "There is nothing to confirm."     --> IDLE
    any --repeat--> the last spoken answer again; --louder--> volume up, repeat it
    any --cancel--> stop speaking, drop anything pending

Barge-in: when new speech starts while an answer is playing, :meth:`DialogManager.barge_in`
says to stop the playback at once (the new utterance is then handled as usual).

The manager never acts by itself: it returns a :class:`Reply` saying what to say and what to do;
the pipeline asks the planner or executes the confirmed change.  The clock is injectable.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

from .answers import for_speech
from .commands import Command, confirmation_prompt

__all__ = ["Reply", "DialogManager", "DialogState"]

log = logging.getLogger(__name__)

DialogState = Literal["idle", "confirming"]
ReplyKind = Literal["ask", "say", "confirm", "execute", "rejected"]


@dataclass(frozen=True)
class Reply:
    """What to do about one utterance.

    kind: ``ask`` (send ``question`` to the planner), ``say`` (just speak ``say``), ``confirm``
    (a state change awaits "yes"; ``say`` is the read-back), ``execute`` (run ``command`` now, it
    was confirmed), ``rejected`` (not a command: nothing is acted on)."""

    kind: ReplyKind
    say: str = ""
    question: str | None = None
    command: Command | None = None
    notes: list[str] = field(default_factory=list)


class DialogManager:
    VOLUME_STEP = 1.4
    MAX_VOLUME = 2.0

    def __init__(self, confirm_timeout_s: float = 20.0, volume: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.confirm_timeout_s = confirm_timeout_s
        self.volume = volume
        self.clock = clock
        self.pending: Command | None = None
        self._pending_since = 0.0
        self.last_spoken: str | None = None
        self.last_full: str | None = None
        self.speaking = False

    @property
    def state(self) -> DialogState:
        return "confirming" if self._pending() is not None else "idle"

    def _pending(self) -> Command | None:
        if self.pending is not None and self.clock() - self._pending_since > self.confirm_timeout_s:
            log.info("pending %s expired unconfirmed", self.pending.intent)
            self.pending = None
        return self.pending

    def barge_in(self) -> bool:
        """New speech began.  True when an answer is playing and must stop now."""
        was = self.speaking
        self.speaking = False
        return was

    def record_answer(self, spoken: str, full: str | None = None) -> None:
        """Remember what was said (for 'repeat') and the full answer (for 'read back')."""
        self.last_spoken = spoken
        if full is not None:
            self.last_full = full

    def handle(self, command: Command | None, heard: str = "") -> Reply:
        """The reply to one activated utterance (``command`` None: it did not parse)."""
        pending = self._pending()
        if command is None:
            if pending is not None:
                return Reply("rejected", say="Say yes or no.", notes=[f"not a command: {heard!r}; still pending"])
            return Reply("rejected", say="Sorry, say that again.", notes=[f"not a command: {heard!r}"])
        intent = command.intent
        if pending is not None:
            if intent == "yes":
                self.pending = None
                return Reply("execute", command=pending)
            if intent in ("no", "cancel"):
                self.pending = None
                return Reply("say", say="Cancelled.", notes=[f"{pending.intent} not done"])
            if intent in ("repeat", "louder"):
                if intent == "louder":
                    self.volume = min(self.MAX_VOLUME, self.volume * self.VOLUME_STEP)
                return Reply("confirm", say=confirmation_prompt(pending), command=pending)
            self.pending = None
            log.info("pending %s dropped by a new command %s", pending.intent, intent)
        if intent in ("yes", "no"):
            return Reply("say", say="There is nothing to confirm.")
        if intent == "cancel":
            return Reply("say", say="Cancelled.")
        if intent == "repeat":
            return Reply("say", say=self.last_spoken or "Nothing to repeat yet.")
        if intent == "louder":
            self.volume = min(self.MAX_VOLUME, self.volume * self.VOLUME_STEP)
            return Reply("say", say=self.last_spoken or "Louder.", notes=[f"volume {self.volume:.2f}"])
        if intent == "read_back":
            return Reply("say", say=for_speech(self.last_full or "") or "There is no finding yet.")
        if command.kind == "state":
            self.pending, self._pending_since = command, self.clock()
            return Reply("confirm", say=confirmation_prompt(command), command=command)
        if command.kind == "question" and command.question:
            return Reply("ask", question=command.question, command=command)
        return Reply("rejected", say="Sorry, say that again.", notes=[f"unhandled intent {intent}"])
