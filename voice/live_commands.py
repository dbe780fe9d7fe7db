"""Spoken commands of the live video mode, parsed as strictly as :mod:`voice.commands`.

The live command set is the still-image set (:data:`voice.commands.COMMANDS`) with these in front:

==================================================================  ==========================================
say                                                                 does
==================================================================  ==========================================
freeze / freeze the frame / hold the frame                          the view and the questions stay on this frame
unfreeze / resume / go live / back to live                          follow the video again
compare with <N seconds / a minute> ago                             prior comparison: the frame N s ago vs now
outline it / segment it / outline the polyp / segment the lesion    segmenter prompted by the smoothed detection
==================================================================  ==========================================

"how big is it" (``measure``) and the counting and detection questions come from the still-image set.
Anything that is not a whole command is rejected, never guessed (same rule as the still-image mode).
"""

from __future__ import annotations

from .activation import gate
from .commands import COMMANDS, Command, CommandSpec, parse_command

__all__ = ["LIVE_COMMANDS", "LIVE_SET", "parse_live", "is_live_command", "LIVE_PROMPT"]

LIVE_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("freeze", "control", "(freeze [(the | this) (frame | image | picture | video)] | hold (the | this) "
                "(frame | image | picture))", None, "hold the current frame"),
    CommandSpec("unfreeze", "control", "(unfreeze [(the | this) (frame | image | picture | video)] | resume [live] | "
                "go live | back to live)", None, "follow the live video again"),
    CommandSpec("compare_ago", "question", "(compare | compared) [it | this] (with | to) [the frame from] <ago> ago",
                "Compare with the prior.", "prior comparison of the frame <ago> seconds ago with now"),
    CommandSpec("outline", "question", "(outline | segment) (it | that | this | that one | this one | the polyp | "
                "the lesion)", "Segment the polyp.", "segment what the smoothed detection shows"),
)
LIVE_SET: tuple[CommandSpec, ...] = LIVE_COMMANDS + COMMANDS

# Whisper's initial prompt in live mode: the live words next to the still-image ones.
LIVE_PROMPT = ("Osler voice commands: freeze. Unfreeze. How many polyps are visible? Is there a polyp? Outline it. "
               "How big is it? Compare with ten seconds ago. Compare with a minute ago. Segment the lesion. Cancel.")


def parse_live(transcript: str) -> Command | None:
    """The live command the whole (wake-word-stripped) transcript says, or None."""
    return parse_command(transcript, LIVE_SET)


def is_live_command(text: str, wake_word: str = "osler") -> bool:
    """True when ``text`` (a raw transcript, push-to-talk) is a whole live command: the grammar the
    Whisper n-best list is rescored against in live mode."""
    g = gate(text, "ptt", wake_word)
    return bool(g.text) and parse_live(g.text) is not None
