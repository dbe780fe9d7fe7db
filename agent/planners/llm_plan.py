"""A language model turns a question into a plan: which tools, on what, in what order.

The model never writes the answer and never sees a number: it fills a small JSON plan (at most three
steps of tool x target, constrained by a JSON schema the server turns into a grammar), which becomes the
built-in planner's :class:`~agent.builtin.intents.Intent` list.  The built-in procedures then call the tools
through the same agent loop and write the evidence-bound answer, so every number still comes from a
tool result and the grounding check still binds it to its evidence id.

The prompt is short on purpose (about 700 tokens with its examples; a 1-2 B model follows it, and
llama.cpp caches it across questions).  A reply that is not valid JSON or not a valid plan is retried
once with the error; a second failure raises :class:`PlanError` and the caller falls back to the rule
parser, saying so in the answer.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tools.errors import OslerError
from tools.targets import BUILTIN_TARGETS, targets

from agent.builtin.intents import Intent, parse_question

__all__ = ["Plan", "PlanError", "PlanStep", "Planned", "plan_question", "plan_schema", "plan_targets",
           "plan_to_intents", "system_prompt"]

log = logging.getLogger(__name__)

Tool = Literal["count", "locate", "outline", "measure", "classify", "image_kind", "compare", "describe"]
BUILTIN_PLAN_TARGETS = ("white_cells", "red_cells", "platelets", "all_cells", "polyp", "lung", "none")
About = Literal["none", "normal", "pneumonia", "bacterial", "viral"]
Which = Literal["all", "largest", "smallest"]


class PlanStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: Tool
    target: str = "none"  # one of plan_targets(): the built-in names, then those of plugin targets
    yes_no: bool = False
    about: About = "none"
    which: Which = "all"

    @field_validator("target")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in plan_targets():
            raise ValueError(f"unknown target {v!r}")
        return v


class Plan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    in_scope: bool
    steps: list[PlanStep] = Field(default_factory=list, max_length=3)


def plan_targets() -> dict[str, tuple[str | None, tuple[str, ...] | None, str | None]]:
    """Plan target name -> (tool target, classes, regex a question must match to name it).  The built-in names
    first (worded for a small model), then each plugin target of the catalogue and each of its classes
    (``<target>_<label>``), with the question patterns of its spec."""
    out = {name: (*_TARGETS[name], ANCHORS.get(name)) for name in BUILTIN_PLAN_TARGETS}
    builtin = {spec.name for spec in BUILTIN_TARGETS}
    for spec in targets().values():
        if spec.name in builtin:
            continue
        out[spec.name] = (spec.name, None, spec.pattern)
        for c in spec.classes:
            slug = re.sub(r"[^a-z0-9]+", "_", c.label.lower()).strip("_")
            out[f"{spec.name}_{slug}"] = (spec.name, (c.label,), c.pattern or spec.pattern)
    return out


def plan_schema() -> dict[str, Any]:
    """The plan's JSON schema with every property required and in generation order (scope first)."""
    step = {"type": "object", "additionalProperties": False,
            "properties": {"tool": {"enum": list(Tool.__args__)}, "target": {"enum": list(plan_targets())},
                           "yes_no": {"type": "boolean"}, "about": {"enum": list(About.__args__)},
                           "which": {"enum": list(Which.__args__)}},
            "required": ["tool", "target", "yes_no", "about", "which"]}
    return {"type": "object", "additionalProperties": False,
            "properties": {"in_scope": {"type": "boolean"},
                           "steps": {"type": "array", "items": step, "minItems": 0, "maxItems": 3}},
            "required": ["in_scope", "steps"]}



_TOOLS_TEXT = """\
Tools:
count = count objects; also for yes/no questions like "is there a polyp", "any platelets"
locate = show where the objects are
outline = segment (draw around) an object
measure = size or area of an object
classify = chest X-ray: normal, bacterial or viral pneumonia
image_kind = what kind of image or modality this is
compare = compare with the prior (earlier) study
describe = general read of the image
Targets: white_cells, red_cells, platelets, all_cells, polyp, lung, none.{plugins}
about (classify only): the class a yes/no question asks about (normal, pneumonia, bacterial, viral), else none.
which: largest or smallest when the question asks for one object, else all.
Anything else (fractures, heart size, fluid, nodules, tumours, bleeding, treatment, drugs, the patient's age or
name) is out of scope: answer {"in_scope":false,"steps":[]}."""

# (earlier question, question, plan) -- wordings of their own, not the evaluation's
EXAMPLES: list[tuple[str | None, str, str]] = [
    (None, "number of WBCs please", '[{"tool":"count","target":"white_cells"}]'),
    (None, "is a polyp visible?", '[{"tool":"count","target":"polyp","yes_no":true}]'),
    (None, "which modality is it", '[{"tool":"image_kind"}]'),
    (None, "does the film look normal?", '[{"tool":"classify","yes_no":true,"about":"normal"}]'),
    (None, "size of the growth in the colon", '[{"tool":"measure","target":"polyp","which":"largest"}]'),
    (None, "mark the thrombocytes", '[{"tool":"locate","target":"platelets"}]'),
    (None, "anything different from last time?", '[{"tool":"compare"}]'),
    (None, "is there a pneumothorax?", None),
    ("count the polyps", "how big is it?", '[{"tool":"measure","target":"polyp","which":"largest"}]'),
    ("how many RBCs", "and the white ones?", '[{"tool":"count","target":"white_cells"}]'),
    (None, "what is this image, and how many red cells are there",
     '[{"tool":"image_kind"},{"tool":"count","target":"red_cells"}]'),
]


def _full(steps: str | None) -> str:
    if steps is None:
        return '{"in_scope":false,"steps":[]}'
    filled = []
    for s in json.loads(steps):
        filled.append(PlanStep(**s).model_dump())
    return json.dumps({"in_scope": True, "steps": filled}, separators=(",", ":"))


def system_prompt() -> str:
    builtin = {spec.name for spec in BUILTIN_TARGETS}
    extra = [f"{spec.name} ({spec.description})" for spec in targets().values() if spec.name not in builtin]
    plugins = f"\nMore targets: {'; '.join(extra)}." if extra else ""
    lines = ["You plan which tools a medical imaging assistant calls to answer a clinician's question about "
             "an image. Reply with JSON only.", _TOOLS_TEXT.replace("{plugins}", plugins), "Examples:"]
    for earlier, q, steps in EXAMPLES:
        lines.append((f"Earlier: {earlier} | " if earlier else "") + f"Q: {q}")
        lines.append(f"A: {_full(steps)}")
    return "\n".join(lines)


class PlanError(OslerError):
    """The model gave no valid plan (after its retry).  ``reason``: a short phrase without numbers, for the answer."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Planned:
    """A plan and how it was obtained."""

    plan: Plan
    raw: str
    attempts: int
    seconds: float
    invalid: list[str] = field(default_factory=list)  # the errors of rejected replies


def parse_plan(text: str) -> Plan:
    """A plan from the model's reply: bare JSON, or JSON in a fenced block / surrounded by prose."""
    s = text.strip()
    m = re.search(r"```(?:json)?\s*(\{.*?\})\s*```", s, re.S)
    if m:
        s = m.group(1)
    elif not s.startswith("{"):
        start, end = s.find("{"), s.rfind("}")
        if start < 0 or end <= start:
            raise ValueError("no JSON object in the reply")
        s = s[start:end + 1]
    return Plan.model_validate(json.loads(s))


def plan_question(client: Any, base_url: str, model: str, question: str, earlier: str | None, *,
                  max_tokens: int, temperature: float, timeout_s: float, image_png: bytes | None = None) -> Planned:
    """Ask the server for a plan (one retry with the error on an invalid reply).  ``image_png``: the current
    study for a vision model, sent inline as an image part (never a URL the server must fetch)."""
    user = (f"Earlier: {earlier} | " if earlier else "") + f"Q: {question}"
    content: Any = user
    if image_png is not None:
        import base64

        url = "data:image/png;base64," + base64.b64encode(image_png).decode()
        content = [{"type": "text", "text": user}, {"type": "image_url", "image_url": {"url": url}}]
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt()}, {"role": "user", "content": content}]
    invalid: list[str] = []
    t0 = time.perf_counter()
    for attempt in (1, 2):
        body = {"model": model, "messages": messages, "temperature": temperature, "max_tokens": max_tokens,
                "response_format": {"type": "json_schema", "json_schema": {"name": "plan", "schema": plan_schema()}}}
        try:
            r = client.post(base_url.rstrip("/") + "/chat/completions", json=body, timeout=timeout_s)
        except Exception as exc:  # httpx errors: the caller falls back to the rule parser
            raise PlanError(f"the planner model did not answer ({type(exc).__name__})",
                            "its server did not answer in time" if "Timeout" in type(exc).__name__
                            else "its server could not be reached") from exc
        if r.status_code != 200:
            raise PlanError(f"the planner model's server answered HTTP {r.status_code}: {r.text[:200]}",
                            "its server answered with an error")
        raw = (r.json().get("choices") or [{}])[0].get("message", {}).get("content") or ""
        try:
            plan = parse_plan(raw)
            return Planned(plan, raw, attempt, time.perf_counter() - t0, invalid)
        except (ValueError, ValidationError) as exc:
            err = str(exc).splitlines()[0][:200]
            invalid.append(err)
            log.info("invalid plan (attempt %d): %s", attempt, err)
            messages += [{"role": "assistant", "content": raw},
                         {"role": "user", "content": f"That is not a valid plan ({err}). Reply with the JSON only."}]
    raise PlanError(f"the planner model gave no valid plan: {invalid[-1]}", "it wrote no valid plan, twice")


_TARGETS: dict[str, tuple[str | None, tuple[str, ...] | None]] = {
    "white_cells": ("blood_cells", ("WBC",)), "red_cells": ("blood_cells", ("RBC",)),
    "platelets": ("blood_cells", ("Platelets",)), "all_cells": ("blood_cells", None), "polyp": ("polyp", None),
    "lung": ("lung", None), "none": (None, None),
}
_ACTIONS = {"count": "count", "locate": "detect", "outline": "segment", "measure": "measure", "classify": "classify",
            "image_kind": "image_kind", "compare": "compare", "describe": "describe"}
# what a yes/no classification asks, in words the classification procedure reads
_ABOUT_CLAUSE = {"normal": "is it normal", "pneumonia": "is there pneumonia", "bacterial": "is it bacterial pneumonia",
                 "viral": "is it viral pneumonia", "none": "which class"}


# Words a question must contain for a step of the model's plan to stand: the model chooses among tools, but only
# among those the question gives grounds for (a small model otherwise answers "is the heart enlarged?" with the
# pneumonia classifier).  Broader than the rule parser's vocabulary: synonyms and word stems.
ANCHORS: dict[str, str] = {
    "white_cells": r"\b(white|wbcs?|leu[ck]o\w*|neutro\w*|lympho\w*|mono\w*|eosino\w*|baso\w*|granulo\w*)",
    "red_cells": r"\b(red|rbcs?|erythro\w*|r\.?b\.?c)",
    "platelets": r"\b(platelets?|thrombo\w*|plts?)\b",
    "all_cells": r"\b(cells?|corpuscles?|blood)\b",
    "polyp": r"\b(polyp\w*|adenoma\w*|lesions?|growths?|mass(es)?|bumps?|lumps?|protrusions?|neoplas\w*)",
    "lung": r"\b(lungs?|pulmonary|lung fields?|chest|thorax|thoracic)\b",
    "classify": r"\b(pneumon\w*|infect\w*|normal|healthy|clear|viral|virus|bacteri\w*|consolidat\w*|opacit\w*|"
                r"diagnos\w*|categor\w*|class\w*|abnormal\w*|sick|ill)\b",
    "compare": r"\b(prior|previous|earlier|before|last|old|baseline|compar\w*|chang\w*|since|progress\w*|"
               r"differ\w*|new|worse|better|improv\w*|grow\w*|grew|shr[iau]nk\w*|then)\b",
}


# a question that refers back to the conversation's objects ("how big is it?", "where are they?", "and those?")
_FOLLOW_UP = r"\b(it|its|they|them|their|those|these|that one|ones?|the same|each|both|the (largest|biggest|smallest))\b|^\s*(and|what about|how about)\b"


def _anchored(key: str, *texts: str | None) -> bool:
    pattern = ANCHORS.get(key) or plan_targets().get(key, (None, None, None))[2]
    return bool(pattern) and any(t and re.search(pattern, t.lower()) for t in texts)


def plan_to_intents(plan: Plan, question: str, previous: Intent | None,
                    parsed: list[Intent] | None = None) -> tuple[list[Intent], list[str]]:
    """The built-in planner's intents for a plan, and the steps dropped (why, in words without class names).

    Out of scope, or nothing left: one 'unknown' intent (the answer says no tool can answer it).  A step
    whose tool or target the question gives no grounds for is dropped (see ``ANCHORS``); a target the
    conversation already has (a follow-up: "how big is it?") needs no new words.  A step without a target
    takes the one the rule parser read in the question (``parsed``), else the previous step's or the
    conversation's.  A step that repeats the conversation's last intent is dropped when other steps remain
    (a follow-up asks for something new)."""
    if not plan.in_scope or not plan.steps:
        return [Intent("unknown", clause=question)], []
    parsed_target = next(((it.target, it.classes) for it in parsed or [] if it.target), None)
    # "Yes."/"No." only for a question shaped as one ("is there ...?", "does it ...?"), as the parser reads it:
    # a small model also marks either-or and wh-questions yes/no
    shaped_yes_no = any(it.yes_no for it in (parsed if parsed is not None else parse_question(question)))
    out: list[Intent] = []
    dropped: list[str] = []
    vocabulary = plan_targets()
    for st in plan.steps:
        target, classes, _ = vocabulary[st.target]
        action = _ACTIONS[st.tool]
        if action in ("classify", "compare") and not _anchored(action, question):
            dropped.append(f"{st.tool} (the question gives no grounds for it)")
            continue
        if action in ("count", "detect", "segment", "measure"):
            if target is None:
                inherit = parsed_target or ((out[-1].target, out[-1].classes) if out else None) or \
                    ((previous.target, previous.classes) if previous is not None else None)
                if inherit is not None:
                    target, classes = inherit
            elif not _anchored(st.target, question) and not (
                    previous is not None and previous.target == target and previous.classes == classes
                    and re.search(_FOLLOW_UP, question.lower())):
                dropped.append(f"{st.tool} (the question names no such target)")
                continue
        clause = question
        if action == "classify":
            clause = _ABOUT_CLAUSE[st.about] if st.yes_no else "which class"
        out.append(Intent(action, target=target, classes=classes,
                          yes_no=st.yes_no and shaped_yes_no and action in ("count", "classify"),
                          largest=st.which == "largest", smallest=st.which == "smallest", clause=clause))
    if previous is not None and len(out) > 1:
        fresh = [it for it in out if (it.action, it.target, it.classes) != (previous.action, previous.target,
                                                                             previous.classes)]
        if fresh and len(fresh) < len(out):
            dropped.append("a step repeating the earlier question")
            out = fresh
    return (out or [Intent("unknown", clause=question)]), dropped
