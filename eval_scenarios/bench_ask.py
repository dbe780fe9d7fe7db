"""``osler bench ask [--n N] [--polyps K] [--json]``: the core latency benchmark of ``ask``.

Runs :meth:`agent.runner.Assistant.ask` over real images (default: the first 20 BCCD dev smears,
"How many white blood cells are in this smear?", and 4 EndoTect polyp frames, "How many polyps
are in this frame?") after one untimed warm-up ask per question (it loads every expert the workload
uses; the cold start is measured separately), and reports:

* ``latency_ms_p50`` / ``latency_ms_p95``: end-to-end ``ask`` time (``timings.total_ms``).
* ``experts_ms_sum`` / ``total_ms_sum``: summed expert compute time (provenance ``elapsed_ms`` of
  the successful tool calls) and summed end-to-end time.
* ``overhead_ratio`` = (total - experts) / total over all timed asks: the fraction of end-to-end time
  spent outside the experts (planner, tool boundary, grounding, overlays, audit log); and
  ``end_to_end_over_experts`` = total / experts, the same time as a factor over the experts' own.
* ``cold_start_ms``: wall time of a fresh Python subprocess that imports Osler, builds the
  assistant and answers one question (interpreter start + imports + expert load + first ask).
* ``peak_rss_mb``: peak resident memory of this process (warm runs), and ``cold_peak_rss_mb`` of
  the cold-start subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.settings import PLANNERS

from .scoring import percentile

__all__ = ["default_workload", "run_bench", "cold_start", "main"]

SMEAR_Q = "How many white blood cells are in this smear?"
POLYP_Q = "How many polyps are in this frame?"
OVERHEAD_DEFINITION = "(total_ms_sum - experts_ms_sum) / total_ms_sum: fraction of end-to-end ask time outside experts"


def default_workload(data_root: Path, n_smears: int = 20, n_polyps: int = 4) -> list[tuple[Path, str]]:
    """(image, question) pairs: the first smears of ``bccd/split.txt`` and the first polyp frames by name."""
    names = (data_root / "bccd" / "split.txt").read_text().split()[:n_smears]
    work = [(data_root / "bccd" / "images" / f"{n}.jpg", SMEAR_Q) for n in names]
    polyps = sorted((data_root / "endotect_polyps" / "images").glob("*.jpg"))[:n_polyps]
    return work + [(p, POLYP_Q) for p in polyps]


def _rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024.0  # Linux: kilobytes


def run_bench(assistant: Any, work: list[tuple[Path, str]]) -> dict[str, Any]:
    """Warm-up ask, then one timed ask per (image, question)."""
    t0 = time.perf_counter()
    seen: set[str] = set()
    for image, question in work:  # one untimed ask per question of the workload: every expert it uses loads
        if question in seen:
            continue
        seen.add(question)
        warm = assistant.new_session()
        warm.load("current", image)
        assistant.ask(warm, question)
    warmup_ms = (time.perf_counter() - t0) * 1000
    totals, experts, failed, backends = [], [], 0, set()
    for image, question in work:
        session = assistant.new_session()
        session.load("current", image)
        r = assistant.ask(session, question)
        totals.append(r.timings.total_ms)
        experts.append(r.timings.experts_ms)
        failed += int(r.status != "ok" or r.abstained)
        backends.update(f"{c.name}:{c.backend}" for c in r.tool_calls if c.backend)
    total_sum, expert_sum = sum(totals), sum(experts)
    return {
        "n": len(totals),
        "latency_ms_p50": percentile(totals, 50),
        "latency_ms_p95": percentile(totals, 95),
        "latency_ms_mean": total_sum / len(totals),
        "experts_ms_sum": expert_sum,
        "total_ms_sum": total_sum,
        "experts_ms_p50": percentile(experts, 50),
        "overhead_ratio": (total_sum - expert_sum) / total_sum if total_sum else None,
        "end_to_end_over_experts": total_sum / expert_sum if expert_sum else None,
        "overhead_ratio_definition": OVERHEAD_DEFINITION,
        "warmup_ask_ms": warmup_ms,
        "failed_or_abstained": failed,
        "backends": sorted(backends),
        "peak_rss_mb": _rss_mb(),
    }


def cold_start(image: Path, question: str, settings_kw: dict[str, Any]) -> dict[str, Any]:
    """Time a fresh interpreter that imports Osler and answers one question."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", YOLO_OFFLINE="1", YOLO_AUTOINSTALL="false")
    cmd = [sys.executable, "-m", "eval_scenarios.bench_ask", "--cold-child", str(image), question,
           "--child-settings", json.dumps(settings_kw, default=str)]
    repo = Path(__file__).resolve().parents[1]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=repo, timeout=600)
    wall_ms = (time.perf_counter() - t0) * 1000
    if proc.returncode != 0:
        return {"cold_start_ms": None, "cold_error": proc.stderr.strip().splitlines()[-1:] or ["failed"]}
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"cold_start_ms": wall_ms, "cold_import_ms": child["import_ms"], "cold_first_ask_ms": child["ask_ms"],
            "cold_peak_rss_mb": child["peak_rss_mb"]}


def _cold_child(image: str, question: str, settings_json: str) -> int:
    t0 = time.perf_counter()
    from agent.runner import Assistant
    from tools.settings import OslerSettings

    import_ms = (time.perf_counter() - t0) * 1000
    assistant = Assistant(OslerSettings(**json.loads(settings_json)))
    session = assistant.new_session()
    session.load("current", image)
    t1 = time.perf_counter()
    assistant.ask(session, question)
    print(json.dumps({"import_ms": import_ms, "ask_ms": (time.perf_counter() - t1) * 1000, "peak_rss_mb": _rss_mb()}))
    return 0


def format_table(res: dict[str, Any]) -> str:
    rows = [("asks timed", f"{res['n']}"), ("latency p50", f"{res['latency_ms_p50']:.0f} ms"),
            ("latency p95", f"{res['latency_ms_p95']:.0f} ms"),
            ("expert time (sum)", f"{res['experts_ms_sum']:.0f} ms"),
            ("end-to-end (sum)", f"{res['total_ms_sum']:.0f} ms"),
            ("overhead ratio", f"{res['overhead_ratio']:.3f}  ({OVERHEAD_DEFINITION})"),
            ("end-to-end / experts", f"{res['end_to_end_over_experts']:.3f}  (total_ms_sum / experts_ms_sum)"),
            ("warm-up ask", f"{res['warmup_ask_ms']:.0f} ms"),
            ("cold start", "-" if res.get("cold_start_ms") is None else f"{res['cold_start_ms']:.0f} ms"),
            ("peak RSS", f"{res['peak_rss_mb']:.0f} MB"), ("failed/abstained", f"{res['failed_or_abstained']}"),
            ("backends", ", ".join(res["backends"])), ("expert runtime", str(res.get("expert_runtime", "-")))]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:{w}s}  {v}" for k, v in rows)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--cold-child":
        return _cold_child(argv[1], argv[2], argv[4] if len(argv) > 4 else "{}")
    ap = argparse.ArgumentParser(prog="osler bench ask", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20, help="number of BCCD smears (default 20)")
    ap.add_argument("--polyps", type=int, default=4, help="number of polyp frames (default 4)")
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    ap.add_argument("--no-cold", dest="cold", action="store_false", help="skip the cold-start subprocess")
    ap.add_argument("--data-root", type=Path, help="default: settings.shared_data (../shared/data)")
    ap.add_argument("--planner", choices=list(PLANNERS))
    ap.add_argument("--base-url", dest="base_url")
    ap.add_argument("--model")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"])
    args = ap.parse_args(argv)
    from agent.runner import Assistant
    from tools.settings import OslerSettings

    work_dir = tempfile.mkdtemp(prefix="osler-bench-ask-")
    kw: dict[str, Any] = {k: getattr(args, k) for k in ("planner", "base_url", "model", "device") if getattr(args, k)}
    kw["data_dir"] = work_dir
    if args.data_root:
        kw["shared_data"] = str(args.data_root)
    settings = OslerSettings(**kw)
    work = default_workload(Path(settings.shared_data).resolve(), args.n, args.polyps)
    cold = cold_start(work[0][0], work[0][1], kw | {"data_dir": work_dir + "/cold"}) if args.cold else {}
    res = run_bench(Assistant(settings), work)
    res.update(cold or {"cold_start_ms": None})
    from experts.onnx_runtime import use_onnx
    from experts.yolo_detector import BLOOD_ONNX

    # what ran the blood YOLO and the gate: the ONNX exports on onnxruntime, or torch and why (docs/serving.md)
    res["expert_runtime"] = f"{settings.expert_runtime}: {use_onnx(settings, BLOOD_ONNX, settings.models.yolo_blood)[1]}"
    res["workload"] = f"{args.n} BCCD smears ('{SMEAR_Q}') + {args.polyps} polyp frames ('{POLYP_Q}')"
    if not args.json:
        print(format_table(res))
    print(json.dumps(res, indent=None if not args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
