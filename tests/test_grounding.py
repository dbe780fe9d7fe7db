"""The grounding check removes claims no tool result supports."""

from __future__ import annotations

from tools.answer import FinalAnswer, Finding
from tools.common import Box, Provenance
from tools.detection import ClassCount, CountResult, Detection

from agent.grounding import check_grounding, numbers_in


def _count(n: int = 2) -> CountResult:
    dets = [Detection(index=i + 1, label="WBC", score=0.9, box=Box(x_min=10 * i, y_min=0, x_max=10 * i + 5, y_max=5))
            for i in range(n)]
    prov = Provenance(expert="x", backend="opencv", model="m", elapsed_ms=1.0)
    return CountResult(evidence_id="E2", image="current", target="blood_cells",
                       counts=[ClassCount(label="WBC", count=n, instances=dets)], total=n, min_score=0.5,
                       dedup_iou=0.5, provenance=prov)


def test_ids_and_numbering_are_not_numbers():
    assert numbers_in("See [E12] and #3 on mask-4.") == []
    assert [x for _, x in numbers_in("area 123.5 px, 2 cells")] == [123.5, 2.0]


def test_backed_answer_is_unchanged():
    ans = FinalAnswer(answer="There are 2 WBC [E2].", value=2, unit="cells",
                      findings=[Finding(text="2 WBC", evidence=["E2"])])
    fixed, rep = check_grounding(ans, {"E2": _count(2)})
    assert rep.ok and fixed.answer == ans.answer and fixed.value == 2


def test_invented_number_is_removed_and_value_dropped():
    ans = FinalAnswer(answer="There are 7 WBC [E2]. The smear is stained.", value=7,
                      findings=[Finding(text="7 WBC", evidence=["E2"])])
    fixed, rep = check_grounding(ans, {"E2": _count(2)})
    assert not rep.ok and "7" in rep.unsupported
    assert "7 WBC" not in fixed.answer and "stained" in fixed.answer
    assert fixed.value is None and fixed.findings[0].verified is False


def test_unknown_evidence_id_and_change_word_are_flagged():
    ans = FinalAnswer(answer="A new polyp appeared [E9].")
    fixed, rep = check_grounding(ans, {"E2": _count(2)})
    assert "E9" in rep.unknown_evidence_ids and "new" in rep.unsupported_words
    assert "appeared" not in fixed.answer


def test_question_numbers_may_be_echoed():
    ans = FinalAnswer(answer="No, there are 2 WBC, not 3 [E2].", label="no")
    fixed, rep = check_grounding(ans, {"E2": _count(2)}, question="Are there 3 white cells?")
    assert rep.ok


def test_probability_complement_is_backed_but_other_sums_are_not():
    from tools.classification import ClassificationResult

    prov = Provenance(expert="c", backend="torchvision", model="m", elapsed_ms=1.0)
    r = ClassificationResult(evidence_id="E2", image="current", task="cxr_pneumonia", label="viral_pneumonia",
                             probabilities={"normal": 0.1, "bacterial_pneumonia": 0.3, "viral_pneumonia": 0.6},
                             calibrated=True, provenance=prov)
    ok = FinalAnswer(answer="Viral pneumonia 60% (pneumonia of either kind 90%) [E2].")
    assert check_grounding(ok, {"E2": r})[1].ok
    bad = FinalAnswer(answer="Viral pneumonia 75% [E2].")
    assert not check_grounding(bad, {"E2": r})[1].ok
