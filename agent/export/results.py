"""The typed tool results behind one or more answers, read back from :class:`~tools.answer.AskResult`
records (live, or from ``answers.json``), for exporters that render by type (DICOM SEG/SR, the report).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from tools.answer import AskResult, ToolCallRecord
from tools.classification import ClassificationResult, ImageInfoResult
from tools.common import ArtifactRef, Provenance
from tools.comparison import ComparisonResult
from tools.detection import CountResult, DetectionResult
from tools.segmentation import MeasurementResult, SegmentationResult

__all__ = ["RESULT_TYPES", "typed_results", "results_by_id", "provenance_of", "artifact_refs", "load_answers"]

log = logging.getLogger(__name__)

RESULT_TYPES: dict[str, type[BaseModel]] = {
    "image_info": ImageInfoResult,
    "detect": DetectionResult,
    "count": CountResult,
    "segment": SegmentationResult,
    "measure": MeasurementResult,
    "classify": ClassificationResult,
    "compare_with_prior": ComparisonResult,
}
"""Tool name -> the contract its result follows."""


def typed_results(calls: Iterable[ToolCallRecord]) -> dict[str, BaseModel]:
    """Evidence id -> typed result, for every successful call whose result validates against its contract."""
    out: dict[str, BaseModel] = {}
    for call in calls:
        kind = RESULT_TYPES.get(call.name)
        if not call.ok or call.result is None or kind is None:
            continue
        try:
            out[call.id] = kind.model_validate(call.result)
        except ValidationError as exc:  # an answers.json from another version: say so, skip the call
            log.warning("result %s (%s) does not match its contract: %s", call.id, call.name, exc.error_count())
    return out


def results_by_id(answers: Sequence[AskResult]) -> dict[str, BaseModel]:
    """Typed results of every answer, in call order (evidence ids are unique within a session)."""
    out: dict[str, BaseModel] = {}
    for a in answers:
        out.update(typed_results(a.tool_calls))
    return out


def provenance_of(result: BaseModel) -> Provenance | None:
    prov = getattr(result, "provenance", None)
    return prov if isinstance(prov, Provenance) else None


def artifact_refs(result: BaseModel) -> list[ArtifactRef]:
    """Every artifact a result points at (overlay, masks, saliency, change map, side-by-side)."""
    refs: list[ArtifactRef] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, ArtifactRef):
            refs.append(obj)
        elif isinstance(obj, BaseModel):
            for name in type(obj).model_fields:
                walk(getattr(obj, name))
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                walk(v)

    walk(result)
    return refs


def load_answers(text: str) -> list[AskResult]:
    """``osler ask --json`` output (one object) or the web app's ``answers.json`` (a list) -> answers."""
    import json

    data = json.loads(text)
    items = data if isinstance(data, list) else [data]
    return [AskResult.model_validate(item) for item in items]
