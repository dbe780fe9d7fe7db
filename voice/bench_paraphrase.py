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


def voices() -> dict[str, int]:
    from .bench_grammar_sets import FINAL_VOICES, FRESH_SET_VOICES, TEST_VOICES

    return {**TEST_VOICES, **FINAL_VOICES, **dict(list(FRESH_SET_VOICES.items())[:2])}


def run(settings: Any, out: Path, cache: Path, first_voice: int = 0) -> Path:
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
        items = [(q, intent, slots) for q, intent, slots in PARAPHRASES] + [(q, None, None) for q in NEAR_MISSES]
        for j, (v, wpm) in enumerate(voices().items()):
            if j < first_voice:  # a second process may take the later voices (its own --out; join the files)
                continue
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
                                               spotter=tr.extra.get("spotter"))) + "\n")
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
    args = p.parse_args(argv)
    from tools.entrypoints import make_settings, offline_environment

    offline_environment()
    path = args.out / "paraphrase.jsonl"
    if not args.report:
        path = run(make_settings(), args.out, args.cache or args.out / "audio", args.first_voice)
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
