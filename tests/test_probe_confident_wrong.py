"""Inputs from an attacker's / a new hospital's probe that had drawn a confident answer the image cannot back: each
is now refused (or withheld with the reason), and the ordinary image next to it is still answered."""

from __future__ import annotations

import numpy as np
import pytest

FILM = "hannover_cxr/png/006f3a8a.png"  # an adult film the classifier answers 'uncertain' (P(pneumonia) 0.31)
NIH_FILM = "nih_cxr14_64/images/00000001_000.png"  # 64x64: the smallest films in the dev data
SMEAR = "bccd/images/BloodImage_00001.jpg"


def _shrunk(path, side: int) -> np.ndarray:
    import cv2
    from PIL import Image

    rgb = np.asarray(Image.open(path).convert("RGB"))
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (max(1, round(side * w / min(h, w))), max(1, round(side * h / min(h, w)))),
                      interpolation=cv2.INTER_AREA)


def _save(rgb: np.ndarray, path) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(rgb)).save(path)


@pytest.mark.usefixtures("one_torch_thread")
def test_a_thumbnail_chest_film_gets_no_pneumonia_answer(assistant, data_dir, tmp_path):
    """The film shrunk to 16x16 (here 16 px on its short side) had been read as 'Yes ... bacterial pneumonia ... (pneumonia of either kind 95%)';
    the film itself is uncertain.  Now the gate withholds the classifier and says why; the film is still classified."""
    path = tmp_path / "thumb.png"
    _save(_shrunk(data_dir / FILM, 16), path)
    session = assistant.new_session()
    session.load("current", path)
    r = assistant.ask(session, "Is there pneumonia?")
    assert r.abstained and r.value is None
    assert [c.name for c in r.tool_calls] == ["image_info"]
    assert "too small to read" in r.answer and "withheld" in r.answer

    session = assistant.new_session()
    session.load("current", data_dir / FILM)
    r = assistant.ask(session, "Is there pneumonia?")
    assert "classify" in [c.name for c in r.tool_calls]


@pytest.mark.usefixtures("one_torch_thread")
def test_a_thumbnail_smear_gets_no_cell_count(assistant, data_dir, tmp_path):
    """A smear shrunk to 21x16 had been counted ('I count 1 white blood cell'): at that size no cell can be made out."""
    path = tmp_path / "smear_thumb.png"
    _save(_shrunk(data_dir / SMEAR, 16), path)
    session = assistant.new_session()
    session.load("current", path)
    r = assistant.ask(session, "How many white blood cells are there?")
    assert r.abstained and r.value is None
    assert [c.name for c in r.tool_calls] == ["image_info"]
    assert "too small to read" in r.answer


def test_the_size_floor_spares_the_smallest_dev_films(data_dir):
    """The floor (MIN_SIDE) sits below every dev film: a 64x64 NIH film and a film shrunk to 32 px keep their route."""
    from experts.imaging import StudyImage
    from experts.modality_gate import MIN_SIDE, ModalityGate
    from tools.common import ImageMeta

    gate = ModalityGate()
    for rgb, small in ((_shrunk(data_dir / NIH_FILM, 64), False), (_shrunk(data_dir / FILM, MIN_SIDE), False),
                       (_shrunk(data_dir / FILM, MIN_SIDE - 1), True)):
        meta = ImageMeta(role="current", source="t.png", format="png", width=rgb.shape[1], height=rgb.shape[0],
                         channels=3)
        out = gate.predict(StudyImage(pixels=rgb, meta=meta))
        assert out.label == "chest_xray"
        assert ("too small" in (out.doubt or "")) is small, (rgb.shape, out.doubt)
        if small:
            assert not out.trusted


def test_a_multi_page_tiff_is_refused_not_read_by_its_first_page(assistant, data_dir, tmp_path):
    """A TIFF holding a pneumonia film and a normal one had been answered 'Yes ... bacterial pneumonia' from its
    first page, without a word about the second.  Now it is refused in one line; a one-page TIFF still loads."""
    from PIL import Image

    from experts.imaging import load_image
    from tools.errors import InvalidInputError

    first = Image.open(data_dir / "kermany_cxr/train/PNEUMONIA/person1000_bacteria_2931.jpeg").convert("L")
    second = Image.open(data_dir / "kermany_cxr/train/NORMAL/IM-0115-0001.jpeg").convert("L").resize(first.size)
    two = tmp_path / "two.tif"
    first.save(two, save_all=True, append_images=[second])
    with pytest.raises(InvalidInputError, match="TIFF of 2 images"):
        load_image(two)
    with pytest.raises(InvalidInputError, match="TIFF of 2 images"):
        assistant.new_session().load("current", two)
    one = tmp_path / "one.tif"
    first.save(one)
    assert load_image(one).pixels.shape[:2] == (first.height, first.width)


@pytest.mark.parametrize("kind, path, side, small", [
    ("blood_smear", SMEAR, 40, True), ("blood_smear", SMEAR, 48, False),
    ("endoscopy", "endotect_polyps/images/00c7089c-caf9-4c1b-850f-bedbb11668fc.jpg", 56, True),
    ("endoscopy", "endotect_polyps/images/00c7089c-caf9-4c1b-850f-bedbb11668fc.jpg", 64, False)])
def test_smears_and_endoscopy_frames_have_their_own_measured_size_floor(data_dir, kind, path, side, small):
    """Before: one 32 px floor for every kind, measured on chest films; at 32 px the polyp count is exact on 79 % of
    the held-out frames (97 % full size) and a smear's WBC count on 91 % (97 %): `osler bench min-size` puts the
    floors at 64 px for frames, 48 px for smears."""
    from experts.imaging import StudyImage
    from experts.modality_gate import MIN_SIDE_BY_KIND, ModalityGate
    from tools.common import ImageMeta

    rgb = _shrunk(data_dir / path, side)
    meta = ImageMeta(role="current", source="t.png", format="png", width=rgb.shape[1], height=rgb.shape[0], channels=3)
    out = ModalityGate().predict(StudyImage(pixels=rgb, meta=meta))
    assert out.label == kind and MIN_SIDE_BY_KIND[kind] in (48, 64)
    assert ("too small" in (out.doubt or "")) is small, (rgb.shape, out.doubt)
    if small:
        assert not out.trusted


@pytest.mark.usefixtures("one_torch_thread")
def test_a_smear_at_four_times_the_pixels_is_counted_at_the_training_magnification(assistant, data_dir, tmp_path):
    """A probe's high-resolution smear (the BCCD field enlarged to 2560 px) had been tiled at its own pixel size and
    counted '6 white blood cells' for 1 (76 at 8000 px); the red cells now set the scale (experts.magnification) and
    the count is the native one.  ``osler bench magnification``: 58 unseen smears at 4x, WBC exact 0.948 (0.224
    without the step), at 1x unchanged (0.966)."""
    import cv2

    from experts.imaging import load_image

    rgb = load_image(data_dir / "bccd/images/BloodImage_00030.jpg").pixels
    big = tmp_path / "big.png"
    _save(cv2.resize(rgb, (rgb.shape[1] * 4, rgb.shape[0] * 4), interpolation=cv2.INTER_LINEAR), big)
    counts = []
    for path in (data_dir / "bccd/images/BloodImage_00030.jpg", big):
        session = assistant.new_session()
        session.load("current", path)
        r = assistant.ask(session, "How many white blood cells are there?")
        counts.append(r.value)
        note = next(c for c in r.tool_calls if c.name == "count").result["provenance"]["note"]
        assert ("resampled" in note) is (path == big)
    assert counts[0] == counts[1] == 1  # the annotation: 1 WBC


@pytest.mark.usefixtures("one_torch_thread")
def test_four_fields_at_half_magnification_are_counted_and_a_far_lower_one_is_refused(data_dir, settings):
    """Four copies of a 1-WBC field at half size in one 640 px image had been counted 0 white cells; the ruler reads
    the red cells as ~0.6x, the image is enlarged and tiled, and the 4 are found.  Far below the band (here: a
    ruler that expects cells 4x larger) the detector refuses with the reason instead of counting."""
    import cv2

    from experts.imaging import StudyImage, load_image
    from experts.magnification import Ruler
    from experts.registry import ExpertPool
    from tools.errors import InvalidInputError

    rgb = load_image(data_dir / "bccd/images/BloodImage_00020.jpg").pixels  # annotated: 1 WBC
    small = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)
    mosaic = StudyImage.from_pixels(np.vstack([np.hstack([small] * 2)] * 2))
    det = ExpertPool(settings).detector("blood_cells")
    d = det.predict(mosaic)
    assert d.labels.count("WBC") == 4 and "resampled" in d.provenance.note
    ruler, det.expert.ruler = det.expert.ruler, Ruler("RBC", 4 * 106.0)
    try:
        with pytest.raises(InvalidInputError, match="magnification is too low"):
            det.predict(StudyImage.from_pixels(rgb))
    finally:
        det.expert.ruler = ruler


def _noisy_smear(data_dir, tmp_path, name: str = "BloodImage_00040") -> tuple:
    from PIL import Image

    rgb = np.asarray(Image.open(data_dir / f"bccd/images/{name}.jpg").convert("RGB"))
    noisy = np.clip(rgb + np.random.default_rng(0).normal(0, 25, rgb.shape), 0, 255).astype(np.uint8)
    path = tmp_path / "noisy.png"
    _save(noisy, path)
    return data_dir / f"bccd/images/{name}.jpg", path


@pytest.mark.usefixtures("one_torch_thread")
def test_a_noisy_smear_count_is_marked_uncertain_and_the_clean_one_is_not(assistant, data_dir, tmp_path):
    """A probe's smear with camera noise (sigma 25) was counted '0 platelets' (3 annotated) with no hedge: the
    detector finds almost no red cells on it.  Fewer than 5 whole red cells (4 of 292 development smears) now mark the
    count uncertain, with the reason; the clean smear is answered as before."""
    clean, noisy = _noisy_smear(data_dir, tmp_path)
    for path, doubt in ((clean, False), (noisy, True)):
        session = assistant.new_session()
        session.load("current", path)
        r = assistant.ask(session, "Are there any platelets?")
        count = next(c for c in r.tool_calls if c.name == "count")
        assert (count.result["provenance"]["doubt"] is not None) is doubt
        assert ("Uncertain: fewer than 5 whole RBC" in r.answer) is doubt and r.grounding.ok
        assert (r.answer.startswith("Uncertain")) is doubt


@pytest.mark.usefixtures("one_torch_thread")
def test_a_comparison_of_a_doubted_count_gets_no_bare_yes(assistant, data_dir, tmp_path):
    """The same smear, noisy, as the current study and its clean copy as the prior had been answered 'Yes. There is
    1 fewer white blood cell'; a comparison now carries the doubts and disputes of the counts it compares."""
    clean, noisy = _noisy_smear(data_dir, tmp_path)
    session = assistant.new_session()
    session.load("prior", clean)
    session.load("current", noisy)
    r = assistant.ask(session, "Has the white cell count changed since the prior?")
    cmp = next(c for c in r.tool_calls if c.name == "compare_with_prior")
    assert "current image: fewer than 5 whole RBC" in cmp.result["provenance"]["doubt"]
    assert r.answer.startswith("Uncertain.") and "Uncertain: the findings compared may be wrong" in r.answer


def test_jpeg_quality_is_read_from_the_quantisation_table(data_dir, tmp_path):
    """The libjpeg quality a file was saved at, from its own tables (PIL and OpenCV writers); None for a PNG."""
    import cv2
    from PIL import Image

    from experts.imaging import load_image

    rgb = np.asarray(Image.open(data_dir / SMEAR).convert("RGB"))
    assert load_image(data_dir / SMEAR).meta.jpeg_quality == 75  # BCCD is saved at 75
    for q in (5, 9, 10, 30, 95):
        Image.fromarray(rgb).save(tmp_path / f"p{q}.jpg", quality=q)
        assert load_image(tmp_path / f"p{q}.jpg").meta.jpeg_quality == q
    cv2.imwrite(str(tmp_path / "c.jpg"), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 20])
    assert load_image(tmp_path / "c.jpg").meta.jpeg_quality == 20
    _save(rgb, tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").meta.jpeg_quality is None


@pytest.mark.usefixtures("one_torch_thread")
def test_a_jpeg_compressed_to_quality_5_gets_no_count_and_quality_10_does(assistant, data_dir, tmp_path):
    """A held-out polyp frame saved at JPEG quality 5 had been answered '2 polyps' (1 in the mask); `osler bench
    compression` puts every kind's floor at quality 10 (at 5: WBC exact 0.83 against 0.97, polyp count 0.88 against
    0.97, 7 of 120 films confidently wrong).  Below it the gate withholds the tools and says why."""
    from PIL import Image

    frame = Image.open(data_dir / "endotect_polyps/images/00c7089c-caf9-4c1b-850f-bedbb11668fc.jpg").convert("RGB")
    for q, refused in ((5, True), (10, False)):
        path = tmp_path / f"frame_q{q}.jpg"
        frame.save(path, quality=q)
        session = assistant.new_session()
        session.load("current", path)
        r = assistant.ask(session, "How many polyps are there?")
        names = [c.name for c in r.tool_calls]
        assert (r.abstained and r.value is None and names == ["image_info"]) is refused, (q, r.answer)
        assert ("compressed to quality 5" in r.answer) is refused
        if not refused:
            assert "detect" in names or "count" in " ".join(names)
