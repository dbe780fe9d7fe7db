"""Probing twins and pair accuracy, the multiple-choice adapter, the generator's ground-truth
readers (on the real annotations) and the report writers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from eval_scenarios.probing import derive_twin, derive_twins, pair_accuracy
from eval_scenarios.runner import CaseRecord, TurnRecord
from eval_scenarios.schema import Scenario
from eval_scenarios.scoring import Verdict


def _case(**kw) -> Scenario:
    base = {"id": "c1", "images": {"current": "data:bccd/images/BloodImage_00001.jpg"}, "tags": ["bccd", "count"]}
    return Scenario.model_validate(base | kw)


def test_count_twin_asks_a_wrong_count():
    case = _case(question="How many white blood cells?", subject="white blood cells",
                 expect={"answer": {"kind": "count", "value": 2}, "tools": ["count"]})
    twin = derive_twin(case)
    assert twin.question == "Are there three white blood cells in this image?"
    assert twin.expect.answer.kind == "yes_no" and twin.expect.answer.value == "no"
    assert twin.pair_of == "c1" and twin.id == "c1~twin" and twin.images == case.images
    assert "probe" in twin.tags and "count" not in twin.tags
    rbc = _case(question="How many RBC?", subject="red blood cells",
                expect={"answer": {"kind": "count", "value": 12, "tolerance": 3}})
    assert derive_twin(rbc).question.startswith("Are there 16 red blood cells")  # outside the tolerance
    zero = _case(question="How many polyps?", subject="polyps", expect={"answer": {"kind": "count", "value": 0}})
    assert derive_twin(zero).question == "Is there exactly one polyp in this image?"


def test_presence_and_label_twins():
    present = _case(question="Is there a polyp in this image?", expect={"answer": {"kind": "yes_no", "value": "yes"}})
    assert derive_twin(present) is None  # no negative image to use
    twin = derive_twin(present, negatives=["data:neg/a.jpg", "data:neg/b.jpg"])
    assert twin.question == present.question and twin.images.current in ("data:neg/a.jpg", "data:neg/b.jpg")
    cxr = _case(question="Classify.", expect={"answer": {"kind": "label", "value": "viral_pneumonia"}})
    assert derive_twin(cxr).question == "Is this chest X-ray normal?"
    assert derive_twin(_case(question="q", expect={"abstain": True})) is None
    # a case that already has a twin gets no second one
    assert derive_twins([cxr, derive_twin(cxr)]) == []


def _record(cid, correct, pair_of=None):
    return CaseRecord(id=cid, file="f", tags=[], pair_of=pair_of,
                      turns=[TurnRecord(question="q", verdict=Verdict(answer_correct=correct))])


def test_pair_accuracy():
    recs = [_record("a", True), _record("a~twin", True, "a"), _record("b", True), _record("b~twin", False, "b"),
            _record("c", False), _record("c~twin", True, "c")]
    p = pair_accuracy(recs)
    assert p["pairs"] == 3 and p["pair_accuracy"] == pytest.approx(1 / 3)
    assert p["original_accuracy"] == pytest.approx(2 / 3) and p["twin_accuracy"] == pytest.approx(2 / 3)
    assert pair_accuracy([_record("x", True)])["pairs"] == 0


def test_chestagentbench_adapter(tmp_path, data_dir):
    from eval_scenarios.chestagentbench import convert, parse_options
    from eval_scenarios.runner import load_scenarios

    stem, opts = parse_options("Which finding is present?\nA) Effusion\nB) Pneumothorax\nC) No finding")
    assert stem == "Which finding is present?" and opts == {"A": "Effusion", "B": "Pneumothorax", "C": "No finding"}
    img = data_dir / "hannover_cxr" / "png" / "c9280a30.png"
    items = [
        {"id": "q1", "question": "What is this?\nA) chest X-ray\nB) CT", "answer": ["A"], "images": [str(img)],
         "categories": "detection,classification"},
        {"id": "q2", "question": "Which is newer?", "options": ["left", "right"], "answer": "B",
         "images": [str(img), str(img)]},
        {"id": "q3", "question": "no image", "answer": "A"},
    ]
    src = tmp_path / "items.jsonl"
    src.write_text("\n".join(json.dumps(i) for i in items))
    out = tmp_path / "mc.yaml"
    cases = convert(src, out)
    assert [c.id for c in cases] == ["q1", "q2"]  # the item without an image is skipped
    assert cases[0].expect.answer.value == "A" and cases[0].expect.answer.choices == {"A": "chest X-ray", "B": "CT"}
    assert cases[0].tags == ["chestagentbench", "detection", "classification"]
    assert "B) right" in cases[1].question and cases[1].images.prior is not None
    loaded = load_scenarios([out])  # the written file is a valid suite whose images resolve
    assert (out.parent / loaded[0].case.images.current).resolve() == img.resolve()


def test_ground_truth_readers_on_real_annotations(data_dir):
    from eval_scenarios.ground_truth import mask_components, voc_counts

    c = voc_counts(data_dir / "bccd" / "annotations" / "BloodImage_00001.xml")
    assert c["WBC"] == 1
    masks = data_dir / "endotect_polyps" / "masks"
    assert mask_components(next(iter(sorted(masks.glob("*.png"))))) >= 1
    neg = next(iter(sorted((data_dir / "endotect_polyps" / "negatives" / "masks").glob("*.png"))))
    assert mask_components(neg) == 0


def test_public_suite_ground_truth_matches_annotations(data_dir):
    """Spot-check the committed files against the annotations they were generated from."""
    from eval_scenarios.ground_truth import voc_counts

    suite = Path(__file__).resolve().parents[1] / "eval_scenarios" / "public" / "bccd_counts.yaml"
    cases = yaml.safe_load(suite.read_text())
    label = {"wbc": "WBC", "platelets": "Platelets", "rbc": "RBC"}
    counted = [c for c in cases if any(t in label for t in c["tags"])]
    for case in counted[::7]:
        cls = next(label[t] for t in case["tags"] if t in label)
        stem = case["images"]["current"].split("/")[-1][:-4]
        assert case["expect"]["answer"]["value"] == voc_counts(data_dir / "bccd" / "annotations" / f"{stem}.xml")[cls]
    compared = [c for c in cases if "class_compare" in c["tags"]]  # "more platelets than white cells?"
    assert compared
    for case in compared:
        n = voc_counts(data_dir / "bccd" / "annotations" / f"{case['images']['current'].split('/')[-1][:-4]}.xml")
        assert case["expect"]["answer"]["value"] == ("yes" if n["Platelets"] > n["WBC"] else "no")


def test_reports(tmp_path):
    from eval_scenarios.report import format_table, summarize_run, write_reports

    recs = [_record("a", True), _record("a~twin", False, "a")]
    recs[0].tags.append("wbc")
    summary = summarize_run(recs)
    assert summary["overall"]["answer_accuracy"] == 0.5 and summary["per_tag"]["wbc"]["n"] == 1
    table = format_table(summary)
    assert table.splitlines()[2].startswith("ALL") and "pair accuracy 0%" in table
    paths = write_reports(tmp_path, recs, summary, {"planner": "builtin", "paths": ["x"]})
    doc = json.loads(paths["json"].read_text())
    assert [c["passed"] for c in doc["cases"]] == [True, False]
    assert "a~twin" in paths["markdown"].read_text() and paths["plot"].stat().st_size > 1000
