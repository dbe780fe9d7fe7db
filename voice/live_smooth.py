"""Temporal smoothing of per-frame detections, and the live view's overlay.  Pure functions over arrays.

:class:`DetectionSmoother` keeps tracks of boxes across detector runs (greedy IoU matching).  A track is
*confirmed* (shown, counted, used as a prompt) once it has been matched on ``min_hits`` detector runs,
and it stays confirmed through up to ``max_missed`` runs without a match (a blink of the detector does
not make the box flicker), then it is dropped.  Boxes are ``xyxy`` pixels of the frame; the shown box is
an exponential moving average (weight ``alpha`` on the newest detection).

"Frames" here are detector runs: at a detection rate of 5 Hz, ``min_hits=3`` means the polyp was seen
in three consecutive detector runs (0.4 s or more).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Track", "DetectionSmoother", "iou_matrix", "draw_live"]


@dataclass
class Track:
    id: int
    box: np.ndarray  # (4,) float xyxy, smoothed
    score: float
    hits: int = 1
    missed: int = 0
    first_index: int = 0
    last_index: int = 0
    history: list[int] = field(default_factory=list)  # frame indices where it was matched

    def as_dict(self) -> dict:
        return {"id": self.id, "box_xyxy": [round(float(v), 1) for v in self.box], "score": round(self.score, 3),
                "hits": self.hits, "missed": self.missed, "first_frame": self.first_index,
                "last_frame": self.last_index}

    @property
    def center(self) -> tuple[float, float]:
        return float((self.box[0] + self.box[2]) / 2), float((self.box[1] + self.box[3]) / 2)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` (N, 4) with every box of ``b`` (M, 4), xyxy -> (N, M)."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


class DetectionSmoother:
    """Tracks across detector runs; :meth:`update` returns the confirmed tracks."""

    def __init__(self, min_hits: int = 3, max_missed: int = 2, iou_match: float = 0.3, alpha: float = 0.6) -> None:
        if min_hits < 1 or max_missed < 0 or not 0 < iou_match <= 1 or not 0 < alpha <= 1:
            raise ValueError("min_hits >= 1, max_missed >= 0, 0 < iou_match <= 1, 0 < alpha <= 1")
        self.min_hits, self.max_missed, self.iou_match, self.alpha = min_hits, max_missed, iou_match, alpha
        self.tracks: list[Track] = []
        self._next_id = 1

    def update(self, boxes: np.ndarray, scores: np.ndarray, frame_index: int) -> list[Track]:
        """Feed one detector run: ``boxes`` (N, 4) xyxy, ``scores`` (N,)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(scores, np.float64).reshape(-1)
        iou = iou_matrix(np.array([t.box for t in self.tracks]).reshape(-1, 4), boxes)
        matched_t: set[int] = set()
        matched_d: set[int] = set()
        for ti, di in sorted(np.argwhere(iou >= self.iou_match).tolist(), key=lambda p: -iou[p[0], p[1]]):
            if ti in matched_t or di in matched_d:
                continue
            matched_t.add(ti)
            matched_d.add(di)
            t = self.tracks[ti]
            t.box = self.alpha * boxes[di] + (1 - self.alpha) * t.box
            t.score = float(self.alpha * scores[di] + (1 - self.alpha) * t.score)
            t.hits += 1
            t.missed = 0
            t.last_index = frame_index
            t.history.append(frame_index)
        for ti, t in enumerate(self.tracks):
            if ti not in matched_t:
                t.missed += 1
                if t.hits < self.min_hits:
                    t.hits = 0  # a candidate must persist on consecutive runs
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed and t.hits > 0]
        for di in range(len(boxes)):
            if di not in matched_d:
                self.tracks.append(Track(self._next_id, boxes[di].copy(), float(scores[di]), first_index=frame_index,
                                         last_index=frame_index, history=[frame_index]))
                self._next_id += 1
        return self.confirmed()

    def confirmed(self) -> list[Track]:
        return [t for t in self.tracks if t.hits >= self.min_hits]

    def reset(self) -> None:
        self.tracks = []


def draw_live(rgb: np.ndarray, tracks: list[Track], status: str, raw_boxes: np.ndarray | None = None,
              frozen: bool = False) -> np.ndarray:
    """The live view: confirmed tracks as green boxes with their score, unconfirmed raw detections as thin
    grey boxes, a status line at the top (red when frozen).  Returns a new uint8 (H, W, 3) RGB image."""
    import cv2

    out = np.ascontiguousarray(rgb.copy())
    h, w = out.shape[:2]
    thick = max(1, round(max(h, w) / 250))
    if raw_boxes is not None:
        for b in np.asarray(raw_boxes).reshape(-1, 4):
            cv2.rectangle(out, (int(b[0]), int(b[1])), (int(b[2]), int(b[3])), (170, 170, 170), 1)
    for t in tracks:
        x1, y1, x2, y2 = (int(round(v)) for v in t.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), (40, 230, 40), thick + 1)
        cv2.putText(out, f"polyp {t.score:.2f}", (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thick, (40, 230, 40), thick)
    bar = int(14 * thick)
    out[:bar] = (out[:bar] * 0.4).astype(np.uint8)
    cv2.putText(out, status, (4, bar - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.38 * thick,
                (255, 60, 60) if frozen else (255, 255, 255), thick)
    return out
