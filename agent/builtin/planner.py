"""The built-in offline planner: a pydantic-ai ``FunctionModel`` that parses the question into
intents, issues real tool calls through the agent loop, reads their typed results and writes
an evidence-bound :class:`~tools.answer.FinalAnswer`.

The plan is a generator (:func:`agent.builtin.procedures.procedure`) replayed on every model turn: the
tool results already in the message history are fed back in order, and the first batch of
calls not yet made is returned to the agent loop.  When the generator finishes, its value is
the final answer, returned through the output tool.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


from pydantic_ai.messages import ModelMessage, ModelResponse, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agent.builtin.intents import Intent, parse_question
from agent.messages import current_run, tool_outcomes, user_questions
from agent.builtin.procedures import Call, Outcome, procedure

__all__ = ["BuiltinPlanner", "builtin_model", "user_questions"]


def _returns_since_last_question(messages: list[ModelMessage]) -> list[Outcome]:
    """Tool outcomes of the current run, in the order the calls were made (the calls of one response run
    concurrently and may come back in another order)."""
    run = current_run(messages)
    order = {p.tool_call_id: i for i, p in enumerate(p for m in run if isinstance(m, ModelResponse) for p in m.parts
                                                     if isinstance(p, ToolCallPart))}
    outs = sorted(tool_outcomes(run), key=lambda o: order.get(o.call.tool_call_id, len(order)))
    return [Outcome(name=o.name, ok=o.ok, result=o.result, error=o.error) for o in outs]


@dataclass
class BuiltinPlanner:
    """State needed across turns: whether a prior is loaded, the last intent of the conversation."""

    has_prior: bool = False
    previous: Intent | None = None

    def intents_for(self, question: str, previous: Intent | None, questions: list[str]) -> tuple[list[Intent], str | None]:
        """The plan of a question (the rule parser's intents) and a note on how it was made (None: say nothing).
        Called on every model turn of an ask, so a subclass that plans expensively caches per question."""
        return parse_question(question, previous), None

    def __call__(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        """The ``FunctionModel`` entry: the next response under pydantic-ai's agent loop."""
        return self.respond(messages, info.output_tools[0].name if info.output_tools else "final_result")

    def respond(self, messages: list[ModelMessage], output_tool: str) -> ModelResponse:
        """The next response given the messages so far: the next batch of tool calls, or the answer as a call
        of ``output_tool`` (also driven without pydantic-ai by :func:`agent.builtin.direct.run_builtin`)."""
        questions = user_questions(messages)
        question = questions[-1] if questions else ""
        previous = self.previous
        if previous is None and len(questions) > 1:
            prev_intents = parse_question(questions[-2])
            previous = prev_intents[-1] if prev_intents else None
        intents, note = self.intents_for(question, previous, questions)
        outcomes = _returns_since_last_question(messages)
        gen = procedure(question, intents, has_prior=self.has_prior, note=note)
        batch: list[Call] | None
        try:
            batch = next(gen)
            i = 0
            while True:
                n = len(batch)
                if i + n > len(outcomes):
                    break
                batch = gen.send(outcomes[i:i + n])
                i += n
        except StopIteration as stop:
            answer = stop.value
            self.previous = next((it for it in reversed(intents) if it.target), previous)
            return ModelResponse(parts=[ToolCallPart(output_tool, answer.model_dump(mode="json"), tool_call_id="final")])
        parts = [ToolCallPart(c.name, json.loads(json.dumps(c.args)), tool_call_id=f"{c.name}-{len(outcomes) + k}")
                 for k, c in enumerate(batch)]
        return ModelResponse(parts=parts)


def builtin_model(planner: BuiltinPlanner | None = None) -> FunctionModel:
    return FunctionModel(planner or BuiltinPlanner(), model_name="osler-builtin")


