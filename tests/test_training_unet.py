"""Pieces of the U-Net training script that decide what the model learns: the shared polyp split
(the segmenter and the polyp detector must hold out the same frames) and the simulated lung opacity."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("cv2")

from training.train_unet import TASKS, augment, simulate_opacity  # noqa: E402
from training.yolo_data import seeded_split  # noqa: E402


def _lung_phantom(n: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """Dark lungs (grey 40) on a bright body (grey 180); mask 1 = lung."""
    import cv2

    img = np.full((n, n, 3), 180, np.uint8)
    msk = np.zeros((n, n), np.uint8)
    for cx in (n // 3, 2 * n // 3):
        cv2.ellipse(msk, (cx, n // 2), (n // 8, n // 3), 0, 0, 360, 1, -1)
    img[msk == 1] = 40
    return img, msk


def test_simulated_opacity_whitens_only_inside_the_lung():
    img, msk = _lung_phantom()
    rng = np.random.default_rng(3)
    outs = [simulate_opacity(img, msk, rng) for _ in range(20)]
    for out in outs:
        assert out.shape == img.shape and out.dtype == np.uint8
        outside = msk == 0
        # the soft blob is confined to the lung: body pixels do not change by more than rounding
        assert np.abs(out[outside].astype(int) - img[outside].astype(int)).max() <= 1
        assert (out[msk == 1] >= img[msk == 1]).all()  # only brighter, never darker
    gains = [float(o[msk == 1].mean()) - 40.0 for o in outs]
    assert max(gains) > 10, "no sample made the lung noticeably opaque"


def test_lung_augmentation_keeps_the_mask_and_applies_opacity_sometimes():
    img, msk = _lung_phantom(256)
    task = dict(TASKS["lung"], opacity_p=1.0, rot=0.0, scale=(1.0, 1.0))
    rng = np.random.default_rng(0)
    out_img, out_msk = augment(img, msk, [], 256, task, rng)
    assert out_img.shape == (256, 256, 3) and out_msk.shape == (256, 256)
    assert set(np.unique(out_msk)) <= {0, 1}
    assert abs(int(out_msk.sum()) - int(msk.sum())) < 0.1 * msk.sum()  # the warp keeps the lung (shift <= 8 %)


def test_bundled_polyp_models_hold_out_the_same_frames():
    """The polyp U-Net and the polyp detector were validated on the same held-out frames (so the
    detector-prompted Dice in polyp_unet.md is on frames neither model saw), and the training script
    reproduces that split."""
    torch = pytest.importorskip("torch")
    from pathlib import Path

    from experts.weights import bundled

    if not bundled("polyp_unet.pt").exists() or not bundled("polyp_yolo.pt").exists():
        pytest.skip("bundled polyp weights are missing")
    unet = torch.load(bundled("polyp_unet.pt"), map_location="cpu", weights_only=True)
    yolo = torch.load(bundled("polyp_yolo.pt"), map_location="cpu", weights_only=True)
    unet_val = {Path(n).stem for n in unet["val_files"]}
    yolo_val = {Path(n).stem for n in yolo["train"]["val"]}
    assert len(unet_val) == 33 and unet_val == yolo_val
    assert TASKS["polyp"]["split"] == "detector"
    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "endotect_polyps"
    if not root.exists():
        return
    pos = sorted(q.name for q in (root / "images").glob("*.jpg"))
    neg = sorted(q.name for q in (root / "negatives" / "images").glob("*.jpg"))
    (tr_p, va_p), (tr_n, va_n) = seeded_split(pos, 0.2, 0), seeded_split(neg, TASKS["polyp"]["neg_val_frac"], 0)
    assert {Path(n).stem for n in va_p + va_n} == unet_val
    assert not set(tr_p) & set(va_p) and not set(tr_n) & set(va_n)
