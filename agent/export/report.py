"""A report of a session a clinician can read and sign: findings, measurements, comparison with the
prior, limitations, models and versions, figures.  Built only from the session's answers and the typed
tool results behind them; every sentence carries its evidence ids, every figure links to its overlay PNG,
and the grounding check runs on every sentence (a sentence it cannot back is left out, and the report
says how many were).  Marked as a draft for review, not a diagnosis.

``build_report(answers) -> SessionReport`` (pure), ``report_markdown(report) -> str``;
the PDF is :func:`agent.export.report_pdf.write_pdf`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tools.answer import AskResult, FinalAnswer, Finding
from tools.classification import ClassificationResult, ImageInfoResult
from tools.comparison import ComparisonResult
from tools.detection import CountResult, DetectionResult
from tools.segmentation import MeasurementResult, SegmentationResult

from agent.grounding.check import check_grounding
from agent.export.results import artifact_refs, provenance_of, results_by_id

__all__ = ["BANNER", "Sentence", "Figure", "SessionReport", "build_report", "report_markdown"]

BANNER = "DRAFT for review, not a diagnosis"
DISCLAIMER = ("Produced by Osler, research software whose models are not validated for clinical use. Every "
              "statement below comes from a tool result (evidence ids in brackets); a clinician must review "
              "the images and each statement before any use.")
_CITE = re.compile(r"\[?\b(E\d+)\b\]?")


@dataclass(frozen=True)
class Sentence:
    """One statement of the report and the evidence ids that back it."""

    text: str
    evidence: tuple[str, ...]


@dataclass(frozen=True)
class Figure:
    number: int
    path: str = field(metadata={"doc": "overlay PNG path (the figure links to it)"})
    evidence: str = ""
    caption: str = ""


@dataclass
class SessionReport:
    """What the Markdown and PDF renderings show, section by section."""

    title: str
    created: str
    study: list[str]
    sections: dict[str, list[Sentence]]
    questions: list[tuple[str, list[Sentence]]]
    models: list[list[str]]
    figures: list[Figure]
    removed: int = 0
    deidentified: bool = False


def _f(x: float, nd: int = 1) -> str:
    return f"{x:.{nd}f}" if abs(x - round(x)) > 1e-9 else f"{int(round(x))}"


def _area(px: int | float, mm2: float | None) -> str:
    return f"{_f(mm2)} mm²" if mm2 is not None else f"{int(px)} px"


def _length(px: float, mm: float | None) -> str:
    return f"{_f(mm)} mm" if mm is not None else f"{_f(px)} px"


def _result_sentences(eid: str, r: BaseModel) -> tuple[str, list[str]]:
    """(section, sentences) for one typed tool result."""
    if isinstance(r, ImageInfoResult):
        src = "DICOM tags" if r.kind_source == "dicom" else "the pixels"
        return "Findings", [f"The {r.image} study was identified as {r.kind.replace('_', ' ')} "
                            f"(confidence {r.kind_confidence:.2f}, from {src})."]
    if isinstance(r, CountResult):
        parts = ", ".join(f"{c.label} {c.count}" for c in r.counts)
        return "Measurements", [f"Count on the {r.image} study: {parts} (confidence threshold {r.min_score:.2f})."]
    if isinstance(r, DetectionResult):
        return "Findings", [f"{len(r.detections)} {r.target.replace('_', ' ')} detection(s) on the {r.image} study "
                            f"(confidence threshold {r.min_score:.2f})."]
    if isinstance(r, SegmentationResult):
        if not r.regions:
            return "Findings", [f"Segmentation of {r.target} on the {r.image} study found no region."]
        out = [f"Segmentation of {r.target} on the {r.image} study: {len(r.regions)} region(s)."]
        out += [f"Region #{g.index} ({g.label}): area {_area(g.area_px, g.area_mm2)}." for g in r.regions]
        return "Findings", out
    if isinstance(r, MeasurementResult):
        s = (f"Measurement of {r.mask_id}: area {_area(r.area_px, r.area_mm2)}, long axis "
             f"{_length(r.long_diameter_px, r.long_diameter_mm)}, short axis "
             f"{_length(r.short_diameter_px, r.short_diameter_mm)}.")
        out = [s]
        if r.fraction_of_within is not None:
            out.append(f"It covers {100 * r.fraction_of_within:.1f} % of {r.within_mask_id}.")
        return "Measurements", out
    if isinstance(r, ClassificationResult):
        p = r.probabilities[r.label]
        cal = "calibrated" if r.calibrated else "not calibrated"
        return "Findings", [f"Most probable {r.task.replace('_', ' ')} label: {r.label.replace('_', ' ')} "
                            f"(probability {p:.2f}, {cal})."]
    if isinstance(r, ComparisonResult):
        if r.status != "compared":
            return "Comparison with the prior", [f"The comparison with the prior study was refused: {r.reason}."]
        out = []
        if r.interval_days is not None:
            out.append(f"The prior study is {r.interval_days} days older than the current study.")
        if r.registration is not None:
            ok = "succeeded" if r.registration.success else "failed"
            out.append(f"Registration of the prior onto the current study {ok} ({r.registration.method}).")
        out += [f"{c.label}: prior {c.prior}, current {c.current} (difference {c.delta:+d})." for c in r.count_changes]
        for c in r.changes:
            pct = f", area change {c.area_change_pct:+.1f} %" if c.area_change_pct is not None else ""
            out.append(f"Finding #{c.index} ({c.label}): {c.status}{pct}.")
        if r.lung_opacity_change is not None:
            out.append(f"Mean intensity change inside the lung fields: {r.lung_opacity_change:+.3f}.")
        return "Comparison with the prior", out
    return "Findings", []


def _limitations(answers: Sequence[AskResult], results: dict[str, BaseModel]) -> list[Sentence]:
    out: list[Sentence] = []
    for eid, r in results.items():
        prov = provenance_of(r)
        if prov is not None and prov.note:
            out.append(Sentence(f"{prov.expert} ({prov.backend}): {prov.note.rstrip('.')}.", (eid,)))
    for a in answers:
        for c in a.tool_calls:
            if not c.ok:
                out.append(Sentence(f"The {c.name} call gave no result: {(c.error or c.summary).rstrip('.')}.", (c.id,)))
        if a.uncertainty:
            ids = tuple(dict.fromkeys(e for s in a.steps for e in s.evidence))
            out.append(Sentence(a.uncertainty.rstrip(".") + ".", ids))
    seen: set[str] = set()
    unique = []
    for s in out:  # a caveat the answer repeats from a provenance note is said once
        key = s.text.split(": ", 1)[-1] if s.text.split(": ", 1)[0].endswith(")") else s.text
        if key not in seen:
            seen.add(key)
            unique.append(s)
    return unique


def _answer_sentences(a: AskResult) -> list[Sentence]:
    """The answer's sentences, each with the ids it cites (else those of the conclusion step)."""
    fallback = tuple(a.steps[-1].evidence) if a.steps else ()
    out = []
    for s in re.split(r"(?<=[.!?])\s+(?=[A-Z(#])", a.answer.strip()):
        ids = tuple(dict.fromkeys(_CITE.findall(s))) or fallback
        text = re.sub(r"(?:\s*,)+\s*(?=[.;]|$)", "", _CITE.sub("", s))  # "mm² [E3], [E2]." -> "mm²."
        text = re.sub(r"\s{2,}", " ", re.sub(r"\s+([.,;])", r"\1", text)).strip()
        if text and not text.startswith("[Osler removed"):
            out.append(Sentence(text, ids))
    return out


def _grounded(sentences: list[Sentence], results: dict[str, Any], answers: Sequence[AskResult]) -> tuple[list[Sentence], int]:
    """Keep the sentences the grounding check backs with the results they cite."""
    if not sentences:
        return [], 0
    draft = FinalAnswer(answer="", findings=[Finding(text=s.text, evidence=list(s.evidence)) for s in sentences])
    question = " ".join(a.question for a in answers)
    checked, _ = check_grounding(draft, results, question)
    kept = [s for s, f in zip(sentences, checked.findings) if f.verified]
    return kept, len(sentences) - len(kept)


def _study_lines(answers: Sequence[AskResult], deidentified: bool) -> list[str]:
    lines = []
    images = answers[-1].images if answers else {}
    for role in ("current", "prior"):
        m = images.get(role)
        if not m:
            continue
        bits = [f"{m.get('width')}×{m.get('height')} px {m.get('format')}"]
        if m.get("modality_tag"):
            bits.append(f"modality {m['modality_tag']}" + (f" {m['body_part']}" if m.get("body_part") else ""))
        if m.get("pixel_spacing_mm"):
            bits.append("pixel spacing {:.3f}×{:.3f} mm".format(*m["pixel_spacing_mm"]))
        else:
            bits.append("no pixel spacing (sizes in pixels)")
        if not deidentified:
            bits.insert(0, f"file {m.get('source')}")
            if m.get("study_date"):
                bits.append(f"study date {m['study_date']}")
        lines.append(f"{role.capitalize()} study: " + ", ".join(bits))
    return lines


def build_report(answers: Sequence[AskResult], *, deidentified: bool = False, now: dt.datetime | None = None) -> SessionReport:
    """The report of a session's answers (in order).  Pure: reads only the answers."""
    results = results_by_id(answers)
    # failed calls back only the sentence that reports their failure
    checkable: dict[str, Any] = {**results, **{c.id: {"error": c.error or c.summary} for a in answers
                                                for c in a.tool_calls if not c.ok}}
    sections: dict[str, list[Sentence]] = {"Findings": [], "Measurements": [], "Comparison with the prior": []}
    for eid, r in results.items():
        section, texts = _result_sentences(eid, r)
        sections[section].extend(Sentence(t, (eid,)) for t in texts)
    for name, sents in sections.items():  # one sentence said by several results: once, citing them all
        merged: dict[str, tuple[str, ...]] = {}
        for sent in sents:
            merged[sent.text] = tuple(dict.fromkeys(merged.get(sent.text, ()) + sent.evidence))
        sections[name] = [Sentence(t, ids) for t, ids in merged.items()]
    removed = 0
    for name in list(sections):
        sections[name], n = _grounded(sections[name], checkable, answers)
        removed += n
    limitations, n = _grounded(_limitations(answers, results), checkable, answers)
    sections["Limitations"] = limitations
    removed += n
    questions = []
    for a in answers:
        kept, n = _grounded(_answer_sentences(a), checkable, answers) if not a.abstained else ([], 0)
        removed += n
        questions.append((a.question, kept if not a.abstained else [Sentence(
            "Osler abstained: no tool could answer this question.", ())]))
    models: dict[tuple[str, ...], list[str]] = {}
    for eid, r in results.items():
        p = provenance_of(r)
        if p is not None:
            key = (p.expert, p.backend, p.model, (p.weights_sha256 or "")[:16] or "none (no weights)", p.device)
            models.setdefault(key, []).append(eid)
    figures = []
    for eid, r in results.items():
        for ref in artifact_refs(r):
            if ref.kind in ("overlay", "saliency", "change_map") and ref.path:
                figures.append(Figure(len(figures) + 1, ref.path, eid,
                                      f"{ref.kind.replace('_', ' ')} of {eid} ({type(r).__name__.removesuffix('Result')})"))
    created = (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    return SessionReport(title="Osler session report", created=created, study=_study_lines(answers, deidentified),
                         sections=sections, questions=questions,
                         models=[[*k, ", ".join(v)] for k, v in models.items()], figures=figures, removed=removed,
                         deidentified=deidentified)


def _cite(s: Sentence) -> str:
    return f"{s.text} [{', '.join(s.evidence)}]" if s.evidence else s.text


def report_markdown(rep: SessionReport, link_dir: Path | None = None,
                    figure_src: Callable[[str], str] | None = None) -> str:
    """Markdown; figures link to their overlay PNG (by file name when ``link_dir`` is given: the files lie
    side by side).  ``figure_src(path)``: what a figure shows and links to instead (the web app: a data URI)."""
    def rel(path: str) -> str:
        if figure_src is not None:
            return figure_src(path)
        p = Path(path)
        return p.name if link_dir is not None else str(p)

    out = [f"# {rep.title}", "", f"> **{BANNER}.** {DISCLAIMER}", "", f"Created {rep.created}."]
    if rep.deidentified:
        out.append("Patient identifiers were removed (PS3.15 basic profile) from every file written with this report.")
    out += ["", "## Studies", ""] + [f"- {line}" for line in rep.study]
    out += ["", "## Questions and answers", ""]
    for q, sents in rep.questions:
        out += [f"**Q:** {q}", ""] + [f"- {_cite(s)}" for s in sents] + [""]
    for name, sents in rep.sections.items():
        out += [f"## {name}", ""]
        out += [f"- {_cite(s)}" for s in sents] if sents else ["- None reported by any tool."]
        out.append("")
    if rep.removed:
        out += [f"*Grounding check: {rep.removed} statement(s) no cited tool result backs were left out.*", ""]
    out += ["## Models and versions", "", "| expert | backend | model | weights sha256 | device | evidence |",
            "|---|---|---|---|---|---|"]
    out += ["| " + " | ".join(row) + " |" for row in rep.models]
    out += ["", "## Figures", ""]
    for f in rep.figures:
        out += [f"[![Figure {f.number}: {f.caption}]({rel(f.path)})]({rel(f.path)})", "",
                f"*Figure {f.number}: {f.caption}; full-size overlay: [{Path(f.path).name}]({rel(f.path)}) "
                f"[{f.evidence}]*", ""]
    if not rep.figures:
        out += ["No overlay was produced.", ""]
    out += ["## Review and signature", "", "Reviewed by: ____________________  Date: ____________",
            "", "Signature: ____________________  Findings accepted / amended (strike one)", ""]
    return "\n".join(out)
