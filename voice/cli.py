"""``osler voice``: spoken questions about an image.

    osler voice --audio Q.wav --image IMG [--prior P] [--json]       one push-to-talk utterance
    osler voice --audio A.wav --audio yes.wav --image IMG ...       a short dialog, one line each
    osler voice --live --image IMG [--image IMG2 ...] [--mode ptt|wake|both] [--key K]
    osler voice --check                                             which recognisers / voices run here

``--audio`` clips are push-to-talk utterances (no wake word needed) unless ``--mode wake``.
Output: transcript, intent, the ``osler ask`` answer (``--json``: the same JSON object plus
``transcript``, ``intent``, ``slots``, ``spoken_wav`` and a ``voice`` block) and the path of the
spoken answer WAV.  Exit codes: 0 handled, 2 bad audio / input / configuration (one line on
stderr, nothing acted on), 1 unexpected failure.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from tools.settings import PLANNERS

__all__ = ["main", "build_parser"]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="osler voice", description="Hands-free questions and spoken answers, offline.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--audio", action="append", metavar="FILE", help="a recorded utterance (repeat for a dialog)")
    src.add_argument("--live", action="store_true", help="microphone loop (push-to-talk key and/or wake word)")
    src.add_argument("--check", action="store_true", help="which recognisers and voices can run here")
    p.add_argument("--image", action="append", metavar="IMG", help="image(s); 'switch image to next' walks the list")
    p.add_argument("--prior", help="an older study of the same patient")
    p.add_argument("--json", action="store_true", help="one JSON object per utterance")
    p.add_argument("--asr", choices=["auto", "whisper", "pocketsphinx", "speechbrain"], help="recogniser")
    p.add_argument("--tts", choices=["auto", "piper", "espeak", "none"], help="voice of the answers")
    p.add_argument("--mode", choices=["ptt", "wake", "both"], default=None,
                   help="activation: ptt (default for --audio), wake (wake word required), both (live default)")
    p.add_argument("--wake-word", dest="wake_word", help="wake word (default: osler)")
    p.add_argument("--key", help="push-to-talk key in --live (default: space; a foot pedal sends a key)")
    p.add_argument("--out", help="folder for the answer WAVs (default: DATA_DIR/voice)")
    p.add_argument("--planner", choices=list(PLANNERS))
    p.add_argument("--base-url", dest="base_url")
    p.add_argument("--model")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    return p


def _settings(args: argparse.Namespace):
    from tools.entrypoints import make_settings

    from .config import voice_settings

    settings = make_settings(args)
    vs = voice_settings(settings, asr_backend=args.asr, tts_backend=args.tts, wake_word=args.wake_word,
                        ptt_key=args.key, out_dir=args.out)
    return settings, vs


def _print_turn(turn, as_json: bool, one_line: bool = False) -> None:
    if as_json:  # several clips: JSON Lines, one object per utterance
        print(json.dumps(turn.to_json(), indent=None if one_line else 2, default=str))
        return
    h = turn.heard
    print(f'Heard: "{h.transcript}"  ({h.asr_backend}, {h.asr_ms / 1000:.2f} s)')
    if not h.activated:
        print("Not addressed to Osler (no wake word): nothing done.")
        return
    intent = f"{h.intent} {h.slots}" if h.slots else (h.intent or "none: not a command, nothing done")
    print(f"Intent: {intent}")
    if turn.result is not None:
        from ui.render import render_text

        print(render_text(turn.result))
    if turn.action:
        print(f"Done: {turn.action}")
    if turn.spoken_text:
        print(f'Spoken: "{turn.spoken_text}"' + (f"  -> {turn.spoken_wav} ({turn.spoken_backend})"
                                                 if turn.spoken_wav else ""))
    t = turn.timings
    if "latency_ms" in t:
        parts = [f"ASR {t.get('asr_ms', 0) / 1000:.2f}"] + ([f"ask {t['ask_ms'] / 1000:.2f}"] if "ask_ms" in t else []) \
            + ([f"first audio {t['tts_first_ms'] / 1000:.2f}"] if "tts_first_ms" in t else [])
        print(f"Latency: {t['latency_ms'] / 1000:.2f} s ({', '.join(parts)})")


def _check(settings, vs, as_json: bool) -> int:
    from .asr import ASR_BACKENDS, unavailable_reason
    from .tts import check_tts

    report = {"asr": {s.name: (unavailable_reason(s, settings) or "ready") for s in ASR_BACKENDS},
              "tts": {b: (check_tts(settings, b) or "ready") for b in ("piper", "espeak")}}
    from .live import microphone_problem

    report["microphone"] = microphone_problem() or "ready"
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        for group, entries in report.items():
            if isinstance(entries, str):
                print(f"{group:12s} {entries}")
                continue
            print(group)
            for name, state in entries.items():
                print(f"  {name:13s} {state}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from tools.entrypoints import offline_environment

    from tools.errors import OslerError

    offline_environment()
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        settings, vs = _settings(args)
        if args.check:
            return _check(settings, vs, args.json)
        if not args.image:
            print("osler voice: give an image with --image FILE", file=sys.stderr)
            return 2
        from .pipeline import VoiceAssistant

        va = VoiceAssistant(settings, args.image, prior=args.prior, vs=vs)
        if args.live:
            from .live import run_live

            return run_live(va, mode=args.mode or "both")
        mode = "wake" if args.mode == "wake" else "ptt"
        va.load()  # models load once, before the first utterance (not counted as latency)
        failed = 0
        for path in args.audio:
            try:
                turn = va.hear(path, mode=mode, speak=vs.tts_backend != "none")
            except OslerError as exc:  # bad audio: one line, nothing acted on, next clip
                print(f"osler voice: {exc}", file=sys.stderr)
                failed += 1
                continue
            _print_turn(turn, args.json, one_line=len(args.audio) > 1)
        return 2 if failed else 0
    except OslerError as exc:
        print(f"osler voice: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
