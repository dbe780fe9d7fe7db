"""Closed vocabularies shared by every contract: image kinds, detection targets, tasks."""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "ImageKind",
    "IMAGE_KINDS",
    "ImageRole",
    "DetectTarget",
    "SegmentTarget",
    "ClassifyTask",
    "TARGET_KINDS",
    "CLASSIFY_TASK_KINDS",
    "BLOOD_CLASSES",
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

DetectTarget = Literal["blood_cells", "polyp"]
"""What a detector looks for.  ``blood_cells`` yields the classes RBC, WBC and Platelets."""

SegmentTarget = Literal["polyp", "lung", "prompt"]
"""What a segmenter outlines.  ``prompt`` means: whatever the box or points select."""

ClassifyTask = Literal["cxr_pneumonia", "image_kind"]
"""``cxr_pneumonia``: normal / bacterial / viral pneumonia on a chest X-ray;
``image_kind``: the modality gate."""

BLOOD_CLASSES: tuple[str, ...] = ("RBC", "WBC", "Platelets")

TARGET_KINDS: dict[str, tuple[str, ...]] = {
    "blood_cells": ("blood_smear",),
    "polyp": ("endoscopy",),
    "lung": ("chest_xray",),
    "prompt": IMAGE_KINDS,
}
"""The image kinds each detection or segmentation target is valid for."""

CLASSIFY_TASK_KINDS: dict[str, tuple[str, ...]] = {
    "cxr_pneumonia": ("chest_xray",),
    "image_kind": IMAGE_KINDS,
}
