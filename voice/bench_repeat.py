"""Babble, said twice: does agreement between an utterance and its repeat recover the commands each alone misses?

    python -m voice.bench_grammar run --set SET --conditions rebabble10 --out runs/repeat --cache CACHE   # second takes
    python -m voice.bench_repeat --first runs/voice_grammar --second runs/repeat --sets dev
    python -m voice.bench_repeat --first runs/voice_grammar --second runs/repeat --sets test,final,fresh,fresh2 --level 0.45

Take 1 is a babble 10 dB clip of the grammar benchmark as the recogniser decided it (``features_SET.jsonl`` of a
``run``); take 2 is the same speech in another stretch of the same babble (condition ``rebabble``), recognised the
same way.  Within two tries, as shipped: take 1's command, else take 2's.  With the *repeat agreement*: when both
were rejected and the command spotter's best class is the same command on both (not other / yes / no / cancel /
repeat / louder, as :func:`voice.second_opinion.may_propose` excludes), that command is taken when the mean of the two
probabilities reaches the level.  Non-commands are paired with themselves (the hardest case: the same sentence
twice).  Measured 2026-12-04 and not adopted (docs/voice.md, *Said twice*); synthetic voices are no clinical test.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["pairs", "score", "main"]

LEVELS = (None, 0.2, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9)


def _load(path: Path, noise: str) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r["noise"] == noise and r["snr_db"] == 10.0:
            out[(r["voice"], r["text"])] = r
    return out


def pairs(first: Path, second: Path, sets: list[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(take 1, take 2) of every babble 10 dB clip that has both."""
    out = []
    for which in sets:
        t1 = _load(first / f"features_{which}.jsonl", "babble")
        t2 = _load(second / f"features_{which}.jsonl", "rebabble")
        out += [(r, t2[k]) for k, r in t1.items() if k in t2]
    return out


def _decided(r: dict[str, Any]) -> str | None:
    from .bench_grammar_policy import _heard

    return _heard(r["final_text"]) if r["final_text"] else None


def _agreed(r1: dict[str, Any], r2: dict[str, Any], level: float) -> str | None:
    from .second_opinion import may_propose

    s1, s2 = r1.get("spotter") or {}, r2.get("spotter") or {}
    c = s1.get("meaning")
    if c is None or s2.get("meaning") != c:
        return None
    return c if may_propose(c, (float(s1["prob"]) + float(s2["prob"])) / 2, level) else None


def score(rows: list[tuple[dict[str, Any], dict[str, Any]]], level: float | None) -> dict[str, Any]:
    """Commands right on the first try and within two tries, taken by the agreement, mistaken; non-commands
    executed within two tries; per voice mean, sd and lowest of the two-try rate."""
    t: Counter = Counter()
    voices: dict[str, list[int]] = {}
    for r1, r2 in rows:
        g1 = _decided(r1)
        g2 = _decided(r2) if g1 is None else None
        g3 = _agreed(r1, r2, level) if g1 is None and g2 is None and level is not None else None
        got = g1 or g2 or g3
        if r1["is_command"]:
            exp = r1["expected"]
            t["commands"] += 1
            t["first_right"] += g1 == exp
            t["two_right"] += got == exp
            t["by_agreement"] += g3 is not None and g3 == exp
            t["mistaken"] += got is not None and got != exp
            v = voices.setdefault(r1["voice"], [0, 0])
            v[0] += 1
            v[1] += got == exp
        else:
            t["non_commands"] += 1
            t["executed"] += got is not None
    rate = np.array([b / a for a, b in voices.values()]) if voices else np.zeros(1)
    return dict(level=level, **t, two_right_pct=round(100 * t["two_right"] / max(t["commands"], 1), 1),
                per_voice=dict(mean=round(100 * float(rate.mean()), 1), sd=round(100 * float(rate.std()), 1),
                               lowest=round(100 * float(rate.min()), 1)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m voice.bench_repeat", description=__doc__.split("\n\n")[0])
    p.add_argument("--first", type=Path, required=True, help="a grammar-benchmark run with babble 10 dB clips")
    p.add_argument("--second", type=Path, required=True, help="the run of the same sets with condition rebabble10")
    p.add_argument("--sets", default="dev")
    p.add_argument("--level", type=float, action="append", help="levels to score (default: a range)")
    args = p.parse_args(argv)
    rows = pairs(args.first, args.second, args.sets.split(","))
    levels = [None] + args.level if args.level else list(LEVELS)
    out = [score(rows, lv) for lv in levels]
    print(json.dumps(dict(sets=args.sets, pairs=len(rows), rows=out)))
    print("\n| level | commands | first try | within two tries | by agreement | mistaken | non-commands executed |\n"
          "|---|---|---|---|---|---|---|")
    for r in out:
        print(f"| {'shipped' if r['level'] is None else r['level']} | {r.get('commands', 0)} | {r.get('first_right', 0)} | "
              f"{r.get('two_right', 0)} ({r['two_right_pct']} %; per voice {r['per_voice']['mean']} +- "
              f"{r['per_voice']['sd']}, lowest {r['per_voice']['lowest']}) | {r.get('by_agreement', 0)} | "
              f"{r.get('mistaken', 0)} | {r.get('executed', 0)} of {r.get('non_commands', 0)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
