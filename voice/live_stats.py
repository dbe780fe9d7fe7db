"""Detection statistics of a live run, from its timeline: detector runs per second, detector and frame-to-box
latency (median, p95), frames read and not taken by the detector."""

from __future__ import annotations

from typing import Any

__all__ = ["detection_stats"]


def _median_p95(values: list[float]) -> tuple[float, float]:
    v = sorted(values)
    return v[len(v) // 2], v[min(len(v) - 1, int(0.95 * len(v)))]


def detection_stats(detections: list[dict[str, Any]], reader_stats: Any, backend: str | None,
                    colourless_frames: int) -> dict[str, Any]:
    """``detections``: the timeline's detector runs (``detector_ms``, ``latency_ms``, ``wall_s``); ``reader_stats``:
    the frame reader's counters (``read``, ``dropped``, ``fps``)."""
    source = {"frames_read": reader_stats.read, "frames_dropped": reader_stats.dropped, "source_fps": reader_stats.fps,
              "backend": backend, "colourless_frames": colourless_frames}
    if not detections:
        return {"runs": 0, **source}
    ms_med, ms_p95 = _median_p95([x["detector_ms"] for x in detections])
    lat_med, lat_p95 = _median_p95([x["latency_ms"] for x in detections])
    span = detections[-1]["wall_s"] - detections[0]["wall_s"]
    return {"runs": len(detections), "detections_per_s": round((len(detections) - 1) / span, 2) if span > 0 else None,
            "detector_ms_median": ms_med, "detector_ms_p95": ms_p95, "latency_ms_median": lat_med,
            "latency_ms_p95": lat_p95, **source}
