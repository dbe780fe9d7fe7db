"""Activation: when an utterance counts as addressed to Osler.

Two modes:

* push-to-talk (``ptt``): the user held/pressed the key (a USB foot pedal sends a key) while
  speaking, so the utterance is addressed to Osler; a leading wake word is tolerated and removed.
* wake word (``wake``): hands-free listening; an utterance counts only when its transcript OPENS
  with the wake word ("Osler, how many polyps?").  Chatter without it does nothing.  The wake
  word is read from the recogniser's transcript (measured: 100% of clean commands caught, 2.8% of
  chatter falsely hit with Whisper; keyword spotting in pocketsphinx gave ~68 false alarms/hour).

Also here: :class:`Endpointer` (energy-based utterance segmentation for the live loop) and
:class:`KeyReader` (single key presses from a terminal, for push-to-talk).
"""

from __future__ import annotations

import logging
import select
import sys
from dataclasses import dataclass
from typing import Literal

import numpy as np

from .normalize import normalize

__all__ = ["Mode", "Gate", "gate", "wake_aliases", "Endpointer", "KeyReader"]

log = logging.getLogger(__name__)

Mode = Literal["ptt", "wake"]

# How recognisers have spelled "Osler" (measured on the benchmark's clips); a site with another
# wake word gets that word alone.
_OSLER_SPELLINGS = frozenset({"osler", "ossler", "ostler", "oslar", "osla", "ozler", "osler's"})
_LEADERS = frozenset({"hey", "okay", "ok", "hi", "hello"})
# Disfluencies a recogniser writes before the command ("So, how many ...", "Uh, cancel").  Dropped
# only in push-to-talk mode, at most two, never in the middle: they carry no command meaning.
_FILLERS = frozenset({"so", "uh", "um", "er", "erm", "ah", "oh", "and", "okay", "ok", "hey"})


def wake_aliases(wake_word: str) -> frozenset[str]:
    w = normalize(wake_word)
    return _OSLER_SPELLINGS if w == "osler" else frozenset({w})


@dataclass(frozen=True)
class Gate:
    """The activation verdict on one transcript."""

    activated: bool
    text: str  # normalised transcript without the wake word
    woke: bool  # the wake word was heard at the start
    reason: str = ""


def gate(transcript: str, mode: Mode, wake_word: str = "osler") -> Gate:
    """Decide whether a transcript is addressed to Osler; strip the wake word.

    Wake word must be the first word, or the second after "hey/okay".  A transcript that is only
    the wake word is an activation with no command (the caller may prompt "Yes?")."""
    words = normalize(transcript).split()
    aliases = wake_aliases(wake_word)
    idx = None
    if words and words[0] in aliases:
        idx = 0
    elif len(words) > 1 and words[0] in _LEADERS and words[1] in aliases:
        idx = 1
    woke = idx is not None
    rest = " ".join(words[idx + 1:] if woke else words)
    if mode == "ptt":
        rest_words = rest.split()
        for _ in range(2):
            if len(rest_words) > 1 and rest_words[0] in _FILLERS:
                rest_words = rest_words[1:]
        return Gate(True, " ".join(rest_words), woke, "push-to-talk")
    if woke:
        return Gate(True, rest, True, "wake word")
    return Gate(False, rest, False, "no wake word: ignored")


class Endpointer:
    """Streaming utterance segmentation by frame energy (the live wake-word loop).

    Feed float32 mono frames with :meth:`push`; it returns a finished utterance (float32 (N,)) when
    speech has been followed by ``end_silence_s`` of silence, else None.  Speech = a frame louder
    than the running noise floor by ``margin_db``.  A pre-roll keeps the first syllable."""

    def __init__(self, sample_rate: int, end_silence_s: float = 0.6, margin_db: float = 12.0,
                 max_seconds: float = 15.0, preroll_s: float = 0.3) -> None:
        self.sample_rate = sample_rate
        self.end_silence_s = end_silence_s
        self.margin_db = margin_db
        self.max_samples = int(max_seconds * sample_rate)
        self.preroll = int(preroll_s * sample_rate)
        self.floor_db = -60.0
        self._buf: list[np.ndarray] = []
        self._pre: np.ndarray = np.zeros(0, np.float32)
        self._speaking = False
        self._silence = 0
        self.speech_started = False  # set when speech begins (the caller may stop playback: barge-in)

    def push(self, frame: np.ndarray) -> np.ndarray | None:
        x = np.asarray(frame, np.float32).reshape(-1)
        level = 20.0 * np.log10(max(float(np.sqrt(np.mean(x.astype(np.float64) ** 2))) if x.size else 0.0, 1e-6))
        loud = level > self.floor_db + self.margin_db and level > -55.0
        if not self._speaking:
            # track the noise floor only outside speech, slowly upward, quickly downward
            self.floor_db = level if level < self.floor_db else 0.95 * self.floor_db + 0.05 * level
            self._pre = np.concatenate([self._pre, x])[-self.preroll:]
            if loud:
                self._speaking, self.speech_started = True, True
                self._buf, self._silence = [self._pre.copy()], 0
            return None
        self._buf.append(x)
        self._silence = 0 if loud else self._silence + len(x)
        total = sum(len(b) for b in self._buf)
        if self._silence >= self.end_silence_s * self.sample_rate or total >= self.max_samples:
            out = np.concatenate(self._buf)
            self._speaking, self._buf, self._pre = False, [], np.zeros(0, np.float32)
            return out
        return None


class KeyReader:
    """Single key presses from a terminal (cbreak mode), restored on exit.  Push-to-talk: the first
    press starts recording, the next press stops it (terminals report no key release).  A foot
    pedal that types a key works the same way."""

    def __init__(self, stream=None) -> None:
        self.stream = stream or sys.stdin
        self._saved = None

    def __enter__(self) -> "KeyReader":
        if self.stream.isatty():
            import termios
            import tty

            self._saved = termios.tcgetattr(self.stream.fileno())
            tty.setcbreak(self.stream.fileno())
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.stream.fileno(), termios.TCSADRAIN, self._saved)

    def poll(self, timeout_s: float = 0.05) -> str | None:
        """One pressed key, or None when none was pressed within ``timeout_s``."""
        ready, _, _ = select.select([self.stream], [], [], timeout_s)
        if not ready:
            return None
        ch = self.stream.read(1)
        return ch or None
