"""Reports of an evaluation run: metrics overall and per tag, a JSON file with every case's answer,
tool calls and timings, a Markdown summary, a PNG plot (accuracy and latency per tag) and a text
table for stdout.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

from .probing import pair_accuracy
from .runner import CaseRecord
from .scoring import aggregate

__all__ = ["summarize_run", "format_table", "write_json", "write_markdown", "write_plot", "write_reports", "run_meta"]

COLUMNS: list[tuple[str, str, str]] = [
    # key, header, format ('%' = rate, 'f' = float, 'd' = int, 's' = seconds)
    ("n", "n", "d"),
    ("pass_rate", "pass", "%"),
    ("answer_accuracy", "answer", "%"),
    ("tool_precision", "tool P", "%"),
    ("tool_recall", "tool R", "%"),
    ("forbidden_violations", "forbid", "d"),
    ("arg_validity", "args", "%"),
    ("grounded_rate", "grounded", "%"),
    ("abstention_accuracy", "abstain", "%"),
    ("errors", "errors", "d"),
    ("latency_s_p50", "p50 s", "s"),
    ("latency_s_p95", "p95 s", "s"),
]


def summarize_run(records: list[CaseRecord]) -> dict[str, Any]:
    """Metrics over all questions, per tag, case pass rate and probing pair accuracy."""
    all_verdicts = [t.verdict for r in records for t in r.turns]
    tags = sorted({t for r in records for t in r.tags})
    per_tag = {tag: aggregate([t.verdict for r in records if tag in r.tags for t in r.turns]) for tag in tags}
    return {
        "overall": aggregate(all_verdicts),
        "per_tag": per_tag,
        "cases": len(records),
        "cases_passed": sum(r.passed for r in records),
        "case_errors": sum(1 for r in records if r.error),
        "probing": pair_accuracy(records),
    }


def _fmt(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "%":
        return f"{100 * value:.0f}%"
    if kind == "s":
        return f"{value:.2f}"
    if kind == "d":
        return str(int(value))
    return f"{value:.3f}"


def _rows(summary: dict[str, Any]) -> list[list[str]]:
    rows = [["ALL"] + [_fmt(summary["overall"].get(k), f) for k, _, f in COLUMNS]]
    for tag, m in summary["per_tag"].items():
        rows.append([tag] + [_fmt(m.get(k), f) for k, _, f in COLUMNS])
    return rows


def format_table(summary: dict[str, Any]) -> str:
    header = ["tag"] + [h for _, h, _ in COLUMNS]
    rows = _rows(summary)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [line(header), line(["-" * w for w in widths])] + [line(r) for r in rows]
    p = summary["probing"]
    out.append("")
    out.append(f"cases passed {summary['cases_passed']}/{summary['cases']} (case errors {summary['case_errors']})")
    if p["pairs"]:
        out.append(f"probing pairs {p['pairs']}: pair accuracy {100 * p['pair_accuracy']:.0f}% "
                   f"(originals {100 * p['original_accuracy']:.0f}%, twins {100 * p['twin_accuracy']:.0f}%)")
    return "\n".join(out)


def write_json(path: Path, records: list[CaseRecord], summary: dict[str, Any], meta: dict[str, Any]) -> None:
    doc = {"meta": meta, "summary": summary, "cases": [r.model_dump_report() for r in records]}
    path.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")


def _failure_line(r: CaseRecord) -> str:
    why = r.error
    if not why:
        bad = next((t for t in r.turns if not t.verdict.passed), None)
        v = bad.verdict if bad else None
        reasons = []
        if v is not None:
            if v.error:
                reasons.append(v.error)
            if v.answer_correct is False:
                reasons.append(f"answer {v.answer_detail}")
            if v.tools_missing:
                reasons.append(f"missing tools {v.tools_missing}")
            if v.forbidden_violations:
                reasons.append(f"forbidden {v.forbidden_violations}")
            if v.arg_problems:
                reasons.append(f"args {v.arg_problems}")
            if v.grounded is False:
                reasons.append(f"ungrounded {v.unsupported_numbers}")
            if v.abstention_correct is False:
                reasons.append("abstention wrong")
            if v.mention_problems:
                reasons.append("; ".join(v.mention_problems))
            if v.latency_ok is False:
                reasons.append(f"latency {v.latency_s:.2f}s")
        why = "; ".join(reasons) or "failed"
    return f"| `{r.id}` | {', '.join(r.tags)} | {why.replace('|', '/')} |"


def write_markdown(path: Path, records: list[CaseRecord], summary: dict[str, Any], meta: dict[str, Any]) -> None:
    header = ["tag"] + [h for _, h, _ in COLUMNS]
    lines = [f"# Osler evaluation: {meta.get('planner', '?')} planner", "",
             f"- suites: {', '.join(meta.get('paths', []))}", f"- started: {meta.get('started')}",
             f"- wall time: {meta.get('wall_s', 0):.1f} s; cases {summary['cases']}, passed {summary['cases_passed']}",
             f"- machine: {meta.get('machine')}", *_manifest_lines(meta.get("manifest")), "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in _rows(summary)]
    p = summary["probing"]
    if p["pairs"]:
        lines += ["", f"Probing pairs: {p['pairs']}, pair accuracy {100 * p['pair_accuracy']:.1f}% "
                      f"(originals {100 * p['original_accuracy']:.1f}%, twins {100 * p['twin_accuracy']:.1f}%)."]
    lines += ["", "Definitions: `answer` = answer accuracy over cases with an expected answer; `tool P/R` = tool "
                  "selection precision/recall (image_info neutral); `forbid` = calls of forbidden tools; `args` = "
                  "argument validity; `grounded` = every number of the answer found in a tool result; `abstain` = "
                  "abstention correctness; latency = wall time of `ask` per question.", ""]
    failed = [r for r in records if not r.passed]
    if failed:
        lines += [f"## Failed cases ({len(failed)})", "", "| case | tags | why |", "|---|---|---|"]
        lines += [_failure_line(r) for r in failed]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_plot(path: Path, summary: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display
    import matplotlib.pyplot as plt

    tags = list(summary["per_tag"])
    acc = [summary["per_tag"][t]["pass_rate"] or 0.0 for t in tags]
    ans = [summary["per_tag"][t]["answer_accuracy"] for t in tags]
    p50 = [summary["per_tag"][t]["latency_s_p50"] or 0.0 for t in tags]
    p95 = [summary["per_tag"][t]["latency_s_p95"] or 0.0 for t in tags]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(max(8, 0.9 * len(tags) + 4), 4.5))
    xs = range(len(tags))
    ax1.bar([x - 0.2 for x in xs], [100 * a for a in acc], width=0.4, label="pass rate")
    ax1.bar([x + 0.2 for x in xs], [100 * (a or 0) for a in ans], width=0.4, label="answer accuracy")
    ax1.set_ylim(0, 105)
    ax1.set_ylabel("%")
    ax1.set_title("accuracy per tag")
    ax1.legend(fontsize=8)
    ax2.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50")
    ax2.bar([x + 0.2 for x in xs], p95, width=0.4, label="p95")
    ax2.set_ylabel("seconds per question")
    ax2.set_title("latency per tag")
    ax2.legend(fontsize=8)
    for ax in (ax1, ax2):
        ax.set_xticks(list(xs))
        ax.set_xticklabels([f"{t} ({summary['per_tag'][t]['n']})" for t in tags], rotation=45, ha="right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_reports(out: Path, records: list[CaseRecord], summary: dict[str, Any],
                  meta: dict[str, Any]) -> dict[str, Path]:
    """results.json, summary.md and scores.png in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "summary.md", "plot": out / "scores.png"}
    write_json(paths["json"], records, summary, meta)
    write_markdown(paths["markdown"], records, summary, meta)
    write_plot(paths["plot"], summary)
    return paths


def _manifest_lines(manifest: dict[str, Any] | None) -> list[str]:
    """The run's identity in two lines (the whole manifest is in results.json)."""
    if not manifest:
        return []
    code = manifest.get("code") or {}
    dirty = " with uncommitted changes" if code.get("git_dirty") else ""
    used = ", ".join(sorted({f"{e['backend']} {e['model']}" for e in manifest.get("experts_used") or []
                             if e.get("model") not in (None, "None")}))
    return [f"- code: osler {code.get('version')}, commit {code.get('git_commit') or 'unknown'}{dirty}",
            f"- experts used: {used or 'none'} (weights and image SHA-256 in results.json `meta.manifest`; compare two "
            f"runs with `python -m eval_scenarios.manifest diff A/results.json B/results.json`)"]


def run_meta(paths: list[str], planner: str, started: float, wall_s: float) -> dict[str, Any]:
    return {"paths": paths, "planner": planner, "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "wall_s": wall_s, "machine": f"{platform.machine()} {platform.python_version()}"}
