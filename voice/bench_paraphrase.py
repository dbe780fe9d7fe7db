"""Natural phrasings of the commands, spoken by held-out voices: how many reach their command?

    python -m voice.bench_paraphrase --out runs/voice_paraphrase          # JSON lines, report.json, a table

16 phrasings that people use for the same questions ("do you see a polyp", "what is the size of it", "could you tell
me how many white cells are visible"), each "Osler, <phrasing>?", spoken by 10 espeak-ng voices that no threshold
was tuned on (the grammar benchmark's test and final voices and the first two of its fresh set,
:mod:`voice.bench_grammar_sets`), clean and in pink noise at 10 dB; recognised by the whole live recogniser
(Whisper tiny.en, 5-best, grammar check, command spotter; shipped settings) and read by the strict parser.
Right = the intended command; WRONG = another command; the rest is rejected.  Beside them, 12 near misses
(:data:`NEAR_MISSES`: theatre talk that resembles the phrasings, "do you see a parking space") must not be
executed.  The expected meanings are written here, not parsed, so the same file scores an older grammar that does
not know the phrasings (run it from that checkout).  Synthetic voices are no clinical test.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PARAPHRASES", "voices", "run", "summarise", "main"]

PARAPHRASES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("what am I looking at", "image_kind", {}), ("tell me what kind of image this is", "image_kind", {}),
    ("is there any pneumonia", "pneumonia", {}), ("does this look normal", "normal", {}),
    ("what is the size of it", "measure", {}), ("measure it", "measure", {}),
    ("compare with the old image", "compare", {}), ("has anything changed", "changes", {}),
    ("do you see a polyp", "detect_polyp", {}), ("can you count the polyps", "count", {"count_target": "polyps"}),
    ("what is the number of platelets", "count", {"count_target": "platelets"}),
    ("is there a polyp here", "detect_polyp", {}),
    ("could you tell me how many white cells are visible", "count", {"count_target": "white cells"}),
    ("is the chest x ray normal", "normal", {}), ("what is different", "changes", {}),
    ("count white cells", "count", {"count_target": "white cells"}),
)


# Theatre talk that resembles the natural phrasings and is NOT a command (written 2026-12-04, before any run on them):
# a widened grammar must not execute it
NEAR_MISSES: tuple[str, ...] = (
    "what am I looking at on this rota", "measure it again after lunch", "do you see a parking space",
    "has anything changed in the rota", "is there any coffee left", "could you tell me the time",
    "what is different about this kit", "does this look normal to you for a Monday", "can you count the swabs with me",
    "tell me what kind of music this is", "compare with the old theatre", "is there a porter here",
)


# The development counterpart (written 2026-12-04, before its run): other natural phrasings and other near misses
# (those from the spotter's training lists, training.train_spotter.TRAIN_NEAR_MISSES, which the shipped spotter never
# heard), spoken by the development voices, for tuning a setting without touching the sets above
DEV_PARAPHRASES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("what is the count of platelets", "count", {"count_target": "platelets"}), ("measure that", "measure", {}),
    ("is there a polyp in this frame", "detect_polyp", {}), ("compare with the earlier image", "compare", {}),
    ("has it changed", "changes", {}), ("does it look normal", "normal", {}), ("can you outline it", "outline", {}),
    ("could you freeze the frame", "freeze", {}),
    ("tell me how many red cells are there", "count", {"count_target": "red cells"}),
    ("does the patient have pneumonia", "pneumonia", {}), ("tell me what type of image it is", "image_kind", {}),
    ("what is the size of that", "measure", {}),
)
DEV_NEAR_MISSES: tuple[str, ...] = (
    "do you see my glasses", "is there a nurse here", "is there any tea left", "could you tell me the bed number",
    "can you tell me the blood pressure", "what is the size of the next glove", "compare with the old protocol",
    "has anything changed on the ward", "does this look normal to the registrar", "can you count the instruments with me",
    "what is the number of the theatre", "could you open the door",
)


def voices(which: str = "test") -> dict[str, int | None]:
    from .bench_grammar_sets import DEV_VOICES, FINAL_VOICES, FRESH_SET_VOICES, TEST_VOICES

    if which == "dev":
        return dict(DEV_VOICES)
    return {**TEST_VOICES, **FINAL_VOICES, **dict(list(FRESH_SET_VOICES.items())[:2])}


def run(settings: Any, out: Path, cache: Path, first_voice: int = 0, which: str = "test",
        stop_voice: int | None = None) -> Path:
    from .audio import ASR_RATE, Audio
    from .bench_data import Mixer, synth
    from .config import voice_settings
    from .asr import live_whisper
    from .live_commands import hear_spoken

    rec = live_whisper(settings, voice_settings(settings, whisper_nbest=5, whisper_threads=1, whisper_grammar=True))
    rec.load()
    mixer = Mixer(cache, prefer_speechbrain=False)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "paraphrase.jsonl"
    with path.open("w") as sink:
        phrasings, near = (DEV_PARAPHRASES, DEV_NEAR_MISSES) if which == "dev" else (PARAPHRASES, NEAR_MISSES)
        items = [(q, intent, slots) for q, intent, slots in phrasings] + [(q, None, None) for q in near]
        for j, (v, wpm) in enumerate(voices(which).items()):
            if j < first_voice or (stop_voice is not None and j >= stop_voice):  # split over processes (each its
                continue  # own --out; join the files)
            for k, (q, intent, slots) in enumerate(items):
                said = f"Osler, {q}?" if intent is not None or k % 2 == 0 else f"{q[0].upper()}{q[1:]}."
                x = synth(said, v, cache / f"wpm{wpm}", settings, wpm=wpm)
                for snr in (None, 10.0):
                    y = x if snr is None else mixer.mix(x, "pink", snr, seed=1000 * (100 * j + k) + 10)
                    tr = rec.transcribe(Audio(y.astype(np.float32), ASR_RATE, "bench"))
                    got = hear_spoken(tr.text)[1] if tr.text else None
                    if intent is None:
                        verdict = "rejected" if got is None else "EXECUTED"
                    else:
                        verdict = ("rejected" if got is None else
                                   "right" if (got.intent, got.slots) == (intent, slots) else "WRONG")
                    sink.write(json.dumps(dict(voice=v, q=q, command=intent is not None, snr=snr, verdict=verdict,
                                               got=got and [got.intent, got.slots],
                                               heard=tr.extra.get("heard", tr.text), final=tr.text,
                                               spotter=tr.extra.get("spotter"), grammar=tr.extra.get("grammar"),
                                               set=which)) + "\n")
                    sink.flush()
    return path


def summarise(path: Path) -> dict[str, Any]:
    """Right / WRONG per condition and phrasing, and the near-miss non-commands executed."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    nons = [r for r in rows if r.get("command") is False]
    executed = [r for r in nons if r["verdict"] == "EXECUTED"]
    rows = [r for r in rows if r.get("command", True)]
    by_cond: dict[str, Counter] = defaultdict(Counter)
    by_phrase: dict[str, Counter] = defaultdict(Counter)
    for r in rows:
        by_cond["clean" if r["snr"] is None else f"pink {r['snr']:g} dB"][r["verdict"]] += 1
        by_phrase[r["q"]][r["verdict"]] += 1
    return dict(clips=len(rows), right=sum(c["right"] for c in by_cond.values()),
                wrong=sum(c["WRONG"] for c in by_cond.values()),
                non_commands=len(nons), non_commands_executed=len(executed),
                executed=[(r["voice"], r["q"], r["snr"], r["got"], r["heard"]) for r in executed],
                by_condition={k: dict(v) for k, v in by_cond.items()},
                by_phrasing={k: dict(v) for k, v in by_phrase.items()})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m voice.bench_paraphrase", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("runs/voice_paraphrase"))
    p.add_argument("--cache", type=Path, help="speech cache folder (default: OUT/audio)")
    p.add_argument("--report", action="store_true", help="only summarise OUT/paraphrase.jsonl")
    p.add_argument("--first-voice", type=int, default=0, help="start at this voice (split a run over processes)")
    p.add_argument("--stop-voice", type=int, help="stop before this voice")
    p.add_argument("--set", choices=["test", "dev"], default="test", help="test: the 16 phrasings and 12 near misses "
                   "by 10 held-out voices; dev: other phrasings and near misses by the development voices (for tuning)")
    args = p.parse_args(argv)
    from tools.entrypoints import make_settings, offline_environment

    offline_environment()
    path = args.out / "paraphrase.jsonl"
    if not args.report:
        path = run(make_settings(), args.out, args.cache or args.out / "audio", args.first_voice, args.set,
                   args.stop_voice)
    rep = summarise(path)
    (args.out / "report.json").write_text(json.dumps(rep, indent=2))
    print(json.dumps(rep))
    print(f"\n{rep['right']} of {rep['clips']} right, {rep['wrong']} WRONG; near-miss non-commands executed "
          f"{rep['non_commands_executed']} of {rep['non_commands']}"
          "\n\n| phrasing | right | WRONG |\n|---|---|---|")
    for q, c in rep["by_phrasing"].items():
        print(f"| {q} | {c.get('right', 0)} | {c.get('WRONG', 0)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
