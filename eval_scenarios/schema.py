"""The scenario file format: pydantic models of one evaluation case and of a file of cases.

A scenario file is YAML holding one case (a mapping) or a list of cases.  A case names its images,
asks one question (``question``, or ``audio`` for a spoken one) or several (``turns``), and says
what a correct run looks like (``expect``).  Image paths are relative to the scenario file, or
``data:``-prefixed paths under the public data root (``settings.shared_data``, default
``../shared/data``).

``eval_scenarios/scenario.schema.json`` is generated from :class:`ScenarioFile` and checked in;
a test keeps it in sync (``python -m eval_scenarios.schema > eval_scenarios/scenario.schema.json``).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

__all__ = [
    "AnswerKind",
    "ExpectedAnswer",
    "ToolExpectation",
    "Expect",
    "Images",
    "Turn",
    "Scenario",
    "ScenarioFile",
    "json_schema",
]

AnswerKind = Literal["number", "count", "label", "yes_no", "choice", "text"]
Mention = str | list[str]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExpectedAnswer(_Model):
    """The answer a correct run gives.

    * ``number``: ``|value - got| <= tolerance`` (``got`` = the result's ``value``, else the first
      number of the answer text); ``unit`` when given must match the result's unit (substring,
      case-insensitive).
    * ``count``: like number, on integers (tolerance default 0).
    * ``label``: the result's ``label`` equals ``value`` (or one of a list), ignoring case, spaces and
      underscores.
    * ``yes_no``: ``value`` is ``"yes"`` / ``"no"`` (or a bool); read from ``label``, else the answer's first word.
    * ``choice``: ``value`` is the option letter; ``choices`` maps letters to option texts.
    * ``text``: the answer text contains ``value`` (case-insensitive).
    """

    kind: AnswerKind
    value: float | int | str | bool | list[str]
    tolerance: float = Field(default=0.0, ge=0, description="absolute tolerance for number/count")
    unit: str | None = None
    choices: dict[str, str] | None = Field(default=None, description="choice: letter -> option text")

    @model_validator(mode="after")
    def _consistent(self) -> "ExpectedAnswer":
        if self.kind in ("number", "count") and (isinstance(self.value, (bool, str, list))):
            raise ValueError(f"a {self.kind} answer needs a numeric value, not {self.value!r}")
        if self.kind == "yes_no" and not (isinstance(self.value, bool) or str(self.value).lower() in ("yes", "no")):
            raise ValueError(f"a yes_no answer is 'yes' or 'no', not {self.value!r}")
        if self.kind == "choice":
            if not isinstance(self.value, str) or len(self.value.strip()) != 1:
                raise ValueError(f"a choice answer is one option letter, not {self.value!r}")
            if self.choices is not None and self.value.strip().upper() not in {k.upper() for k in self.choices}:
                raise ValueError(f"choice {self.value!r} is not among the options {sorted(self.choices)}")
        return self


class ToolExpectation(_Model):
    """A tool that must be called; ``args`` constrain the arguments of at least one call
    (each key must equal the given value; a list value must equal the call's list as a set)."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class Expect(_Model):
    """What a correct run looks like.  Every field is optional; only the given ones are scored."""

    answer: ExpectedAnswer | None = None
    tools: list[ToolExpectation] | None = Field(
        default=None, description="tools that must be called (names, or {name, args}); [] = no tool but image_info")
    forbidden_tools: list[str] = Field(default_factory=list, description="tools that must not even be attempted")
    must_mention: list[Mention] = Field(
        default_factory=list, description="substrings of the answer (case-insensitive); a list entry = any of them")
    must_not_mention: list[str] = Field(default_factory=list)
    abstain: bool | None = Field(default=None, description="true: the run must decline to answer; false: must answer")
    rejected: bool | None = Field(
        default=None, description="true: the input itself must be refused before anything is asked "
                                  "(e.g. speech that is not a command: never acted on)")
    max_latency_s: float | None = Field(default=None, gt=0)
    grounded: bool = Field(default=True, description="every number of the answer must trace to a tool result")

    @field_validator("tools", mode="before")
    @classmethod
    def _tool_names(cls, v: Any) -> Any:
        if v is None:
            return v
        return [{"name": t} if isinstance(t, str) else t for t in v]

    @model_validator(mode="after")
    def _consistent(self) -> "Expect":
        if self.abstain and self.answer is not None:
            raise ValueError("a case cannot both expect an answer and expect abstention")
        if self.rejected and (self.answer is not None or self.abstain is not None or self.tools):
            raise ValueError("a case that expects its input refused cannot expect an answer, abstention or tools")
        return self


class Images(_Model):
    """Paths of the studies: relative to the scenario file, or ``data:<path under the data root>``."""

    current: str
    prior: str | None = None
    current_date: str | None = Field(default=None, description="study date YYYY-MM-DD when not in DICOM")
    prior_date: str | None = None


class Turn(_Model):
    """One question of a multi-turn case, with its own expectations."""

    question: str | None = None
    audio: str | None = Field(default=None, description="a spoken question (WAV), transcribed by voice.pipeline")
    expect: Expect = Field(default_factory=Expect)

    @model_validator(mode="after")
    def _one_input(self) -> "Turn":
        if (self.question is None) == (self.audio is None):
            raise ValueError("a turn has exactly one of 'question' or 'audio'")
        return self


class Scenario(_Model):
    """One evaluation case."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.:~\-]+$")
    description: str | None = None
    images: Images
    question: str | None = None
    audio: str | None = None
    turns: list[Turn] | None = Field(default=None, description="several questions, asked in order")
    memory: Literal["per_case", "per_question"] = Field(
        default="per_case", description="per_case: one session (and conversation) for all turns; "
                                        "per_question: a fresh session for each turn")
    expect: Expect = Field(default_factory=Expect)
    tags: list[str] = Field(default_factory=list)
    subject: str | None = Field(default=None, description="noun phrase of what is counted/asked about, for probing")
    pair_of: str | None = Field(default=None, description="for a probing twin: the id of the case it mirrors")
    source: str | None = Field(default=None, description="where the ground truth comes from")

    @model_validator(mode="after")
    def _one_input(self) -> "Scenario":
        single = (self.question is not None) + (self.audio is not None)
        if self.turns:
            if single:
                raise ValueError(f"case {self.id}: give 'turns' or 'question'/'audio', not both")
        elif single != 1:
            raise ValueError(f"case {self.id}: give exactly one of 'question', 'audio' or 'turns'")
        return self

    def all_turns(self) -> list[Turn]:
        """The questions in order; a single-question case is one turn with the case's ``expect``."""
        if self.turns:
            return list(self.turns)
        return [Turn(question=self.question, audio=self.audio, expect=self.expect)]


class ScenarioFile(RootModel[Scenario | list[Scenario]]):
    """A scenario file: one case or a list of cases."""

    def cases(self) -> list[Scenario]:
        return list(self.root) if isinstance(self.root, list) else [self.root]


def json_schema() -> dict[str, Any]:
    schema = ScenarioFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Osler evaluation scenario file"
    return schema


def main() -> int:
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
