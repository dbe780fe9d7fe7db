"""The live polyp detector: a thread that runs the detector on the latest video frame, smooths its boxes and keeps
the timeline and the frames "compare with N seconds ago" reaches back to.

:class:`LiveDetector` calls the polyp detector of the expert pool directly (no planner per frame) at most
``rate_hz`` times a second on the latest frame of a :class:`~voice.video.LatestFrameReader`, smooths the boxes
(:class:`~voice.live_smooth.DetectionSmoother`) and records each run (frame index, frame time, raw and smoothed boxes,
detector ms, frame-to-result latency).  :class:`voice.live_video.LiveEngine` reads its state to answer questions.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .live_smooth import DetectionSmoother, Track
from .live_stats import detection_stats
from .video import Frame, LatestFrameReader

__all__ = ["LiveOptions", "LiveDetector"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveOptions:
    rate_hz: float = 5.0  # detector runs per second at most
    min_hits: int = 3  # detector runs a box must persist before it is shown and counted
    max_missed: int = 2  # runs a confirmed box survives without a match
    min_score: float | None = None  # detector threshold (None: the detector's default)
    history_s: float = 130.0  # how far back "compare with N seconds ago" can reach
    history_step_s: float = 0.2  # spacing of the frames kept for that
    confirm_timeout_s: float = 20.0  # a proposal ("Did you mean ...?") not answered by then is dropped


class LiveDetector:
    """The detection thread and its state, read under one lock."""

    def __init__(self, pool: Any, reader: LatestFrameReader, opt: LiveOptions) -> None:
        self.pool, self.reader, self.opt = pool, reader, opt
        self.smoother = DetectionSmoother(opt.min_hits, opt.max_missed)
        self.detections: list[dict[str, Any]] = []  # one entry per detector run (the timeline)
        self.history: collections.deque[Frame] = collections.deque()  # frames kept every history_step_s
        self.detector_backend: str | None = None
        self.started_wall: float | None = None
        self.detect_error: str | None = None
        self.colourless_frames = 0  # frames the polyp detector skipped: no colour (TargetSpec.colour)
        self._tracks: list[Track] = []
        self._raw = np.zeros((0, 4))
        self._det_index: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load(self) -> None:
        """Load the detector now (the first run would otherwise be slow)."""
        detector = self.pool.detector("polyp")
        self.detector_backend = f"{detector.backend} ({detector.why})"

    def start(self) -> None:
        self.load()
        if not self.reader.started:
            self.reader.start()
        self.started_wall = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="osler-live-detect", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.reader.stop()

    def wait(self, timeout: float | None = None) -> None:
        """Until the source ends (a file) and the detector has caught up."""
        self.reader.ended.wait(timeout)
        if self._thread is not None:
            self._thread.join(timeout=10)

    # ---- what the engine reads ----------------------------------------------------------------------
    def current(self) -> tuple[list[Track], int | None]:
        """The smoothed tracks (copies) and the frame they come from."""
        with self._lock:
            return list(self._tracks), self._det_index

    def raw(self) -> np.ndarray:
        """The last run's unsmoothed boxes ``(N, 4)``."""
        with self._lock:
            return self._raw.copy()

    def timeline(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.detections)

    def frame_before(self, t: float) -> Frame | None:
        """The kept frame closest to source time ``t`` (None when the video is younger than that)."""
        with self._lock:
            frames = list(self.history)
        if not frames or t < frames[0].time_s - self.opt.history_step_s:
            return None
        best = min(frames, key=lambda f: abs(f.time_s - t))
        # a gap in the kept frames (the detector paused on colourless frames, or stopped): the nearest frame may
        # be far from t; comparing with it would answer "N seconds ago" about another moment
        if abs(best.time_s - t) > max(1.0, 3 * self.opt.history_step_s):
            return None
        return best

    def stats(self) -> dict[str, Any]:
        return detection_stats(self.timeline(), self.reader.stats, self.detector_backend, self.colourless_frames)

    # ---- the thread ---------------------------------------------------------------------------------
    def _run(self) -> None:
        from experts.imaging import StudyImage

        detector = self.pool.detector("polyp")
        period = 1.0 / self.opt.rate_hz if self.opt.rate_hz > 0 else 0.0
        last = -1
        while not self._stop.is_set():
            t0 = time.monotonic()
            frame = self.reader.take(after=last, timeout=0.5)
            if frame is None:
                if self.reader.ended.is_set():
                    break
                continue
            last = frame.index
            study = StudyImage.from_pixels(frame.rgb, source=f"frame-{frame.index:06d}.png", role="current")
            if study.colourless:  # a grey video: the detector reads colour; no boxes is not "no polyp"
                if not self.colourless_frames:
                    log.warning("live video frame %d has no colour: the polyp detector is paused", frame.index)
                self.colourless_frames += 1
                continue
            try:
                det = detector.predict(study, min_score=self.opt.min_score)
            except Exception as exc:  # a failing detector stops the overlay, not the session
                self.detect_error = f"{type(exc).__name__}: {exc}"
                log.warning("live detector failed: %s", self.detect_error)
                break
            det_ms = (time.monotonic() - t0) * 1000
            with self._lock:
                tracks = self.smoother.update(det.boxes, det.scores, frame.index)
                self._tracks = [Track(t.id, t.box.copy(), t.score, t.hits, t.missed, t.first_index, t.last_index)
                                for t in tracks]
                self._raw = det.boxes.copy()
                self._det_index = frame.index
                if not self.history or frame.time_s - self.history[-1].time_s >= self.opt.history_step_s:
                    self.history.append(frame)
                while self.history and frame.time_s - self.history[0].time_s > self.opt.history_s:
                    self.history.popleft()
                self.detections.append({
                    "frame_index": frame.index, "frame_time": round(frame.time_s, 3),
                    "boxes": [[round(float(v), 1) for v in b] for b in det.boxes],
                    "scores": [round(float(s), 3) for s in det.scores],
                    "smoothed": [t.as_dict() for t in self._tracks],
                    "detector_ms": round(det_ms, 1),
                    "latency_ms": round((time.monotonic() - frame.wall) * 1000, 1),
                    "wall_s": round(time.monotonic() - (self.started_wall or t0), 3),
                })
            wait = period - (time.monotonic() - t0)
            if wait > 0:
                self._stop.wait(wait)
