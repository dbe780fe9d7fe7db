"""Command spotter: a small classifier that reads Whisper's own encoder output and names the command meaning.

Whisper tiny.en *decodes* robotic or accented voices badly in noise ("is not a polyp", "Osler, please."), yet its
encoder output still carries what was said.  The spotter is a closed-set classifier over that output (the
frames of the utterance, 20 ms each): the command meanings of the live grammar (``count(count_target=polyps)``,
``freeze``, ``compare_ago(ago=10)``, ...) plus ``other`` for speech that is no command.  It is trained by the
project (``training/train_spotter.py``) on espeak-ng voices the benchmarks never use, in several noises, and
ships as ``experts/weights/voice_spotter.pt`` (two nets averaged, 2.7 MB; its card ``voice_spotter.md`` has the
data, the voices held out and the measured accuracy).

:func:`voice.second_opinion.spot_settle` uses it as a second opinion after the grammar check: a command the spotter
surely hears otherwise is rejected, and when the check left no command, a command the spotter is sure of is
taken (thresholds tuned on development voices for zero wrong commands); see ``docs/voice.md``.  No weights file:
the check is skipped and the transcript's ``extra['spotter']`` says so.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["EncoderNets", "OTHER", "FRAME_SAMPLES", "SpotterNet", "CommandSpotter", "Spot", "utterance_frames", "load_members",
           "default_path"]

OTHER = "other"
FRAME_SAMPLES = 320  # one Whisper encoder frame: 2 mel hops of 10 ms at 16 kHz
MAX_FRAMES = 320  # 6.4 s: longer push-to-talk utterances are read from their first 6.4 s


def default_path() -> Path:
    return Path(__file__).resolve().parent.parent / "experts" / "weights" / "voice_spotter.pt"


def utterance_frames(enc: np.ndarray, n_samples: int) -> np.ndarray:
    """The encoder frames that hold the utterance (the rest of Whisper's 30 s window is padding)."""
    t = min(len(enc), MAX_FRAMES, int(math.ceil(n_samples / FRAME_SAMPLES)) + 2)
    return np.asarray(enc[:t], dtype=np.float32)


def _net_class():
    import torch
    from torch import nn

    class _SpotterNet(nn.Module):
        """Frames [B, T, 384] -> logits [B, classes]: normalised, three 1-D convolutions (the middle one halves
        the frame rate), then attention pooling beside max pooling."""

        def __init__(self, d_in: int = 384, width: int = 192, n_classes: int = 45, dropout: float = 0.2) -> None:
            super().__init__()
            self.norm = nn.LayerNorm(d_in)
            self.convs = nn.Sequential(
                nn.Conv1d(d_in, width, 5, padding=2), nn.GELU(), nn.Dropout(dropout),
                nn.Conv1d(width, width, 5, stride=2, padding=2), nn.GELU(), nn.Dropout(dropout),
                nn.Conv1d(width, width, 3, padding=1), nn.GELU(),
            )
            self.att = nn.Linear(width, 1)
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * width, n_classes))

        def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
            h = self.convs(self.norm(x).transpose(1, 2)).transpose(1, 2)  # [B, T', width]
            t = h.shape[1]
            if lengths is None:
                mask = torch.ones(h.shape[:2], dtype=torch.bool, device=h.device)
            else:
                mask = torch.arange(t, device=h.device)[None, :] < ((lengths + 1) // 2)[:, None].clamp(min=1)
            a = self.att(h).squeeze(-1).masked_fill(~mask, -1e4).softmax(-1)
            pooled = torch.einsum("bt,btc->bc", a, h)
            peak = h.masked_fill(~mask[..., None], -1e4).amax(1)
            return self.head(torch.cat([pooled, peak], -1))

    return _SpotterNet


def SpotterNet(**kw: Any):  # noqa: N802 - a class built on first use (torch imports lazily)
    return _net_class()(**kw)


def load_members(ck: dict[str, Any], build: Any) -> list[Any]:
    """The nets of a checkpoint in eval mode: one net (``state_dict``, ``config``), or several (``members``)
    whose outputs the caller averages; ``build(**config)`` makes each net, its float16 weights read as float32."""
    nets = []
    for member in ck.get("members", [ck]):
        net = build(**member["config"])
        net.load_state_dict({k: v.float() for k, v in member["state_dict"].items()})
        net.eval()
        nets.append(net)
    return nets


@dataclass(frozen=True)
class Spot:
    meaning: str  # a meaning string of voice.grammar_sentences.meaning_str, or OTHER
    prob: float
    runner_up: str
    runner_up_prob: float
    yes_no: tuple[float, float] = (0.0, 0.0)  # P("yes"), P("no"): the reply to a proposal (voice.live_script)

    def info(self) -> dict[str, Any]:
        return {"meaning": self.meaning, "prob": round(self.prob, 3), "runner_up": self.runner_up,
                "runner_up_prob": round(self.runner_up_prob, 3), "yes": round(self.yes_no[0], 4),
                "no": round(self.yes_no[1], 4)}


class EncoderNets:
    """A weights file of nets that read Whisper's encoder frames (averaged members, :func:`load_members`), loaded
    once on first use.  Subclasses name the net class and check or read their own keys in :meth:`_read`."""

    net_class: Any = None

    def __init__(self, path: Path | None = None) -> None:
        self.path = Path(path) if path else self._default_path()
        self.meta: dict[str, Any] = {}
        self._nets: list[Any] = []
        self._lock = threading.Lock()

    @staticmethod
    def _default_path() -> Path:
        return default_path()

    def available(self) -> bool:
        return self.path.is_file()

    def load(self) -> None:
        with self._lock:
            if self._nets:
                return
            import torch

            ck = torch.load(self.path, map_location="cpu", weights_only=True)
            self._read(ck)
            nets = load_members(ck, self.net_class)
            self.meta = dict(ck.get("meta", {}))
            self._nets = nets

    def _read(self, ck: dict[str, Any]) -> None:
        """The checkpoint's own keys (raise to refuse a file made for something else)."""


class CommandSpotter(EncoderNets):
    """The trained spotter; ``spot(enc, n_samples)`` names the most likely meaning of one utterance."""

    net_class = staticmethod(SpotterNet)

    def __init__(self, path: Path | None = None) -> None:
        super().__init__(path)
        self.classes: list[str] = []

    def _read(self, ck: dict[str, Any]) -> None:
        self.classes = list(ck["classes"])

    def probs(self, enc: np.ndarray, n_samples: int) -> np.ndarray:
        import torch

        self.load()
        x = torch.from_numpy(utterance_frames(enc, n_samples))[None]
        with torch.no_grad():
            return np.mean([net(x)[0].softmax(-1).numpy() for net in self._nets], axis=0)

    def spot(self, enc: np.ndarray, n_samples: int) -> Spot:
        p = self.probs(enc, n_samples)
        order = np.argsort(-p)
        a, b = int(order[0]), int(order[1])
        yes_no = tuple(float(p[self.classes.index(c)]) if c in self.classes else 0.0 for c in ("yes", "no"))
        return Spot(self.classes[a], float(p[a]), self.classes[b], float(p[b]), yes_no)
