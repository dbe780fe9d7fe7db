"""The tools the planner calls: typed pydantic-ai tools over the session.

Every call goes through :func:`invoke`, the one tool boundary: it assigns the evidence id,
times the call, records a :class:`~tools.answer.ToolCallRecord`, writes the audit line, and maps
errors.  An :class:`~tools.errors.OslerError` becomes ``ModelRetry`` (the planner reads the message
and may fix its arguments or report the failure); any other exception is an expert bug, logged
and reported the same way, so a tool that throws never ends the session.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from pydantic import BaseModel, ValidationError
from pydantic_ai import ModelRetry, RunContext, Tool
from pydantic_ai.messages import ModelResponse, ToolCallPart

from tools.answer import ToolCallRecord
from tools.classification import ClassificationResult, ClassifyRequest, ImageInfoRequest, ImageInfoResult
from tools.comparison import ComparisonResult, CompareRequest
from tools.detection import CountResult, DetectRequest, DetectionResult
from tools.cancel import cancellable
from tools.errors import OslerError, ToolCancelledError, WrongImageKindError
from tools.segmentation import MeasurementResult, MeasureRequest, SegmentationResult, SegmentRequest
from tools.targets import targets

from agent.boundary import calls as tool_impl, compare as compare_tool, gate, segment as segment_tool
from agent.session import Session
from agent.summaries import summarize

__all__ = ["invoke", "TOOL_NAMES", "build_tools", "TOOL_IMPLS", "tool_descriptions"]

log = logging.getLogger(__name__)


def _compare_with_prior(session: Session, req: CompareRequest, eid: str) -> ComparisonResult:
    session.image("prior")  # raises a clear error when no prior was given
    return compare_tool.compare_studies(session, req, eid, invoke)  # its sub-tools go through this boundary


TOOL_IMPLS: dict[str, tuple[type[BaseModel], Callable[..., Any]]] = {
    "image_info": (ImageInfoRequest, gate.image_info),
    "detect": (DetectRequest, tool_impl.detect),
    "count": (DetectRequest, tool_impl.count),
    "segment": (SegmentRequest, segment_tool.segment),
    "measure": (MeasureRequest, tool_impl.measure),
    "classify": (ClassifyRequest, tool_impl.classify),
    "compare_with_prior": (CompareRequest, _compare_with_prior),
}
TOOL_NAMES = tuple(TOOL_IMPLS)


def _backend_of(result: Any) -> str | None:
    prov = getattr(result, "provenance", None)
    return getattr(prov, "backend", None)


def invoke(session: Session, name: str, request: BaseModel | dict[str, Any], *, evidence_id: str | None = None) -> Any:
    """Run one tool on the session; returns the typed result or raises OslerError.  ``evidence_id``: one
    reserved for this call (:meth:`Session.batch_evidence_id`); by default the next free id."""
    if name not in TOOL_IMPLS:
        raise OslerError(f"unknown tool '{name}'; tools are: {', '.join(TOOL_NAMES)}")
    req_type, impl = TOOL_IMPLS[name]
    eid = evidence_id or session.new_evidence_id()
    args = request.model_dump(mode="json", exclude_none=True) if isinstance(request, BaseModel) else dict(request)
    t0 = time.perf_counter()
    session.begin_call(eid, name)
    try:
        if session.cancel.is_set():
            raise ToolCancelledError("not started: the planner's time limit had already run out")
        req = request if isinstance(request, req_type) else req_type.model_validate(args)
        with cancellable(session.cancel):
            result = impl(session, req, eid)
        if session.cancel.is_set():  # finished after its ask was cancelled: the result is discarded
            raise ToolCancelledError("finished after the planner's time limit ran out; result discarded")
    except (OslerError, ValidationError) as exc:
        if session.end_call(eid):
            _record_failure(session, eid, name, args, t0, exc)
        raise
    except Exception as exc:  # an expert bug must not end the session
        log.exception("tool %s failed", name)
        if session.end_call(eid):
            _record_failure(session, eid, name, args, t0, exc)
        raise OslerError(f"the {name} tool failed unexpectedly ({type(exc).__name__}: {exc})") from exc
    if not session.end_call(eid):  # its ask ended without it: nothing is recorded after the answer
        raise ToolCancelledError("finished after its ask ended; result discarded")
    elapsed = (time.perf_counter() - t0) * 1000
    session.record(eid, result)
    summary = summarize(result)
    record = ToolCallRecord(id=eid, name=name, args=args, backend=_backend_of(result), elapsed_ms=elapsed, ok=True,
                            result=result.model_dump(mode="json"), summary=summary)
    session.add_call(record)
    session.audit.write("tool_call", session.id, id=eid, tool=name, args=args, ok=True, backend=record.backend,
                        elapsed_ms=round(elapsed, 1), summary=summary,
                        provenance=getattr(result, "provenance", None) and result.provenance.model_dump(mode="json"))
    return result


def _record_failure(session: Session, eid: str, name: str, args: dict, t0: float, exc: BaseException) -> None:
    elapsed = (time.perf_counter() - t0) * 1000
    kind = ("refused" if isinstance(exc, WrongImageKindError) else "cancelled" if isinstance(exc, ToolCancelledError)
            else "error")
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    session.add_call(ToolCallRecord(id=eid, name=name, args=args, ok=False, elapsed_ms=elapsed,
                                    error=f"{type(exc).__name__}: {msg}", summary=f"{kind}: {msg}"))
    extra = {"cancelled": True} if kind == "cancelled" else {}
    session.audit.write("tool_call", session.id, id=eid, tool=name, args=args, ok=False,
                        elapsed_ms=round(elapsed, 1), error=f"{type(exc).__name__}: {msg}", **extra)


def _evidence_id(ctx: RunContext[Session]) -> str | None:
    """The id of a call that its planner response made together with others: pydantic-ai runs them
    concurrently, and their evidence ids follow the order the planner wrote them (None: a call on its own)."""
    if ctx.tool_call_id is None:
        return None
    for msg in reversed(ctx.messages):
        if isinstance(msg, ModelResponse):
            ids = tuple(p.tool_call_id for p in msg.parts if isinstance(p, ToolCallPart) and p.tool_name in TOOL_IMPLS)
            if len(ids) < 2 or ctx.tool_call_id not in ids:
                return None
            return ctx.deps.batch_evidence_id((msg.timestamp, ids), ids, ctx.tool_call_id)
    return None


def _call(ctx: RunContext[Session], name: str, req: BaseModel) -> Any:
    try:
        return invoke(ctx.deps, name, req, evidence_id=_evidence_id(ctx))
    except WrongImageKindError as exc:
        raise ModelRetry(f"REFUSED: {exc}") from exc
    except OslerError as exc:
        raise ModelRetry(f"FAILED: {exc}") from exc


def image_info(ctx: RunContext[Session], req: ImageInfoRequest) -> ImageInfoResult:
    """What the image is (chest X-ray, endoscopy, blood smear, fundus, CT/MR, other) with confidence, and
    its metadata (size, pixel spacing in mm and study date when DICOM).  Call it first: other tools refuse
    images of the wrong kind.  When 'kind_trusted' is false the gate does not know the image ('kind' is only
    what it looks most like, 'kind_doubt' says why): every diagnosis tool refuses it ('withheld_tools'), so
    say what it looks like and that no diagnosis was made."""
    return _call(ctx, "image_info", req)


def detect(ctx: RunContext[Session], req: DetectRequest) -> DetectionResult:
    """Find and locate instances of a target (the planner reads :func:`tool_descriptions`: the catalogue's targets)."""
    return _call(ctx, "detect", req)


def count(ctx: RunContext[Session], req: DetectRequest) -> CountResult:
    """Count instances per class of a target (the planner reads :func:`tool_descriptions`)."""
    return _call(ctx, "count", req)


def segment(ctx: RunContext[Session], req: SegmentRequest) -> SegmentationResult:
    """Outline regions of a target, a prompt or an earlier detection (the planner reads :func:`tool_descriptions`)."""
    return _call(ctx, "segment", req)


def measure(ctx: RunContext[Session], req: MeasureRequest) -> MeasurementResult:
    """Measure a mask from a segmentation: area, longest diameter and its perpendicular (px, and mm when the
    pixel spacing is known), bbox, centroid, and the fraction of an organ mask it covers."""
    return _call(ctx, "measure", req)


def classify(ctx: RunContext[Session], req: ClassifyRequest) -> ClassificationResult:
    """Classify the image: 'cxr_pneumonia' (normal / bacterial / viral pneumonia; chest X-rays only) with
    calibrated probabilities and optional Grad-CAM overlay, or 'image_kind' (the modality gate)."""
    return _call(ctx, "classify", req)


def compare_with_prior(ctx: RunContext[Session], req: CompareRequest) -> ComparisonResult:
    """Compare the current study with the prior of the same patient: registers the prior onto the current
    image, matches findings across time (new / resolved / grown / shrunk / unchanged, % change, count changes),
    reports the interval in days and refuses when alignment fails.  Needs a prior image."""
    return _call(ctx, "compare_with_prior", req)


def _target_list(task: str) -> str:
    return "; ".join(f"'{s.name}': {s.description}" for s in targets().values() if task in s.tasks)


def tool_descriptions() -> dict[str, str]:
    """What the planner reads for the tools whose targets come from the expert catalogue (plugins included);
    the other tools are described by their docstrings."""
    return {
        "detect": f"Find and locate instances (boxes xyxy in original-image pixels, label, score) of a target: "
                  f"{_target_list('detect')}.  Draws a numbered overlay.",
        "count": f"Count instances per class of a target ({_target_list('detect')}).  Each count lists the instances "
                 f"it comes from; overlapping duplicates are merged; the confidence threshold used is reported.",
        "segment": f"Outline regions of a target automatically ({_target_list('segment')}; when the target has an "
                   f"automatic prompt, its detector's boxes prompt the segmenter), or any object from a box / points "
                   f"prompt ('prompt'), or every box of an earlier detection (from_evidence).  Returns mask artifact "
                   f"ids, area (px, mm² when spacing is known), bbox and centroid per region.",
    }


def build_tools() -> list[Tool[Session]]:
    described = tool_descriptions()
    return [Tool(fn, takes_ctx=True, max_retries=3, description=described.get(fn.__name__)) for fn in
            (image_info, detect, count, segment, measure, classify, compare_with_prior)]
