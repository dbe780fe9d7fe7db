"""Grammar-constrained recognition: how well the audio supports each whole command, by Whisper itself.

Whisper's free decoding writes what it hears; on an accent it never met, or in noise, that is often a
near miss ("is not a polyp", "convert with ten seconds ago") that the strict parser rightly rejects.  This
module asks the same model a narrower question: for each sentence of the command grammar, what is the
log-probability of that exact transcript given this audio?  (Forced decoding, as in keyword and
command recognisers built on an attention decoder.)  The free hypotheses are scored the same way, so
the answer can be compared with what the audio says when nothing is imposed.

A command is taken only when both hold (thresholds in :class:`~tools.voice_settings.VoiceSettings`,
tuned on development voices only, see ``voice.bench_grammar``):

* **margin**: the best command beats the best *different* command (another intent or slot value) by
  ``grammar_margin`` nats, so two commands the audio supports about equally are rejected;
* **gap**: the best free hypothesis is at most ``grammar_gap`` nats more likely than the best command, so
  speech that is no command ("pass me the snare") is not forced onto the nearest one.

Otherwise the utterance is rejected ("say that again"), as before: rescoring never turns doubt into a
command.

The scores come from Whisper's own decoder (:mod:`voice.whisper_decoder`).  The sentences scored are a few
phrasings of every command meaning plus the grammar sentences closest to what Whisper heard
(:func:`candidates`).
"""

from __future__ import annotations

import difflib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from .commands import CommandSpec
from .grammar_sentences import Meaning, grammar_sentences, meaning_str, written
from .normalize import normalize

__all__ = ["Candidate", "GrammarDecision", "GrammarContext", "CheckResult", "AMBIGUOUS", "candidates", "rank",
           "decide", "settle", "check_transcript"]

@dataclass(frozen=True)
class Candidate:
    text: str  # what is scored (wake word and punctuation included)
    meaning: Meaning | None  # None: a free hypothesis that is no command


# Sentences that sound like a command but may be another one (the same ambiguity voice.live_commands rejects in
# a transcript): scored with the commands; when one of them fits best, the utterance is rejected.
AMBIGUOUS = "ambiguous"
_DECOYS: dict[str, tuple[str, ...]] = {
    "unfreeze": ("and freeze", "in freeze", "on freeze"),  # "unfreeze" is often heard as "and freeze"
}


def candidates(specs: tuple[CommandSpec, ...], heard: Sequence[str], wake_word: str, per_meaning: int = 2,
               near: int = 12) -> list[Candidate]:
    """The sentences to score for one utterance: the ``per_meaning`` shortest phrasings of every command
    meaning (from the commands' first rules: a natural phrasing added in ``CommandSpec.more`` does not replace
    them), plus the ``near`` grammar sentences closest (word edit ratio) to each free hypothesis, plus the
    decoys of ambiguous commands (meaning ``(AMBIGUOUS, ...)``), each written with and without the wake word."""
    sents = grammar_sentences(specs)
    chosen: dict[str, Meaning] = {}
    by_meaning: dict[Meaning, list[str]] = {}
    for s, m in grammar_sentences(specs, primary=True):
        by_meaning.setdefault(m, []).append(s)
    for m, ss in by_meaning.items():
        for s in sorted(ss, key=lambda s: (len(s.split()), ss.index(s)))[:per_meaning]:
            chosen[s] = m
    for h in heard:
        words = _strip_wake(normalize(h), wake_word).split()
        if not words:
            continue
        scored = sorted(sents, key=lambda sm: -difflib.SequenceMatcher(None, words, sm[0].split()).ratio())
        for s, m in scored[:near]:
            chosen[s] = m
    intents = {spec.intent for spec in specs}
    for intent, decoys in _DECOYS.items():
        if intent in intents:
            for s in decoys:
                chosen[s] = (AMBIGUOUS, (("may_be", intent),))
    return [Candidate(written(s, w), m) for s, m in chosen.items() for w in (wake_word, None)]


def _strip_wake(text: str, wake_word: str) -> str:
    words = text.split()
    return " ".join(words[1:]) if words and words[0] == wake_word.lower() else text


def rank(meanings: Sequence[Hashable | None], scores: Sequence[float]) -> list[tuple[Hashable, float, int]]:
    """Meanings best first as (meaning, its best sentence's score, that sentence's index): the one ranking
    :func:`decide`, the recogniser's report and the benchmark all read."""
    best: dict[Hashable, tuple[float, int]] = {}
    for i, (m, s) in enumerate(zip(meanings, scores)):
        if m is not None and (m not in best or s > best[m][0]):
            best[m] = (float(s), i)
    return [(m, s, i) for m, (s, i) in sorted(best.items(), key=lambda kv: -kv[1][0])]


@dataclass(frozen=True)
class GrammarDecision:
    meaning: Meaning | None  # the command taken, None = rejected
    text: str  # the winning candidate's text (the transcript when taken)
    best: float  # score of the best command sentence
    margin: float  # best command - best command of another meaning
    gap: float  # best free hypothesis - best command (positive: the free text is more likely)
    runner_up: Meaning | None
    why: str
    top: Meaning | None = None  # the best-scoring meaning, taken or not


def decide(cands: Sequence[Candidate], scores: Sequence[float], free_scores: Sequence[float], margin: float,
           gap: float) -> GrammarDecision:
    """Take the best-scoring command when it clears ``margin`` over any other meaning and lies within ``gap``
    of the free hypotheses' best; otherwise reject."""
    ranked = rank([c.meaning for c in cands], scores)
    if not ranked:
        return GrammarDecision(None, "", float("-inf"), 0.0, 0.0, None, "no command sentence scored")
    m1, s1, i1 = ranked[0]
    t1 = cands[i1].text
    s2, m2 = (ranked[1][1], ranked[1][0]) if len(ranked) > 1 else (float("-inf"), None)
    free = max(free_scores, default=float("-inf"))
    g = max(free, s1) - s1
    d = s1 - s2
    if m1[0] == AMBIGUOUS:
        return GrammarDecision(None, t1, s1, d, g, m2, f"sounds like {t1!r}, which may be {dict(m1[1])['may_be']}: "
                               "ambiguous", m1)
    if d < margin:
        return GrammarDecision(None, t1, s1, d, g, m2, f"two commands fit about equally (margin {d:.2f} < {margin})", m1)
    if g > gap:
        return GrammarDecision(None, t1, s1, d, g, m2, f"the audio fits no command (free text {g:.2f} nats more likely)",
                               m1)
    return GrammarDecision(m1, t1, s1, d, g, m2, "taken", m1)


def settle(free_meaning: Any, top: Any, margin: float, gap: float, taken: bool, confirm_margin: float,
           max_gap: float) -> str:
    """What becomes of one utterance, from the free transcript's command (None: it is no command), the
    grammar's best meaning with its margin and gap, and whether :func:`decide` took it:

    * ``confirmed``: the free command is the grammar's best, by ``confirm_margin`` and within ``max_gap``;
    * ``rejected: gap`` / ``rejected: margin`` / ``rejected: differ``: a free command the grammar does not back;
    * ``taken``: no free command, and the grammar's best clears the thresholds;
    * ``none``: no command either way (the free text stands and the strict parser rejects it)."""
    if free_meaning is not None:
        if top == free_meaning and margin >= confirm_margin and gap <= max_gap:
            return "confirmed"
        if top == free_meaning:
            return "rejected: gap" if gap > max_gap else "rejected: margin"
        return "rejected: differ"
    return "taken" if taken else "none"


# ---- the check on one utterance ---------------------------------------------------------------------
@dataclass(frozen=True)
class GrammarContext:
    """What the decoding of one utterance leaves for the check."""

    enc: np.ndarray  # encoder output [frames, d_model]
    prompt: list[int]  # the decoding prefix with the command prompt
    plain: list[int]  # the prefix with only the wake word as prompt
    tok: Any  # faster-whisper Tokenizer
    unprimed_text: str  # greedy transcript after ``plain``
    unprimed_ids: tuple[int, ...]
    n_samples: int = 0  # the utterance's length at 16 kHz (which encoder frames hold it)


@dataclass
class CheckResult:
    text: str  # the transcript to hand on ('' = rejected)
    outcome: str  # see settle()
    info: dict[str, Any]  # extra['grammar']
    note: str | None = None  # a line for the answer's notes
    mean_prob: float | None = None  # a taken command's mean token probability
    decision: GrammarDecision | None = field(default=None, repr=False)


def check_transcript(scorer: Any, ctx: GrammarContext, vs: Any, specs: tuple[CommandSpec, ...],
                     meaning_of: Callable[[str], Meaning | None], free: Sequence[tuple[str, Sequence[int]]],
                     text: str, keep_scores: bool = False) -> CheckResult:
    """Score the command grammar against one utterance and settle its transcript (:func:`settle`).
    ``free``: the free hypotheses (text, token ids) that were kept; ``text``: the one the n-best rescoring
    chose; ``meaning_of``: how the caller reads a transcript; ``vs``: the voice settings (``grammar_*``)."""
    tok = ctx.tok
    t0 = time.perf_counter()
    cands = candidates(specs, [t for t, _ids in free], vs.wake_word)
    free = list(free)
    if ctx.unprimed_text and all(ctx.unprimed_text != t for t, _ids in free):
        free.append((ctx.unprimed_text, ctx.unprimed_ids))
    all_cands = cands + [Candidate(t, meaning_of(t)) for t, _ids in free]
    seqs = [tok.encode(" " + c.text) + [tok.eot] for c in cands] + [list(ids) + [tok.eot] for _t, ids in free]
    raw = scorer.score(ctx.enc, ctx.prompt if vs.grammar_primed else ctx.plain, seqs)
    # a bonus per token (as a word insertion bonus in ASR decoding): the sum of log-probabilities favours
    # short sentences ("yes", "no"), whatever the audio holds
    scores = raw + vs.grammar_token_bonus * np.array([len(q) for q in seqs])
    d = decide(all_cands, scores, scores[len(cands):], vs.grammar_margin, vs.grammar_gap)
    free_meaning = meaning_of(text) if text else None
    ranked = rank([c.meaning for c in all_cands], scores)
    info = {"best": d.text, "meaning": meaning_str(d.top), "margin": round(d.margin, 3), "gap": round(d.gap, 3),
            "runner_up": meaning_str(d.runner_up), "verdict": d.why, "free_command": meaning_str(free_meaning),
            "sentences": len(cands), "top": [(meaning_str(m), round(s, 3)) for m, s, _i in ranked[:6]],
            "free_best": round(float(max(scores[len(cands):])), 3), "ms": round((time.perf_counter() - t0) * 1000, 1)}
    if keep_scores:  # benchmarks: every sequence's raw score and length (after either prefix), offline
        other = scorer.score(ctx.enc, ctx.plain if vs.grammar_primed else ctx.prompt, seqs)
        primed, plain = (raw, other) if vs.grammar_primed else (other, raw)
        info["scored"] = [(c.text, meaning_str(c.meaning), round(float(a), 3), len(q), round(float(b), 3))
                          for c, a, q, b in zip(all_cands, plain, seqs, primed)]
        info["n_free"] = len(free)
        info["unprimed"] = ctx.unprimed_text
    outcome = settle(free_meaning, d.top, d.margin, d.gap, d.meaning is not None, vs.grammar_confirm_margin,
                     vs.grammar_gap)
    info["outcome"] = _OUTCOME_WORDS[outcome] if outcome != "none" else "no command: " + d.why
    if outcome == "confirmed":
        return CheckResult(text, outcome, info, decision=d)
    if outcome == "taken":
        n = len(tok.encode(" " + d.text)) + 1
        note = (f"heard {text!r}; the grammar's best command {d.text!r} fits the audio "
                f"(margin {d.margin:.1f}, gap {d.gap:.1f} nats)")
        return CheckResult(d.text, outcome, info, note, math.exp((d.best - vs.grammar_token_bonus * n) / n), d)
    if outcome == "none":
        return CheckResult(text, outcome, info, decision=d)
    note = {"rejected: gap": f"grammar check: {text!r}, but without the command prompt Whisper hears "
                             f"{ctx.unprimed_text!r} ({d.gap:.1f} nats more likely): rejected, nothing done",
            "rejected: margin": f"grammar check: {text!r}, but another command fits the audio almost as well "
                                f"(margin {d.margin:.1f} nats): rejected, nothing done",
            "rejected: differ": f"grammar check: {text!r} but the audio fits {d.text!r} better: rejected, "
                                "nothing done"}[outcome]
    return CheckResult("", outcome, info, note, decision=d)


_OUTCOME_WORDS = {
    "confirmed": "free transcript confirmed",
    "taken": "grammar command taken",
    "rejected: gap": "rejected: the unprimed transcript fits the audio much better than the command",
    "rejected: margin": "rejected: the free transcript's command does not clearly beat another command",
    "rejected: differ": "rejected: the free transcript and the grammar's best command differ",
}
