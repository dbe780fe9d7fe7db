"""agent.messages reads pydantic-ai's message history by type.  The history here comes from a real pydantic-ai
agent loop (a scripted FunctionModel, real tools that succeed, raise ModelRetry or get bad arguments), and the
adapter's readings are checked against what happened and against the readers it replaces."""

from __future__ import annotations

import json

from pydantic import BaseModel
from pydantic_ai import Agent, ModelRetry
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agent.messages import GUARD_PREFIX, current_run, rejected_calls, retry_of, tool_outcomes, user_questions


class Count(BaseModel):
    n: int


class Answer(BaseModel):
    text: str


SCRIPT = [
    [ToolCallPart("count", {"n": 2}, tool_call_id="c1")],                 # runs: a typed result
    [ToolCallPart("count", {"n": "two"}, tool_call_id="c2")],             # arguments fail the schema
    [ToolCallPart("count_cells", {"n": 1}, tool_call_id="c3")],           # no such tool
    [ToolCallPart("refuse", {}, tool_call_id="c4")],                      # runs and raises ModelRetry
    [ToolCallPart("final_result", {"wrong": 1}, tool_call_id="c5")],      # output fails validation
    [ToolCallPart("final_result", {"text": "done"}, tool_call_id="c6")],
]


def _run(question: str, history: list[ModelMessage] | None = None) -> list[ModelMessage]:
    turn = iter(SCRIPT)

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        return ModelResponse(parts=next(turn, [TextPart("x")]))

    agent = Agent(FunctionModel(model), output_type=Answer, retries=5)

    @agent.tool_plain
    def count(n: int) -> Count:
        return Count(n=n)

    @agent.tool_plain
    def refuse() -> Count:
        raise ModelRetry("REFUSED: wrong kind of image")

    return agent.run_sync(question, message_history=history).all_messages()


def test_outcomes_and_retries_by_type():
    messages = _run("How many?")
    outs = tool_outcomes(messages)
    assert [(o.name, o.ok, o.retry) for o in outs] == [
        ("count", True, None), ("count", False, "invalid_arguments"), ("count_cells", False, "unknown_tool"),
        ("refuse", False, "tool_error"), ("final_result", False, "output"),
        ("final_result", False, None)]  # the accepted output is no tool result (its return is pydantic-ai's text)
    assert outs[0].result == Count(n=2) and "REFUSED: wrong kind of image" in outs[3].error
    assert [o.call.tool_call_id for o in rejected_calls(messages)] == ["c2", "c3"]  # never reached the tool
    assert [retry_of(p) for m in messages for p in getattr(m, "parts", []) if retry_of(p)] == [
        "invalid_arguments", "unknown_tool", "tool_error", "output"]


def test_questions_skip_the_guard_follow_up_and_runs_start_at_the_last_prompt():
    first = _run("How many?")
    both = _run(f"{GUARD_PREFIX} the number 7 is not backed", first)
    assert user_questions(both) == ["How many?"]
    run = current_run(both)
    assert len(run) < len(both) and [o.call.tool_call_id for o in tool_outcomes(run)][0] == "c1"


def test_the_guard_statistics_count_each_kind_of_retry_once():
    """A real agent loop with one malformed call, one unknown tool, one failing tool and one bad final answer."""
    from agent.grounding.guard import planner_stats

    messages = _run("How many?")
    stats = planner_stats(messages).model_dump()
    retries = [o.retry for o in tool_outcomes(messages)]
    assert stats["invalid_arguments"] == retries.count("invalid_arguments") == 1
    assert stats["unknown_tools"] == retries.count("unknown_tool") == 1
    assert stats["tool_errors"] == retries.count("tool_error") == 1
    assert stats["output_retries"] == retries.count("output") == 1
    assert json.dumps(stats)  # plain numbers
