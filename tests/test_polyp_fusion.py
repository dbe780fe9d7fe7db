"""The fused polyp detector (YOLO at 0.45, the U-Net's most confident component when YOLO keeps no box):
the pure rule's truth table, and the real bundled models on frames held out from both."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experts.polyp_fusion import fuse_boxes

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
POLYPS = DATA / "endotect_polyps"
B1, B2 = [100, 100, 200, 200], [300, 300, 400, 380]
INNER = [120, 120, 180, 170]  # inside B1


@pytest.mark.parametrize(
    "det_boxes, det_scores, unet_boxes, unet_scores, expect_boxes, expect_sources",
    [
        ([B1, B2], [0.8, 0.5], [], [], [B1, B2], ["yolo", "yolo"]),  # both over 0.45
        ([B1, B2], [0.8, 0.40], [], [], [B1], ["yolo"]),  # 0.40 is under the threshold
        ([B1, INNER], [0.6, 0.9], [], [], [INNER], ["yolo"]),  # a box inside a stronger one: one polyp
        ([B1], [0.3], [B2], [0.93], [B2], ["unet"]),  # no YOLO box: the confident U-Net component
        ([B1], [0.3], [B2, B1], [0.85, 0.89], [], []),  # no U-Net component reaches 0.90: nothing
        ([B1], [0.5], [B2], [0.99], [B1], ["yolo"]),  # a YOLO box: the U-Net is not consulted
        ([], [], [B1, B2], [0.91, 0.95], [B2], ["unet"]),  # only the most confident component
    ],
)
def test_fusion_rule(det_boxes, det_scores, unet_boxes, unet_scores, expect_boxes, expect_sources):
    boxes, scores, sources = fuse_boxes(np.array(det_boxes, np.float32), np.array(det_scores, np.float32),
                                        np.array(unet_boxes, np.float32), np.array(unet_scores, np.float32))
    np.testing.assert_array_equal(boxes, np.array(expect_boxes, np.float32).reshape(-1, 4))
    assert sources == expect_sources and len(scores) == len(boxes)


@pytest.fixture(scope="module")
def fused():
    pytest.importorskip("ultralytics")
    pytest.importorskip("segmentation_models_pytorch")
    if not POLYPS.exists():
        pytest.skip("../shared/data is not present")
    from experts.polyp_fusion import build, check
    from tools.settings import ModelPaths, OslerSettings

    settings = OslerSettings(device="cpu", models=ModelPaths())
    assert check(settings) is None
    det = build(settings)
    det.load()
    return det


def _gt(stem: str, negative: bool = False):
    from eval_scenarios.bench_detection import mask_ground_truth

    root = POLYPS / "negatives" if negative else POLYPS
    return mask_ground_truth(root / "masks" / f"{stem}.png", root / "images" / f"{stem}.jpg", "polyp")


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize(
    "stem, negative, yolo_alone, why",
    [
        ("3b5a2952-3666-4a9b-beb0-ab87cb50e904", False, 0, "YOLO 0.32 only: the U-Net component (0.92) is the box"),
        ("0db231c1-0412-41a9-b902-ede14b1050aa", False, 2, "a false YOLO box at 0.43 is under 0.45"),
        ("1b1ae5c5-c35c-43f5-bb1c-e92fc04b3cae", True, 0, "negative: U-Net components 0.63 and 0.53, under 0.90"),
    ],
)
def test_fused_detector_counts_held_out_frames(fused, stem, negative, yolo_alone, why):
    from experts.geometry import box_iou
    from experts.imaging import load_image

    gt = _gt(stem, negative)
    img = load_image(gt.image)
    assert len(fused.yolo.predict(img).boxes) == yolo_alone  # the YOLO alone at its own default, 0.35
    out = fused.predict(img)
    assert len(out.boxes) == len(gt.boxes), why
    if len(gt.boxes):
        assert box_iou(out.boxes, gt.boxes).max() >= 0.5
    p = out.provenance
    assert p.backend == "yolo_unet" and p.model == f"{fused.yolo.model_id}+{fused.unet.model_id}" and p.note
    if stem.startswith("3b5a"):
        assert "U-Net's most confident component" in p.note
