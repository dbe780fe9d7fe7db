"""Replay a scripted session against a live video: spoken (WAV) and typed questions at given times.

Script: a JSON list of entries, ``{"time": s, "audio": "q1.wav"}`` or ``{"time": s, "question": "..."}``.
``time`` is when the speaker starts, in seconds of video time; an utterance *ends* at ``time`` plus the
end of the voiced part of its WAV (a typed question ends at ``time``).  Relative WAV paths are read
from the script's folder.

:class:`ScriptReplayer` waits, as the video plays, for each utterance's end, takes the
:meth:`~voice.live_video.LiveEngine.snapshot` at that moment (the frame on screen then) and queues
it; a worker transcribes (Whisper, n-best rescored against the live grammar), parses strictly and
answers on that snapshot, so an answer always refers to the frame current when its question ended,
however long the previous answer took.  ``live.timings_ms.latency_ms`` of each spoken answer is end of
speech to the first audio of the answer (queueing, recognition, planner and speech synthesis).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tools.errors import InvalidInputError

from .audio import Audio, prepare, speech_bounds
from .live_commands import hear_spoken
from .live_video import LiveEngine, Snapshot

__all__ = ["ScriptEntry", "load_script", "ScriptReplayer", "hear_live"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScriptEntry:
    time: float
    audio: Path | None = None
    question: str | None = None


def load_script(path: str | Path) -> list[ScriptEntry]:
    """Entries sorted by time.  Raises InvalidInputError for a malformed script or a missing WAV."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"cannot read the audio script {p.name}: {exc}") from exc
    if not isinstance(data, list):
        raise InvalidInputError(f"{p.name}: the audio script must be a JSON list of entries")
    out = []
    for k, e in enumerate(data):
        if not isinstance(e, dict) or not isinstance(e.get("time"), (int, float)) or e["time"] < 0:
            raise InvalidInputError(f"{p.name}: entry {k + 1} needs a 'time' (seconds into the video, >= 0)")
        if ("audio" in e) == ("question" in e):
            raise InvalidInputError(f"{p.name}: entry {k + 1} needs exactly one of 'audio' (a WAV) or 'question'")
        if "audio" in e:
            wav = Path(e["audio"])
            wav = wav if wav.is_absolute() else p.parent / wav
            if not wav.is_file():
                raise InvalidInputError(f"{p.name}: entry {k + 1}: no such WAV {wav.name}")
            out.append(ScriptEntry(float(e["time"]), audio=wav))
        else:
            q = str(e["question"]).strip()
            if not q:
                raise InvalidInputError(f"{p.name}: entry {k + 1}: the question is empty")
            out.append(ScriptEntry(float(e["time"]), question=q))
    return sorted(out, key=lambda e: e.time)


def hear_live(engine: LiveEngine, snap: Snapshot, audio: Audio, recognizer: Any, wake_word: str = "osler",
              speak: bool = True, ask_level: float | None = None, reply_level: float | None = None
              ) -> dict[str, Any]:
    """Transcribe one push-to-talk utterance, parse it against the live commands, answer on ``snap``.  An
    utterance the recogniser rejects is proposed back ("Did you mean: how many polyps? Say yes or no.") when
    its command spotter's best guess may be (:func:`voice.second_opinion.may_propose` at ``ask_level``; None: never);
    while a proposal waits, a rejected utterance is taken as "yes" or "no" when the spotter's likelier of the two
    reaches ``reply_level`` (:func:`voice.second_opinion.reply_settle`; None: only as the recogniser takes them)."""
    t0 = time.monotonic()
    queue_ms = (t0 - snap.wall) * 1000  # waiting for the previous answer to finish
    tr = recognizer.transcribe(audio)
    asr_ms = (time.monotonic() - t0) * 1000
    text, cmd, why = hear_spoken(tr.text, wake_word)
    timings = {"queue_ms": queue_ms, "asr_ms": asr_ms}
    sp = tr.extra.get("spotter") or {}
    if cmd is None and reply_level is not None and engine.pending_proposal() is not None and "yes" in sp:
        from .second_opinion import reply_settle
        from .live_commands import parse_live

        said = reply_settle(float(sp["yes"]), float(sp.get("no", 0.0)), reply_level)
        if said is not None:
            text, cmd = said, parse_live(said)
            why = (f"taken as {said!r} while the proposal waits (spotter P(yes) {sp['yes']:.2f}, "
                   f"P(no) {sp.get('no', 0.0):.2f}, level {reply_level})")
    proposed = _proposal(tr, ask_level) if cmd is None else None
    if proposed is not None:
        command, form, meaning, prob = proposed
        out = engine.propose(snap, command, form, meaning=meaning, prob=prob, transcript=tr.text, timings=timings,
                             speak=speak)
    else:
        out = engine.answer(snap, text=text, command=cmd, spoken=True, transcript=tr.text, timings=timings,
                            speak=speak)
    out["live"]["asr"] = {"backend": tr.backend, "model": tr.model, "nbest_rank": tr.extra.get("nbest_rank"),
                          "notes": [str(n) for n in tr.extra.get("dropped", [])] + ([why] if why else [])}
    return out


def _proposal(tr: Any, ask_level: float | None) -> tuple[Any, str, str, float] | None:
    """(command, its spoken form, meaning, spotter probability) to propose for a rejected transcript, or None."""
    from .grammar_sentences import spoken_form
    from .second_opinion import may_propose
    from .live_commands import LIVE_SET, parse_live

    sp = tr.extra.get("spotter") or {}
    if ask_level is None or "meaning" not in sp or (tr.extra.get("tail") or {}).get("outcome") == "vetoed":
        return None  # no spotter opinion, or the speaker went on after the command: nothing to propose
    meaning, prob = sp["meaning"], float(sp.get("prob", 0.0))
    if not may_propose(meaning, prob, ask_level):
        return None
    try:
        form = spoken_form(meaning, LIVE_SET, None)
    except ValueError:  # a spotter class the live commands do not have
        return None
    command = parse_live(form)
    return None if command is None else (command, form, meaning, prob)


class ScriptReplayer:
    def __init__(self, engine: LiveEngine, entries: list[ScriptEntry], *, recognizer: Any | None = None,
                 vs: Any | None = None, speak: bool = True) -> None:
        if any(e.audio for e in entries) and (recognizer is None or vs is None):
            raise ValueError("spoken entries need a recogniser and voice settings")
        self.engine, self.entries, self.recognizer, self.vs, self.speak = engine, entries, recognizer, vs, speak
        self._clips: dict[int, tuple[Audio, float]] = {}
        for k, e in enumerate(entries):
            if e.audio is not None:
                a = prepare(e.audio, vs)  # bad audio fails here, before the video starts
                b = speech_bounds(a.samples, a.sample_rate)
                self._clips[k] = (a, (b[1] / a.sample_rate) if b else a.seconds)

    def end_time(self, k: int) -> float:
        e = self.entries[k]
        return e.time + (self._clips[k][1] if k in self._clips else 0.0)

    def run(self, on_answer: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        """Play the script against the running engine; returns the answers in order."""
        work: "queue.Queue[tuple[int, Snapshot, bool] | None]" = queue.Queue()
        order = sorted(range(len(self.entries)), key=self.end_time)

        def schedule() -> None:
            reader = self.engine.reader
            for k in order:
                end = self.end_time(k)
                while reader.video_time() < end and not reader.ended.is_set():
                    time.sleep(0.005)
                snap = self.engine.snapshot()
                if snap is not None:
                    work.put((k, snap, reader.video_time() < end))
            work.put(None)

        threading.Thread(target=schedule, name="osler-live-script", daemon=True).start()
        answers = []
        while True:
            item = work.get()
            if item is None:
                break
            k, snap, after_end = item
            e = self.entries[k]
            if e.audio is not None:
                out = hear_live(self.engine, snap, self._clips[k][0], self.recognizer, self.vs.wake_word, self.speak,
                                self.vs.ask_level, self.vs.reply_level)
                out["live"]["audio"] = e.audio.name
            else:
                out = self.engine.answer(snap, text=e.question, speak=self.speak)
            out["live"]["script_time"] = e.time
            out["live"]["utterance_end"] = round(self.end_time(k), 3)
            if after_end:
                out["live"]["note_script"] = "the video ended before this utterance: the last frame was used"
            answers.append(out)
            if on_answer is not None:
                on_answer(out)
        return answers
