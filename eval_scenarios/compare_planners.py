"""Planners side by side on the same cases: ``osler eval`` runs of each, compared turn by turn.

    .venv/bin/python -m eval_scenarios.compare_planners RUN_DIR_A RUN_DIR_B [...] [--json]

Each RUN_DIR is an ``osler eval --out`` folder (its ``results.json``).  Printed per run (JSON, then a
table): cases passed, answer accuracy, tool-call validity (the eval's argument check), wrong-tool rate (a
turn that called a tool it was not expected to, or missed one it was), premature stops (status
'stopped' or 'error', or an answer that was expected but abstained), abstention accuracy, grounded rate,
who planned each turn (rule parser, language model, fallback to the parser after a model failure; read
from the answer's first step), model plans that needed a retry, and seconds per answer (median, p95).
The three failure modes MedCTA 2026 names for tool agents (protocol violations, early stopping, wrong
tool recruitment) are the validity, premature-stop and wrong-tool columns.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

__all__ = ["main", "summarise"]


def _planned_by(result: dict[str, Any]) -> str:
    first = (result.get("steps") or [{}])[0].get("text", "")
    if first.startswith("Planned by the language model"):
        return "model"
    if first.startswith("Planned by the rule parser"):
        return "parser"
    if first.startswith("The language model gave no plan"):
        return "fallback"
    return "builtin"


def summarise(run: Path) -> dict[str, Any]:
    d = json.loads((run / "results.json").read_text())
    turns = [(c, t) for c in d["cases"] for t in c["turns"]]
    n = len(turns)
    latencies = [t["verdict"]["latency_s"] for _, t in turns if t.get("verdict") and t["verdict"].get("latency_s")]
    args_checked = [t["verdict"]["args_valid"] for _, t in turns if t.get("verdict") and t["verdict"].get("args_valid")
                    is not None]
    wrong_tool = premature = 0
    by: dict[str, int] = {}
    retries = 0
    answers = [t["verdict"]["answer_correct"] for _, t in turns if t.get("verdict") and
               t["verdict"].get("answer_correct") is not None]
    abstain = [t["verdict"]["abstention_correct"] for _, t in turns if t.get("verdict") and
               t["verdict"].get("abstention_correct") is not None]
    grounded = [t["verdict"]["grounded"] for _, t in turns if t.get("verdict") and t["verdict"].get("grounded") is not None]
    for _, t in turns:
        v, r = t.get("verdict") or {}, t.get("result") or {}
        if v.get("tools_unexpected") or v.get("tools_missing"):
            wrong_tool += 1
        if r.get("status") in ("stopped", "error") or t.get("error") or (
                v.get("abstention_correct") is False and r.get("abstained")):  # gave up where an answer was due
            premature += 1
        who = _planned_by(r)
        by[who] = by.get(who, 0) + 1
        first = (r.get("steps") or [{}])[0].get("text", "")
        retries += "after a retry" in first
    rate = (lambda xs: round(sum(bool(x) for x in xs) / len(xs), 3) if xs else None)
    return {
        "run": str(run), "planner": d["meta"].get("planner"), "cases": d["summary"]["cases"],
        "cases_passed": d["summary"]["cases_passed"], "turns": n, "answer_accuracy": rate(answers),
        "tool_call_validity": rate(args_checked), "wrong_tool_rate": round(wrong_tool / n, 3) if n else None,
        "premature_stops": premature, "abstention_accuracy": rate(abstain), "grounded_rate": rate(grounded),
        "planned_by": by, "model_plans_retried": retries,
        "seconds_p50": round(statistics.median(latencies), 2) if latencies else None,
        "seconds_p95": round(sorted(latencies)[max(0, int(0.95 * len(latencies)) - 1)], 2) if latencies else None,
    }


def _table(rows: list[dict[str, Any]]) -> str:
    cols = ["planner", "cases_passed", "cases", "answer_accuracy", "tool_call_validity", "wrong_tool_rate",
            "premature_stops", "abstention_accuracy", "grounded_rate", "planned_by", "seconds_p50", "seconds_p95"]
    out = [" | ".join(cols), " | ".join("---" for _ in cols)]
    for r in rows:
        out.append(" | ".join(json.dumps(r[c]) if isinstance(r[c], dict) else str(r[c]) for c in cols))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval_scenarios.compare_planners", description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="osler eval --out folders")
    p.add_argument("--json", action="store_true", help="only the JSON")
    args = p.parse_args(argv)
    missing = [r for r in args.runs if not (r / "results.json").is_file()]
    if missing:
        print(f"no results.json in {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    rows = [summarise(r) for r in args.runs]
    print(json.dumps(rows, indent=2))
    if not args.json:
        print()
        print(_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
