"""YOLO detector backend: loading (local files only), pre/post-processing in original-image pixels,
the bundled blood and polyp models on real dev images, and no network.

Images: BCCD smears (MIT) and EndoTect / HyperKvasir frames (CC BY 4.0) read from ../shared/data;
the file names below are in the validation splits recorded in experts/weights/*_yolo.md.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experts.imaging import load_image
from experts.weights import bundled, sha256_of
from tools.errors import ExpertUnavailableError
from tools.settings import ModelPaths, OslerSettings

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SMEAR = DATA / "bccd" / "images" / "BloodImage_00003.jpg"  # validation smear: 1 WBC, 1 platelet, 15 RBC
POLYP = DATA / "endotect_polyps" / "images" / "00c7089c-caf9-4c1b-850f-bedbb11668fc.jpg"
POLYP_BOX = (182.0, 208.0, 424.0, 396.0)  # its mask's component box
NEGATIVE = DATA / "endotect_polyps" / "negatives" / "images" / "1b1ae5c5-c35c-43f5-bb1c-e92fc04b3cae.jpg"
pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not found at {DATA}")


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> OslerSettings:
    os.environ.setdefault("YOLO_OFFLINE", "1")
    return OslerSettings(device="cpu", data_dir=tmp_path_factory.mktemp("osler_data"))


def _with(settings: OslerSettings, **paths: object) -> OslerSettings:
    return settings.model_copy(update={"models": ModelPaths(**paths)})


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, settings: OslerSettings) -> Path:
    """An untrained, narrow YOLO11 built from its yaml (random init), saved as osler-yolo-v1."""
    from experts.ultralytics_env import default_config_dir, prepare_ultralytics

    prepare_ultralytics(default_config_dir(settings.data_dir))
    import torch
    from ultralytics.nn.tasks import DetectionModel, yaml_model_load

    from experts.yolo_detector import save_checkpoint

    cfg = yaml_model_load("yolo11n.yaml")
    cfg.pop("yaml_file", None)
    cfg.update(scales={"t": [0.33, 0.125, 256]}, scale="t")
    torch.manual_seed(0)
    model = DetectionModel(cfg=cfg, nc=2, verbose=False)
    return save_checkpoint(model, ["cell", "blob"], 256, tmp_path_factory.mktemp("ckpt") / "tiny.pt",
                           {"model_id": "tiny-untrained"})


def test_untrained_checkpoint_runs_real_pre_and_post_processing(settings, tiny_checkpoint):
    from experts.yolo_detector import build_custom

    det = build_custom(_with(settings, yolo_extra=tiny_checkpoint))
    assert det.backend == "yolo"
    assert det.classes == ("cell", "blob")  # from the checkpoint
    image = load_image(SMEAR)
    out = det.predict(image, min_score=0.0)
    h, w = image.pixels.shape[:2]
    assert len(out.boxes) > 0
    assert (out.boxes[:, 0] >= 0).all() and (out.boxes[:, 2] <= w).all()
    assert (out.boxes[:, 1] >= 0).all() and (out.boxes[:, 3] <= h).all()
    assert (out.boxes[:, 2] > out.boxes[:, 0]).all() and (out.boxes[:, 3] > out.boxes[:, 1]).all()
    assert set(out.labels) <= {"cell", "blob"}
    assert out.provenance.weights_sha256 == sha256_of(tiny_checkpoint)
    assert out.provenance.model == "tiny-untrained" and out.provenance.device == "cpu"
    assert det.predict(image, min_score=0.99).boxes.shape == (0, 4)


class _FixedHead:
    """Stands in for a model: one box at the canvas centre, half the canvas wide and high, for class 1."""

    def __new__(cls):
        import torch

        class Head(torch.nn.Module):
            stride = torch.tensor([8.0, 16.0, 32.0])
            seen: list[tuple[int, ...]] = []

            def forward(self, x):
                b, _, hh, ww = x.shape
                self.seen.append(tuple(x.shape))
                out = torch.zeros(b, 4 + 2, 1)
                out[:, :4, 0] = torch.tensor([ww / 2, hh / 2, ww / 2, hh / 2])
                out[:, 5, 0] = 0.9
                return out

        return Head()


def test_boxes_are_mapped_back_to_original_pixels():
    from experts.yolo_detector import YoloDetector

    head = _FixedHead()
    det = YoloDetector(None, model=head, names=["a", "b"], imgsz=320)
    image = load_image(SMEAR)  # 640 x 480 -> scale 0.5 -> 320 x 240, padded to 320 x 256 (8 px top and bottom)
    out = det.predict(image)
    assert head.seen[-1] == (1, 3, 256, 320)
    np.testing.assert_allclose(out.boxes, [[160, 112, 480, 368]], atol=0.01)
    assert out.labels == ["b"] and out.scores[0] == pytest.approx(0.9)
    filtered = YoloDetector(None, model=_FixedHead(), names=["a", "b"], imgsz=320, class_filter=["a"])
    assert filtered.classes == ("a",) and len(filtered.predict(image).boxes) == 0


def test_tiles_cover_large_images_with_overlap():
    from experts.yolo_detector import _tiles

    wins = _tiles(1440, 1920, 640, 0.3)
    cover = np.zeros((1440, 1920), bool)
    for x0, y0, x1, y1 in wins:
        assert x1 - x0 == 640 and y1 - y0 == 640
        cover[y0:y1, x0:x1] = True
    assert cover.all()
    xs = sorted({w[0] for w in wins})
    assert all(b - a <= 640 * 0.7 for a, b in zip(xs, xs[1:]))
    assert _tiles(480, 640, 640, 0.3) == [(0, 0, 640, 480)]


@pytest.mark.parametrize("runtime, weights", [("torch", "bccd_yolo.pt"), ("onnx", "bccd_yolo.onnx")])
def test_bundled_blood_model_finds_the_wbc(settings, runtime, weights):
    from experts.yolo_detector import build_blood, check_blood

    assert bundled("bccd_yolo.pt").exists(), "the trained experts/weights/bccd_yolo.pt must be committed"
    settings = settings.model_copy(update={"expert_runtime": runtime})
    assert check_blood(settings) is None
    det = build_blood(settings)
    assert det.classes == ("RBC", "WBC", "Platelets")
    out = det.predict(load_image(SMEAR))
    assert out.labels.count("WBC") >= 1
    assert out.labels.count("RBC") >= 5
    assert out.provenance.weights_sha256 == sha256_of(bundled(weights))  # the file that ran
    assert ("onnxruntime" in out.provenance.note) == (runtime == "onnx")
    batch = det.predict_batch([load_image(SMEAR), load_image(SMEAR)])
    np.testing.assert_allclose(batch[1].boxes, out.boxes, atol=0.5)


def test_tiled_inference_counts_each_cell_once(settings):
    """A 3 x 3 mosaic of one smear (1920 x 1440 > 2 x 640) runs in overlapping 640 px tiles: the
    interior WBC and platelets are found 9 times each, never twice per copy."""
    from experts.imaging import StudyImage
    from experts.yolo_detector import build_blood

    det = build_blood(settings)
    image = load_image(SMEAR)
    single = det.predict(image)
    big = np.tile(image.pixels, (3, 3, 1))
    meta = image.meta.model_copy(update={"width": big.shape[1], "height": big.shape[0]})
    out = det.predict(StudyImage(pixels=big, meta=meta))
    assert out.provenance.note and "tiled" in out.provenance.note
    assert single.labels.count("WBC") == 1
    assert out.labels.count("WBC") == 9
    assert out.labels.count("Platelets") == 9 * single.labels.count("Platelets")
    assert (out.boxes[:, 2] <= big.shape[1]).all() and (out.boxes[:, 3] <= big.shape[0]).all()


def test_bundled_polyp_model_finds_polyp_and_not_on_negative(settings):
    from experts.geometry import box_iou
    from experts.yolo_detector import build_polyp

    assert bundled("polyp_yolo.pt").exists(), "the trained experts/weights/polyp_yolo.pt must be committed"
    det = build_polyp(settings)
    assert det.classes == ("polyp",)
    pos = det.predict(load_image(POLYP))
    assert len(pos.boxes) >= 1 and set(pos.labels) == {"polyp"}
    assert box_iou(pos.boxes, np.array([POLYP_BOX])).max() > 0.5
    assert len(det.predict(load_image(NEGATIVE)).boxes) == 0


@pytest.mark.parametrize("kind, field, setting", [
    ("blood", "yolo_blood", "OSLER_MODELS__YOLO_BLOOD"),
    ("polyp", "yolo_polyp", "OSLER_MODELS__YOLO_POLYP"),
    ("custom", "yolo_extra", "OSLER_MODELS__YOLO_EXTRA"),
])
def test_model_names_and_missing_paths_are_refused(settings, tmp_path, monkeypatch, kind, field, setting):
    from experts import yolo_detector as yd

    monkeypatch.chdir(tmp_path)  # "yolo11n.pt" must not exist locally
    for bad in ("yolo11n.pt", str(tmp_path / "missing.pt")):
        s = _with(settings, **{field: Path(bad)})
        reason = getattr(yd, f"check_{kind}")(s)
        assert reason and setting in reason
        with pytest.raises(ExpertUnavailableError, match=setting):
            getattr(yd, f"build_{kind}")(s)
    assert not list(tmp_path.iterdir())  # nothing was downloaded here


def test_checkpoint_classes_are_mapped_or_refused(settings, tmp_path):
    import torch
    from ultralytics.nn.tasks import DetectionModel

    from experts.yolo_detector import build_blood, save_checkpoint

    payload = torch.load(bundled("bccd_yolo.pt"), map_location="cpu", weights_only=True)
    model = DetectionModel(cfg=dict(payload["yaml"]), nc=3, verbose=False)
    lower = save_checkpoint(model, ["rbc", "wbc", "platelet"], 320, tmp_path / "lower.pt")
    assert build_blood(_with(settings, yolo_blood=lower)).classes == ("RBC", "WBC", "Platelets")
    other = save_checkpoint(model, ["cat", "dog", "bird"], 320, tmp_path / "other.pt")
    det = build_blood(_with(settings, yolo_blood=other))
    with pytest.raises(ExpertUnavailableError, match="OSLER_MODELS__YOLO_BLOOD"):
        det.load()


def test_no_network_attempt_when_loading_and_predicting(settings, tiny_checkpoint, monkeypatch):
    from experts.yolo_detector import build_blood, build_custom

    attempts: list[object] = []

    def refuse(self, address):  # noqa: ANN001
        attempts.append(address)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for det in (build_custom(_with(settings, yolo_extra=tiny_checkpoint)), build_blood(settings)):
        det.load()
        det.predict(load_image(SMEAR))
    assert attempts == []


def test_fresh_process_makes_no_network_attempt(tmp_path):
    """Import-time probes included: a new interpreter with connect and DNS refused."""
    code = f"""
import json, socket
from pathlib import Path
attempts = []
def refuse(*a, **k):
    attempts.append(repr(a[1:] or a))
    raise OSError("offline")
socket.socket.connect = refuse
socket.getaddrinfo = refuse
socket.create_connection = refuse
from tools.settings import OslerSettings
from experts.imaging import load_image
from experts.yolo_detector import build_blood
det = build_blood(OslerSettings(device="cpu", expert_runtime="torch", data_dir=Path({str(tmp_path)!r})))
out = det.predict(load_image({str(SMEAR)!r}))
import ultralytics.utils as u
print(json.dumps({{"attempts": attempts, "n": len(out.boxes), "sync": u.SETTINGS["sync"],
                  "fonts": sorted(p.name for p in Path(u.USER_CONFIG_DIR).glob("*.ttf"))}}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("YOLO_", "OSLER_"))}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert res["attempts"] == [] and res["n"] > 0 and res["sync"] is False
    assert res["fonts"] == ["Arial.Unicode.ttf", "Arial.ttf"]
    assert (tmp_path / "ultralytics" / "Ultralytics" / "Arial.ttf").exists()


def test_flip_tta_merge_hand_case():
    """Three views: an object all views see keeps its score; one a single view sees drops to a third;
    mirrored boxes map back exactly."""
    from experts.detection_tta import FLIPS, flip_views, merge_views, unflip

    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[0, 0] = 255
    lr, ud = flip_views(rgb)[1:]
    assert lr[0, 5].tolist() == [255, 255, 255] and ud[3, 0].tolist() == [255, 255, 255]
    box = np.array([[1.0, 0.0, 3.0, 2.0, 0.9, 0.0]], np.float32)
    seen_lr = np.array([[3.0, 0.0, 5.0, 2.0, 0.6, 0.0]], np.float32)  # the same box on the mirrored image
    seen_ud = np.array([[1.0, 2.0, 3.0, 4.0, 0.3, 0.0], [0.0, 0.0, 1.0, 1.0, 0.6, 1.0]], np.float32)
    assert np.allclose(unflip(seen_lr, "lr", 6, 4)[:, :4], box[:, :4])
    views = [unflip(d, f, 6, 4) for d, f in zip([box, seen_lr, seen_ud], FLIPS)]
    merged = merge_views(views, iou=0.5)
    assert merged.shape == (2, 6)
    assert np.allclose(merged[0], [1, 0, 3, 2, (0.9 + 0.6 + 0.3) / 3, 0])  # the top view's box, mean score
    assert np.isclose(merged[1, 4], 0.6 / 3) and merged[1, 5] == 1  # one view of three
    assert merge_views([np.zeros((0, 6))] * 3, 0.5).shape == (0, 6)


def test_blood_model_uses_flip_tta_and_per_class_thresholds(settings):
    """BloodImage_00344 (validation smear, 1 WBC): one view alone boxes this granular cell twice at
    0.25; the three-view mean and the WBC threshold keep one."""
    from experts.yolo_detector import build_blood

    det = build_blood(settings)
    assert det.tta and det.class_min_scores == {"WBC": 0.30, "Platelets": 0.20}
    image = load_image(DATA / "bccd" / "images" / "BloodImage_00344.jpg")
    out = det.predict(image)
    assert out.labels.count("WBC") == 1
    assert out.min_score == pytest.approx(0.20)  # the lowest threshold applied
    assert "flip test-time augmentation" in out.provenance.note and "WBC 0.30" in out.provenance.note
    single = det.predict(image, min_score=0.25)  # an explicit threshold applies to every class
    assert all(s >= 0.25 for s in single.scores) and "per-class" not in (single.provenance.note or "")
