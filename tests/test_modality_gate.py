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
def gate_data():
    """``training/gate_data.py``: the gate's data recipe, split and transforms."""
    sys.path.insert(0, str(ROOT / "training"))
    try:
        import gate_data
    finally:
        sys.path.remove(str(ROOT / "training"))
    return gate_data


@pytest.fixture(scope="module")
def test_sources(gate_data) -> list:
    """The gate's test groups: held out from training (seed 0) and not used to tune its refusal limits."""
    _, val = gate_data.split_groups(gate_data.gather_sources(SHARED, 0), 0, 0.25)
    return gate_data.split_tune_test(val, 0)[1]


@pytest.fixture(scope="module")
def held_out(test_sources) -> dict[str, Path]:
    """First test file of each dev source."""
    out: dict[str, Path] = {}
    for s in test_sources:
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


# --- knowing when it does not know (issue 15) -------------------------------------------------------------

TOOL_KINDS = ("chest_xray", "endoscopy", "blood_smear")  # the kinds that diagnosis tools accept


def _routed(gate, rgb: np.ndarray) -> str | None:
    """The kind whose diagnosis tools the gate lets this image reach, or None (withheld)."""
    from experts.imaging import StudyImage
    from tools.common import ImageMeta

    meta = ImageMeta(role="current", source="t.png", format="png", width=rgb.shape[1], height=rgb.shape[0], channels=3)
    out = gate.predict(StudyImage(pixels=rgb, meta=meta))
    return out.label if out.trusted and out.label != "other" else None


@pytest.mark.parametrize("origin", ["bccd", "endotect", "hannover_png", "kermany"])
def test_transformed_test_images_route_to_their_kind_or_are_withheld(gate, gate_data, test_sources, origin) -> None:
    """Every transform a file may go through (grey, inverted, cropped, rotated, JPEG, 16-bit, resized,
    blurred) either keeps the image's kind or withholds the tools: never another kind's tools."""
    sources = [s for s in test_sources if s.origin == origin][:3]
    rng = np.random.default_rng(5)
    wrong, routed = [], 0
    for s in sources:
        base = s.load(None)
        for name, fn in gate_data.TRANSFORMS.items():
            kind = _routed(gate, fn(base, rng))
            routed += kind == s.kind
            if kind not in (s.kind, None):
                wrong.append((s.group, name, kind))
        assert _routed(gate, base) == s.kind, s.group  # the untouched image is routed
    assert not wrong
    assert routed >= len(sources) * len(gate_data.TRANSFORMS) // 2  # the gate does not simply refuse everything


def test_grayscale_smears_never_reach_the_cxr_classifier(assistant, test_sources, tmp_path) -> None:
    """The issue's case: a blood smear converted to grey was read as a chest X-ray (p=0.74) and the CXR
    classifier answered 'bacterial pneumonia'.  Through the real tool boundary, none of the test smears
    in grey reaches the classifier."""
    from PIL import Image

    from agent.boundary.toolset import invoke
    from tools.classification import ClassifyRequest, ImageInfoRequest
    from tools.errors import WrongImageKindError

    smears = [s for s in test_sources if s.origin == "bccd"][:12]
    assert len(smears) >= 8
    for s in smears:
        path = tmp_path / f"{Path(s.group).stem}_grey.png"
        Image.open(s.path).convert("L").save(path)
        session = assistant.new_session()
        session.load("current", path)
        info = invoke(session, "image_info", ImageInfoRequest())
        assert not (info.kind == "chest_xray" and info.kind_trusted), (s.group, info.kind_probabilities)
        with pytest.raises(WrongImageKindError):
            invoke(session, "classify", ClassifyRequest(task="cxr_pneumonia"))


def test_held_out_photographs_reach_no_diagnosis_tool(gate, gate_data, test_sources) -> None:
    """Real non-medical photographs never used for training or tuning, as they are and in grey."""
    photos = [s for s in test_sources if s.origin in gate_data.PHOTO_ORIGINS]
    assert len(photos) >= 5
    reached = [(s.group, view, k) for s in photos
               for view, rgb in (("original", s.load(None)), ("grayscale", gate_data.to_grey(s.load(None))))
               if (k := _routed(gate, rgb)) is not None]
    assert not reached


def test_an_image_the_gate_does_not_trust_gets_no_diagnosis(gate, gate_data, assistant, test_sources, tmp_path
                                                             ) -> None:
    """The first transformed test image whose verdict the gate does not trust (it looks like a kind with
    tools, but is unlike that kind's training images or the margin is low): ``image_info`` says what it
    looks like and which tools were withheld, the tools refuse it, and ``ask`` runs none of them."""
    from PIL import Image

    from agent.boundary.toolset import invoke
    from experts.imaging import StudyImage
    from tools.classification import ClassifyRequest, ImageInfoRequest
    from tools.common import ImageMeta
    from tools.detection import DetectRequest
    from tools.errors import WrongImageKindError

    rng = np.random.default_rng(3)
    found = None
    for s in test_sources:
        for name in ("cropped", "rotated90", "blurred", "grayscale", "downsized"):
            rgb = gate_data.TRANSFORMS[name](s.load(None), rng)
            meta = ImageMeta(role="current", source="t.png", format="png", width=rgb.shape[1], height=rgb.shape[0],
                             channels=3)
            out = gate.predict(StudyImage(pixels=rgb, meta=meta))
            if not out.trusted and out.label in TOOL_KINDS:
                found = rgb
                break
        if found is not None:
            break
    if found is None:
        pytest.skip("the gate trusts every transformed test image it was shown here")
    path = tmp_path / "unsure.png"
    Image.fromarray(found).save(path)
    session = assistant.new_session()
    session.load("current", path)
    info = invoke(session, "image_info", ImageInfoRequest())
    assert not info.kind_trusted and info.kind_doubt and info.withheld_tools
    request = {"chest_xray": ("classify", ClassifyRequest(task="cxr_pneumonia")),
               "endoscopy": ("detect", DetectRequest(target="polyp")),
               "blood_smear": ("count", DetectRequest(target="blood_cells"))}[info.kind]
    with pytest.raises(WrongImageKindError, match="withheld"):
        invoke(session, *request)
    question = {"chest_xray": "Is there pneumonia?", "endoscopy": "How many polyps are there?",
                "blood_smear": "How many white blood cells are there?"}[info.kind]
    r = assistant.ask(session, question)
    assert r.abstained
    assert [c.name for c in r.tool_calls] == ["image_info"]
    assert "looks most like" in r.answer and "withheld" in r.answer


def test_turned_chest_films_are_withheld_and_upright_ones_are_not(gate, test_sources) -> None:
    """An upside-down pneumonia film had been read as pneumonia at 95 %: a chest film whose turned copy fits
    the gate's chest X-rays better (TURN_MARGIN) is withheld with the angle; upright films are not (measured
    1 false flag in 162, experts/weights/modality_gate.md). Here on the gate's own test groups."""
    from experts.imaging import StudyImage
    from tools.common import ImageMeta

    films = [s for s in test_sources if s.origin in ("kermany", "hannover_png")][:16]
    assert len(films) >= 8
    upright_doubted, turned_caught, turned_total = 0, 0, 0
    for s in films:
        rgb = s.load(None)
        for k in (0, 1, 2, 3):
            img = np.ascontiguousarray(np.rot90(rgb, k))
            meta = ImageMeta(role="current", source="t.png", format="png", width=img.shape[1], height=img.shape[0],
                             channels=3)
            out = gate.predict(StudyImage(pixels=img, meta=meta))
            if k == 0:
                upright_doubted += "turned" in (out.doubt or "")
            else:
                turned_total += 1
                turned_caught += not out.trusted or out.label != "chest_xray"
                if "turned" in (out.doubt or ""):
                    assert f"rotated by {(360 - 90 * k) % 360} degrees" in out.doubt
    assert upright_doubted <= 1
    assert turned_caught >= 0.75 * turned_total  # all 59 test films: 159 of 177 turns (90 %); these 16: 37 of 48
