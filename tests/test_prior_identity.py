"""Is the prior this patient's?  Files naming different patients are refused; when nothing says whose they are,
the answer says that alignment does not show it; unrelated endoscopy frames no longer align on their black
frame masks.  Real images from ../shared/data (EndoTect / HyperKvasir CC BY 4.0, Hannover chest films)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from experts.imaging import load_image
from experts.registration import register


def _ask_pair(assistant, current, prior, question="Has anything changed since the prior?", keys=(None, None)):
    s = assistant.new_session()
    s.load("current", current)
    s.load("prior", prior)
    s.images["current"].patient_key, s.images["prior"].patient_key = keys
    return assistant.ask(s, question)


@pytest.fixture
def hannover_pair(data_dir):
    row = next(csv.DictReader(open(data_dir / "hannover_cxr" / "longitudinal_pairs.csv")))
    png = data_dir / "hannover_cxr" / "png"
    return png / f"{row['current_image']}.png", png / f"{row['prior_image']}.png"


def test_files_naming_different_patients_are_not_compared(assistant, hannover_pair):
    r = _ask_pair(assistant, *hannover_pair, keys=("patient-a", "patient-b"))
    call = r.tool_calls[-1]
    assert call.name == "compare_with_prior" and call.result["status"] == "refused"
    assert "different patients" in call.result["reason"] and r.abstained


def test_same_patient_id_compares_without_the_warning(assistant, hannover_pair):
    r = _ask_pair(assistant, *hannover_pair, keys=("patient-a", "patient-a"))
    assert r.tool_calls[-1].result["patient_check"] == "same_patient_id"
    assert "same patient" not in r.answer and r.grounding.ok


def test_unknown_identity_is_said_in_the_answer(assistant, hannover_pair):
    r = _ask_pair(assistant, *hannover_pair)
    assert r.tool_calls[-1].result["patient_check"] == "not_checked"
    assert "check that the prior is this patient's" in r.answer and r.grounding.ok
    assert "same patient" in (r.uncertainty or "")


def test_black_frame_masks_do_not_align_unrelated_endoscopy_frames(data_dir):
    """Frames of different colonoscopies: pairs accepted by registration.  The black surround of every frame had
    made 22 of 25 random pairs 'line up' (NCC over identical black pixels); scored on what is not black in both,
    10 of 25 (a seeded sample of 8 pairs here)."""
    frames = sorted((data_dir / "endotect_polyps" / "images").glob("*.jpg"))
    rng = np.random.default_rng(0)
    pairs = [tuple(rng.choice(len(frames), 2, replace=False)) for _ in range(8)]
    accepted = sum(register(load_image(frames[i]).pixels, load_image(frames[j]).pixels).success for i, j in pairs)
    assert accepted <= 5, f"{accepted} of 8 unrelated frame pairs aligned"
    same = load_image(frames[0]).pixels
    shifted = np.roll(same, 12, axis=1)
    assert register(same, shifted).success  # the same frame moved still aligns
