"""speechbrain recogniser for sites that hold their own checkpoint folder.

Every speechbrain pretrained model is published on a model hub, which Osler never contacts: a
site copies a model folder (``hyperparams.yaml`` plus the checkpoint files it names) to disk and
sets ``models.speechbrain_asr_dir`` (``OSLER_MODELS__SPEECHBRAIN_ASR_DIR``).  The folder is loaded
with ``LocalStrategy.COPY`` (no symlinks into it) and ``FetchConfig(allow_network=False)``; a
``pretrained_path`` in the YAML is pointed at the folder itself.  A YAML that still names a hub
repository elsewhere is refused with the line to edit.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

from tools.errors import ExpertFailedError

from .transcript import Transcript
from .audio import ASR_RATE, Audio, resample
from .config import VoiceSettings

__all__ = ["SpeechBrainRecognizer", "build", "check"]

log = logging.getLogger(__name__)

SETTING = "models.speechbrain_asr_dir (OSLER_MODELS__SPEECHBRAIN_ASR_DIR)"
# "key: org/name" lines (a hub repository id); pretrained_path is overridden, so it is exempt
_HUB_REF = re.compile(r"^\s*(?!pretrained_path\b)([A-Za-z_]+)\s*:\s*['\"]?([\w-]+/[\w.-]+)['\"]?\s*$", re.M)


def _folder(settings: Any) -> Path | None:
    d = getattr(getattr(settings, "models", None), "speechbrain_asr_dir", None)
    return Path(d).expanduser() if d is not None else None


def check(settings: Any) -> str | None:
    d = _folder(settings)
    if d is None:
        return f"no speechbrain ASR folder configured: set {SETTING} to a local EncoderDecoderASR folder"
    if not (d / "hyperparams.yaml").exists():
        return f"{SETTING} = {d} has no hyperparams.yaml: copy the whole model folder there"
    if importlib.util.find_spec("speechbrain") is None:
        return "install speechbrain==1.1.2"
    text = (d / "hyperparams.yaml").read_text(encoding="utf-8", errors="replace")
    for m in _HUB_REF.finditer(text):
        key, value = m.group(1), m.group(2)
        if not (d / value).exists():
            return (f"{d / 'hyperparams.yaml'} names the hub repository '{value}' (key '{key}'); Osler never downloads: "
                    f"replace it with a path inside {d}")
    return None


class SpeechBrainRecognizer:
    name = "speechbrain"

    def __init__(self, settings: Any, vs: VoiceSettings) -> None:
        self.settings = settings
        self.vs = vs
        self._model = None
        self._rate = ASR_RATE
        self._lock = threading.Lock()
        self.model_id = ""

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            reason = check(self.settings)
            if reason:
                raise ExpertFailedError(reason)
            d = _folder(self.settings) or Path(".")
            from speechbrain.inference.ASR import EncoderDecoderASR
            from speechbrain.utils.fetching import FetchConfig, LocalStrategy

            text = (d / "hyperparams.yaml").read_text(encoding="utf-8", errors="replace")
            overrides = {"pretrained_path": str(d)} if re.search(r"^pretrained_path\s*:", text, re.M) else {}
            savedir = Path(getattr(self.settings, "data_dir", d)) / "voice" / "speechbrain_asr"
            try:
                self._model = EncoderDecoderASR.from_hparams(
                    source=str(d), savedir=str(savedir), overrides=overrides, local_strategy=LocalStrategy.COPY,
                    fetch_config=FetchConfig(allow_network=False), run_opts={"device": "cpu"},
                )
            except Exception as exc:
                raise ExpertFailedError(f"could not load the speechbrain ASR folder {d}: {exc}") from exc
            hp = getattr(self._model, "hparams", None)
            self._rate = int(getattr(hp, "sample_rate", ASR_RATE) or ASR_RATE)
            self.model_id = f"speechbrain:{d.name}"

    def transcribe(self, audio: Audio) -> Transcript:
        self.load()
        import torch

        x = resample(audio.samples, audio.sample_rate, self._rate)
        t0 = time.perf_counter()
        with self._lock, torch.inference_mode():
            words, _tokens = self._model.transcribe_batch(torch.from_numpy(x)[None, :], torch.tensor([1.0]))
        text = words[0] if isinstance(words[0], str) else " ".join(words[0])
        return Transcript(text=text.strip(), backend=self.name, model=self.model_id,
                          elapsed_ms=(time.perf_counter() - t0) * 1000, audio_s=audio.seconds)


def build(settings: Any, vs: VoiceSettings) -> SpeechBrainRecognizer:
    return SpeechBrainRecognizer(settings, vs)
