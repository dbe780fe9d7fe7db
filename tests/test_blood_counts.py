"""Blood-cell counts on real BCCD smears (MIT, ../shared/data/bccd): the classical counter's rules,
the cross-validation benchmark's folds and cross-check statistics, and the count tool's independent
cross-check (field, overlay, answer wording, grounding) through the real agent loop."""

from __future__ import annotations

import pytest

from tests.conftest import DATA

BCCD = DATA / "bccd"


def _smear(stem: str):
    from experts.imaging import load_image

    path = BCCD / "images" / f"{stem}.jpg"
    if not path.exists():
        pytest.skip(f"real data not found at {path}")
    return load_image(path)


@pytest.mark.parametrize("stem, wbc", [
    ("BloodImage_00003", 1),  # one neutrophil
    ("BloodImage_00010", 2),  # two separate cells
    ("BloodImage_00350", 1),  # two nuclear lobes of one cell: merged into one cell
    ("BloodImage_00242", 1),  # plus a nucleus fragment cut by the top edge: not counted
    ("BloodImage_00001", 1),  # a cell cut by the bottom edge, most of its nucleus visible: counted
])
def test_classical_wbc_count_matches_the_annotation(stem, wbc):
    from eval_scenarios.ground_truth import voc_counts
    from experts.blood_opencv import BloodCellOpenCV

    image = _smear(stem)
    assert voc_counts(BCCD / "annotations" / f"{stem}.xml")["WBC"] == wbc
    out = BloodCellOpenCV().predict(image)
    assert out.labels.count("WBC") == wbc
    assert out.provenance.backend == "opencv" and out.provenance.model == "hsv-cc-v2"
    h, w = image.pixels.shape[:2]
    assert (out.boxes[:, [0, 1]] >= 0).all() and (out.boxes[:, 2] <= w).all() and (out.boxes[:, 3] <= h).all()


def test_edge_rule_and_lobe_merging_are_what_change_the_count():
    """The same smears with the rules switched off give the wrong counts (the rules do the work)."""
    from experts.blood_opencv import BloodParams, stain_components, wbc_cells

    lobes = stain_components(_smear("BloodImage_00350").pixels)
    edge = stain_components(_smear("BloodImage_00242").pixels)
    on = BloodParams()
    assert len(wbc_cells(lobes, (480, 640), on)) == 1
    assert len(wbc_cells(lobes, (480, 640), BloodParams(merge_gap=-50))) == 2  # boxes must overlap by 50 px
    assert len(wbc_cells(edge, (480, 640), on)) == 1
    assert len(wbc_cells(edge, (480, 640), BloodParams(edge_area=0))) == 2


def test_platelets_are_small_blobs_away_from_the_nucleus():
    from experts.blood_opencv import BloodCellOpenCV

    out = BloodCellOpenCV().predict(_smear("BloodImage_00003"))
    wbc = out.boxes[[lab == "WBC" for lab in out.labels]][0]
    for box, lab in zip(out.boxes, out.labels):
        if lab == "Platelets":
            assert (box[2] - box[0]) * (box[3] - box[1]) < 3000
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            assert not (wbc[0] <= cx <= wbc[2] and wbc[1] <= cy <= wbc[3])


def test_folds_partition_the_smears():
    from eval_scenarios.bench_counts_cv import make_folds

    names = [f"BloodImage_{i:05d}" for i in (5, 1, 40, 3, 22, 7, 9, 100, 12, 30, 11)]
    for scheme in ("image", "batch"):
        folds = make_folds(names, 3, scheme)
        flat = sorted(i for f in folds for i in f)
        assert flat == list(range(len(names))) and all(folds)
    batch = make_folds(names, 3, "batch")
    index = [[int(names[i][-5:]) for i in f] for f in batch]
    assert max(index[0]) < min(index[1]) and max(index[1]) < min(index[2])  # contiguous by file index


def test_cross_check_statistics_hand_case():
    from eval_scenarios.bench_counts_cv import cross_check_stats

    # truth 1 everywhere; primary wrong on smears 0 and 1; the other method disagrees on 0 and 2
    st = cross_check_stats([2, 0, 1, 1], [1, 0, 2, 1], [1, 1, 1, 1], tol=0)
    assert (st["flagged"], st["wrong"], st["wrong_flagged"], st["right_flagged"]) == (2, 2, 1, 1)
    assert st["catch_rate"] == 0.5 and st["false_alarm_rate"] == 0.5
    assert cross_check_stats([2, 0, 1, 1], [1, 0, 2, 1], [1, 1, 1, 1], tol=1)["flagged"] == 0


def test_opencv_tuning_on_real_smears_uses_only_what_it_is_given():
    from eval_scenarios.bench_counts_cv import load_smears, opencv_counts, tune_opencv

    if not BCCD.exists():
        pytest.skip("real data not found")
    smears = load_smears(DATA, limit=12)
    params = tune_opencv(smears)
    errs = [opencv_counts(s, params)["WBC"] != s.truth["WBC"] for s in smears]
    assert sum(errs) <= 1  # the grid holds a setting that counts these 12 smears' WBC


@pytest.fixture
def smear_session(assistant, data_dir):
    def make(stem: str):
        s = assistant.new_session()
        s.load("current", data_dir / "bccd" / "images" / f"{stem}.jpg")
        return s
    return make


def _count_call(r):
    return next(c for c in r.tool_calls if c.name == "count")


def test_count_carries_an_agreeing_cross_check(assistant, smear_session):
    r = assistant.ask(smear_session("BloodImage_00003"), "How many white blood cells are in this smear?")
    call = _count_call(r)
    assert call.ok and call.backend == "yolo"
    cc = call.result["cross_check"]
    assert cc["backend"] == "opencv" and cc["provenance"]["model"] == "hsv-cc-v2"
    assert [c["label"] for c in cc["counts"]] == ["WBC"]
    assert cc["counts"][0] == {"label": "WBC", "count": 1, "primary_count": 1, "tolerance": 0, "agrees": True}
    assert cc["agrees"] and cc["overlay"] is None
    assert "independent" not in r.answer and len(r.artifacts.overlays) == 1


def test_disagreeing_cross_check_is_said_and_shown(assistant, smear_session):
    """BloodImage_00383: one eosinophil (annotated 1) whose granule cloud the YOLO boxes as a second WBC;
    the classical counter finds one.  The answer keeps the detector's number, says the other, shows both
    overlays."""
    r = assistant.ask(smear_session("BloodImage_00383"), "How many white blood cells are in this smear?")
    call = _count_call(r)
    assert call.result["counts"][0]["count"] == 2 and r.value == 2
    cc = call.result["cross_check"]
    assert cc["counts"][0]["count"] == 1 and not cc["agrees"]
    assert cc["overlay"] is not None and len(r.artifacts.overlays) == 2
    assert r.artifacts.overlays[-1] == call.result["overlay"]["path"]  # the detector's overlay stays the main one
    assert f"independent method (opencv) found 1 white blood cell (WBC) instead" in r.answer
    assert f"[{call.id}]" in r.answer.split("independent")[1]
    assert r.grounding.ok, r.grounding  # the second number is backed by the cited count result
    assert "cross-check disagrees" in (r.uncertainty or "")



def test_bench_counts_cv_cli_classical_only(capsys):
    """``osler bench counts-cv --no-yolo`` on 20 real smears: a table, then one JSON line with per-fold numbers."""
    import json

    from eval_scenarios.bench_cli import main

    if not BCCD.exists():
        pytest.skip("real data not found")
    assert main(["counts-cv", "--no-yolo", "--limit", "20", "--folds", "2", "--scheme", "batch",
                 "--data-root", str(DATA)]) == 0
    out = capsys.readouterr().out
    res = json.loads(out.strip().splitlines()[-1])
    (run,) = res["results"]
    assert run["scheme"] == "batch" and run["images"] == 20 and len(run["per_fold"]) == 2
    assert sum(f["n"] for f in run["per_fold"]) == 20 and all(f["n_yolo"] == 0 for f in run["per_fold"])
    assert 0.0 <= run["summary"]["WBC"]["opencv"]["mean"] <= 1.0
    assert "ocv WBC" in out  # the table came first


def test_platelet_counts_are_not_cross_checked(assistant, smear_session):
    """No tolerance made the classical platelet count an informative check (bench counts-cv): no field."""
    r = assistant.ask(smear_session("BloodImage_00003"), "How many platelets are there?")
    call = _count_call(r)
    assert call.ok and call.result["counts"][0]["label"] == "Platelets"
    assert call.result["cross_check"] is None


def test_count_reports_the_threshold_of_the_class_asked_for(assistant, smear_session):
    """Per-class thresholds (WBC 0.30, platelets 0.20): a WBC count says 0.30, not the platelets' 0.20."""
    r = assistant.ask(smear_session("BloodImage_00003"), "How many white blood cells are in this smear?")
    call = _count_call(r)
    assert call.result["min_score"] == pytest.approx(0.30)
    assert "(confidence threshold 0.30)" in r.answer
    assert all(d["score"] >= 0.30 for c in call.result["counts"] for d in c["instances"])
