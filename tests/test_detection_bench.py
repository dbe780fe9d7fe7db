"""The detection benchmark: ground-truth readers on real files, the metric math on cases worked
by hand, and the CLI end to end on a few real images (BCCD, MIT; EndoTect/HyperKvasir, CC BY 4.0)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from eval_scenarios.bench_detection import (
    GroundTruth,
    average_precision,
    evaluate,
    main,
    mask_ground_truth,
    voc_ground_truth,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BCCD = DATA / "bccd"
POLYPS = DATA / "endotect_polyps"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not found at {DATA}")


def test_voc_reader_matches_the_xml():
    gt = voc_ground_truth(BCCD / "annotations" / "BloodImage_00000.xml", BCCD / "images" / "BloodImage_00000.jpg")
    assert (gt.width, gt.height) == (640, 480)
    assert gt.labels[0] == "WBC"
    np.testing.assert_allclose(gt.boxes[0], [259, 176, 491, 376])  # VOC 1-based inclusive -> 0-based exclusive
    assert set(gt.labels) <= {"RBC", "WBC", "Platelets"}
    assert (gt.boxes[:, 2] <= 640).all() and (gt.boxes[:, 3] <= 480).all()


def test_mask_reader_one_box_per_component():
    name = "00c7089c-caf9-4c1b-850f-bedbb11668fc"
    gt = mask_ground_truth(POLYPS / "masks" / f"{name}.png", POLYPS / "images" / f"{name}.jpg", "polyp")
    np.testing.assert_allclose(gt.boxes, [[182, 208, 424, 396]])
    assert gt.labels == ["polyp"]
    neg = sorted((POLYPS / "negatives" / "masks").glob("*.png"))[0]
    assert len(mask_ground_truth(neg, neg, "polyp").boxes) == 0


def test_average_precision_hand_cases():
    # 2 ground truths; detections by score: TP, FP, TP -> precision 1 up to recall 0.5, 2/3 up to 1.0
    tp = np.array([[True], [False], [True]])
    ap = average_precision(tp, np.array([0.9, 0.8, 0.7]), n_gt=2)
    expected = (51 * 1.0 + 50 * (2 / 3)) / 101
    assert ap[0] == pytest.approx(expected)
    assert average_precision(np.array([[True]]), np.array([0.5]), 1)[0] == pytest.approx(1.0)
    assert average_precision(np.zeros((0, 1), bool), np.zeros(0), 3)[0] == 0.0


@dataclass
class _Det:
    boxes: np.ndarray
    scores: np.ndarray
    labels: list[str]


def test_evaluate_counts_and_matching():
    g1 = GroundTruth(Path("a"), np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), ["WBC", "WBC"], 50, 50)
    g2 = GroundTruth(Path("b"), np.zeros((0, 4), np.float32), [], 50, 50)
    d1 = _Det(np.array([[0, 0, 10, 10], [40, 40, 45, 45], [20, 20, 30, 29]], np.float32),
              np.array([0.9, 0.8, 0.1]), ["WBC", "WBC", "WBC"])
    d2 = _Det(np.array([[1, 1, 5, 5]], np.float32), np.array([0.6]), ["WBC"])
    res = evaluate([(g1, d1), (g2, d2)], ["WBC"], count_min_score=0.5)
    wbc = res["classes"]["WBC"]
    assert wbc["n_gt"] == 2 and wbc["n_pred"] == 3
    assert wbc["precision"] == pytest.approx(1 / 3) and wbc["recall"] == pytest.approx(0.5)
    assert wbc["count_mae"] == pytest.approx(0.5) and wbc["count_exact"] == pytest.approx(0.5)
    assert wbc["count_bias"] == pytest.approx(0.5)
    assert res["negatives"] == {"n_images": 1, "images_with_detections": 1, "false_boxes": 1}
    # AP over all scores: TP(0.9), FP(0.8), FP(0.6), TP(0.1) -> the low-score box still counts for AP50
    assert 0.5 < wbc["ap50"] < 1.0


def test_cli_opencv_on_real_smears(tmp_path, capsys):
    files = tmp_path / "files.txt"
    files.write_text("BloodImage_00003.jpg\nBloodImage_00017\nBloodImage_00113.jpg\n")
    out = tmp_path / "res.json"
    rc = main(["--backend", "opencv", "--target", "blood_cells", "--images", str(BCCD / "images"),
               "--labels", str(BCCD / "annotations"), "--format", "voc", "--files", str(files), "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["n_images"] == 3 and res["backend"] == "opencv"
    assert res["classes"]["WBC"]["n_gt"] == 4
    assert 0.0 <= res["classes"]["WBC"]["ap50"] <= 1.0 and res["images_per_s"] > 0
    assert "mAP50" in capsys.readouterr().out


def test_cli_yolo_polyps_with_negatives(tmp_path):
    files = tmp_path / "files.txt"
    files.write_text("00c7089c-caf9-4c1b-850f-bedbb11668fc\n1b1ae5c5-c35c-43f5-bb1c-e92fc04b3cae\n")
    out = tmp_path / "res.json"
    rc = main(["--backend", "yolo", "--target", "polyp",
               "--images", str(POLYPS / "images"), "--labels", str(POLYPS / "masks"),
               "--images", str(POLYPS / "negatives" / "images"), "--labels", str(POLYPS / "negatives" / "masks"),
               "--format", "mask", "--files", str(files), "--json", str(out)])
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["n_images"] == 2 and res["negatives"]["n_images"] == 1
    assert res["classes"]["polyp"]["n_gt"] == 1 and res["weights_sha256"]
