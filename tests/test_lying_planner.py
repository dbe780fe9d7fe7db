"""A scripted planner that calls real tools on real images and then lies (tests/injection_cases.py): the
real agent loop (``Assistant.ask``) with the grounding guard must remove every lie, keep what the tools
back, say so in the answer and list why in the grounding record and the audit log."""

from __future__ import annotations

import pytest

from tests.calls import in_planner_order
from tests.injection_cases import HONEST_CASE, INJECTION_CASES, InjectionCase, judge, planner_for
from tests.lying_planner import Evidence, lying_model


def _ask(assistant, data_dir, case: InjectionCase, planner_name: str = "scripted-liar"):
    session = assistant.new_session()
    session.load("current", data_dir / case.image)
    if case.prior is not None:
        session.load("prior", data_dir / case.prior)
    planner = planner_for(case)
    seen: list[Evidence] = []
    answer = planner.answer
    planner.answer = lambda ev: (seen.append(ev), answer(ev))[1]
    result = assistant.ask(session, case.question, model=lying_model(planner), planner_name=planner_name)
    return result, seen[-1], session, planner


def test_case_ids_are_unique_and_every_way_of_lying_is_covered():
    assert len({c.id for c in INJECTION_CASES}) == len(INJECTION_CASES) >= 15
    assert {c.lie for c in INJECTION_CASES} >= {"invented number", "number copied from the question", "wrong evidence id",
                                               "invented diagnosis", "class name not in any result",
                                               "claim with no citation", "injected instruction"}


@pytest.mark.reliability_injection
@pytest.mark.parametrize("case", INJECTION_CASES, ids=lambda c: c.id)
def test_the_lie_is_removed_and_the_answer_says_so(assistant, data_dir, case):
    result, ev, _, _ = _ask(assistant, data_dir, case)
    planned = [c for c in in_planner_order(result.tool_calls) if c.id in ev.ids.values()]  # not a tool's own calls
    assert [c.name for c in planned] == [name for name, _ in case.calls]  # real tools ran
    assert all(c.ok for c in result.tool_calls)
    assert judge(case, ev, result) == []


def test_the_honest_planner_keeps_everything(assistant, data_dir):
    result, ev, _, _ = _ask(assistant, data_dir, HONEST_CASE)
    assert judge(HONEST_CASE, ev, result) == []
    assert result.value == ev.results["count"].count_of("WBC") and result.findings[0].verified


def test_issue_example_42_white_cells(assistant, data_dir):
    """The outside probe's case: the planner obeys 'say there are 42 white cells' and cites the count."""
    case = next(c for c in INJECTION_CASES if c.id == "ignore-previous-42")
    result, ev, session, _ = _ask(assistant, data_dir, case)
    assert ev.results["count"].count_of("WBC") != 42
    assert "42" not in result.answer and result.value is None and not result.grounding.ok
    assert "42" in result.grounding.unsupported and result.grounding.dropped_value == 42
    line = [e for e in session.audit.read() if e["event"] == "grounding_guard"][-1]
    assert line["ok"] is False and line["removed"] and all(r["reasons"] for r in line["removed"])


def test_a_language_model_planner_that_repeats_the_lie_after_the_retry(assistant, data_dir):
    """With the retry of a language-model planner: the follow-up names the problem, the liar repeats the lie,
    and it is removed all the same."""
    case = next(c for c in INJECTION_CASES if c.id == "uncited-diagnosis")
    result, ev, _, planner = _ask(assistant, data_dir, case, planner_name="openai:scripted-liar")
    assert planner.prompts_seen[-1].startswith("GROUNDING CHECK:") and "leukemia" in planner.prompts_seen[-1]
    assert result.grounding.guard.retried and result.grounding.guard.resolved is False
    assert judge(case, ev, result) == []
