"""``osler live``: questions about a live endoscope video, hands-free.

    osler live --video FILE|CAMERA_INDEX|URL [--audio-script SCRIPT.json] [--json] [--out DIR]
               [--rate HZ] [--persist N] [--mic] [--tts piper|espeak|none] [--duration S]

The polyp detector runs continuously on the latest frame (``--rate`` runs per second at most) and its
boxes are smoothed (a box must persist ``--persist`` detector runs).  Questions are answered on the
frame current when they ended:

* ``--audio-script``: a JSON list of ``{"time": s, "audio": WAV}`` / ``{"time": s, "question": text}``
  (see :mod:`voice.live_script`); a file source plays at its own frame rate;
* ``--mic``: push-to-talk from the microphone (space starts and stops, q quits);
* otherwise typed questions, one per line on stdin (an empty line or EOF ends the session early for a
  camera; a file plays to its end).

``--json`` prints one JSON object per answer on its own line (the keys of ``osler ask --json`` plus
``transcript``, ``frame_index``, ``frame_time``, ``spoken_text`` and a ``live`` block); a summary goes to
stderr.  ``--out DIR`` writes ``timeline.json`` (every detector run and every answer), ``answers.jsonl``
and ``frames/`` (the frames the answers used, as PNG).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser", "live_recognizer"]

log = logging.getLogger(__name__)


def _pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values."""
    k = max(0, min(len(sorted_values) - 1, int(round(q / 100.0 * (len(sorted_values) - 1)))))
    return round(sorted_values[k], 1)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="osler live", description="Questions about a live endoscope video.")
    p.add_argument("--video", required=True, help="a video file, a camera index (0) or a stream URL")
    p.add_argument("--audio-script", dest="script", type=Path, help="JSON list of {time, audio|question} entries")
    p.add_argument("--json", action="store_true", help="one JSON object per answer per line")
    p.add_argument("--out", type=Path, help="folder for timeline.json, answers.jsonl and the frames used")
    p.add_argument("--rate", type=float, default=5.0, help="detector runs per second at most (default 5)")
    p.add_argument("--persist", type=int, default=3, help="detector runs a box must persist to be shown (default 3)")
    p.add_argument("--max-side", dest="max_side", type=int, default=640, help="downscale larger frames (default 640)")
    p.add_argument("--mic", action="store_true", help="push-to-talk from the microphone")
    p.add_argument("--tts", choices=["auto", "piper", "espeak", "none"], help="answer voice (default: settings)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (cameras and streams)")
    return p


def live_recognizer(settings: Any, vs: Any) -> Any:
    """Whisper with its configured prompt, the n-best list (``voice.whisper_nbest``) rescored against
    the live grammar (:mod:`voice.live_commands`) and, with ``voice.whisper_grammar``, every live command
    scored against the audio (:mod:`voice.asr_grammar`).  The live prompt (:data:`voice.live_commands.LIVE_PROMPT`)
    was measured too and is not the default: it got a few more commands right but made more WRONG ones
    (Whisper wrote its phrases on noise; docs/voice.md).  Other backends as configured."""
    from voice.asr import build_recognizer, live_whisper

    if vs.asr_backend in ("whisper", "auto"):
        from voice.asr_whisper import check

        if check(settings) is None:
            return live_whisper(settings, vs)
    return build_recognizer(settings, vs)


def _emit(out: dict[str, Any], args: argparse.Namespace, stdout: Any, sink: Any) -> None:
    line = json.dumps(out, default=str)
    if sink is not None:
        sink.write(line + "\n")
        sink.flush()
    if args.json:
        stdout.write(line + "\n")
        stdout.flush()
    else:
        heard = f'"{out.get("transcript")}" ' if out.get("transcript") is not None else ""
        print(f"[{out['frame_time']:.1f} s, frame {out['frame_index']}] {heard}-> {out.get('answer')}", file=stdout,
              flush=True)


def _typed(engine: Any, emit: Any, stop: threading.Event) -> None:
    for line in sys.stdin:
        q = line.strip()
        if not q:
            break
        snap = engine.snapshot()
        if snap is not None:
            emit(engine.answer(snap, text=q))
    stop.set()


def _mic(engine: Any, recognizer: Any, vs: Any, emit: Any, stop: threading.Event) -> None:
    import numpy as np

    from tools.errors import ConfigurationError, OslerError
    from voice.activation import KeyReader
    from voice.audio import ASR_RATE, from_array, prepare
    from voice.live import BLOCK, microphone_problem
    from voice.live_script import hear_live

    problem = microphone_problem()
    if problem:
        raise ConfigurationError(problem)
    import sounddevice as sd

    blocks: list[np.ndarray] | None = None

    def callback(indata, _n, _t, _status):
        if blocks is not None:
            blocks.append(indata[:, 0].copy())

    print("Push-to-talk: space starts and stops; q quits.", file=sys.stderr, flush=True)
    with KeyReader() as keys, sd.InputStream(samplerate=ASR_RATE, channels=1, dtype="float32", blocksize=BLOCK,
                                             callback=callback):
        while not stop.is_set():
            k = keys.poll(0.05)
            if k == "q":
                break
            if k == (vs.ptt_key or " "):
                if blocks is None:
                    blocks = []
                    continue
                clip, blocks = np.concatenate(blocks) if blocks else np.zeros(0, np.float32), None
                snap = engine.snapshot()  # the key release is the end of speech
                try:
                    audio = prepare(from_array(clip, ASR_RATE, source="microphone"), vs)
                except OslerError as exc:
                    print(f"[not used] {exc}", file=sys.stderr, flush=True)
                    continue
                if snap is not None:
                    out = hear_live(engine, snap, audio, recognizer, vs.wake_word, ask_level=vs.ask_level,
                                    reply_level=vs.reply_level)
                    emit(out)
                    if out.get("spoken_wav"):
                        import soundfile as sf

                        data, rate = sf.read(out["spoken_wav"], dtype="float32")
                        sd.play(data, rate)
    stop.set()


def main(argv: list[str] | None = None) -> int:
    from agent.private_files import open_private, private_dir, write_private_text
    from tools.entrypoints import make_settings
    from voice.config import voice_settings
    from voice.live_script import ScriptReplayer, load_script
    from voice.live_video import LiveEngine, LiveOptions
    from voice.tts import Voice
    from voice.video import LatestFrameReader

    args = build_parser().parse_args(argv)
    settings = make_settings()
    vs = voice_settings(settings, tts_backend=args.tts, out_dir=(args.out / "speech") if args.out else None)
    stdout = sys.stdout
    entries = load_script(args.script) if args.script else []
    if args.out:
        private_dir(args.out)
    sink = open_private(args.out / "answers.jsonl") if args.out else None
    with contextlib.redirect_stdout(sys.stderr):  # libraries that print must not corrupt --json output
        reader = LatestFrameReader(args.video, max_side=args.max_side)
        reader.open()
        engine = LiveEngine(settings, reader, options=LiveOptions(rate_hz=args.rate, min_hits=args.persist),
                            out_dir=args.out, voice=Voice(settings, vs) if vs.tts_backend != "none" else None)
        recognizer = live_recognizer(settings, vs) if (entries and any(e.audio for e in entries)) or args.mic else None
        replayer = ScriptReplayer(engine, entries, recognizer=recognizer, vs=vs) if entries else None
        if recognizer is not None:
            recognizer.load()
        if engine.voice is not None:
            engine.voice.load()
        engine.load()
        # warm-up: the first planner call builds the tool schemas and loads the models
        engine.assistant.pool.classifier("image_kind")

        def emit(out: dict[str, Any]) -> None:
            _emit(out, args, stdout, sink)

        stop = threading.Event()
        t0 = time.monotonic()
        engine.start()
        try:
            if replayer is not None:
                replayer.run(emit)
            elif args.mic:
                threading.Thread(target=_mic, args=(engine, recognizer, vs, emit, stop), daemon=True).start()
            else:
                threading.Thread(target=_typed, args=(engine, emit, stop), daemon=True).start()
            while not reader.ended.is_set() and not (stop.is_set() and not reader.is_file):
                if args.duration and time.monotonic() - t0 > args.duration:
                    break
                reader.ended.wait(0.1)
        except KeyboardInterrupt:
            pass
        finally:
            engine.stop()
            if sink is not None:
                sink.close()
    timeline = engine.timeline()
    timeline["wall_s"] = round(time.monotonic() - t0, 2)
    spoken = [a["live"]["timings_ms"] for a in timeline["answers"]
              if a["live"].get("audio") and "latency_ms" in a["live"].get("timings_ms", {})]
    lat = sorted(t["latency_ms"] for t in spoken)
    if lat:
        busy = sorted(t["latency_ms"] - t.get("queue_ms", 0.0) for t in spoken)
        timeline["speech_latency_ms"] = {
            "n": len(lat), "median": _pct(lat, 50), "p95": _pct(lat, 95),
            "without_queue_median": _pct(busy, 50), "without_queue_p95": _pct(busy, 95),
            "what": "end of speech to the first audio of the answer; 'without_queue' leaves out the wait for "
                    "the previous answer to finish"}
    if args.out:
        write_private_text(args.out / "timeline.json", json.dumps(timeline, indent=1, default=str))
    stats = timeline["detection_stats"]
    print(f"osler live: {len(timeline['answers'])} answers; detector {stats.get('detections_per_s')} runs/s "
          f"(median {stats.get('detector_ms_median')} ms, frame-to-box latency median {stats.get('latency_ms_median')} "
          f"ms), {stats.get('frames_read', 0)} frames read, {stats.get('frames_dropped', 0)} not taken"
          + (f"; end of speech to first audio median {_pct(lat, 50):.0f} ms, p95 {_pct(lat, 95):.0f} ms over "
             f"{len(lat)} spoken questions" if lat else ""),
          file=sys.stderr)
    if engine.detect_error:
        print(f"osler live: the detector stopped: {engine.detect_error}", file=sys.stderr)
    if engine.colourless_frames:
        print(f"osler live: {engine.colourless_frames} frames had no colour; the polyp detector (trained on colour "
              f"endoscopy) skipped them, so they show no boxes and their counts are refused", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
