"""What a speech recogniser hears, and the interface every recogniser backend implements.

Its own module so that the backends (:mod:`voice.asr_whisper`, ...) and the registry in
:mod:`voice.asr` that imports them do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .audio import Audio

__all__ = ["Transcript", "Recognizer"]


@dataclass(frozen=True)
class Transcript:
    """What a recogniser heard.  ``text`` is raw (not normalised); '' when it heard nothing."""

    text: str
    backend: str
    model: str
    elapsed_ms: float
    audio_s: float
    confidence: float | None = None  # backend-specific: whisper exp(avg_logprob), sphinx posterior
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Recognizer(Protocol):
    """A speech recogniser.  ``load`` is lazy and idempotent, the only place a model is read."""

    name: str

    def load(self) -> None: ...

    def transcribe(self, audio: Audio) -> Transcript:
        """``audio``: 16 kHz mono float32 (see :func:`voice.audio.prepare`)."""
        ...
