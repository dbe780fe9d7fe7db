"""Aligning a prior study onto the current one (pure functions over arrays; OpenCV does the math).

Method ``orb-ecc-affine-v1``, on grey images shrunk to ``work_size`` (each by its own factor, so
studies of different pixel sizes meet at a common scale) and equalised with CLAHE (exposure):

1. **Features**: ORB key points at ``feature_size`` (AKAZE if ORB matches nothing), Lowe's ratio
   test, and *sequential* RANSAC similarity fits (``cv2.estimateAffinePartial2D``): the best model,
   then a second one on what it left out -- a large textured finding that grew forms a consensus of
   its own that can outnumber the background's.
2. **Intensity refinement**: ``cv2.findTransformECC`` (affine, pyramid 1/4-1/2-1) from each feature
   model; when that model is strong (>= 3x ``min_inliers``) ECC may move its corners at most
   ``max_refine_px`` (ECC fits every pixel, so a changed finding pulls it).
3. **Low texture** (chest films: anatomy and devices change, key points rarely agree): an exhaustive
   shift x scale search with ``cv2.matchTemplate`` at ``coarse_size`` px, plus the "stretch onto the
   current frame" guess, each refined by ECC.
4. **Choice by area**: the candidate whose median tile NCC (6x6 tiles of the overlap) is highest, so
   what agrees over most of the image wins; affine results with strong shear or anisotropic scale
   are dropped.  Refused (``success=False`` + ``reason``) when the global NCC after alignment is
   below ``min_ncc_after``, the overlap is small, or scale / rotation are implausible.
5. The working-size matrix is mapped back: ``M_full = S_cur^-1 . M_work . S_prior``.

Conventions: ``matrix`` is a 2x3 affine mapping a **prior pixel (x, y) to a current pixel**
(``[x', y'] = A [x, y] + t``), original-image pixels, origin top-left, x right, y down.
``rotation_deg`` is that of the closest similarity, counter-clockwise on screen for a positive angle
(as ``cv2.getRotationMatrix2D``); ``scale`` is ``sqrt(|det A|)``.  NCC is computed on the CLAHE'd,
Gaussian-blurred (``score_sigma``) working images inside the overlap: ``ncc_before`` for the prior
simply stretched onto the current frame (what a reader sees side by side), ``ncc_after`` warped.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from .affine import (
    compose,
    corner_error,
    decompose,
    invert,
    ncc,
    normalise_exposure,
    scale_matrix,
    shrink,
    stretch_matrix,
    to_gray,
    transform_points,
    warp_image,
    warp_mask,
)

__all__ = [
    "RegistrationParams",
    "RegistrationOutcome",
    "register",
    "to_gray",
    "normalise_exposure",
    "decompose",
    "ncc",
    "warp_image",
    "warp_mask",
    "transform_points",
    "stretch_matrix",
    "corner_error",
    "METHOD_ID",
]

log = logging.getLogger(__name__)

METHOD_ID = "orb-ecc-affine-v1"


@dataclass(frozen=True)
class RegistrationParams:
    """Tunable settings of :func:`register` (defaults calibrated on Hannover CXR pairs and the
    known-transform set, see ``eval_scenarios/bench_comparison.py``)."""

    work_size: int = 384  # longer side of the working images (ECC, NCC), pixels
    feature_size: int = 256  # longer side for key points (ORB finds more stable corners there on CXR)
    n_features: int = 3000
    ratio: float = 0.8  # Lowe's ratio test
    ransac_px: float = 2.0  # RANSAC reprojection threshold at feature size
    min_inliers: int = 12  # fewer: the feature estimate is not trusted
    max_hypotheses: int = 2  # sequential RANSAC models (background, and a changed finding's)
    max_refine_px: float = 3.0  # with >= 3x min_inliers, ECC may move the corners this far (working px)
    ecc_levels: tuple[float, ...] = (0.25, 0.5, 1.0)  # pyramid, fractions of the working size
    ecc_iters: int = 60
    ecc_eps: float = 1e-5
    coarse_size: int = 96  # longer side for the exhaustive shift x scale search
    coarse_margin: float = 0.15  # border of the prior left out of the coarse template
    score_sigma: float = 2.0  # Gaussian blur (working pixels) before NCC: anatomy, not noise
    min_ncc_after: float = 0.40  # below: refused (95.7% of dev Hannover pairs pass; 7% of ones shifted by 5% do)
    min_overlap: float = 0.35  # fraction of the current image the warped prior must cover
    scale_range: tuple[float, float] = (0.5, 2.0)
    max_rotation_deg: float = 45.0
    max_anisotropy: float = 0.25  # singular-value ratio of the affine part beyond 1 + this: rejected


@dataclass
class RegistrationOutcome:
    """Result of :func:`register`.  ``matrix`` maps prior pixels to current pixels (2x3)."""

    matrix: np.ndarray
    method: str
    shift_px: tuple[float, float]
    rotation_deg: float
    scale: float
    ncc_before: float
    ncc_after: float
    overlap: float
    inliers: int
    matches: int
    success: bool
    reason: str | None = None
    elapsed_ms: float = 0.0
    notes: list[str] = field(default_factory=list)


# ---- estimation --------------------------------------------------------------------------------

def _features(prior: np.ndarray, current: np.ndarray, p: RegistrationParams
              ) -> tuple[list[tuple[np.ndarray, int]], int, str]:
    """RANSAC similarity hypotheses from key-point matches: ([(M, inliers)], matches, detector).

    Sequential RANSAC: after the best model, its inliers are removed and a second model is sought,
    because a large textured finding that grew (or moved) forms a consensus of its own that can
    outnumber the background's; :func:`register` decides between them by area."""
    import cv2

    detectors = (("orb", lambda: cv2.ORB_create(nfeatures=p.n_features, fastThreshold=7, edgeThreshold=15)),
                 ("akaze", lambda: cv2.AKAZE_create(threshold=5e-4)))
    for name, make in detectors:
        det = make()
        kp1, d1 = det.detectAndCompute(prior, None)
        kp2, d2 = det.detectAndCompute(current, None)
        if d1 is None or d2 is None or len(kp1) < 3 or len(kp2) < 3:
            continue
        pairs = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(d1, d2, k=2)
        good = [m[0] for m in pairs if len(m) == 2 and m[0].distance < p.ratio * m[1].distance]
        if len(good) < 4:
            continue  # AKAZE only when ORB found nothing to match (very smooth images)
        src = np.float32([kp1[m.queryIdx].pt for m in good])
        dst = np.float32([kp2[m.trainIdx].pt for m in good])
        hyps: list[tuple[np.ndarray, int]] = []
        for _ in range(p.max_hypotheses):
            if len(src) < max(4, p.min_inliers):
                break
            m, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=p.ransac_px,
                                                 maxIters=4000, confidence=0.995, refineIters=20)
            n_in = int(inl.sum()) if inl is not None else 0
            if m is None or n_in < (p.min_inliers if not hyps else max(p.min_inliers, hyps[0][1] // 5)):
                break
            hyps.append((m.astype(np.float64), n_in))
            keep = inl.ravel() == 0
            src, dst = src[keep], dst[keep]
        return hyps, len(good), name
    return [], 0, "none"


def _ecc(prior: np.ndarray, current: np.ndarray, init: np.ndarray, p: RegistrationParams,
         levels: tuple[float, ...] | None = None) -> np.ndarray | None:
    """ECC affine refinement, coarse to fine over ``levels`` (fractions of the working size;
    default ``p.ecc_levels``); ``init`` and the result map prior -> current working pixels.
    None when ECC does not converge."""
    import cv2

    # ECC's warp maps template (current) coordinates to input (prior) coordinates; pixels of the
    # prior that fall outside it are masked out by ECC itself.
    warp = invert(init).astype(np.float32)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, p.ecc_iters, p.ecc_eps)
    try:
        for f in levels or p.ecc_levels:
            if f < 1.0:
                cur = cv2.resize(current, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
                pri = cv2.resize(prior, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
            else:
                cur, pri = current, prior
            w = warp.copy()
            w[:, 2] *= f
            _, w = cv2.findTransformECC(cur, pri, w, cv2.MOTION_AFFINE, crit, None, 5)
            w[:, 2] /= f
            warp = w
    except cv2.error:
        return None
    if not np.all(np.isfinite(warp)) or abs(np.linalg.det(warp[:, :2].astype(np.float64))) < 1e-3:
        return None
    return invert(warp.astype(np.float64))


def _coarse_search(prior: np.ndarray, current: np.ndarray, p: RegistrationParams, keep: int = 2) -> list[np.ndarray]:
    """Exhaustive shift x scale search at ``p.coarse_size`` px: the central part of the prior
    (stretched onto the current frame, then scaled) is slid over the current image with
    ``cv2.matchTemplate`` (normalised correlation).  Returns the ``keep`` best similarity starts,
    as working-size prior -> current matrices."""
    import cv2

    f = p.coarse_size / max(current.shape)
    cur = cv2.resize(current, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
    hc, wc = cur.shape
    iso = math.sqrt((current.shape[0] / prior.shape[0]) * (current.shape[1] / prior.shape[1]))
    m0 = p.coarse_margin
    y0, y1 = int(prior.shape[0] * m0), int(prior.shape[0] * (1 - m0))
    x0, x1 = int(prior.shape[1] * m0), int(prior.shape[1] * (1 - m0))
    crop = prior[y0:y1, x0:x1]
    pad = int(0.25 * max(hc, wc))
    big = cv2.copyMakeBorder(cur, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=int(np.median(cur)))
    found: list[tuple[float, np.ndarray]] = []
    for s in np.geomspace(p.scale_range[0] * 1.4, p.scale_range[1] / 1.4, 9):
        k = f * iso * s  # coarse current pixels per prior working pixel
        tw, th = int(round(crop.shape[1] * k)), int(round(crop.shape[0] * k))
        if tw < 8 or th < 8 or tw >= big.shape[1] or th >= big.shape[0]:
            continue
        tmpl = cv2.resize(crop, (tw, th), interpolation=cv2.INTER_AREA)
        res = cv2.matchTemplate(big, tmpl, cv2.TM_CCOEFF_NORMED)
        _, val, _, (bx, by) = cv2.minMaxLoc(res)
        # prior working (x0, y0) lands at coarse (bx - pad, by - pad) -> working current pixels
        tx = (bx - pad) / f - x0 * iso * s
        ty = (by - pad) / f - y0 * iso * s
        found.append((float(val), np.array([[iso * s, 0.0, tx], [0.0, iso * s, ty]])))
    found.sort(key=lambda t: -t[0])
    return [m for _, m in found[:keep]]


def _anisotropic(m: np.ndarray, limit: float) -> bool:
    a = np.asarray(m)[:, :2]
    u, s, vt = np.linalg.svd(a)
    if s[1] <= 0:
        return True
    return bool(s[0] / s[1] - 1.0 > limit)


DARK = 10  # grey level (after exposure normalisation) under which a pixel is background


def _score(prior: np.ndarray, current: np.ndarray, m: np.ndarray) -> tuple[float, float]:
    """(NCC inside the overlap, overlap fraction of the current frame) for a working-size matrix."""
    shape = current.shape
    warped = warp_image(prior, m, shape)
    valid = warp_image(np.full(prior.shape, 255, np.uint8), m, shape, nearest=True) > 0
    # one pixel in from the edge: interpolation mixes in the black border there
    import cv2

    valid = cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    overlap = float(valid.mean())
    # pixels black in both (an endoscope's frame mask, the air around a film) agree whatever the images show:
    # counted, they let unrelated endoscopy frames pass (22 of 25 random pairs accepted; 10 of 25 without them)
    valid &= (warped > DARK) | (current > DARK)
    if valid.sum() < 64:
        return -1.0, overlap
    return ncc(warped, current, valid), overlap


def _feature_starts(a: np.ndarray, b: np.ndarray, p: RegistrationParams
                    ) -> tuple[list[tuple[np.ndarray, int]], int, str]:
    """Feature hypotheses at ``p.feature_size``, returned as working-size matrices."""
    import cv2

    r = min(1.0, p.feature_size / max(max(a.shape), max(b.shape)))
    fa = cv2.resize(a, None, fx=r, fy=r, interpolation=cv2.INTER_AREA) if r < 1 else a
    fb = cv2.resize(b, None, fx=r, fy=r, interpolation=cv2.INTER_AREA) if r < 1 else b
    hyps, matches, name = _features(fa, fb, p)
    up, down = scale_matrix(1.0 / r)[:2], scale_matrix(r)[:2]
    return [(compose(up, compose(m, down)), n) for m, n in hyps], matches, name


def _block_score(prior: np.ndarray, current: np.ndarray, m: np.ndarray, grid: int = 6) -> float:
    """Median NCC over a ``grid`` x ``grid`` tiling of the overlap (tiles at least 60 % covered):
    how much of the *area* agrees, so a changed finding cannot outvote the rest of the image."""
    shape = current.shape
    warped = warp_image(prior, m, shape)
    valid = warp_image(np.full(prior.shape, 255, np.uint8), m, shape, nearest=True) > 0
    h, w = shape
    scores = []
    for i in range(grid):
        for j in range(grid):
            sl = (slice(i * h // grid, (i + 1) * h // grid), slice(j * w // grid, (j + 1) * w // grid))
            v = valid[sl]
            if v.mean() >= 0.6 and float(current[sl][v].std()) > 2.0:
                scores.append(ncc(warped[sl], current[sl], v))
    return float(np.median(scores)) if scores else -1.0


def _feature_candidates(a: np.ndarray, b: np.ndarray, p: RegistrationParams, notes: list[str]
                        ) -> tuple[list[tuple[str, np.ndarray]], int, int]:
    """Feature models and their ECC refinements: (candidates, inliers of the best model, matches)."""
    hyps, matches, detector = _feature_starts(a, b, p)
    out: list[tuple[str, np.ndarray]] = []
    for k, (feat, n_in) in enumerate(hyps):
        tag = f"{detector}{'' if k == 0 else f'#{k + 1}'}"
        out.append((f"{tag}-ransac-similarity", feat))
        refined = _ecc(a, b, feat, p)
        if refined is None:
            continue
        moved = corner_error(refined, feat, a.shape)
        if n_in >= 3 * p.min_inliers and moved > p.max_refine_px:
            notes.append(f"ECC moved {moved:.1f} px from {n_in} RANSAC inliers: refinement not used")
        else:
            out.append((f"{tag}+ecc-affine", refined))
    if not hyps:
        notes.append(f"fewer than {p.min_inliers} feature inliers: no feature estimate")
    return out, (hyps[0][1] if hyps else 0), matches


def _intensity_candidates(a: np.ndarray, b: np.ndarray, sa: np.ndarray, sb: np.ndarray, stretch: np.ndarray,
                          p: RegistrationParams) -> list[tuple[str, np.ndarray]]:
    """Coarse search + stretch starts, ECC on the coarse levels; the two best (by NCC) are kept
    with, for ECC runs, their finish at full working size."""
    coarse_levels = tuple(f for f in p.ecc_levels if f < 1.0)
    trials: list[tuple[float, str, np.ndarray]] = []
    for start in _coarse_search(a, b, p) + [stretch]:
        name = "stretch" if start is stretch else "coarse"
        trials.append((_score(sa, sb, start)[0], f"{name}-similarity", start))
        m = _ecc(a, b, start, p, coarse_levels) if coarse_levels else start
        if m is not None and not _anisotropic(m, p.max_anisotropy):
            trials.append((_score(sa, sb, m)[0], f"{name}+ecc-affine", m))
    trials.sort(key=lambda t: -t[0])
    out: list[tuple[str, np.ndarray]] = []
    for _, name, m in trials[:2]:
        out.append((name, m))
        refined = _ecc(a, b, m, p, (1.0,)) if "ecc" in name else None
        if refined is not None:
            out.append((name, refined))
    return out


def register(
    prior_pixels: np.ndarray, current_pixels: np.ndarray, params: RegistrationParams | None = None
) -> RegistrationOutcome:
    """Align the prior onto the current image.  Never raises for bad alignment: returns
    ``success=False`` with a ``reason``.  Inputs: uint8 (H, W) grey or (H, W, 3) RGB, any sizes."""
    import cv2

    p = params or RegistrationParams()
    t0 = time.perf_counter()
    g_prior, s_prior = shrink(to_gray(prior_pixels), p.work_size)
    g_cur, s_cur = shrink(to_gray(current_pixels), p.work_size)
    a, b = normalise_exposure(g_prior), normalise_exposure(g_cur)
    sa, sb = cv2.GaussianBlur(a, (0, 0), p.score_sigma), cv2.GaussianBlur(b, (0, 0), p.score_sigma)
    stretch = stretch_matrix(a.shape, b.shape)
    ncc_before, _ = _score(sa, sb, stretch)
    notes: list[str] = []
    candidates, inliers, matches = _feature_candidates(a, b, p, notes)
    if inliers < 3 * p.min_inliers:  # weak texture or big anatomy change
        candidates += _intensity_candidates(a, b, sa, sb, stretch, p)
    # choose by area agreement (median tile NCC); report the global NCC of the choice
    best_name, best_m, best_key, best_overlap = "none", stretch, -np.inf, 0.0
    for name, m in candidates:
        if "affine" in name and _anisotropic(m, p.max_anisotropy):
            notes.append(f"{name}: shear/anisotropic scale beyond {p.max_anisotropy:.0%}, not used")
            continue
        overlap = _score(sa, sb, m)[1]
        key = _block_score(sa, sb, m) if overlap >= p.min_overlap else -np.inf
        if key > best_key + 1e-6:
            best_name, best_m, best_key, best_overlap = name, m, key, overlap
    best_ncc = _score(sa, sb, best_m)[0] if best_name != "none" else ncc_before

    full = compose(scale_matrix(1.0 / s_cur)[:2], compose(best_m, scale_matrix(s_prior)[:2]))
    dx, dy, rot, scale = decompose(full)
    work_scale = decompose(best_m)[3]
    reason = None
    if best_name == "none":
        reason = "no transform was found (too few matching features, and intensity alignment did not converge)"
    elif best_ncc < p.min_ncc_after:
        reason = (f"the images do not line up (normalised cross-correlation {best_ncc:.2f} after alignment, "
                  f"below {p.min_ncc_after:.2f}): they may show different patients, views or body parts")
    elif not (p.scale_range[0] <= work_scale <= p.scale_range[1]):
        reason = f"implausible scale change x{work_scale:.2f} between the studies"
    elif abs(rot) > p.max_rotation_deg:
        reason = f"implausible rotation of {rot:.0f} degrees between the studies"
    log.debug("registration %s ncc %.3f -> %.3f (%s)", best_name, ncc_before, best_ncc, reason or "ok")
    return RegistrationOutcome(
        matrix=full, method=best_name, shift_px=(dx, dy), rotation_deg=rot, scale=scale,
        ncc_before=float(ncc_before), ncc_after=float(best_ncc), overlap=best_overlap, inliers=inliers,
        matches=matches, success=reason is None, reason=reason, elapsed_ms=(time.perf_counter() - t0) * 1000,
        notes=notes,
    )
