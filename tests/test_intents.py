"""Question parsing of the built-in planner (pure functions)."""

from __future__ import annotations

import pytest

from agent.builtin.intents import parse_question


@pytest.mark.parametrize(
    "question, action, target, classes",
    [
        ("How many white blood cells are in this smear?", "count", "blood_cells", ("WBC",)),
        ("how many platelets?", "count", "blood_cells", ("Platelets",)),
        ("Count the red cells", "count", "blood_cells", ("RBC",)),
        ("How many polyps are visible?", "count", "polyp", None),
        ("Where is the polyp?", "detect", "polyp", None),
        ("Show the white cells", "detect", "blood_cells", ("WBC",)),
        ("Segment the polyp", "segment", "polyp", None),
        ("Outline the lungs", "segment", "lung", None),
        ("How big is the polyp?", "measure", "polyp", None),
        ("Is there pneumonia?", "classify", None, None),
        ("Bacterial or viral?", "classify", None, None),
        ("What kind of image is this?", "image_kind", None, None),
        ("Compare with the prior", "compare", None, None),
        ("Has the polyp grown since the last study?", "compare", "polyp", None),
        ("What is the patient's blood pressure?", "unknown", None, None),
        ("Is there a fracture?", "unknown", None, None),
    ],
)
def test_single_intents(question, action, target, classes):
    it = parse_question(question)[0]
    assert (it.action, it.target, it.classes) == (action, target, classes)


def test_compound_question_splits_and_inherits_target():
    its = parse_question("Count the white cells and give the area of the largest")
    assert [i.action for i in its] == ["count", "measure"]
    assert its[1].target == "blood_cells" and its[1].classes == ("WBC",) and its[1].largest


def test_segment_and_measure_merge():
    its = parse_question("Segment the polyp and tell me its size")
    assert [i.action for i in its] == ["measure"] and its[0].target == "polyp"


def test_yes_no_negation_and_expected_number():
    it = parse_question("Are there three white cells?")[0]
    assert it.yes_no and it.expected == 3 and it.action == "count"
    it = parse_question("Is there no polyp?")[0]
    assert it.yes_no and it.negated
    it = parse_question("Is there a platelet cluster?")[0]
    assert it.yes_no and not it.negated and it.classes == ("Platelets",)


def test_follow_up_inherits_previous_target():
    prev = parse_question("How many polyps are there?")[0]
    it = parse_question("How big is it?", previous=prev)[0]
    assert it.action == "measure" and it.target == "polyp"


def test_describe_intent():
    assert parse_question("Describe this image")[0].action == "describe"
    assert parse_question("What do you see?")[0].action == "describe"


def test_point_prompt_question():
    """What a click in the web app asks: one measure intent carrying the point, whatever the target."""
    [it] = parse_question("Outline and measure the region at (400, 420)")
    assert (it.action, it.target, it.extras) == ("measure", None, {"point": (400.0, 420.0)})
    [it] = parse_question("outline the polyp at x=12.5 y=30")
    assert (it.action, it.target, it.extras["point"]) == ("segment", "polyp", (12.5, 30.0))
    [it] = parse_question("how many WBCs at 40x")  # a magnification is not a point
    assert it.action == "count" and "point" not in it.extras


def test_a_bare_verb_clause_joins_the_next_one():
    """'outline and measure the polyp' is one segment+measure, not an unanswerable 'outline'."""
    assert [(i.action, i.target) for i in parse_question("outline and measure the polyp")] == [("measure", "polyp")]
    assert [(i.action, i.target) for i in parse_question("segment and measure the lungs")] == [("measure", "lung")]


# ---- either-or versus yes/no -----------------------------------------------------------------------
EITHER_OR = [
    ("Is this chest X-ray normal, or does it show pneumonia?", ("normal", "pneumonia")),
    ("Is this film normal or is there pneumonia?", ("normal", "pneumonia")),
    ("Normal or pneumonia?", ("normal", "pneumonia")),
    ("Does this X-ray show pneumonia, or is it normal?", ("pneumonia", "normal")),
    ("Are the lungs healthy or infected?", ("normal", "pneumonia")),
    ("Is it bacterial or viral pneumonia?", ("bacterial_pneumonia", "viral_pneumonia")),
    ("Bacterial or viral?", ("bacterial_pneumonia", "viral_pneumonia")),
    ("Viral versus bacterial pneumonia?", ("viral_pneumonia", "bacterial_pneumonia")),
    ("What is the diagnosis on this chest X-ray: normal, bacterial pneumonia or viral pneumonia?",
     ("normal", "bacterial_pneumonia", "viral_pneumonia")),
]
YES_NO = [
    "Is this chest X-ray normal?",
    "Does this chest X-ray show pneumonia?",
    "Is there pneumonia?",
    "Is there pneumonia or not?",
    "Is this film normal, or not?",
    "Does it show viral pneumonia?",
    "Is the chest X-ray free of pneumonia?",
]


@pytest.mark.parametrize("question, choices", EITHER_OR)
def test_either_or_questions_name_their_alternatives(question, choices):
    [it] = parse_question(question)
    assert it.action == "classify" and it.choices == choices and not it.yes_no


@pytest.mark.parametrize("question", YES_NO)
def test_yes_no_questions_stay_yes_no(question):
    [it] = parse_question(question)
    assert it.action == "classify" and it.yes_no and it.choices is None


def test_or_not_is_not_a_negation():
    """'Is there a polyp or not?' asks whether there is one: a yes/no question, not a negated one."""
    [it] = parse_question("Is there a polyp or not?")
    assert (it.action, it.yes_no, it.negated) == ("count", True, False)
    assert parse_question("Is there no polyp?")[0].negated


def test_numbers_offered_as_alternatives_ask_for_the_count():
    for q in ("Are there two or three white cells?", "Is there one polyp or two?"):
        [it] = parse_question(q)
        assert it.action == "count" and not it.yes_no and it.expected is None


CXR_NORMAL = "kermany_cxr/train/NORMAL/IM-0115-0001.jpeg"


def _pneumonia_film(data_dir):
    return sorted((data_dir / "kermany_cxr/train/PNEUMONIA").glob("*bacteria*.jpeg"))[0]


@pytest.mark.parametrize("question", [q for q, c in EITHER_OR[:5]])
def test_either_or_is_answered_with_the_alternative_on_real_films(assistant, data_dir, question):
    """The outside probe's case: 'normal, or does it show pneumonia?' was answered 'yes'."""
    for film in (data_dir / CXR_NORMAL, _pneumonia_film(data_dir)):
        s = assistant.new_session()
        s.load("current", film)
        r = assistant.ask(s, question)
        cls = next(c for c in r.tool_calls if c.name == "classify").result
        if cls.get("uncertain"):
            assert r.label == "uncertain"
            continue
        want = "normal" if cls["label"] == "normal" else "pneumonia"
        assert r.label == want and not r.answer.lower().startswith(("yes", "no"))
        assert r.grounding.ok


def test_yes_no_is_still_answered_yes_or_no_on_a_real_film(assistant, data_dir):
    s = assistant.new_session()
    s.load("current", data_dir / CXR_NORMAL)
    r = assistant.ask(s, "Is this chest X-ray normal?")
    cls = next(c for c in r.tool_calls if c.name == "classify").result
    if not cls.get("uncertain"):
        assert r.label == ("yes" if cls["label"] == "normal" else "no") and r.answer.startswith(r.label.capitalize())


# ---- the parser never crashes ------------------------------------------------------------------------
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_VOCAB = st.sampled_from(["is", "are", "or", "not", "normal", "pneumonia", "viral", "bacterial", "white", "cells",
                          "polyp", "how many", "at (3, 4)", "prior", "more", "than", "and then", ";", "?", ",", "x=",
                          "largest", "no", "two", "42", "leukemia", "'", "\"", "\u00ff\u00fe", "\x00", "\ud800"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(), st.lists(_VOCAB, max_size=25).map(" ".join),
                 st.binary(max_size=80).map(lambda b: b.decode("utf-8", "surrogateescape"))))
def test_parser_never_crashes_and_returns_intents(text):
    """Arbitrary text, control characters and lone surrogates (from non-UTF-8 bytes) parse to intents."""
    intents = parse_question(text)
    assert intents and all(i.action in ("count", "detect", "segment", "measure", "classify", "image_kind", "compare",
                                        "describe", "unknown") for i in intents)
    prev = intents[-1]
    assert parse_question(text, previous=prev)
    for i in intents:
        assert i.choices is None or len(i.choices) >= 2


@pytest.mark.parametrize("question, action", [
    ("Is there a collapsed lung?", "unknown"),        # outlining the lungs answers no yes/no finding question
    ("Is the heart normal?", "unknown"),              # 'normal' about the heart is not the pneumonia classifier's
    ("Which antibiotic should we start?", "unknown"),
    ("Do the lungs look healthy?", "classify"),       # a class word about the lungs still reaches the classifier
    ("Segment the lungs.", "segment"),
])
def test_yes_no_about_an_organ_and_clinical_terms_outside_every_tool(question, action):
    assert parse_question(question)[0].action == action


def test_sentences_of_a_question_are_clauses():
    """'Is there pneumonia? Outline the lungs.' is two questions: the second sentence used to swallow the first,
    and the segmentation's 'region found' answered the pneumonia question with 'Yes'."""
    its = parse_question("Is there pneumonia? Outline the lungs.")
    assert [(i.action, i.yes_no) for i in its] == [("classify", True), ("segment", False)]
    its = parse_question("How many polyps are there? How big is the largest?")
    assert [i.action for i in its] == ["count", "measure"] and its[1].target == "polyp" and its[1].largest
    assert [i.action for i in parse_question("Is the polyp 3.5 mm wide?")] == ["measure"]  # no split inside 3.5


def test_is_this_a_kind_of_image_is_a_yes_no_about_the_kind():
    it = parse_question("Is this a chest x-ray?")[0]
    assert (it.action, it.yes_no, it.extras.get("asked_kind")) == ("image_kind", True, "chest_xray")
    its = parse_question("How many white cells are there, and is this a chest x-ray?")
    assert [i.action for i in its] == ["count", "image_kind"]
    assert parse_question("is this an endoscopy image?")[0].extras["asked_kind"] == "endoscopy"
    assert parse_question("Is this a normal film?")[0].action == "classify"  # a finding, not a kind


def test_size_threshold_is_measured_not_answered_yes():
    """'Is the polyp larger than 10 mm?': no tool compares with 10 mm, so the answer is the measurement
    without a yes/no (it had been a count, answered 'Yes' when a polyp was found)."""
    it = parse_question("Is the polyp larger than 10 mm?")[0]
    assert (it.action, it.target, it.yes_no) == ("measure", "polyp", False)


@pytest.mark.parametrize("question, expected, compare", [
    ("Are there more than 3 white cells?", 3, "gt"),
    ("Are there fewer than two platelets?", 2, "lt"),
    ("Are there at least two polyps?", 2, "ge"),
    ("Are there at most four platelets?", 4, "le"),
    ("Is there more than one polyp?", 1, "gt"),
    ("Are there multiple polyps?", 1, "gt"),
])
def test_a_count_compared_with_a_number(question, expected, compare):
    """Answered by comparing the count with the number ('more than 3?' with 1 counted is 'no'); it had been
    'yes' whenever anything was found, and 'at least two' had been read as 'exactly two'."""
    it = parse_question(question)[0]
    assert (it.action, it.yes_no, it.expected, it.extras.get("compare")) == ("count", True, expected, compare)


@pytest.mark.parametrize("question, word", [
    ("Is the polyp malignant?", "malignant"), ("Is the polyp benign?", "benign"),
    ("Is the white cell count normal?", "normal"), ("Is the platelet count low?", "count low"), ("Is the white cell count too high?", "count too high"),
    ("Is this polyp an adenoma?", "adenoma"),
])
def test_a_judgment_about_a_counted_target_is_not_answered_with_a_count(question, word):
    """'Is the polyp malignant?' had become 'Yes. I count 1 polyp'."""
    it = parse_question(question)[0]
    assert (it.action, it.unsupported) == ("unknown", word)
    assert parse_question("Is the film normal?")[0].action == "classify"  # the classifier decides that one


@pytest.mark.parametrize("question, word", [
    ("Should this polyp be removed?", "removed"), ("Do we need to biopsy this?", "biopsy"),
    ("Is the pneumonia severe?", "severe"), ("Is the WBC count above 10,000 per microlitre?", "per microlitre"),
])
def test_decisions_grades_and_concentrations_are_not_answered_with_a_tool_result(question, word):
    """They had been answered with a detection ('Found 1 polyp'), a classification ('Yes.') or a field count
    compared with 10."""
    it = parse_question(question)[0]
    assert (it.action, it.unsupported) == ("unknown", word)
    assert parse_question("Should I count the platelets?")[0].action == "count"


def test_bigger_than_last_year_is_a_comparison_with_the_prior():
    """'Is the polyp bigger than the one last year?' had been a count answered 'Yes'."""
    assert [i.action for i in parse_question("Is the polyp bigger than the one last year?")] == ["compare"]
    assert parse_question("Is the polyp larger than 10 mm?")[0].action == "measure"  # a size, not a comparison


def test_location_words_are_not_judgments():
    assert parse_question("Is there a polyp in the low rectum?")[0].action == "count"
    assert parse_question("Is the polyp high up?")[0].action == "count"


def test_sizes_compared_within_the_image_get_measurements_not_a_yes():
    """'Is the polyp larger than the one next to it?' had been a count answered 'Yes. I count 1 polyp'."""
    it = parse_question("Is the polyp larger than the one next to it?")[0]
    assert (it.action, it.yes_no) == ("measure", False)
    assert parse_question("Is the polyp bigger than last time?")[0].action == "compare"


def test_number_words_in_a_comparison_and_a_comparison_without_a_number():
    """'more than a dozen' / 'thirty' had no number, so any cell found answered 'Yes'."""
    assert [(i.expected, i.extras.get("compare")) for i in parse_question("Are there more than a dozen red cells?")] \
        == [(12, "gt")]
    assert parse_question("Are there fewer than fifty red cells?")[0].expected == 50
    it = parse_question("Are there more than several red cells?")[0]  # no number: the count, no yes/no
    assert (it.action, it.yes_no, it.expected) == ("count", False, None)
    assert parse_question("Is there a polyp under the fold?")[0].yes_no  # 'under' here is a place
