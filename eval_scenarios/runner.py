"""Run scenario cases through the same code path as ``osler ask`` (:meth:`agent.runner.Assistant.ask`)
and record every answer, tool call, timing and verdict.

One fresh session per case (``memory: per_case`` keeps it, and its conversation, across the case's
turns; ``per_question`` starts a fresh session for every turn).  A case that crashes (a bad image
path, an exception in the planner or an expert) is recorded as failed with its error, and the run
goes on with the next case.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml
from pydantic import BaseModel, Field

from tools.errors import ConfigurationError, InvalidInputError
from tools.settings import OslerSettings

from .schema import Images, Scenario, ScenarioFile
from .scoring import Verdict, score_turn

__all__ = ["LoadedCase", "TurnRecord", "CaseRecord", "load_scenarios", "resolve_image", "select_cases", "run_case",
           "run_suite", "audio_transcriber"]

log = logging.getLogger(__name__)

DATA_PREFIX = "data:"


class LoadedCase(BaseModel):
    """A case and the file it came from (relative image paths resolve against that file's folder)."""

    case: Scenario
    file: Path


class TurnRecord(BaseModel):
    question: str | None
    transcript: str | None = None
    result: dict[str, Any] | None = Field(default=None, description="AskResult as JSON")
    error: str | None = None
    latency_s: float | None = None
    verdict: Verdict


class CaseRecord(BaseModel):
    id: str
    file: str
    tags: list[str]
    pair_of: str | None = None
    turns: list[TurnRecord]
    error: str | None = None
    wall_s: float = 0.0

    @property
    def passed(self) -> bool:
        return self.error is None and bool(self.turns) and all(t.verdict.passed for t in self.turns)

    def model_dump_report(self) -> dict[str, Any]:
        return self.model_dump(mode="json") | {"passed": self.passed}


def _yaml_files(paths: Iterable[str | Path]) -> list[Path]:
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(x for x in p.rglob("*") if x.suffix in (".yaml", ".yml")))
        elif p.exists():
            files.append(p)
        else:
            raise InvalidInputError(f"no scenario file or folder at {p}")
    return files


def load_scenarios(paths: Iterable[str | Path]) -> list[LoadedCase]:
    """Read scenario files (or folders of ``*.yaml``).  Raises InvalidInputError naming the file
    for YAML or schema errors, and for duplicate case ids."""
    out: list[LoadedCase] = []
    seen: dict[str, Path] = {}
    for f in _yaml_files(paths):
        try:
            data = yaml.safe_load(f.read_text(encoding="utf-8"))
            cases = ScenarioFile.model_validate(data).cases()
        except Exception as exc:  # yaml.YAMLError, pydantic.ValidationError
            raise InvalidInputError(f"{f}: not a valid scenario file: {exc}") from exc
        for c in cases:
            if c.id in seen:
                raise InvalidInputError(f"case id {c.id!r} appears in {seen[c.id]} and {f}")
            seen[c.id] = f
            out.append(LoadedCase(case=c, file=f.resolve()))
    return out


def select_cases(cases: list[LoadedCase], tags: list[str] | None = None, limit: int | None = None) -> list[LoadedCase]:
    """Cases having any of ``tags`` (all when None), the first ``limit`` of them."""
    if tags:
        want = set(tags)
        cases = [c for c in cases if want & set(c.case.tags)]
    return cases[:limit] if limit is not None else cases


def resolve_image(ref: str, base_dir: Path, data_root: Path) -> Path:
    if ref.startswith(DATA_PREFIX):
        return (data_root / ref[len(DATA_PREFIX):]).resolve()
    p = Path(ref)
    return p if p.is_absolute() else (base_dir / p).resolve()


def audio_transcriber(settings: OslerSettings) -> Callable[[Path], str]:
    """The voice pipeline's real recogniser and strict command parser, built once for a run:
    ``transcribe(wav_path) -> question``.  A recording that is not a complete command raises
    :class:`~tools.errors.InvalidInputError` (the voice rule: an unrecognised command is never acted on),
    so the case fails with that reason instead of asking a guessed question."""
    from voice.asr import build_recognizer
    from voice.config import voice_settings
    from voice.pipeline import transcribe_command

    vs = voice_settings(settings)
    recognizer = build_recognizer(settings, vs)

    def transcribe(path: Path) -> str:
        heard = transcribe_command(path, settings, recognizer=recognizer, vs=vs)
        if heard.question is None:
            raise InvalidInputError(f"heard {heard.transcript!r}: not a complete command, nothing asked")
        return heard.question

    return transcribe


def _short_error(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {msg}"[:500]


def _load_images(session: Any, images: Images, base: Path, data_root: Path) -> None:
    session.load("current", resolve_image(images.current, base, data_root), study_date=images.current_date)
    if images.prior:
        session.load("prior", resolve_image(images.prior, base, data_root), study_date=images.prior_date)


def run_case(assistant: Any, loaded: LoadedCase, data_root: Path,
             transcribe: Callable[[Path], str] | None = None) -> CaseRecord:
    """Run one case; never raises (errors are recorded in the record)."""
    case, base = loaded.case, loaded.file.parent
    t_case = time.perf_counter()
    record = CaseRecord(id=case.id, file=str(loaded.file), tags=list(case.tags), pair_of=case.pair_of, turns=[])
    session = None
    for i, turn in enumerate(case.all_turns()):
        question, transcript, result, error, latency = turn.question, None, None, None, None
        try:
            if session is None or case.memory == "per_question":
                session = assistant.new_session()
                _load_images(session, case.images, base, data_root)
            if turn.audio is not None:
                if transcribe is None:
                    raise ConfigurationError("this run has no audio transcriber (voice.pipeline)")
                transcript = question = transcribe(resolve_image(turn.audio, base, data_root))
            t0 = time.perf_counter()
            try:
                answer = assistant.ask(session, question or "")
            finally:
                latency = time.perf_counter() - t0
            result = answer.model_dump(mode="json")
        except Exception as exc:  # the run goes on: the case fails with its error
            error = _short_error(exc)
            log.debug("case %s turn %d failed:\n%s", case.id, i, traceback.format_exc())
            if session is None or not session.images:
                record.error = error
        verdict = score_turn(turn.expect, result, latency, error=error, question=question or "")
        record.turns.append(TurnRecord(question=question, transcript=transcript, result=result, error=error,
                                       latency_s=latency, verdict=verdict))
        if record.error:  # the images could not be loaded: the other turns cannot run either
            break
    record.wall_s = time.perf_counter() - t_case
    return record


def run_suite(assistant: Any, cases: list[LoadedCase], data_root: Path, *, progress: bool = True,
              transcribe: Callable[[Path], str] | None = None) -> list[CaseRecord]:
    """Run every case in order, with a progress bar on stderr."""
    from tqdm import tqdm

    records = []
    bar = tqdm(cases, desc="eval", unit="case", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    for loaded in bar:
        rec = run_case(assistant, loaded, data_root, transcribe)
        records.append(rec)
        bar.set_postfix_str(f"{loaded.case.id} {'ok' if rec.passed else 'FAIL'}", refresh=False)
    return records
