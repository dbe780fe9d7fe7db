"""Scorers: pure functions from one expectation and one ``AskResult``-like record to a verdict,
and the aggregation of verdicts into per-tag metrics.

Every scorer takes the result as the JSON dict of :class:`tools.answer.AskResult` (what
``osler ask --json`` prints), so that recorded runs can be re-scored without re-running.

Definitions (all per question; a multi-turn case contributes one item per turn):

* answer accuracy: :func:`score_answer` (numeric tolerance, label / yes-no match, choice letter).
* tool precision / recall: over tool names; ``image_info`` is neutral (never counts against
  precision) unless the case lists it.  Recall = expected tools called / expected tools;
  precision = called tools that were expected / tools called.  Attempted calls count, refused or not.
* forbidden violations: calls (attempted) of a forbidden tool.
* argument validity: every call passed argument validation, and each expected tool with ``args``
  was called at least once with those arguments.
* grounding: every number of the final answer text (and ``value``) is found in a tool result of
  that question or in the question (:func:`agent.grounding.check.unsupported_numbers`).
* abstention: when ``expect.abstain`` is set, the result's ``abstained`` flag must equal it.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from agent.grounding.check import evidence_numbers, numbers_in, unsupported_numbers
from agent.grounding.numbers import PERCENT, percent_numbers, written_numbers

from .metrics import percentile  # noqa: F401  (re-exported: the runner and benchmarks import it from here)
from .schema import Expect, ExpectedAnswer

__all__ = [
    "NEUTRAL_TOOLS",
    "Verdict",
    "score_answer",
    "score_tools",
    "score_grounding",
    "score_abstention",
    "score_mentions",
    "score_turn",
    "percentile",
    "aggregate",
    "norm_label",
]

NEUTRAL_TOOLS = frozenset({"image_info"})
_ARG_ERRORS = ("ValidationError", "InvalidInputError")


class Verdict(BaseModel):
    """Scores of one question.  ``None`` means "not scored for this case"."""

    answer_correct: bool | None = None
    answer_got: Any = None
    answer_detail: str = ""
    tool_precision: float | None = None
    tool_recall: float | None = None
    tools_missing: list[str] = Field(default_factory=list)
    tools_unexpected: list[str] = Field(default_factory=list)
    forbidden_violations: list[str] = Field(default_factory=list)
    args_valid: bool | None = None
    arg_problems: list[str] = Field(default_factory=list)
    grounded: bool | None = None
    unsupported_numbers: list[str] = Field(default_factory=list)
    abstention_correct: bool | None = None
    rejection_correct: bool | None = None
    mentions_ok: bool | None = None
    mention_problems: list[str] = Field(default_factory=list)
    latency_s: float | None = None
    latency_ok: bool | None = None
    error: str | None = None

    @property
    def passed(self) -> bool:
        if self.error:
            return False
        checks = [self.answer_correct, self.grounded, self.abstention_correct, self.rejection_correct,
                  self.mentions_ok, self.latency_ok, self.args_valid]
        if any(c is False for c in checks):
            return False
        if self.tool_recall is not None and self.tool_recall < 1.0:
            return False
        return not self.forbidden_violations


# ---- answers -------------------------------------------------------------------------------------
def norm_label(s: Any) -> str:
    return re.sub(r"[\s_\-]+", " ", str(s).strip().lower()).strip(" .")


def _got_number(result: dict[str, Any]) -> float | None:
    if result.get("value") is not None:
        return float(result["value"])
    nums = numbers_in(result.get("answer") or "")
    return nums[0][1] if nums else None


def _got_yes_no(result: dict[str, Any]) -> str | None:
    label = norm_label(result.get("label") or "")
    if label in ("yes", "no"):
        return label
    m = re.match(r"\W*(yes|no)\b", (result.get("answer") or "").lower())
    return m.group(1) if m else None


def _got_choice(result: dict[str, Any], choices: dict[str, str] | None) -> str | None:
    label = str(result.get("label") or "").strip().strip("().").upper()
    if len(label) == 1 and label.isalpha():
        return label
    text = result.get("answer") or ""
    m = re.search(r"\b(?:answer|option|choice)\s*(?:is|:)?\s*\(?([A-Za-z])\)?(?![\w])", text, re.IGNORECASE)
    if m:
        return m.group(1).upper()
    m = re.match(r"\W*\(?([A-Z])\)?(?:[.):]|\s*$)", text)
    if m:
        return m.group(1)
    if choices:  # the option whose text the answer names (longest match wins)
        low = norm_label(text)
        hits = [(len(v), k.upper()) for k, v in choices.items() if norm_label(v) and norm_label(v) in low]
        if hits:
            return max(hits)[1]
    return None


def score_answer(expected: ExpectedAnswer, result: dict[str, Any]) -> tuple[bool, Any, str]:
    """(correct, what was read from the result, a short explanation)."""
    kind = expected.kind
    if kind in ("number", "count"):
        got = _got_number(result)
        if got is None:
            return False, None, "no number in the answer"
        want = float(expected.value)  # type: ignore[arg-type]
        if kind == "count" and not float(got).is_integer():
            return False, got, f"count {got} is not a whole number"
        ok = abs(got - want) <= expected.tolerance + 1e-9
        if ok and expected.unit and result.get("unit") is not None and \
                norm_label(expected.unit) not in norm_label(result["unit"]):
            return False, got, f"unit {result['unit']!r} is not {expected.unit!r}"
        return ok, got, f"{got:g} vs {want:g} ± {expected.tolerance:g}"
    if kind == "yes_no":
        want = expected.value if isinstance(expected.value, str) else ("yes" if expected.value else "no")
        got = _got_yes_no(result)
        return got == norm_label(want), got, f"{got} vs {norm_label(want)}"
    if kind == "label":
        wants = expected.value if isinstance(expected.value, list) else [expected.value]
        got = result.get("label")
        ok = got is not None and norm_label(got) in {norm_label(w) for w in wants}
        return ok, got, f"{got} vs {'/'.join(map(str, wants))}"
    if kind == "choice":
        got = _got_choice(result, expected.choices)
        want = str(expected.value).strip().upper()
        return got == want, got, f"{got} vs {want}"
    wants = expected.value if isinstance(expected.value, list) else [str(expected.value)]
    text = (result.get("answer") or "").lower()
    ok = any(str(w).lower() in text for w in wants)
    return ok, None, "contains" if ok else f"does not contain {wants}"


# ---- tools ---------------------------------------------------------------------------------------
def _args_match(want: dict[str, Any], got: dict[str, Any]) -> bool:
    for key, w in want.items():
        if key not in got:
            return False
        g = got[key]
        if isinstance(w, list) and isinstance(g, list):
            if {norm_label(x) for x in w} != {norm_label(x) for x in g}:
                return False
        elif isinstance(w, str) and isinstance(g, str):
            if norm_label(w) != norm_label(g):
                return False
        elif w != g:
            return False
    return True


def score_tools(expect: Expect, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """Tool selection, forbidden tools and argument validity over the calls of one question."""
    called = [c["name"] for c in calls]
    out: dict[str, Any] = {"forbidden_violations": [n for n in called if n in set(expect.forbidden_tools)]}
    problems = [f"{c['name']}: {c.get('error')}" for c in calls
                if not c.get("ok") and any(str(c.get("error") or "").startswith(e) for e in _ARG_ERRORS)]
    if expect.tools is not None:
        wanted = {t.name for t in expect.tools}
        counted = {n for n in called if n not in NEUTRAL_TOOLS or n in wanted}
        out["tool_recall"] = len(wanted & set(called)) / len(wanted) if wanted else 1.0
        out["tool_precision"] = len(counted & wanted) / len(counted) if counted else 1.0
        if not wanted and counted:
            out["tool_precision"] = 0.0
        out["tools_missing"] = sorted(wanted - set(called))
        out["tools_unexpected"] = sorted(counted - wanted)
        for t in expect.tools:
            if t.args and not any(c["name"] == t.name and _args_match(t.args, c.get("args") or {}) for c in calls):
                problems.append(f"no {t.name} call with {t.args}")
    out["args_valid"] = not problems if (calls or expect.tools) else None
    out["arg_problems"] = problems
    return out


# ---- grounding, abstention, mentions -------------------------------------------------------------
def score_grounding(result: dict[str, Any], question: str = "") -> tuple[bool, list[str]]:
    """Every number of the answer text (and its ``value``) traced to a tool result of this question
    or to the question itself.  Returns (grounded, unsupported number tokens)."""
    results = [c["result"] for c in result.get("tool_calls", []) if c.get("ok") and c.get("result")]
    pool = evidence_numbers(results) + [x for _, x in numbers_in(question or result.get("question") or "")]
    pct = pool + [x for r in results for x in percent_numbers(r)]  # a percentage: also 100 x a probability
    bad = [tok for tok, x, unit in written_numbers(result.get("answer") or "")
           if unsupported_numbers(tok, pct if unit == PERCENT else pool)]
    value = result.get("value")
    if value is not None and not result.get("abstained"):
        v = float(value)
        token = str(int(v)) if v.is_integer() else f"{v:.1f}"
        if unsupported_numbers(token, pct if (result.get("unit") or "").strip() == "%" else pool):
            bad.append(f"value={token}")
    return not bad, bad


def score_abstention(expected: bool | None, result: dict[str, Any]) -> bool | None:
    if expected is None:
        return None
    return bool(result.get("abstained")) == expected


def _mention_text(result: dict[str, Any]) -> str:
    parts = [result.get("answer") or ""] + [f.get("text", "") for f in result.get("findings", [])]
    return " ".join(parts).lower()


def score_mentions(expect: Expect, result: dict[str, Any]) -> tuple[bool | None, list[str]]:
    if not expect.must_mention and not expect.must_not_mention:
        return None, []
    text = _mention_text(result)
    problems = []
    for m in expect.must_mention:
        options = m if isinstance(m, list) else [m]
        if not any(o.lower() in text for o in options):
            problems.append(f"missing {'/'.join(options)!r}")
    for m in expect.must_not_mention:
        if m.lower() in text:
            problems.append(f"mentions {m!r}")
    return not problems, problems


def score_turn(expect: Expect, result: dict[str, Any] | None, latency_s: float | None, error: str | None = None,
               question: str = "") -> Verdict:
    """All scores of one question.  A missing result (the run crashed) fails every given check, except
    where the case expects its input refused (``rejected``): then only a refusal of the input passes."""
    if expect.rejected is not None:
        refused = result is None and (error or "").startswith("InvalidInputError")
        if expect.rejected:
            return Verdict(rejection_correct=refused, latency_s=latency_s, answer_detail=error or "",
                           error=None if refused else (error or "the input was acted on; it should have been refused"))
        if refused:
            return Verdict(rejection_correct=False, latency_s=latency_s, error=error)
    if result is None:
        return Verdict(error=error or "no result", latency_s=latency_s,
                       answer_correct=False if expect.answer else None,
                       abstention_correct=False if expect.abstain is not None else None)
    v: dict[str, Any] = {"latency_s": latency_s, "error": error}
    if expect.answer is not None:
        v["answer_correct"], v["answer_got"], v["answer_detail"] = score_answer(expect.answer, result)
    v.update(score_tools(expect, result.get("tool_calls", [])))
    if expect.grounded:
        v["grounded"], v["unsupported_numbers"] = score_grounding(result, question)
    v["abstention_correct"] = score_abstention(expect.abstain, result)
    v["mentions_ok"], v["mention_problems"] = score_mentions(expect, result)
    if expect.max_latency_s is not None and latency_s is not None:
        v["latency_ok"] = latency_s <= expect.max_latency_s
    return Verdict(**v)


# ---- aggregation ---------------------------------------------------------------------------------
def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _rate(xs: list[bool | None]) -> float | None:
    vals = [bool(x) for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def aggregate(verdicts: list[Verdict]) -> dict[str, Any]:
    """Metrics over a list of verdicts (one per question)."""
    lat = [v.latency_s for v in verdicts if v.latency_s is not None]
    return {
        "n": len(verdicts),
        "pass_rate": _rate([v.passed for v in verdicts]),
        "answer_accuracy": _rate([v.answer_correct for v in verdicts]),
        "n_answer": sum(v.answer_correct is not None for v in verdicts),
        "tool_precision": _mean([v.tool_precision for v in verdicts if v.tool_precision is not None]),
        "tool_recall": _mean([v.tool_recall for v in verdicts if v.tool_recall is not None]),
        "forbidden_violations": sum(len(v.forbidden_violations) for v in verdicts),
        "arg_validity": _rate([v.args_valid for v in verdicts]),
        "grounded_rate": _rate([v.grounded for v in verdicts]),
        "abstention_accuracy": _rate([v.abstention_correct for v in verdicts]),
        "n_abstention": sum(v.abstention_correct is not None for v in verdicts),
        "errors": sum(1 for v in verdicts if v.error),
        "latency_s_p50": percentile(lat, 50),
        "latency_s_p95": percentile(lat, 95),
    }
