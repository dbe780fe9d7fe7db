"""``osler eval PATH... [--planner builtin|openai|local] [--base-url URL --model NAME] [--out DIR]
[--tags T ...] [--limit N] [--data-root DIR] [--probe]``

Runs scenario files (or folders of them) through ``Assistant.ask`` and prints the scores per tag.
With ``--out`` it writes ``results.json`` (every answer, tool call and timing), ``summary.md`` and
``scores.png``.  Exit code 0 when the run completed (whatever the scores; ``--fail-under`` turns a
low pass rate into exit code 1), 2 for bad arguments or scenario files.

Called by ``osler eval`` (``ui.cli`` sets the offline environment switches before delegating).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from tools.settings import PLANNERS

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="osler eval", description="Run evaluation scenarios and score them.")
    p.add_argument("paths", nargs="+", help="scenario YAML files or folders (e.g. eval_scenarios/public)")
    p.add_argument("--planner", choices=list(PLANNERS), help="planner (default: builtin)")
    p.add_argument("--base-url", dest="base_url", help="OpenAI-compatible server for --planner openai")
    p.add_argument("--model", help="model name on that server")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", type=Path, help="folder for results.json, summary.md, scores.png")
    p.add_argument("--tags", nargs="+", help="run only cases with any of these tags")
    p.add_argument("--limit", type=int, help="run only the first N (selected) cases")
    p.add_argument("--data-root", dest="data_root", type=Path,
                   help="root of 'data:' image paths (default: settings.shared_data, ../shared/data)")
    p.add_argument("--probe", action="store_true", help="also run derived probing twins of cases that have none")
    p.add_argument("--fail-under", dest="fail_under", type=float, help="exit 1 when the case pass rate is below this")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from agent.runner import Assistant
    from tools.settings import OslerSettings

    from .probing import derive_twins
    from .report import format_table, run_meta, summarize_run, write_reports
    from .runner import LoadedCase, audio_transcriber, load_scenarios, run_suite, select_cases

    cases = load_scenarios(args.paths)
    if args.probe:
        by_case = {c.case.id: c for c in cases}
        cases += [LoadedCase(case=t, file=by_case[t.pair_of].file) for t in derive_twins(c.case for c in cases)]
    cases = select_cases(cases, args.tags, args.limit)
    if not cases:
        print("osler eval: no case selected", file=sys.stderr)
        return 2
    work = args.out / "sessions" if args.out else Path(tempfile.mkdtemp(prefix="osler-eval-"))
    overrides = {k: getattr(args, k) for k in ("planner", "base_url", "model", "device") if getattr(args, k)}
    overrides["data_dir"] = work
    if args.data_root:
        overrides["shared_data"] = args.data_root
    settings = OslerSettings(**overrides)
    data_root = Path(settings.shared_data).resolve()
    transcribe = None
    if any(t.audio for c in cases for t in c.case.all_turns()):
        try:
            transcribe = audio_transcriber(settings)
        except Exception as exc:  # audio cases then fail with this error; the others run
            print(f"osler eval: {exc}", file=sys.stderr)
    assistant = Assistant(settings)
    started = time.time()
    t0 = time.perf_counter()
    records = run_suite(assistant, cases, data_root, progress=not args.quiet, transcribe=transcribe)
    wall = time.perf_counter() - t0
    summary = summarize_run(records)
    planner = settings.planner + (f":{settings.model}" if settings.planner != "builtin" and settings.model else "")
    print(format_table(summary))
    if args.out:
        from .manifest import run_manifest

        meta = run_meta([str(p) for p in args.paths], planner, started, wall)
        meta["manifest"] = run_manifest(settings, cases, data_root, [r.model_dump_report() for r in records])
        paths = write_reports(args.out, records, summary, meta)
        print("reports: " + ", ".join(str(p) for p in paths.values()))
    if args.fail_under is not None and summary["cases_passed"] / max(1, summary["cases"]) < args.fail_under:
        return 1
    return 0
