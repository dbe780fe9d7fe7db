"""Decision policies of the grammar and spotter benchmark (:mod:`voice.bench_grammar`), recomputed offline from the
scores each clip kept: **free**, **grammar** and **spotter** (what each would execute), the verdict against the
intended command, the per-set table, and the tuning of the thresholds on development clips."""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np

from .asr_grammar import AMBIGUOUS, rank, settle
from .grammar_sentences import command_meaning, grammar_meanings, meaning_str
from .live_commands import LIVE_SET, hear_spoken, parse_live
from .second_opinion import spot_settle, tail_settle

__all__ = ["expected", "policy", "verdict", "table", "tune", "tune_spotter", "tune_tail", "policy_args", "render",
           "SPOT_LEVELS",
           "TAIL_LEVELS"]


def _meaning(cmd: Any) -> str | None:
    return meaning_str(command_meaning(cmd))


def expected(text: str) -> str | None:
    """The meaning the strict live parser gives the clean text (what a clip of it should be heard as)."""
    return _meaning(parse_live(text))


def _heard(text: str) -> str | None:
    return _meaning(hear_spoken(text, "osler")[1])


def _features(r: dict[str, Any], bonus: float, primed: bool = False) -> tuple[str | None, float, float] | None:
    """(best meaning, margin, gap) of one clip with ``bonus`` nats per token, after the bare or the primed
    prefix, recomputed from every stored sentence score exactly as
    :meth:`voice.asr_whisper.WhisperRecognizer._grammar` does; None when the clip kept no scores."""
    g = r["grammar"]
    if not g or "scored" not in g:
        return None
    cache = r.setdefault("_features", {})
    if (bonus, primed) in cache:
        return cache[(bonus, primed)]
    scored = g["scored"]
    col = 4 if primed and len(scored[0]) > 4 else 2
    n_cmd = len(scored) - g["n_free"]
    if "_free_meanings" not in g:  # the free transcripts as the live mode reads them (hear_spoken)
        g["_free_meanings"] = [_heard(e[0]) for e in scored[n_cmd:]]
    adjusted = [e[col] + bonus * e[3] for e in scored]
    ranked = rank([e[1] for e in scored[:n_cmd]] + g["_free_meanings"], adjusted)
    if not ranked:
        out = (None, 0.0, 0.0)
    else:
        s1 = ranked[0][1]
        s2 = ranked[1][1] if len(ranked) > 1 else float("-inf")
        out = (ranked[0][0], s1 - s2, max(max(adjusted[n_cmd:], default=s1), s1) - s1)
    cache[(bonus, primed)] = out
    return out


def policy(r: dict[str, Any], name: str, margin: float, gap: float, bonus: float = 0.0,
           confirm: float = 0.0, primed: bool = False, take: float = 1.01, veto: float = 1.01,
           alone: float = 1.01, tail_veto: float | None = None, veto_added: float | None = None) -> str | None:
    """The command (meaning string) a policy executes for one stored clip, or None (rejected); the grammar
    policy settled by the recogniser's own rule (:func:`voice.asr_grammar.settle`), the spotter policy by
    :func:`voice.second_opinion.spot_settle` after it (``take``, ``veto``: its thresholds), the tail policy by
    :func:`voice.second_opinion.tail_settle` after that (``tail_veto``; a clip without a stored rest for the
    command is kept, as the recogniser keeps it when the check cannot run)."""
    if "_free" not in r:
        r["_free"] = _heard(r["free_text"])
    free = r["_free"]
    if name == "free":
        return free
    g = r["grammar"]
    if not g:  # nothing heard: no grammar scoring ran
        return free
    f = _features(r, bonus, primed)
    top, d, gp = f if f is not None else (g["meaning"], g["margin"], g["gap"])
    taken = bool(top) and not top.startswith(AMBIGUOUS) and d >= margin and gp <= gap  # as decide()
    outcome = settle(free, top, d, gp, taken, confirm, gap)
    command = free if outcome == "confirmed" else top if outcome == "taken" else None
    if name == "grammar" or r.get("_spot") is None:
        return command
    meaning, prob = r["_spot"]
    added = False
    if command is not None and veto_added is not None:  # the text the recogniser judges, as it does
        said = r["free_text"] if outcome == "confirmed" else (g.get("best") or "") if outcome == "taken" else ""
        cmd = hear_spoken(said, "osler")[1] if said else None
        added = cmd is not None and cmd.added_phrasing
    how = spot_settle(command, top, meaning, prob, grammar_meanings(LIVE_SET), take, veto, alone, veto_added, added)
    got = None if how == "vetoed" else meaning if how == "spotted" else command
    if name != "tail" or got is None or tail_veto is None:
        return got
    rest = (r.get("_tail") or {}).get(got)
    return None if rest is not None and tail_settle(rest, tail_veto) == "vetoed" else got


def policy_args(t: dict[str, Any], s: dict[str, Any]) -> tuple:
    """The positional settings of :func:`policy` after ``name`` from the tuned grammar thresholds ``t``
    (``thresholds.json``) and spotter thresholds ``s`` (``spot_thresholds.json``)."""
    return (t["margin"], t["gap"], t["token_bonus"], t["confirm_margin"], t.get("primed", False),
            s["spotter_take"], s["spotter_veto"], s.get("spotter_alone", 1.01))


def verdict(r: dict[str, Any], got: str | None) -> str:
    if got is None:
        return "rejected"
    return "right" if r["is_command"] and got == r["expected"] else "wrong"


def table(rows: list[dict[str, Any]], margin: float, gap: float, bonus: float = 0.0,
          confirm: float = 0.0, primed: bool = False, take: float = 1.01, veto: float = 1.01,
          alone: float = 1.01, tail_veto: float | None = None) -> list[dict[str, Any]]:
    cells: dict[tuple, dict[str, Any]] = {}
    # the spotter policy over every clip once any clip has the spotter's opinion (a clip without one, e.g. nothing
    # heard, is settled as the grammar policy settles it: counting it out would flatter the spotter)
    names = ("free", "grammar") + (("spotter",) if any(r.get("_spot") is not None for r in rows) else ())
    if tail_veto is not None and "spotter" in names:
        names += ("tail",)
    for r in rows:
        for name in names:
            v = verdict(r, policy(r, name, margin, gap, bonus, confirm, primed, take, veto, alone, tail_veto))
            kind = "command" if r["is_command"] else "non-command"
            c = cells.setdefault((r["set"], name, kind, r["noise"], r["snr_db"]),
                                 dict(n=0, right=0, rejected=0, wrong=0, ms=[], voices={}))
            c["n"] += 1
            c[v] += 1
            if name == "tail":  # executed by the spotter policy with no stored rest: the check never looked
                got = policy(r, "spotter", margin, gap, bonus, confirm, primed, take, veto, alone)
                c["unchecked"] = c.get("unchecked", 0) + (got is not None and (r.get("_tail") or {}).get(got) is None)
            c["ms"].append(r["ms"])
            c["voices"].setdefault(r["voice"], []).append(v == "right")
    out = []
    for (s, name, kind, noise, snr), c in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1],
                                                                                   kv[0][3], kv[0][4] or 99)):
        ms = c.pop("ms")
        per_voice = [100 * float(np.mean(x)) for x in c.pop("voices").values()]
        spread = {}
        if kind == "command":  # right % per voice: mean, sample sd, lowest
            spread = dict(voices=len(per_voice), voice_mean=round(float(np.mean(per_voice)), 1),
                          voice_sd=round(float(np.std(per_voice, ddof=1)), 1) if len(per_voice) > 1 else 0.0,
                          voice_min=round(min(per_voice), 1))
        out.append(dict(set=s, policy=name, clips=kind, noise=noise, snr_db=snr, **c,
                        right_pct=round(100 * c["right"] / c["n"], 1) if kind == "command" else None,
                        rejected_pct=round(100 * c["rejected"] / c["n"], 1),
                        asr_ms_median=round(statistics.median(ms), 1), **spread))
    return out


BONUSES = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5)
CONFIRMS = (0.0, 1.0, 2.0, 3.0, 4.0)


def tune(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Prefix (primed or not), token bonus, confirmation margin, margin and gap on the development clips:
    fewest wrong commands, then most right, then the most cautious (largest margins, smallest gap) among equals."""
    best = None
    scored = [r for r in rows if "scored" in (r["grammar"] or {})]
    bonuses = BONUSES if scored else (0.0,)
    primes = (False, True) if scored and len(scored[0]["grammar"]["scored"][0]) > 4 else (False,)
    for p in primes:
        for b in bonuses:
            for c in CONFIRMS:
                for m in np.arange(0.0, 10.01, 0.5):
                    for g in np.arange(0.0, 12.01, 1.0):
                        wrong = right = 0
                        for r in rows:
                            v = verdict(r, policy(r, "grammar", float(m), float(g), b, c, p))
                            wrong += v == "wrong"
                            right += v == "right"
                        key = (wrong, -right, -m, -c, g, b, p)
                        if best is None or key < best[0]:
                            best = (key, p, b, c, float(m), float(g), wrong, right)
    _k, p, b, c, m, g, wrong, right = best
    return dict(primed=p, token_bonus=b, confirm_margin=c, margin=m, gap=g, dev_wrong=wrong, dev_right=right,
                dev_clips=len(rows))


SPOT_LEVELS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.01)
VETO_LEVELS = (0.0, 0.1, 0.2) + SPOT_LEVELS  # 0.0: any other class the spotter names rejects the command


def tune_spotter(rows: list[dict[str, Any]], t: dict[str, Any]) -> dict[str, Any]:
    """The spotter's take, veto and alone probabilities on the development clips, the grammar's thresholds
    fixed: fewest wrong commands, then most right, then the most cautious (highest take and alone, lowest veto)."""
    rows = [r for r in rows if r.get("_spot") is not None]
    args = (t["margin"], t["gap"], t["token_bonus"], t["confirm_margin"], t.get("primed", False))
    best = None
    for take in SPOT_LEVELS:
        for veto in VETO_LEVELS:
            for alone in SPOT_LEVELS:
                if alone < take:
                    continue
                wrong = right = 0
                for r in rows:
                    v = verdict(r, policy(r, "spotter", *args, take=take, veto=veto, alone=alone))
                    wrong += v == "wrong"
                    right += v == "right"
                key = (wrong, -right, -alone, -take, veto)
                if best is None or key < best[0]:
                    best = (key, take, veto, alone, wrong, right)
    _k, take, veto, alone, wrong, right = best
    return dict(spotter_take=take, spotter_veto=veto, spotter_alone=alone, dev_wrong=wrong, dev_right=right,
                dev_clips=len(rows))


TAIL_LEVELS = tuple(round(x, 2) for x in np.arange(0.5, 12.01, 0.25))


def tune_tail(rows: list[dict[str, Any]], t: dict[str, Any], s: dict[str, Any], max_loss: float = 0.01) -> dict[str, Any]:
    """The rest-of-utterance veto on the development clips, everything before it fixed: the lowest level (the most
    speech after a command rejected) at which the check rejects at most ``max_loss`` of the commands the spotter
    policy executes rightly there.  (The development non-commands hold no lookalikes, so the level is set by the
    cost in right commands alone.)"""
    args = policy_args(t, s)
    got = [(r, policy(r, "spotter", *args)) for r in rows]
    base = [r for r, g in got if verdict(r, g) == "right"]
    wrong = [r for r, g in got if verdict(r, g) == "wrong"]
    missing = sum((r.get("_tail") or {}).get(g) is None for r, g in got if verdict(r, g) == "right")
    for level in TAIL_LEVELS:
        lost = sum(policy(r, "tail", *args, level) is None for r in base)
        if lost <= max_loss * len(base):
            caught = sum(policy(r, "tail", *args, level) is None for r in wrong)
            return dict(tail_veto=level, dev_right_before=len(base), dev_right_lost=lost, dev_wrong_before=len(wrong),
                        dev_wrong_caught=caught, max_loss=max_loss, dev_right_without_rest=missing,
                        dev_clips=len(rows))
    raise ValueError("no level keeps the right commands")


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["| set | clips | policy | noise | SNR dB | n | right % | per voice: mean +- sd (lowest) | rejected | "
             "WRONG | ASR ms (median) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        spread = f"{r['voice_mean']} +- {r['voice_sd']} ({r['voice_min']})" if "voice_mean" in r else "-"
        lines.append(f"| {r['set']} | {r['clips']} | {r['policy']} | {r['noise']} | "
                     f"{r['snr_db'] if r['snr_db'] is not None else '-'} | {r['n']} | "
                     f"{r['right_pct'] if r['right_pct'] is not None else '-'} | {spread} | {r['rejected']} | "
                     f"{r['wrong']} | {r['asr_ms_median']} |")
    unchecked = [r for r in rows if r.get("unchecked")]
    if unchecked:  # a tail row whose clips were never checked would read as "the check changed nothing"
        lines.append("")
        lines += [f"Not checked (no stored rest): {r['set']} {r['clips']} {r['noise']} "
                  f"{r['snr_db'] if r['snr_db'] is not None else '-'}: {r['unchecked']} of {r['n']}" for r in unchecked]
    return "\n".join(lines) + "\n"
