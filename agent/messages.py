"""One adapter over pydantic-ai's message history, by type, never by class name or message text.

What Osler reads from an ask's messages: the user's questions (without the grounding guard's follow-ups),
the tool outcomes of the current run in call order, why each retried part was retried, and the calls that
pydantic-ai rejected before they reached the tool boundary.  pydantic-ai (>= 2.6x) records a retried tool
call as a :class:`~pydantic_ai.messages.ToolReturnPart` with ``outcome='retried'`` and ``retry.cause``
(``'model_retry'``: the tool ran and raised ``ModelRetry`` at Osler's tool boundary; ``'validation_error'``:
its arguments failed the schema; ``'unknown_tool'``), and an unusable response as a
:class:`~pydantic_ai.messages.RetryFeedbackPart`; the deprecated ``RetryPromptPart`` is no longer produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    RetryFeedbackPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)

__all__ = ["GUARD_PREFIX", "ToolOutcome", "Retry", "user_questions", "current_run", "tool_outcomes", "retry_of",
           "rejected_calls", "model_turns", "tool_calls"]

GUARD_PREFIX = "GROUNDING CHECK:"
"""The grounding guard's follow-up messages start with this; they are not questions of the user."""

Retry = Literal["output", "unknown_tool", "invalid_arguments", "tool_error"]


def _text(part: UserPromptPart) -> str:
    content = part.content
    return content if isinstance(content, str) else " ".join(c for c in content if isinstance(c, str))


def user_questions(messages: list[ModelMessage]) -> list[str]:
    """The user's questions, in order (the guard's follow-ups left out)."""
    out = []
    for msg in messages:
        if isinstance(msg, ModelRequest):
            for part in msg.parts:
                if isinstance(part, UserPromptPart) and not (
                        isinstance(part.content, str) and part.content.startswith(GUARD_PREFIX)):
                    out.append(_text(part))
    return out


def current_run(messages: list[ModelMessage]) -> list[ModelMessage]:
    """The messages from the last user prompt (a question or a guard follow-up) on."""
    start = 0
    for i, msg in enumerate(messages):
        if isinstance(msg, ModelRequest) and any(isinstance(p, UserPromptPart) for p in msg.parts):
            start = i
    return messages[start:]


@dataclass(frozen=True)
class ToolOutcome:
    """What became of one tool call: its typed result (``ok``: it returned a pydantic model), or why not."""

    call: ToolCallPart
    ok: bool
    result: Any
    error: str | None
    retry: Retry | None = None
    content: Any = None  # what the return part carried (a result, a message, or pydantic error details)

    @property
    def name(self) -> str:
        return self.call.tool_name


def retry_of(part: Any) -> Retry | None:
    """Why a part of a request asks the model to try again; None when it does not."""
    if isinstance(part, RetryFeedbackPart):
        return "output"
    if not isinstance(part, ToolReturnPart) or part.outcome != "retried":
        return None
    cause = part.retry.cause if part.retry is not None else None
    if part.tool_name == "final_result":
        return "output"
    if cause in ("unknown_tool", "unavailable_tool"):
        return "unknown_tool"
    if cause == "validation_error":
        return "invalid_arguments"
    return "tool_error"  # 'model_retry': the tool ran and failed at the tool boundary


def tool_outcomes(messages: list[ModelMessage]) -> list[ToolOutcome]:
    """Outcomes of the tool calls in ``messages``, in the order they came back (only answered calls)."""
    calls: dict[str, ToolCallPart] = {}
    out: list[ToolOutcome] = []
    for msg in messages:
        for part in msg.parts:
            if isinstance(part, ToolCallPart):
                calls[part.tool_call_id] = part
            elif isinstance(part, ToolReturnPart) and part.tool_call_id in calls:
                ok = part.outcome == "success" and isinstance(part.content, BaseModel)
                out.append(ToolOutcome(calls[part.tool_call_id], ok, part.content if ok else None,
                                       None if ok else str(part.content), retry_of(part), part.content))
    return out


def rejected_calls(messages: list[ModelMessage]) -> list[ToolOutcome]:
    """Calls pydantic-ai refused before they reached the tool boundary (arguments that fail the schema, unknown
    tool names); a call that ran and failed (``'model_retry'``) was recorded by the boundary itself."""
    return [o for o in tool_outcomes(messages)
            if o.retry in ("invalid_arguments", "unknown_tool") and o.name != "final_result"]


def model_turns(messages: list[ModelMessage]) -> int:
    return sum(isinstance(m, ModelResponse) for m in messages)


def tool_calls(messages: list[ModelMessage]) -> int:
    return sum(isinstance(p, ToolCallPart) for m in messages if isinstance(m, ModelResponse) for p in m.parts)
