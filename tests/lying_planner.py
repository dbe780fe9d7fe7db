"""A scripted planner that lies: a pydantic-ai ``FunctionModel`` that calls real tools on the real
image through the agent loop, then writes a final answer that misuses their results in one scripted way
(see ``tests/injection_cases.py``).  It answers the grounding guard's follow-up with the same lie, so a
retry cannot make it honest.

    turn 1 (after the question or the guard's follow-up): the case's tool calls
    turn 2: final_result built by the case from the evidence ids and results of those calls
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pydantic import BaseModel
from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart, ToolReturnPart, UserPromptPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agent.messages import current_run

__all__ = ["Evidence", "LyingPlanner", "lying_model"]


@dataclass
class Evidence:
    """The tool results of the current turn, by tool name: ``ids['count']`` is 'E2', ``results['count']`` the
    typed result."""

    ids: dict[str, str] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)


AnswerBuilder = Callable[[Evidence], dict[str, Any]]


@dataclass
class LyingPlanner:
    """``calls``: (tool name, arguments) made first; ``answer``: builds the final_result arguments."""

    calls: list[tuple[str, dict[str, Any]]]
    answer: AnswerBuilder
    turns: int = 0
    prompts_seen: list[str] = field(default_factory=list)

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.turns += 1
        recent = current_run(messages)
        prompt = next((p.content for p in recent[0].parts if isinstance(p, UserPromptPart)), "") if recent else ""
        returns = [p for m in recent[1:] for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart)]
        if not returns:
            self.prompts_seen.append(str(prompt))
            return ModelResponse(parts=[ToolCallPart(name, dict(args), tool_call_id=f"lie-{self.turns}-{k}")
                                        for k, (name, args) in enumerate(self.calls)])
        ev = Evidence()
        for p in returns:
            if isinstance(p.content, BaseModel) and hasattr(p.content, "evidence_id"):
                ev.ids[p.tool_name] = p.content.evidence_id
                ev.results[p.tool_name] = p.content
        output = info.output_tools[0].name if info.output_tools else "final_result"
        return ModelResponse(parts=[ToolCallPart(output, self.answer(ev), tool_call_id=f"lie-{self.turns}-final")])


def lying_model(planner: LyingPlanner) -> FunctionModel:
    return FunctionModel(planner, model_name="scripted-liar")
