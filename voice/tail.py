"""Rest-of-utterance check: did more speech follow the command about to be executed?

The grammar check and the command spotter (:mod:`voice.spotter`) both judge how well an utterance *opens* like a
command; neither asks whether the speaker went on.  So "how many platelets are in the fridge" was answered with
a platelet count.  This module asks that question with a small CTC word recogniser on Whisper tiny.en's encoder
frames (the frames the spotter reads).  Its outputs are the words of the live command grammar, the wake word,
"please" / "okay", ``<unk>`` for any stretch of words outside that vocabulary, and the CTC blank.

For the command ``C`` the recogniser is about to execute, over C's grammar phrasings ``s`` (with and without the
wake word, with the optional "please" / "okay" the parser accepts):

* ``P_exact(s)``: the CTC probability that the utterance is exactly ``s``;
* ``P_prefix(s)``: the probability that the utterance *starts* with ``s`` (anything may follow), computed with
  one extra state that, once ``s`` is complete, absorbs every further emitted word;
* ``rest = log max_s P_prefix(s) - log max_s P_exact(s)`` (nats, >= 0): near 0 when the command explains the
  whole utterance, large when words followed it.

:func:`voice.second_opinion.tail_settle` rejects the command when ``rest >= voice.tail_veto`` (tuned on development
voices only).  The net is trained by the project (``python -m training.train_tail``) and ships as
``experts/weights/voice_tail.pt`` (card ``voice_tail.md``).  No weights file: the check is skipped and the
transcript's ``extra['tail']`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .spotter import EncoderNets, utterance_frames

__all__ = ["BLANK", "UNK", "EXTRA_WORDS", "vocabulary", "targets", "TailNet", "ctc_exact_prefix", "TailChecker",
           "Tail", "default_path"]

BLANK = "<blank>"
UNK = "<unk>"
EXTRA_WORDS = ("osler", "please", "okay")


def default_path() -> Path:
    return Path(__file__).resolve().parent.parent / "experts" / "weights" / "voice_tail.pt"


@lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """``<blank>``, the live grammar's words and the wake word / politeness words, ``<unk>``."""
    from .grammar_sentences import grammar_sentences
    from .live_commands import LIVE_SET

    # the first rules' words only: the net's outputs were fixed when it was trained (natural phrasings added
    # to CommandSpec.more later are not among them)
    words = {w for s, _m in grammar_sentences(LIVE_SET, primary=True) for w in s.split()} | set(EXTRA_WORDS)
    return (BLANK, *sorted(words), UNK)


def targets(text: str, vocab: Sequence[str] | None = None) -> list[int]:
    """Word ids of a transcript (:func:`voice.normalize.normalize` first); a run of words outside the vocabulary
    is one ``<unk>``."""
    from .normalize import normalize

    vocab = vocab or vocabulary()
    index = {w: k for k, w in enumerate(vocab)}
    unk = index[UNK]
    out: list[int] = []
    for w in normalize(text).split():
        k = index.get(w, unk)
        if k == unk and out and out[-1] == unk:
            continue
        out.append(k)
    return out


def _net_class():
    import torch
    from torch import nn

    class _TailNet(nn.Module):
        """Frames [B, T, 384] -> per-frame log-probabilities [B, ceil(T/2), vocab]: normalised, two 1-D
        convolutions (the second halves the frame rate to 40 ms), one bidirectional GRU."""

        def __init__(self, d_in: int = 384, width: int = 192, hidden: int = 128, n_out: int = 112,
                     dropout: float = 0.2) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(d_in)
            self.convs = nn.Sequential(
                nn.Conv1d(d_in, width, 5, padding=2), nn.GELU(), nn.Dropout(dropout),
                nn.Conv1d(width, width, 5, stride=2, padding=2), nn.GELU(), nn.Dropout(dropout),
            )
            self.rnn = nn.GRU(width, hidden, batch_first=True, bidirectional=True)
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden, n_out))

        @staticmethod
        def out_lengths(lengths: torch.Tensor) -> torch.Tensor:
            return ((lengths + 1) // 2).clamp(min=1)

        def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
            h = self.convs(self.norm(x).transpose(1, 2)).transpose(1, 2)  # [B, T', width]
            if lengths is None:
                lengths = torch.full((x.shape[0],), x.shape[1], dtype=torch.long)
            lo = self.out_lengths(lengths).clamp(max=h.shape[1])
            packed = nn.utils.rnn.pack_padded_sequence(h, lo.cpu(), batch_first=True, enforce_sorted=False)
            y, _ = self.rnn(packed)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=h.shape[1])
            return self.head(y).log_softmax(-1)

    return _TailNet


def TailNet(**kw: Any):  # noqa: N802 - a class built on first use (torch imports lazily)
    return _net_class()(**kw)


def ctc_exact_prefix(logp: np.ndarray, forms: Sequence[Sequence[int]], blank: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(log P_exact, log P_prefix) of each label sequence in ``forms`` under per-frame log-probabilities ``logp``
    [T, V]: the CTC probability that the whole utterance is the sequence, and that it starts with it.  All forms
    in one pass (states padded with blanks past a form's end: they are never read back)."""
    T = len(logp)
    F = len(forms)
    if F == 0:
        return np.zeros(0), np.zeros(0)
    lens = np.array([len(f) for f in forms])
    if lens.min() < 1:
        raise ValueError("empty label sequence")
    S = 2 * int(lens.max()) + 1
    ext = np.full((F, S), blank, dtype=np.int64)
    skip = np.zeros((F, S), dtype=bool)
    for i, f in enumerate(forms):
        ext[i, 1:2 * len(f):2] = f
        if len(f) > 1:
            skip[i, 3:2 * len(f):2] = np.asarray(f[1:]) != np.asarray(f[:-1])
    rows = np.arange(F)
    i_last, i_end = 2 * lens - 1, 2 * lens  # the last label's state and the blank after it
    p = np.exp(logp)
    log_nonblank = np.log(np.clip(1.0 - p[:, blank], 1e-30, None))  # any word at all
    last = np.array([f[-1] for f in forms])
    log_other = np.log(np.clip(1.0 - p[:, blank][:, None] - p[:, last], 1e-30, None))  # [T, F]: not the last word
    neg = -np.inf
    a = np.full((F, S), neg)
    a[:, 0] = logp[0, blank]
    a[:, 1] = logp[0, ext[:, 1]]
    g = np.full(F, neg)  # absorbing: the form is complete and another word was emitted
    with np.errstate(invalid="ignore"):
        for t in range(1, T):
            prev = a
            s1 = np.concatenate([np.full((F, 1), neg), prev[:, :-1]], 1)
            s2 = np.where(skip, np.concatenate([np.full((F, 2), neg), prev[:, :-2]], 1), neg)
            a = np.logaddexp(np.logaddexp(prev, s1), s2) + logp[t][ext]
            g = np.logaddexp(g, np.logaddexp(prev[rows, i_last] + log_other[t], prev[rows, i_end] + log_nonblank[t]))
    exact = np.logaddexp(a[rows, i_last], a[rows, i_end])
    return exact, np.logaddexp(exact, g)


@lru_cache(maxsize=64)
def _phrasings(meaning: str, specs: tuple[Any, ...] | None = None) -> tuple[tuple[tuple[int, ...], ...],
                                                                            tuple[tuple[int, ...], ...]]:
    """(exact forms, prefix forms) of a meaning of the command set ``specs`` (default: the live set), as word-id
    tuples: every grammar phrasing with and without the wake word and a leading "please"/"okay"; exact forms also
    with a trailing "please".  KeyError: the set has no such meaning, or a word the net does not know."""
    from .grammar_sentences import grammar_sentences, meaning_str
    from .live_commands import LIVE_SET

    vocab = vocabulary()
    index = {w: k for k, w in enumerate(vocab)}
    base = [tuple(index[w] for w in s.split()) for s, m in grammar_sentences(specs or LIVE_SET, primary=True)
            if meaning_str(m) == meaning]
    if not base:
        raise KeyError(meaning)
    o, pl, ok = index["osler"], index["please"], index["okay"]
    heads = [(), (o,), (pl,), (ok,), (o, pl), (o, ok)]
    prefix = tuple(h + b for b in base for h in heads)
    exact = prefix + tuple(f + (pl,) for f in prefix)
    return exact, prefix


@dataclass(frozen=True)
class Tail:
    rest: float  # nats: log max P_prefix - log max P_exact
    exact: float  # log max P_exact
    best: str  # the phrasing that best explains the utterance as a prefix
    heard: str  # the greedy CTC transcript (for the notes)

    def info(self) -> dict[str, Any]:
        return {"rest": round(self.rest, 2), "exact": round(self.exact, 2), "best": self.best, "heard": self.heard}


class TailChecker(EncoderNets):
    """The trained rest-of-utterance net; ``check(enc, n_samples, meaning)`` scores one utterance."""

    net_class = staticmethod(TailNet)

    def __init__(self, path: Path | None = None) -> None:
        super().__init__(path)
        self.vocab: tuple[str, ...] = ()

    @staticmethod
    def _default_path() -> Path:
        return default_path()

    def _read(self, ck: dict[str, Any]) -> None:
        if tuple(ck["vocab"]) != vocabulary():
            raise ValueError(f"{self.path} was trained for another command vocabulary; retrain it "
                             "(python -m training.train_tail)")
        self.vocab = tuple(ck["vocab"])

    def log_probs(self, enc: np.ndarray, n_samples: int) -> np.ndarray:
        """Per-frame log-probabilities [T', vocab] (several nets: the log of their mean probability)."""
        import torch

        self.load()
        x = torch.from_numpy(utterance_frames(enc, n_samples))[None]
        with torch.no_grad():
            ps = [net(x)[0].double().exp().numpy() for net in self._nets]
        return np.log(np.clip(np.mean(ps, axis=0), 1e-30, None))

    def greedy(self, logp: np.ndarray) -> str:
        ids = logp.argmax(1)
        out, prev = [], 0
        for k in ids:
            if k != prev and k != 0:
                out.append(self.vocab[k])
            prev = k
        return " ".join(out)

    def score(self, logp: np.ndarray, meaning: str, specs: tuple[Any, ...] | None = None) -> Tail:
        exact_forms, prefix_forms = _phrasings(meaning, specs)
        exact, prefix = ctc_exact_prefix(logp, exact_forms)
        n = len(prefix_forms)  # exact_forms starts with the prefix forms
        k = int(np.argmax(prefix[:n]))
        best_exact = float(exact.max())
        rest = max(0.0, float(prefix[k]) - best_exact) if np.isfinite(best_exact) else float("inf")
        return Tail(rest=rest, exact=best_exact, best=" ".join(self.vocab[w] for w in prefix_forms[k]),
                    heard=self.greedy(logp))

    def check(self, enc: np.ndarray, n_samples: int, meaning: str, specs: tuple[Any, ...] | None = None) -> Tail:
        """``rest`` of the command ``meaning`` of the command set ``specs`` (default: the live set) on one
        utterance's encoder output."""
        return self.score(self.log_probs(enc, n_samples), meaning, specs)
