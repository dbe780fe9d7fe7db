"""``osler ask FOLDER|GLOB|CSV "question" --json``: answer many images in one process.

Jobs come from
* a folder: every image file below it (PNG, JPEG, TIFF, BMP, DICOM by extension or by its ``DICM`` preamble),
  sorted by path, each asked ``question``;
* a glob (``'data/*.jpg'``, ``**`` recursive), the same;
* a CSV with a header naming ``image`` and optionally ``question``, ``prior``, ``date``, ``prior_date``;
  relative paths resolve against the CSV's folder; a row without a question is asked ``question``.

Every job gives one JSON Lines row: ``{"id", "image", "prior", "ok": true, ...the --json object...}`` or, for a
job that cannot run (a bad image, a refused question), ``{"id", "image", "ok": false, "error": "..."}``; a bad
job never aborts the run.  ``--out FILE`` appends rows to FILE and, when FILE already holds rows, skips the
jobs whose ids are there (resume after an interruption; a half-written last line is dropped first).
``--workers N`` answers N jobs at once with one shared :class:`~agent.runner.Assistant` (experts load once
and serialise themselves).  A progress bar goes to stderr.
"""

from __future__ import annotations

import csv
import glob as globlib
import hashlib
import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TextIO

from tools.errors import InvalidInputError, OslerError

__all__ = ["Job", "is_batch_spec", "collect_jobs", "done_ids", "run_batch"]

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom"}
GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Job:
    """One question about one image (and its prior)."""

    id: str
    image: Path
    question: str
    prior: Path | None = None
    date: str | None = None
    prior_date: str | None = None


def is_batch_spec(spec: str) -> bool:
    """A folder, a glob pattern or a CSV file (anything else is one image)."""
    p = Path(spec)
    return p.is_dir() or bool(GLOB_CHARS & set(spec)) and not p.exists() or p.suffix.lower() == ".csv"


def _is_image_file(p: Path) -> bool:
    if not p.is_file():
        return False
    if p.suffix.lower() in IMAGE_SUFFIXES:
        return True
    if p.suffix:
        return False
    try:  # DICOM files often have no extension: check the preamble
        with p.open("rb") as f:
            return f.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _job_id(label: str, question: str, prior: Path | None) -> str:
    digest = hashlib.sha1(f"{question}\0{prior or ''}".encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{label}#{digest}"


def _label(path: Path, root: Path | None) -> str:
    try:
        return str(path.relative_to(root)) if root else str(path)
    except ValueError:
        return str(path)


def collect_jobs(spec: str, question: str | None, prior: str | None = None, date: str | None = None,
                 prior_date: str | None = None) -> list[Job]:
    """The jobs a folder, glob or CSV names.  Raises InvalidInputError when it names none."""
    src = Path(spec)
    if src.suffix.lower() == ".csv" and src.is_file():
        return _jobs_from_csv(src, question)
    if not question:
        raise InvalidInputError("give the question to ask of every image (or a CSV with a 'question' column)")
    prior_p = Path(prior) if prior else None
    if src.is_dir():
        root: Path | None = src
        files = sorted(p for p in src.rglob("*") if _is_image_file(p))
    else:
        root = None
        files = sorted(Path(p) for p in globlib.glob(spec, recursive=True) if _is_image_file(Path(p)))
    if not files:
        raise InvalidInputError(f"no image files found in {spec!r} (PNG, JPEG, TIFF, BMP or DICOM)")
    return [Job(_job_id(_label(f, root), question, prior_p), f, question, prior_p, date, prior_date) for f in files]


def _jobs_from_csv(path: Path, default_question: str | None) -> list[Job]:
    base = path.parent
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        fields = {c.strip().lower() for c in (reader.fieldnames or [])}
        if "image" not in fields:
            raise InvalidInputError(f"{path.name}: the CSV needs a header with an 'image' column "
                                    "(optional: question, prior, date, prior_date)")
        jobs = []
        for n, raw in enumerate(reader, start=2):
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in raw.items()}
            if not row.get("image"):
                continue
            q = row.get("question") or default_question
            if not q:
                raise InvalidInputError(f"{path.name} line {n}: no question (add a 'question' column or give one)")
            image = Path(row["image"])
            image = image if image.is_absolute() else base / image
            prior = Path(row["prior"]) if row.get("prior") else None
            if prior is not None and not prior.is_absolute():
                prior = base / prior
            jobs.append(Job(_job_id(row["image"], q, prior), image, q, prior,
                            row.get("date") or None, row.get("prior_date") or None))
    if not jobs:
        raise InvalidInputError(f"{path.name}: no rows with an image")
    return jobs


def done_ids(out: Path) -> set[str]:
    """Ids of the rows already in ``out``; a half-written last line (an interrupted run) is cut off."""
    if not out.exists():
        return set()
    data = out.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with out.open("r+b") as f:
            f.truncate(cut)
        data = data[:cut]
    ids = set()
    for line in data.splitlines():
        try:
            ids.add(json.loads(line)["id"])
        except (ValueError, KeyError, TypeError):
            continue
    return ids


def _answer(assistant: Any, job: Job) -> dict[str, Any]:
    head = {"id": job.id, "image": str(job.image), "prior": str(job.prior) if job.prior else None}
    try:
        session = assistant.new_session()
        session.load("current", job.image, study_date=job.date)
        if job.prior is not None:
            session.load("prior", job.prior, study_date=job.prior_date)
        result = assistant.ask(session, job.question)
    except OslerError as exc:
        return head | {"ok": False, "question": job.question, "error": f"{type(exc).__name__}: {exc}"}
    except Exception as exc:  # one bad job never ends the run; the row says what happened
        return head | {"ok": False, "question": job.question, "error": f"unexpected {type(exc).__name__}: {exc}"}
    return head | {"ok": True} | result.model_dump(mode="json")


def run_batch(assistant: Any, jobs: Iterable[Job], sink: TextIO, *, workers: int = 1,
              skip: set[str] | None = None, progress: bool = True,
              on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, int]:
    """Answer ``jobs`` (minus ``skip``), writing one JSON line per job to ``sink`` as each finishes
    (flushed, so an interrupted run keeps every finished row).  Returns counts."""
    from tqdm import tqdm

    todo = [j for j in jobs if not skip or j.id not in skip]
    counts = {"jobs": len(todo), "ok": 0, "errors": 0, "skipped": 0}
    if skip:
        counts["skipped"] = len(skip)
    lock = threading.Lock()
    bar = tqdm(total=len(todo), desc="ask", unit="img", file=sys.stderr, disable=not progress, dynamic_ncols=True)

    def emit(row: dict[str, Any]) -> None:
        line = json.dumps(row, ensure_ascii=True, default=str)
        with lock:
            sink.write(line + "\n")
            sink.flush()
            counts["ok" if row["ok"] else "errors"] += 1
            bar.update(1)
        if on_row is not None:
            on_row(row)

    try:
        if workers <= 1:
            for job in todo:
                emit(_answer(assistant, job))
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="osler-batch") as pool:
                for fut in as_completed([pool.submit(_answer, assistant, j) for j in todo]):
                    emit(fut.result())
    finally:
        bar.close()
    return counts
