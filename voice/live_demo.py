"""A test video from real endoscopy frames, and a scripted spoken session to play against it.

:func:`make_pan_zoom_video` writes (OpenCV, MJPG/AVI) a slow pan and zoom across a polyp frame and
then across a negative frame, and returns the ground truth per video frame: the polyp's box moved and
scaled with the crop (None on negative frames, or when less than half of the polyp is in view).

    python -m voice.live_demo --out runs/live_demo [--data ../shared/data]

makes the video from held-out EndoTect frames (validation list of ``experts/weights/polyp_yolo.md``),
speaks the script's questions with the bundled piper voice, runs ``osler live`` on them and prints the
detection rate, the detection recall/false-positive rate against the ground truth and the
end-of-speech-to-first-audio latency (median, p95).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["POLYP_FRAME", "NEGATIVE_FRAME", "GroundTruth", "make_pan_zoom_video", "score_detections",
           "DEMO_SCRIPT", "latency_script", "write_script", "main"]

# held-out EndoTect frames (never trained on): one polyp, and an ulcerative colitis frame without polyp
POLYP_FRAME = "00c7089c-caf9-4c1b-850f-bedbb11668fc"
NEGATIVE_FRAME = "0da47e4e-d994-44b5-86aa-0fd8ba92c62e"


@dataclass(frozen=True)
class GroundTruth:
    index: int
    time_s: float
    segment: str  # "polyp" | "negative"
    box: tuple[float, float, float, float] | None  # xyxy in video pixels; None: no polyp in view


def _crop_schedule(n: int, zoom_from: float, zoom_to: float, pan: tuple[float, float, float, float]):
    """(scale, cx, cy) per frame: the crop window's size as a fraction of the image and its centre
    (fractions), moving linearly."""
    for k in range(n):
        a = k / max(1, n - 1)
        yield (zoom_from + (zoom_to - zoom_from) * a, pan[0] + (pan[2] - pan[0]) * a, pan[1] + (pan[3] - pan[1]) * a)


def make_pan_zoom_video(out: Path, data_root: Path, *, size: tuple[int, int] = (256, 192), fps: float = 10.0,
                        polyp_s: float = 6.0, negative_s: float = 6.0) -> list[GroundTruth]:
    """Write the video to ``out`` (.avi, MJPG) and return the per-frame ground truth."""
    import cv2

    root = data_root / "endotect_polyps"
    img = cv2.imread(str(root / "images" / f"{POLYP_FRAME}.jpg"))
    mask = cv2.imread(str(root / "masks" / f"{POLYP_FRAME}.png"), cv2.IMREAD_GRAYSCALE) > 127
    neg = cv2.imread(str(root / "negatives" / "images" / f"{NEGATIVE_FRAME}.jpg"))
    if img is None or neg is None or mask is None:
        raise FileNotFoundError(f"EndoTect frames missing under {root}")
    w, h = size
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {out}")
    truth: list[GroundTruth] = []
    total_area = float(mask.sum())
    segments = (("polyp", img, mask, int(round(polyp_s * fps)), 1.0, 0.7, (0.5, 0.5, 0.42, 0.52)),
                ("negative", neg, None, int(round(negative_s * fps)), 0.8, 0.65, (0.45, 0.5, 0.55, 0.5)))
    index = 0
    for name, src, m, n, z0, z1, pan in segments:
        H, W = src.shape[:2]
        for scale, fx, fy in _crop_schedule(n, z0, z1, pan):
            cw, ch = W * scale, H * scale
            x0 = float(np.clip(fx * W - cw / 2, 0, W - cw))
            y0 = float(np.clip(fy * H - ch / 2, 0, H - ch))
            A = np.array([[w / cw, 0, -x0 * w / cw], [0, h / ch, -y0 * h / ch]], np.float64)
            frame = cv2.warpAffine(src, A, (w, h), flags=cv2.INTER_AREA)
            writer.write(frame)
            box = None
            if m is not None:
                mw = cv2.warpAffine(m.astype(np.uint8) * 255, A, (w, h), flags=cv2.INTER_NEAREST) > 127
                ys, xs = np.nonzero(mw)
                seen = mw.sum() / (total_area * (w / cw) * (h / ch))
                if xs.size and seen >= 0.5:
                    box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
            truth.append(GroundTruth(index, index / fps, name, box))
            index += 1
    writer.release()
    return truth


def score_detections(timeline: dict, truth: list[GroundTruth], iou_min: float = 0.3, warmup_runs: int = 3) -> dict:
    """Smoothed detections vs ground truth, per detector run: recall on polyp frames (a smoothed box with
    IoU >= ``iou_min``), runs with any smoothed box on negative frames.  The first ``warmup_runs`` runs of
    each segment are left out (a box must persist before it is shown)."""
    from .live_smooth import iou_matrix

    by_index = {g.index: g for g in truth}
    seg_runs: dict[str, int] = {}
    hit = polyp_runs = fp = neg_runs = 0
    for d in timeline["detections"]:
        g = by_index.get(d["frame_index"])
        if g is None:
            continue
        seg_runs[g.segment] = seg_runs.get(g.segment, 0) + 1
        if seg_runs[g.segment] <= warmup_runs:
            continue
        boxes = np.array([s["box_xyxy"] for s in d["smoothed"]]).reshape(-1, 4)
        if g.box is not None:
            polyp_runs += 1
            hit += int(bool(len(boxes)) and iou_matrix(np.array([g.box]), boxes).max() >= iou_min)
        elif g.segment == "negative":
            neg_runs += 1
            fp += int(len(boxes) > 0)
    return {"polyp_runs": polyp_runs, "polyp_detected": hit,
            "recall": round(hit / polyp_runs, 3) if polyp_runs else None,
            "negative_runs": neg_runs, "negative_with_box": fp,
            "false_positive_rate": round(fp / neg_runs, 3) if neg_runs else None}


# (time the speaker starts, words); the answers expected from the ground truth are checked by the test
DEMO_SCRIPT: tuple[tuple[float, str], ...] = (
    (1.5, "Osler, how many polyps are visible?"),
    (4.0, "Osler, freeze."),
    (6.5, "Osler, how many polyps are visible?"),
    (9.0, "Osler, unfreeze."),
    (10.0, "Osler, how many polyps are visible?"),
)


def latency_script(seconds: float, every_s: float = 4.0) -> tuple[tuple[float, str], ...]:
    """Count and detect questions every ``every_s`` seconds over ``seconds`` of video (the latency run)."""
    words = ("Osler, how many polyps are visible?", "Osler, is there a polyp?")
    times = np.arange(1.5, seconds - 2.5, every_s)
    return tuple((round(float(t), 2), words[k % 2]) for k, t in enumerate(times))


def write_script(folder: Path, settings: object, entries=DEMO_SCRIPT) -> Path:
    """Speak each entry with the bundled piper voice (espeak-ng fallback) and write ``script.json``."""
    from .config import voice_settings
    from .tts import synthesize

    folder.mkdir(parents=True, exist_ok=True)
    vs = voice_settings(settings, out_dir=folder)
    items = []
    for k, (t, words) in enumerate(entries):
        wav = synthesize(words, settings, vs=vs, path=folder / f"q{k + 1}.wav")
        items.append({"time": t, "audio": wav.name})
    p = folder / "script.json"
    p.write_text(json.dumps(items, indent=1))
    return p


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m voice.live_demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/live_demo"))
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    p.add_argument("--rate", type=float, default=5.0)
    p.add_argument("--long", action="store_true", help="20 s + 20 s video, a count/detect question every 4 s "
                   "(the latency measurement)")
    args = p.parse_args(argv)
    from tools.entrypoints import make_settings, offline_environment
    from ui.live import main as live_main

    offline_environment()
    args.out.mkdir(parents=True, exist_ok=True)
    seg = 20.0 if args.long else 6.0
    truth = make_pan_zoom_video(args.out / "video.avi", args.data, polyp_s=seg, negative_s=seg)
    script = write_script(args.out / "script", make_settings(),
                          latency_script(2 * seg) if args.long else DEMO_SCRIPT)
    rc = live_main(["--video", str(args.out / "video.avi"), "--audio-script", str(script), "--json",
                    "--out", str(args.out / "run"), "--rate", str(args.rate)])
    timeline = json.loads((args.out / "run" / "timeline.json").read_text())
    report = {"detection_stats": timeline["detection_stats"], "speech_latency_ms": timeline.get("speech_latency_ms"),
              "accuracy": score_detections(timeline, truth),
              "answers": [{"frame_index": a["frame_index"], "frame_time": a["frame_time"], "heard": a.get("transcript"),
                           "value": a.get("value"), "answer": a.get("answer"),
                           "truth": "polyp" if truth[a["frame_index"]].box else "none",
                           "timings_ms": a["live"].get("timings_ms")} for a in timeline["answers"]]}
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1), file=sys.stderr)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
