"""The built-in planner's own loop (agent.builtin.direct) against pydantic-ai's agent loop: the same answers,
tool calls, evidence ids, planner statistics and message history, on real images; failures, the step limit and
the time limit behave the same."""

from __future__ import annotations

import time

import pytest
from pydantic_ai.messages import ModelRequest, ModelResponse

import agent.boundary.toolset as toolset
from agent.messages import tool_outcomes
from tools.errors import ExpertFailedError
from tests.calls import in_planner_order


def _shape(messages):
    """What a reader of the history sees: message kinds, part kinds, tool names, call ids, outcomes, retry causes."""
    out = []
    for m in messages:
        parts = []
        for p in m.parts:
            parts.append((type(p).__name__, getattr(p, "tool_name", None), getattr(p, "tool_call_id", None),
                          getattr(p, "outcome", None), getattr(getattr(p, "retry", None), "cause", None)))
        out.append((type(m).__name__, tuple(parts)))
    return out


def _ask_both(assistant, image, questions, **settings_update):
    """Ask the questions in one session per loop; the results and the sessions."""
    got = {}
    for loop in ("direct", "pydantic-ai"):
        assistant.settings = assistant.settings.model_copy(update={"builtin_loop": loop, **settings_update})
        s = assistant.new_session()
        s.load("current", image)
        got[loop] = (s, [assistant.ask(s, q) for q in questions])
    return got


def _same(got):
    (sd, rd), (sp, rp) = got["direct"], got["pydantic-ai"]
    for a, b in zip(rd, rp):
        assert (a.answer, a.value, a.unit, a.label, a.abstained, a.status) == (
            b.answer, b.value, b.unit, b.label, b.abstained, b.status)
        assert [(c.id, c.name, c.args, c.ok, c.error) for c in in_planner_order(a.tool_calls)] == [
            (c.id, c.name, c.args, c.ok, c.error) for c in in_planner_order(b.tool_calls)]
        assert a.grounding.guard.planner == b.grounding.guard.planner
        assert [s.text for s in a.steps] == [s.text for s in b.steps]
    assert _shape(sd.history) == _shape(sp.history)
    assert [(o.name, o.ok, o.error) for o in tool_outcomes(sd.history)] == [
        (o.name, o.ok, o.error) for o in tool_outcomes(sp.history)]


@pytest.mark.parametrize("image, questions", [
    ("bccd/images/BloodImage_00001.jpg", ["How many white blood cells are in this smear?", "And platelets?"]),
    ("endotect_polyps/images", ["How many polyps are there? How big is the largest?", "Describe this image."]),
    ("kermany_cxr/train/NORMAL", ["Describe this image.", "Is there pneumonia? Outline the lungs."]),
])
def test_same_answers_history_and_evidence_as_pydantic_ai(assistant, data_dir, image, questions):
    path = data_dir / image
    if path.is_dir():
        path = sorted(p for p in path.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[0]
    got = _ask_both(assistant, path, questions)
    _same(got)
    assert all(r.status == "ok" and r.grounding.ok for r in got["direct"][1])


def test_a_failing_tool_is_reported_the_same(assistant, data_dir, monkeypatch):
    req_type, _impl = toolset.TOOL_IMPLS["count"]

    def broken(session, req, eid):
        raise ExpertFailedError("the detector crashed (test double)")

    monkeypatch.setitem(toolset.TOOL_IMPLS, "count", (req_type, broken))
    got = _ask_both(assistant, data_dir / "bccd/images/BloodImage_00001.jpg", ["How many white blood cells?"])
    _same(got)
    r = got["direct"][1][0]
    assert r.abstained and "detector crashed" in r.answer
    assert r.grounding.guard.planner.tool_errors == 1
    assert [c.ok for c in r.tool_calls] == [True, False]


def test_step_limit_stops_the_same(assistant, data_dir):
    frame = sorted((data_dir / "endotect_polyps" / "images").glob("*.jpg"))[0]
    got = _ask_both(assistant, frame, ["How many polyps are there? How big is the largest?"], planner_max_steps=2)
    _same(got)
    r = got["direct"][1][0]
    assert r.status == "stopped" and "step limit" in r.answer and r.abstained


def test_time_limit_stops_and_cancels_the_late_call(assistant, data_dir, monkeypatch):
    req_type, impl = toolset.TOOL_IMPLS["count"]

    def slow(session, req, eid):
        from tools.cancel import check_cancelled

        for _ in range(100):  # stops at the cancellation, as the real experts do
            time.sleep(0.02)
            check_cancelled()
        return impl(session, req, eid)

    monkeypatch.setitem(toolset.TOOL_IMPLS, "count", (req_type, slow))
    assistant.settings = assistant.settings.model_copy(update={"builtin_loop": "direct", "planner_timeout_s": 0.5})
    s = assistant.new_session()
    s.load("current", data_dir / "bccd/images/BloodImage_00001.jpg")
    t0 = time.perf_counter()
    r = assistant.ask(s, "How many white blood cells?")
    assert time.perf_counter() - t0 < 2.5
    assert r.status == "stopped" and "time limit" in r.answer
    assert [c.name for c in r.tool_calls] == ["image_info", "count"] and not r.tool_calls[1].ok
    assert "cancel" in r.tool_calls[1].error.lower()
    # the session goes on: the next question is answered
    assistant.settings = assistant.settings.model_copy(update={"planner_timeout_s": 120.0})
    monkeypatch.setitem(toolset.TOOL_IMPLS, "count", (req_type, impl))
    assert assistant.ask(s, "How many white blood cells?").status == "ok"


def test_direct_history_is_read_by_a_later_turn(assistant, data_dir):
    """A follow-up ('And platelets?') reads the first question from the direct loop's history."""
    got = _ask_both(assistant, data_dir / "bccd/images/BloodImage_00001.jpg",
                    ["How many white blood cells are there?", "And platelets?"])
    s, results = got["direct"]
    assert results[1].tool_calls[-1].args.get("classes") == ["Platelets"]
    assert sum(isinstance(m, ModelResponse) for m in s.history) == 6
    assert isinstance(s.history[0], ModelRequest)
