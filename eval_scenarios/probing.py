"""Probing pairs: for a positive case, a derived twin whose right answer is "no" (a negation or
wrong-attribute question), and the accuracy over (case, twin) pairs.

A planner that answers "yes" to anything, or echoes the number in the question, gets the twin
wrong; a pair counts as correct only when both the case and its twin are answered correctly.

Rules (:func:`derive_twin`):

* count case (``expect.answer.kind == "count"``, ``subject`` set, value ``n``): "Are there
  ``n + tolerance + 1`` <subject>?" on the same image, expecting "no".
* presence case (a yes/no question expecting "yes") and a pool of negative images of the same
  kind and target (the caller's duty: pass negatives only for cases they fit): the same question
  on a negative image, expecting "no".
* label case with a known wrong-attribute question (:data:`LABEL_PROBES`): e.g. a chest X-ray
  labelled ``bacterial_pneumonia`` -> "Is this chest X-ray normal?", expecting "no".
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Sequence

from .schema import Expect, ExpectedAnswer, Images, Scenario

__all__ = ["LABEL_PROBES", "number_words", "derive_twin", "derive_twins", "pair_accuracy"]

_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine",
          10: "ten", 11: "eleven", 12: "twelve"}

LABEL_PROBES: dict[str, str] = {
    "normal": "Does this chest X-ray show pneumonia?",
    "bacterial_pneumonia": "Is this chest X-ray normal?",
    "viral_pneumonia": "Is this chest X-ray normal?",
}
"""label of the case -> a yes/no question whose right answer is "no" for an image of that label."""


ACTION_TAGS = frozenset({"count", "presence", "classify", "negative", "probe"})
"""Tags of a case that describe its question, not its data: a twin asks a different question."""


def number_words(n: int) -> str:
    return _WORDS.get(n, str(n))


def _singular(noun: str) -> str:
    for plural, single in (("cells", "cell"), ("platelets", "platelet"), ("polyps", "polyp"), ("ies", "y")):
        if noun.endswith(plural):
            return noun[: -len(plural)] + single
    return noun[:-1] if noun.endswith("s") else noun


def _twin(case: Scenario, question: str, images: Images, note: str) -> Scenario:
    expect = case.expect
    return Scenario(
        id=f"{case.id}~twin", description=f"probing twin of {case.id}: {note}", images=images, question=question,
        expect=Expect(answer=ExpectedAnswer(kind="yes_no", value="no"), tools=expect.tools,
                      forbidden_tools=expect.forbidden_tools, max_latency_s=expect.max_latency_s),
        tags=[t for t in case.tags if t not in ACTION_TAGS] + ["probe"], subject=case.subject, pair_of=case.id,
        source=case.source,
    )


def _pick(pool: Sequence[str], key: str) -> str:
    return pool[int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(pool)]


def derive_twin(case: Scenario, negatives: Sequence[str] = ()) -> Scenario | None:
    """The twin of one case, or None when no rule applies (multi-turn, abstention, no subject...)."""
    if case.turns or case.question is None or case.pair_of or case.expect.abstain:
        return None
    ans = case.expect.answer
    if ans is None:
        return None
    if ans.kind == "count" and case.subject:
        wrong = int(round(float(ans.value))) + int(ans.tolerance) + 1  # type: ignore[arg-type]
        if wrong == 1:
            q = f"Is there exactly one {_singular(case.subject)} in this image?"
        else:
            q = f"Are there {number_words(wrong)} {case.subject} in this image?"
        return _twin(case, q, case.images, f"wrong count {wrong} (truth {ans.value:g})")  # type: ignore[union-attr]
    if ans.kind == "yes_no" and str(ans.value).lower() in ("yes", "true") and negatives:
        neg = _pick(negatives, case.id)
        return _twin(case, case.question, Images(current=neg), "same question on a negative image")
    if ans.kind == "label" and isinstance(ans.value, str) and ans.value in LABEL_PROBES:
        return _twin(case, LABEL_PROBES[ans.value], case.images, f"wrong attribute for a {ans.value} image")
    return None


def derive_twins(cases: Iterable[Scenario], negatives: Sequence[str] = ()) -> list[Scenario]:
    """Twins of every case that has none yet."""
    cases = list(cases)
    have = {c.pair_of for c in cases if c.pair_of}
    out = []
    for c in cases:
        if c.id in have:
            continue
        t = derive_twin(c, negatives)
        if t is not None:
            out.append(t)
    return out


def _answer_ok(record: Any) -> bool:
    turns = record.turns
    return bool(turns) and record.error is None and all(t.verdict.answer_correct is True for t in turns)


def pair_accuracy(records: Iterable[Any]) -> dict[str, Any]:
    """Over records (``CaseRecord``) whose ``pair_of`` names a record of the same run."""
    by_id = {r.id: r for r in records}
    pairs = [(by_id[r.pair_of], r) for r in by_id.values() if r.pair_of and r.pair_of in by_id]
    if not pairs:
        return {"pairs": 0, "pair_accuracy": None, "original_accuracy": None, "twin_accuracy": None}
    n = len(pairs)
    return {
        "pairs": n,
        "pair_accuracy": sum(_answer_ok(a) and _answer_ok(b) for a, b in pairs) / n,
        "original_accuracy": sum(_answer_ok(a) for a, _ in pairs) / n,
        "twin_accuracy": sum(_answer_ok(b) for _, b in pairs) / n,
    }
