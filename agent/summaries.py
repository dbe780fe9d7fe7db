"""One-line, human-readable summaries of typed tool results (for traces, logs and steps)."""

from __future__ import annotations

from typing import Any

from tools.classification import ClassificationResult, ImageInfoResult
from tools.comparison import ComparisonResult
from tools.detection import CountResult, DetectionResult
from tools.segmentation import MeasurementResult, SegmentationResult

__all__ = ["summarize", "backend_label", "fmt"]


def fmt(x: float, nd: int = 1) -> str:
    """Numbers as the answer writes them (and as the grounding check reads them)."""
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.{nd}f}"


def backend_label(result: Any) -> str:
    p = getattr(result, "provenance", None)
    if p is None:
        return "unknown backend"
    return f"{p.expert} [{p.backend}: {p.model}]"


def summarize(result: Any) -> str:
    if isinstance(result, ImageInfoResult):
        m = result.meta
        extra = f", spacing {m.pixel_spacing_mm[0]:.3f}x{m.pixel_spacing_mm[1]:.3f} mm" if m.pixel_spacing_mm else ""
        date = f", study date {m.study_date}" if m.study_date else ""
        doubt = "" if result.kind_trusted else f"; not trusted: {result.kind_doubt}"
        return (f"{result.image}: {result.kind} (p={result.kind_confidence:.2f}, from {result.kind_source}{doubt}); "
                f"{m.width}x{m.height} {m.format}{extra}{date}")
    if isinstance(result, CountResult):
        parts = ", ".join(f"{c.count} {c.label}" for c in result.counts)
        return f"{parts} (score >= {result.min_score:.2f}; {backend_label(result)})"
    if isinstance(result, DetectionResult):
        labels: dict[str, int] = {}
        for d in result.detections:
            labels[d.label] = labels.get(d.label, 0) + 1
        parts = ", ".join(f"{n} {k}" for k, n in labels.items()) or "nothing"
        return f"detected {parts} (score >= {result.min_score:.2f}; {backend_label(result)})"
    if isinstance(result, SegmentationResult):
        areas = ", ".join(f"#{r.index} {r.area_px} px" for r in result.regions) or "no region"
        return f"{len(result.regions)} {result.target} region(s): {areas} ({backend_label(result)})"
    if isinstance(result, MeasurementResult):
        mm = f" = {fmt(result.area_mm2)} mm²" if result.area_mm2 is not None else ""
        frac = f"; covers {fmt(100 * result.fraction_of_within)}% of {result.within_mask_id}" if result.fraction_of_within is not None else ""
        return (f"{result.mask_id}: area {result.area_px} px{mm}, long diameter {fmt(result.long_diameter_px)} px, "
                f"perpendicular {fmt(result.short_diameter_px)} px{frac}")
    if isinstance(result, ClassificationResult):
        probs = ", ".join(f"{k} {v:.2f}" for k, v in sorted(result.probabilities.items(), key=lambda kv: -kv[1]))
        label = f"uncertain (leaning {result.label})" if result.uncertain else result.label
        return f"{result.task}: {label} ({probs}; {backend_label(result)})"
    if isinstance(result, ComparisonResult):
        if result.status == "refused":
            return f"comparison refused: {result.reason}"
        ch = ", ".join(f"#{c.index} {c.label} {c.status}" for c in result.changes) or "no matched findings"
        days = f"{result.interval_days} days apart; " if result.interval_days is not None else ""
        return f"compared ({days}{ch})"
    return type(result).__name__
