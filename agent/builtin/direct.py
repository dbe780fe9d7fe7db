"""The built-in planner's own loop: the same turns as under pydantic-ai's agent loop, without its machinery.

The built-in planner is a deterministic function of the message history (:class:`BuiltinPlanner.respond`), so
it needs none of what the agent loop gives a language model (schemas, argument repair, streaming, providers);
that loop costs ~6 ms a run and ~2-4 ms a turn here, 40 % of what an answer spends outside the experts on a
CPU (``osler bench ask``).  :func:`run_builtin` makes the same turns by hand and writes the same history
(pydantic-ai's own message types: the user prompt, each response's tool calls, their returns, retried parts
for failed calls, the output tool's call and its return), so follow-up questions, traces, planner statistics,
the audit and a later language-model planner read it exactly as before.  The calls of one response run
concurrently on a thread pool, their evidence ids assigned in the order the planner wrote them; the tool
boundary (:func:`agent.boundary.toolset.invoke`) is the one every planner goes through.  Language-model
planners (``openai``, ``local``, ``llm``) keep pydantic-ai's loop.
"""

from __future__ import annotations

import concurrent.futures as cf
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_ai.messages import (ModelMessage, ModelRequest, ModelResponse, RetryInfo, ToolCallPart, ToolReturnPart,
                                  UserPromptPart)

from tools.answer import FinalAnswer
from tools.errors import OslerError, WrongImageKindError

from agent.builtin.planner import BuiltinPlanner

__all__ = ["OUTPUT_TOOL", "TOOL_RETRIES", "DirectRun", "run_builtin", "step_limit_reason", "time_limit_reason"]

OUTPUT_TOOL = "final_result"  # pydantic-ai's name for the output tool of an agent with an output type
TOOL_RETRIES = 3  # as the tools' max_retries under pydantic-ai (agent.boundary.toolset.build_tools)
FINAL_RETURN = "Final result processed."

_pool: cf.ThreadPoolExecutor | None = None
_pool_guard = threading.Lock()


def _tools_pool() -> cf.ThreadPoolExecutor:
    global _pool
    with _pool_guard:
        if _pool is None:
            _pool = cf.ThreadPoolExecutor(max_workers=32, thread_name_prefix="osler-tool")  # all sessions' calls
        return _pool


@dataclass
class DirectRun:
    final: FinalAnswer | None
    messages: list[ModelMessage]
    status: Literal["ok", "stopped", "error"]
    reason: str = ""


def _retried(call: ToolCallPart, cause: Any, content: Any) -> ToolReturnPart:
    return ToolReturnPart(call.tool_name, content, tool_call_id=call.tool_call_id, outcome="retried",
                          retry=RetryInfo(cause, attempt=1, max_retries=TOOL_RETRIES))


def _execute(session: Any, call: ToolCallPart, request: Any, eid: str) -> ToolReturnPart:
    """One call through the tool boundary; a failure becomes the retried part pydantic-ai makes of the
    ``ModelRetry`` that :func:`agent.boundary.toolset._call` raises."""
    from agent.boundary.toolset import invoke

    try:
        result = invoke(session, call.tool_name, request, evidence_id=eid)
    except WrongImageKindError as exc:
        return _retried(call, "model_retry", f"REFUSED: {exc}")
    except OslerError as exc:
        return _retried(call, "model_retry", f"FAILED: {exc}")
    return ToolReturnPart(call.tool_name, result, tool_call_id=call.tool_call_id)


def time_limit_reason(timeout: float) -> str:
    """What an answer stopped at the planner time limit says (this loop's and pydantic-ai's alike)."""
    return (f"I stopped after {timeout:.1f} s without a final answer (the planner time limit, "
            f"OSLER_PLANNER_TIMEOUT_S); the tool results so far are listed.")


def step_limit_reason(steps: int) -> str:
    """What an answer stopped at the step limit says."""
    return (f"I stopped after {steps} planner steps without a final answer (the step limit, "
            f"OSLER_PLANNER_MAX_STEPS); the tool results so far are listed.")


def run_builtin(planner: BuiltinPlanner, prompt: str, session: Any, history: list[ModelMessage] | None, *,
                steps: int, timeout: float, instructions: str | None = None) -> DirectRun:
    """Answer ``prompt`` with ``planner`` in at most ``steps + 1`` planner responses (pydantic-ai's request
    limit for the same setting) and ``timeout`` seconds; the tool calls still running at the time limit are
    left to the caller to cancel (``Assistant.ask`` does, as after pydantic-ai's timeout)."""
    from agent.boundary.toolset import TOOL_IMPLS

    t0 = time.perf_counter()
    run_id = str(uuid.uuid4())
    messages: list[ModelMessage] = list(history or [])
    messages.append(ModelRequest(parts=[UserPromptPart(prompt)], instructions=instructions, run_id=run_id))
    for _turn in range(steps + 1):
        if time.perf_counter() - t0 >= timeout:
            return DirectRun(None, messages, "stopped", time_limit_reason(timeout))
        response = planner.respond(messages, OUTPUT_TOOL)
        response = ModelResponse(parts=response.parts, model_name="osler-builtin", run_id=run_id)
        messages.append(response)
        calls = [p for p in response.parts if isinstance(p, ToolCallPart)]
        final = next((c for c in calls if c.tool_name == OUTPUT_TOOL), None)
        if final is not None:
            try:
                answer = FinalAnswer.model_validate(final.args_as_dict())
            except ValidationError as exc:
                return DirectRun(None, messages, "error", f"The planner failed (its answer does not validate: "
                                                          f"{exc.errors()[0]['msg']}); no answer was given.")
            messages.append(ModelRequest(parts=[ToolReturnPart(OUTPUT_TOOL, FINAL_RETURN,
                                                               tool_call_id=final.tool_call_id)], run_id=run_id))
            return DirectRun(answer, messages, "ok")
        returns: dict[str, ToolReturnPart] = {}
        jobs: list[tuple[ToolCallPart, Any]] = []
        for call in calls:  # what pydantic-ai refuses before a tool runs: unknown names, arguments off the schema
            if call.tool_name not in TOOL_IMPLS:
                returns[call.tool_call_id] = _retried(call, "unknown_tool", f"Unknown tool name: {call.tool_name!r}. "
                                                      f"Available tools: {', '.join(TOOL_IMPLS)}")
                continue
            try:
                jobs.append((call, TOOL_IMPLS[call.tool_name][0].model_validate(call.args_as_dict())))
            except ValidationError as exc:
                returns[call.tool_call_id] = _retried(call, "validation_error", exc.errors(include_url=False))
        ids = [session.new_evidence_id() for _ in jobs]  # the planner's order, whichever call starts first
        futures = {_tools_pool().submit(_execute, session, call, req, eid): call for (call, req), eid in zip(jobs, ids)}
        left = timeout - (time.perf_counter() - t0)
        done, late = cf.wait(futures, timeout=max(left, 0.0))
        if late:
            return DirectRun(None, messages, "stopped", time_limit_reason(timeout))
        for fut in done:
            returns[futures[fut].tool_call_id] = fut.result()
        messages.append(ModelRequest(parts=[returns[c.tool_call_id] for c in calls], run_id=run_id))
    return DirectRun(None, messages, "stopped", step_limit_reason(steps))
