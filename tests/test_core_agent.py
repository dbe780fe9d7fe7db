"""The real agent loop with the built-in planner, end to end on real images."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SMEAR


def _names(result):
    return [c.name for c in result.tool_calls]


@pytest.fixture
def smear_session(assistant, data_dir):
    s = assistant.new_session()
    s.load("current", data_dir / SMEAR)
    return s


def test_count_wbc_single_question(assistant, smear_session):
    r = assistant.ask(smear_session, "How many white blood cells are in this smear?")
    assert _names(r) == ["image_info", "count"]
    count_call = r.tool_calls[1]
    assert count_call.args["classes"] == ["WBC"] and count_call.ok
    n = count_call.result["counts"][0]["count"]
    assert n == 1  # the VOC annotation of BloodImage_00001 has one WBC
    assert r.value == n and r.unit.startswith("white blood cell")
    assert f"[{count_call.id}]" in r.answer  # the number points to its evidence
    assert any(count_call.id in s.evidence for s in r.steps)
    assert r.artifacts.overlays and all(p.endswith(".png") for p in r.artifacts.overlays)
    assert r.grounding.ok is True
    assert count_call.backend in ("yolo", "opencv")


def test_compound_question_exact_tool_sequence(assistant, smear_session):
    r = assistant.ask(smear_session, "Count the white cells and give the area of the largest")
    assert _names(r) == ["image_info", "count", "segment", "measure"]
    seg = r.tool_calls[2]
    assert seg.args["target"] == "prompt" and "box" in seg.args
    meas = r.tool_calls[3]
    assert meas.args["mask_id"] == seg.result["regions"][0]["mask"]["id"]
    assert r.value == r.tool_calls[1].result["counts"][0]["count"]
    assert str(meas.result["area_px"]) in r.answer
    assert r.artifacts.masks, "the mask is listed as a PNG path"


def test_mask_png_is_image_sized_binary(assistant, smear_session):
    import cv2
    import numpy as np

    r = assistant.ask(smear_session, "Count the white cells and give the area of the largest")
    m = cv2.imread(r.artifacts.masks[0], cv2.IMREAD_GRAYSCALE)
    assert m.shape == (480, 640)
    assert set(np.unique(m)) <= {0, 255}


def test_yes_no_question(assistant, smear_session):
    r = assistant.ask(smear_session, "Is there a white blood cell?")
    assert _names(r) == ["image_info", "count"]
    assert r.label == "yes" and r.answer.startswith("Yes")


def test_expected_number_probe(assistant, smear_session):
    r = assistant.ask(smear_session, "Are there three white cells?")
    assert r.label == "no" and r.answer.startswith("No")


def test_unanswerable_question_abstains(assistant, smear_session):
    r = assistant.ask(smear_session, "What is the patient's blood pressure?")
    assert _names(r) == ["image_info"]
    assert r.abstained and r.value is None
    assert "No tool can answer" in r.answer


def test_wrong_modality_is_refused_without_running_the_tool(assistant, smear_session):
    r = assistant.ask(smear_session, "Is there pneumonia?")
    assert "classify" not in _names(r)
    assert r.abstained and r.value is None
    assert "chest X-ray" in r.answer


def test_compare_without_prior_asks_for_one(assistant, smear_session):
    r = assistant.ask(smear_session, "What changed since the prior study?")
    assert "compare_with_prior" not in _names(r)
    assert "prior" in r.answer.lower() and r.abstained


def test_prior_is_accepted_and_listed(assistant, data_dir):
    s = assistant.new_session()
    s.load("current", data_dir / SMEAR)
    s.load("prior", data_dir / "bccd/images/BloodImage_00000.jpg", study_date="2024-01-02")
    r = assistant.ask(s, "How many platelets?")
    assert r.images["prior"]["source"].startswith("prior-")  # a content hash, not the file name
    assert r.images["prior"]["study_date"] == "2024-01-02"


def test_follow_up_uses_history(assistant, smear_session):
    assistant.ask(smear_session, "How many white blood cells are there?")
    r = assistant.ask(smear_session, "How big is it?")
    assert _names(r)[-2:] == ["segment", "measure"]
    assert len(smear_session.answers) == 2


def test_tool_that_throws_does_not_end_the_session(assistant, smear_session, monkeypatch):
    from experts import blood_opencv

    expert = assistant.pool.detector("blood_cells").expert

    def boom(*a, **k):
        raise RuntimeError("simulated expert crash")

    monkeypatch.setattr(expert, "predict", boom)
    r = assistant.ask(smear_session, "How many platelets?")
    count = [c for c in r.tool_calls if c.name == "count"]
    assert count and not count[0].ok and "simulated expert crash" in count[0].error
    assert r.value is None and "could not" in r.answer.lower()
    monkeypatch.undo()
    r2 = assistant.ask(smear_session, "How many platelets?")
    assert r2.tool_calls[-1].ok and r2.value is not None
    assert blood_opencv  # module imported for the monkeypatch target's class


def test_audit_log_has_one_line_per_event(assistant, smear_session, settings):
    r = assistant.ask(smear_session, "How many white blood cells are in this smear?")
    lines = [json.loads(x) for x in settings.audit_path.read_text().splitlines()]
    events = [e["event"] for e in lines if e["session"] == smear_session.id]
    assert events == ["image", "question", "tool_call", "tool_call", "answer"]
    assert lines[-1]["answer"] == r.answer
    raw = settings.audit_path.read_text()
    assert "BloodImage_00001" not in raw, "no file names (possible patient identifiers) in the audit log"


def test_json_contract_keys(assistant, smear_session):
    r = assistant.ask(smear_session, "How many white blood cells are in this smear?")
    d = json.loads(r.model_dump_json())
    for key in ("answer", "value", "unit", "label", "findings", "steps", "tool_calls", "artifacts", "timings"):
        assert key in d
    assert set(d["tool_calls"][0]) >= {"id", "name", "args", "backend", "elapsed_ms", "ok", "result"}
    assert set(d["timings"]) == {"total_ms", "experts_ms"}
    assert "masks" in d["artifacts"]


def test_describe_runs_the_standard_read_for_the_kind(assistant, smear_session):
    r = assistant.ask(smear_session, "Describe this image")
    assert _names(r) == ["image_info", "count"]
    assert r.tool_calls[1].args == {"target": "blood_cells", "image": "current"}
    assert "blood smear" in r.answer and not r.abstained


POLYP = "endotect_polyps/images/0a508419-ba4f-428c-9a30-43feb39c35c2.jpg"  # validation frame, one polyp


def test_segment_polyp_uses_detector_boxes_and_measures(assistant, data_dir):
    s = assistant.new_session()
    s.load("current", data_dir / POLYP)
    r = assistant.ask(s, "Segment the polyp and tell me its size")
    assert _names(r) == ["image_info", "detect", "segment", "measure"]
    seg = r.tool_calls[2]
    assert seg.args["from_evidence"] == r.tool_calls[1].id
    area = r.tool_calls[3].result["area_px"]
    assert area > 1000 and r.value == area and r.unit == "px"
    assert "diameter" in r.answer and r.artifacts.masks
