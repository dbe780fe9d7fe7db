"""Question parsing of the built-in planner (pure functions)."""

from __future__ import annotations

import pytest

from agent.intents import parse_question


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
