"""The benchmark of confirmation on doubt (live mode's "Did you mean: how many polyps? Say yes or no.";
:func:`voice.second_opinion.may_propose` and :func:`voice.second_opinion.reply_settle`), on the clips of
:mod:`voice.bench_grammar`:

    python -m voice.bench_grammar run --set confirm_dev --conditions clean,pink10,babble10   # dev voices: "Yes." / "No."
    python -m voice.bench_grammar run --set confirm --conditions clean,pink10,babble10,crowd10   # held-out voices
    python -m voice.bench_grammar replies --set S      # the spotter's P(yes), P(no) per clip of set S
    python -m voice.bench_grammar tune-ask             # the proposal level, from dev only
    python -m voice.bench_grammar tune-reply           # the reply level, from dev and confirm_dev only
    python -m voice.bench_grammar ask-report           # ask_report.json / ask_report.md
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .bench_grammar_store import load_set, set_frames, spot_thresholds
from .bench_grammar_policy import policy, policy_args, verdict
from .bench_grammar_sets import CONDITIONS

__all__ = ["ASK_LEVELS", "REPLY_LEVELS", "proposal", "tune_ask", "reply", "tune_reply", "ask_table", "render_ask",
           "replies", "ask_report", "main"]


ASK_LEVELS = tuple(round(float(x), 2) for x in np.arange(0.2, 0.601, 0.05))


def proposal(r: dict[str, Any], args: tuple, level: float) -> str | None:
    """The command Osler would propose ("Did you mean ...? Say yes or no.") for a clip the spotter policy
    rejects: the spotter's best meaning when it may be proposed (:func:`voice.second_opinion.may_propose`) and its
    probability reaches ``level``; None otherwise (and for every clip the policy executes)."""
    from .second_opinion import may_propose

    if policy(r, "spotter", *args) is not None or r.get("_spot") is None:
        return None
    meaning, prob = r["_spot"]
    return meaning if may_propose(meaning, prob, level) else None


def tune_ask(rows: list[dict[str, Any]], t: dict[str, Any], s: dict[str, Any], max_asked: float = 0.05
             ) -> dict[str, Any]:
    """The proposal level on the development clips: the lowest level at which at most ``max_asked`` of the
    non-commands get a proposal (a proposal costs the surgeon a "no"; a command's wrong proposal is counted)."""
    args = policy_args(t, s)
    nons = [r for r in rows if not r["is_command"]]
    cmds = [r for r in rows if r["is_command"]]
    for level in ASK_LEVELS:
        asked = sum(proposal(r, args, level) is not None for r in nons)
        if asked <= max_asked * len(nons):
            props = [(r, proposal(r, args, level)) for r in cmds]
            return dict(ask_level=level, dev_non_commands=len(nons), dev_non_commands_asked=asked,
                        dev_commands_asked=sum(m is not None for _r, m in props),
                        dev_commands_asked_wrong=sum(m is not None and m != r["expected"] for r, m in props),
                        max_asked=max_asked)
    raise ValueError("no level keeps the non-commands unasked")


REPLY_LEVELS = tuple(round(float(x), 2) for x in np.arange(0.05, 0.951, 0.05))


def reply(r: dict[str, Any], args: tuple, level: float | None) -> str | None:
    """What a clip is taken as while a proposal waits for yes or no: the spotter policy's command when it takes
    one; else, with ``level``, the likelier of the spotter's "yes" and "no" when it reaches ``level``
    (:func:`voice.second_opinion.reply_settle`); else None ("Say yes or no.")."""
    from .second_opinion import reply_settle

    got = policy(r, "spotter", *args)
    if got is not None or level is None or r.get("_replies") is None:
        return got
    return reply_settle(*r["_replies"], level)


def tune_reply(dev: list[dict[str, Any]], replies_dev: list[dict[str, Any]], t: dict[str, Any],
               s: dict[str, Any], max_taken: float = 0.01) -> dict[str, Any]:
    """The level of :func:`reply` on development clips: the lowest at which no development "yes" / "no" is taken
    as the other, and at most ``max_taken`` of the other development clips (commands and non-commands the spotter
    policy rejects or takes as something else) become a yes or a no only through the level."""
    args = policy_args(t, s)
    for level in REPLY_LEVELS:
        said = [(r, reply(r, args, level)) for r in replies_dev]
        crossed = sum(g is not None and g != r["expected"] for r, g in said)
        taken = sum(policy(r, "spotter", *args) is None and reply(r, args, level) is not None for r in dev)
        if crossed == 0 and taken <= max_taken * len(dev):
            return dict(reply_level=level, dev_replies=len(said), dev_replies_heard=sum(g == r["expected"]
                                                                                         for r, g in said),
                        dev_replies_crossed=crossed, dev_clips=len(dev), dev_clips_taken=taken, max_taken=max_taken)
    raise ValueError("no level keeps the replies apart")


def ask_table(rows: list[dict[str, Any]], args: tuple, level: float,
              yes_heard: dict[tuple[str, float | None], float] | None = None) -> list[dict[str, Any]]:
    """Per set and condition: commands right first try, commands asked (the proposal right / not), non-commands
    asked, and (with ``yes_heard``: P("yes" is heard as yes) per condition) the commands right after one "yes"."""
    cells: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        kind = "command" if r["is_command"] else "non-command"
        c = cells.setdefault((r["set"], kind, r["noise"], r["snr_db"]),
                             dict(n=0, right=0, asked=0, asked_right=0, asked_wrong=0))
        c["n"] += 1
        c["right"] += verdict(r, policy(r, "spotter", *args)) == "right"
        m = proposal(r, args, level)
        if m is not None:
            c["asked"] += 1
            ok = r["is_command"] and m == r["expected"]
            c["asked_right" if ok else "asked_wrong"] += 1
    out = []
    for (s, kind, noise, snr), c in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2],
                                                                           kv[0][3] or 99)):
        row = dict(set=s, clips=kind, noise=noise, snr_db=snr, ask_level=level, **c)
        if kind == "command":
            row["right_first_pct"] = round(100 * c["right"] / c["n"], 1)
            p = (yes_heard or {}).get((noise, snr))
            if p is not None:
                row["yes_heard"] = round(p, 3)
                row["right_after_yes_pct"] = round(100 * (c["right"] + c["asked_right"] * p) / c["n"], 1)
        out.append(row)
    return out


def render_ask(rows: list[dict[str, Any]]) -> str:
    lines = ["| set | clips | noise | SNR dB | n | right first try % | asked | proposal right | proposal wrong | "
             "P(yes heard) | right after one yes % |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['set']} | {r['clips']} | {r['noise']} | {r['snr_db'] if r['snr_db'] is not None else '-'}"
                     f" | {r['n']} | {r.get('right_first_pct', '-')} | {r['asked']} | {r['asked_right']} | "
                     f"{r['asked_wrong']} | {r.get('yes_heard', '-')} | {r.get('right_after_yes_pct', '-')} |")
    return "\n".join(lines) + "\n"


def replies(settings: Any, which: str, out: Path, cache: Path | None = None,
            conditions: tuple[tuple[str, float | None], ...] = CONDITIONS) -> dict[str, Any]:
    """The shipped spotter's probabilities of "yes" and "no" for every clip of a set already run (frames as in
    ``spot``), written to ``replies_SET.jsonl`` (``spot_SET.jsonl`` is left alone: the other policies keep the
    spotter opinion their run recorded)."""
    from .spotter import CommandSpotter

    keys, frames = set_frames(settings, which, out, None, cache or out / "audio", conditions)
    spotter = CommandSpotter()
    spotter.load()
    iy, ino = spotter.classes.index("yes"), spotter.classes.index("no")
    path = out / f"replies_{which}.jsonl"
    with path.open("w") as sink:
        for key, f in zip(keys, frames):
            p = spotter.probs(f.astype(np.float32), len(f) * 320)
            sink.write(json.dumps(dict(key=list(key), yes=round(float(p[iy]), 5), no=round(float(p[ino]), 5))) + "\n")
    return dict(set=which, clips=len(keys), path=str(path))


def ask_report(out: Path, dev: list[dict[str, Any]], t: dict[str, Any], s: dict[str, Any]) -> int:
    """Confirmation on doubt (:func:`voice.second_opinion.may_propose`) at the dev-tuned level: what the proposals
    would be on every set, and how often the held-out voices' bare "yes" / "no" (set ``confirm``) are heard as
    what was said; ``ask_report.json`` and ``ask_report.md``."""
    level = json.loads((out / "ask_thresholds.json").read_text())["ask_level"]
    rp = out / "reply_thresholds.json"
    reply_level = json.loads(rp.read_text())["reply_level"] if rp.exists() else None
    args = policy_args(t, s)
    replies: dict[tuple[str, Any], dict[str, Any]] = {}
    for r in load_set(out, "confirm"):
        got = reply(r, args, reply_level)
        c = replies.setdefault((r["noise"], r["snr_db"]), dict(yes=0, yes_heard=0, yes_wrong=0, no=0, no_heard=0,
                                                                no_wrong=0))
        c[r["expected"]] += 1
        c[f"{r['expected']}_heard"] += got == r["expected"]
        c[f"{r['expected']}_wrong"] += got is not None and got != r["expected"]
    yes_heard = {k: c["yes_heard"] / c["yes"] for k, c in replies.items() if c["yes"]}
    held_out = [r for which in ("test", "final", "fresh", "fresh2") for r in load_set(out, which)]
    taken: dict[str, Any] = {}
    for name, rows_ in (("dev", dev), ("held-out (all)", held_out), ("lookalike", load_set(out, "lookalike"))):
        extra = [r for r in rows_ if policy(r, "spotter", *args) is None and reply(r, args, reply_level) is not None]
        taken[name] = dict(clips=len(rows_), taken_as_reply_by_level=len(extra),
                           without_replies=sum(r.get("_replies") is None for r in rows_))
    rows = ask_table(dev + held_out + load_set(out, "lookalike") + [{**r, "set": "held-out (all)"} for r in held_out],
                     args, level, yes_heard)
    rep = dict(ask_level=level, reply_level=reply_level, taken_as_reply=taken,
               replies=[dict(noise=k[0], snr_db=k[1], **c) for k, c in replies.items()], rows=rows)
    (out / "ask_report.json").write_text(json.dumps(rep, indent=2))
    md = render_ask(rows) + "\n| reply | noise | SNR dB | said | heard right | heard as something else |\n" + \
        "|---|---|---|---|---|---|\n" + "".join(
            f"| {w} | {k[0]} | {k[1] if k[1] is not None else '-'} | {c[w]} | {c[w + '_heard']} | "
            f"{c[w + '_wrong']} |\n" for k, c in replies.items() for w in ("yes", "no")) + \
        f"\nreply level {reply_level}; other clips taken as yes/no through it: " + "; ".join(
            f"{k} {v['taken_as_reply_by_level']} of {v['clips']}" for k, v in taken.items()) + "\n"
    (out / "ask_report.md").write_text(md)
    print(json.dumps(rep))
    print(md)
    return 0


def main(args: Any, settings: Any, conds: tuple[tuple[str, float | None], ...]) -> int:
    """The actions of ``python -m voice.bench_grammar`` that belong here (its parsed arguments)."""
    if args.action == "replies":
        print(json.dumps(replies(settings, args.set, args.out, args.cache, conds)))
        return 0
    dev = load_set(args.out, "dev")
    t = json.loads((args.out / "thresholds.json").read_text())
    s = spot_thresholds(args.out)
    if args.action == "ask-report":
        return ask_report(args.out, dev, t, s)
    name, v = (("ask", tune_ask(dev, t, s)) if args.action == "tune-ask" else
               ("reply", tune_reply(dev, load_set(args.out, "confirm_dev"), t, s)))
    (args.out / f"{name}_thresholds.json").write_text(json.dumps(v, indent=2))
    print(json.dumps(v))
    return 0
