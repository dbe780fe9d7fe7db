"""Modality gate: DICOM tags first, then the bundled pixel model on real dev images.

Images: ../shared/data (BCCD MIT; EndoTect CC BY 4.0; Hannover CXR CC BY 3.0; Kermany CC BY 4.0),
scikit-image's retina photograph, pydicom's CT_small / MR_small test files (MIT).  Dev images are
taken from the groups that ``training/train_gate.py`` holds out (seed 0), so none was trained on
(except the retina photograph, the only real fundus image available, which the gate trains on).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = (ROOT / ".." / "shared" / "data").resolve()

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data (public dev images) is not present")



@pytest.fixture(scope="module")
def gate():
    from experts.modality_gate import ModalityGate

    g = ModalityGate()
    g.load()
    return g


@pytest.fixture(scope="module")
def held_out() -> dict[str, Path]:
    """First held-out file of each dev source (the gate's own seeded split)."""
    sys.path.insert(0, str(ROOT / "training"))
    try:
        from gate_data import gather_sources, split_groups
    finally:
        sys.path.remove(str(ROOT / "training"))
    _, val = split_groups(gather_sources(SHARED, 0), 0, 0.25)
    out: dict[str, Path] = {}
    for s in val:
        if s.path is not None and s.origin not in out:
            out[s.origin] = s.path
    return out


def _testfile(name: str) -> Path:
    """A pydicom / pydicom-data test file already on disk (never downloaded)."""
    sys.path.insert(0, str(ROOT / "training"))
    try:
        from gate_data import local_dicom_testfiles
    finally:
        sys.path.remove(str(ROOT / "training"))
    path = local_dicom_testfiles().get(name)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not on disk")
    return path


@pytest.mark.parametrize(
    "origin, kind",
    [("bccd", "blood_smear"), ("endotect", "endoscopy"), ("hannover_png", "chest_xray"), ("kermany", "chest_xray"),
     ("nih_cxr14_64", "chest_xray")],
)
def test_gate_labels_held_out_dev_images(gate, held_out, origin: str, kind: str) -> None:
    from experts.imaging import load_image

    img = load_image(held_out[origin])
    out = gate.predict(img)
    assert out.label == kind, (held_out[origin].name, out.probabilities)
    assert out.source == "pixels"
    assert out.calibrated is True
    assert out.probabilities[kind] > 0.5


def test_gate_labels_retina_as_fundus(gate) -> None:
    import skimage.data

    from experts.imaging import StudyImage
    from tools.common import ImageMeta

    rgb = skimage.data.retina()
    meta = ImageMeta(role="current", source="retina.jpg", format="jpeg", width=rgb.shape[1], height=rgb.shape[0],
                     channels=3)
    out = gate.predict(StudyImage(pixels=rgb, meta=meta))
    assert out.label == "fundus", out.probabilities
    # a smaller, rotated, dimmer copy is still a fundus photograph
    import cv2

    small = cv2.resize(rgb, (300, 300), interpolation=cv2.INTER_AREA)
    rot = cv2.warpAffine(small, cv2.getRotationMatrix2D((150, 150), 40, 1.0), (300, 300))
    dim = (rot.astype(np.float32) * 0.8).astype(np.uint8)
    assert gate.predict(StudyImage(pixels=dim, meta=meta)).label == "fundus"


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm"])
def test_ct_and_mr_dicoms_are_not_chest_xray(gate, name: str) -> None:
    from experts.imaging import StudyImage, load_image

    img = load_image(_testfile(name))
    out = gate.predict(img)
    assert out.label == "ct_mr" and out.source == "dicom"
    assert out.probabilities["chest_xray"] < 0.05
    # the pixels alone (tags stripped, e.g. a screenshot of the slice) must not say chest X-ray either
    bare = gate.predict(StudyImage(pixels=img.pixels, meta=img.meta))
    assert bare.source == "pixels"
    assert bare.label != "chest_xray", bare.probabilities


def test_chest_radiograph_dicom_is_chest_xray(gate) -> None:
    from experts.imaging import load_image

    out = gate.predict(load_image(_testfile("RG1_UNCR.dcm")))
    assert out.label == "chest_xray" and out.source == "dicom"


def test_probabilities_cover_every_kind_and_sum_to_one(gate, held_out) -> None:
    from experts.imaging import load_image
    from experts.weights import sha256_of
    from tools.kinds import IMAGE_KINDS

    out = gate.predict(load_image(held_out["bccd"]))
    assert tuple(out.probabilities) == IMAGE_KINDS
    assert abs(sum(out.probabilities.values()) - 1.0) < 1e-6
    assert all(0.0 <= v <= 1.0 for v in out.probabilities.values())
    assert out.provenance.weights_sha256 == sha256_of(gate.weights)
    assert out.provenance.backend == "gate"


def test_radiograph_without_body_part_is_judged_among_xray_kinds(gate, held_out) -> None:
    from experts.imaging import StudyImage, load_image

    img = load_image(held_out["hannover_png"])
    out = gate.predict(StudyImage(pixels=img.pixels, meta=img.meta, dicom_tags={"Modality": "DX"}))
    assert out.source == "pixels"
    assert out.label == "chest_xray"
    assert out.probabilities["ct_mr"] == 0.0 and out.probabilities["endoscopy"] == 0.0


@pytest.mark.parametrize(
    "tags, kind",
    [
        ({"Modality": "CR", "BodyPartExamined": "CHEST"}, "chest_xray"),
        ({"Modality": "DX", "BodyPartExamined": "HAND"}, "other"),
        ({"Modality": "DX", "SeriesDescription": "Thorax PA"}, "chest_xray"),
        ({"Modality": "CR"}, None),
        ({"Modality": "CT", "BodyPartExamined": "CHEST"}, "ct_mr"),
        ({"Modality": "MR"}, "ct_mr"),
        ({"Modality": "US"}, "other"),
        ({"Modality": "MG"}, "other"),
        ({"Modality": "SM"}, "blood_smear"),
        ({"Modality": "GM"}, "blood_smear"),
        ({"Modality": "ES"}, "endoscopy"),
        ({"Modality": "OP"}, "fundus"),
        ({"Modality": "OT"}, None),
        ({}, None),
    ],
)
def test_kind_from_dicom_truth_table(tags: dict[str, str], kind: str | None) -> None:
    from experts.modality_gate import kind_from_dicom

    assert kind_from_dicom(tags) == kind


def test_missing_weights_raise_unavailable(tmp_path: Path) -> None:
    from experts.modality_gate import ModalityGate
    from tools.errors import ExpertUnavailableError

    with pytest.raises(ExpertUnavailableError, match="train_gate"):
        ModalityGate(tmp_path / "none.npz").load()
