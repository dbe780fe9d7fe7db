"""The audited WBC labels (eval_scenarios/bccd_wbc_audit.json): what they change, and that they stay tied to
the data and the model they were made for."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import DATA

BCCD = DATA / "bccd"


def test_audit_record_is_complete_and_consistent():
    from eval_scenarios.bccd_audit import load_audit

    a = load_audit()
    reviewed = set(a["reviewed"])
    assert len(reviewed) == len(a["reviewed"]) == 58
    assert a["rule"] and a["disclosure"]
    for rec in a["corrections"] + a["ambiguous_kept"]:
        assert rec["image"] in reviewed  # nothing outside the audited smears is touched or discussed
    for c in a["corrections"]:
        assert c["wbc_labelled"] != c["wbc_audited"] and c["why"]


def test_reviewed_smears_are_the_ones_the_shipped_detector_never_saw():
    from eval_scenarios.bccd_audit import load_audit
    from experts.ultralytics_env import validation_names

    assert validation_names(Path(__file__).resolve().parents[1] / "experts" / "weights" / "bccd_yolo.pt") \
        == sorted(load_audit()["reviewed"])


def test_corrections_apply_to_the_real_annotations_and_nothing_else():
    from eval_scenarios.bccd_audit import audited_counts
    from eval_scenarios.ground_truth import voc_counts

    if not BCCD.exists():
        pytest.skip("real data not found")
    for stem, labelled, audited in (("BloodImage_00113", 2, 1), ("BloodImage_00228", 0, 1)):
        c = voc_counts(BCCD / "annotations" / f"{stem}.xml")
        counts = {"WBC": c.get("WBC", 0), "Platelets": c.get("Platelets", 0)}
        assert counts["WBC"] == labelled
        fixed = audited_counts(stem, counts)
        assert fixed["WBC"] == audited and fixed["Platelets"] == counts["Platelets"]
    c = voc_counts(BCCD / "annotations" / "BloodImage_00003.xml")
    assert audited_counts("BloodImage_00003", {"WBC": c["WBC"]}) == {"WBC": c["WBC"]}


def test_a_stale_audit_is_refused_not_applied():
    from eval_scenarios.bccd_audit import audited_counts

    with pytest.raises(ValueError, match="does not match this data"):
        audited_counts("BloodImage_00113", {"WBC": 1})  # the data no longer holds the count the audit corrected


def test_load_smears_rejects_an_unknown_label_set():
    from eval_scenarios.counts_cv_folds import load_smears

    with pytest.raises(ValueError, match="labels must be"):
        load_smears(DATA, limit=1, labels="corrected")


def test_audit_sheets_show_the_boxes(tmp_path):
    import cv2
    import numpy as np

    from eval_scenarios.bccd_audit import draw_sheets

    if not BCCD.exists():
        pytest.skip("real data not found")
    (p,) = draw_sheets(DATA, ["BloodImage_00113", "BloodImage_00228"], tmp_path, per_sheet=6)
    img = cv2.imread(str(p))
    assert img.shape == (576, 1152, 3)
    red = (img[..., 2] > 200) & (img[..., 1] < 60) & (img[..., 0] < 60)
    assert red[:288, :384].sum() > 200  # 00113's two WBC boxes are drawn
    assert red[:288, 384:768].sum() == 0  # 00228 has no WBC box: that is the label error the audit records
    assert np.all(img[288:, :] == 255)  # empty slots stay blank
