"""Live assistance on an endoscope video: continuous polyp detection, smoothing, and questions about now.

:class:`LiveEngine` owns a :class:`~voice.video.LatestFrameReader`, a detection thread and one
:class:`~agent.session.Session`:

* the detection thread (:class:`voice.live_detect.LiveDetector`) runs the polyp detector on the latest frame at
  most ``rate_hz`` times a second, smooths the boxes and records each run in the timeline;
* :meth:`LiveEngine.snapshot` captures the moment a question ends: the frame on screen (the frozen
  one while frozen) and the smoothed tracks;
* :meth:`LiveEngine.answer` answers a spoken or typed utterance about that snapshot.  Questions go to
  ``Assistant.ask`` with the snapshot's frame saved as the turn's study image (``frames/`` of the
  output folder); the answer JSON carries ``frame_index`` and ``frame_time``.  Live commands:
  freeze / unfreeze (held frame), "compare with N seconds ago" (the frame N s earlier becomes the prior
  and the prior-comparison tool runs), "outline it" / "how big is it" (the segmenter prompted at the
  centre of the strongest smoothed detection; without one, the detector of that frame prompts it).
  A count or detection answer states the smoothed count (the boxes on screen) when it differs from the
  count of that single frame, and says so; the frame's own answer stays in the JSON.

What each command does is :mod:`voice.live_dispatch`; anything that is not a whole command is rejected
("Sorry, say that again.") and nothing is done.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .answers import short_answer
from .commands import Command
from .live_commands import parse_live
from .live_confirm import Proposal, Proposals, prompt
from .live_detect import LiveDetector, LiveOptions
from .live_dispatch import SORRY, dispatch
from .live_smooth import Track, draw_live
from .video import Frame, LatestFrameReader

__all__ = ["LiveOptions", "Snapshot", "LiveEngine", "SORRY"]

@dataclass
class Snapshot:
    """What was on screen when an utterance ended."""

    frame: Frame
    tracks: list[Track]
    frozen: bool
    wall: float = field(default_factory=time.monotonic)
    det_frame_index: int | None = None  # the frame the tracks come from (the detector lags a little)


class LiveEngine:
    def __init__(self, settings: Any, reader: LatestFrameReader, *, options: LiveOptions | None = None,
                 assistant: Any | None = None, out_dir: Path | None = None, voice: Any | None = None) -> None:
        from agent.runner import Assistant

        self.settings = settings
        self.reader = reader
        self.opt = options or LiveOptions()
        self.assistant = assistant or Assistant(settings)
        self.session = self.assistant.new_session()
        self.out_dir = Path(out_dir) if out_dir else Path(settings.data_dir) / "live" / self.session.id
        (self.out_dir / "frames").mkdir(parents=True, exist_ok=True)
        self.voice = voice
        self.loop = LiveDetector(self.assistant.pool, reader, self.opt)  # the detector on the latest frame, smoothed
        self.answers: list[dict[str, Any]] = []
        self._freeze_log: list[tuple[float, Snapshot | None]] = []  # (wall time said, held snapshot or None)
        self._lock = threading.Lock()
        self._last_say = ""
        self._last_full: str | None = None
        self._last_frame: Frame | None = None  # the frame the last reply was about (repeat names it)
        self.proposals = Proposals(self.opt.confirm_timeout_s)  # confirmation on doubt (voice.live_confirm)

    # ---- detection loop (voice.live_detect) ------------------------------------------------------------
    def load(self) -> None:
        """Load the detector now (the first run would otherwise be slow)."""
        self.loop.load()

    def start(self) -> None:
        self.loop.start()

    def stop(self) -> None:
        self.loop.stop()

    def wait(self, timeout: float | None = None) -> None:
        """Until the source ends (a file) and the detector has caught up."""
        self.loop.wait(timeout)

    @property
    def detections(self) -> list[dict[str, Any]]:
        return self.loop.detections

    @property
    def detect_error(self) -> str | None:
        return self.loop.detect_error

    @property
    def colourless_frames(self) -> int:
        return self.loop.colourless_frames

    @property
    def _history(self) -> collections.deque[Frame]:
        return self.loop.history

    # ---- state --------------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot | None:
        """The moment an utterance ends: the latest frame and the smoothed tracks.  Whether the screen
        was frozen then is decided when it is answered (:meth:`resolve`): a freeze said earlier may still
        be in recognition."""
        frame = self.reader.peek()
        if frame is None:
            return None
        tracks, det_index = self.loop.current()
        return Snapshot(frame, tracks, False, det_frame_index=det_index)

    def resolve(self, snap: Snapshot) -> Snapshot:
        """``snap`` as the screen showed it at ``snap.wall``: the held frame when the last freeze said
        before then was not undone (utterances are answered in the order they ended)."""
        with self._lock:
            held = None
            for wall, state in self._freeze_log:
                if wall <= snap.wall:
                    held = state
        if held is None:
            return snap
        return Snapshot(held.frame, list(held.tracks), True, wall=snap.wall, det_frame_index=held.det_frame_index)

    @property
    def frozen(self) -> Snapshot | None:
        with self._lock:
            return self._freeze_log[-1][1] if self._freeze_log else None

    def view(self) -> np.ndarray | None:
        """The live view with overlays (RGB), or None before the first frame."""
        live = self.snapshot()
        if live is None:
            return None
        snap = self.resolve(live)
        fps = self.detection_stats().get("detections_per_s") or 0.0
        status = (f"FROZEN #{snap.frame.index} {snap.frame.time_s:.1f}s" if snap.frozen
                  else f"LIVE #{snap.frame.index} {snap.frame.time_s:.1f}s  det {fps:.1f}/s")
        raw = None if snap.frozen else self.loop.raw()
        return draw_live(snap.frame.rgb, snap.tracks, status, raw, frozen=snap.frozen)

    def frame_before(self, t: float) -> Frame | None:
        """The kept frame closest to source time ``t`` (None when the video is younger than that or the kept
        frames have a gap there)."""
        return self.loop.frame_before(t)

    def detection_stats(self) -> dict[str, Any]:
        return self.loop.stats()

    # ---- answering ----------------------------------------------------------------------------------
    def _save_frame(self, frame: Frame, tag: str = "") -> Path:
        import cv2

        p = self.out_dir / "frames" / f"frame-{frame.index:06d}{tag}.png"
        if not p.exists():
            cv2.imwrite(str(p), np.ascontiguousarray(frame.rgb[..., ::-1]))
        return p

    def answer(self, snap: Snapshot, *, text: str | None = None, command: Command | None = None,
               spoken: bool = False, transcript: str | None = None, timings: dict[str, float] | None = None,
               speak: bool = True, since: float | None = None) -> dict[str, Any]:
        """Answer one utterance about ``snap``.  ``text``: a typed question or the wake-word-stripped
        transcript; ``command``: its parse (parsed here when None); ``since``: when the utterance ended, if not
        ``snap.wall`` (a "yes" answers the proposal on the earlier frame it was made on).  A spoken utterance that
        is no whole command is rejected (or proposed: :meth:`propose`); a typed one that is no command goes to
        the planner as a free question."""
        t_start = time.monotonic()
        snap = self.resolve(snap)
        since = snap.wall if since is None else since
        timings = dict(timings or {})
        timings.setdefault("queue_ms", (t_start - since) * 1000)
        cmd = command if command is not None else (parse_live(text) if text else None)
        doubt = self.proposals.waiting()
        if doubt is not None and cmd is not None and cmd.intent == "yes":  # the proposal, on its own frame
            self.proposals.drop()
            out = self.answer(doubt.snap, command=doubt.command, spoken=spoken, transcript=transcript,
                              timings=timings, speak=speak, since=snap.wall)
            out["live"]["confirmed"] = {**doubt.note, "reply": transcript if transcript is not None else text,
                                        "reply_frame_index": snap.frame.index,
                                        "reply_frame_time": round(snap.frame.time_s, 3)}
            return out
        if doubt is not None and not (cmd is None and spoken):  # any other command drops the proposal
            self.proposals.drop()
        live: dict[str, Any] = {"intent": cmd.intent if cmd else None, "frozen": snap.frozen,
                                "smoothed_count": len(snap.tracks), "smoothed": [t.as_dict() for t in snap.tracks],
                                "tracks_from_frame": snap.det_frame_index, "min_hits": self.opt.min_hits}
        r = dispatch(self, snap, cmd, live, text=text, spoken=spoken, doubt=doubt)
        record, say, full, reply = r.record, r.say, r.full, r.kind
        plain = say  # what "repeat" replays (it names the frame itself when the screen has moved on)
        if reply == "answer" and snap.frozen and self.frozen is None and say:
            # the question ended while frozen, the screen is live again now: the answer names its frame
            say = f"On the frame frozen at {snap.frame.time_s:.0f} seconds: {say}"
            live["answered_after_unfreeze"] = True
        timings["handle_ms"] = (time.monotonic() - t_start) * 1000
        out = dict(record)
        out.setdefault("answer", full or say)
        out.update(transcript=transcript if transcript is not None else text, frame_index=snap.frame.index,
                   frame_time=round(snap.frame.time_s, 3), reply=reply, spoken_text=say, live=live)
        if speak and say:
            self._speak(out, say, since, timings)
        out["live"]["timings_ms"] = {k: round(v, 1) for k, v in timings.items()}
        if say and reply not in ("rejected", "local"):  # a repeat keeps the answer and the frame it repeats
            self._last_frame = snap.frame if reply == "answer" else None
            self._last_say, self._last_full = plain, full or plain
        with self._lock:
            self.answers.append(out)
        return out

    def propose(self, snap: Snapshot, command: Command, spoken_form: str, *, meaning: str, prob: float,
                transcript: str, timings: dict[str, float] | None = None, speak: bool = True) -> dict[str, Any]:
        """Confirmation on doubt: the recogniser rejected an utterance, but its command spotter's best guess
        (``meaning`` at ``prob``) may be proposed (:func:`voice.second_opinion.may_propose`).  Nothing runs now:
        Osler asks "Did you mean: ...? Say yes or no."; "yes" within ``confirm_timeout_s`` answers ``command`` on
        ``snap`` (the frame of this utterance), "no" or any other command drops it."""
        snap = self.resolve(snap)
        note = {"proposed": spoken_form, "meaning": meaning, "spotter_prob": round(prob, 3),
                "asked_frame_index": snap.frame.index, "asked_frame_time": round(snap.frame.time_s, 3)}
        self.proposals.offer(Proposal(command, snap, note))
        say = prompt(spoken_form)
        timings = dict(timings or {})
        live: dict[str, Any] = {"intent": None, "frozen": snap.frozen, "smoothed_count": len(snap.tracks),
                                "proposal": dict(note),
                                "note": "not a sure command: proposed, nothing done until 'yes'"}
        out: dict[str, Any] = dict(answer=say, transcript=transcript, frame_index=snap.frame.index,
                                   frame_time=round(snap.frame.time_s, 3), reply="confirm", spoken_text=say,
                                   live=live)
        if speak:
            self._speak(out, say, snap.wall, timings)
        live["timings_ms"] = {k: round(v, 1) for k, v in timings.items()}
        with self._lock:
            self.answers.append(out)
        return out

    def _speak(self, out: dict[str, Any], say: str, since: float, timings: dict[str, float]) -> None:
        """Synthesise ``say`` into ``out`` (its WAV and backend); latency = ``since`` (end of speech) to first audio."""
        if self.voice is None:
            return
        t_tts = time.monotonic()
        spoken_ = self.voice.speak_to_file(say)
        out["spoken_wav"] = str(spoken_.path) if spoken_.path else None
        out["spoken_backend"] = spoken_.backend
        timings["tts_first_ms"] = spoken_.first_audio_ms
        timings["latency_ms"] = (t_tts - since) * 1000 + spoken_.first_audio_ms

    def pending_proposal(self) -> dict[str, Any] | None:
        """What a proposal waiting for yes or no proposed (None: none waits)."""
        d = self.proposals.waiting()
        return None if d is None else dict(d.note)

    def hold(self, snap: Snapshot) -> None:
        """Freeze: from ``snap.wall`` on, questions are answered on ``snap``'s frame and tracks."""
        with self._lock:
            self._freeze_log.append((snap.wall, Snapshot(snap.frame, list(snap.tracks), True, wall=snap.wall,
                                                         det_frame_index=snap.det_frame_index)))
        self._save_frame(snap.frame)

    def release(self, snap: Snapshot) -> None:
        """Unfreeze from ``snap.wall`` on."""
        with self._lock:
            self._freeze_log.append((snap.wall, None))

    def last_frame(self) -> Frame | None:
        """The frame the last reply was about (None before the first)."""
        return self._last_frame

    def last_reply(self, *, full: bool = False) -> str:
        """What was last said (``full``: the written answer behind it); "" before the first reply."""
        return (self._last_full if full else self._last_say) or ""

    def ask_frame(self, snap: Snapshot, question: str, live: dict[str, Any], prior: Frame | None = None
                  ) -> tuple[dict[str, Any], str, str]:
        """``question`` to the planner about ``snap``'s frame (saved as the turn's study image; ``prior``: a
        frame of the same video as the prior study).  Returns the result JSON, the short spoken answer and the
        written one."""
        path = self._save_frame(snap.frame)
        self.session.load("current", path)
        if prior is not None:
            self.session.load("prior", self._save_frame(prior))
            for role in ("current", "prior"):  # two frames of one video: one patient (compare_with_prior checks)
                self.session.images[role].patient_key = f"live-video-{id(self)}"
                self.session.images[role].video_key = f"live-video-{id(self)}"  # a still scene is not a copy
        else:
            self.session.clear_image("prior")
        live["frame_file"] = str(path)
        live["question"] = question
        t0 = time.monotonic()
        result = self.assistant.ask(self.session, question)
        live["ask_ms"] = round((time.monotonic() - t0) * 1000, 1)
        say = short_answer(result)
        return result.model_dump(mode="json"), say, result.answer

    # ---- the record ---------------------------------------------------------------------------------
    def timeline(self) -> dict[str, Any]:
        """Detections (one per detector run) and answers, in order, with the detection statistics."""
        stats = self.detection_stats()
        with self._lock:
            return {"source": str(self.reader.source), "options": dict(self.opt.__dict__), "session": self.session.id,
                    "detection_stats": stats, "detections": self.loop.timeline(), "answers": list(self.answers)}
