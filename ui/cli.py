"""``osler`` command line: ask, bench, serve, voice, eval, doctor.

Exit codes: 0 success, 2 bad input / configuration / unreachable planner (one line on stderr),
1 unexpected failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from tools.entrypoints import make_settings, offline_environment, planner_args

if TYPE_CHECKING:
    from agent.runner import Assistant
    from experts.ray_serve import RayExpertPool
    from tools.settings import OslerSettings

__all__ = ["main", "offline_environment", "make_settings"]


def _cmd_ask(args: argparse.Namespace) -> int:
    from agent.runner import Assistant
    from ui.batch import is_batch_spec

    if is_batch_spec(args.image):
        return _cmd_ask_batch(args)
    if not args.question:
        print("osler: give a question after the image", file=sys.stderr)
        return 2
    settings = _serving(make_settings(args), args)
    with _expert_pool(settings) as pool:
        return _ask_one(args, Assistant(settings, pool=pool))


def _ask_one(args: argparse.Namespace, assistant: Assistant) -> int:
    from ui.render import render_text

    # libraries that print to stdout (ultralytics' first-run notices) must not corrupt --json output
    with contextlib.redirect_stdout(sys.stderr):
        session = assistant.new_session()
        session.load("current", args.image, study_date=args.date)
        if args.prior:
            session.load("prior", args.prior, study_date=args.prior_date)
        result = assistant.ask(session, args.question)
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print(render_text(result))
    if args.out:  # one image: --out is the folder of exported results (agent.export.files)
        from agent.export.files import export_session
        from ui.export_view import scrubbed_answers
        from ui.report_cli import print_export

        with contextlib.redirect_stdout(sys.stderr):
            answers = scrubbed_answers(session) if args.deidentify else None  # the question may name the patient
            exported = export_session(session, args.out, answers=answers, deidentify=args.deidentify,
                                      secondary_capture=args.secondary_capture)
        print_export(exported, sys.stderr if args.json else sys.stdout)
    return 0


def _cmd_ask_batch(args: argparse.Namespace) -> int:
    """Many images, one process: JSON Lines to stdout or ``--out`` (resumable); see :mod:`ui.batch`."""
    from agent.runner import Assistant
    from ui.batch import collect_jobs, done_ids

    jobs = collect_jobs(args.image, args.question, args.prior, args.date, args.prior_date)
    settings = _serving(make_settings(args), args)
    skip = done_ids(args.out) if args.out else set()
    with _expert_pool(settings) as pool:
        with contextlib.redirect_stdout(sys.stderr):
            assistant = Assistant(settings, pool=pool)
        return _run_batch(args, assistant, jobs, skip)


def _run_batch(args: argparse.Namespace, assistant: Assistant, jobs: list[Any], skip: set[str]) -> int:
    from agent.private_files import open_private, private_dir
    from ui.batch import run_batch

    if args.out:
        private_dir(args.out.parent)
        with open_private(args.out, "a") as sink, contextlib.redirect_stdout(sys.stderr):
            counts = run_batch(assistant, jobs, sink, workers=args.workers, skip=skip, progress=not args.quiet)
    else:
        sink = sys.stdout
        with contextlib.redirect_stdout(sys.stderr):
            counts = run_batch(assistant, jobs, sink, workers=args.workers, progress=not args.quiet)
    print(f"osler ask: {counts['ok']} answered, {counts['errors']} errors, {counts['skipped']} already in "
          f"{args.out}" if args.out else f"osler ask: {counts['ok']} answered, {counts['errors']} errors",
          file=sys.stderr)
    return 0


def _serving(settings: OslerSettings, args: argparse.Namespace) -> OslerSettings:
    """``--experts`` and ``RAY_ADDRESS`` into the settings (docs/serving.md)."""
    from experts.ray_serve import with_serving

    return with_serving(settings, experts=getattr(args, "experts", None), ray_address=os.environ.get("RAY_ADDRESS"))


@contextlib.contextmanager
def _expert_pool(settings: OslerSettings) -> Iterator[RayExpertPool | None]:
    """None (the assistant loads the experts in this process) or a Ray Serve pool, shut down on exit."""
    if settings.serving.experts != "ray":
        yield None
        return
    from experts.ray_serve import RayExpertPool

    with contextlib.redirect_stdout(sys.stderr):  # Ray's notices must not corrupt --json output
        pool = RayExpertPool(settings)
    try:
        yield pool
    finally:
        with contextlib.redirect_stdout(sys.stderr):
            pool.shutdown()


def _cmd_doctor(args: argparse.Namespace) -> int:
    from experts.registry import ExpertPool

    settings = make_settings(args)
    pool = ExpertPool(settings)
    report = {}
    for key in pool.registry:
        report[key] = {name: (reason or "ready") for name, reason in pool.backends(key)}
    report["planner"] = _planner_readiness(settings)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, backends in report.items():
            print(key)
            for name, state in backends.items():
                print(f"  {name:13s} {state}")
    return 0


def _planner_readiness(settings: Any) -> dict[str, str]:
    """Which planners can run here: the built-in one always; the local LLM when its binary and model are
    installed (``make llm``); the server planners when a URL is set (not contacted here)."""
    from agent.planners.llm_server import resolve_binary, resolve_model
    from tools.errors import ConfigurationError

    out = {"builtin": "ready"}
    try:
        if settings.llm.base_url:
            out["llm"] = f"ready (server at {settings.llm.base_url}, not contacted)"
        else:
            binary = resolve_binary(settings)
            model = settings.llm.model
            path = Path(model) if model.endswith(".gguf") else settings.llm.home / f"{model}.gguf"
            if not path.is_file() and not model.endswith(".gguf"):
                raise ConfigurationError(f"model {model} not assembled at {path}: run `make llm`")
            out["llm"] = f"ready ({binary}, {resolve_model(settings)[0]})"
    except ConfigurationError as exc:
        out["llm"] = str(exc)
    out["openai"] = (f"ready (server at {settings.base_url}, not contacted)" if settings.base_url and settings.model
                     else "set OSLER_BASE_URL and OSLER_MODEL (an OpenAI-compatible server)")
    out["local"] = ("ready" if settings.models.local_llm_dir else
                    "set OSLER_MODELS__LOCAL_LLM_DIR (a transformers chat model folder or .gguf)")
    return out


def _normalise_inputs(args: argparse.Namespace) -> None:
    """Outside text is normalised once, here: non-UTF-8 bytes in argv arrive as lone surrogates and become
    U+FFFD; study dates must be real dates (one-line error, exit 2).  File paths stay as given (they open)."""
    from tools.inputs import clean_text, parse_study_date

    if getattr(args, "question", None) is not None:
        args.question = clean_text(args.question)
    for attr, flag in (("date", "--date"), ("prior_date", "--prior-date")):
        if getattr(args, attr, None) is not None:
            setattr(args, attr, parse_study_date(getattr(args, attr), what=flag))


# Subcommands with their own argument parser.  Each is imported when asked for (the web app pulls in
# gradio, benchmarks pull in torch), from a module that is part of every install.
def _serve(argv: list[str]) -> int | None:
    from ui.app import main as serve

    return serve(argv)


def _voice(argv: list[str]) -> int | None:
    from voice.cli import main as voice

    return voice(argv)


def _eval(argv: list[str]) -> int | None:
    from eval_scenarios.cli import main as evaluate

    return evaluate(argv)


def _bench(argv: list[str]) -> int | None:
    from eval_scenarios.bench_cli import main as bench

    return bench(argv)


def _live(argv: list[str]) -> int | None:
    from ui.live import main as live

    return live(argv)


def _report(argv: list[str]) -> int | None:
    from ui.report_cli import main as report

    return report(argv)


SUBCOMMANDS: dict[str, Callable[[list[str]], int | None]] = {
    "serve": _serve,
    "voice": _voice,
    "eval": _eval,
    "bench": _bench,
    "live": _live,
    "report": _report,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    offline_environment()
    logging.basicConfig(level=os.environ.get("OSLER_LOG_LEVEL", "WARNING"), format="%(levelname)s %(name)s: %(message)s")
    from tools.errors import OslerError

    if argv and argv[0] in SUBCOMMANDS:
        try:
            return int(SUBCOMMANDS[argv[0]](argv[1:]) or 0)
        except OslerError as exc:
            print(f"osler {argv[0]}: {exc}", file=sys.stderr)
            return 2
    parser = argparse.ArgumentParser(prog="osler", description="Evidence-bound answers about medical images, offline.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    ask = sub.add_parser("ask", help="answer a question about an image")
    ask.add_argument("image", help="PNG, JPEG, TIFF, BMP or DICOM; or a folder, a glob or a CSV (image[,question,prior])"
                                   " for a batch: one JSON line per image")
    ask.add_argument("question", nargs="?", help="the question (a CSV may give one per row)")
    ask.add_argument("--prior", help="an older study of the same patient")
    ask.add_argument("--date", help="study date of IMAGE (YYYY-MM-DD) when not in DICOM")
    ask.add_argument("--prior-date", dest="prior_date", help="study date of the prior (YYYY-MM-DD)")
    ask.add_argument("--json", action="store_true", help="print one JSON object (a batch always prints JSON Lines)")
    # one flag, two modes: for a batch --out is the JSON Lines FILE (resumable); for one image it is the
    # folder that receives the exported results (export engineer: reuse this argument, do not add another)
    ask.add_argument("--out", type=Path, help="batch: append JSON Lines to this file; rows already there are skipped. "
                     "One image: folder for answers, masks, overlays, the report (MD/PDF) and DICOM SEG/SR")
    ask.add_argument("--workers", type=int, default=1, help="batch: questions answered at once (default 1)")
    ask.add_argument("--quiet", action="store_true", help="batch: no progress bar")
    ask.add_argument("--experts", choices=["inprocess", "ray"], help="ray: experts as Ray Serve deployments on a local "
                     "Ray instance or the cluster in RAY_ADDRESS, shared by --workers (docs/serving.md)")
    from ui.report_cli import add_export_args

    add_export_args(ask)
    planner_args(ask)
    doc = sub.add_parser("doctor", help="which expert backends can run here, and what to configure")
    doc.add_argument("--json", action="store_true")
    for name, help_ in (("serve", "start the local web app"), ("voice", "spoken questions"),
                        ("eval", "run evaluation scenarios"), ("bench", "benchmarks"),
                        ("report", "report (Markdown + PDF, SEG/SR) of saved answers")):
        sub.add_parser(name, help=help_)
    args = parser.parse_args(argv)
    try:
        _normalise_inputs(args)
        return {"ask": _cmd_ask, "doctor": _cmd_doctor}[args.cmd](args)
    except OslerError as exc:
        print(f"osler: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
