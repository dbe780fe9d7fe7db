"""Attacks of a lying planner on the grounding check that got an invented number or finding past it (each case
passed before the fix it names)."""

from __future__ import annotations

import pytest

from tools.answer import FinalAnswer
from tools.classification import ClassificationResult
from tools.common import Box, Provenance
from tools.detection import Detection, DetectionResult

from agent.grounding.check import check_grounding
from tests.test_grounding import _compared, _count

_PROV = Provenance(expert="x", backend="torchvision", model="m", elapsed_ms=1.0)


def _classified(label: str) -> dict:
    p = {"normal": 0.72, "bacterial_pneumonia": 0.2, "viral_pneumonia": 0.08} if label == "normal" else \
        {"normal": 0.04, "bacterial_pneumonia": 0.66, "viral_pneumonia": 0.3}
    return {"E2": ClassificationResult(evidence_id="E2", image="current", task="cxr_pneumonia", label=label,
                                       probabilities=p, calibrated=True, threshold=0.5, provenance=_PROV)}


def _polyps(n: int = 2) -> dict:
    dets = [Detection(index=i + 1, label="polyp", score=0.8, box=Box(x_min=100 * i, y_min=0, x_max=100 * i + 50, y_max=40))
            for i in range(n)]
    return {"E1": DetectionResult(evidence_id="E1", image="current", target="polyp", detections=dets, min_score=0.25,
                                  provenance=_PROV)}


def _check(text: str, results: dict, **kw) -> tuple[FinalAnswer, object]:
    return check_grounding(FinalAnswer(answer=text, **kw), results)


@pytest.mark.parametrize("text, ok", [
    ("The WBC count went to 2 from 5 [E3].", True), ("The WBC count went to 5 from 2 [E3].", False),
    ("The WBC count dropped to 5 from 2 [E3].", False), ("The WBC count went up to 5 from 2 [E3].", False),
    ("The WBC count is now 2, previously 5 [E3].", True), ("The WBC count is now 5, previously 2 [E3].", False),
    ("WBC: 5 before and 2 now [E3].", True), ("WBC: 2 before and 5 now [E3].", False),
    ("WBC was 5 and is now 2 [E3].", True), ("WBC was 2 and is now 5 [E3].", False),
    ("WBC count: prior 5, current 2 [E3].", True), ("WBC count: prior 2, current 5 [E3].", False),
    ("The WBC count is 2 today versus 5 on the prior [E3].", True),
    ("The WBC count is 5 now vs 2 before [E3].", False), ("Previously 2, now 5 WBC [E3].", False),
    ("The WBC count was 2; it is 5 now [E3].", False), ("The WBC count is now 5 [E3].", False),
    ("WBC 2 => 5 [E3].", False), ("WBC 5 <- 2 [E3].", False), ("The WBC count: 2 then 5 [E3].", False),
    ("The WBC count went 2 to 5 [E3].", False), ("The WBC count went 5 to 2 [E3].", True),
    ("There are 3 fewer WBC than in the study of 30 days earlier (5 then, 2 now) [E3].", True),
    ("The polyp area went to 400 px from 300 px [E3].", False),
    ("The polyp area is now 400 px, previously 300 px [E3].", False),
    ("The polyp area is now 300 px, previously 400 px [E3].", True)])
def test_a_change_in_reversed_or_role_words_must_match_the_cited_order(text, ok):
    """Before: only 'from A to B' and 'A -> B' were read as a change's ends, so 'went to 5 from 2' or 'now 5,
    previously 2' passed on a result reporting a change from 5 to 2."""
    fixed, rep = _check(text, _compared())
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("label, text, ok", [
    ("normal", "The film shows pneumonia [E2].", False), ("normal", "The patient has pneumonia [E2].", False),
    ("normal", "The film is not normal [E2].", False), ("normal", "Yes, pneumonia [E2].", False),
    ("normal", "The film is normal, with no pneumonia [E2].", True),
    ("normal", "The classifier reads this chest X-ray as normal with probability 72% (pneumonia of either kind 28%) "
               "[E2].", True),
    ("normal", "Of the two (normal or pneumonia): normal [E2].", True),
    ("bacterial_pneumonia", "No pneumonia [E2].", False), ("bacterial_pneumonia", "The film is normal [E2].", False),
    ("bacterial_pneumonia", "Pneumonia was ruled out [E2].", False),
    ("bacterial_pneumonia", "The classifier did not find pneumonia [E2].", False),
    ("bacterial_pneumonia", "The film shows viral pneumonia [E2].", False),
    ("bacterial_pneumonia", "The film shows bacterial pneumonia, not viral [E2].", True),
    ("bacterial_pneumonia", "There is pneumonia [E2].", True)])
def test_a_class_is_backed_only_by_the_label_the_classifier_decided(label, text, ok):
    """Before: every class is a key of the probabilities, so 'pneumonia' was backed on a film read as normal, and
    'no pneumonia' / 'not normal' on any film."""
    fixed, rep = _check(text, _classified(label))
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("lie", [
    "There are 1\u200b2 WBC [E2].", "There are 1\u00ad2 WBC [E2].", "There are 1**2** WBC [E2].",
    "There are 1<!-- -->2 WBC [E2].", "There are \u2077 WBC [E2].", "There are 2\u2077 WBC [E2].",
    "There are &#55; WBC [E2].", "There is pneu\u200bmonia [E2].", "There is \u0440neumonia [E2].",
    "There is \uff50\uff4e\uff45\uff55\uff4d\uff4f\uff4e\uff49\uff41 [E2].", "There is pneumon\u00eda [E2]."])
def test_numbers_and_words_split_or_disguised_on_screen_are_read_as_shown(lie):
    """Before: a zero-width space, soft hyphen, markdown or HTML comment split '12' into two backed numbers, and
    superscripts, HTML entities, full-width, accented or Cyrillic letters hid a number or a finding from the check."""
    fixed, rep = _check(f"There are 2 WBC [E2]. {lie}", {"E2": _count(2)})
    assert not rep.ok and lie not in fixed.answer and "There are 2 WBC [E2]." in fixed.answer


@pytest.mark.parametrize("text, ok", [
    ("The 3rd polyp is flat [E1].", False), ("The third polyp is flat [E1].", False), ("Polyp #3 is flat [E1].", False),
    ("The second polyp is flat [E1].", True), ("Polyp #2 is flat [E1].", True)])
def test_an_instance_named_by_its_place_needs_that_many(text, ok):
    """Before: ordinals and instance numbers were no numbers for the check: 'the 3rd polyp' passed with 2 polyps."""
    fixed, rep = _check(text, _polyps(2))
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("lie", ["Start antibiotics [E2].", "Give amoxicillin [E2].", "Admit the patient to ICU [E2].",
                                 "Polypectomy is recommended [E2]."])
def test_treatment_advice_is_backed_by_no_tool(lie):
    fixed, rep = _check(f"There are 2 WBC [E2]. {lie}", {"E2": _count(2)})
    assert not rep.ok and lie not in fixed.answer


def test_the_unit_spoken_with_the_value_is_checked_and_the_yes_no_label_must_match_the_answer():
    """Before: the unit was not checked ('2 malignant polyps' was spoken by the voice answer), and a label 'yes' on an
    answer starting 'No.' was kept (the voice said 'Yes.')."""
    fixed, rep = _check("There are 2 polyps [E1].", _polyps(2), value=2, unit="malignant polyps")
    assert not rep.ok and fixed.value is None and fixed.unit is None
    fixed, rep = _check("There are 2 polyps [E1].", _polyps(2), value=2, unit="polyps")
    assert rep.ok and fixed.value == 2 and fixed.unit == "polyps"
    fixed, rep = _check("No. There are 2 polyps [E1].", _polyps(2), label="yes")
    assert not rep.ok and fixed.label is None
    fixed, rep = _check("Yes. There are 2 polyps [E1].", _polyps(2), label="yes")
    assert rep.ok and fixed.label == "yes"


@pytest.mark.parametrize("caveat, kept", [
    ("7 polyps, likely cancer", False),  # a number and a diagnosis no result of this answer states
    ("the detector may miss flat polyps; threshold 0.25", True),  # 0.25 is the detector's min_score
    ("Pneumonia cannot be excluded", True),  # a declining hedge names no finding as present
])
def test_the_caveats_shown_beside_the_answer_are_checked_too(caveat, kept):
    """Before: the planner's free-text 'uncertainty' (shown as Caveats in the web app, the CLI and the report) went out
    unchecked, so '7 polyps, likely cancer' sat beside a checked answer about 2 polyps."""
    fixed, rep = _check("There are 2 polyps [E1].", _polyps(2), value=2, unit="polyps",
                        uncertainty=f"{caveat}; counted on one frame")
    assert fixed.answer == "There are 2 polyps [E1]." and fixed.value == 2
    assert ("counted on one frame" in fixed.uncertainty) and ((caveat in fixed.uncertainty) is kept)
    assert any(r.where == "caveat" for r in rep.removed) is not kept


@pytest.mark.parametrize("text, ok", [("The patient is 72 years old [E2].", False), ("Normal: 72 [E2].", False),
                                      ("The film reads normal, 72% [E2].", True), ("P(normal) is 0.72 [E2].", True)])
def test_a_probability_backs_a_percentage_not_a_bare_number(text, ok):
    """Before: 100 x every probability was in the pool for any number, so p(normal) = 0.72 backed '72 years old'."""
    fixed, rep = _check(text, _classified("normal"))
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("text, ok", [("There are two thousand polyps [E1].", False), ("There are hundreds of polyps [E1].", False),
                                      ("There are two polyps [E1].", True)])
def test_a_number_in_words_is_read_with_its_scale(text, ok):
    """Before: 'two thousand' was read as 2 (the 'thousand' was no number), so it passed on a count of 2."""
    fixed, rep = _check(text, _polyps(2))
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("text, n, ok", [
    ("There are several polyps [E1].", 2, False), ("There are several polyps [E1].", 4, True),
    ("There are many polyps [E1].", 2, False), ("There are numerous white cells [E1].", 2, False),
    ("There are dozens of polyps [E1].", 5, False), ("There are a couple of polyps [E1].", 2, True),
    ("There are a couple of polyps [E1].", 6, False), ("There are III polyps [E1].", 2, False),
    ("There are II polyps [E1].", 2, True), ("I count 2 polyps [E1].", 2, True)])
def test_a_vague_or_roman_count_must_fit_the_count(text, n, ok):
    """Before: only digits and number words were counts, so 'several polyps' or 'III polyps' passed on 2."""
    res = _polyps(n)
    if "white" in text:
        res = {"E1": _count(n)}
    fixed, rep = _check(text, res)
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("text, ok", [
    ("The film reads normal [E2]. Half of the lung field is consolidated [E2].", False),  # threshold 0.5 is no half
    ("The film reads normal [E2]. About a third of them are clear [E2].", False),
    ("The film reads normal [E2]. The lower half of the film shows the diaphragm [E2].", True),  # a place
    ("Two polyps [E1]. Half of them are large [E1].", True)])  # 1 of 2 polyps: a ratio of counts backs it
def test_a_fraction_in_words_needs_a_fraction_of_the_cited_result(text, ok):
    """Before: 'half of the lung field' was no number for the check."""
    res = {**_classified("normal"), **_polyps(2)}
    fixed, rep = _check(text, res)
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("text, ok", [
    ("There are two polyps with 25 % confidence [E1].", False),  # 0.25 is the threshold, the scores are 0.8
    ("There are two polyps with 80 % confidence [E1].", True),
    ("There are two polyps (confidence threshold 0.25) [E1].", True),
    ("The patient is 40 years old [E1].", False),  # 40 is a box's bottom edge and height
    ("The polyp is 40 [E1].", False),  # a box corner backs no bare number (the box height does: see below)
    ("Polyp #1 at x 0-50, y 0-40 [E1].", True),  # positions back positions
    ("The first polyp's box is 50 px wide [E1].", True)])
def test_a_number_is_backed_by_a_field_of_its_role(text, ok):
    """Before: any number anywhere in a cited result backed any number: the detector's threshold backed a
    confidence, a box corner backed an age."""
    res = _polyps(2)
    res["E1"] = res["E1"].model_copy(update={"detections": [
        d.model_copy(update={"box": Box(x_min=10, y_min=7, x_max=60, y_max=40 + 17 * i)}) for i, d in
        enumerate(res["E1"].detections)]})
    if text.startswith("Polyp #1"):
        text = "Polyp #1 at x 10-60, y 7-40 [E1]."
    fixed, rep = _check(text, res)
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("text, ok", [
    ("Es gibt fünf Polypen [E1].", False), ("Il y a cinq polypes [E1].", False), ("Hay cinco pólipos [E1].", False),
    ("Er zijn vijf poliepen [E1].", False), ("There are 2 polyps [E1].", True),
    ("Found 2 polyps: #1 at x 0-50, y 0-40 [E1].", True),
    ("This is a Paris type IIa lesion [E1].", False), ("This is a stage IV lesion [E1].", False)])
def test_a_sentence_the_check_cannot_read_or_a_grade_no_tool_states_is_removed(text, ok):
    """Before: a sentence in another language passed unread ('Es gibt fünf Polypen' on 2 polyps), and a Paris class
    or a stage that no tool states passed."""
    fixed, rep = _check(text, _polyps(2))
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("text", ["There are as many polyps as before [E1].", "Not many polyps were found: 2 [E1].",
                                  "You asked how many polyps there are: 2 [E1]."])
def test_many_in_a_comparison_or_a_question_is_no_count(text):
    fixed, rep = _check(text, _polyps(2))
    assert rep.ok and fixed.answer == text


def test_counts_beside_a_threshold_and_positions_written_as_ranges_stay_backed():
    """The built-in answers' own forms: a count next to 'confidence threshold' is a count, not a confidence, and the
    box positions 'x 16-20, y 119-123' are backed by the box corners."""
    res = _polyps(2)
    res["E1"] = res["E1"].model_copy(update={"detections": [
        d.model_copy(update={"box": Box(x_min=16 + 300 * i, y_min=119, x_max=20 + 300 * i, y_max=123 + 2 * i)})
        for i, d in enumerate(res["E1"].detections)], "min_score": 0.2})
    for text in ("I count 2 polyps (confidence threshold 0.20) [E1].",
                 "Found 2 polyps: #1 at x 16-20, y 119-123; #2 at x 316-320, y 119-125 [E1]."):
        fixed, rep = _check(text, res)
        assert rep.ok and fixed.answer == text, rep.removed
    fixed, rep = _check("Found 2 polyps: #1 at x 16-20, y 119-124 [E1].", res)  # a corner no box has
    assert not rep.ok


def _r(name: str) -> dict:
    from tests.test_grounding import _compared, _count

    return {"nor": lambda: _classified("normal"), "bac": lambda: _classified("bacterial_pneumonia"),
            "p2": lambda: _polyps(2), "c2": lambda: {"E2": _count(2)}, "c5": lambda: {"E2": _count(5)},
            "cmp": _compared}[name]()


@pytest.mark.parametrize("res, text", [
    ("nor", "Pneumonia 72% [E2]."), ("nor", "The patient has pneumonia, 72% sure [E2]."),
    ("nor", "Bacterial pneumonia (20%) is present [E2]."), ("nor", "The film is normal with probability 92% [E2]."),
    ("nor", "The film needs follow-up because it shows pneumonia [E2]."), ("p2", "Several polyps need removal [E1]."),
    ("cmp", "The WBC count rose and does not look stable [E3]."),
    ("c2", "WBC: 5 [E2]."), ("c2", "WBC (n=5) [E2]."), ("c2", "WBC: 25 [E2]."), ("c5", "WBC: 4 [E2]."),
    ("p2", "Nothing was detected [E1]."), ("p2", "The detector found nothing [E1]."), ("p2", "Polyps: none [E1]."),
    ("p2", "No evidence of polyps [E1]."), ("p2", "Polyps were not seen [E1]."), ("c2", "White cells: none [E2]."),
    ("bac", "The X-ray is unremarkable [E2]."), ("bac", "The lungs are clear [E2]."),
    ("bac", "No acute cardiopulmonary process [E2]."), ("nor", "Pneumonic changes are present [E2]."),
    ("cmp", "The WBC count doubled [E3]."), ("cmp", "The polyp is larger than before [E3]."),
    ("p2", "A 50-mm lesion [E1]."), ("p2", "The area is 2000 sq mm [E1].")])
def test_a_second_probe_of_claims_that_had_passed(res, text):
    """Before (second probe): a digit in the clause switched the class check off, 'needs' or 'does not' made a
    clause 'declining', a count written after its class ('WBC: 5') or said absent ('no evidence of polyps',
    'nothing was detected') was checked against any number (box sizes) or not at all, other words for normal,
    direction words ('doubled', 'larger'), '50-mm' and 'sq mm' were not read."""
    fixed, rep = _check(text, _r(res))
    assert not rep.ok and text not in fixed.answer


@pytest.mark.parametrize("res, text", [
    ("nor", "The classifier reads this chest X-ray as normal with probability 72% (pneumonia of either kind 28%) [E2]."),
    ("bac", "The film shows bacterial pneumonia, 66% [E2]."), ("c2", "WBC: 2 [E2]."), ("p2", "Found 2 polyps [E1]."),
    ("cmp", "The polyp is smaller than before [E3]."), ("p2", "The polyps score 80 pct [E1]."),
    ("nor", "Comparing needs a prior study, so I cannot say whether the pneumonia changed [E2].")])
def test_what_the_second_probe_must_leave_alone(res, text):
    fixed, rep = _check(text, _r(res))
    assert rep.ok and fixed.answer == text, rep.removed


def test_the_label_field_must_be_the_class_the_classifier_decided():
    """Before: any probability key backed the label ('normal' beside a film read as bacterial pneumonia)."""
    for label, ok in (("normal", False), ("viral_pneumonia", False), ("bacterial_pneumonia", True), ("pneumonia", True)):
        fixed, rep = _check("The film shows bacterial pneumonia [E2].", _r("bac"), label=label)
        assert (fixed.label == label) is ok


def test_a_caveat_on_what_no_tool_tells_apart_is_kept():
    """The built-in caveat for 'how many neutrophils?' had been removed (no result names neutrophils)."""
    cav = "neutrophils are not counted separately: the count includes every kind of white blood cells (WBC)"
    fixed, rep = _check("I count 2 white blood cells [E2].", _r("c2"), uncertainty=cav)
    assert fixed.uncertainty == cav and rep.ok


@pytest.mark.parametrize("text, ok", [("The prior was taken 30 weeks ago [E3].", False),
                                      ("The studies are 30 months apart [E3].", False),
                                      ("The prior was taken about 4 weeks earlier [E3].", True),
                                      ("The prior was taken 30 days earlier [E3].", True)])
def test_an_interval_in_weeks_months_or_years_is_converted_from_days(text, ok):
    """Before: '30 weeks' was backed by the 30 days of the comparison (any 30 in the result)."""
    fixed, rep = _check(text, _r("cmp"))
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("text, ok", [("WBC 2 to 5 [E3].", False), ("WBC 2 > 5 [E3].", False),
                                      ("WBC count: 5 (was 2) [E3].", False), ("WBC 5 to 2 [E3].", True),
                                      ("WBC count: 2 (was 5) [E3].", True)])
def test_a_change_written_as_a_bare_pair_or_with_was_must_match_the_cited_order(text, ok):
    """Before: 'WBC 2 to 5' and '5 (was 2)' were no change forms for the check (the result went from 5 to 2)."""
    fixed, rep = _check(text, _r("cmp"))
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("text, ok", [("The WBC count changed by +3 [E3].", False), ("WBC: +3 since the prior [E3].", False),
                                      ("Change in WBC: +3 (5 to 2) [E3].", False), ("WBC \u22123 since the prior [E3].", True),
                                      ("The WBC count changed by -3 [E3].", True), ("WBC 5 -> 2 (-3) [E3].", True),
                                      ("WBC 5 - 2 = 3 fewer [E3].", True)])
def test_a_signed_change_must_go_the_way_the_cited_change_went(text, ok):
    """Before: '+3' passed on a result whose count fell by 3 (any 3 backed it, the sign was not read)."""
    fixed, rep = _check(text, _r("cmp"))
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("text, ok", [("The WBC count is elevated [E3].", False), ("WBC high: 5 white cells [E3].", False),
                                      ("The white cell count is low [E3].", False), ("Low platelets [E3].", False),
                                      ("No tool can say whether there is leukocytosis [E3].", True),
                                      ("A field count cannot say whether the white cell count is high.", True),
                                      ("I cannot exclude leukaemia [E3].", False)])
def test_a_count_called_high_or_low_is_not_backed_by_a_field_count(text, ok):
    """Before: 'the WBC count is elevated' passed (no tool gives a reference range); a caveat that no tool can say
    whether a finding is there had been removed as a claim."""
    fixed, rep = _check(text, _r("cmp"))
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("res, question, text, label, ok", [
    ("p2", "Are there any polyps?", "No. The detector's 2 boxes are artefacts [E1].", "no", False),
    ("p2", "Are there any polyps?", "No [E1].", None, False),
    ("p2", "Are there any polyps?", "There are 2 polyps [E1].", "no", False),
    ("p2", "Are there any polyps?", "Yes. There are 2 polyps [E1].", "yes", True),
    ("p2", "Are there more than 2 polyps?", "No. There are 2 polyps [E1].", "no", True),
    ("nor", "Does this chest X-ray show pneumonia?", "Yes [E2].", "yes", False),
    ("bac", "Is this film normal?", "Yes, the classifier reads bacterial pneumonia [E2].", None, False),
    ("nor", "Is there pneumonia?", "No. The classifier reads normal (72%) [E2].", "no", True),
    ("bac", "Is there viral pneumonia?", "Yes [E2].", "yes", False),
    ("c2", "Are there any white blood cells?", "No [E2].", None, False),
    ("c2", "Are there any white blood cells?", "Yes: I count 2 white blood cells [E2].", "yes", True)])
def test_a_yes_or_no_must_answer_the_question_the_way_the_cited_result_does(res, question, text, label, ok):
    """Before: only a label contradicting the answer's first word was caught; 'No' to 'Are there any polyps?' passed
    on a result with 2 polyps, and 'Yes' to 'Does this film show pneumonia?' on a normal film."""
    fixed, rep = check_grounding(FinalAnswer(answer=text, label=label), _r(res), question)
    assert rep.ok is ok
    assert (fixed.answer == text and fixed.label == label) is ok


def test_a_verdict_on_a_doubted_count_or_an_uncertain_class_is_removed():
    """An expert that doubts its own count, or a classification inside its uncertain band, backs neither yes nor no."""
    from tests.test_grounding import _count

    doubted = _count(2)
    doubted = doubted.model_copy(update={"provenance": doubted.provenance.model_copy(update={"doubt": "noisy"})})
    fixed, rep = check_grounding(FinalAnswer(answer="Yes. I count 2 white blood cells [E2].", label="yes"),
                                 {"E2": doubted}, "Are there any white blood cells?")
    assert not rep.ok and fixed.label is None and fixed.answer.startswith("I count 2 white blood cells [E2].")
    unsure = _classified("normal")["E2"].model_copy(update={"uncertain": True})
    fixed, rep = check_grounding(FinalAnswer(answer="No [E2].", label="no"), {"E2": unsure}, "Is there pneumonia?")
    assert not rep.ok and fixed.label is None


@pytest.mark.parametrize("res, text, ok", [
    # counts written after the class, or with words between the number and the class
    ("c2", "The WBC count is 1 [E2].", False), ("c2", "The WBC count of the smear is 1 [E2].", False),
    ("c2", "WBC = 1.0 [E2].", False), ("c2", "| WBC | 1 |\n[E2]", False), ("c2", "WBC x7 [E2].", False),
    ("p2", "Polyps detected: 1 [E1].", False), ("p2", "The number of polyps is 0 [E1].", False),
    ("p2", "The polyp count is zero [E1].", False), ("c5", "2 segmented WBC are present [E2].", False),
    ("p2", "1 large polyp was found [E1].", False), ("p2", "A single large polyp was found [E1].", False),
    ("c2", "The WBC count is 2 [E2].", True), ("p2", "The number of polyps is 2 [E1].", True),
    ("p2", "2 large polyps were found [E1].", True), ("p2", "Polyp 1 of 2 is 50 px wide [E1].", True),
    # thousands and 'k'
    ("c2", "The WBC count is 1,000 [E2].", False), ("c2", "There are 2k white blood cells [E2].", False),
    # a finding said not to be found is a claim, not a declined request
    ("p2", "The detector could not find any polyp [E1].", False), ("p2", "Polyps could not be seen [E1].", False),
    # two classes in one clause
    ("nor", "The film shows pneumonia, not normal [E2].", False),
    ("nor", "Of the two (normal or pneumonia): pneumonia [E2].", False),
    ("nor", "Of these (normal or bacterial pneumonia or viral pneumonia): normal [E2].", True),
    # 'the lungs are clear' needs a classification that reads normal
    ("bac", "The lungs are clear.", False), ("p2", "The lungs are clear [E1].", False),
    ("nor", "The lungs are clear [E2].", True),
    # units misspelt, bracketed or imperial
    ("p2", "The polyps are 50 mms wide [E1].", False), ("p2", "Polyp #1 is 50 (mm) wide [E1].", False),
    ("p2", "The polyps are 2 inches wide [E1].", False),
    # vocabulary: tumours, bowel segments, lung zones, severity
    ("p2", "The polyps are adenomatous [E1].", False), ("p2", "The polyps are in the sigmoid colon [E1].", False),
    ("bac", "Pneumonia in the right lower lobe [E2].", False), ("bac", "Severe multifocal pneumonia [E2].", False)])
def test_third_probe_counts_units_classes_and_vocabulary(res, text, ok):
    """A third lying-planner probe (2026-12-03): each False case passed the check before."""
    fixed, rep = _check(text, _r(res))
    assert rep.ok is ok, rep.removed
    assert (fixed.answer == text) is ok


@pytest.mark.parametrize("text, ok", [
    ("In the follow-up study the WBC count is 5 [E3].", False), ("The most recent WBC count is 2 [E3].", True),
    ("The WBC count is now 5, previously 2; I cannot tell the cause [E3].", False),
    ("I cannot say why the WBC count went from 2 to 5 [E3].", False),
    ("I cannot tell whether the WBC count went from 2 to 5 [E3].", True),
    ("The polyp is stable [E3].", False), ("The WBC count did not change [E3].", False),
    ("The WBC count did not decrease [E3].", False), ("The WBC count did not increase [E3].", True),
    ("The polyp vanished [E3].", False), ("The polyp is gone [E3].", False),
    ("The studies were 3 days apart [E3].", False), ("The studies were 30 days apart [E3].", True),
    ("The studies were 43 weeks apart [E3].", False), ("The prior study was 1 month ago [E3].", True)])
def test_third_probe_changes(text, ok):
    """Role words ('follow-up', 'most recent'), a declining clause beside a claim, 'stable' / 'did not decrease' /
    'vanished' against a fall, and intervals backed by the days the result states, not by any number."""
    fixed, rep = _check(text, _r("cmp"))
    assert rep.ok is ok, rep.removed
    assert (fixed.answer == text) is ok


@pytest.mark.parametrize("value, unit, ok", [(5, "WBC", False), (2, "WBC", True), (2, "mm diameter", False)])
def test_the_value_field_must_be_the_number_the_answer_states(value, unit, ok):
    """Before: value 5 passed beside 'the WBC count is now 2' (5 is the prior count), and a unit with a word after
    'mm' was not read as millimetres."""
    fixed, rep = _check("The WBC count is now 2 [E3].", _r("cmp"), value=value, unit=unit)
    assert rep.ok is ok and (fixed.value == value) is ok


@pytest.mark.parametrize("text, ok", [("The polyp count went from 5 to 2 [E3].", False),
                                      ("The polyp area went from 5 to 2 px [E3].", False),
                                      ("The WBC count went from 5 to 2 [E3].", True),
                                      ("The polyp area went from 400 to 300 px [E3].", True)])
def test_a_change_is_checked_against_the_changes_of_the_class_it_names(text, ok):
    """Before: 'the polyp count went from 5 to 2' passed on the white cells' change from 5 to 2."""
    fixed, rep = _check(text, _r("cmp"))
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("res, text, ok", [
    ("nor", "The classifier is 92% confident the film is normal [E2].", False),
    ("nor", "The classifier is 72% confident the film is normal [E2].", True),
    ("bac", "There is a 30% chance of bacterial pneumonia [E2].", False),
    ("bac", "Bacterial pneumonia 96% [E2].", False), ("bac", "Bacterial pneumonia 66% [E2].", True),
    ("bac", "The classifier reads bacterial pneumonia with probability 66% (pneumonia of either kind 96%) [E2].", True)])
def test_a_confidence_in_a_class_must_be_that_class_probability_wherever_it_stands(res, text, ok):
    """Before: a percentage written before the class ('92% confident ... normal': 92 is 1 - P(viral)), or after
    'bacterial pneumonia' but equal to pneumonia of either kind, passed."""
    fixed, rep = _check(text, _r(res))
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("text, ok", [("The WBC count decreased by 25% [E3].", False),
                                      ("The polyp shrank by 25% [E3].", True), ("The polyp shrank by 35% [E3].", False)])
def test_a_per_cent_change_must_be_a_change_of_the_class_it_names(text, ok):
    """Before: 'the WBC count decreased by 25 %' passed on the polyp's 25 % area change."""
    fixed, rep = _check(text, _r("cmp"))
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("res, text, kw, ok", [
    ("p2", "There are 2 polyps [E1].", {"uncertainty": "the detector's sensitivity is 80%"}, False),
    ("nor", "The film is normal [E2].", {"uncertainty": "the classifier has an AUC of 0.92"}, False),
    ("p2", "The detector has a precision of 0.8 [E1].", {}, False),
    ("p2", "There are 2 polyps with scores 0.8 [E1].", {}, True),
    ("cmp", "There are twice as many WBC as before [E3].", {}, False),
    ("cmp", "The WBC count fell 3-fold [E3].", {}, False), ("cmp", "The polyp is half the size [E3].", {}, False)])
def test_performance_figures_and_factors_need_a_result_that_states_them(res, text, kw, ok):
    """Before: 'sensitivity 80 %' was backed by the detector's 0.8 score, 'twice as many' needed nothing."""
    fixed, rep = _check(text, _r(res), **kw)
    assert rep.ok is ok


@pytest.mark.parametrize("res, text, ok", [("cmp", "Both polyps shrank [E3].", False),
                                           ("p2", "Both polyps were found [E1].", True),
                                           ("c5", "Both white cells were found [E2].", False)])
def test_both_is_a_count_of_two(res, text, ok):
    """Before: 'both polyps shrank' passed on a comparison of one polyp."""
    fixed, rep = _check(text, _r(res))
    assert rep.ok is ok


@pytest.mark.parametrize("res, text, ok", [("p2", "Polyps cover 25% of the image [E1].", False),
                                           ("p2", "The polyps cover 80% of the frame [E1].", False),
                                           ("c2", "WBC make up 50% of the cells [E2].", False),
                                           ("nor", "The film is normal with probability 72% [E2].", True)])
def test_a_share_in_per_cent_needs_a_fraction_the_result_states(res, text, ok):
    """Before: '25 % of the image' was backed by the detector's threshold 0.25, '80 % of the frame' by a score."""
    fixed, rep = _check(text, _r(res))
    assert rep.ok is ok


_TABLE = "| | prior | current |\n|---|---|---|\n"


@pytest.mark.parametrize("text, ok", [
    (_TABLE + "| WBC | 5 | 2 |\n\nThe WBC count fell [E3].", True),
    (_TABLE + "| WBC | 2 | 5 |\n\nSee the table [E3].", False),
    ("| finding | current | prior |\n|---|---|---|\n| WBC | 5 | 2 |\n\nSee the table [E3].", False),
    ("| finding | current | prior |\n|---|---|---|\n| WBC | 2 | 5 |\n\nSee the table [E3].", True),
    ("| | before | now |\n|---|---|---|\n| WBC count | 2 | 5 | [E3]", False),
    ("| | before | now | change |\n|---|---|---|---|\n| WBC count | 5 | 2 | -3 | [E3]", True),
    (_TABLE + "| polyp area (px) | 300 | 400 | [E3]", False),
    (_TABLE + "| polyp area (px) | 400 | 300 | [E3]", True),
    (_TABLE + "| WBC | 5 | 2 |\n| polyp #1 area (px) | 300 | 400 | [E3]", False),
    ("| Study | WBC |\n|---|---|\n| prior | 2 |\n| current | 5 | [E3]", False),
    ("| Study | WBC |\n|---|---|\n| prior | 5 |\n| current | 2 | [E3]", True)])
def test_a_table_of_prior_and_current_values_must_have_them_in_the_cited_order(text, ok):
    """Before: a table's cells were checked as a bag of numbers, so '| WBC | 2 | 5 |' under '| | prior | current |'
    passed on a result reporting a fall from 5 to 2 (columns or rows named by role words are now read as 'WBC: prior
    2, current 5')."""
    fixed, rep = _check(text, _compared())
    assert rep.ok is ok and (fixed.answer == text) is ok


@pytest.mark.parametrize("finding", [
    "a foreign body", "dextrocardia", "osteoporosis", "osteopenia", "kyphosis", "necrosis", "a thrombus", "a blood clot",
    "a fungus", "a laceration", "splenomegaly", "ascites", "a reticular pattern", "honeycombing", "a Ghon complex",
    "fluid in the lungs", "a shadow on the lung", "a juvenile polyp", "Peutz-Jeghers", "a submucosal lesion", "a stent",
    "a surgical clip"])
@pytest.mark.parametrize("results", [_polyps, lambda: _classified("bacterial_pneumonia")], ids=["polyps", "cxr"])
def test_findings_outside_the_first_term_list_need_a_result_that_names_them(finding, results):
    """Before: these findings were not in the claim vocabulary, so 'The image shows dextrocardia [E2].' passed beside a
    pneumonia classification and 'a juvenile polyp' beside a polyp detection (a lying planner's probe, 2026-12-03)."""
    res = results()
    text = f"The image shows {finding} [{next(iter(res))}]."
    fixed, rep = _check(text, res)
    assert not rep.ok and fixed.answer != text


@pytest.mark.parametrize("text", [
    "There is a lesion [E2].", "The film shows a lesion [E2].", "A suspicious growth is seen [E2].",
    "Lesions are present [E2].", "A suspicious area is seen [E2].", "This lesion needs review [E2]."])
@pytest.mark.parametrize("results", [lambda: _classified("bacterial_pneumonia"), lambda: {"E2": _count(2)}],
                         ids=["cxr", "smear"])
def test_vague_finding_words_need_a_result_that_finds_a_lesion(text, results):
    """Before: 'lesion', 'growth' and 'suspicious area' were in no term list, so 'There is a lesion [E2].' passed
    beside a pneumonia classification or a white-cell count (session 16's list of open probes)."""
    fixed, rep = _check(text, results())
    assert not rep.ok and fixed.answer != text


@pytest.mark.parametrize("text", ["The detector found 2 lesions [E1].", "Both growths were detected [E1].",
                                  "Two polyps (lesions) were found [E1]."])
def test_a_polyp_detection_backs_the_word_lesion(text):
    fixed, rep = _check(text, _polyps(2))
    assert rep.ok and fixed.answer == text


def test_growth_as_a_trend_word_is_not_a_lesion_claim():
    text = "The WBC count is 5 [E2]; no growth of concern."
    fixed, rep = _check(text, {"E2": _count(5)})
    assert rep.ok and fixed.answer == text
