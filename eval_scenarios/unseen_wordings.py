"""Forty questions in wordings the built-in parser was never written for, on the public suite's images.

    .venv/bin/python -m eval_scenarios.unseen_wordings     # writes eval_scenarios/unseen/wordings.yaml

Written by hand on 2026-12-02, before the hybrid LLM planner existed and without running any planner
on them first: paraphrases, indirect questions, two-step requests, follow-ups that refer to the
previous answer, and out-of-scope questions in words the parser's refusal list does not hold.  Every
case reuses an image of the public suite and its ground truth (the public case named by ``base``:
BCCD boxes, EndoTect masks, Kermany folders, Hannover pairs); follow-ups on another class of the
same smear read its BCCD annotation.  Do not tune the built-in parser on these: they measure how a
planner copes with wording it has not seen (issue 20).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from .schema import Scenario

__all__ = ["CASES", "build", "main"]

HERE = Path(__file__).resolve().parent
PUBLIC = HERE / "public"
OUT = HERE / "unseen" / "wordings.yaml"

_BLOOD = [{"name": "count", "args": {"target": "blood_cells"}}]
_POLYP = [{"name": "count", "args": {"target": "polyp"}}]
_CLS = [{"name": "classify", "args": {"task": "cxr_pneumonia"}}]


def _count(v: int, tol: float = 0.0) -> dict[str, Any]:
    return {"kind": "count", "value": v, **({"tolerance": tol} if tol else {})}


def _yn(v: str) -> dict[str, Any]:
    return {"kind": "yes_no", "value": v}


# (id, base public case, question or turns, expect (for single questions))
CASES: list[dict[str, Any]] = [
    # -- paraphrases of counting and presence
    dict(id="uw-wbc-tally", base="bccd-wbc-00010", question="Give me a leukocyte tally for this slide.",
         expect=dict(answer=_count(2), tools=_BLOOD)),
    dict(id="uw-wbc-whitecount", base="bccd-wbc-00034", question="What's the white count on this field?",
         expect=dict(answer=_count(2), tools=_BLOOD)),
    dict(id="uw-wbc-any", base="bccd-wbc-00133", question="Do you see any leucocytes at all on this film?",
         expect=dict(answer=_yn("no"), tools=_BLOOD)),
    dict(id="uw-plt-thrombo", base="bccd-plt-00005", question="Tell me the number of thrombocytes visible.",
         expect=dict(answer=_count(3), tools=_BLOOD)),
    dict(id="uw-plt-terse", base="bccd-plt-00022", question="Platelets: how many?",
         expect=dict(answer=_count(3), tools=_BLOOD)),
    dict(id="uw-plt-any", base="bccd-plt-00000", question="Are any platelets visible on this smear?",
         expect=dict(answer=_yn("no"), tools=_BLOOD)),
    dict(id="uw-rbc-roughly", base="bccd-rbc-00048", question="Roughly how many erythrocytes are on this field?",
         expect=dict(answer=_count(15, 4.0), tools=_BLOOD)),
    dict(id="uw-polyp-polypoid", base="polyp-count-04c3a34e",
         question="How many polypoid lesions can you spot in this colonoscopy frame?",
         expect=dict(answer=_count(2), tools=_POLYP)),
    dict(id="uw-polyp-scope", base="polyp-count-1a5380d4", question="Tell me how many polyps the scope is showing.",
         expect=dict(answer=_count(2), tools=_POLYP)),
    dict(id="uw-polyp-free", base="polyp-negative-count-0da47e4e", question="Is the mucosa here free of polyps?",
         expect=dict(answer=_yn("yes"), tools=[{"name": "count"}])),
    dict(id="uw-polyp-inview", base="polyp-present-0a3f577c", question="Anything polypoid in view?",
         expect=dict(answer=_yn("yes"), tools=[{"name": "count"}])),
    dict(id="uw-polyp-anywhere", base="polyp-negative-yn-0dbc215d", question="Can you find a polyp anywhere in this frame?",
         expect=dict(answer=_yn("no"))),
    # -- classification, asked indirectly
    dict(id="uw-cxr-process", base="cxr-class-person7-bacteria-29",
         question="Looking at this film, would you call it a bacterial or a viral process, or is it clear?",
         expect=dict(answer={"kind": "label", "value": "bacterial_pneumonia"}, tools=_CLS)),
    dict(id="uw-cxr-healthy", base="cxr-class-normal2-im-0569-0001",
         question="Does this child's chest film look healthy to you?", expect=dict(answer=_yn("yes"), tools=_CLS)),
    dict(id="uw-cxr-worried", base="cxr-pneumonia-person9-bacteria-38",
         question="I'm worried about a chest infection. What does the X-ray say?",
         expect=dict(tools=_CLS, must_mention=["pneumonia"], abstain=False)),
    dict(id="uw-cxr-viral", base="cxr-class-person96-virus-178", question="Is this more likely a viral picture?",
         expect=dict(answer=_yn("yes"), tools=_CLS)),
    dict(id="uw-cxr-evidence", base="cxr-class-normal2-im-0571-0001",
         question="Any evidence of pneumonia on this radiograph?", expect=dict(answer=_yn("no"), tools=_CLS)),
    dict(id="uw-cxr-category", base="cxr-class-person98-virus-182",
         question="Which category fits this film best: normal, bacterial or viral?",
         expect=dict(answer={"kind": "label", "value": "viral_pneumonia"}, tools=_CLS)),
    # -- image kind
    dict(id="uw-kind-lookingat", base="modality-endoscopy-0c62e786-7989-4d8b-a", question="What am I looking at here?",
         expect=dict(answer={"kind": "label", "value": "endoscopy"}, tools=[{"name": "image_info"}])),
    dict(id="uw-kind-technique", base="modality-chest_xray-59cb1744",
         question="Which imaging technique produced this picture?",
         expect=dict(answer={"kind": "label", "value": "chest_xray"}, tools=[{"name": "image_info"}])),
    dict(id="uw-kind-bloodfilm", base="modality-blood_smear-bloodimage-00108",
         question="Is this a blood film or something else?",
         expect=dict(tools=[{"name": "image_info"}], must_mention=["smear"], abstain=False)),
    # -- outline and size
    dict(id="uw-seg-surface", base="seg-polyp-0b784b2a", question="What's the surface area of that polyp in pixels?"),
    dict(id="uw-seg-drawaround", base="seg-polyp-3c7f79f1",
         question="Draw around the lesion and tell me how large it is."),
    dict(id="uw-seg-lungcover", base="seg-lung-887db78f", question="How much area do the lung fields cover?"),
    dict(id="uw-seg-delineate", base="seg-polyp-1ef34889", question="Please delineate the polyp for me.",
         expect=dict(tools=[{"name": "segment", "args": {"target": "polyp"}}], abstain=False)),
    # -- two-step requests
    dict(id="uw-two-kind-wbc", base="bccd-wbc-00043",
         question="First confirm what kind of slide this is, then give me the white cell count.",
         expect=dict(answer=_count(2), tools=[{"name": "image_info"}, *_BLOOD])),
    dict(id="uw-two-check-plt", base="bccd-plt-00044", question="Check this is a smear before counting platelets.",
         expect=dict(answer=_count(5), tools=[{"name": "image_info"}, *_BLOOD])),
    dict(id="uw-two-find-measure", base="polyp-count-0ab286ad",
         question="Find the polyps and then measure the biggest one.",
         expect=dict(tools=[{"name": "segment"}, {"name": "measure"}], abstain=False)),
    dict(id="uw-two-locate-outline-area", base="seg-polyp-0dcfc0b4",
         question="Locate the polyp, outline it, and give me its area."),
    dict(id="uw-two-kind-pneumonia", base="cxr-class-person9-bacteria-40",
         question="Tell me what modality this is and whether there's pneumonia.",
         expect=dict(tools=[{"name": "image_info"}, *_CLS], must_mention=["pneumonia"], abstain=False)),
    dict(id="uw-two-lungs-vs-prior", base="prior-177330aa-80b5f00f",
         question="Look at the lungs on today's film and tell me how they compare with the earlier one.",
         expect=dict(tools=[{"name": "compare_with_prior"}], abstain=False)),
    # -- follow-ups that refer to the previous answer
    dict(id="uw-follow-wbc-plt", base="bccd-wbc-00044", turns=[
        dict(question="How many white cells?", expect=dict(answer=_count(2), tools=_BLOOD)),
        dict(question="And platelets?", expect=dict(answer=_count(5), tools=_BLOOD))]),
    dict(id="uw-follow-polyp-outline", base="polyp-count-2b9a40af", turns=[
        dict(question="How many polyps are there?", expect=dict(answer=_count(2), tools=_POLYP)),
        dict(question="Outline the bigger one for me.",
             expect=dict(tools=[{"name": "segment", "args": {"target": "polyp"}}], abstain=False))]),
    dict(id="uw-follow-kind-infected", base="cxr-class-person97-virus-181", turns=[
        dict(question="What kind of image is this?",
             expect=dict(answer={"kind": "label", "value": "chest_xray"}, tools=[{"name": "image_info"}])),
        dict(question="Does it look infected?", expect=dict(answer=_yn("yes"), tools=_CLS))]),
    dict(id="uw-follow-rbc-white", base="bccd-rbc-00082", turns=[
        dict(question="Count the red cells.", expect=dict(answer=_count(10, 3.0), tools=_BLOOD)),
        dict(question="What about the white ones?", expect=dict(answer=_count(1), tools=_BLOOD))]),
    dict(id="uw-follow-lungs-changed", base="prior-48bbd9e5-483f2ad8", turns=[
        dict(question="Segment the lungs.", expect=dict(tools=[{"name": "segment", "args": {"target": "lung"}}])),
        dict(question="Has that changed since the previous study?",
             expect=dict(tools=[{"name": "compare_with_prior"}], abstain=False))]),
    dict(id="uw-follow-plt-where", base="bccd-plt-00156", turns=[
        dict(question="How many platelets do you count?", expect=dict(answer=_count(6), tools=_BLOOD)),
        dict(question="Show me where they are.", expect=dict(tools=[{"name": "detect"}], abstain=False))]),
    # -- out of scope, in words the refusal list does not hold
    dict(id="uw-abstain-brokenribs", base="modality-chest_xray-006f3a8a", question="Can you see any broken ribs?",
         expect=dict(abstain=True)),
    dict(id="uw-abstain-heart", base="modality-chest_xray-59cb1744", question="Is the heart enlarged on this film?",
         expect=dict(abstain=True)),
    dict(id="uw-abstain-antibiotic", base="cxr-class-person9-bacteria-39",
         question="Which antibiotic would you start for this?", expect=dict(abstain=True)),
]


def _public_cases() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for f in sorted(PUBLIC.glob("*.yaml")):
        for case in yaml.safe_load(f.read_text()) or []:
            out[case["id"]] = case
    return out


def _base_expect(base: dict[str, Any]) -> dict[str, Any]:
    """The public case's expectation (answer with its tolerance, tools), for wordings that ask the same."""
    e = dict(base.get("expect") or {})
    return {k: e[k] for k in ("answer", "tools", "abstain") if k in e}


def build() -> list[dict[str, Any]]:
    public = _public_cases()
    out = []
    for spec in CASES:
        base = public[spec["base"]]
        case: dict[str, Any] = {"id": spec["id"], "images": base["images"]}
        if "turns" in spec:
            case["turns"] = [{"question": t["question"], "expect": t["expect"]} for t in spec["turns"]]
        else:
            case["question"] = spec["question"]
            case["expect"] = spec.get("expect") or _base_expect(base)
        case["tags"] = ["unseen-wording"]
        case["source"] = f"{base.get('source', '')} (public case {spec['base']})".strip()
        Scenario.model_validate(case)
        out.append(case)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    cases = build()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Generated by `python -m eval_scenarios.unseen_wordings` (hand-written wordings, ground truth of the\n"
              "# public cases they name); do not edit by hand.  Schema: eval_scenarios/scenario.schema.json\n")
    args.out.write_text(header + yaml.safe_dump(cases, sort_keys=False, allow_unicode=True))
    print(f"{len(cases)} cases -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
