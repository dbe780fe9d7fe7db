"""Scorers on hand-made answers: right, wrong, off by tolerance, ungrounded number, wrong tool,
forbidden tool, abstention; percentiles and aggregation."""

from __future__ import annotations

import pytest

from eval_scenarios.schema import Expect, ExpectedAnswer
from eval_scenarios.scoring import (aggregate, percentile, score_abstention, score_answer, score_grounding,
                                    score_mentions, score_tools, score_turn)


def _count_call(eid="E2", wbc=2, ok=True, name="count", args=None, error=None):
    result = {"evidence_id": eid, "target": "blood_cells", "total": wbc, "min_score": 0.5,
              "counts": [{"label": "WBC", "count": wbc, "instances": []}]} if ok else None
    return {"id": eid, "name": name, "args": args or {"target": "blood_cells", "classes": ["WBC"]}, "ok": ok,
            "result": result, "error": error}


def _result(answer, value=None, label=None, calls=None, abstained=False, question="How many WBC?"):
    return {"question": question, "answer": answer, "value": value, "label": label, "abstained": abstained,
            "tool_calls": calls if calls is not None else [_count_call()], "findings": []}


# ---- answers -------------------------------------------------------------------------------------
def test_count_right_wrong_and_tolerance():
    exact = ExpectedAnswer(kind="count", value=2)
    assert score_answer(exact, _result("I count 2 WBC.", value=2.0))[0] is True
    assert score_answer(exact, _result("I count 3 WBC.", value=3.0))[0] is False
    tol = ExpectedAnswer(kind="count", value=12, tolerance=3)
    assert score_answer(tol, _result("15 RBC", value=15.0))[0] is True  # on the edge
    assert score_answer(tol, _result("16 RBC", value=16.0))[0] is False  # off by tolerance + 1
    assert score_answer(exact, _result("I count 2.5 cells", value=2.5))[0] is False  # not a whole count


def test_number_read_from_text_when_no_value_and_unit_checked():
    exp = ExpectedAnswer(kind="number", value=41.5, tolerance=0.5, unit="days")
    assert score_answer(exp, _result("The studies are 41 days apart [E1].")) == (True, 41.0, "41 vs 41.5 ± 0.5")
    got = score_answer(exp, {**_result("41 days", value=41.0), "unit": "px"})
    assert got[0] is False and "unit" in got[2]
    assert score_answer(exp, _result("No number here."))[0] is False


def test_yes_no_label_choice_text():
    yn = ExpectedAnswer(kind="yes_no", value="no")
    assert score_answer(yn, _result("No. I count 0 polyps [E2].", label="no"))[0]
    assert score_answer(yn, _result("No, there is none."))[0]  # read from the first word
    assert not score_answer(yn, _result("Yes. I count 1 polyp.", label="yes"))[0]
    assert score_answer(ExpectedAnswer(kind="yes_no", value=True), _result("x", label="yes"))[0]
    lab = ExpectedAnswer(kind="label", value="bacterial_pneumonia")
    assert score_answer(lab, _result("...", label="Bacterial pneumonia"))[0]
    assert not score_answer(lab, _result("...", label="viral_pneumonia"))[0]
    assert score_answer(ExpectedAnswer(kind="label", value=["chest_xray", "cxr"]), _result("", label="cxr"))[0]
    ch = ExpectedAnswer(kind="choice", value="C", choices={"A": "left effusion", "B": "pneumothorax", "C": "normal"})
    assert score_answer(ch, _result("The answer is (C).", label=None))[0]
    assert score_answer(ch, _result("C", label=None))[0]
    assert score_answer(ch, _result("These lungs look normal.", label=None))[0]  # option text named
    assert not score_answer(ch, _result("B) pneumothorax", label=None))[0]
    assert score_answer(ExpectedAnswer(kind="text", value="blood smear"), _result("This is a Blood Smear."))[0]


def test_expected_answer_validation():
    with pytest.raises(ValueError):
        ExpectedAnswer(kind="count", value="two")
    with pytest.raises(ValueError):
        ExpectedAnswer(kind="yes_no", value="maybe")
    with pytest.raises(ValueError):
        ExpectedAnswer(kind="choice", value="G", choices={"A": "x", "B": "y"})
    with pytest.raises(ValueError):
        Expect(answer=ExpectedAnswer(kind="count", value=1), abstain=True)


# ---- tools ---------------------------------------------------------------------------------------
def test_tool_precision_recall_and_wrong_tool():
    info = {"id": "E1", "name": "image_info", "args": {"image": "current"}, "ok": True, "result": {}}
    right = score_tools(Expect(tools=["count"]), [info, _count_call()])
    assert right["tool_recall"] == 1.0 and right["tool_precision"] == 1.0  # image_info is neutral
    wrong = score_tools(Expect(tools=["count"]), [info, _count_call(name="segment", args={"target": "polyp"})])
    assert wrong["tool_recall"] == 0.0 and wrong["tool_precision"] == 0.0
    assert wrong["tools_missing"] == ["count"] and wrong["tools_unexpected"] == ["segment"]
    extra = score_tools(Expect(tools=["count"]), [_count_call(), _count_call(name="detect")])
    assert extra["tool_recall"] == 1.0 and extra["tool_precision"] == 0.5


def test_forbidden_tool_and_argument_constraints():
    refused = _count_call(name="classify", ok=False, args={"task": "cxr_pneumonia"}, error="WrongImageKindError: no")
    s = score_tools(Expect(forbidden_tools=["classify"]), [refused])
    assert s["forbidden_violations"] == ["classify"]  # attempted counts, even when refused
    good = score_tools(Expect(tools=[{"name": "count", "args": {"target": "blood_cells", "classes": ["wbc"]}}]),
                       [_count_call()])
    assert good["args_valid"] is True
    bad = score_tools(Expect(tools=[{"name": "count", "args": {"target": "polyp"}}]), [_count_call()])
    assert bad["args_valid"] is False and "no count call" in bad["arg_problems"][0]
    invalid = score_tools(Expect(), [_count_call(ok=False, error="ValidationError: target: Input should be ...")])
    assert invalid["args_valid"] is False


# ---- grounding, abstention, mentions -------------------------------------------------------------
def test_grounding_traces_numbers_to_tool_results():
    ok, bad = score_grounding(_result("I count 2 white blood cells (threshold 0.50) [E2].", value=2.0))
    assert ok and bad == []
    ok, bad = score_grounding(_result("I count 7 white blood cells [E2].", value=7.0))
    assert not ok and "7" in bad and "value=7" in bad
    # a number from the question itself is fine; a failed call's numbers are not evidence
    ok, _ = score_grounding(_result("No, not 3 [E2].", question="Are there 3 WBC?"))
    assert ok
    ok, bad = score_grounding(_result("I count 2 cells.", calls=[_count_call(ok=False, error="x")]))
    assert not ok and bad == ["2"]


def test_abstention_and_mentions():
    assert score_abstention(True, _result("No tool can answer this.", abstained=True)) is True
    assert score_abstention(True, _result("I count 2 WBC.")) is False
    assert score_abstention(False, _result("x", abstained=True)) is False
    assert score_abstention(None, _result("x")) is None
    e = Expect(must_mention=["days", ["interval", "apart"]], must_not_mention=["pneumonia"])
    assert score_mentions(e, _result("The studies are 3 days apart.")) == (True, [])
    ok, problems = score_mentions(e, _result("Pneumonia, 3 days."))
    assert not ok and len(problems) == 2


def test_score_turn_pass_and_crash():
    exp = Expect(answer=ExpectedAnswer(kind="count", value=2), tools=["count"], forbidden_tools=["classify"],
                 abstain=False, max_latency_s=5)
    v = score_turn(exp, _result("I count 2 WBC [E2].", value=2.0), latency_s=0.4)
    assert v.passed
    slow = score_turn(exp, _result("I count 2 WBC [E2].", value=2.0), latency_s=6.0)
    assert slow.latency_ok is False and not slow.passed
    crashed = score_turn(exp, None, latency_s=None, error="RuntimeError: boom")
    assert not crashed.passed and crashed.answer_correct is False and crashed.error == "RuntimeError: boom"


def test_percentile_and_aggregate():
    assert percentile([], 50) is None
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([float(i) for i in range(101)], 95) == pytest.approx(95.0)
    exp = Expect(answer=ExpectedAnswer(kind="count", value=2), tools=["count"])
    vs = [score_turn(exp, _result("2 WBC [E2]", value=2.0), 0.1),
          score_turn(exp, _result("3 WBC [E2]", value=3.0), 0.3)]
    m = aggregate(vs)
    assert m["n"] == 2 and m["answer_accuracy"] == 0.5 and m["pass_rate"] == 0.5
    assert m["grounded_rate"] == 0.5 and m["tool_recall"] == 1.0 and m["latency_s_p50"] == pytest.approx(0.2)
