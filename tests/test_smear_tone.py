"""The blood-cell counter's tone doubt (experts/smear_tone.py) on real BCCD smears: a probe's smears brightened by 40
levels had lost platelets with no warning; a development smear as it is carries no doubt."""

from __future__ import annotations

import numpy as np
import pytest

SMEAR = "bccd/images/BloodImage_00001.jpg"  # a development smear: 1 WBC, 0 platelets


def _smear(data_dir) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(data_dir / SMEAR).convert("RGB"))


def _brighter(rgb: np.ndarray, k: int = 40) -> np.ndarray:
    return np.clip(rgb.astype(np.int16) + k, 0, 255).astype(np.uint8)


def test_a_development_smear_has_no_doubt_and_a_brightened_one_does(data_dir):
    from experts.smear_tone import PLASMA_RANGE, smear_doubt, smear_stats

    rgb = _smear(data_dir)
    assert PLASMA_RANGE[0] <= smear_stats(rgb) <= PLASMA_RANGE[1]
    assert smear_doubt(rgb) is None
    why = smear_doubt(_brighter(rgb))
    assert why is not None and "plasma background is brighter" in why and "179-208" in why
    assert "darker" in (smear_doubt(_brighter(rgb, -40)) or "")


@pytest.mark.usefixtures("one_torch_thread")
def test_the_tone_doubt_joins_the_ruler_doubt(shared_pool, data_dir):
    """A noisy smear (too few whole red cells: the ruler's doubt) that is also brightened carries both reasons."""
    from experts.imaging import StudyImage

    rgb = np.asarray(_smear(data_dir), np.float64)
    noisy = np.clip(rgb + np.random.default_rng(0).normal(0, 25, rgb.shape) + 40, 0, 255).astype(np.uint8)
    doubt = shared_pool.detector("blood_cells").predict(StudyImage.from_pixels(noisy, source="x.png")).provenance.doubt
    assert doubt is not None and "plasma background is brighter" in doubt
    assert doubt.startswith("fewer than 5 whole RBC") and "; the smear's plasma" in doubt


@pytest.mark.usefixtures("one_torch_thread")
def test_a_brightened_smear_count_is_uncertain_through_the_tool(assistant, data_dir, tmp_path):
    """The count tool's result carries the detector's doubt and the answer says 'Uncertain:'; the smear as it is does
    not."""
    from PIL import Image

    rgb = _smear(data_dir)
    for pixels, doubted in ((rgb, False), (_brighter(rgb), True)):
        path = tmp_path / f"smear_{doubted}.png"
        Image.fromarray(pixels).save(path)
        session = assistant.new_session()
        session.load("current", path)
        r = assistant.ask(session, "How many platelets are there?")
        count = next(c for c in r.tool_calls if c.name == "count")
        assert ("plasma background is brighter" in (count.result["provenance"]["doubt"] or "")) is doubted
        assert ("Uncertain: the smear's plasma background" in r.answer) is doubted, r.answer
