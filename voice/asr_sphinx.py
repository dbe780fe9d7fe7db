"""pocketsphinx recogniser constrained by the command grammar (JSGF from :mod:`voice.commands`).

The acoustic model and dictionary ship in the ``pocketsphinx`` wheel (CMU, BSD-2-Clause).  A
grammar decoder maps ANY sound to some sentence of the grammar (measured: 58% of chatter became a
command), so this backend is only safe behind push-to-talk or a wake word, and its output still
goes through the strict parser.  Every grammar word must be in the dictionary, otherwise
pocketsphinx fails to start with a bare "Failed to initialize PocketSphinx": :func:`check` says
which word is missing.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from tools.errors import ExpertFailedError

from .transcript import Transcript
from .audio import ASR_RATE, Audio
from .commands import jsgf_grammar, vocabulary
from .config import VoiceSettings

__all__ = ["SphinxRecognizer", "build", "check"]

log = logging.getLogger(__name__)


def _model_paths() -> tuple[Path, Path]:
    from pocketsphinx import get_model_path

    root = Path(get_model_path())
    return root / "en-us" / "en-us", root / "en-us" / "cmudict-en-us.dict"


def _dictionary_words(dict_path: Path) -> set[str]:
    with open(dict_path, encoding="utf-8") as fh:
        return {line.split(None, 1)[0].split("(")[0] for line in fh if line.strip()}


def check(settings: Any) -> str | None:
    if importlib.util.find_spec("pocketsphinx") is None:
        return "install pocketsphinx==5.1.1"
    hmm, dic = _model_paths()
    if not hmm.exists() or not dic.exists():
        return f"the pocketsphinx wheel lacks its en-us model ({hmm}); reinstall pocketsphinx==5.1.1"
    missing = sorted(vocabulary() - _dictionary_words(dic))
    if missing:
        return f"grammar words missing from the pocketsphinx dictionary: {', '.join(missing)}"
    return None


class SphinxRecognizer:
    name = "pocketsphinx"

    def __init__(self, settings: Any, vs: VoiceSettings) -> None:
        self.settings = settings
        self.vs = vs
        self._decoder = None
        self._lock = threading.Lock()
        self.model_id = "pocketsphinx:en-us+jsgf"

    def load(self) -> None:
        with self._lock:
            if self._decoder is not None:
                return
            reason = check(self.settings)
            if reason:
                raise ExpertFailedError(reason)
            from pocketsphinx import Decoder

            hmm, dic = _model_paths()
            try:
                dec = Decoder(hmm=str(hmm), dict=str(dic), samprate=ASR_RATE, loglevel="FATAL", lm=None)
                dec.add_jsgf_string("commands", jsgf_grammar(self.vs.wake_word))
                dec.activate_search("commands")
            except Exception as exc:
                raise ExpertFailedError(f"pocketsphinx could not start with the command grammar: {exc}") from exc
            self._decoder = dec

    def transcribe(self, audio: Audio) -> Transcript:
        if audio.sample_rate != ASR_RATE:
            raise ValueError("pocketsphinx expects 16 kHz audio (voice.audio.prepare)")
        self.load()
        # Digital silence (exact zeros, e.g. in synthesised or edited files) derails pocketsphinx's noise
        # tracking: add a fixed -60 dBFS dither, far below any real microphone's noise floor.
        dither = 1e-3 * np.random.default_rng(0).standard_normal(len(audio.samples)).astype(np.float32)
        pcm = (np.clip(audio.samples + dither, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        t0 = time.perf_counter()
        with self._lock:
            dec = self._decoder
            dec.start_utt()
            dec.process_raw(pcm, full_utt=True)
            dec.end_utt()
            hyp = dec.hyp()
            text = hyp.hypstr if hyp is not None else ""
            prob = None
            if hyp is not None:
                try:
                    prob = float(dec.logmath.exp(hyp.prob))
                except Exception:  # older bindings: no posterior in grammar mode
                    prob = None
        return Transcript(text=text or "", backend=self.name, model=self.model_id,
                          elapsed_ms=(time.perf_counter() - t0) * 1000, audio_s=audio.seconds, confidence=prob)


def build(settings: Any, vs: VoiceSettings) -> SphinxRecognizer:
    return SphinxRecognizer(settings, vs)
