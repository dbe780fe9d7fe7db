"""What the built-in planner accumulates while it runs: tool calls and their outcomes, numbered
reasoning steps, findings, answer sentences, the value and the caveats; and how that becomes a
:class:`~tools.answer.FinalAnswer`."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Generator

from tools.answer import FinalAnswer, Finding, ReasoningStep
from tools.targets import LiveTable, class_names

__all__ = ["Call", "Outcome", "Draft", "UNITS", "SINGULAR", "one_call", "record_failure", "call_or_fail", "nothing_found"]

UNITS = LiveTable(lambda: class_names(plural=True))
"""Class label -> how an answer names several ('white blood cells (WBC)'), from the target specs."""
SINGULAR = LiveTable(lambda: class_names(plural=False))
"""Class label -> how an answer names one ('white blood cell (WBC)')."""


@dataclass(frozen=True)
class Call:
    name: str
    args: dict[str, Any]
    why: str


@dataclass(frozen=True)
class Outcome:
    name: str
    ok: bool
    result: Any
    error: str | None


@dataclass
class Draft:
    """What the procedure accumulates while it runs."""

    steps: list[ReasoningStep] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    sentences: list[str] = field(default_factory=list)
    value: float | None = None
    unit: str | None = None
    label: str | None = None
    caveats: list[str] = field(default_factory=list)
    abstained: list[bool] = field(default_factory=list)
    yes_no: str | None = None

    def step(self, text: str, *evidence: str) -> None:
        self.steps.append(ReasoningStep(text=text, evidence=[e for e in evidence if e]))

    def set_value(self, value: float, unit: str) -> None:
        if self.value is None:
            self.value, self.unit = float(value), unit

    def merge(self, other: "Draft") -> None:
        """Append what ``other`` accumulated, as if its calls had been made after this draft's: lists are
        extended; value, label and the yes/no keep the first that was set."""
        self.steps += other.steps
        self.findings += other.findings
        self.sentences += other.sentences
        self.caveats += other.caveats
        self.abstained += other.abstained
        if self.value is None:
            self.value, self.unit = other.value, other.unit
        self.label = self.label or other.label
        self.yes_no = self.yes_no or other.yes_no

    def answer(self) -> FinalAnswer:
        text = " ".join(self.sentences)
        if self.yes_no:
            text = f"{self.yes_no.capitalize()}. {text}" if not text.lower().startswith(self.yes_no) else text
        abstained = bool(self.abstained) and all(self.abstained)
        cited = list(dict.fromkeys(re.findall(r"\bE\d+\b", text)))
        steps = self.steps + [ReasoningStep(text=f"Conclusion: {text.strip()}", evidence=cited)]
        return FinalAnswer(
            answer=text.strip(), value=None if abstained else self.value, unit=None if abstained else self.unit,
            label=self.yes_no or self.label, findings=self.findings, steps=steps,
            uncertainty="; ".join(dict.fromkeys(self.caveats)) or None, abstained=abstained,
        )


def one_call(call: Call) -> Generator[list[Call], list[Outcome], Outcome]:
    outs = yield [call]
    return outs[0]


def record_failure(d: Draft, call: Call, out: Outcome) -> None:
    msg = (out.error or "failed").removeprefix("REFUSED: ").removeprefix("FAILED: ")
    d.step(f"Called {call.name} to {call.why}; it did not produce a result: {msg}")
    d.sentences.append(f"I could not {call.why}: {msg}")
    d.abstained.append(True)


def call_or_fail(d: Draft, call: Call) -> Generator[list[Call], list[Outcome], Any]:
    """Make one call; on failure record it in the draft and return None, else return the result."""
    out = yield from one_call(call)
    if not out.ok:
        record_failure(d, call, out)
        return None
    return out.result


def nothing_found(d: Draft, yes_no: bool, negated: bool, sentence: str, finding: str, eid: str, unit: str) -> None:
    """Record that a tool found nothing: a 'no' (or 'yes' when negated), the sentence, a zero value."""
    if yes_no:
        d.yes_no = d.yes_no or ("yes" if negated else "no")
    d.sentences.append(sentence)
    d.findings.append(Finding(text=finding, evidence=[eid]))
    d.set_value(0, unit)
    d.abstained.append(False)

