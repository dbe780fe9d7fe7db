"""The stored clips of the grammar benchmark (:mod:`voice.bench_grammar`): each set's recognised clips
(``features_SET.jsonl``) with the spotter's, the rest-of-utterance check's and the yes/no replies' scores
joined in, the clips' Whisper encoder frames (``frames_SET.npz``), and the tuned spotter thresholds."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from .bench_grammar_sets import clips

__all__ = ["load_set", "set_frames", "spot_thresholds"]


def spot_thresholds(out: Path) -> dict[str, Any]:
    """The spotter's tuned thresholds (``spot_thresholds.json``; without it, a spotter that never decides)."""
    sp = out / "spot_thresholds.json"
    return json.loads(sp.read_text()) if sp.exists() else dict(spotter_take=1.01, spotter_veto=1.01, spotter_alone=1.01)


def set_frames(settings: Any, which: str, out: Path, limit: int | None, cache: Path,
            conditions: tuple[tuple[str, float | None], ...]) -> tuple[list[tuple], list[np.ndarray]]:
    from .whisper_model import FrameReader

    npz = out / f"frames_{which}.npz"
    keys: list[tuple] = []
    frames: list[np.ndarray] = []
    if npz.exists():
        z = np.load(npz)
        off = np.concatenate([[0], np.cumsum(z["lengths"])])
        keys = [tuple(k) for k in json.loads(str(z["keys"]))]
        stored = z["frames"]  # read once: each z[...] reads the file again
        frames = [stored[a:b] for a, b in zip(off[:-1], off[1:])]
    have, read, added = set(keys), None, 0
    for v, text, _said, _is_cmd, noise, snr, audio in clips(settings, which, limit, cache, conditions):
        if (v, text, noise, snr) in have:  # framed before: kept (a condition asked for later is added)
            continue
        read = read or FrameReader(settings)
        keys.append((v, text, noise, snr))
        frames.append(read(audio().astype(np.float32)).astype(np.float16))
        added += 1
    if added:
        np.savez(npz, frames=np.concatenate(frames), lengths=np.array([len(f) for f in frames]),
                 keys=json.dumps(keys))
        print(f"{added} clips framed, {len(keys)} in {npz}", file=sys.stderr)
    return keys, frames


def load_set(out: Path, which: str) -> list[dict[str, Any]]:
    """The stored clips of a set, with the spotter's best class and probability (``_spot``) from
    ``spot_SET.jsonl`` or else from the run itself."""
    p = out / f"features_{which}.jsonl"
    rows = [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []
    sp = out / f"spot_{which}.jsonl"
    spots = {}
    if sp.exists():
        from .spotter import CommandSpotter

        c = CommandSpotter()
        c.load()
        for line in sp.read_text().splitlines():
            s = json.loads(line)
            k = int(np.argmax(s["probs"]))
            spots[tuple(s["key"])] = (c.classes[k], float(s["probs"][k]))
    for r in rows:  # spot_SET.jsonl (the weights of the last ``spot``) before what the run itself recorded
        s = r.get("spotter") or {}
        key = (r["voice"], r["text"], r["noise"], r["snr_db"])
        r["_spot"] = spots[key] if key in spots else (s["meaning"], s["prob"]) if "meaning" in s else None
    rp = out / f"replies_{which}.jsonl"
    if rp.exists():  # the spotter's P(yes), P(no) per clip (``replies``): the reply to a proposal
        replies = {tuple(x["key"]): (x["yes"], x["no"]) for x in map(json.loads, rp.read_text().splitlines())}
        for r in rows:
            r["_replies"] = replies.get((r["voice"], r["text"], r["noise"], r["snr_db"]))
    tp = out / f"tail_{which}.jsonl"
    if tp.exists():  # the rest-of-utterance check's rests per candidate command (``tail``)
        tails = {tuple(t["key"]): t["rests"] for t in map(json.loads, tp.read_text().splitlines())}
        for r in rows:
            r["_tail"] = tails.get((r["voice"], r["text"], r["noise"], r["snr_db"]))
    return rows
