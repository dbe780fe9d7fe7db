"""Why two studies cannot be compared as given, decided before and around the alignment of ``compare_with_prior``.

Each check returns the reason to refuse (or a caveat), None when the pair passes:

* :func:`order_refusal`: a "prior" dated after the current study (every change would run backwards in time);
* :func:`same_picture` / :func:`copy_refusal`: the current image given again as its own prior, or a re-saved copy
  (frames of one live video are exempt: a still scene is not a copy);
* :func:`mirror_refusal`: a prior that lines up far better mirrored left to right (its sides would be swapped);
* :func:`mm_spacings`: the two pixel spacings, or none when they contradict the alignment's scale;
* :func:`projection_caveat`: DICOM films of different projections (AP vs PA).
"""

from __future__ import annotations

import math

import numpy as np

from experts.imaging import StudyImage
from experts.registration import RegistrationOutcome, register, to_gray

__all__ = ["SAME_PICTURE_NCC", "MIRROR_MARGIN", "SPACING_SCALE_RANGE", "order_refusal", "same_picture", "copy_refusal",
           "mirror_refusal", "mm_spacings", "projection_caveat"]

SAME_PICTURE_NCC = 0.98  # measured: 34 Hannover prior/current pairs (same size) at most 0.725; a JPEG q70 copy 0.993
MIRROR_MARGIN = 0.25  # measured: 40 Hannover prior/current pairs, mirrored prior at most 0.16 better; current mirrored 0.46
SPACING_SCALE_RANGE = (0.75, 1.33)  # mm per structure, prior vs current, beyond AP/PA magnification differences


def _one_video(prior: StudyImage, current: StudyImage) -> bool:
    return bool(current.video_key) and current.video_key == prior.video_key


def order_refusal(prior: StudyImage, current: StudyImage, days: int | None) -> str | None:
    if days is None or days >= 0:
        return None
    return (f"the 'prior' is dated {prior.meta.study_date}, {-days} days after the current study "
            f"({current.meta.study_date}): it is the newer one; give the older study as the prior (or correct the dates)")


def same_picture(a: np.ndarray, b: np.ndarray) -> float | None:
    """The pixel correlation of two images of one size when they are one picture (identical, or a re-saved or
    re-encoded copy: >= :data:`SAME_PICTURE_NCC` without any alignment), else None.  Two studies taken at
    different times never correlate that closely unaligned (patient position, exposure and noise differ)."""
    if a.shape[:2] != b.shape[:2]:
        return None
    ga, gb = to_gray(a)[::2, ::2].astype(np.float64), to_gray(b)[::2, ::2].astype(np.float64)
    if np.array_equal(ga, gb):
        return 1.0
    da, db = ga - ga.mean(), gb - gb.mean()
    denom = float(np.sqrt((da * da).sum() * (db * db).sum()))
    ncc = float((da * db).sum() / denom) if denom > 0 else 0.0
    return ncc if ncc >= SAME_PICTURE_NCC else None


def copy_refusal(prior: StudyImage, current: StudyImage) -> str | None:
    same = None if _one_video(prior, current) else same_picture(prior.pixels, current.pixels)
    if same is None:
        return None
    return (f"the prior is the same picture as the current image (pixel correlation {same:.3f}: the same file or a "
            "re-saved copy), so nothing can be compared: give the older study as the prior")


def mirror_refusal(prior: StudyImage, current: StudyImage, reg: RegistrationOutcome) -> str | None:
    """One more registration, of the prior mirrored left to right (not for two frames of one video)."""
    if _one_video(prior, current):
        return None
    flipped = register(np.ascontiguousarray(prior.pixels[:, ::-1]), current.pixels)
    if not (flipped.success and flipped.ncc_after > reg.ncc_after + MIRROR_MARGIN):
        return None
    return (f"the prior lines up far better mirrored left to right (correlation {flipped.ncc_after:.2f}, against "
            f"{reg.ncc_after:.2f} as given): it looks like a flipped image, so its left and right would be swapped; "
            "give the prior as acquired")


def mm_spacings(prior: tuple[float, float] | None, current: tuple[float, float] | None, scale: float
                ) -> tuple[tuple[float, float] | None, tuple[float, float] | None, str | None]:
    """(prior spacing, current spacing, caveat) for areas in mm².  The registration scale (current pixels per prior
    pixel) and the two spacings must agree: the same anatomy is about as many mm in both.  When they do not (a
    spacing tag left unchanged after resampling), one of them is wrong and neither is used."""
    if prior is None or current is None:
        return prior, current, None
    ratio = scale * math.sqrt(current[0] * current[1]) / math.sqrt(prior[0] * prior[1])
    if SPACING_SCALE_RANGE[0] <= ratio <= SPACING_SCALE_RANGE[1]:
        return prior, current, None
    return None, None, (f"pixel spacings ({prior[0]:g} x {prior[1]:g} mm prior, {current[0]:g} x {current[1]:g} mm "
                        f"current) disagree with the alignment's scale x{scale:.2f} (the same anatomy would be "
                        f"x{ratio:.2f} as large in mm): one spacing is wrong, so no areas in mm²")


def projection_caveat(prior: StudyImage, current: StudyImage) -> str | None:
    views = tuple(img.dicom_tags.get("ViewPosition", "").strip().upper() for img in (prior, current))
    if not all(views) or views[0] == views[1]:  # AP films magnify the heart and narrow the lungs' projected shape
        return None
    return (f"projections differ (prior {views[0]}, current {views[1]}): sizes and shapes change with the projection "
            f"alone, so read a change in area with caution")
