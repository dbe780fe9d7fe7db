"""Typed results -> what the web app shows.  Pure functions: no gradio import, no text parsing.

Everything here reads fields of :class:`~tools.answer.AskResult` (and its
:class:`~tools.answer.ToolCallRecord` / :class:`~tools.answer.Finding` parts) or of a
:class:`~experts.imaging.StudyImage`, and returns plain Python values the components take:
chat messages as ``{"role", "content", "metadata"}`` dicts, tables as lists of rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from tools.answer import AskResult, ToolCallRecord

__all__ = [
    "TRACE_HEADERS", "FINDINGS_HEADERS", "BACKEND_HEADERS",
    "format_args", "trace_rows", "findings_rows", "backend_rows", "chat_messages", "tool_call_message",
    "answer_markdown", "summary_markdown", "error_message", "note_message", "image_loaded_message", "answers_json",
    "without_folder",
]

TRACE_HEADERS = ["question", "id", "tool", "arguments", "backend", "ms", "status", "summary"]
FINDINGS_HEADERS = ["finding", "evidence", "tools", "verified"]
BACKEND_HEADERS = ["task", "backend", "state"]


def format_args(args: dict[str, Any]) -> str:
    """``k=v, ...`` with lists and dicts written as JSON (arguments are JSON already)."""
    parts = []
    for k, v in args.items():
        parts.append(f"{k}={json.dumps(v) if isinstance(v, (list, dict)) else v}")
    return ", ".join(parts)


def _status(call: ToolCallRecord) -> str:
    return "ok" if call.ok else "failed"


def trace_rows(answers: Sequence[AskResult]) -> list[list[Any]]:
    """One row per tool call of every answer, in call order; ``question`` is the answer's 1-based index."""
    rows: list[list[Any]] = []
    for qi, result in enumerate(answers, 1):
        for c in result.tool_calls:
            rows.append([qi, c.id, c.name, format_args(c.args), c.backend or "-", round(c.elapsed_ms, 1), _status(c),
                         c.summary if c.ok else (c.error or c.summary)])
    return rows


def findings_rows(result: AskResult) -> list[list[Any]]:
    """One row per finding: its text, its evidence ids, the tools behind them, whether grounding backed it."""
    tool_of = {c.id: c.name for c in result.tool_calls}
    rows = []
    for f in result.findings:
        tools = sorted({tool_of[e] for e in f.evidence if e in tool_of})
        rows.append([f.text, ", ".join(f.evidence), ", ".join(tools), "yes" if f.verified else "NO"])
    return rows


def backend_rows(backends: dict[str, Iterable[tuple[str, str | None]]]) -> list[list[str]]:
    """``{task key: [(backend, unavailable reason or None), ...]}`` -> rows, ``ready`` where it can run."""
    return [[key, name, reason or "ready"] for key, items in backends.items() for name, reason in items]


def tool_call_message(call: ToolCallRecord) -> dict[str, Any]:
    """A collapsed 'thought' in the chat: title = the call, log = backend and time, body = result or error."""
    body = call.summary if call.ok else f"Failed: {call.error or call.summary}"
    return {
        "role": "assistant",
        "content": body or "(no summary)",
        "metadata": {
            "title": f"{call.id} · {call.name}({format_args(call.args)})" + ("" if call.ok else " — failed"),
            "log": f"{call.backend or 'no backend'} · {call.elapsed_ms:.0f} ms",
            "status": "done",
        },
    }


def answer_markdown(result: AskResult) -> str:
    """The step-by-step answer: numbered steps with evidence ids, then the conclusion and caveats."""
    lines = []
    for i, step in enumerate(result.steps, 1):
        ev = f" `{', '.join(step.evidence)}`" if step.evidence else ""
        lines.append(f"{i}. {step.text}{ev}")
    if lines:
        lines.append("")
    lines.append(f"**Answer:** {result.answer}")
    if result.value is not None:
        lines.append(f"**Value:** {result.value:g} {result.unit or ''}".rstrip())
    if result.label:
        lines.append(f"**Label:** {result.label}")
    if result.uncertainty:
        lines.append(f"*Caveats:* {result.uncertainty}")
    if not result.grounding.ok:
        lines.append("*Grounding check:* some claims were not backed by a tool result and were removed or flagged.")
    if result.status != "ok":
        lines.append(f"*Status:* {result.status}")
    return "\n".join(lines)


def chat_messages(result: AskResult) -> list[dict[str, Any]]:
    """The assistant's turn: one collapsed message per tool call, then the answer."""
    return [tool_call_message(c) for c in result.tool_calls] + [{"role": "assistant", "content": answer_markdown(result)}]


def summary_markdown(result: AskResult) -> str:
    """A short box beside the overlay: value/label, planner, timings, status."""
    head = []
    if result.value is not None:
        value = f"{result.value:g} {result.unit or ''}".strip()
        head.append(f"**{value}**")
    if result.label:
        head.append(f"label **{result.label}**")
    if result.abstained:
        head.append("abstained")
    n_fail = sum(not c.ok for c in result.tool_calls)
    tail = (f"planner `{result.planner}` · {len(result.tool_calls)} tool calls"
            + (f" ({n_fail} failed)" if n_fail else "")
            + f" · total {result.timings.total_ms:.0f} ms, experts {result.timings.experts_ms:.0f} ms")
    return (" · ".join(head) + "\n\n" if head else "") + tail


def error_message(text: str) -> dict[str, Any]:
    """An error the user should see in the chat; the session goes on."""
    return {"role": "assistant", "content": f"**Error:** {text}"}


def without_folder(text: str, path: str | Path) -> str:
    """``text`` (an error about the file at ``path``) without the server's folder of that file: a decoder's
    message may quote the full path of an upload (gradio's temporary folder and its keyed hash)."""
    p = Path(path)
    for folder in {str(p.parent), str(p.resolve().parent)}:
        if folder not in ("", "."):
            text = text.replace(folder.rstrip("/") + "/", "")
    return text


def note_message(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def image_loaded_message(role: str, image: Any, name: str) -> dict[str, Any]:
    """``image`` is a StudyImage; only its metadata is read."""
    m = image.meta
    bits = [f"{m.width}×{m.height} {m.format}"]
    if m.modality_tag:
        bits.append(f"DICOM {m.modality_tag}" + (f" {m.body_part}" if m.body_part else ""))
    if m.window:
        bits.append(f"shown with window centre {m.window[0]:g} / width {m.window[1]:g}")
    if m.study_date:
        bits.append(f"study date {m.study_date}")
    if m.pixel_spacing_mm:
        bits.append(f"spacing {m.pixel_spacing_mm[0]:.3f}×{m.pixel_spacing_mm[1]:.3f} mm")
    elif getattr(m, "spacing_note", None):
        bits.append(f"no usable pixel spacing ({m.spacing_note})")
    return note_message(f"Loaded the **{role}** study `{Path(name).name}`: {', '.join(bits)}.")


def answers_json(answers: Sequence[AskResult], redact: Callable[[Any], Any] | None = None) -> str:
    """Every answer of the session, as the ``osler ask --json`` objects, in one JSON list; passed through
    ``redact`` (the session's record policy, :meth:`agent.session.Session.redact`) when given."""
    records = [a.model_dump(mode="json") for a in answers]
    return json.dumps([redact(r) for r in records] if redact else records, indent=2, ensure_ascii=False)
