"""Tool calls with schema-invalid arguments or unknown names are recorded, and the session goes on."""

from __future__ import annotations

from pydantic_ai.messages import ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from tests.conftest import SMEAR


def _scripted(messages, info: AgentInfo) -> ModelResponse:
    turn = sum(1 for m in messages if m.kind == "response")
    if turn == 0:
        return ModelResponse(parts=[ToolCallPart("detect", {"target": "lung"}, tool_call_id="a"),
                                    ToolCallPart("teleport", {"x": 1}, tool_call_id="b")])
    return ModelResponse(parts=[ToolCallPart("final_result", {"answer": "I could not run the tools.",
                                                              "abstained": True}, tool_call_id="c")])


def test_rejected_and_unknown_calls_are_in_the_trace(assistant, data_dir):
    s = assistant.new_session()
    s.load("current", data_dir / SMEAR)
    r = assistant.ask(s, "Where is the lung?", model=FunctionModel(_scripted), planner_name="scripted")
    names = [c.name for c in r.tool_calls]
    assert "detect" in names and "teleport (unknown tool)" in names
    assert all(not c.ok for c in r.tool_calls)
    detect = next(c for c in r.tool_calls if c.name == "detect")
    assert "target" in detect.error
    assert r.abstained
