"""The planner's final answer and the record of one ``ask``: the ``--json`` contract."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from .common import Frozen

__all__ = ["Finding", "ReasoningStep", "FinalAnswer", "ToolCallRecord", "Artifacts", "Timings", "RemovedClaim",
           "PlannerStats", "GuardRecord", "Grounding", "AskResult"]


class Finding(Frozen):
    """One claim of the answer, bound to the tool results that support it."""

    text: str
    evidence: list[str] = Field(description="evidence ids of the tool results that support it")
    verified: bool = Field(default=True, description="False when the grounding check could not back it")


class ReasoningStep(Frozen):
    """One numbered step of the chain of reasoning."""

    text: str
    evidence: list[str] = Field(default_factory=list, description="evidence ids this step uses")


class FinalAnswer(Frozen):
    """What a planner must produce.  Numbers must come from tool results."""

    answer: str = Field(description="the conclusion, one or two sentences; a yes/no question starts with 'Yes' or 'No'")
    value: float | None = Field(default=None, description="the number asked for, when the question is numeric")
    unit: str | None = Field(default=None, description="unit of value: 'cells', 'polyps', 'px', 'mm', 'mm2', '%', ...")
    label: str | None = Field(default=None, description="class label for classification questions; 'yes'/'no' for yes/no")
    findings: list[Finding] = Field(default_factory=list)
    steps: list[ReasoningStep] = Field(default_factory=list)
    uncertainty: str | None = Field(default=None, description="caveats: thresholds, model limits")
    abstained: bool = Field(default=False, description="True when no tool could answer the question")


class ToolCallRecord(Frozen):
    """One tool call as it happened."""

    id: str = Field(description="evidence id, e.g. 'E1'")
    name: str
    args: dict[str, Any]
    backend: str | None = None
    elapsed_ms: float = 0.0
    ok: bool
    result: dict[str, Any] | None = None
    error: str | None = None
    summary: str = Field(default="", description="one line for traces and logs")


class Artifacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlays: list[str] = Field(default_factory=list, description="PNG paths of overlays (boxes, masks, change maps)")
    masks: list[str] = Field(default_factory=list, description="PNG paths of masks, image size, values 0/255")
    other: list[str] = Field(default_factory=list)


class Timings(Frozen):
    total_ms: float
    experts_ms: float


class RemovedClaim(Frozen):
    """One statement of the planner that the grounding check removed, rewrote or marked unverified."""

    where: Literal["answer", "finding", "step", "value", "label", "caveat"]
    text: str = Field(description="the statement as the planner wrote it")
    cited: list[str] = Field(default_factory=list, description="evidence ids the statement cited")
    reasons: list[str] = Field(description="why no cited tool result backs it, one reason per claim")


class PlannerStats(Frozen):
    """Counts over one ask's planner messages."""

    model_turns: int = 0
    tool_calls: int = 0
    invalid_arguments: int = 0
    unknown_tools: int = 0
    tool_errors: int = 0
    output_retries: int = 0


class GuardRecord(Frozen):
    """What the grounding guard did around the planner run."""

    retried: bool = Field(default=False, description="the planner was asked once to fix unsupported claims")
    resolved: bool | None = Field(default=None, description="after the retry, nothing unsupported was left")
    discrepancy: str | None = Field(default=None, description="the problems stated to the planner")
    first_answer: str | None = Field(default=None, description="the planner's answer before the retry")
    first_report: dict[str, Any] | None = Field(default=None, description="the grounding check of that answer")
    retry_failed: str | None = None
    retry_skipped: str | None = None
    stopped: str | None = Field(default=None, description="why the planner gave no final answer")
    unbacked: bool = Field(default=False, description="an answer with no tool result at all behind it")
    planner: PlannerStats | None = None


class Grounding(Frozen):
    """What the grounding check found: each number bound to the evidence the sentence cites, each finding,
    diagnosis or class name to a tool label or result field of that evidence."""

    checked_numbers: int = 0
    unsupported: list[str] = Field(default_factory=list, description="number tokens no cited result backs")
    unsupported_words: list[str] = Field(default_factory=list,
                                         description="findings, diagnoses, class or change words no cited result backs")
    unknown_evidence_ids: list[str] = Field(default_factory=list, description="cited ids that do not exist")
    removed_sentences: list[str] = Field(default_factory=list, description="sentences removed from the answer")
    unverified_findings: list[str] = Field(default_factory=list, description="findings marked verified=False")
    rewritten_steps: list[str] = Field(default_factory=list, description="reasoning steps replaced by a notice")
    dropped_value: float | None = Field(default=None, description="the value, when no cited result backs it")
    dropped_label: str | None = Field(default=None, description="the label, when no cited result backs it")
    removed: list[RemovedClaim] = Field(default_factory=list, description="every removed or flagged statement, why")
    guard: GuardRecord = Field(default_factory=GuardRecord)

    @model_validator(mode="before")
    @classmethod
    def _derived_ok(cls, data: Any) -> Any:
        """``ok`` is derived: a dumped record (which carries it) validates back."""
        if isinstance(data, dict) and "ok" in data:
            data = {k: v for k, v in data.items() if k != "ok"}
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        """True when every statement was backed by the evidence it cites."""
        return not (self.unsupported or self.removed_sentences or self.unverified_findings or self.rewritten_steps
                    or self.dropped_value is not None or self.dropped_label is not None or self.unknown_evidence_ids
                    or self.unsupported_words)


class AskResult(Frozen):
    """The answer to one question, as ``osler ask --json`` prints it."""

    question: str
    answer: str
    value: float | None = None
    unit: str | None = None
    label: str | None = None
    findings: list[Finding] = Field(default_factory=list)
    steps: list[ReasoningStep] = Field(default_factory=list)
    uncertainty: str | None = None
    abstained: bool = False
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    timings: Timings
    images: dict[str, Any] = Field(default_factory=dict, description="role -> image metadata (no pixels)")
    planner: str = Field(description="which planner answered, e.g. 'builtin' or 'openai:model@url'")
    grounding: Grounding = Field(default_factory=Grounding, description="what the grounding check found")
    status: Literal["ok", "stopped", "error"] = "ok"
