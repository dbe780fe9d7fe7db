"""U-Net segmenters with the bundled weights, on held-out real frames (validation lists of
experts/weights/polyp_unet.md and lung_unet.md): automatic polyp and lung masks, negatives,
box and point prompts, the polyp detector, registry checks and checkpoint validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from eval_scenarios.bench_segmentation import dice_iou, gt_boxes, read_mask  # noqa: E402
from experts.geometry import box_iou, connected_regions  # noqa: E402
from experts.imaging import StudyImage, load_image  # noqa: E402
from experts.unet_segmenter import (  # noqa: E402
    UnetSegmenter,
    build_lung,
    build_polyp,
    build_polyp_detector,
    check_lung,
    check_polyp,
)
from experts.weights import bundled  # noqa: E402
from tools.errors import ExpertUnavailableError, InvalidInputError  # noqa: E402
from tools.settings import ModelPaths, OslerSettings  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
POLYPS = DATA / "endotect_polyps"
LUNGS = DATA / "hannover_cxr" / "lung_seg"
# validation frames of both polyp models (the U-Net and the detector share one split; not trained on)
ONE_POLYP = "0b784b2a-1606-445c-bbb6-f731a4fddbf8"  # 768x576, one polyp of ~43k px
DETECT = "2f06af2b-f1d3-42e9-b5e4-1fb1c332957e"  # one large polyp
NEGATIVE = "0f8c43a2-2b4e-4b52-84c5-ec3d962c7e27"  # ulcerative colitis, no polyp
FALSE_BLOB = "1b1ae5c5-c35c-43f5-bb1c-e92fc04b3cae"  # no polyp; the v2 U-Net alone marked one region there
SECOND_REGION = "3bb70983-7bc3-4836-b9cc-60619b141eb3"  # one polyp; the U-Net alone marks a second, false region
# a training frame: the prompt tests check how prompts select and clip, not how well the model generalises
TWO_POLYPS = "04c3a34e-a160-4421-827e-89671761ef82"  # 720x576, two polyps of ~34k and ~21k px
LUNG = "61bc50d1"

pytestmark = [
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(not POLYPS.exists(), reason="../shared/data is not present"),
    pytest.mark.skipif(not bundled("polyp_unet.pt").exists() or not bundled("lung_unet.pt").exists(),
                       reason="bundled U-Net weights are missing (python -m training.train_unet)"),
]


@pytest.fixture(scope="module")
def cfg():
    return OslerSettings(device="cpu", models=ModelPaths())


@pytest.fixture(scope="module")
def polyp(cfg):
    seg = build_polyp(cfg)
    seg.load()
    return seg


@pytest.fixture(scope="module")
def lung(cfg):
    seg = build_lung(cfg)
    seg.load()
    return seg


def frame(stem: str, negative: bool = False) -> tuple[StudyImage, np.ndarray]:
    root = POLYPS / "negatives" if negative else POLYPS
    img = load_image(root / "images" / f"{stem}.jpg")
    gt, _ = read_mask(root / "masks" / f"{stem}.png")
    return img, gt


def union(masks: list[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    u = np.zeros(shape, dtype=bool)
    for m in masks:
        u |= m
    return u


def test_polyp_mask_on_a_held_out_frame(polyp):
    img, gt = frame(ONE_POLYP)
    out = polyp.predict(img)
    assert out.masks, "no polyp found"
    assert all(m.shape == gt.shape and m.dtype == bool for m in out.masks)
    assert out.labels == ["polyp"] * len(out.masks) and all(0.5 <= s <= 1 for s in out.scores)
    assert dice_iou(union(out.masks, gt.shape), gt)[0] > 0.8
    p = out.provenance
    assert (p.backend, p.device, p.model) == ("unet", "cpu", "endotect-unet-mnv2-320-v3-imagenet")
    assert p.weights_sha256 and len(p.weights_sha256) == 64


def test_no_polyp_on_a_negative_frame(polyp):
    img, _ = frame(NEGATIVE, negative=True)
    assert polyp.predict(img).masks == []


def grown_box(box, shape, frac=0.1) -> np.ndarray:
    x0, y0, x1, y1 = box
    g = np.zeros(shape, dtype=bool)
    gx, gy = frac * (x1 - x0), frac * (y1 - y0)
    g[int(max(0, y0 - gy)):int(y1 + gy) + 1, int(max(0, x0 - gx)):int(x1 + gx) + 1] = True
    return g


def test_box_prompt_keeps_only_the_polyp_in_the_box(polyp):
    img, gt = frame(TWO_POLYPS)
    upper, lower = connected_regions(gt, min_area=50)
    box = gt_boxes(upper)[0]
    out = polyp.predict(img, box=box)
    assert len(out.masks) == 1 and out.masks[0].shape == gt.shape
    m = out.masks[0]
    assert dice_iou(m, upper)[0] > 0.7
    assert not (m & lower).any() and not (m & ~grown_box(box, gt.shape)).any()  # clipped to the box + 10 %
    box = gt_boxes(lower)[0]
    for m in polyp.predict(img, box=box).masks:
        assert dice_iou(m, lower)[0] > 0.7
        assert not (m & upper).any() and not (m & ~grown_box(box, gt.shape)).any()


def test_point_prompts_pick_the_component(polyp):
    img, gt = frame(TWO_POLYPS)
    upper, lower = connected_regions(gt, min_area=50)
    ys, xs = np.nonzero(upper)
    i = np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2)
    x, y = float(xs[i]), float(ys[i])
    out = polyp.predict(img, points=[(x, y, True)])
    assert len(out.masks) == 1
    m = out.masks[0]
    assert dice_iou(m, upper)[0] > 0.7 and not (m & lower).any()
    assert len(connected_regions(m)) == 1  # only the clicked polyp, not the other one
    # a negative point 40 px to the right takes away the pixels nearer to it than to the positive one
    neg = polyp.predict(img, points=[(x, y, True), (x + 40, y, False)]).masks[0]
    assert 0 < neg.sum() < m.sum()
    assert not neg[int(y), int(x) + 40] and not neg[int(y), int(x) + 25] and neg[int(y), int(x) + 15]


def test_detector_boxes_match_the_polyps(cfg):
    det = build_polyp_detector(cfg)
    det.load()
    img, gt = frame(DETECT)
    out = det.predict(img)
    assert out.labels == ["polyp"] and det.classes == ("polyp",)
    assert box_iou(np.asarray(gt_boxes(gt)), out.boxes)[0, 0] > 0.5  # the usual detection match
    assert (out.scores >= det.default_min_score).all()
    assert out.provenance.expert == "polyp_detector" and out.provenance.backend == "unet"
    assert len(det.predict(frame(NEGATIVE, negative=True)[0]).boxes) == 0


@pytest.fixture(scope="module")
def yolo(cfg):
    pytest.importorskip("ultralytics")
    from experts.yolo_detector import build_polyp as build_yolo

    det = build_yolo(cfg)
    det.load()
    return det


def test_detector_prompted_mode_drops_the_false_region_of_the_network_alone(polyp, yolo):
    """`bench segmentation --modes detect`: the polyp detector's boxes prompt the U-Net.  On a held-out polyp
    frame where the network alone marks a second, false region, the detector's one box keeps only the polyp;
    on a held-out negative neither marks anything."""
    from eval_scenarios.bench_segmentation import evaluate, list_items
    from experts.imaging import load_image

    folders = [(POLYPS / "images", POLYPS / "masks"), (POLYPS / "negatives" / "images", POLYPS / "negatives" / "masks")]
    image = load_image(POLYPS / "images" / f"{SECOND_REGION}.jpg")
    assert len(polyp.predict(image).masks) == 2  # the network alone
    res = evaluate(polyp, list_items(folders, [SECOND_REGION, FALSE_BLOB]), ("auto", "detect"), detector=yolo)
    assert res["auto"]["negatives"] == res["detect"]["negatives"] == 1
    assert res["detect"]["negatives_empty"] == 1 and res["detect"]["n"] == 1
    assert res["detect"]["dice"] > res["auto"]["dice"] + 0.05 and res["detect"]["dice"] > 0.75


def test_segment_tool_prompts_the_polyp_segmenter_with_the_detector(assistant, data_dir):
    """`segment(target='polyp')` with no prompt: detector boxes -> the default polyp segmenter (LiteMedSAM),
    said in the provenance; nothing on a negative frame."""
    pytest.importorskip("ultralytics")
    from agent.boundary.toolset import invoke
    from tools.segmentation import SegmentRequest

    s = assistant.new_session()
    s.load("current", POLYPS / "images" / f"{ONE_POLYP}.jpg")
    r = invoke(s, "segment", SegmentRequest(target="polyp"))
    gt, _ = read_mask(POLYPS / "masks" / f"{ONE_POLYP}.png")
    assert len(r.regions) == 1 and dice_iou(s.mask(r.regions[0].mask.id), gt)[0] > 0.85
    assert "automatic: 1 box(es) of the polyp detector (yolo" in r.provenance.note
    assert r.provenance.backend == "litemedsam"  # the shipped default, end to end
    s2 = assistant.new_session()
    s2.load("current", POLYPS / "negatives" / "images" / f"{FALSE_BLOB}.jpg")
    r2 = invoke(s2, "segment", SegmentRequest(target="polyp"))
    assert r2.regions == [] and "automatic: 0 box(es)" in r2.provenance.note


def test_lung_mask_dice(lung):
    img = load_image(LUNGS / "images" / f"{LUNG}.jpg")
    gt, ign = read_mask(LUNGS / "masks" / f"{LUNG}.png")
    out = lung.predict(img)
    assert out.labels == ["lung"] and len(out.masks) == 1 and out.masks[0].shape == (1024, 1024)
    assert dice_iou(out.masks[0], gt, ign)[0] > 0.8
    assert 1 <= len(connected_regions(out.masks[0], min_area=1000)) <= 2


def test_lung_any_size_and_no_prompts(lung):
    import cv2

    img = load_image(LUNGS / "images" / f"{LUNG}.jpg")
    small = cv2.resize(img.pixels, (600, 520), interpolation=cv2.INTER_AREA)  # non-square, smaller
    gt, ign = read_mask(LUNGS / "masks" / f"{LUNG}.png", shape=(520, 600))
    out = lung.predict(StudyImage(pixels=small, meta=img.meta.model_copy(update={"width": 600, "height": 520})))
    assert out.masks[0].shape == (520, 600)
    assert dice_iou(out.masks[0], gt, ign)[0] > 0.8
    with pytest.raises(InvalidInputError):
        lung.predict(img, box=(10.0, 10.0, 200.0, 200.0))


def test_checks_name_the_settings(tmp_path):
    assert check_polyp(OslerSettings(models=ModelPaths())) is None
    assert check_lung(OslerSettings(models=ModelPaths())) is None
    msg = check_polyp(OslerSettings(models=ModelPaths(unet_polyp=tmp_path / "nope.pt")))
    assert msg and "OSLER_MODELS__UNET_POLYP" in msg
    msg = check_lung(OslerSettings(models=ModelPaths(unet_lung=tmp_path / "nope.pt")))
    assert msg and "OSLER_MODELS__UNET_LUNG" in msg


def test_rejects_a_foreign_checkpoint(tmp_path):
    bad = tmp_path / "plain_state_dict.pt"
    torch.save({"conv.weight": torch.zeros(1)}, bad)
    seg = UnetSegmenter(name="x", label="polyp", weights=bad, setting="OSLER_MODELS__UNET_POLYP", device="cpu")
    with pytest.raises(ExpertUnavailableError, match="OSLER_MODELS__UNET_POLYP"):
        seg.load()


def test_point_question_segments_the_polyp_under_the_point(assistant, data_dir):
    """'Outline and measure the region at (x, y)' (a click in the web app) on a held-out frame: the planner
    prompts the polyp segmenter with that point and measures the mask, which matches the ground truth."""
    s = assistant.new_session()
    s.load("current", POLYPS / "images" / f"{DETECT}.jpg")
    gt, _ = read_mask(POLYPS / "masks" / f"{DETECT}.png")
    ys, xs = np.nonzero(gt)
    x, y = int(np.median(xs)), int(np.median(ys))
    assert gt[y, x]
    r = assistant.ask(s, f"Outline and measure the region at ({x}, {y})")
    calls = [(c.name, c.args) for c in r.tool_calls]
    assert [n for n, _ in calls] == ["image_info", "segment", "measure"]
    assert calls[1][1]["target"] == "polyp" and calls[1][1]["points"] == [{"x": x, "y": y, "positive": True}]
    seg = s.evidence[r.tool_calls[1].id]
    assert dice_iou(s.mask(seg.regions[0].mask.id), gt)[0] > 0.85
    assert r.value == seg.regions[0].area_px and r.unit == "px" and not r.abstained


def test_segment_tool_says_when_the_detector_failed_and_the_segmenter_ran_alone(assistant, monkeypatch):
    pytest.importorskip("ultralytics")
    from agent.boundary.toolset import invoke
    from tools.errors import ExpertFailedError
    from tools.segmentation import SegmentRequest

    s = assistant.new_session()
    s.load("current", POLYPS / "images" / f"{ONE_POLYP}.jpg")
    det = s.pool.detector("polyp").expert

    def broken(*args, **kwargs):
        raise ExpertFailedError("polyp detector crashed (test double)")

    monkeypatch.setattr(det, "predict", broken)
    r = invoke(s, "segment", SegmentRequest(target="polyp"))
    gt, _ = read_mask(POLYPS / "masks" / f"{ONE_POLYP}.png")
    assert r.regions and dice_iou(s.mask(r.regions[0].mask.id), gt)[0] > 0.8  # the U-Net alone still finds it
    assert "automatic: no polyp detector (polyp detector crashed (test double)), the segmenter ran alone" in \
        r.provenance.note


def test_paired_parts_of_a_real_lung_mask_take_the_patients_sides():
    """The annotated lungs of a Hannover film: two parts, the one on the image's left is the patient's right;
    a mask of one part (or a small second island) stays one region without a side."""
    import cv2

    from agent.boundary.segment import paired_parts

    gt = cv2.imread(str(next((LUNGS / "masks").glob(f"{LUNG}*"))), cv2.IMREAD_GRAYSCALE) == 255
    parts = paired_parts(gt)
    assert [side for _, side in parts] == ["right", "left"]
    (right, _), (left, _) = parts
    xs = np.arange(gt.shape[1])
    assert (right.sum(0) * xs).sum() / right.sum() < gt.shape[1] / 2 < (left.sum(0) * xs).sum() / left.sum()
    assert np.array_equal(right | left, gt) and not (right & left).any()  # every pixel, once
    one = gt.copy()
    one[:, gt.shape[1] // 2:] = False
    assert [side for _, side in paired_parts(one)] == [None]


def test_how_big_is_the_left_lung_is_measured_on_that_lung(assistant):
    """'How big is the left lung?' had measured both lungs as one region (a diameter across the chest) and said the
    tools read the whole image; now each lung is a region with its side, the asked one is measured, and 'the
    lungs' are measured together without a diameter across both."""
    film = DATA / "hannover_cxr" / "png" / "006f3a8a.png"
    s = assistant.new_session()
    s.load("current", film)
    r = assistant.ask(s, "How big is the left lung?")
    seg = next(c for c in r.tool_calls if c.name == "segment").result
    sides = {g["side"]: g for g in seg["regions"]}
    assert set(sides) == {"left", "right"} and sides["right"]["centroid"][0] < sides["left"]["centroid"][0]
    assert r.value == sides["left"]["area_px"] and "The left lung" in r.answer and "whole image" not in r.answer
    assert r.grounding.ok and not r.grounding.removed_sentences
    r = assistant.ask(s, "How big are the lungs?")
    seg = next(c for c in r.tool_calls if c.name == "segment").result
    assert r.value == sum(g["area_px"] for g in seg["regions"]) and "together" in r.answer
    assert "diameter" not in r.answer.split("[")[0] and r.grounding.ok
