"""Inputs from an attacker's / a new hospital's probe that had drawn a confident answer the image cannot back: each
is now refused (or withheld with the reason), and the ordinary image next to it is still answered."""

from __future__ import annotations

import json

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


@pytest.mark.usefixtures("one_torch_thread")
def test_dicom_tags_do_not_vouch_for_pixels_of_another_kind(assistant, data_dir, tmp_path):
    """A colour endoscopy frame written as a CR / CHEST DICOM had been answered 'Yes ... bacterial pneumonia 98 %'
    (the tags decided the kind and no pixel check ran; 9 of 9 frames), and an inverted frame tagged ES counted '0
    polyps'.  The tags' kind now passes the same pixel checks as a PNG; the film itself, as CR, is still read."""
    from PIL import Image

    from tests.dicom_sc import write_secondary_capture

    frame = np.asarray(Image.open(data_dir / "endotect_polyps/images/00c7089c-caf9-4c1b-850f-bedbb11668fc.jpg")
                       .convert("RGB"))
    film = np.asarray(Image.open(data_dir / FILM).convert("L"))
    write_secondary_capture(tmp_path / "frame_as_chest.dcm", frame, modality="CR", BodyPartExamined="CHEST")
    write_secondary_capture(tmp_path / "inverted_frame.dcm", 255 - frame, modality="ES")
    write_secondary_capture(tmp_path / "film.dcm", film, modality="CR", BodyPartExamined="CHEST")
    for name, question, refused in (("frame_as_chest.dcm", "Is there pneumonia?", True),
                                    ("inverted_frame.dcm", "How many polyps are there?", True),
                                    ("film.dcm", "Is there pneumonia?", False)):
        session = assistant.new_session()
        session.load("current", tmp_path / name)
        r = assistant.ask(session, question)
        names = [c.name for c in r.tool_calls]
        assert (names == ["image_info"] and r.abstained) is refused, (name, r.answer)
        assert ("the DICOM tags say" in r.answer) is refused


@pytest.mark.usefixtures("one_torch_thread")
def test_a_pixel_spacing_that_gives_an_impossible_size_gives_no_millimetres(assistant, data_dir, tmp_path):
    """A polyp frame with PixelSpacing 5 mm had been measured '1517.4 x 1049.2 mm' (a film with 5 mm: a 2-metre lung).
    A size outside what the structure can have in a patient now withholds the millimetres and says why; a plausible
    spacing still gives them."""
    from PIL import Image

    from tests.dicom_sc import write_secondary_capture

    frame = np.asarray(Image.open(data_dir / "endotect_polyps/images/00c7089c-caf9-4c1b-850f-bedbb11668fc.jpg")
                       .convert("RGB"))
    for spacing, mm in ((5.0, False), (0.1, True)):
        path = tmp_path / f"frame_{spacing}.dcm"
        write_secondary_capture(path, frame, modality="ES", spacing_mm=spacing)
        session = assistant.new_session()
        session.load("current", path)
        r = assistant.ask(session, "How big is the polyp in mm?")
        m = next(c for c in r.tool_calls if c.name == "measure").result
        assert (m["long_diameter_mm"] is not None) is mm, m
        assert (r.unit == "mm" or r.unit == "mm²") is mm, (r.unit, r.answer)
        assert ("impossible size" in r.answer) is not mm


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("question", ["Count everything except the platelets.", "How many cells are not white blood cells?",
                                      "How many cells other than red blood cells are there?"])
def test_a_count_that_leaves_a_class_out_gives_every_class_and_no_single_number(assistant, data_dir, question):
    """'Count everything except the platelets' had been answered 'I count 1 platelet' (value 1): the excluded class
    instead of the rest.  Every class is now given with no single value, and the answer says so."""
    session = assistant.new_session()
    session.load("current", data_dir / "bccd/images/BloodImage_00034.jpg")
    r = assistant.ask(session, question)
    count = next(c for c in r.tool_calls if c.name == "count").result
    assert {c["label"] for c in count["counts"]} >= {"RBC", "WBC"}
    assert r.value is None and "leaves something out" in r.answer and r.grounding.ok


@pytest.mark.usefixtures("one_torch_thread")
def test_a_new_opacity_is_a_change_and_worse_follows_the_opacity(assistant, data_dir, tmp_path):
    """A film with a bright patch painted into one lung, compared with the film itself as the prior, had been answered
    'No' to 'Has anything changed?' and 'Is it worse than before?' while the same answer said 'lungs denser' (6 of 6
    films): the yes/no looked at the outlines' areas only."""
    import cv2

    film = cv2.imread(str(data_dir / "hannover_cxr/png/33ad0dcb.png"), cv2.IMREAD_GRAYSCALE).astype(float)
    h, w = film.shape
    y, x = np.mgrid[:h, :w]
    patch = np.exp(-(((x - 0.27 * w) / (0.08 * w)) ** 4 + ((y - 0.45 * h) / (0.12 * h)) ** 4))
    cv2.imwrite(str(tmp_path / "current.png"), np.clip(film + 90 * patch, 0, 255).astype(np.uint8))
    for question, label in (("Has anything changed since the last exam?", "yes"), ("Is it worse than before?", "yes"),
                            ("Is it better than before?", "no")):
        session = assistant.new_session()
        session.load("prior", data_dir / "hannover_cxr/png/33ad0dcb.png")
        session.load("current", tmp_path / "current.png")
        r = assistant.ask(session, question)
        cmp = next(c for c in r.tool_calls if c.name == "compare_with_prior").result
        assert cmp["lung_opacity_change"] > 0.01
        assert r.label == label, (question, r.answer)


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("question", ["What stage is this polyp?", "What is the Paris classification of this polyp?",
                                      "What is the histology of the polyp?"])
def test_a_stage_class_or_histology_is_declined_not_answered_with_a_location(assistant, data_dir, question):
    """These had been answered 'Found 1 polyp: #1 at x 159-430 ...' as if the location were the answer."""
    session = assistant.new_session()
    session.load("current", data_dir / "endotect_polyps/images/00c7089c-caf9-4c1b-850f-bedbb11668fc.jpg")
    r = assistant.ask(session, question)
    assert r.abstained and "No tool can answer" in r.answer and not r.tool_calls[1:]


@pytest.mark.usefixtures("one_torch_thread")
def test_a_pneumonia_whose_kind_is_close_to_call_names_no_kind(assistant, data_dir):
    """A held-out viral film (bacterial 42 %, viral 23 %, normal 35 %) had been answered 'bacterial pneumonia'
    without a word of doubt (21 of 40 held-out viral films).  Below a kind's share of 0.75 of the pneumonia
    probability (chosen on the validation fold) the answer says pneumonia and that the kind is uncertain."""
    film = data_dir / "kermany_cxr/train/PNEUMONIA/person273_virus_561.jpeg"
    for question, label in (("Is this bacterial or viral pneumonia?", "uncertain"), ("Is there pneumonia?", "yes")):
        session = assistant.new_session()
        session.load("current", film)
        r = assistant.ask(session, question)
        assert r.label == label and "which kind is uncertain" in r.answer and r.grounding.ok, r.answer
        assert "bacterial pneumonia" not in r.answer.replace("bacterial or viral", "")


@pytest.mark.usefixtures("one_torch_thread")
def test_a_frame_with_scan_lines_or_noise_gets_an_uncertain_polyp_count(assistant, data_dir, tmp_path):
    """A held-out polyp frame with every 4th row darkened to 40 % had been answered 'No. I count 0 polyps' with the
    polyp in plain view (6 of 27 frames), camera noise sigma 40 likewise (3 of 27).  The detector now says when a frame
    is noisier or more line-patterned than any development frame; the frame itself is answered as before."""
    from PIL import Image

    from experts.frame_quality import frame_doubt

    frame = np.asarray(Image.open(data_dir / "endotect_polyps/images/0a508419-ba4f-428c-9a30-43feb39c35c2.jpg")
                       .convert("RGB"))
    lined = frame.copy()
    lined[::4] = (lined[::4] * 0.4).astype(np.uint8)
    noisy = np.clip(frame + np.random.default_rng(0).normal(0, 40, frame.shape), 0, 255).astype(np.uint8)
    assert frame_doubt(frame) is None and "scan lines" in frame_doubt(lined) and "noise" in frame_doubt(noisy)
    for rgb, doubted in ((frame, False), (lined, True)):
        path = tmp_path / f"frame_{doubted}.png"
        _save(rgb, path)
        session = assistant.new_session()
        session.load("current", path)
        r = assistant.ask(session, "Is there a polyp?")
        assert (r.label == "uncertain" and "Uncertain: the frame is degraded" in r.answer) is doubted, r.answer


@pytest.mark.usefixtures("one_torch_thread")
def test_a_stretched_endoscopy_frame_gets_an_uncertain_polyp_count(assistant, data_dir, tmp_path):
    """A negative frame stretched to 3:1 had been counted '1 polyp'.  Development frames are 1.08-1.79:1 wide, so a
    frame outside 0.5-2.4:1 gets its count with 'Uncertain' and the reason; the same frame widened to 16:9 does not."""
    import cv2
    from PIL import Image

    from experts.frame_quality import frame_doubt

    frame = np.asarray(Image.open(data_dir / "endotect_polyps/negatives/images/0da47e4e-d994-44b5-86aa-0fd8ba92c62e.jpg").convert("RGB"))  # no polyp
    h, w = frame.shape[:2]
    wide, stretched = cv2.resize(frame, (round(h * 16 / 9), h)), cv2.resize(frame, (3 * h, h))
    tall = cv2.resize(frame, (w, round(w / 0.45)))
    assert frame_doubt(frame) is None and frame_doubt(wide) is None
    assert "proportions 3.00:1" in frame_doubt(stretched) and "proportions 0.45:1" in frame_doubt(tall)
    path = tmp_path / "stretched.png"
    _save(stretched, path)
    session = assistant.new_session()
    session.load("current", path)
    r = assistant.ask(session, "How many polyps are there?")
    assert "Uncertain: the frame is degraded" in r.answer and "proportions 3.00:1" in r.answer, r.answer


@pytest.mark.usefixtures("one_torch_thread")
def test_two_copies_of_one_frame_side_by_side_get_no_count(assistant, data_dir, tmp_path):
    """A negative endoscopy frame beside itself had been counted '1 polyp' (2 of 5 negatives), a polyp frame beside
    itself '2 polyps'.  Halves that correlate above 0.98 (development images at most 0.94) are withheld as a montage;
    the frame alone is still counted."""
    from PIL import Image

    from experts.modality_gate import copies

    frame = np.asarray(Image.open(data_dir / "endotect_polyps/negatives/images/0da47e4e-d994-44b5-86aa-0fd8ba92c62e.jpg").convert("RGB"))  # no polyp
    assert copies(frame) is None and copies(np.hstack([frame, frame])) and copies(np.vstack([frame, frame]))
    for rgb, refused in ((frame, False), (np.hstack([frame, frame]), True)):
        path = tmp_path / f"montage_{refused}.png"
        _save(rgb, path)
        session = assistant.new_session()
        session.load("current", path)
        r = assistant.ask(session, "How many polyps are there?")
        assert (r.abstained and "two copies of one picture" in r.answer) is refused, r.answer


def test_every_real_polyp_has_tissue_texture_and_a_painted_disc_does_not(data_dir):
    """The flat-mark limit against the ground truth: the centre of every annotated polyp box of the EndoTect frames
    is far more varied than the limit (as recorded, after JPEG quality 30 and at half resolution); a disc or square
    of one colour painted on a frame (PNG or JPEG 75) is below it."""
    import io

    import cv2
    from PIL import Image

    from experts.frame_quality import FLAT_LIMIT, flat_boxes

    def jpeg(rgb, q):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=q)
        return np.asarray(Image.open(buf).convert("RGB"))

    root = data_dir / "endotect_polyps"
    n = 0
    for img in sorted((root / "images").glob("*.jpg")):
        rgb = np.asarray(Image.open(img).convert("RGB"))
        mask = np.asarray(Image.open(root / "masks" / f"{img.stem}.png").convert("L")) > 127
        k, _lab, stats, _c = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
        boxes = [(x, y, x + w, y + h) for x, y, w, h, a in stats[1:] if a >= 50]
        half = cv2.resize(cv2.resize(rgb, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), rgb.shape[1::-1])
        for version in (rgb, jpeg(rgb, 30), half):
            assert flat_boxes(version, np.array(boxes)) == [None] * len(boxes), img.name
        n += len(boxes)
    assert n >= 140
    frame = np.asarray(Image.open(next((root / "negatives/images").glob("*.jpg"))).convert("RGB")).copy()
    cv2.circle(frame, (200, 200), 50, (200, 40, 40), -1)
    cv2.rectangle(frame, (350, 250), (430, 330), (230, 120, 110), -1)
    for version in (frame, jpeg(frame, 75)):
        sds = flat_boxes(version, np.array([(150, 150, 250, 250), (350, 250, 430, 330), (0, 0, 100, 100)]))
        assert sds[0] is not None and sds[1] is not None and max(sds[:2]) < FLAT_LIMIT and sds[2] is None
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)  # a black-and-white recording: read as it is
    assert flat_boxes(grey, np.array([(150, 150, 250, 250), (0, 0, 100, 100)]))[1] is None
    assert flat_boxes(grey, np.array([(150, 150, 250, 250)]))[0] is not None
    assert flat_boxes(frame, np.zeros((0, 4))) == [] and flat_boxes(frame, np.array([(5, 5, 6, 6)])) == [None]


@pytest.mark.usefixtures("one_torch_thread")
def test_a_red_disc_painted_on_a_negative_frame_is_not_counted_as_a_polyp(assistant, data_dir, tmp_path):
    """A probe painted a red disc on a frame without a polyp and got 'I count 1 polyp'.  A detection whose centre is
    one flat colour is now left out with the reason (the count is 'Uncertain'); the frame itself is answered as before,
    and a polyp frame with a disc painted in a corner still gets its polyp."""
    import cv2
    from PIL import Image

    neg = np.asarray(Image.open(data_dir / "endotect_polyps/negatives/images/0b952aa7-cbbd-44a2-9d0b-c31a46776aac.jpg")
                     .convert("RGB")).copy()
    h, w = neg.shape[:2]
    painted = neg.copy()
    cv2.circle(painted, (w // 2, h // 2), min(h, w) // 10, (200, 40, 40), -1)
    polyp = np.asarray(Image.open(data_dir / "endotect_polyps/images/0a508419-ba4f-428c-9a30-43feb39c35c2.jpg")
                       .convert("RGB")).copy()
    cv2.circle(polyp, (40, polyp.shape[0] - 40), 25, (200, 40, 40), -1)
    for name, rgb in (("negative", neg), ("painted", painted), ("polyp", polyp)):
        path = tmp_path / f"{name}.png"
        _save(rgb, path)
        session = assistant.new_session()
        session.load("current", path)
        r = assistant.ask(session, "How many polyps are there?")
        if name == "painted":
            assert r.value == 0 and "Uncertain: a detection on a flat single-colour region was left out" in r.answer, r.answer
        elif name == "negative":
            assert r.value == 0 and "flat single-colour" not in r.answer, r.answer
        else:
            assert r.value == 1, r.answer


@pytest.mark.usefixtures("one_torch_thread")
def test_a_part_of_a_chest_film_gets_no_pneumonia_class(assistant, data_dir, tmp_path):
    """The upper half of a normal Kermany film had been read 'bacterial pneumonia' and a 30 % crop 'viral pneumonia',
    confidently (a crop the gate sees as turned is withheld there already).  The whole-film check on the classifier's own features (experts/cxr_crop.py) withholds the class of a
    part of a film; the whole film is still read (normal)."""
    from PIL import Image

    film = np.asarray(Image.open(data_dir / "kermany_cxr/train/NORMAL/NORMAL2-IM-1341-0001.jpeg").convert("RGB"))
    h, w = film.shape[:2]
    session = assistant.new_session()
    session.load("current", data_dir / "kermany_cxr/train/NORMAL/NORMAL2-IM-1341-0001.jpeg")
    r = assistant.ask(session, "Does this film show pneumonia?")
    assert r.answer.startswith("No") and "whole-film check" not in r.answer, r.answer
    for name, part in (("left", film[:, : w // 2]), ("upper", film[: h // 2]), ("corner", film[: int(h * .6), : int(w * .6)])):
        path = tmp_path / f"{name}.png"
        _save(part, path)
        session = assistant.new_session()
        session.load("current", path)
        r = assistant.ask(session, "Does this film show pneumonia?")
        assert r.label == "uncertain" and "I do not read this image for pneumonia" in r.answer, r.answer
        assert next(c for c in r.tool_calls if c.name == "classify").result["uncertain_kind"] == "not_read"
        assert "whole-film check" in r.answer and "pneumonia" not in r.answer.split(":", 1)[1], r.answer


@pytest.mark.usefixtures("one_torch_thread")
def test_two_different_chest_films_in_one_image_get_no_pneumonia_class(assistant, data_dir, tmp_path):
    """Two different films side by side (a comparison screenshot) had been given one class as if they were one film.
    The whole-film check, trained with such pairs as 'not a whole film', withholds it."""
    from PIL import Image

    a = Image.open(data_dir / "kermany_cxr/train/NORMAL/NORMAL2-IM-1341-0001.jpeg").convert("RGB")
    b = Image.open(data_dir / "kermany_cxr/train/PNEUMONIA/person1_bacteria_1.jpeg").convert("RGB").resize(a.size)
    path = tmp_path / "pair.png"
    _save(np.hstack([np.asarray(a), np.asarray(b)]), path)
    session = assistant.new_session()
    session.load("current", path)
    r = assistant.ask(session, "Does this film show pneumonia?")
    assert r.label == "uncertain" and "I do not read this image for pneumonia" in r.answer, r.answer


@pytest.mark.usefixtures("one_torch_thread")
def test_a_film_letterboxed_on_a_wide_screen_capture_is_read(assistant, data_dir, tmp_path):
    """A whole film in the middle of a black 16:9 capture had been refused by the gate ('most like a CT or MR
    slice') and, past it, squeezed into the classifier's square input.  The gate now reads a refused image once more
    inside a wide uniform frame, and the classifier cuts the frame off: the film gets the film's answer."""
    import cv2

    film = cv2.imread(str(data_dir / "kermany_cxr/train/NORMAL/IM-0115-0001.jpeg"))[..., ::-1]
    h, w = film.shape[:2]
    pad = (round(h * 16 / 9) - w) // 2
    path = tmp_path / "boxed.png"
    _save(cv2.copyMakeBorder(film, 0, 0, pad, pad, cv2.BORDER_CONSTANT, value=0), path)
    session = assistant.new_session()
    session.load("current", path)
    r = assistant.ask(session, "Is there pneumonia?")
    assert r.answer.startswith("No.") and r.label == "no", r.answer
    gate = next(c for c in r.tool_calls if c.name == "image_info")
    assert "inside a uniform frame" in json.dumps(gate.result, default=str), gate.result


def test_the_answer_reads_the_typed_uncertainty_kind_not_the_reason_wording():
    """The built-in answer had told a withheld film from a close call by whether the reason's text said 'decision
    threshold'; a reason worded otherwise turned a withheld film into a close call. It now reads ``uncertain_kind``."""
    from agent.builtin.classify import _classify_uncertain
    from agent.builtin.draft import Draft
    from tools.classification import ClassificationResult
    from tools.common import Provenance

    prov = Provenance(expert="cxr", backend="torchvision", model="m", elapsed_ms=1.0)
    p = {"normal": 0.45, "bacterial_pneumonia": 0.4, "viral_pneumonia": 0.15}

    def draft(kind, reason):
        r = ClassificationResult(evidence_id="E1", image="current", task="cxr_pneumonia", label="bacterial_pneumonia",
                                 probabilities=p, calibrated=True, threshold=0.5, uncertain=True,
                                 uncertain_reason=reason, uncertain_kind=kind, provenance=prov)
        d = Draft()
        _classify_uncertain(d, r, True, 0.55)
        return " ".join(d.sentences)

    assert "I do not read this image" in draft("not_read", "a part of a film (whole-film check 0.91)")
    assert "I do not read this image" in draft("not_read", None)  # no reason text: still withheld, with a default
    assert "close to its decision threshold" in draft("close_call", "P(pneumonia) 0.55, near the cut-off")
