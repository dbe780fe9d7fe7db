"""The web app's report button: export the tab's session (answers, masks, overlays, the draft report as
Markdown and PDF, DICOM SEG/SR for a DICOM study) into the tab's private download folder, and show the
report.  gradio is not imported here; :mod:`ui.app` wires :func:`report_view` to a button.
"""

from __future__ import annotations

import base64
import io
import logging
import shutil
from typing import Any

from tools.errors import OslerError

__all__ = ["report_view", "figure_data_uri", "scrubbed_answers", "REPORT_PLACEHOLDER"]

log = logging.getLogger(__name__)

REPORT_PLACEHOLDER = "Ask a question first: the report is built from this tab's answers."
FIGURE_SIDE = 640


def figure_data_uri(path: str) -> str:
    """A small JPEG of an overlay as a data URI (the page fetches nothing from the server for it)."""
    from PIL import Image

    with Image.open(path) as im:
        img = im.convert("RGB")
        img.thumbnail((FIGURE_SIDE, FIGURE_SIDE))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def scrubbed_answers(session: Any) -> list[Any]:
    """The session's answers with their question and answer texts scrubbed as for a remote planner (names and
    IDs of the session's DICOM tags and file names, titled names, IDs, dates): the export's de-identification
    covers tags, file names and study dates, not what was typed, which may name the patient."""
    from agent.privacy import Deidentifier

    deid = Deidentifier.for_session(session)
    return [a.model_copy(update={"question": deid.text(a.question), "answer": deid.text(a.answer)})
            for a in session.answers]


def report_view(state: Any, deidentify: bool) -> tuple[str, list[str] | None, Any]:
    """(report Markdown, files to download, state) for a :class:`~ui.handlers.TabState` (or None)."""
    from agent.export.files import export_session
    from agent.export.report import build_report, report_markdown
    from agent.export.results import load_answers

    if state is None or not state.session.answers:
        return REPORT_PLACEHOLDER, None, state
    out = state.exports() / "report"
    if out.exists():
        shutil.rmtree(out)  # one export per click: never mix files of two versions
    try:
        answers = scrubbed_answers(state.session) if deidentify else None
        result = export_session(state.session, out, answers=answers, deidentify=bool(deidentify))
    except OslerError as exc:
        return f"**Error:** could not write the report: {exc}", None, state
    except Exception as exc:  # a bug must not end the tab
        log.exception("report export failed")
        return f"**Error:** internal error while writing the report ({type(exc).__name__})", None, state
    answers = load_answers((out / "answers.json").read_text(encoding="utf-8"))
    md = report_markdown(build_report(answers, deidentified=bool(deidentify)), figure_src=figure_data_uri)
    notes = "".join(f"\n- {n}" for n in result.notes)
    files = "\n".join(f"- `{p.name}`" for p in result.paths)
    md += f"\n\n---\nFiles in the downloads box:\n{files}" + (f"\n\nNotes:{notes}" if notes else "")
    return md, [str(p) for p in result.paths], state
