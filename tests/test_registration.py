"""Registration of a prior onto the current study, on real images with known transforms."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from eval_scenarios.comparison_sets import apply_exposure, hannover_pairs, similarity_about_center
from experts.registration import (
    RegistrationParams,
    corner_error,
    decompose,
    invert,
    register,
    transform_points,
    warp_image,
)

CXR = "hannover_cxr/png/c9280a30.png"
SMEAR = "bccd/images/BloodImage_00010.jpg"
POLYP = "endotect_polyps/images/003ab8b5-cf6d-442a-849d-80ddf0d1edaf.jpg"


def _rgb(path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return np.ascontiguousarray(img[..., ::-1])


def _prior_of(current: np.ndarray, angle: float, scale: float, shift: tuple[float, float],
              canvas: tuple[int, int] | None = None, exposure: tuple[float, float, float] = (1.2, 0.8, 10.0)
              ) -> tuple[np.ndarray, np.ndarray]:
    """The prior that ``true`` (prior -> current) maps onto ``current``, with an exposure change."""
    h, w = current.shape[:2]
    hp, wp = canvas or (h, w)
    true = similarity_about_center((hp, wp), (h, w), angle, scale, shift)
    prior = cv2.warpAffine(current, cv2.invertAffineTransform(true), (wp, hp))
    gain, gamma, offset = exposure
    prior = apply_exposure(prior, gain, gamma, offset, 2.0, np.random.default_rng(0))
    return prior, true


def test_decompose_matches_opencv_conventions():
    m = cv2.getRotationMatrix2D((100.0, 50.0), 7.0, 1.3)  # +7 deg = counter-clockwise on screen
    dx, dy, rot, scale = decompose(m)
    assert rot == pytest.approx(7.0, abs=1e-9)
    assert scale == pytest.approx(1.3, abs=1e-9)
    assert (dx, dy) == pytest.approx((m[0, 2], m[1, 2]))
    pts = np.array([[0.0, 0.0], [10.0, 20.0]])
    back = transform_points(invert(m), transform_points(m, pts))
    np.testing.assert_allclose(back, pts, atol=1e-9)


@pytest.mark.parametrize(
    "rel, angle, scale, shift",
    [
        (CXR, 0.0, 1.0, (23.0, -17.0)),  # pure shift, exposure change
        (CXR, 6.0, 1.0, (0.0, 0.0)),  # pure rotation
        (CXR, -4.0, 1.12, (-30.0, 12.0)),  # similarity
        (SMEAR, 9.0, 0.9, (15.0, 20.0)),
        (POLYP, -5.0, 1.08, (-20.0, 10.0)),
    ],
)
def test_known_transform_is_recovered(data_dir, rel, angle, scale, shift):
    current = _rgb(data_dir / rel)
    prior, true = _prior_of(current, angle, scale, shift)
    out = register(prior, current)
    assert out.success, out.reason
    assert corner_error(out.matrix, true, prior.shape) <= 2.0
    assert abs(out.rotation_deg - angle) <= 1.0
    assert out.scale == pytest.approx(scale, rel=0.01)
    assert out.ncc_after > out.ncc_before


def test_crop_of_other_size_and_exposure_is_recovered(data_dir):
    """The prior sees less (a crop) at another pixel size: features meet at a common scale."""
    current = _rgb(data_dir / CXR)
    h, w = current.shape[:2]
    prior, true = _prior_of(current, 3.0, 0.8, (10.0, -8.0), canvas=(int(h * 0.85), int(w * 0.8)),
                            exposure=(0.8, 1.3, -10.0))
    out = register(prior, current)
    assert out.success, out.reason
    assert corner_error(out.matrix, true, prior.shape) <= 2.0
    assert abs(out.rotation_deg - 3.0) <= 1.0


def test_warp_image_puts_prior_onto_current(data_dir):
    current = _rgb(data_dir / SMEAR)
    prior, true = _prior_of(current, 5.0, 1.0, (12.0, 7.0), exposure=(1.0, 1.0, 0.0))
    back = warp_image(prior, true, current.shape[:2])
    valid = warp_image(np.full(prior.shape[:2], 255, np.uint8), true, current.shape[:2], nearest=True) > 0
    valid = cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    err = np.abs(back.astype(np.int16) - current.astype(np.int16))[valid].mean()
    assert err < 6.0


def test_real_longitudinal_pair_aligns(data_dir):
    """Two films of one patient 2 days apart (Hannover, AP/AP): NCC rises well above the threshold."""
    row = hannover_pairs(data_dir)[0]
    png = data_dir / "hannover_cxr" / "png"
    a = cv2.imread(str(png / f"{row['prior_image']}.png"), cv2.IMREAD_GRAYSCALE)
    b = cv2.imread(str(png / f"{row['current_image']}.png"), cv2.IMREAD_GRAYSCALE)
    out = register(a, b)
    assert out.success, out.reason
    assert out.ncc_after >= RegistrationParams().min_ncc_after
    assert out.ncc_after > out.ncc_before + 0.1
    assert 0.7 < out.scale < 1.4 and abs(out.rotation_deg) < 15


def test_unrelated_image_is_not_aligned(data_dir):
    """A blood smear as 'prior' of a chest X-ray: no transform makes them correlate."""
    smear = _rgb(data_dir / SMEAR)
    cxr = _rgb(data_dir / CXR)
    out = register(smear, cxr)
    assert not out.success
    assert out.reason


def test_flat_image_is_refused_without_raising(data_dir):
    cxr = _rgb(data_dir / CXR)
    flat = np.full((300, 400, 3), 128, np.uint8)
    out = register(flat, cxr)
    assert not out.success
    assert math.isfinite(out.ncc_after)
