"""Test material of the voice benchmark: spoken commands and chatter by several synthetic voices,
human recordings (Debian ``pocketsphinx-testdata``), operating-room-like noise and the mixing.

All audio is float32 mono at 16 kHz.  Synthetic speech is cached under ``cache_dir`` by voice and
text.  Noise types:

* ``pink``: 1/f noise (ventilation, suction, air handling);
* ``beeps``: monitor tones (pulse oximeter 880 Hz blips every 0.9 s, a three-tone alarm every 4 s);
* ``babble``: four other synthetic talkers saying OR chatter at once (the hardest case);
* ``crowd``: babble of four other talkers (variants of the command spotter's held-out families, never trained
  on) saying other chatter: the grammar benchmark's check that the spotter did not learn the babble above;
* ``reverb`` (a condition, not a noise): a synthetic room impulse response, RT60 0.5 s.

Mixing: speechbrain's ``AddNoise`` / ``AddReverb`` (its SNR is over the whole clip) when
speechbrain imports offline, else numpy at the active-speech level and scipy convolution.  ``mixer_name()`` says which ran.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .audio import ASR_RATE, read_audio, resample, speech_bounds

__all__ = ["VOICES", "DEFAULT_VOICES", "COMMAND_SET", "CHATTER", "BABBLE_VOICES", "CROWD_VOICES", "CROWD_CHATTER", "synth", "talk_segment", "make_noise",
           "human_clips", "Mixer", "NOISE_TYPES", "room_impulse_response", "mix_at_snr"]

log = logging.getLogger(__name__)


# name -> (engine, voice, speed): espeak speed in words/minute, piper length scale
VOICES: dict[str, tuple[str, str, float]] = {
    "espeak-us": ("espeak", "en-us", 150),
    "piper-joe": ("piper", "joe", 1.0),
    "espeak-gb-f": ("espeak", "en-gb-x-rp+f3", 165),
    "espeak-us-fast": ("espeak", "en-us+m3", 185),
    "espeak-scot": ("espeak", "en-gb-scotland+f2", 140),
    "piper-joe-fast": ("piper", "joe", 0.85),
}
DEFAULT_VOICES = ("espeak-us", "piper-joe")
BABBLE_VOICES = ("en-us+m1", "en-gb+f4", "en-us-nyc", "en-029+m2")
# talkers of the crowd noise: held-out families of training/train_spotter.py (no model was trained on them)
CROWD_VOICES = ("en-gb-x-gbcwmd+klatt3", "en-us-nyc+klatt5", "en-gb-x-gbclan+RicishayMax2", "en-gb-x-gbcwmd+Storm")

# (spoken command without the wake word, intent, slots); the first 12 form the default run
COMMAND_SET: list[tuple[str, str, dict[str, str]]] = [
    ("how many white cells are visible", "count", {"count_target": "white cells"}),
    ("is there a polyp", "detect_polyp", {}),
    ("how many platelets are visible", "count", {"count_target": "platelets"}),
    ("segment the lesion", "segment", {"seg_target": "lesion"}),
    ("how big is it", "measure", {}),
    ("compare with the prior", "compare", {}),
    ("what kind of image is this", "image_kind", {}),
    ("is there pneumonia", "pneumonia", {}),
    ("how many polyps are visible", "count", {"count_target": "polyps"}),
    ("load the prior", "load_prior", {}),
    ("cancel", "cancel", {}),
    ("yes", "yes", {}),
    ("how many red cells are visible", "count", {"count_target": "red cells"}),
    ("how many cells are visible", "count", {"count_target": "cells"}),
    ("segment the polyp", "segment", {"seg_target": "polyp"}),
    ("segment the lung", "segment", {"seg_target": "lung"}),
    ("what changed", "changes", {}),
    ("is this normal", "normal", {}),
    ("read back the last finding", "read_back", {}),
    ("repeat", "repeat", {}),
    ("louder", "louder", {}),
    ("no", "no", {}),
    ("switch image to next", "switch_image", {"direction": "next"}),
    ("switch image to previous", "switch_image", {"direction": "previous"}),
    ("clear", "clear", {}),
]

# Operating-room talk without the wake word: must never trigger anything in hands-free mode.
CHATTER = [
    "Can you pass me the retractor please.",
    "Suction please, and a bit more light over here.",
    "How many sponges do we have on the table?",
    "Count the swabs before we close.",
    "Is there any more saline in the warmer?",
    "The blood pressure is stable, heart rate eighty.",
    "Clear the tray when you have a moment.",
    "Next patient is in bay three after lunch.",
    "Ask Oscar to bring the other scope.",
    "Let us irrigate and check the margins again.",
    "Can someone segment the schedule for tomorrow.",
    "I think the prior case ran over by an hour.",
]

NOISE_TYPES = ("pink", "beeps", "babble")
RT60_S = 0.5  # a tiled operating theatre; the "reverb" condition has no SNR


def _cache_path(cache_dir: Path, voice: str, text: str) -> Path:
    return cache_dir / f"{voice}-{hashlib.sha1(text.encode()).hexdigest()[:12]}.wav"


def _espeak(text: str, voice: str, wpm: float, pitch: int | None = None) -> np.ndarray:
    import io

    import soundfile as sf

    cmd = ["espeak-ng", "-v", voice, "-s", str(int(wpm))] + (["-p", str(pitch)] if pitch is not None else [])
    out = subprocess.run(cmd + ["--stdout", text], capture_output=True, check=True, timeout=60)
    data, rate = sf.read(io.BytesIO(out.stdout), dtype="float32")
    return resample(data, rate, ASR_RATE)


_PIPER: dict[str, Any] = {}


def _piper(text: str, length_scale: float, settings: Any) -> np.ndarray:
    from piper import PiperVoice, SynthesisConfig

    from .tts import piper_voice_path

    if "voice" not in _PIPER:
        _PIPER["voice"] = PiperVoice.load(str(piper_voice_path(settings)))
    v = _PIPER["voice"]
    chunks = list(v.synthesize(text, SynthesisConfig(length_scale=length_scale)))
    data = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32) * 0.7
    return resample(data, int(chunks[0].sample_rate), ASR_RATE)


def synth(text: str, voice: str, cache_dir: Path, settings: Any = None, wpm: int = 160) -> np.ndarray:
    """Speech of ``text`` by benchmark voice ``voice`` (an espeak-ng voice name at ``wpm`` words a minute when
    it is none of :data:`VOICES`; 16 kHz), 0.3 s of room tone either side (-60 dBFS:
    synthesisers write exact zeros, which no microphone does)."""
    import soundfile as sf

    p = _cache_path(cache_dir, voice, text)
    if p.exists():
        data, _ = sf.read(str(p), dtype="float32")
        return data
    engine, name, speed = VOICES[voice] if voice in VOICES else ("espeak", voice, wpm)
    x = _espeak(text, name, speed) if engine == "espeak" else _piper(text, speed, settings)
    pad = np.zeros(int(0.3 * ASR_RATE), np.float32)
    x = np.concatenate([pad, x, pad]).astype(np.float32)
    x += 1e-3 * np.random.default_rng(len(x)).standard_normal(len(x)).astype(np.float32)  # room tone, -60 dBFS
    cache_dir.mkdir(parents=True, exist_ok=True)
    sf.write(str(p), x, ASR_RATE, subtype="FLOAT")
    return x

# The crowd's talk (written for the 2026-12-02 babble check; in no training set)
CROWD_CHATTER = [
    "Has anyone seen the consent form for bed four.",
    "The porter is waiting outside with the next patient.",
    "We are short of size seven gloves again.",
    "Remind me to call the ward after this list.",
    "The registrar will be here in ten minutes.",
    "Did the lab ring back with the cross match.",
    "Turn the music down a little please.",
    "I think we should open another pack of gauze.",
    "The recovery room has two empty bays now.",
    "Who is doing the afternoon endoscopy list.",
]

# ---- noise ------------------------------------------------------------------------------------------
def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / ASR_RATE)
    spec[1:] /= np.sqrt(f[1:])
    spec[0] = 0
    x = np.fft.irfft(spec, n)
    return (x / (np.std(x) + 1e-9)).astype(np.float32)


def _beeps(n: int, rng: np.random.Generator) -> np.ndarray:
    x = np.zeros(n, np.float32)
    blip = int(0.12 * ASR_RATE)
    env = np.hanning(blip).astype(np.float32)
    tb = np.arange(blip) / ASR_RATE
    tone = (np.sin(2 * np.pi * 880 * tb) + 0.3 * np.sin(2 * np.pi * 1760 * tb)).astype(np.float32) * env
    start = int(rng.uniform(0, 0.9) * ASR_RATE)
    for s in range(start, n - blip, int(0.9 * ASR_RATE)):
        x[s:s + blip] += tone
    alarm_len = int(0.2 * ASR_RATE)
    ta = np.arange(alarm_len) / ASR_RATE
    aenv = np.hanning(alarm_len).astype(np.float32)
    for s in range(int(rng.uniform(0, 2) * ASR_RATE), n - 3 * alarm_len, int(4.0 * ASR_RATE)):
        for k, f0 in enumerate((523.0, 659.0, 784.0)):
            x[s + k * alarm_len:s + (k + 1) * alarm_len] += 0.8 * np.sin(2 * np.pi * f0 * ta).astype(np.float32) * aenv
    x += 0.01 * rng.standard_normal(n).astype(np.float32)  # the room is never digitally silent
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-9)


def talk_segment(talk: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of one talker's speech looped, from a random offset, at unit RMS (a babble voice)."""
    talk = np.tile(talk, int(np.ceil(n / len(talk))) + 1)
    off = int(rng.integers(0, len(talk) - n))
    seg = talk[off:off + n]
    return seg / (np.sqrt(np.mean(seg ** 2)) + 1e-9)


def _babble(n: int, rng: np.random.Generator, cache_dir: Path, voices: tuple[str, ...] = BABBLE_VOICES,
            chatter: list[str] = CHATTER) -> np.ndarray:
    x = np.zeros(n, np.float32)
    for k, v in enumerate(voices):
        x += talk_segment(np.concatenate([synth(s, v, cache_dir) for s in np.roll(chatter, 3 * k)]), n, rng)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-9)


def make_noise(kind: str, seconds: float, seed: int, cache_dir: Path) -> np.ndarray:
    """Unit-RMS noise of ``kind`` (see NOISE_TYPES), float32 (round(seconds * 16000),)."""
    n = int(seconds * ASR_RATE)
    rng = np.random.default_rng(seed)
    if kind == "pink":
        return _pink(n, rng)
    if kind == "beeps":
        return _beeps(n, rng)
    if kind == "babble":
        return _babble(n, rng, cache_dir)
    if kind == "crowd":
        return _babble(n, rng, cache_dir, CROWD_VOICES, CROWD_CHATTER)
    raise ValueError(f"unknown noise type {kind!r}")


def room_impulse_response(rt60_s: float = RT60_S, seed: int = 5) -> np.ndarray:
    """Synthetic RIR at 16 kHz: a direct path, then exponentially decaying noise (-60 dB at rt60)."""
    n = int(rt60_s * ASR_RATE)
    t = np.arange(n) / ASR_RATE
    tail = np.random.default_rng(seed).standard_normal(n) * np.exp(-6.908 * t / rt60_s) * 0.3
    tail[: int(0.004 * ASR_RATE)] = 0.0  # first reflections arrive after ~4 ms
    tail[0] = 1.0
    return (tail / np.sqrt(np.sum(tail ** 2))).astype(np.float32)


# ---- mixing -----------------------------------------------------------------------------------------
def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``clean`` plus unit-RMS ``noise`` (same length) at ``snr_db`` relative to the active speech, scaled down
    only when it would clip."""
    b = speech_bounds(clean, ASR_RATE)
    voiced = clean[b[0]:b[1]] if b else clean
    p_speech = float(np.mean(voiced.astype(np.float64) ** 2)) + 1e-12
    y = clean + np.sqrt(p_speech / (10 ** (snr_db / 10.0))) * noise
    peak = float(np.max(np.abs(y)))
    return (y / peak * 0.9 if peak > 0.95 else y).astype(np.float32)


class Mixer:
    """Adds noise at a given SNR.  speechbrain ``AddNoise`` when it imports, else numpy."""

    def __init__(self, cache_dir: Path, prefer_speechbrain: bool = True, noise_seconds: float = 30.0) -> None:
        self.cache_dir = cache_dir
        self.noise_seconds = noise_seconds
        self.noise = {k: make_noise(k, noise_seconds, 100 + i, cache_dir) for i, k in enumerate(NOISE_TYPES)}
        self._sb: dict[str, Any] = {}
        self._tmp: Path | None = None
        self.name = "numpy (active-speech SNR) + scipy reverb"
        if prefer_speechbrain:
            try:
                self._setup_speechbrain()
                self.name = "speechbrain.augment AddNoise + AddReverb (whole-clip SNR)"
            except Exception as exc:  # no speechbrain / torchaudio here: numpy mixing
                log.info("speechbrain augmentation unavailable (%s); numpy mixing", exc)
                self._sb = {}

    def _setup_speechbrain(self) -> None:
        import soundfile as sf
        from speechbrain.augment.time_domain import AddNoise

        self._tmp = Path(tempfile.mkdtemp(prefix="osler-noise-"))
        for kind, x in self.noise.items():
            wav = self._tmp / f"{kind}.wav"
            sf.write(str(wav), x * 0.1, ASR_RATE, subtype="FLOAT")
            csv = self._tmp / f"{kind}.csv"
            csv.write_text(f"ID,duration,wav,wav_format,wav_opts\n{kind},{len(x) / ASR_RATE:.2f},{wav},wav,\n")
            self._sb[kind] = (AddNoise, csv)
        from speechbrain.augment.time_domain import AddReverb

        rir = self._tmp / "rir.wav"
        sf.write(str(rir), room_impulse_response(), ASR_RATE, subtype="FLOAT")
        csv = self._tmp / "rir.csv"
        csv.write_text(f"ID,duration,wav,wav_format,wav_opts\nrir,{RT60_S:.2f},{rir},wav,\n")
        self._sb["reverb"] = (AddReverb, csv)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def mix(self, clean: np.ndarray, kind: str, snr_db: float, seed: int) -> np.ndarray:
        if kind == "clean":
            return clean
        if kind == "reverb":
            return self._reverb(clean, seed)
        if kind in self._sb:
            import torch

            cls, csv = self._sb[kind]
            torch.manual_seed(seed)
            aug = cls(csv_file=str(csv), snr_low=snr_db, snr_high=snr_db, noise_sample_rate=ASR_RATE,
                      clean_sample_rate=ASR_RATE)
            with torch.no_grad():
                y = aug(torch.from_numpy(clean)[None, :], torch.ones(1))[0].numpy()
            return np.clip(y, -1, 1).astype(np.float32)
        return self._mix_numpy(clean, kind, snr_db, seed)

    def _reverb(self, clean: np.ndarray, seed: int) -> np.ndarray:
        if self._sb:
            import torch

            cls, csv = self._sb["reverb"]
            torch.manual_seed(seed)
            aug = cls(csv_file=str(csv), reverb_sample_rate=ASR_RATE, clean_sample_rate=ASR_RATE)
            with torch.no_grad():
                y = aug(torch.from_numpy(clean)[None, :])[0].numpy()
        else:
            from scipy.signal import fftconvolve

            y = fftconvolve(clean, room_impulse_response())[: len(clean)]
            y *= np.max(np.abs(clean)) / (np.max(np.abs(y)) + 1e-9)
        return np.clip(y, -1, 1).astype(np.float32)

    def _mix_numpy(self, clean: np.ndarray, kind: str, snr_db: float, seed: int) -> np.ndarray:
        if kind not in self.noise:  # a noise outside NOISE_TYPES ("crowd"): made on first use
            self.noise[kind] = make_noise(kind, self.noise_seconds, 200, self.cache_dir)
        noise = self.noise[kind]
        rng = np.random.default_rng(seed)
        off = int(rng.integers(0, max(1, len(noise) - len(clean))))
        return mix_at_snr(clean, np.resize(noise[off:off + len(clean)], len(clean)), snr_db)

    def noise_only(self, kind: str, seconds: float, level: float, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        noise = self.noise[kind]
        n = int(seconds * ASR_RATE)
        off = int(rng.integers(0, max(1, len(noise) - n)))
        return (np.resize(noise[off:off + n], n) * level).astype(np.float32)


# ---- human recordings -------------------------------------------------------------------------------
TESTDATA = Path("/usr/share/pocketsphinx/test/data")


def human_clips(root: Path = TESTDATA) -> tuple[list[tuple[str, np.ndarray, str]], list[tuple[str, np.ndarray]]]:
    """(labelled [(name, samples, reference)], unlabelled [(name, samples)]) from Debian
    ``pocketsphinx-testdata`` (CMU, BSD-style; librivox excerpts are public domain).  Empty when
    the package is not installed (``apt-get install pocketsphinx-testdata``)."""
    labelled: list[tuple[str, np.ndarray, str]] = []
    unlabelled: list[tuple[str, np.ndarray]] = []
    if not root.exists():
        return labelled, unlabelled
    for sub, trans in (("cards", "cards/cards.transcription"), ("librivox", "librivox/transcription")):
        t = root / trans
        if not t.exists():
            continue
        for line in t.read_text().splitlines():
            if "(" not in line:
                continue
            ref = line.split("(")[0].replace("<s>", "").replace("</s>", "").strip()
            name = line.rsplit("(", 1)[1].rstrip(") ").strip()
            wav = root / sub / f"{name}.wav"
            if wav.exists():
                a = read_audio(wav)
                labelled.append((f"{sub}/{name}", resample(a.samples, a.sample_rate, ASR_RATE), ref))
    raw: dict[str, str | None] = {"goforward.raw": "go forward ten meters", "numbers.raw": None, "something.raw": None}
    for name, ref in raw.items():
        p = root / name
        if p.exists():
            x = np.fromfile(p, dtype="<i2").astype(np.float32) / 32768.0
            if ref:
                labelled.append((name, x, ref))
            else:
                unlabelled.append((name, x))
    return labelled, unlabelled

