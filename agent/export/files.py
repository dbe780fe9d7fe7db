"""Everything of a session written next to each other in one folder (``osler ask ... --out DIR``, the web
app's report button, ``osler report``):

==========================  =================================================================
``answers.json``            the answers (``osler ask --json`` objects, a list); paths point into DIR
``mask-N.png``              masks (image size, 0/255) and ``overlay-N.png`` overlays
``report.md``/``report.pdf``  the session report (:mod:`agent.export.report`), DRAFT for review
``segmentation.dcm``        DICOM input only: binary SEG of the masks of the current study
``measurements-sr.dcm``     DICOM input only: TID 1500 measurement report
``overlay-sc.dcm``          DICOM input, only when asked: the latest overlay as Secondary Capture
``image-deid.dcm``          DICOM input with ``deidentify``: the de-identified source SEG/SR refer to
==========================  =================================================================

With ``deidentify`` the DICOM objects follow the PS3.15 basic profile (:mod:`agent.export.dicom_deid`) and the
JSON and report name no source file and no study date.  Pixel data are not cleaned: text burned into an
image stays in it and in its overlays.  The files are 0600 and the folders this makes 0700, whatever the umask.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tools.answer import AskResult
from tools.errors import InvalidInputError

from agent.export.report import build_report, report_markdown
from agent.export.results import artifact_refs, results_by_id
from agent.private_files import copy_private, make_private, private_dir, write_private_text

__all__ = ["ExportResult", "export_answers", "export_session", "deidentify_answer_json"]

log = logging.getLogger(__name__)


@dataclass
class ExportResult:
    """What was written: kind -> paths, and notes on what was not (and why)."""

    out_dir: Path
    files: dict[str, list[Path]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, path: Path) -> None:
        self.files.setdefault(kind, []).append(path)

    @property
    def paths(self) -> list[Path]:
        return [p for ps in self.files.values() for p in ps]


def deidentify_answer_json(obj: Any) -> Any:
    """Image metadata (any dict with role/source/format) loses its source file name and study date, and
    those names and dates are cut from every text (summaries, steps) too."""
    secrets: dict[str, str] = {}

    def collect(o: Any) -> None:
        if isinstance(o, dict):
            if {"role", "source", "format"} <= set(o):
                if o.get("source"):
                    secrets[str(o["source"])] = f"{o['role']} study"
                if o.get("study_date"):
                    secrets[str(o["study_date"])] = "[date removed]"
                    secrets[str(o["study_date"]).replace("-", "")] = "[date removed]"
            for v in o.values():
                collect(v)
        elif isinstance(o, list):
            for v in o:
                collect(v)

    def scrub(o: Any) -> Any:
        if isinstance(o, dict):
            out = {k: scrub(v) for k, v in o.items()}
            if {"role", "source", "format"} <= set(out):
                out["study_date"] = None
            return out
        if isinstance(o, list):
            return [scrub(v) for v in o]
        if isinstance(o, str):
            for secret in sorted(secrets, key=len, reverse=True):
                o = o.replace(secret, secrets[secret])
        return o

    collect(obj)
    return scrub(obj)


def _relink(obj: Any, names: dict[str, str]) -> Any:
    if isinstance(obj, dict):
        return {k: _relink(v, names) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_relink(v, names) for v in obj]
    if isinstance(obj, str) and obj in names:
        return names[obj]
    return obj


def _png_mask(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 127


def export_answers(answers: Sequence[AskResult], out_dir: str | Path, *, deidentify: bool = False,
                   dicom_source: str | Path | None = None, spacing_known: bool = False,
                   mask_of: Callable[[str], np.ndarray] | None = None,
                   secondary_capture: bool = False) -> ExportResult:
    """Write the answers, their artifacts, the report and (for a DICOM source) SEG/SR into ``out_dir``.

    ``mask_of(mask_id)``: bool image-sized mask; default: read the mask PNG the answers point at.
    """
    if not answers:
        raise InvalidInputError("no answers to export; ask a question first")
    out = private_dir(out_dir)
    res = ExportResult(out)
    results = results_by_id(answers)
    names: dict[str, str] = {}
    mask_paths: dict[str, str] = {}
    for r in results.values():
        for ref in artifact_refs(r):
            if not ref.path or ref.path in names:
                continue
            src = Path(ref.path)
            if not src.exists():
                res.notes.append(f"{ref.id}: file {src.name} is missing; not copied")
                continue
            dst = out / src.name
            if src.resolve() != dst.resolve():
                copy_private(src, dst)
            names[ref.path] = str(dst)
            res.add("mask" if ref.kind == "mask" else "overlay", dst)
            if ref.kind == "mask":
                mask_paths[ref.id] = str(dst)
    data = [_relink(a.model_dump(mode="json"), names) for a in answers]
    if deidentify:
        data = deidentify_answer_json(data)
    write_private_text(out / "answers.json", json.dumps(data, indent=2))
    res.add("answers", out / "answers.json")
    local = [AskResult.model_validate(d) for d in data]
    rep = build_report(local, deidentified=deidentify)
    write_private_text(out / "report.md", report_markdown(rep, link_dir=out))
    res.add("report", out / "report.md")
    from agent.export.report_pdf import write_pdf

    res.add("report", write_pdf(rep, out / "report.pdf"))
    make_private(out / "report.pdf")
    if dicom_source is not None:
        from agent.export.dicom import write_dicom

        def read_mask(mask_id: str) -> np.ndarray:
            if mask_id not in mask_paths:
                raise InvalidInputError(f"mask {mask_id} has no file; cannot write it as a segment")
            return _png_mask(mask_paths[mask_id])

        overlay = None
        overlays = [p for p in res.files.get("overlay", []) if p.name.startswith("overlay-")]
        if secondary_capture and overlays:
            from PIL import Image

            with Image.open(overlays[-1]) as im:
                overlay = np.asarray(im.convert("RGB"))
        elif secondary_capture:
            res.notes.append("no overlay to write as a secondary capture")
        try:
            written = write_dicom(dicom_source, results, mask_of or read_mask, out, spacing_known=spacing_known,
                                  deidentify_output=deidentify, overlay=overlay)
        except (InvalidInputError, AttributeError, ValueError) as exc:
            # highdicom refuses a source that lacks what the new objects must copy (e.g. no Study Instance UID):
            # nothing is invented, the other files stand
            log.warning("DICOM export failed: %s", exc, exc_info=True)
            res.notes.append(f"no DICOM SEG/SR: the source cannot carry them ({type(exc).__name__}: {exc})")
            return res
        for kind, path in written.items():
            res.add(f"dicom-{kind}", path)
        if "seg" not in written:
            res.notes.append("no mask of the current study: no DICOM segmentation written")
        if "sr" not in written:
            res.notes.append("nothing measured, counted or classified on the current study: no DICOM SR written")
    else:
        res.notes.append("the current study is not DICOM: results are JSON and PNG (no SEG/SR)")
    return res


def export_session(session: Any, out_dir: str | Path, *, answers: Sequence[AskResult] | None = None,
                   deidentify: bool = False, secondary_capture: bool = False) -> ExportResult:
    """:func:`export_answers` for a live :class:`~agent.session.Session` (its masks, its current study)."""
    answers = list(session.answers if answers is None else answers)
    current = session.images.get("current")
    dicom = current is not None and current.meta.format == "dicom" and current.path is not None
    return export_answers(answers, out_dir, deidentify=deidentify,
                          dicom_source=current.path if dicom else None,
                          spacing_known=bool(dicom and current.meta.pixel_spacing_mm),
                          mask_of=session.mask if dicom else None, secondary_capture=secondary_capture)
