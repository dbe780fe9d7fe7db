"""Closed vocabularies shared by every contract: image kinds, image roles, classification tasks.

The detection / segmentation targets (their kinds, classes, units) are typed specs in :mod:`tools.targets`."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "ImageKind",
    "IMAGE_KINDS",
    "ImageRole",
    "ClassifyTask",
    "CLASSIFY_TASK_KINDS",
    "KIND_NAMES",
]

ImageKind = Literal["chest_xray", "endoscopy", "blood_smear", "fundus", "ct_mr", "other"]
"""What an image is: chest radiograph, colonoscopy/endoscopy frame, blood smear or other
microscopy, colour fundus photograph, a CT or MR slice, or anything else."""

IMAGE_KINDS: tuple[str, ...] = get_args(ImageKind)

KIND_NAMES: dict[str, str] = {
    "chest_xray": "a chest X-ray",
    "endoscopy": "an endoscopy/colonoscopy frame",
    "blood_smear": "a blood smear (microscopy)",
    "fundus": "a fundus photograph",
    "ct_mr": "a CT or MR slice",
    "other": "not a kind of image Osler has tools for",
}
"""Each image kind as the answers name it (with its article)."""

ImageRole = Literal["current", "prior"]
"""Which study of the session an image argument refers to."""

ClassifyTask = Literal["cxr_pneumonia", "image_kind"]
"""``cxr_pneumonia``: normal / bacterial / viral pneumonia on a chest X-ray;
``image_kind``: the modality gate."""

CLASSIFY_TASK_KINDS: dict[str, tuple[str, ...]] = {
    "cxr_pneumonia": ("chest_xray",),
    "image_kind": IMAGE_KINDS,
}
