"""Whisper recogniser (faster-whisper / CTranslate2; the model, its loading and decoding: :mod:`voice.whisper_model`).

The decoder is prompted with the command phrases (it primes the domain words; ``whisper_hotwords`` adds more);
with ``whisper_nbest`` > 1 the greedy path and a beam search of n hypotheses are ranked, and the first one that is a
whole command of :mod:`voice.commands` wins (n-best rescoring against the grammar, within
``whisper_nbest_margin`` of the best score), otherwise the first stands.  Rescoring only picks
among what Whisper itself heard: it never invents a command, and a transcript that is no whole
command is still rejected by the strict parser.  A long echo of the prompt is dropped.  Known
Whisper failure modes are filtered: "Thank you."-style hallucinations on noise, prompt echoes,
and segments Whisper itself marks as no-speech.  Then the grammar check (:mod:`voice.asr_grammar`) and the
command spotter's second opinion (:mod:`voice.spotter`).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from tools.errors import ExpertFailedError, ExpertUnavailableError

from .transcript import Transcript
from .audio import ASR_RATE, Audio, denoise
from .config import VoiceSettings
from .normalize import normalize
from .whisper_model import Hyp, bundled_dir, check, decode, model_dir, open_model

if TYPE_CHECKING:
    from .asr_grammar import GrammarContext

__all__ = ["WhisperRecognizer", "build", "check", "model_dir"]  # check, model_dir: the backend interface of voice.asr

log = logging.getLogger(__name__)

# Whisper's stock outputs on silence / noise / music (from its training subtitles).
_HALLUCINATIONS = {"thank you", "thanks for watching", "thank you for watching", "you", "bye", "so", "okay",
                   "thank you very much", "subtitles by the amara org community", "please subscribe"}




class WhisperRecognizer:
    name = "whisper"

    def __init__(self, settings: Any, vs: VoiceSettings, is_command: Callable[[str], bool] | None = None,
                 grammar: tuple[Any, ...] | None = None, parse: Callable[[str], Any] | None = None) -> None:
        """``is_command(text) -> bool``: the grammar the n-best list is rescored against (default: a whole
        command of :mod:`voice.commands` after the wake word; the live video mode passes its own).
        ``grammar``: the command set (:class:`voice.commands.CommandSpec` tuple) scored against the audio when
        ``vs.whisper_grammar`` is on (default: the still-image set); ``parse(text) -> Command | None``: how the
        caller will read the transcript (default: the wake-word gate and the strict parser of ``grammar``; the
        live mode passes its own, which also knows the mishearings of "Osler"), so that the grammar check
        compares the scores with the command the caller would execute."""
        self.settings = settings
        self.vs = vs
        self.is_command = is_command or (lambda text: _is_command(text, vs.wake_word))
        self.grammar = grammar
        self.parse = parse
        self.keep_scores = False  # benchmarks: keep every scored sentence in extra['grammar']['scored']
        self._scorer = None
        self._grammar_error: str | None = None
        self._spotter = None
        self._spotter_error: str | None = None
        self._tail = None
        self._tail_error: str | None = None
        self._model = None
        self._lock = threading.Lock()
        self.model_id = ""

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            d = model_dir(self.settings)
            t0 = time.perf_counter()
            try:
                self._model = open_model(d, self.vs.whisper_compute_type, self.vs.whisper_threads)
            except Exception as exc:
                raise ExpertFailedError(f"could not load the Whisper model from {d}: {exc}") from exc
            self.model_id = f"whisper:{d.parent.name}/{d.name}" if d == bundled_dir() else f"whisper:{d}"
            if self.vs.whisper_grammar:  # the grammar check's decoder: read with the model, not on the first command
                from .whisper_decoder import DecoderScorer

                self._scorer = DecoderScorer(d / "model.bin")
                try:
                    self._scorer.load()
                except Exception as exc:  # e.g. int8 weights: the check cannot run, the free transcript decides
                    log.warning("grammar check unavailable: %s", exc)
                    self._scorer, self._grammar_error = None, str(exc)
            if self.vs.whisper_grammar and self.vs.spotter:
                self._load_spotter(d)
            if self.vs.whisper_grammar and self.vs.tail:
                self._load_tail(d)
            log.info("whisper loaded from %s in %.0f ms", d, (time.perf_counter() - t0) * 1000)

    def _load_spotter(self, d: Path) -> None:
        """The command spotter reads this model's encoder output: it is trained on Whisper tiny.en's, so another
        model (``models.whisper_dir``) runs without it, and so does a missing weights file; the notes say so."""
        from .spotter import CommandSpotter

        self._spotter, self._spotter_error = self._encoder_net(d, CommandSpotter(self.vs.spotter_path),
                                                               "the command spotter", "voice.spotter_path")

    def _load_tail(self, d: Path) -> None:
        """The rest-of-utterance check reads tiny.en's encoder output like the spotter; without it (another model,
        no weights file) a command is executed without the check and the notes say so."""
        from .tail import TailChecker

        self._tail, self._tail_error = self._encoder_net(d, TailChecker(self.vs.tail_path),
                                                         "the rest-of-utterance check", "voice.tail_path")

    @staticmethod
    def _encoder_net(d: Path, net: Any, what: str, setting: str) -> tuple[Any, str | None]:
        """(the loaded net, None), or (None, why not) for a net trained on Whisper tiny.en's encoder output."""
        if d != bundled_dir():
            error = f"{what} reads Whisper tiny.en's encoder only (model here: {d})"
        elif not net.available():
            error = f"no {what.removeprefix('the ')} weights at {net.path} ({setting})"
        else:
            try:
                net.load()
                return net, None
            except Exception as exc:
                error = f"could not load {what} from {net.path}: {exc}"
        log.warning("%s", error)
        return None, error

    def transcribe(self, audio: Audio) -> Transcript:
        if audio.sample_rate != ASR_RATE:
            raise ValueError("whisper expects 16 kHz audio (voice.audio.prepare)")
        self.load()
        t0 = time.perf_counter()
        if self.vs.denoise == "stationary":
            audio = denoise(audio)
        with self._lock:
            hyps, ctx = self._decode(audio.samples)
        dropped: list[str] = []
        candidates = []
        for h in hyps:
            text, why = self._filter(h)
            if why:
                dropped.append(why)
            candidates.append((text, h))
        rank, text, best = self._choose(candidates)
        extra: dict[str, Any] = {}
        if self.vs.denoise != "off":  # said in the transcript: what the recogniser heard was filtered
            extra["denoise"] = self.vs.denoise
        if len(hyps) > 1:
            extra["nbest"] = [h.text for h in hyps]
            extra["nbest_logprob"] = [round(h.avg_logprob, 4) for h in hyps]
            extra["nbest_rank"] = rank
            if rank:
                dropped.append(f"rescored: hypothesis {rank + 1} of {len(hyps)} is a command, "
                               f"the first ({hyps[0].text!r}) is not")
        conf = math.exp(best.avg_logprob) if best is not None and text else None
        if any(t for t, _h in candidates) and (ctx is not None or self._grammar_error):
            try:
                if self._grammar_error:
                    raise ExpertUnavailableError(self._grammar_error)
                text, conf = self._grammar(ctx, candidates, text, conf, extra, dropped)
            except Exception as exc:  # e.g. a configured model whose weights the reader does not know
                log.warning("grammar check failed: %s", exc)
                extra["grammar"] = {"error": str(exc)}
                dropped.append(f"grammar check unavailable ({exc}): the free transcript alone decides")
        if dropped and (not text or rank or "grammar" in extra):
            extra["dropped"] = dropped
        elapsed = (time.perf_counter() - t0) * 1000
        return Transcript(text=text, backend=self.name, model=self.model_id, elapsed_ms=elapsed,
                          audio_s=audio.seconds, confidence=conf, extra=extra)

    def _grammar(self, ctx: GrammarContext, candidates: list[tuple[str, Hyp]],
                 text: str, conf: float | None, extra: dict[str, Any], dropped: list[str]) -> tuple[str, float | None]:
        """Score the command grammar against the audio and settle the transcript
        (:func:`voice.asr_grammar.check_transcript`): a free command the grammar backs is kept, one it does not
        back is rejected (text ''), and when free decoding found no command the grammar's best is taken only
        when it clears the margin and the gap."""
        from .asr_grammar import check_transcript
        from .commands import COMMANDS

        specs = self.grammar or COMMANDS
        r = check_transcript(self._scorer, ctx, self.vs, specs, lambda t: self._meaning(t, specs),
                             [(t, h.ids) for t, h in candidates if t], text, keep_scores=self.keep_scores)
        extra["grammar"] = r.info
        if r.note:
            dropped.append(r.note)
        out_text, out_conf = (text, conf) if r.outcome in ("confirmed", "none") else (r.text, r.mean_prob)
        if r.outcome not in ("confirmed", "none"):
            extra["heard"] = text
        if self._spotter is None:
            if self._spotter_error:
                extra["spotter"] = {"error": self._spotter_error}
        else:
            out_text, out_conf = self._spot(ctx, r, specs, text, out_text, out_conf, extra, dropped)
        return self._check_tail(ctx, specs, text, out_text, out_conf, extra, dropped)

    def _check_tail(self, ctx: GrammarContext, specs: tuple[Any, ...], heard: str, text: str, conf: float | None,
                    extra: dict[str, Any], dropped: list[str]) -> tuple[str, float | None]:
        """The rest-of-utterance check (:func:`voice.second_opinion.tail_settle`) on the command about to be taken:
        rejected when the speaker went on after it."""
        from .grammar_sentences import meaning_str
        from .second_opinion import tail_settle

        m = self._meaning(text, specs) if text else None
        if m is None:
            return text, conf
        if self._tail is None:
            if self._tail_error:
                extra["tail"] = {"error": self._tail_error}
            return text, conf
        meaning = meaning_str(m)
        try:
            t = self._tail.check(ctx.enc, ctx.n_samples, meaning, specs)
        except KeyError:  # a command set with words the net was not trained for: nothing to score
            extra["tail"] = {"error": f"the rest-of-utterance check has no phrasing of {meaning}"}
            return text, conf
        how = tail_settle(t.rest, self.vs.tail_veto)
        extra["tail"] = {**t.info(), "veto": self.vs.tail_veto, "outcome": how}
        if how == "vetoed":
            extra.setdefault("heard", heard)
            dropped.append(f"{text!r}, but the speaker went on after the command (the rest-of-utterance check "
                           f"hears {t.heard!r}; {t.rest:.1f} nats for more speech): not taken, nothing done")
            return "", None
        return text, conf

    def _spot(self, ctx: GrammarContext, r: Any, specs: tuple[Any, ...], heard: str, text: str,
              conf: float | None, extra: dict[str, Any], dropped: list[str]) -> tuple[str, float | None]:
        """The command spotter's second opinion (:func:`voice.second_opinion.spot_settle`)."""
        from .grammar_sentences import command_meaning, grammar_meanings, meaning_str, spoken_form
        from .second_opinion import spot_settle

        s = self._spotter.spot(ctx.enc, ctx.n_samples)
        cmd = self._command(text, specs) if text else None
        command = meaning_str(command_meaning(cmd))
        added = cmd is not None and cmd.added_phrasing
        top = meaning_str(r.decision.top) if r.decision is not None else None
        how = spot_settle(command, top, s.meaning, s.prob, grammar_meanings(specs), self.vs.spotter_take,
                          self.vs.spotter_veto, self.vs.spotter_alone, self.vs.spotter_veto_added, added)
        extra["spotter"] = {**s.info(), "outcome": how, "command": command,
                            **({"added_phrasing": True} if added else {})}
        if how == "vetoed":
            extra.setdefault("heard", heard)
            dropped.append(f"command spotter: {text!r}, but the spotter hears "
                           f"{'no command' if s.meaning == 'other' else s.meaning} (p {s.prob:.2f}): rejected, "
                           "nothing done")
            return "", None
        if how == "spotted":
            extra.setdefault("heard", heard)
            if s.meaning == top:
                said = r.decision.text
                dropped.append(f"heard {heard!r}; the grammar's best command {said!r} and the command spotter "
                               f"(p {s.prob:.2f}) agree")
            else:  # the wake word only where Whisper heard it: the spotter does not listen for it
                from .activation import gate

                woke = any(gate(h, "wake", self.vs.wake_word).woke for h in (heard, ctx.unprimed_text) if h)
                said = spoken_form(s.meaning, specs, self.vs.wake_word if woke else None)
                dropped.append(f"heard {heard!r}; the command spotter hears {said!r} (p {s.prob:.2f})")
            return said, s.prob
        return text, conf

    def _command(self, text: str, specs: tuple[Any, ...]) -> Any:
        """The command ``text`` says, read as this recogniser's parser reads it, or None."""
        if self.parse is not None:
            return self.parse(text)
        from .activation import gate
        from .commands import parse_command

        g = gate(text, "ptt", self.vs.wake_word)
        return parse_command(g.text, specs) if g.text else None

    def _meaning(self, text: str, specs: tuple[Any, ...]) -> tuple[str, tuple[tuple[str, str], ...]] | None:
        from .grammar_sentences import command_meaning

        return command_meaning(self._command(text, specs))


    def _decode(self, samples: Any) -> tuple[list[Hyp], GrammarContext | None]:
        """:func:`voice.whisper_model.decode` with this recogniser's model and settings; the grammar context
        only when the grammar check can run."""
        return decode(self._model, samples, self.vs, self._scorer is not None)

    def _filter(self, h: Hyp) -> tuple[str, str | None]:
        """(text kept, why it was dropped): no-speech segments, stock hallucinations, prompt echoes."""
        if h.no_speech_prob > 0.6 and h.avg_logprob < -1.0:
            return "", "no-speech"
        text = re.sub(r"\s+", " ", h.text).strip()
        norm = normalize(text)
        if norm in _HALLUCINATIONS:
            return "", f"hallucination: {text!r}"
        if self.vs.whisper_prompt and len(norm.split()) >= 6 and norm in normalize(self.vs.whisper_prompt):
            return "", "prompt echo"  # a long stretch of the prompt, not a command someone said
        return text, None

    def _choose(self, candidates: list[tuple[str, Hyp]]) -> tuple[int, str, Hyp | None]:
        """Grammar rescoring of the n-best list: the best-ranked hypothesis that is a whole command
        (after the wake word) wins, when its score is within ``whisper_nbest_margin`` of the first;
        otherwise the first hypothesis stands (and the strict parser rejects it)."""
        if not candidates:
            return 0, "", None
        first_text, first = candidates[0]
        if len(candidates) == 1 or self.is_command(first_text):
            return 0, first_text, first
        for k, (text, h) in enumerate(candidates[1:], start=1):
            if h.avg_logprob < first.avg_logprob - self.vs.whisper_nbest_margin:
                break
            if text and self.is_command(text):
                return k, text, h
        return 0, first_text, first

def _is_command(text: str, wake_word: str) -> bool:
    from .activation import gate
    from .commands import parse_command

    g = gate(text, "ptt", wake_word)
    return bool(g.text) and parse_command(g.text) is not None


def build(settings: Any, vs: VoiceSettings) -> WhisperRecognizer:
    return WhisperRecognizer(settings, vs)
