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
from .normalize import normalize

__all__ = ["LIVE_COMMANDS", "LIVE_SET", "parse_live", "hear_spoken", "is_live_command", "LIVE_PROMPT"]

LIVE_COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("freeze", "control", "(freeze [(the | this) (frame | image | picture | video)] | hold (the | this) "
                "(frame | image | picture))", None, "hold the current frame"),
    CommandSpec("unfreeze", "control", "(unfreeze [(the | this) (frame | image | picture | video)] | resume [live] | "
                "go live | back to live)", None, "follow the live video again"),
    CommandSpec("compare_ago", "question", "(compare | compared) [it | this] (with | to) [the frame from] <ago> ago",
                "Compare with the prior.", "prior comparison of the frame <ago> seconds ago with now"),
    CommandSpec("outline", "question", "(outline | segment) (it | that | this | that one | this one | [the] (polyp | "
                "polyps | lesion | lesions))", "Segment the polyp.", "segment what the smoothed detection shows"),
)
LIVE_SET: tuple[CommandSpec, ...] = LIVE_COMMANDS + COMMANDS

# Whisper's initial prompt in live mode: the live words next to the still-image ones.
# No "voice commands:" header: Whisper echoed it on noise.  No whole command of six words or more (those
# would be dropped as prompt echoes).
# The count targets are all named: with polyps alone, "platelets" was heard as "polyps" (run 1 of bench_unseen).
LIVE_PROMPT = ("Osler, freeze. Unfreeze. Osler, outline it. How big is it? How many polyps, white cells or platelets "
               "are visible? Is there a polyp? Compare with ten seconds ago. Compare with a minute ago. Segment the "
               "lesion. Cancel.")

# Push-to-talk only: first words Whisper writes for a spoken "Osler" (measured on espeak accents).  The key
# press already addresses Osler, so such a word is dropped when the rest is a whole command.
_WAKE_SOUNDALIKES = frozenset({"awesome", "also", "oslo", "hustler", "ozzler", "osler's", "ossla", "oscar"})


# "unfreeze" is often heard as "and freeze" / "in freeze": a freeze right after such a word is ambiguous
_UNFREEZE_SOUNDALIKES = frozenset({"and", "an", "in", "on", "un", "um", "then"})


def hear_spoken(transcript: str, wake_word: str = "osler") -> tuple[str, Command | None, str | None]:
    """(text after the wake word, the live command or None, why it was rejected) of a push-to-talk
    transcript.  Besides the strict grammar, a "freeze" right after a word that "unfreeze" is misheard as
    ("and freeze") is rejected as ambiguous: freezing when the surgeon asked to go live is a wrong command.
    A first word that is a known mishearing of "Osler" ("Awesome", "Also") is read as the wake word."""
    words = normalize(transcript).split()
    if words and words[0] in _WAKE_SOUNDALIKES and wake_word.lower() == "osler":
        transcript = " ".join([wake_word] + words[1:])
    g = gate(transcript, "ptt", wake_word)
    if not g.text:
        return "", None, "no words recognised"
    cmd = parse_live(g.text)
    if cmd is None:
        return g.text, None, "not a complete command: rejected, nothing done"
    if cmd.intent == "freeze":
        words = normalize(transcript).split()
        k = words.index("freeze") if "freeze" in words else -1
        if k > 0 and words[k - 1] in _UNFREEZE_SOUNDALIKES:
            return g.text, None, f"'{words[k - 1]} freeze' may be 'unfreeze': ambiguous, rejected"
    return g.text, cmd, None


def parse_live(transcript: str) -> Command | None:
    """The live command the whole (wake-word-stripped) transcript says, or None."""
    return parse_command(transcript, LIVE_SET)


def is_live_command(text: str, wake_word: str = "osler") -> bool:
    """True when ``text`` (a raw transcript, push-to-talk) is a whole live command: the grammar the
    Whisper n-best list is rescored against in live mode."""
    return hear_spoken(text, wake_word)[1] is not None
