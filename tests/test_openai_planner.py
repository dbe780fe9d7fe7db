"""The OpenAI-compatible planner against a real HTTP server on 127.0.0.1 (tests/scripted_openai_server.py):
exact tool sequences, retries after malformed calls, the grounding guard, the step and time limits,
an unreachable server, images inline for vision models only."""

from __future__ import annotations

import base64
import json
import socket
import time

import numpy as np
import pytest

from tests.conftest import SMEAR
from tests.scripted_openai_server import ScriptedOpenAIServer, final_answer, text, tool_call

TOOLS = {"image_info", "detect", "count", "segment", "measure", "classify", "compare_with_prior"}
COUNT_WBC = {"target": "blood_cells", "classes": ["WBC"]}
QUESTION = "How many white blood cells are in this smear?"


@pytest.fixture
def make(scripted_smear):
    """(script, **settings) -> (server, assistant, session) with the smear loaded; servers stop at teardown."""
    return lambda script, **kw: scripted_smear(script, lambda server: dict(
        planner="openai", base_url=server.url, model=server.model, **kw))


def _tool_messages(server, index):
    return [m for m in server.messages(index) if m["role"] == "tool"]


def test_tool_calls_in_order_with_schemas_and_no_pixels(make):
    server, assistant, session = make([tool_call("image_info", {}), tool_call("count", COUNT_WBC),
                                       final_answer("There is 1 white blood cell [E2].", value=1, unit="cells")])
    r = assistant.ask(session, QUESTION)
    assert r.status == "ok" and r.planner.startswith("openai:scripted-llm@http://127.0.0.1")
    assert [c.name for c in r.tool_calls] == ["image_info", "count"]
    assert r.tool_calls[1].args == {**COUNT_WBC, "image": "current"} and all(c.ok for c in r.tool_calls)
    assert r.value == 1 and r.answer == "There is 1 white blood cell [E2]."
    assert r.grounding.ok and r.grounding.guard.retried is False
    assert r.grounding.guard.planner.model_dump() == {"model_turns": 3, "tool_calls": 3, "invalid_arguments": 0,
                                               "unknown_tools": 0, "tool_errors": 0, "output_retries": 0}
    assert server.paths[0] == "GET /v1/models" and len(server.requests) == 3
    # a bounded reply at temperature 0: a model that never closes its turn stops at a known length
    assert all(b.get("max_tokens", b.get("max_completion_tokens")) == 1024 and b["temperature"] == 0.0
               for b in server.requests)
    # the tools are offered with their pydantic schemas
    assert set(server.tool_names(0)) == TOOLS | {"final_result"}
    count_schema = next(t for t in server.requests[0]["tools"] if t["function"]["name"] == "count")["function"]
    assert count_schema["parameters"]["properties"]["target"]["enum"] == ["blood_cells", "polyp"]
    assert count_schema["parameters"]["required"] == ["target"]
    # the question goes out as the user message; tool results come back as typed JSON with evidence ids
    first = server.messages(0)
    assert first[0]["role"] == "system" and "never guess" in first[0]["content"]
    assert first[-1] == {"role": "user", "content": QUESTION}
    info = json.loads(_tool_messages(server, 1)[0]["content"])
    assert info["evidence_id"] == "E1" and info["kind"] == "blood_smear"
    counted = json.loads(_tool_messages(server, 2)[1]["content"])
    assert counted["evidence_id"] == "E2" and counted["counts"][0] == {**counted["counts"][0], "label": "WBC", "count": 1}
    # a text-only model never receives pixels
    assert "image_url" not in server.received_text() and "base64" not in server.received_text()


def test_malformed_calls_get_the_error_back_and_are_counted(make):
    server, assistant, session = make([
        tool_call("image_info", {}),
        tool_call("count", '{"target": "blood_cells", "classes": ["WBC"'),  # truncated JSON
        tool_call("count_cells", {"target": "blood_cells"}),  # no such tool
        tool_call("count", {"target": "blood_cels"}),  # not in the enum
        tool_call("count", COUNT_WBC),
        final_answer("There is 1 white blood cell [E2].", value=1, unit="cells"),
    ])
    r = assistant.ask(session, QUESTION)
    assert r.status == "ok" and r.value == 1
    assert [c.name for c in r.tool_calls if c.ok] == ["image_info", "count"]  # malformed calls never reach a tool
    rejected = [(c.name, c.error.split(":")[0]) for c in r.tool_calls if not c.ok]  # but the trace keeps them
    assert rejected == [("count", "rejected arguments"), ("count_cells (unknown tool)", "rejected arguments"),
                        ("count", "rejected arguments")]
    assert len(server.requests) == 6
    assert "Invalid JSON" in _tool_messages(server, 2)[-1]["content"]
    assert "Unknown tool name: 'count_cells'" in _tool_messages(server, 3)[-1]["content"]
    assert "Input should be 'blood_cells' or 'polyp'" in _tool_messages(server, 4)[-1]["content"]
    stats = r.grounding.guard.planner.model_dump()
    assert (stats["invalid_arguments"], stats["unknown_tools"], stats["tool_calls"]) == (2, 1, 6)
    audit = [e for e in session.audit.read() if e["event"] == "grounding_guard"]
    assert audit[-1]["planner"]["invalid_arguments"] == 2


def test_refused_tool_is_reported_to_the_planner(make):
    server, assistant, session = make([tool_call("segment", {"target": "lung"}),
                                       final_answer("No: the lung tool refused this image, a blood smear.",
                                                    abstained=True)])
    r = assistant.ask(session, "Segment the lungs")
    assert [(c.name, c.ok) for c in r.tool_calls] == [("segment", False)]
    assert "REFUSED" in _tool_messages(server, 1)[-1]["content"]
    assert r.grounding.guard.planner.model_dump()["tool_errors"] == 1 and r.abstained


def test_guard_retries_once_then_removes_an_invented_number(make):
    wrong = final_answer("There are 7 white blood cells [E2].", value=7, unit="cells")
    server, assistant, session = make([tool_call("image_info", {}), tool_call("count", COUNT_WBC), wrong, wrong])
    r = assistant.ask(session, QUESTION)
    assert len(server.requests) == 4  # 3 turns + exactly one grounding retry
    follow = server.messages(3)[-1]
    assert follow["role"] == "user" and follow["content"].startswith("GROUNDING CHECK:") and "7" in follow["content"]
    assert r.value is None and "7" not in r.answer
    assert "removed 1 statement" in r.answer
    assert "7" in r.grounding.unsupported and r.grounding.dropped_value == 7
    guard = r.grounding.guard
    assert guard.retried is True and guard.resolved is False and "7" in guard.discrepancy
    assert [c.name for c in r.tool_calls] == ["image_info", "count"]
    event = [e for e in session.audit.read() if e["event"] == "grounding_guard"][-1]
    assert event["retried"] is True and event["resolved"] is False and event["dropped_value"] == 7


def test_guard_retry_can_fix_the_answer(make):
    server, assistant, session = make([tool_call("image_info", {}), tool_call("count", COUNT_WBC),
                                       final_answer("There are 7 white blood cells [E2].", value=7),
                                       final_answer("There is 1 white blood cell [E2].", value=1, unit="cells")])
    r = assistant.ask(session, QUESTION)
    assert r.value == 1 and r.answer == "There is 1 white blood cell [E2]." and r.grounding.ok
    assert r.grounding.guard.retried and r.grounding.guard.resolved
    # the follow-up went into the same history: the next question sees both answers
    assert len(session.history) > 6


def test_step_limit_stops_with_a_reason(make):
    server, assistant, session = make([tool_call("image_info", {})], planner_max_steps=3)  # never finishes
    r = assistant.ask(session, QUESTION)
    assert r.status == "stopped" and r.abstained
    assert "stopped after 3 planner steps" in r.answer and "OSLER_PLANNER_MAX_STEPS" in r.answer
    assert len(server.requests) == 4 and [c.name for c in r.tool_calls] == ["image_info"] * 4
    assert r.grounding.guard.planner.model_dump()["model_turns"] == 4


def test_timeout_stops_with_a_reason(make):
    server, assistant, session = make([tool_call("image_info", {}), text("...", delay_s=4.0)],
                                      planner_timeout_s=1.5)
    t0 = time.perf_counter()
    r = assistant.ask(session, QUESTION)
    assert time.perf_counter() - t0 < 3.5
    assert r.status == "stopped" and "time limit" in r.answer and "OSLER_PLANNER_TIMEOUT_S" in r.answer
    assert [c.name for c in r.tool_calls] == ["image_info"]


def _closed_port_url() -> str:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


def test_unreachable_server_is_a_planner_error(tmp_path, data_dir):
    from agent.planners.choose import build_model
    from agent.session import Session
    from tools.errors import PlannerError
    from tools.settings import OslerSettings

    settings = OslerSettings(data_dir=tmp_path, planner="openai", base_url=_closed_port_url(), model="m")
    with pytest.raises(PlannerError, match="cannot reach the planner server"):
        build_model(settings, Session(settings))


def test_cli_exit_code_2_with_one_line_when_unreachable(tmp_path, data_dir, monkeypatch, capsys):
    from ui.cli import main

    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path))
    code = main(["ask", str(data_dir / SMEAR), QUESTION, "--planner", "openai", "--base-url", _closed_port_url(),
                 "--model", "m"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "cannot reach the planner server" in err


def test_cli_flows_planner_flags_to_the_server(tmp_path, data_dir, monkeypatch, capsys):
    from ui.cli import main

    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path))
    with ScriptedOpenAIServer([tool_call("image_info", {}), tool_call("count", COUNT_WBC),
                               final_answer("There is 1 white blood cell [E2].", value=1)], model="m7") as server:
        code = main(["ask", str(data_dir / SMEAR), QUESTION, "--planner", "openai", "--base-url", server.url,
                     "--model", "m7", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["planner"] == f"openai:m7@{server.url}" and out["value"] == 1
    assert server.requests[0]["model"] == "m7"


def test_vision_model_gets_the_image_inline(make):
    import cv2

    server, assistant, session = make([final_answer("The image is shown.")], planner_vision=True)
    assistant.ask(session, "What is this?")
    user = server.messages(0)[-1]
    assert user["role"] == "user" and isinstance(user["content"], list)
    images = [c for c in user["content"] if c["type"] == "image_url"]
    assert len(images) == 1 and images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    png = base64.b64decode(images[0]["image_url"]["url"].split(",", 1)[1])
    decoded = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == session.images["current"].pixels.shape  # 480x640, under the 1024 px cap
    assert np.array_equal(decoded[..., ::-1], session.images["current"].pixels)  # loopback: unaltered
    assert {"type": "text", "text": "What is this?"} in user["content"]


def test_server_error_mid_answer_is_reported_and_the_session_goes_on(make):
    from tests.scripted_openai_server import http_error

    server, assistant, session = make([tool_call("image_info", {}), http_error(500, "model crashed")])
    r = assistant.ask(session, QUESTION)
    assert r.status == "error" and r.abstained and "planner server failed" in r.answer
    assert [c.name for c in r.tool_calls] == ["image_info"]
    server.script = [final_answer("The image kind is in [E2].")]  # the server recovers; so does the session
    r2 = assistant.ask(session, "What kind of image is this?")
    assert r2.status == "ok"


def test_an_answer_no_tool_backs_is_retried_then_marked_unverified(make):
    claim = final_answer("The chest X-ray shows pneumonia.", label="bacterial")
    server, assistant, session = make([claim, claim])
    r = assistant.ask(session, "Does this chest X-ray show pneumonia?")
    follow = server.messages(1)[-1]["content"]
    assert follow.startswith("GROUNDING CHECK:") and "no tool was run" in follow
    assert r.answer.startswith("[Unverified: no tool result backs this answer.]") and "pneumonia" not in r.answer
    assert r.grounding.removed_sentences == ["The chest X-ray shows pneumonia."]  # a diagnosis nothing cited backs
    assert r.label is None and r.abstained and r.tool_calls == []
    assert r.grounding.guard.unbacked is True and r.grounding.guard.resolved is False
