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
    expert, _lock, why = pool.get("classify:cxr_pneumonia")
    assert expert.backend == "torchvision" and "torchvision" in why
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
