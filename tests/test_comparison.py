"""Prior-study comparison on real images with known edits: matching, change measures, the
``compare_with_prior`` tool end to end, refusals, DICOM dates and millimetres.

Segmenters that may not be installed yet (polyp / lung U-Net) are replaced, where a test is about the
comparison and not the segmenter, by a test double that returns the ground-truth masks of the
known edit; the blood-cell path runs the real (OpenCV) detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from eval_scenarios.comparison_sets import make_prior, remove_region, scale_region, wbc_items
from experts.change import (
    change_status,
    compare_findings,
    finding_from_box,
    finding_from_mask,
    match_findings,
    opacity_change,
)
from experts.geometry import connected_regions
from experts.overlay import save_png
from experts.protocols import Masks
from experts.registration import register, warp_image, warp_mask
from tools.common import Provenance
from tools.comparison import CompareRequest
from tests.dicom_sc import write_secondary_capture

POLYP = "0cf59388-36a8-49d6-934f-cbbd1364d93c"
TWO_POLYPS = "04c3a34e-a160-4421-827e-89671761ef82"
CXR = "hannover_cxr/png/c9280a30.png"


def _rgb(path: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1])


def _polyp(data_dir: Path, stem: str) -> tuple[np.ndarray, list[np.ndarray]]:
    root = data_dir / "endotect_polyps"
    mask = cv2.imread(str(root / "masks" / f"{stem}.png"), cv2.IMREAD_GRAYSCALE) > 127
    return _rgb(root / "images" / f"{stem}.jpg"), connected_regions(mask, min_area=51)


def _moved(image: np.ndarray, masks: list[np.ndarray], seed: int = 3
           ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """Prior = ``image`` under a small known transform and exposure change; masks carried along."""
    prior, true, _ = make_prior(image, np.random.default_rng(seed), max_rot=4.0, scale_range=(0.92, 1.08),
                                max_shift=0.04, canvas_range=(0.9, 1.0), exposure=0.4, border="reflect")
    to_prior = cv2.invertAffineTransform(true)
    hp, wp = prior.shape[:2]
    return prior, true, [warp_mask(m, to_prior, (hp, wp)) for m in masks]


# ---- pure change measures ------------------------------------------------------------------------

def test_change_status_thresholds():
    assert change_status(100, 150) == ("grown", pytest.approx(50.0))
    assert change_status(100, 79)[0] == "shrunk"
    assert change_status(100, 119)[0] == "unchanged"
    assert change_status(100, 50, threshold=0.6)[0] == "unchanged"


def test_matching_pairs_by_overlap_and_label(data_dir):
    _, (big, small) = _polyp(data_dir, TWO_POLYPS)
    shifted = [np.roll(m, (6, -9), axis=(0, 1)) for m in (small, big)]  # listed in the other order
    prior = [finding_from_mask("polyp", big), finding_from_mask("polyp", small)]
    current = [finding_from_mask("polyp", m) for m in shifted]
    pairs, lone_p, lone_c = match_findings(prior, current)
    assert sorted((i, j) for i, j, _ in pairs) == [(0, 1), (1, 0)]
    assert lone_p == [] and lone_c == []
    other = [finding_from_mask("lesion", shifted[1])]
    pairs, lone_p, lone_c = match_findings(prior[:1], other)
    assert pairs == [] and lone_p == [0] and lone_c == [0]


def test_boxes_are_scaled_into_the_current_frame():
    m = np.array([[2.0, 0.0, 10.0], [0.0, 2.0, 5.0]])
    f = finding_from_box("WBC", (10, 10, 30, 20))
    records, aside = compare_findings([f], [finding_from_box("WBC", (30, 25, 70, 45))], m, (200, 200))
    assert aside == 0 and len(records) == 1
    assert records[0].status == "unchanged" and records[0].area_change_pct == pytest.approx(0.0)


def test_polyp_grown_by_half_is_reported_grown_by_half(data_dir):
    """Known edit on a real frame: the prior held the polyp at 2/3 of its area; the prior is also
    moved, rescaled and re-exposed.  Real registration, mapping, matching and measurement."""
    image, masks = _polyp(data_dir, POLYP)
    pre, small = scale_region(image, masks[0], 1 / 1.5)
    true_pct = 100 * (masks[0].sum() / small.sum() - 1)
    prior, _, (small_p,) = _moved(pre, [small])
    reg = register(prior, image)
    assert reg.success, reg.reason
    records, _ = compare_findings([finding_from_mask("polyp", small_p)], [finding_from_mask("polyp", masks[0])],
                                  reg.matrix, image.shape[:2])
    assert [r.status for r in records] == ["grown"]
    assert records[0].area_change_pct == pytest.approx(50.0, abs=10.0)
    assert records[0].area_change_pct == pytest.approx(true_pct, abs=3.0)


def test_polyp_removed_from_prior_is_new(data_dir):
    image, (big, small) = _polyp(data_dir, TWO_POLYPS)
    prior, _, (small_p,) = _moved(remove_region(image, big), [small])
    reg = register(prior, image)
    assert reg.success, reg.reason
    records, _ = compare_findings([finding_from_mask("polyp", small_p)],
                                  [finding_from_mask("polyp", big), finding_from_mask("polyp", small)],
                                  reg.matrix, image.shape[:2])
    status = {r.status: r for r in records}
    assert set(status) == {"new", "unchanged"}
    ys, xs = np.nonzero(big)
    assert status["new"].current.centroid == pytest.approx((xs.mean() + 0.5, ys.mean() + 0.5), abs=1.0)


def test_lung_opacity_change_sign_survives_exposure_change(data_dir):
    """A real film; the current gets a +40 grey 'opacity' in one lung field; the prior differs
    only by a known transform and exposure.  Unchanged lungs read ~0, the opacity reads > 0."""
    current = _rgb(data_dir / CXR)
    h, w = current.shape[:2]
    lungs = np.zeros((h, w), np.uint8)
    cv2.ellipse(lungs, (int(w * 0.32), int(h * 0.45)), (int(w * 0.12), int(h * 0.22)), 0, 0, 360, 1, -1)
    cv2.ellipse(lungs, (int(w * 0.68), int(h * 0.45)), (int(w * 0.12), int(h * 0.22)), 0, 0, 360, 1, -1)
    lungs = lungs > 0
    prior, _, _ = _moved(current, [])
    reg = register(prior, current)
    assert reg.success
    shape = (h, w)
    valid = warp_image(np.full(prior.shape[:2], 255, np.uint8), reg.matrix, shape, nearest=True) > 0
    valid = cv2.erode(valid.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    g_prior = warp_image(cv2.cvtColor(prior, cv2.COLOR_RGB2GRAY), reg.matrix, shape)
    g_cur = cv2.cvtColor(current, cv2.COLOR_RGB2GRAY)
    same = opacity_change(g_prior, g_cur, lungs, valid)
    hazy = g_cur.astype(np.int16)
    right = lungs & (np.arange(w)[None, :] < w // 2)
    hazy[right] += 40
    worse = opacity_change(g_prior, np.clip(hazy, 0, 255).astype(np.uint8), lungs, valid)
    assert abs(same) < 0.02
    assert worse > same + 0.04


# ---- the tool in a session -----------------------------------------------------------------------

@dataclass
class MaskDouble:
    """Segmenter test double: the ground-truth masks of each loaded file, by file name."""

    label: str
    by_source: dict[str, list[np.ndarray]]
    name: str = "ground_truth_masks"
    backend: str = "fake"
    model_id: str = "ground-truth-v0"
    promptable: bool = False

    def load(self) -> None:
        return None

    def predict(self, image: Any, *, box=None, points=None) -> Masks:
        ms = self.by_source[image.path.name]
        prov = Provenance(expert=self.name, backend=self.backend, model=self.model_id, elapsed_ms=0.0)
        return Masks(masks=list(ms), labels=[self.label] * len(ms), scores=[1.0] * len(ms), provenance=prov)


def _pool_with(settings, key: str, double: Any):
    from experts.registry import BackendSpec, ExpertPool, default_registry

    reg = default_registry()
    reg[key] = [BackendSpec("fake", lambda _settings: double)]
    return ExpertPool(settings, registry=reg)


def _session(assistant, tmp_path: Path, prior: np.ndarray, current: np.ndarray, *, dates=("2024-03-01", "2024-03-13")):
    pp, cp = tmp_path / "prior.png", tmp_path / "current.png"
    save_png(str(pp), prior)
    save_png(str(cp), current)
    s = assistant.new_session()
    s.load("current", cp, study_date=dates[1])
    s.load("prior", pp, study_date=dates[0])
    return s


def _wbc_case(data_dir: Path, k: int = 0) -> tuple[np.ndarray, np.ndarray]:
    img, box, _ = wbc_items(data_dir)[k]
    image = _rgb(img)
    m = np.zeros(image.shape[:2], np.uint8)
    x0, y0, x1, y1 = box
    cv2.ellipse(m, (int((x0 + x1) / 2), int((y0 + y1) / 2)), (int((x1 - x0) / 2), int((y1 - y0) / 2)), 0, 0, 360, 1, -1)
    return image, m > 0


def test_wbc_removed_from_prior_is_new_through_the_tool(assistant, data_dir, tmp_path):
    from agent.boundary.toolset import invoke

    image, wbc = _wbc_case(data_dir)
    prior, _, _ = _moved(remove_region(image, wbc), [])
    s = _session(assistant, tmp_path, prior, image)
    r = invoke(s, "compare_with_prior", CompareRequest())
    assert r.status == "compared", r.reason
    assert r.target == "blood_cells" and r.interval_days == 12
    new = [c for c in r.changes if c.label == "WBC" and c.status == "new"]
    assert len(new) == 1 and new[0].current_area_px > 0
    wbc_count = {c.label: c for c in r.count_changes}["WBC"]
    assert (wbc_count.prior, wbc_count.current, wbc_count.delta) == (0, 1, 1)
    assert r.registration.success and r.registration.ncc_after > r.registration.ncc_before
    assert r.provenance.expert == "prior_comparison" and r.provenance.backend == "opencv"
    assert "count blood_cells" in r.provenance.note  # which expert it used
    for ref in (r.side_by_side, r.change_map):
        assert Path(ref.path).exists()
    assert r.change_map.kind == "change_map" and r.side_by_side.kind == "overlay"
    names = [c.name for c in s.calls]
    assert names.count("count") == 2 and names[-1] == "compare_with_prior"  # expert calls recorded
    assert {c.args.get("image") for c in s.calls if c.name == "count"} == {"prior", "current"}


def test_polyp_grown_through_the_tool(settings, data_dir, tmp_path):
    """The mask path of the tool (segment -> regions -> match), with a ground-truth segmenter double."""
    from agent.runner import Assistant
    from agent.boundary.toolset import invoke

    image, masks = _polyp(data_dir, POLYP)
    pre, small = scale_region(image, masks[0], 1 / 1.5)
    prior, _, (small_p,) = _moved(pre, [small])
    double = MaskDouble("polyp", {"prior.png": [small_p], "current.png": [masks[0]]})
    assistant = Assistant(settings, pool=_pool_with(settings, "segment:polyp", double))
    s = _session(assistant, tmp_path, prior, image)
    r = invoke(s, "compare_with_prior", CompareRequest(target="polyp"))
    assert r.status == "compared", r.reason
    assert [(c.label, c.status) for c in r.changes] == [("polyp", "grown")]
    assert r.changes[0].area_change_pct == pytest.approx(50.0, abs=10.0)
    assert r.changes[0].diameter_change_pct == pytest.approx(100 * (1.5 ** 0.5 - 1), abs=8.0)
    assert r.changes[0].current_area_mm2 is None  # PNG: no pixel spacing, no mm
    assert "fake" in r.provenance.note


def test_lung_comparison_reports_opacity_change(settings, data_dir, tmp_path):
    from agent.runner import Assistant
    from agent.boundary.toolset import invoke

    current = _rgb(data_dir / CXR)
    h, w = current.shape[:2]
    left, right = (np.zeros((h, w), np.uint8) for _ in range(2))
    cv2.ellipse(left, (int(w * 0.32), int(h * 0.45)), (int(w * 0.12), int(h * 0.22)), 0, 0, 360, 1, -1)
    cv2.ellipse(right, (int(w * 0.68), int(h * 0.45)), (int(w * 0.12), int(h * 0.22)), 0, 0, 360, 1, -1)
    lungs = [left > 0, right > 0]
    prior, _, lungs_p = _moved(current, lungs)
    hazy = current.astype(np.int16)
    hazy[lungs[0]] += 45
    hazy = np.clip(hazy, 0, 255).astype(np.uint8)
    double = MaskDouble("lung", {"prior.png": [lungs_p[0] | lungs_p[1]], "current.png": [lungs[0] | lungs[1]]})
    assistant = Assistant(settings, pool=_pool_with(settings, "segment:lung", double))
    s = _session(assistant, tmp_path, prior, hazy)
    r = invoke(s, "compare_with_prior", CompareRequest())
    assert r.status == "compared", r.reason
    assert r.target == "lung"
    assert r.lung_opacity_change is not None and r.lung_opacity_change > 0.03
    assert [c.status for c in r.changes] == ["unchanged", "unchanged"]


def test_unrelated_prior_is_refused_by_the_gate(assistant, data_dir, tmp_path):
    """A blood smear as the 'prior' of a polyp frame: refused before any expert runs."""
    from agent.boundary.toolset import invoke

    image, _ = _polyp(data_dir, POLYP)
    smear = _rgb(data_dir / "bccd" / "images" / "BloodImage_00010.jpg")
    s = _session(assistant, tmp_path, smear, image)
    r = invoke(s, "compare_with_prior", CompareRequest())
    assert r.status == "refused"
    assert "blood smear" in r.reason and r.registration is None
    assert not {"count", "segment"} & {c.name for c in s.calls}


def test_same_kind_but_misaligned_content_is_refused(assistant, data_dir, tmp_path):
    """Two different smears: the same kind, but no alignment makes them correlate."""
    from agent.boundary.toolset import invoke

    a = _rgb(data_dir / "bccd" / "images" / "BloodImage_00010.jpg")
    b = _rgb(data_dir / "bccd" / "images" / "BloodImage_00100.jpg")
    s = _session(assistant, tmp_path, a, b)
    r = invoke(s, "compare_with_prior", CompareRequest())
    assert r.status == "refused"
    assert "aligned" in r.reason and r.registration is not None and not r.registration.success


@pytest.mark.parametrize("copy", ["same file", "jpeg copy"])
def test_the_same_picture_as_its_own_prior_is_refused(assistant, data_dir, tmp_path, copy):
    """The current film given again as the prior (or re-saved as a JPEG) had been answered "No. ... unchanged":
    that compares nothing.  Refused before any expert runs, with the reason; a real pair of one patient is not."""
    from agent.boundary.compare import same_picture
    from agent.boundary.toolset import invoke

    current = _rgb(data_dir / CXR)
    prior = current
    if copy == "jpeg copy":
        ok, buf = cv2.imencode(".jpg", current[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 70])
        prior = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    s = _session(assistant, tmp_path, prior, current)
    r = invoke(s, "compare_with_prior", CompareRequest())
    assert r.status == "refused" and "same picture" in r.reason, r.reason
    assert not {"count", "segment"} & {c.name for c in s.calls}
    real_prior = _rgb(data_dir / "hannover_cxr/png/b343e657.png")  # the same patient, two days earlier
    assert real_prior.shape == current.shape and same_picture(real_prior, current) is None


def test_a_prior_dated_after_the_current_study_is_refused(assistant, data_dir, tmp_path):
    """Dates the wrong way round had been answered "Compared with the study of -31 days earlier ... lungs clearer":
    every change then runs backwards in time.  Refused with both dates; the same pair dated right is compared."""
    from agent.boundary.toolset import invoke

    current, prior = _rgb(data_dir / CXR), _rgb(data_dir / "hannover_cxr/png/b343e657.png")
    s = _session(assistant, tmp_path, prior, current, dates=("2020-02-01", "2020-01-01"))
    r = invoke(s, "compare_with_prior", CompareRequest())
    assert r.status == "refused" and r.interval_days == -31, r.reason
    assert "2020-02-01" in r.reason and "newer" in r.reason
    assert not {"count", "segment"} & {c.name for c in s.calls}
    s = _session(assistant, tmp_path, prior, current, dates=("2020-01-01", "2020-02-01"))
    r = invoke(s, "compare_with_prior", CompareRequest())
    assert r.status == "compared" and r.interval_days == 31, r.reason


def _write_dicom(path: Path, rgb: np.ndarray, date: str, spacing_mm: float) -> None:
    write_secondary_capture(path, rgb, modality="SM", date=date, spacing_mm=spacing_mm)


def test_dicom_study_dates_give_the_interval_and_mm(assistant, data_dir, tmp_path):
    from agent.boundary.toolset import invoke

    image, wbc = _wbc_case(data_dir)
    prior, _, _ = _moved(remove_region(image, wbc), [])
    _write_dicom(tmp_path / "prior.dcm", prior, "20240301", 0.1)
    _write_dicom(tmp_path / "current.dcm", image, "20240313", 0.1)
    s = assistant.new_session()
    s.load("current", tmp_path / "current.dcm")
    s.load("prior", tmp_path / "prior.dcm")
    assert s.image("prior").meta.study_date == "2024-03-01"
    r = invoke(s, "compare_with_prior", CompareRequest())
    assert r.status == "compared", r.reason
    assert r.interval_days == 12
    new = [c for c in r.changes if c.status == "new" and c.label == "WBC"][0]
    assert new.current_area_mm2 == pytest.approx(new.current_area_px * 0.01, rel=1e-3)


def test_ask_what_changed_end_to_end(assistant, data_dir, tmp_path):
    image, wbc = _wbc_case(data_dir)
    prior, _, _ = _moved(remove_region(image, wbc), [])
    s = _session(assistant, tmp_path, prior, image)
    r = assistant.ask(s, "What changed since the prior?")
    assert "compare_with_prior" in [c.name for c in r.tool_calls]
    assert not r.abstained
    assert "new" in r.answer and "WBC" in r.answer and "12 days" in r.answer
    maps = [p for p in r.artifacts.overlays if "change-map" in Path(p).name]
    assert maps and Path(maps[0]).exists()


def _bundled(name: str) -> bool:
    from experts.weights import bundled

    return bundled(name).exists()


@pytest.mark.skipif(not _bundled("polyp_unet.pt"), reason="bundled polyp U-Net missing (python -m training.train_unet)")
def test_polyp_removed_from_prior_is_new_with_the_bundled_unet(assistant, data_dir, tmp_path):
    """The real default polyp segmentation (detector boxes -> LiteMedSAM; the detector fuses the YOLO with the
    bundled U-Net) on both studies of one of their validation frames (not trained on)."""
    from agent.boundary.toolset import invoke

    image, masks = _polyp(data_dir, "2f06af2b-f1d3-42e9-b5e4-1fb1c332957e")
    prior, _, _ = _moved(remove_region(image, masks[0]), [])
    s = _session(assistant, tmp_path, prior, image)
    r = invoke(s, "compare_with_prior", CompareRequest())
    assert r.status == "compared", r.reason
    assert [(c.label, c.status) for c in r.changes] == [("polyp", "new")]
    assert {c.label: c.delta for c in r.count_changes} == {"polyp": 1}
    assert "litemedsam" in r.provenance.note  # the default polyp segmenter


@pytest.mark.skipif(not _bundled("lung_unet.pt"), reason="bundled lung U-Net missing (python -m training.train_unet)")
def test_real_longitudinal_chest_pair_with_the_bundled_lung_unet(assistant, data_dir):
    """Two real films of one patient (Hannover dev pair, 3 days apart): registered, both lung
    fields matched, an opacity change measured, the interval from the given study dates."""
    from agent.boundary.toolset import invoke
    from eval_scenarios.comparison_sets import hannover_pairs

    row = hannover_pairs(data_dir)[1]
    png = data_dir / "hannover_cxr" / "png"
    s = assistant.new_session()
    s.load("current", png / f"{row['current_image']}.png", study_date="2020-04-05")
    s.load("prior", png / f"{row['prior_image']}.png", study_date="2020-04-02")
    r = invoke(s, "compare_with_prior", CompareRequest())
    assert r.status == "compared", r.reason
    assert r.target == "lung" and r.interval_days == int(row["interval_days"]) == 3
    assert sorted(c.label for c in r.changes) == ["left lung", "right lung"]  # matched side to side
    assert all(c.prior_area_px and c.current_area_px for c in r.changes)  # both fields matched
    assert r.lung_opacity_change is not None and abs(r.lung_opacity_change) < 0.5
    assert "unet" in r.provenance.note


def test_how_many_more_answers_the_class_asked_not_the_first_one(assistant, data_dir, tmp_path):
    """The outside probe's case: the same smear as prior (moved) gives RBC +3 but WBC +0; the question asks
    about white cells, so value, unit and first sentence are those of WBC."""
    image, _ = _wbc_case(data_dir)
    prior, _, _ = _moved(image, [])
    s = _session(assistant, tmp_path, prior, image)
    r = assistant.ask(s, "How many more white blood cells are there than in the prior study?")
    cmp = next(c for c in r.tool_calls if c.name == "compare_with_prior")
    deltas = {c["label"]: c["delta"] for c in cmp.result["count_changes"]}
    assert deltas["RBC"] != deltas["WBC"]  # the first class in the list is not the one asked
    assert r.value == deltas["WBC"] and "white blood cells" in r.unit
    first = r.answer.split(f"[{cmp.id}]")[0]
    assert "white blood cell" in first and "RBC" not in first and "red" not in first
    assert r.grounding.ok


@pytest.mark.parametrize("question, label, expected", [
    ("Are there more white blood cells than in the prior study?", "WBC", "yes"),
    ("Are there more platelets than in the prior study?", "Platelets", "no"),
])
def test_yes_no_comparison_is_about_the_class_asked(assistant, data_dir, tmp_path, question, label, expected):
    image, wbc = _wbc_case(data_dir)
    prior, _, _ = _moved(remove_region(image, wbc), [])  # one WBC fewer in the prior
    s = _session(assistant, tmp_path, prior, image)
    r = assistant.ask(s, question)
    cmp = next(c for c in r.tool_calls if c.name == "compare_with_prior")
    delta = {c["label"]: c["delta"] for c in cmp.result["count_changes"]}[label]
    assert (delta > 0) == (expected == "yes")
    assert r.label == expected and r.value == delta


def test_questions_over_time_that_no_tool_answers_on_a_real_pair(assistant, data_dir):
    """Session 7 probe on a Hannover pair: 'is the pneumonia worse?' had been answered 'No' from the lung outlines;
    'more white cells than before?' on chest films gave an answer the grounding check emptied; 'is it the same
    patient?' named a lung finding; an opacity yes/no disagreed with the answer's own 'denser'."""
    from eval_scenarios.comparison_sets import hannover_pairs

    row = hannover_pairs(data_dir)[3]
    png = data_dir / "hannover_cxr" / "png"
    s = assistant.new_session()
    s.load("current", png / f"{row['current_image']}.png")
    s.load("prior", png / f"{row['prior_image']}.png")
    r = assistant.ask(s, "Is the pneumonia worse than before?")
    assert r.label not in ("yes", "no") and "no tool compares diagnoses" in r.answer
    assert any(c.name == "compare_with_prior" for c in r.tool_calls)
    r = assistant.ask(s, "Are there more white cells than before?")
    assert r.abstained and "blood smear" in r.answer and not any(c.name == "compare_with_prior" for c in r.tool_calls)
    r = assistant.ask(s, "Is it the same patient?")
    assert r.abstained and "patient IDs" in r.answer
    s = assistant.new_session()
    s.load("current", png / f"{row['current_image']}.png")
    s.load("prior", png / f"{row['prior_image']}.png")
    r = assistant.ask(s, "Has the opacity changed since the prior?")
    change = next(c for c in r.tool_calls if c.name == "compare_with_prior").result["lung_opacity_change"]
    assert r.label == ("yes" if abs(change) > 0.01 else "no")
    assert ("about the same" in r.answer) == (r.label == "no")
