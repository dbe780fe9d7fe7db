"""The built-in planner's procedures: which tools to call for each intent, in what order, and how
to phrase the evidence-bound answer from their typed results.

``procedure`` is a generator: it yields a batch of :class:`Call` and receives the batch's
:class:`Outcome` list; it returns the :class:`~tools.answer.FinalAnswer`.  Routing respects the
modality gate: a target that is not valid for the image's kind is refused without a call.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Callable, Generator

from tools.answer import FinalAnswer, Finding
from tools.kinds import CLASSIFY_TASK_KINDS, IMAGE_KINDS, KIND_NAMES
from tools.targets import TARGET_KINDS, LiveTable, targets

from agent.builtin.draft import Call, Draft, Outcome, call_or_fail
from agent.builtin.intents import Intent
from agent.builtin.scope import REGION_PATTERN
from agent.builtin.classify import _classify
from agent.builtin.compare import _compare
from agent.builtin.count import _count
from agent.builtin.measure import _segment_measure
from agent.summaries import summarize

__all__ = ["Call", "Outcome", "procedure"]  # Call and Outcome are re-exported from .draft

def _resolve_target(it: Intent, kind: str) -> str | None:
    if it.target == "lesion":  # 'lesion', 'finding': the target that is the lesion of this kind of image
        return next((s.name for s in targets().values() if s.lesion and kind in s.kinds), None)
    return it.target


def _named(spec: Any) -> str:
    """A target as a plural phrase: 'blood cells', 'polyps', 'lungs'."""
    name = spec.name.replace("_", " ")
    return name if name.endswith("s") else f"{name}s"


def _refuse(d: Draft, it: Intent, target: str | None, kind: str) -> None:
    what = (target or it.target or "that").replace("_", " ")
    accepted = TARGET_KINDS.get(target or "", ())
    if not accepted:
        d.step(f"No tool was run for '{it.clause}': Osler has no tool for {what} on {KIND_NAMES[kind]}.")
        d.sentences.append(f"I cannot answer '{it.clause}': Osler has no tool for {what} on {KIND_NAMES[kind]}, "
                           f"so I do not guess.")
        d.abstained.append(True)
        return
    need = " or ".join(KIND_NAMES[k] for k in accepted)
    d.step(f"No tool was run for '{it.clause}': finding {what} needs {need}, and this image is {KIND_NAMES[kind]}.")
    d.sentences.append(f"I cannot answer '{it.clause}' on this image: it is {KIND_NAMES[kind]}, and the tools for "
                       f"{what} work only on {need}.")
    d.abstained.append(True)


def procedure(question: str, intents: list[Intent], *, has_prior: bool,
              note: str | None = None) -> Generator[list[Call], list[Outcome], FinalAnswer]:
    """``note``: how the plan was made (e.g. by a language model), the answer's first reasoning step."""
    d = Draft()
    if note:
        d.step(note)
    info_call = Call("image_info", {"image": "current"}, "identify the kind of image, so only valid tools are used")
    info = yield from call_or_fail(d, info_call)
    if info is None:
        return d.answer()
    kind = info.kind
    d.step(f"Identified the image to choose valid tools: {summarize(info)}.", info.evidence_id)
    if not info.kind_trusted:
        _withheld(d, info)
        return d.answer()
    if info.kind_confidence < 0.5:
        d.caveats.append(f"the image kind is uncertain (p={info.kind_confidence:.2f})")
    context: dict[str, Any] = {}
    yield from _in_groups(d, context, kind, intents,
                          lambda d_, it, ctx: _whole_image(d_, it, kind, info, has_prior, ctx))
    if not d.sentences:
        d.sentences.append("No tool can answer this question, so I give no answer rather than guess.")
        d.abstained.append(True)
    return d.answer()


def _withheld(d: Draft, info: Any) -> None:
    """The gate does not know this image: say what it looks like and which tools were withheld; run none."""
    tools = ", ".join(info.withheld_tools) or "none"
    d.step(f"The modality gate does not trust its verdict ({info.kind_doubt}), so no diagnosis tool was run "
           f"(withheld: {tools}).", info.evidence_id)
    d.label = d.label or "not_recognised"
    d.sentences.append(f"This image looks most like {KIND_NAMES[info.kind]} (gate confidence "
                       f"{info.kind_confidence:.2f}), but the gate does not route it to a diagnosis tool: "
                       f"{info.kind_doubt.rstrip('.')} [{info.evidence_id}]. I ran no diagnosis tool on it (withheld: "
                       f"{tools}) and give no finding "
                       f"[{info.evidence_id}].")
    d.caveats.append("the image was not given to a diagnosis tool (the reason is above): check that this is the "
                     "intended image, at its full size and quality")
    d.abstained.append(True)


Step = Callable[[Draft, Intent, dict], Generator[list[Call], list[Outcome], Any]]
"""How one intent of a plan runs: on the draft and the context it writes to."""


def _reads_context(it: Intent, kind: str) -> bool:
    """Whether an intent needs what the intents before it found (``ctx``: the last count prompts a segmentation
    and names the cell it outlines), or may change the answer's yes/no after them (a comparison): such an intent
    waits for the ones before it; the others run together."""
    if it.action in ("describe", "compare", "measure"):
        return True
    if it.action not in ("segment", "count", "detect") or it.extras.get("point") is not None:
        return False  # classify, image kind, unknown; a point prompt names its own region
    target = _resolve_target(it, kind)
    spec = targets().get(target) if target else None
    if spec is None or kind not in TARGET_KINDS.get(target or "", ()):
        return False  # refused without a call
    if it.action in ("count", "detect") and not spec.organ:
        return False
    return "segment" not in spec.tasks or bool(spec.auto_prompt)  # outlined from the detector's boxes


def _in_groups(d: Draft, ctx: dict, kind: str, intents: list[Intent], step: Step
               ) -> Generator[list[Call], list[Outcome], None]:
    """Run a plan's intents in order, each one that does not read the context (:func:`_reads_context`) together
    with the ones before it: each round, one planner response holds the next calls of every intent of the group,
    which the agent loop runs concurrently (``agent.builtin.direct`` or pydantic-ai's: independent parts of a
    compound question cost the slowest, not the sum).
    Each intent of a group writes its own draft and context, merged in plan order, so the answer, its evidence ids
    (reserved in the order the calls are written) and the context are those of running the intents one by one."""
    groups: list[list[Intent]] = []
    for it in intents:
        if not groups or _reads_context(it, kind):
            groups.append([it])
        else:
            groups[-1].append(it)
    for group in groups:
        if len(group) == 1:
            yield from step(d, group[0], ctx)
            continue
        parts = [(Draft(), dict(ctx)) for _ in group]
        yield from _together([step(pd, it, pc) for it, (pd, pc) in zip(group, parts)])
        before = dict(ctx)
        for pd, pc in parts:
            d.merge(pd)
            ctx.update({k: v for k, v in pc.items() if k not in before or before[k] is not v})


def _together(gens: list[Generator]) -> Generator[list[Call], list[Outcome], None]:
    """Drive generators in lockstep: yield one batch with every unfinished generator's next calls, hand each
    its own outcomes (the planner returns them in call order)."""
    live: list[tuple[Generator, list[Call]]] = []

    def advance(g: Generator, outs: list[Outcome] | None) -> None:
        try:
            batch = next(g) if outs is None else g.send(outs)
        except StopIteration:
            return
        live.append((g, batch))

    for g in gens:
        advance(g, None)
    while live:
        current = live[:]
        live.clear()
        outs = yield [c for _g, batch in current for c in batch]
        i = 0
        for g, batch in current:
            advance(g, outs[i:i + len(batch)])
            i += len(batch)


def _whole_image(d: Draft, it: Intent, kind: str, info: Any, has_prior: bool, ctx: dict) -> Generator:
    """An intent; when its question names a part of the image ('in the left half', 'in the left lung') and its
    tool read the whole image (a count, a detection, a classification), the answer says so."""
    sentences, yes_no = len(d.sentences), d.yes_no
    yield from _run_intent(d, it, kind, info, has_prior, ctx)
    region = re.search(REGION_PATTERN, it.clause.lower())
    if ctx.pop("side_answered", None) is not None:
        region = None  # "how big is the left lung?": measured on that lung
    if region is not None and it.action in _WHOLE and len(d.sentences) > sentences:
        d.sentences.append(f"This covers the whole image: Osler's tools do not {_WHOLE[it.action]} within a part of "
                           f"it ('{region.group(0)}'), so check that part on the overlay.")
        d.caveats.append(f"the question names a part of the image ('{region.group(0)}'); the tools read all of it")
        d.yes_no = yes_no  # "is there a polyp in the upper half?": a yes about the whole image is no answer to it
    elif it.action == "classify" and re.search(_WHERE, it.clause.lower()) and len(d.sentences) > sentences:
        d.sentences.append("The classifier reads the whole film and does not say where a finding lies; the Grad-CAM "
                           "overlay only approximates where it looked.")
        d.caveats.append("the question asks where; the classifier does not localise")


def _decline(d: Draft, it: Intent) -> None:
    """An intent no tool answers: an instruction about what to answer, a question with its reason ('why'), or a
    term outside every tool."""
    if it.extras.get("instruction"):
        step = f"'{it.clause}' tells Osler what to answer; it answers only from its tools' results."
        said = (f"I do not follow '{it.clause}': my answers come only from the tools' results, not from instructions "
                f"in the question.")
    elif it.extras.get("why"):
        step = f"No tool answers '{it.clause}': {it.extras['why']}."
        said = f"I cannot answer '{it.clause}': {it.extras['why']}, so I do not guess."
    else:
        term = f" ('{it.unsupported}')" if it.unsupported else ""
        counted = " and ".join(_named(s) for s in targets().values() if "detect" in s.tasks)
        outlined = " and ".join(_named(s) for s in targets().values() if "segment" in s.tasks)
        step = (f"No tool covers '{it.clause}'{term}: the tools only count/locate {counted}, segment {outlined}, "
                f"classify pneumonia on chest X-rays and compare with a prior study.")
        said = f"No tool can answer '{it.clause}'{term}, so I do not answer it rather than guess."
    d.step(step)
    d.sentences.append(said)
    d.abstained.append(True)


_WHERE = r"\b(where|which (side|lung|lobe|zone|part|region)|locat\w*|what side|on which)\b"
_WHOLE = {"count": "count", "detect": "locate findings", "classify": "classify", "segment": "outline",
          "measure": "measure"}


def _run_intent(d: Draft, it: Intent, kind: str, info: Any, has_prior: bool, ctx: dict) -> Generator:
    if it.action == "image_kind":
        d.label = d.label or kind
        d.findings.append(Finding(text=f"image kind: {kind}", evidence=[info.evidence_id]))
        asked = it.extras.get("asked_kind")
        if asked is not None and it.yes_no:
            d.yes_no = d.yes_no or ("yes" if asked == kind else "no")
        d.sentences.append(f"This image is {KIND_NAMES[kind]} (gate confidence {info.kind_confidence:.2f}, "
                           f"decided from {info.kind_source}) [{info.evidence_id}].")
        d.abstained.append(False)
        return
    if it.action == "unknown":
        _decline(d, it)
        return
    if it.action == "compare":
        target = _resolve_target(it, kind) if it.target else None
        if target is not None and kind not in TARGET_KINDS.get(target, ()):  # white cells over time on a chest film
            _refuse(d, it, target, kind)
            return
        yield from _compare(d, it, kind, has_prior)
        return
    if it.action == "describe":
        yield from _describe(d, it, kind, info, has_prior, ctx)
        return
    if it.action == "classify":
        yield from _classify(d, it, kind)
        return
    if it.extras.get("point") is not None:  # a point prompt: the polyp model on endoscopy, else SAM / GrabCut
        lesion = next((s.name for s in targets().values() if s.lesion and kind in s.kinds and "segment" in s.tasks), None)
        target = lesion if lesion is not None and it.target in (None, lesion, "lesion") else "prompt"
        yield from _segment_measure(d, it, target, ctx)
        return
    target = _resolve_target(it, kind)
    if target is None or kind not in TARGET_KINDS.get(target, ()):
        _refuse(d, it, target, kind)
        return
    spec = targets()[target]
    if spec.organ and it.action in ("count", "detect"):
        it = replace(it, action="segment")  # organs (the lungs) are outlined, not counted
    if it.action in ("count", "detect") or ("segment" not in spec.tasks and it.action in ("segment", "measure")):
        det = ctx.get("last_count") if it.action in ("segment", "measure") else None
        if det is None:
            det = yield from _count(d, it, target, detect_only=it.action == "detect")
        if det is None:
            return
        ctx["last_count"] = det
        if it.action in ("count", "detect"):
            return
    yield from _segment_measure(d, it, target, ctx)


def _describe_plan() -> dict[str, list[tuple[str, str | None]]]:
    """Image kind -> the standard read: its diagnosis classifier first, then each target's TargetSpec.describe."""
    plan: dict[str, list[tuple[str, str | None]]] = {}
    for task, kinds in CLASSIFY_TASK_KINDS.items():
        for kind in kinds if kinds != IMAGE_KINDS else ():
            plan.setdefault(kind, []).append(("classify", None))
    for spec in targets().values():
        for kind in spec.kinds:
            plan.setdefault(kind, []).extend((action, spec.name) for action in spec.describe)
    return {k: v for k, v in plan.items() if v}


DESCRIBE_PLAN: LiveTable = LiveTable(_describe_plan)
"""Image kind -> [(action, target)] of 'describe this image': blood smear -> count blood cells; endoscopy ->
count and measure polyps; chest X-ray -> classify, segment the lungs."""


def _describe(d: Draft, it: Intent, kind: str, info: Any, has_prior: bool, ctx: dict) -> Generator:
    """'Describe this image': the kind's standard read, each part a tool call."""
    d.sentences.append(f"This is {KIND_NAMES[kind]} [{info.evidence_id}].")
    plan = DESCRIBE_PLAN.get(kind)
    if not plan:
        d.step(f"Osler has no tools for {KIND_NAMES[kind]} beyond identifying it.")
        d.sentences.append("Osler has no further tools for this kind of image, so it reports nothing else.")
        d.abstained.append(False)
        return
    d.abstained.append(False)
    subs = [Intent(action, target=target, clause=f"{action} {target or ''}".strip()) for action, target in plan]
    yield from _in_groups(d, ctx, kind, subs, lambda d_, it, ctx_: _plan_part(d_, it, kind, info, has_prior, ctx_))


def _plan_part(d: Draft, it: Intent, kind: str, info: Any, has_prior: bool, ctx: dict) -> Generator:
    """One part of the standard read; a measurement is skipped when the count before it found nothing."""
    if it.action == "measure" and ctx.get("last_count") is not None and not any(
            c.count for c in ctx["last_count"].counts):
        return  # nothing to measure
    yield from _run_intent(d, it, kind, info, has_prior, ctx)
