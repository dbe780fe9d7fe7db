"""The planner's final answer and the record of one ``ask``: the ``--json`` contract."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .common import Frozen

__all__ = ["Finding", "ReasoningStep", "FinalAnswer", "ToolCallRecord", "Artifacts", "Timings", "AskResult"]


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
    grounding: dict[str, Any] = Field(default_factory=dict, description="what the grounding check found")
    status: Literal["ok", "stopped", "error"] = "ok"
