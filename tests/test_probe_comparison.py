"""Probes of prior-study comparison that once gave confident wrong answers: a crop of the film as its prior read as
lung growth, a cell cut by the edge of a shifted smear field read as grown, a mirrored film compared (left and right
swapped), a pixel spacing left unchanged after resampling giving mm² four-fold apart, "has the opacity got worse?"
answered yes when the lungs got clearer, and sizes asked in mm with no word that none can be given.  Real images from
../shared/data (Hannover chest films, BCCD smear annotations, EndoTect / HyperKvasir CC BY 4.0)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import cv2
import numpy as np
import pytest

from experts.change import compare_findings, finding_from_box
from tools.comparison import CompareRequest
from tests.dicom_sc import write_secondary_capture

CXR = "hannover_cxr/png/c9280a30.png"
POLYP = "endotect_polyps/images/0cf59388-36a8-49d6-934f-cbbd1364d93c.jpg"


def _compare(assistant, current: Path, prior: Path, dates=(None, None)):
    from agent.boundary.toolset import invoke

    s = assistant.new_session()
    s.load("current", current, study_date=dates[0])
    s.load("prior", prior, study_date=dates[1])
    return invoke(s, "compare_with_prior", CompareRequest())


def _ask(assistant, current: Path, prior: Path, question: str):
    s = assistant.new_session()
    s.load("current", current)
    s.load("prior", prior)
    return assistant.ask(s, question)


def test_a_crop_of_the_same_film_as_prior_is_not_read_as_growth(assistant, data_dir, tmp_path):
    """The prior is the central 60 % of the current film: the lungs are cut by its edge.  Compared whole on one side
    and cut on the other, the right lung 'grew' by 42 %; measured inside the common view, it is unchanged."""
    film = cv2.imread(str(data_dir / CXR), cv2.IMREAD_GRAYSCALE)
    h, w = film.shape
    cv2.imwrite(str(tmp_path / "crop.png"), film[int(h * .2):int(h * .8), int(w * .2):int(w * .8)])
    r = _compare(assistant, data_dir / CXR, tmp_path / "crop.png")
    assert r.status == "compared", r.reason
    assert sorted(c.label for c in r.changes) == ["left lung", "right lung"]
    assert all(c.status == "unchanged" for c in r.changes), [(c.label, c.area_change_pct) for c in r.changes]


def test_a_cell_cut_by_the_edge_of_a_shifted_field_is_compared_inside_the_common_view(data_dir):
    """The annotated WBC of BloodImage_00000, in two overlapping fields of the slide (x < 384 and x >= 192): the
    prior field cuts it at its edge.  Its area is compared where both fields see it, not whole against cut."""
    root = ET.parse(data_dir / "bccd" / "annotations" / "BloodImage_00000.xml").getroot()
    box = next([float(o.find("bndbox").find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")]
               for o in root.iter("object") if o.find("name").text == "WBC")
    assert box[0] < 384 < box[2]  # the prior field's edge runs through the cell
    prior = finding_from_box("WBC", (box[0], box[1], min(box[2], 384.0), box[3]))  # field x 0..384 of 640
    current = finding_from_box("WBC", (box[0] - 192, box[1], box[2] - 192, box[3]))  # field x 192..576
    matrix = np.array([[1.0, 0.0, -192.0], [0.0, 1.0, 0.0]])
    shape = (480, 384)
    valid = np.zeros(shape, dtype=bool)
    valid[:, :192] = True  # the current frame's part the prior field shows
    records, aside = compare_findings([prior], [current], matrix, shape, prior_valid=valid)
    assert aside == 0 and len(records) == 1
    assert records[0].status == "unchanged", records[0].area_change_pct
    assert records[0].prior.area_px == pytest.approx(records[0].current.area_px)


def test_the_current_film_mirrored_left_to_right_is_not_a_prior(assistant, data_dir, tmp_path):
    """A film flipped left to right lines up with the original after a shift (correlation 0.54), and its lung fields
    were compared side by side with left and right swapped.  Flipped back it matches perfectly: refused."""
    film = cv2.imread(str(data_dir / CXR), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(tmp_path / "mirror.png"), np.ascontiguousarray(film[:, ::-1]))
    r = _compare(assistant, data_dir / CXR, tmp_path / "mirror.png")
    assert r.status == "refused" and "mirrored" in r.reason, r
    assert not r.changes


def test_a_real_prior_is_not_taken_for_a_mirror_image(assistant, data_dir):
    from eval_scenarios.comparison_sets import hannover_pairs

    png = data_dir / "hannover_cxr" / "png"
    for row in hannover_pairs(data_dir)[:3]:
        r = _compare(assistant, png / f"{row['current_image']}.png", png / f"{row['prior_image']}.png")
        assert r.status == "compared", r.reason


def _grey_dicom(path: Path, grey: np.ndarray, date: str, spacing_mm: float) -> None:
    write_secondary_capture(path, grey, modality="CR", date=date, spacing_mm=spacing_mm)


def test_pixel_spacing_that_disagrees_with_the_alignment_gives_no_mm2(assistant, data_dir, tmp_path):
    """The prior is the same film at half the pixels.  With its spacing doubled the lungs are as many mm² in both;
    with the spacing left as it was (a resampled export), the prior's lungs came out at a quarter of the mm²
    beside 'unchanged': the spacing contradicts the alignment's x2 scale, so no mm² are given."""
    film = cv2.imread(str(data_dir / CXR), cv2.IMREAD_GRAYSCALE)
    half = cv2.resize(film, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    _grey_dicom(tmp_path / "current.dcm", film, "20240313", 0.4)
    _grey_dicom(tmp_path / "prior_right.dcm", half, "20240301", 0.8)
    _grey_dicom(tmp_path / "prior_stale.dcm", half, "20240301", 0.4)
    right = _compare(assistant, tmp_path / "current.dcm", tmp_path / "prior_right.dcm")
    assert right.status == "compared", right.reason
    for c in right.changes:
        assert c.prior_area_mm2 == pytest.approx(c.current_area_mm2, rel=0.2)
    stale = _compare(assistant, tmp_path / "current.dcm", tmp_path / "prior_stale.dcm")
    assert stale.status == "compared", stale.reason
    assert stale.changes and all(c.prior_area_mm2 is None and c.current_area_mm2 is None for c in stale.changes)
    assert "spacing" in stale.provenance.note


@pytest.mark.parametrize("question,denser", [("Has the lung opacity got worse since the prior?", True),
                                             ("Are the lungs clearer than on the prior?", False)])
def test_opacity_question_naming_a_direction_is_answered_for_that_direction(assistant, data_dir, question, denser):
    """A real pair (patient 271ddf1a, AP then PA): the lungs came out clearer, and 'has the opacity got worse?' was
    answered yes (any change counted).  The yes / no follows the direction asked."""
    png = data_dir / "hannover_cxr" / "png"
    r = _ask(assistant, png / "19abe1f3.png", png / "262a70ca.png", question)
    change = r.tool_calls[-1].result["lung_opacity_change"]
    assert change is not None and abs(change) > 0.01
    assert r.label == ("yes" if (change > 0) == denser else "no"), (change, r.answer)


def test_millimetres_asked_of_images_without_spacing_are_declined(assistant, data_dir, tmp_path):
    """Two JPEG endoscopy frames (the prior a zoomed-out crop of the current): sizes asked in mm.  No spacing, so
    the answer says no millimetres can be given, and gives none."""
    frame = cv2.imread(str(data_dir / POLYP))
    h, w = frame.shape[:2]
    prior = cv2.resize(frame[int(h * .05):int(h * .95), int(w * .05):int(w * .95)], None, fx=0.8, fy=0.8,
                       interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(tmp_path / "prior.jpg"), prior, [cv2.IMWRITE_JPEG_QUALITY, 90])
    r = _ask(assistant, data_dir / POLYP, tmp_path / "prior.jpg", "How big is the polyp now compared with before, in mm?")
    assert r.tool_calls[-1].name == "compare_with_prior" and r.tool_calls[-1].result["status"] == "compared"
    assert "no millimetres" in r.answer
    assert r.unit != "mm" and "mm²" not in r.answer


@pytest.mark.parametrize("question", ["Did the polyp grow?", "Did the polyp shrink?"])
def test_grow_and_shrink_are_comparisons_not_counts(assistant, data_dir, tmp_path, question):
    """Was: 'grow' and 'shrink' (only 'grown', 'grew', 'shrunk', 'shrank' were known) sent the question to the
    counter: "Yes. I count 1 polyp", while the polyp was unchanged."""
    img = cv2.imread(str(data_dir / POLYP))
    h, w = img.shape[:2]
    prior = cv2.resize(img[int(h * .05):int(h * .95), int(w * .05):int(w * .95)], None, fx=0.8, fy=0.8)
    cv2.imwrite(str(tmp_path / "prior.jpg"), prior, [cv2.IMWRITE_JPEG_QUALITY, 90])
    r = _ask(assistant, data_dir / POLYP, tmp_path / "prior.jpg", question)
    assert "compare_with_prior" in [c.name for c in r.tool_calls] and "count" not in [c.name for c in r.tool_calls]
    assert r.label == "no" and "unchanged" in r.answer


def test_films_of_different_projections_say_so(assistant, data_dir, tmp_path):
    """A real pair of one patient, AP then PA 13 days later, as DICOM with their ViewPosition: the projection alone
    changes the lungs' projected size and shape, and the comparison had not said the two differ."""
    from agent.boundary.toolset import invoke

    png = data_dir / "hannover_cxr" / "png"
    for name, stem, view, date in (("prior", "262a70ca", "AP", "20200301"), ("current", "19abe1f3", "PA", "20200314")):
        grey = cv2.imread(str(png / f"{stem}.png"), cv2.IMREAD_GRAYSCALE)
        write_secondary_capture(tmp_path / f"{name}.dcm", grey, modality="CR", date=date, ViewPosition=view,
                                BodyPartExamined="CHEST")
    s = assistant.new_session()
    s.load("current", tmp_path / "current.dcm")
    s.load("prior", tmp_path / "prior.dcm")
    r = invoke(s, "compare_with_prior", CompareRequest())
    assert r.status == "compared", r.reason
    assert "projections differ (prior AP, current PA)" in r.provenance.note
    a = assistant.ask(s, "Has it changed since the prior?")
    assert "projections differ" in (a.uncertainty or "")
