"""The LLM planner (``--planner llm``): a local language model plans, the built-in procedures execute.

In ``hybrid`` mode (the default) the rule parser plans the questions it understands for sure (every clause
has an action chosen by a verb of the question and every target or class word of the question is used);
the model plans the rest: paraphrases the parser does not know, follow-ups in other words, several steps
in one sentence.  In ``always`` mode the model plans every question.  Either way the plan is a list of
:class:`~agent.builtin.intents.Intent` run by the built-in procedures through the same agent loop, tools,
grounding check and audit log; the answer's first step says who planned it.  When the model fails (no
server, timeout, no valid plan after one retry) the rule parser's plan is used and the answer says so.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from tools.errors import OslerError
from tools.settings import OslerSettings

from agent.builtin.planner import BuiltinPlanner
from agent.builtin.intents import CLASSIFY_PATTERN, KIND_PATTERN, TARGET_PATTERNS, Intent, parse_question
from agent.planners.llm_plan import PlanError, Planned, plan_question, plan_to_intents
from agent.privacy import Deidentifier, PrivacyPolicy, mask_text_regions, png_for_planner

__all__ = ["HybridPlanner", "LLMClient", "PlanRecord", "parser_is_sure"]

log = logging.getLogger(__name__)


def _named_targets(q: str) -> set[str]:
    return {tgt for pattern, tgt, _ in TARGET_PATTERNS if re.search(pattern, q)}


def parser_is_sure(question: str, intents: list[Intent]) -> bool:
    """True when the rule parser's plan can be trusted without asking the model."""
    q = question.lower()
    for it in intents:
        if it.action == "unknown" and it.unsupported is None:
            return False  # nothing understood (an out-of-scope term it knows is a sure refusal)
        if it.guessed:
            return False  # no verb chose the action
    actions = {it.action for it in intents}
    if actions & {"compare", "describe", "unknown"}:
        return True
    covered = {it.target for it in intents} | {it.within for it in intents}
    if "classify" in actions:
        covered |= {"lung"}  # "normal lungs, bacterial or viral pneumonia?": the classifier reads the lungs
    if "lesion" in covered:
        covered |= {"polyp"}
    if _named_targets(q) - covered - {"lesion"}:
        return False  # a target the question names is in no clause ("... and whether the lungs ...")
    if re.search(CLASSIFY_PATTERN, q) and "classify" not in actions and not (covered - {None}):
        return False
    if re.search(CLASSIFY_PATTERN, q) and "classify" not in actions and "lung" not in covered and "pneumonia" in q:
        return False  # "what modality is this and whether there's pneumonia"
    if re.search(KIND_PATTERN, q) and "image_kind" not in actions:
        return False
    return True


@dataclass
class LLMClient:
    """Where plans come from: an OpenAI-compatible server (llama-server started by Osler on first use, or any
    running one at ``llm.base_url``)."""

    name: str  # for provenance: which model, served how
    base_url: str | None = None  # None: start llama-server on the first plan
    model: str = ""
    settings: OslerSettings | None = None
    max_tokens: int = 160
    temperature: float = 0.0
    timeout_s: float = 120.0
    _http: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def plan(self, question: str, earlier: str | None, image_png: bytes | None = None) -> Planned:
        import httpx

        with self._lock:  # one request at a time: the local server has one slot
            if self.base_url is None:
                from agent.planners.llm_server import server_for

                try:
                    srv = server_for(self.settings)
                except OslerError as exc:
                    raise PlanError(str(exc), "its server could not be started") from exc
                self.base_url, self.model = srv.base_url, srv.model.stem
            if self._http is None:
                self._http = httpx.Client()
            return plan_question(self._http, self.base_url, self.model, question, earlier,
                                 max_tokens=self.max_tokens, temperature=self.temperature, timeout_s=self.timeout_s,
                                 image_png=image_png)

    @classmethod
    def from_settings(cls, settings: OslerSettings) -> "LLMClient":
        """The client; a missing binary or model fails here (ConfigurationError naming the setting), the server
        itself starts on the first question the rule parser does not understand."""
        cfg = settings.llm
        common = dict(max_tokens=cfg.max_tokens, temperature=cfg.temperature, timeout_s=cfg.timeout_s)
        if cfg.base_url:
            model = settings.model or cfg.model
            return cls(f"{model} at {cfg.base_url}", cfg.base_url, model, **common)
        from agent.planners.llm_server import resolve_binary, resolve_model

        resolve_binary(settings)
        _, name = resolve_model(settings)
        return cls(f"{name}, llama.cpp on this machine", settings=settings, **common)


@dataclass
class PlanRecord:
    """How one question was planned (kept for the evaluation's planner statistics)."""

    question: str
    by: str  # 'parser' | 'model' | 'parser-fallback'
    seconds: float = 0.0
    attempts: int = 0
    invalid: list[str] = field(default_factory=list)
    raw: str = ""
    error: str | None = None


@dataclass
class HybridPlanner(BuiltinPlanner):
    client: LLMClient | None = None
    mode: str = "hybrid"
    session: Any = None  # the images and identifiers of the conversation (for the privacy policy)
    policy: PrivacyPolicy | None = None  # what may leave for the model's server (agent.privacy.policy_for)
    records: list[PlanRecord] = field(default_factory=list)
    _cache: dict[tuple[int, str], tuple[list[Intent], str | None]] = field(default_factory=dict)
    _deid: tuple[tuple, Deidentifier] | None = None  # (images it was built for, the de-identifier): headers read once

    def intents_for(self, question: str, previous: Intent | None, questions: list[str]) -> tuple[list[Intent], str | None]:
        key = (len(questions), question)
        if key in self._cache:
            return self._cache[key]
        parsed = parse_question(question, previous)
        if self.mode == "hybrid" and parser_is_sure(question, parsed):
            self.records.append(PlanRecord(question, "parser"))
            out = (parsed, "Planned by the rule parser (it understood the question; the language model was not asked).")
        else:
            earlier = questions[-2] if len(questions) > 1 else None
            out = self._ask_model(question, earlier, previous, parsed)
        self._cache[key] = out
        return out

    def _ask_model(self, question: str, earlier: str | None, previous: Intent | None,
                   parsed: list[Intent]) -> tuple[list[Intent], str | None]:
        assert self.client is not None
        image = None
        if self.policy is not None and self.session is not None:
            if self.policy.deidentify:  # a server off this machine gets no identifiers, dates or names
                key = tuple(sorted((r, self.session.image_tag(r)) for r in self.session.images))
                if self._deid is None or self._deid[0] != key:
                    self._deid = (key, Deidentifier.for_session(self.session))
                deid = self._deid[1]
                question, earlier = deid.text(question), (deid.text(earlier) if earlier else None)
            current = self.session.images.get("current")
            if self.policy.send_images and current is not None:
                pixels = mask_text_regions(current.pixels)[0] if self.policy.mask_images else current.pixels
                image = png_for_planner(pixels)
        try:
            planned = self.client.plan(question, earlier, image)
        except PlanError as exc:
            self.records.append(PlanRecord(question, "parser-fallback", error=str(exc)))
            log.warning("LLM planner fell back to the rule parser: %s", exc)
            return parsed, f"The language model gave no plan ({exc.reason}); planned by the rule parser instead."
        self.records.append(PlanRecord(question, "model", planned.seconds, planned.attempts, planned.invalid,
                                       planned.raw))
        intents, dropped = plan_to_intents(planned.plan, question, previous, parsed)
        # tool names only: the grounding check reads model names' version numbers and class names in a step that
        # cites no tool result as unsupported claims; the answer's planner field names the model, the calls the targets
        what = ", then ".join(s.tool for s in planned.plan.steps) if planned.plan.in_scope else "no tool covers it"
        retry = " after a retry (its first reply was not a valid plan)" if planned.attempts > 1 else ""
        note = f"Planned by the language model (named in the planner field){retry}: {what}."
        if dropped:
            note += f" Dropped from its plan: {'; '.join(dropped)}."
        return intents, note
