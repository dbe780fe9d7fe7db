"""Audio in: read, check, resample.  Pure functions over float32 mono arrays.

Conventions: ``samples`` is float32, shape (N,), mono, full scale = 1.0; ``sample_rate`` in Hz.
Recognisers take 16 kHz (:data:`ASR_RATE`); espeak-ng and piper write 22050 Hz.  Files are read
with ``soundfile`` (never ``torchaudio.load``, which needs torchcodec here).

Every refusal is an :class:`~tools.errors.InvalidInputError` whose message says what to do; a
refused recording is never transcribed or acted on.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np

from tools.errors import InvalidInputError

from .config import VoiceSettings

__all__ = ["ASR_RATE", "Audio", "read_audio", "from_array", "resample", "check_audio", "prepare", "to_asr_rate",
           "frame_dbfs", "speech_bounds", "write_wav"]

ASR_RATE = 16000
FRAME_S = 0.03
MIN_SPEECH_S = 0.25
MAX_RATE = 192000


@dataclass(frozen=True)
class Audio:
    """One mono recording.  ``samples``: float32 (N,), full scale 1.0."""

    samples: np.ndarray
    sample_rate: int
    source: str = "array"

    @property
    def seconds(self) -> float:
        return float(len(self.samples)) / float(self.sample_rate) if self.sample_rate else 0.0


def from_array(samples: np.ndarray, sample_rate: int, source: str = "array") -> Audio:
    """Wrap an array: (N,) or (N, channels) float or int16 -> float32 mono."""
    x = np.asarray(samples)
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    x = x.astype(np.float32, copy=False)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise InvalidInputError(f"audio must be mono (N,) or (N, channels), not shape {x.shape}")
    return Audio(samples=np.ascontiguousarray(x), sample_rate=int(sample_rate), source=source)


def read_audio(path: str | Path) -> Audio:
    """Read a WAV/FLAC/OGG file.  Raises InvalidInputError for a missing, empty or non-audio file."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"audio file not found: {p}")
    if p.is_dir():
        raise InvalidInputError(f"{p} is a folder, not an audio file")
    if p.stat().st_size == 0:
        raise InvalidInputError(f"the audio file {p.name} is empty (0 bytes): record again")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError for non-audio
        raise InvalidInputError(
            f"{p.name} is not an audio file this build can read ({type(exc).__name__}); "
            "give a WAV, FLAC or OGG recording"
        ) from None
    if data.shape[0] == 0:
        raise InvalidInputError(f"the audio file {p.name} holds no samples: record again")
    return from_array(data, rate, source=p.name)


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased).  (N,) float32 -> (round(N * out / in),) float32."""
    if rate_in == rate_out:
        return samples.astype(np.float32, copy=False)
    from scipy.signal import resample_poly

    g = gcd(int(rate_in), int(rate_out))
    return resample_poly(samples, rate_out // g, rate_in // g).astype(np.float32)


def to_asr_rate(audio: Audio) -> Audio:
    return Audio(resample(audio.samples, audio.sample_rate, ASR_RATE), ASR_RATE, audio.source)


def frame_dbfs(samples: np.ndarray, sample_rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    """RMS level of consecutive frames in dBFS, shape (n_frames,); -120 for digital silence."""
    n = max(1, int(round(frame_s * sample_rate)))
    k = len(samples) // n
    if k == 0:
        frames = samples[None, :] if len(samples) else np.zeros((1, 1), np.float32)
    else:
        frames = samples[: k * n].reshape(k, n)
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    return 20.0 * np.log10(np.maximum(rms, 1e-6))


def speech_bounds(samples: np.ndarray, sample_rate: int, margin_db: float = 15.0) -> tuple[int, int] | None:
    """(first, last) sample index of the voiced part: frames louder than the noise floor (10th
    percentile frame level) by ``margin_db``, and louder than -55 dBFS.  None when none is."""
    levels = frame_dbfs(samples, sample_rate)
    floor = float(np.percentile(levels, 10))
    voiced = np.flatnonzero((levels > floor + margin_db) & (levels > -55.0))
    if voiced.size == 0:
        return None
    n = max(1, int(round(FRAME_S * sample_rate)))
    return int(voiced[0] * n), int(min(len(samples), (voiced[-1] + 1) * n))


def check_audio(audio: Audio, vs: VoiceSettings) -> None:
    """Refuse recordings that cannot carry a command.  Order: rate, length, silence, clipping."""
    name = audio.source
    if audio.sample_rate < vs.min_sample_rate:
        raise InvalidInputError(
            f"{name} was recorded at {audio.sample_rate} Hz, below the {vs.min_sample_rate} Hz speech recognition "
            f"needs (telephone-rate audio loses the consonants): record at 16 kHz or more"
        )
    if audio.sample_rate > MAX_RATE:
        raise InvalidInputError(f"{name} claims {audio.sample_rate} Hz, which is not a real recording rate")
    if audio.seconds < MIN_SPEECH_S:
        raise InvalidInputError(f"{name} is {audio.seconds:.2f} s long, too short for a command: hold the key "
                                "while you speak")
    if audio.seconds > vs.max_seconds:
        raise InvalidInputError(f"{name} is {audio.seconds:.0f} s long; one command is at most {vs.max_seconds:.0f} s")
    x = audio.samples
    if not np.all(np.isfinite(x)):
        raise InvalidInputError(f"{name} holds invalid samples (NaN or infinity): record again")
    levels = frame_dbfs(x, audio.sample_rate)
    if float(levels.max()) < vs.silence_dbfs:
        raise InvalidInputError(
            f"{name} is silent (loudest part {levels.max():.0f} dBFS): check that the microphone is on and unmuted"
        )
    voiced = np.abs(x) > 0.05
    n_clipped = int(np.count_nonzero(np.abs(x) >= 0.99))
    if voiced.any() and n_clipped / max(1, int(voiced.sum())) > vs.clip_fraction:
        raise InvalidInputError(
            f"{name} is clipped ({100.0 * n_clipped / voiced.sum():.1f}% of the speech at full scale): lower the "
            "microphone gain or move it further from the mouth, then speak again"
        )


def prepare(source: str | Path | Audio, vs: VoiceSettings) -> Audio:
    """Read (if a path), check, and resample to 16 kHz.  Raises InvalidInputError."""
    audio = source if isinstance(source, Audio) else read_audio(source)
    check_audio(audio, vs)
    return to_asr_rate(audio)


def denoise(audio: Audio, prop_decrease: float = 0.8) -> Audio:
    """Stationary spectral gating (``noisereduce``): the noise floor is estimated from the utterance itself
    (per-frequency statistics over time), then attenuated by ``prop_decrease``; speech above it passes.  Steady
    noise (fans, suction, a room of talkers averaged) is what it removes; a sudden sound is not."""
    try:
        import noisereduce
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ImportError("voice.denoise='stationary' needs the noisereduce package (pip install noisereduce)") from exc
    x = np.asarray(audio.samples, dtype=np.float32)
    if x.size < audio.sample_rate // 10:  # under 0.1 s: nothing to estimate a floor from
        return audio
    y = noisereduce.reduce_noise(y=x, sr=audio.sample_rate, stationary=True, prop_decrease=prop_decrease)
    return Audio(np.asarray(y, dtype=np.float32), audio.sample_rate, audio.source)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write float32 (N,) as 16-bit PCM WAV; returns the path."""
    import soundfile as sf

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(p), np.clip(samples, -1.0, 1.0), int(sample_rate), subtype="PCM_16")
    return p
