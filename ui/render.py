"""Plain-text rendering of an AskResult for the terminal (the JSON form is the model itself)."""

from __future__ import annotations

from tools.answer import AskResult

__all__ = ["render_text"]


def render_text(r: AskResult) -> str:
    lines = [f"Q: {r.question}", ""]
    lines.append("Steps:")
    for i, s in enumerate(r.steps, 1):
        ev = f" [{', '.join(s.evidence)}]" if s.evidence else ""
        lines.append(f"  {i}. {s.text}{ev}")
    lines.append("")
    lines.append("Tool calls:")
    for c in r.tool_calls:
        status = "ok" if c.ok else "FAILED"
        lines.append(f"  {c.id} {c.name}({', '.join(f'{k}={v}' for k, v in c.args.items())}) -> {status}, "
                     f"{c.backend or '-'}, {c.elapsed_ms:.0f} ms: {c.summary}")
    lines.append("")
    lines.append(f"Answer: {r.answer}")
    if r.value is not None:
        lines.append(f"Value: {r.value:g} {r.unit or ''}".rstrip())
    if r.label:
        lines.append(f"Label: {r.label}")
    if r.uncertainty:
        lines.append(f"Caveats: {r.uncertainty}")
    if not r.grounding.ok:
        lines.append(f"Grounding: removed/flagged unsupported claims: {'; '.join('; '.join(c.reasons) for c in r.grounding.removed)}")
    for p in r.artifacts.overlays:
        lines.append(f"Overlay: {p}")
    for p in r.artifacts.masks:
        lines.append(f"Mask: {p}")
    if "prior" in r.images:
        lines.append(f"Prior study: {r.images['prior'].get('source')} (date {r.images['prior'].get('study_date') or 'unknown'})")
    lines.append(f"Planner: {r.planner}; total {r.timings.total_ms:.0f} ms, experts {r.timings.experts_ms:.0f} ms")
    return "\n".join(lines)
