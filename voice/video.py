"""A video source read in its own thread that keeps only the latest frame.

:class:`LatestFrameReader` wraps OpenCV ``VideoCapture`` (a file, a camera index such as ``"0"``, or a
stream URL such as ``rtsp://...``).  The reader thread decodes frames as they come and overwrites one
slot: there is no queue that could grow, and a frame that was overwritten before the consumer took it
is counted in :attr:`ReaderStats.dropped`.  A file plays at its own frame rate (frame ``i`` is
published at ``start + i / fps``), never faster; when decoding falls behind, frames are skipped
(``grab`` without decoding) and counted as dropped.

Frames are RGB ``uint8 (H, W, 3)``.  ``Frame.time_s`` is the position in the source: ``index / fps``
for a file, seconds since the first frame for a camera or stream.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.errors import InvalidInputError

__all__ = ["Frame", "ReaderStats", "LatestFrameReader", "parse_source"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Frame:
    """One decoded frame.  ``rgb``: uint8 (H, W, 3); ``index``: 0-based position in the source;
    ``time_s``: source time in seconds; ``wall``: ``time.monotonic()`` when it was published."""

    index: int
    time_s: float
    wall: float
    rgb: np.ndarray = field(repr=False)


@dataclass
class ReaderStats:
    read: int = 0  # frames published
    taken: int = 0  # frames handed to the consumer by take()
    dropped: int = 0  # frames overwritten before take(), or skipped to keep up with the clock
    fps: float = 0.0  # the source's nominal frame rate (0: unknown)


def parse_source(source: str | int | Path) -> str | int:
    """A camera index ("0" -> 0), a URL (kept) or an existing file path (else InvalidInputError)."""
    if isinstance(source, int):
        return source
    s = str(source)
    if s.isdigit():
        return int(s)
    if "://" in s:
        return s
    if not Path(s).is_file():
        raise InvalidInputError(f"video source {s!r} is not a file, a camera index or a stream URL")
    return s


class LatestFrameReader:
    """Read ``source`` in a daemon thread; :meth:`take` / :meth:`peek` give the latest frame.

    ``realtime``: pace a file to its frame rate (default True; False reads as fast as it decodes, for
    tools that process every frame).  Cameras and streams are paced by the device.  ``max_side``:
    frames larger than this are downscaled (longest side) as they are read."""

    def __init__(self, source: str | int | Path, *, realtime: bool = True, max_side: int | None = None) -> None:
        self.source = parse_source(source)
        self.is_file = isinstance(self.source, str) and "://" not in self.source
        self.realtime = realtime
        self.max_side = max_side
        self.stats = ReaderStats()
        self.ended = threading.Event()
        self.error: str | None = None
        self._latest: Frame | None = None
        self._latest_taken = True
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cap = None
        self.start_wall: float | None = None

    # ---- lifecycle ----------------------------------------------------------------------------------
    def open(self) -> None:
        import cv2

        cap = cv2.VideoCapture(self.source)
        if not cap.isOpened():
            raise InvalidInputError(f"cannot open the video source {self.source!r} (OpenCV VideoCapture)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.stats.fps = fps if 0.5 < fps < 1000 else 0.0
        self._cap = cap

    def start(self) -> "LatestFrameReader":
        if self._cap is None:
            self.open()
        self._thread = threading.Thread(target=self._run, name="osler-video", daemon=True)
        self._thread.start()
        return self

    @property
    def started(self) -> bool:
        return self._thread is not None

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self.ended.set()
        with self._cond:
            self._cond.notify_all()

    def __enter__(self) -> "LatestFrameReader":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- consumer side ------------------------------------------------------------------------------
    def peek(self) -> Frame | None:
        """The latest frame (None before the first); does not count as taken."""
        with self._cond:
            return self._latest

    def take(self, after: int = -1, timeout: float = 1.0) -> Frame | None:
        """The latest frame with ``index > after``, waiting up to ``timeout`` s; None when none came
        (or the source ended).  Marks it taken (frames overwritten before a take count as dropped)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._latest is None or self._latest.index <= after:
                left = deadline - time.monotonic()
                if left <= 0 or self.ended.is_set():
                    return None
                self._cond.wait(left)
            if not self._latest_taken:
                self.stats.taken += 1
            self._latest_taken = True
            return self._latest

    def video_time(self) -> float:
        """Source time of the latest frame (0 before the first)."""
        f = self.peek()
        return f.time_s if f is not None else 0.0

    def wait_first(self, timeout: float = 10.0) -> Frame | None:
        return self.take(timeout=timeout)

    # ---- reader thread ------------------------------------------------------------------------------
    def _publish(self, index: int, t: float, bgr: np.ndarray) -> None:
        import cv2

        if self.max_side and max(bgr.shape[:2]) > self.max_side:
            s = self.max_side / max(bgr.shape[:2])
            bgr = cv2.resize(bgr, (round(bgr.shape[1] * s), round(bgr.shape[0] * s)), interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(bgr[..., ::-1])
        frame = Frame(index=index, time_s=t, wall=time.monotonic(), rgb=rgb)
        with self._cond:
            if self._latest is not None and not self._latest_taken:
                self.stats.dropped += 1
            self._latest = frame
            self._latest_taken = False
            self.stats.read += 1
            self._cond.notify_all()

    def _run(self) -> None:
        cap = self._cap
        fps = self.stats.fps
        index = -1
        t_first: float | None = None
        try:
            while not self._stop.is_set():
                if self.is_file and self.realtime and fps and self.start_wall is not None:
                    due = self.start_wall + (index + 1) / fps
                    now = time.monotonic()
                    if now < due:
                        time.sleep(due - now)
                    elif now - due > 1.0 / fps:  # behind the clock: skip a frame without decoding it
                        if not cap.grab():
                            break
                        index += 1
                        self.stats.dropped += 1
                        continue
                ok, bgr = cap.read()
                if not ok or bgr is None:
                    break
                index += 1
                now = time.monotonic()
                if self.start_wall is None:
                    self.start_wall = now
                if self.is_file and fps:
                    t = index / fps
                else:
                    t_first = now if t_first is None else t_first
                    t = now - t_first
                self._publish(index, t, bgr)
        except Exception as exc:  # a broken stream ends the source; the error is reported, not raised here
            self.error = f"video source failed: {exc}"
            log.warning("%s", self.error)
        finally:
            self.ended.set()
            with self._cond:
                self._cond.notify_all()
