"""Voice benchmark: recognition and command accuracy in operating-room-like noise, false
activations, and latency from end of speech to first answer audio.  ``osler bench voice``.

    osler bench voice                                   default run: a few minutes on an idle 2-core CPU
    osler bench voice --full                            every command, five voices
    osler bench voice --backends whisper --snr 10 --noises babble

Reports, per recogniser x noise type x SNR: WER (against "osler <command>"), intent+slot accuracy
with push-to-talk, commands rejected (safe) and commands WRONG (unsafe), wake-word hit rate;
false activations per hour on chatter (synthetic and human) and noise-only audio in hands-free
mode; WER on human recordings (Debian ``pocketsphinx-testdata``); latency of count/detect
questions (median, p95) with the real planner and the piper voice.  Writes JSON and a Markdown
table to ``--out`` (default ``runs/voice_bench``).

Synthetic speech is no substitute for recordings of real staff in a real theatre; the numbers
rank configurations, they do not certify clinical use.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .activation import gate
from .audio import ASR_RATE, Audio
from .commands import parse_command
from .normalize import normalize

__all__ = ["main", "wer", "run_benchmark"]

log = logging.getLogger(__name__)

DISCLAIMER = ("Synthetic speech (espeak-ng, piper) and mixed-in noise are no substitute for recordings of real "
              "staff in a real operating room; use these numbers to compare configurations, not to certify use.")
SMEAR = "bccd/images/BloodImage_00001.jpg"


def wer(ref: str, hyp: str) -> tuple[int, int]:
    """(word edits, reference words) after normalisation (Levenshtein over words)."""
    r, h = normalize(ref).split(), normalize(hyp).split()
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


def _pct(a: float, b: float) -> float | None:
    return round(100.0 * a / b, 1) if b else None


def _transcribe(rec: Any, x: np.ndarray) -> tuple[str, float]:
    t0 = time.perf_counter()
    text = rec.transcribe(Audio(x, ASR_RATE, "bench")).text
    return text, (time.perf_counter() - t0) * 1000


def _commands_block(rec, clips, conditions, mixer, vs, details: list | None = None) -> list[dict[str, Any]]:
    rows = []
    for kind, snr in conditions:
        agg = dict(edits=0, words=0, n=0, correct=0, rejected=0, wrong=0, woke=0, wake_correct=0, ms=[])
        for k, (cmd, intent, slots, voice, x) in enumerate(clips):
            y = mixer.mix(x, kind, snr, seed=1000 * k + int(snr or 0))
            text, ms = _transcribe(rec, y)
            e, w = wer(f"osler {cmd}", text)
            agg["edits"] += e
            agg["words"] += w
            agg["n"] += 1
            agg["ms"].append(ms)
            g = gate(text, "ptt", vs.wake_word)
            c = parse_command(g.text)
            outcome = "rejected" if c is None else ("correct" if c.intent == intent and c.slots == slots else "wrong")
            agg[outcome] += 1
            if details is not None:
                details.append({"backend": rec.name, "noise": kind, "snr_db": snr, "voice": voice, "said": cmd,
                                "heard": text, "outcome": outcome})
            gw = gate(text, "wake", vs.wake_word)
            if gw.activated:
                agg["woke"] += 1
                cw = parse_command(gw.text)
                agg["wake_correct"] += int(cw is not None and cw.intent == intent and cw.slots == slots)
        rows.append({"backend": rec.name, "noise": kind, "snr_db": snr, "n": agg["n"],
                     "wer_pct": _pct(agg["edits"], agg["words"]), "intent_acc_pct": _pct(agg["correct"], agg["n"]),
                     "rejected_pct": _pct(agg["rejected"], agg["n"]), "wrong_pct": _pct(agg["wrong"], agg["n"]),
                     "wake_hit_pct": _pct(agg["woke"], agg["n"]),
                     "wake_and_intent_pct": _pct(agg["wake_correct"], agg["n"]),
                     "asr_ms_median": round(statistics.median(agg["ms"]), 1)})
        log.info("%s %s %s: %s", rec.name, kind, snr, rows[-1])
        print(f"  {rec.name:12s} {kind:6s} {str(snr):>4s} dB  intent {rows[-1]['intent_acc_pct']}%  "
              f"WER {rows[-1]['wer_pct']}%", file=sys.stderr, flush=True)
    return rows


def _false_block(rec, material: dict[str, list[np.ndarray]], vs) -> list[dict[str, Any]]:
    rows = []
    for name, clips in material.items():
        seconds = sum(len(c) for c in clips) / ASR_RATE
        wakes = commands = ptt_commands = 0
        for x in clips:
            text, _ = _transcribe(rec, x)
            g = gate(text, "wake", vs.wake_word)
            wakes += int(g.woke)
            commands += int(g.activated and parse_command(g.text) is not None)
            ptt_commands += int(parse_command(gate(text, "ptt", vs.wake_word).text) is not None)
        hours = seconds / 3600.0
        from scipy.stats import chi2

        upper = float(chi2.ppf(0.95, 2 * (commands + 1)) / 2.0)  # one-sided 95% Poisson bound (0 events: 3.0)
        rows.append({"backend": rec.name, "material": name, "clips": len(clips), "minutes": round(seconds / 60, 2),
                     "false_wakes": wakes, "false_commands": commands,
                     "false_commands_per_hour": round(commands / hours, 1) if hours else None,
                     "false_commands_per_hour_95ub": round(upper / hours, 1) if hours else None,
                     "false_wakes_per_hour": round(wakes / hours, 1) if hours else None,
                     "ptt_parsed_as_command": ptt_commands})
    return rows


def _human_block(rec, labelled, mixer) -> list[dict[str, Any]]:
    rows = []
    for kind, snr in (("clean", None), ("pink", 10.0)):
        edits = words = 0
        for k, (_name, x, ref) in enumerate(labelled):
            text, _ = _transcribe(rec, mixer.mix(x, kind, snr, seed=7 + k))
            e, w = wer(ref, text)
            edits, words = edits + e, words + w
        rows.append({"backend": rec.name, "noise": kind, "snr_db": snr, "n": len(labelled),
                     "wer_pct": _pct(edits, words)})
    return rows


def _latency_block(rec, settings, vs, clips, mixer, data_root: Path) -> dict[str, Any]:
    from .pipeline import VoiceAssistant
    from .tts import Voice

    voice = Voice(settings, vs)
    va = VoiceAssistant(settings, [data_root / SMEAR], vs=vs, recognizer=rec, voice=voice)
    va.load()
    va.assistant.ask(va.session, "How many white cells are visible?")  # warm the experts once
    turns = []
    for k, (cmd, intent, _slots, voice_name, x) in enumerate(clips):
        if intent not in ("count", "detect_polyp"):
            continue
        for kind, snr in (("clean", None), ("pink", 10.0)):
            y = mixer.mix(x, kind, snr, seed=50 + k)
            c0 = time.process_time()
            try:
                turn = va.hear(Audio(y, ASR_RATE, "bench"), mode="ptt")
            except Exception as exc:  # a refused clip is a result, not a crash
                turns.append({"cmd": cmd, "voice": voice_name, "noise": kind, "error": str(exc)})
                continue
            t = turn.timings
            turns.append({"cmd": cmd, "voice": voice_name, "noise": kind, "intent": turn.heard.intent,
                          "latency_ms": round(t.get("latency_ms", 0), 1), "asr_ms": round(t.get("asr_ms", 0), 1),
                          "ask_ms": round(t.get("ask_ms", 0), 1), "tts_first_ms": round(t.get("tts_first_ms", 0), 1),
                          "cpu_s": round(time.process_time() - c0, 3), "tts": turn.spoken_backend,
                          "spoken": turn.spoken_text})
    lat = [t["latency_ms"] for t in turns if "latency_ms" in t and t.get("intent") in ("count", "detect_polyp")]
    cpu = [t["cpu_s"] for t in turns if "cpu_s" in t]
    summary = {"backend": rec.name, "n": len(lat)}
    if lat:
        summary.update(median_ms=round(statistics.median(lat), 1), p95_ms=round(float(np.percentile(lat, 95)), 1),
                       median_asr_ms=round(statistics.median(t["asr_ms"] for t in turns if "asr_ms" in t), 1),
                       median_ask_ms=round(statistics.median(t["ask_ms"] for t in turns if "ask_ms" in t), 1),
                       median_tts_first_ms=round(statistics.median(t["tts_first_ms"] for t in turns
                                                                   if "tts_first_ms" in t), 1),
                       median_cpu_s=round(statistics.median(cpu), 3))
    return {"summary": summary, "turns": turns}


def _tts_first_audio(settings, vs) -> list[dict[str, Any]]:
    from .tts import Voice

    rows = []
    for backend in ("piper", "espeak"):
        v = Voice(settings, vs.model_copy(update={"tts_backend": backend}))
        try:
            v.load()
            v.speak_to_file("Warm up.")
        except Exception as exc:
            rows.append({"tts": backend, "error": str(exc)})
            continue
        firsts = [v.speak_to_file(s).first_audio_ms for s in ("One white blood cell.", "Yes. Two polyps.",
                                                              "Zero platelets.", "This image is a blood smear.")]
        rows.append({"tts": backend, "median_first_audio_ms": round(statistics.median(firsts), 1),
                     "max_first_audio_ms": round(max(firsts), 1)})
    return rows


def run_benchmark(args: argparse.Namespace, settings: Any) -> dict[str, Any]:
    from .asr import build_recognizer
    from .bench_data import (CHATTER, COMMAND_SET, DEFAULT_VOICES, NOISE_TYPES, VOICES, Mixer, human_clips, synth)
    from .config import voice_settings

    out = Path(args.out)
    cache = out / "cache"
    vs = voice_settings(settings, tts_backend="auto", out_dir=out / "answers")
    voices = args.voices.split(",") if args.voices else (list(VOICES)[:5] if args.full else list(DEFAULT_VOICES))
    commands = COMMAND_SET if args.full else COMMAND_SET[: args.commands]
    noises = [n for n in args.noises.split(",") if n != "none"] if args.noises else list(NOISE_TYPES)
    snrs = [float(s) for s in args.snr.split(",")]
    conditions = [("clean", None)] + [(n, s) for n in noises for s in snrs] + ([] if args.no_reverb else [("reverb", None)])
    t_start = time.perf_counter()
    print(f"voice bench: {len(commands)} commands x {len(voices)} voices x {len(conditions)} conditions; "
          "synthesising...", file=sys.stderr, flush=True)
    clips = [(cmd, intent, slots, v, synth(f"Osler, {cmd}?", v, cache, settings))
             for v in voices for cmd, intent, slots in commands]
    chatter_voices = voices[:2]
    chatter = [synth(s, v, cache, settings) for v in chatter_voices for s in (CHATTER if args.full else CHATTER[:8])]
    mixer = Mixer(cache, prefer_speechbrain=args.mixer != "numpy")
    labelled, unlabelled = human_clips() if not args.no_human else ([], [])
    noise_only = [mixer.noise_only(k, args.noise_seconds, lvl, seed=i)
                  for i, (k, lvl) in enumerate((k, lvl) for k in noises for lvl in (0.3, 0.1, 0.03))]
    material = {"synthetic chatter": chatter, "noise only": noise_only}
    if labelled or unlabelled:
        material["human speech (no wake word)"] = [x for _, x, _ in labelled] + [x for _, x in unlabelled]
    report: dict[str, Any] = {
        "disclaimer": DISCLAIMER, "mixer": mixer.name, "voices": voices, "commands": [c for c, _, _ in commands],
        "conditions": [f"{k}@{s}" if s is not None else k for k, s in conditions],
        "commands_block": [], "false_activations": [], "human_wer": [], "latency": [], "tts": [],
    }
    try:
        for name in args.backends.split(","):
            rec = build_recognizer(settings, vs, name)
            try:
                rec.load()
            except Exception as exc:
                report.setdefault("skipped", {})[name] = str(exc)
                print(f"  {name}: skipped ({exc})", file=sys.stderr)
                continue
            report["commands_block"] += _commands_block(rec, clips, conditions, mixer, vs,
                                                        report.setdefault("transcripts", []))
            report["false_activations"] += _false_block(rec, material, vs)
            if labelled and name != "pocketsphinx":  # a grammar decoder cannot write free speech
                report["human_wer"] += _human_block(rec, labelled, mixer)
            if not args.no_latency:
                lat = _latency_block(rec, settings, vs, clips, mixer, Path(settings.shared_data))
                report["latency"].append(lat["summary"])
                report.setdefault("latency_turns", []).extend(lat["turns"])
        if not args.no_latency:
            report["tts"] = _tts_first_audio(settings, vs)
    finally:
        mixer.close()
    report["human_clips"] = {"labelled": len(labelled), "unlabelled": len(unlabelled)}
    report["wall_s"] = round(time.perf_counter() - t_start, 1)
    try:
        import os

        report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return report


def render_markdown(r: dict[str, Any]) -> str:
    L = [f"> {r['disclaimer']}", "", f"Mixer: {r['mixer']}. Voices: {', '.join(r['voices'])}. "
         f"{len(r['commands'])} commands, each spoken as 'Osler, <command>?'. Wall time {r.get('wall_s')} s, "
         f"load average {r.get('load_average')}.", "",
         "| backend | noise | SNR dB | n | WER % | intent+slots % | rejected % | WRONG % | wake hit % | ASR ms (median) |",
         "|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["commands_block"]:
        L.append(f"| {x['backend']} | {x['noise']} | {x['snr_db'] if x['snr_db'] is not None else '-'} | {x['n']} | "
                 f"{x['wer_pct']} | {x['intent_acc_pct']} | {x['rejected_pct']} | {x['wrong_pct']} | "
                 f"{x['wake_hit_pct']} | {x['asr_ms_median']} |")
    L += ["", "False activations in hands-free (wake-word) mode:", "",
          "| backend | material | clips | minutes | false wakes | false commands | false commands / hour "
          "(95% upper bound) | push-to-talk parsed as command |", "|---|---|---|---|---|---|---|---|"]
    for x in r["false_activations"]:
        L.append(f"| {x['backend']} | {x['material']} | {x['clips']} | {x['minutes']} | {x['false_wakes']} | "
                 f"{x['false_commands']} | {x['false_commands_per_hour']} ({x['false_commands_per_hour_95ub']}) | "
                 f"{x['ptt_parsed_as_command']} |")
    if r["human_wer"]:
        L += ["", f"Human recordings (pocketsphinx-testdata, {r['human_clips']['labelled']} labelled clips):", "",
              "| backend | noise | SNR dB | WER % |", "|---|---|---|---|"]
        for x in r["human_wer"]:
            L.append(f"| {x['backend']} | {x['noise']} | {x['snr_db'] if x['snr_db'] is not None else '-'} | "
                     f"{x['wer_pct']} |")
    if r["latency"]:
        L += ["", "Latency, end of speech to first answer audio (count/detect questions, clean + pink 10 dB, "
              "real planner, piper voice):", "",
              "| backend | n | median ms | p95 ms | ASR ms | ask ms | TTS first ms | CPU s/turn |",
              "|---|---|---|---|---|---|---|---|"]
        for x in r["latency"]:
            L.append(f"| {x['backend']} | {x['n']} | {x.get('median_ms')} | {x.get('p95_ms')} | "
                     f"{x.get('median_asr_ms')} | {x.get('median_ask_ms')} | {x.get('median_tts_first_ms')} | "
                     f"{x.get('median_cpu_s')} |")
    if r["tts"]:
        L += ["", "| voice | median first audio ms | max ms |", "|---|---|---|"]
        for x in r["tts"]:
            L.append(f"| {x['tts']} | {x.get('median_first_audio_ms', x.get('error'))} | "
                     f"{x.get('max_first_audio_ms', '')} |")
    return "\n".join(L) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="osler bench voice", description="Voice benchmark (synthetic speech + noise).")
    p.add_argument("--backends", default="whisper,pocketsphinx", help="comma list: whisper,pocketsphinx,speechbrain")
    p.add_argument("--voices", help="comma list of benchmark voices (see voice.bench_data.VOICES)")
    p.add_argument("--commands", type=int, default=8, help="number of commands in the default run (max 25)")
    p.add_argument("--noises", help="comma list of noise types: pink,beeps,babble (none: clean only)")
    p.add_argument("--snr", default="20,10,5", help="SNRs in dB")
    p.add_argument("--full", action="store_true", help="every command, five voices, all chatter (long)")
    p.add_argument("--mixer", choices=["auto", "numpy"], default="auto", help="auto: speechbrain AddNoise if it loads")
    p.add_argument("--noise-seconds", dest="noise_seconds", type=float, default=8.0)
    p.add_argument("--no-latency", dest="no_latency", action="store_true")
    p.add_argument("--no-human", dest="no_human", action="store_true")
    p.add_argument("--no-reverb", dest="no_reverb", action="store_true", help="skip the reverberant-room condition")
    p.add_argument("--out", default="runs/voice_bench")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    return p


def main(argv: list[str] | None = None) -> int:
    from tools.entrypoints import make_settings, offline_environment

    offline_environment()
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    settings = make_settings(None, data_dir=Path(args.out) / "osler")
    report = run_benchmark(args, settings)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "voice_bench.json").write_text(json.dumps(report, indent=2, default=str))
    md = render_markdown(report)
    (out / "voice_bench.md").write_text(md)
    print(json.dumps(report, indent=2, default=str) if args.json else md)
    print(f"written: {out / 'voice_bench.json'}, {out / 'voice_bench.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
