"""``Assistant.ask``: one question about the session's images in, one evidence-bound
:class:`~tools.answer.AskResult` out.  The same code path serves the CLI, the web app, voice and
the evaluation harness.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydantic_ai import Agent

from experts.registry import ExpertPool
from tools.answer import Artifacts, AskResult, FinalAnswer, Timings, ToolCallRecord
from tools.errors import InvalidInputError
from tools.inputs import clean_text
from tools.settings import OslerSettings

from agent.builtin.planner import BuiltinPlanner
from agent.grounding.guard import answer_with_guard, is_llm_planner
from agent.messages import rejected_calls
from agent.planners.choose import build_model
from agent.planners.prompts import SYSTEM_PROMPT
from agent.session import Session
from agent.boundary.toolset import build_tools

__all__ = ["Assistant"]

log = logging.getLogger(__name__)

MAX_QUESTION_CHARS = 2000
CANCEL_GRACE_S = 2.0  # how long an ask waits for its cancelled tool calls to stop before abandoning them


class Assistant:
    """Builds sessions and answers questions.  One per process; experts are shared and loaded once."""

    def __init__(self, settings: OslerSettings, pool: ExpertPool | None = None) -> None:
        self.settings = settings
        self.pool = pool or ExpertPool(settings)
        self._agent_obj: Agent | None = None

    def new_session(self, session_id: str | None = None) -> Session:
        return Session(self.settings, self.pool, session_id=session_id)

    def _agent(self) -> Agent:
        """One agent per assistant: building the tool schemas costs ~100 ms, so it is done once; the model
        of each ask is swapped in with ``Agent.override`` (a context variable, safe across threads)."""
        if self._agent_obj is None:
            self._agent_obj = Agent(None, deps_type=Session, output_type=FinalAnswer, tools=build_tools(),
                                    instructions=SYSTEM_PROMPT, retries=2, defer_model_check=True)
        return self._agent_obj

    def ask(self, session: Session, question: str, *, model: Any | None = None, planner_name: str | None = None) -> AskResult:
        """Answer one question.  Raises InvalidInputError for an empty/oversized question and
        PlannerError when the planner server cannot be reached; everything else is reported in
        the result (status 'stopped' or 'error') and the session goes on."""
        question = clean_text(question).strip()  # the one boundary every front end passes through
        if not question:
            raise InvalidInputError("the question is empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise InvalidInputError(f"the question is longer than {MAX_QUESTION_CHARS} characters")
        if "current" not in session.images:
            raise InvalidInputError("no current image is loaded")
        t0 = time.perf_counter()
        session.cancel.clear()
        calls_before = len(session.calls)
        artifacts_before = set(session.artifacts)
        if model is None:
            model, planner_name = build_model(self.settings, session)
        planner_name = planner_name or getattr(model, "model_name", "custom")
        session.audit.write("question", session.id, question=question, planner=planner_name,
                            images={r: session.image_tag(r) for r in session.images})
        history_before = len(session.history)
        agent = self._agent()
        planner = getattr(model, "function", None)
        direct = planner if type(planner) is BuiltinPlanner and self.settings.builtin_loop == "direct" else None
        with agent.override(model=model), session.background_writes():
            guarded = answer_with_guard(agent, session, question, self.settings, retry=is_llm_planner(planner_name),
                                        direct=direct)
        _cancel_late_calls(session)
        final, report, status = guarded.final, guarded.report, guarded.status
        _record_rejected_calls(session, session.history[history_before:])
        calls = session.calls[calls_before:]
        session.flush_artifacts()  # PNGs were encoded beside the answer: every path below names a written file
        new_artifacts = [a for k, a in session.artifacts.items() if k not in artifacts_before]
        artifacts = Artifacts(
            overlays=[a.ref.path for a in new_artifacts if a.ref.kind in ("overlay", "saliency", "change_map")],
            masks=[a.ref.path for a in new_artifacts if a.ref.kind == "mask"],
        )
        experts_ms = sum(_expert_ms(session.evidence.get(c.id)) for c in calls if c.ok)
        result = AskResult(
            question=question, answer=final.answer, value=final.value, unit=final.unit, label=final.label,
            findings=final.findings, steps=final.steps, uncertainty=final.uncertainty, abstained=final.abstained,
            tool_calls=calls, artifacts=artifacts,
            timings=Timings(total_ms=(time.perf_counter() - t0) * 1000, experts_ms=experts_ms),
            images={r: img.meta.model_dump(mode="json") for r, img in session.images.items()},
            planner=planner_name, status=status,
            grounding=report,  # typed: the check's record with the guard's in report.guard
        )
        session.answers.append(result)
        session.audit.write("answer", session.id, answer=result.answer, value=result.value, unit=result.unit,
                            label=result.label, abstained=result.abstained, status=status,
                            tool_calls=[c.id for c in calls], grounding_ok=report.ok,
                            total_ms=round(result.timings.total_ms, 1))
        return result


def _cancel_late_calls(session: Session) -> None:
    """Tool calls still running when the planner stopped (its time limit) are cancelled: they stop at their next
    cancellation check (tools.cancel) and record themselves as cancelled; any that do not stop within
    CANCEL_GRACE_S are recorded here as cancelled and abandoned, so nothing is written after the answer."""
    for eid, name in session.cancel_running(CANCEL_GRACE_S):
        msg = "cancelled at the planner's time limit; still stopping, its result will be discarded"
        session.add_call(ToolCallRecord(id=eid, name=name, args={}, ok=False, error=f"ToolCancelledError: {msg}",
                                        summary=f"cancelled: {msg}"))
        session.audit.write("tool_call", session.id, id=eid, tool=name, ok=False, cancelled=True,
                            error=f"ToolCancelledError: {msg}")


def _expert_ms(result: Any) -> float:
    """Expert compute time of one tool result: its own provenance plus that of a second expert it ran
    (a count's independent cross-check)."""
    def ms(r: Any) -> float:
        return float(getattr(getattr(r, "provenance", None), "elapsed_ms", 0.0) or 0.0)

    return ms(result) + ms(getattr(result, "cross_check", None))


def _record_rejected_calls(session: Session, messages: list[Any]) -> None:
    """Tool calls that pydantic-ai rejected before they reached the tool boundary (arguments that fail the
    schema, unknown tool names: :func:`agent.messages.rejected_calls`) are recorded too, so traces and the
    evaluation harness see every call the planner made."""
    from agent.boundary.toolset import TOOL_NAMES

    for out in rejected_calls(messages):
        call = out.call
        content = out.content if isinstance(out.content, str) else "; ".join(
            f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in out.content)
        name = call.tool_name if call.tool_name in TOOL_NAMES else f"{call.tool_name} (unknown tool)"
        try:
            args = call.args_as_dict()
        except Exception:  # malformed JSON arguments
            args = {"_raw": str(call.args)[:500]}
        session.add_call(ToolCallRecord(id=session.new_evidence_id(), name=name, args=args, ok=False,
                                        error=f"rejected arguments: {content}"[:1000],
                                        summary="rejected before running: invalid arguments"))

