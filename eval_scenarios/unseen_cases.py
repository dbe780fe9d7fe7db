"""The hand-written wordings of the unseen-wording sets (``python -m eval_scenarios.unseen_wordings`` builds
them into ``unseen/*.yaml`` with the ground truth of the public case each names as ``base``): ``CASES`` (the
first set), ``HELDOUT`` (the second) and ``FRESH`` (the third, written in session 7).  Data only."""

from __future__ import annotations

from typing import Any

__all__ = ["CASES", "FRESH", "HELDOUT"]

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

# A second set, written after the first set's results had shaped the model's plan checks (anchors, follow-up
# targets): held out from all of that, run once per planner.
HELDOUT: list[dict[str, Any]] = [
    dict(id="uh-wbc-leuko", base="bccd-wbc-00048", question="How many leukocytes do we have on this one?"),
    dict(id="uh-wbc-please", base="bccd-wbc-00070", question="WBC number, please."),
    dict(id="uh-plt-quantify", base="bccd-plt-00012", question="Quantify the platelets for me."),
    dict(id="uh-plt-thrombo-yn", base="bccd-plt-00257", question="Are there thrombocytes on this slide?",
         expect=dict(answer=_yn("no"), tools=_BLOOD)),
    dict(id="uh-rbc-estimate", base="bccd-rbc-00109", question="Estimate the erythrocyte count."),
    dict(id="uh-polyp-adenomas", base="polyp-count-0a64434b", question="How many adenomas does this frame show?"),
    dict(id="uh-polyp-countview", base="polyp-negative-count-0f8c43a2", question="Polyp count for this view?"),
    dict(id="uh-polyp-present", base="polyp-present-0c62e786", question="Is a polyp present here?"),
    dict(id="uh-polyp-growths", base="polyp-negative-yn-1aa6ae12", question="Do you spot any growths on the bowel wall?",
         expect=dict(answer=_yn("no"))),
    dict(id="uh-cxr-callnormal", base="cxr-class-normal2-im-0566-0001",
         question="Would you call this chest radiograph normal?", expect=dict(answer=_yn("yes"), tools=_CLS)),
    dict(id="uh-cxr-infection", base="cxr-pneumonia-person99-virus-183", question="Any sign of infection in these lungs?",
         expect=dict(answer=_yn("yes"), tools=_CLS)),
    dict(id="uh-cxr-neither", base="cxr-class-person8-bacteria-37", question="Bacterial, viral, or neither?",
         expect=dict(answer={"kind": "label", "value": "bacterial_pneumonia"}, tools=_CLS)),
    dict(id="uh-kind-sort", base="modality-chest_xray-00000001-000", question="What sort of study is this?"),
    dict(id="uh-kind-modality", base="modality-endoscopy-3a2bcf32-6bb1-4609-8", question="Tell me the modality."),
    dict(id="uh-seg-trace", base="seg-polyp-0ef6ab1d", question="Trace the polyp and report its area."),
    dict(id="uh-seg-lungpx", base="seg-lung-c601f50d", question="How large are the lungs in pixels?"),
    dict(id="uh-follow-plt-where", base="bccd-plt-00081", turns=[
        dict(question="How many platelets?", expect=dict(answer=_count(2), tools=_BLOOD)),
        dict(question="Where are they?", expect=dict(tools=[{"name": "detect"}], abstain=False))]),
    dict(id="uh-follow-polyp-size", base="polyp-present-1aba5353", turns=[
        dict(question="Is there a polyp?", expect=dict(answer=_yn("yes"))),
        dict(question="How big is it?", expect=dict(tools=[{"name": "segment"}, {"name": "measure"}], abstain=False))]),
    dict(id="uh-prior-interval", base="prior-530a29b3-a7abee59", question="Any interval change?",
         expect=dict(tools=[{"name": "compare_with_prior"}], abstain=False)),
    dict(id="uh-abstain-collapsed", base="modality-chest_xray-add529f3", question="Is there a collapsed lung?",
         expect=dict(abstain=True)),
    dict(id="uh-abstain-sex", base="modality-blood_smear-bloodimage-00217",
         question="Is this sample from a man or a woman?", expect=dict(abstain=True)),
    dict(id="uh-abstain-surgery", base="polyp-present-2d79d5bb", question="Should this be removed surgically?",
         expect=dict(abstain=True)),
]
# A third set, written by hand on 2026-12-02 (session 7) after that session's trust fixes to the parser but before
# its wording changes (count verbs, kind questions, ...) and before any planner ran on it; the first two sets had
# been read by then (their failures pointed at the parser's gaps), so they no longer measure unseen wording for the
# built-in planner: this one does. Its score before the wording changes was taken without reading its cases.
_SEG_AREA = [{"name": "segment"}, {"name": "measure"}]
FRESH: list[dict[str, Any]] = [
    dict(id="uf-wbc-could", base="bccd-wbc-00079", question="Could you count the white blood cells for me?"),
    dict(id="uf-wbc-numberof", base="bccd-wbc-00104", question="What number of WBCs are present in this image?"),
    dict(id="uf-wbc-total", base="bccd-wbc-00130", question="Total white cells in this field?"),
    dict(id="uf-wbc-cansee", base="bccd-wbc-00024", question="How many white cells can you see here?"),
    dict(id="uf-plt-need", base="bccd-plt-00083", question="I need a platelet count for this slide."),
    dict(id="uf-plt-fov", base="bccd-plt-00104", question="How many platelets are there in this field of view?"),
    dict(id="uf-plt-atleast", base="bccd-plt-00165", question="Is there at least one platelet?",
         expect=dict(answer=_yn("no"), tools=_BLOOD)),
    dict(id="uf-plt-thrombo", base="bccd-plt-00164", question="Count the thrombocytes, please."),
    dict(id="uf-rbc-approx", base="bccd-rbc-00176", question="Approximately how many red cells are there?"),
    dict(id="uf-rbc-terse", base="bccd-rbc-00202", question="RBC count?"),
    dict(id="uf-polyp-detect", base="polyp-count-0abee68d", question="How many polyps can you detect?"),
    dict(id="uf-polyp-numberof", base="polyp-count-0c449477", question="What's the number of polyps in this image?"),
    dict(id="uf-polyp-lesions", base="polyp-count-1aab2fe2", question="Count the lesions in this colonoscopy image."),
    dict(id="uf-polyp-neg-number", base="polyp-negative-count-0ecf5900", question="Any polyps? Give me a number."),
    dict(id="uf-polyp-neg-see", base="polyp-negative-yn-0f498083", question="Do you see a polyp here?"),
    dict(id="uf-polyp-anyinview", base="polyp-present-0e92b2a9", question="Is there any polyp in view?"),
    dict(id="uf-polyp-spot", base="polyp-present-1dfdb283", question="Can you spot a polyp?"),
    dict(id="uf-polyp-clearof", base="polyp-negative-yn-1bcd7f87", question="Is this frame clear of polyps?",
         expect=dict(answer=_yn("yes"), tools=[{"name": "count"}])),
    dict(id="uf-cxr-signs", base="cxr-pneumonia-person9-bacteria-41", question="Does this X-ray show signs of pneumonia?"),
    dict(id="uf-cxr-present", base="cxr-pneumonia-normal2-im-0572-0001", question="Is pneumonia present on this film?"),
    dict(id="uf-cxr-read", base="cxr-class-normal2-im-0567-0001", question="What is your read of this chest X-ray?",
         expect=dict(answer={"kind": "label", "value": "normal"}, tools=_CLS)),
    dict(id="uf-cxr-whattype", base="cxr-class-person96-virus-179", question="What type of pneumonia is this?",
         expect=dict(answer={"kind": "label", "value": "viral_pneumonia"}, tools=_CLS)),
    dict(id="uf-cxr-isbact", base="cxr-class-person9-bacteria-39", question="Is the pneumonia bacterial?",
         expect=dict(answer=_yn("yes"), tools=_CLS)),
    dict(id="uf-cxr-viralinf", base="cxr-class-person97-virus-181", question="Could this be a viral infection?",
         expect=dict(answer=_yn("yes"), tools=_CLS)),
    dict(id="uf-kind-upload", base="modality-blood_smear-bloodimage-00311", question="What type of image did I just upload?",
         expect=dict(answer={"kind": "label", "value": "blood_smear"}, tools=[{"name": "image_info"}])),
    dict(id="uf-kind-endo-yn", base="modality-endoscopy-1b6c1916-0415-4a4d-a", question="Is this an endoscopy image?",
         expect=dict(answer=_yn("yes"), tools=[{"name": "image_info"}])),
    dict(id="uf-kind-identify", base="modality-chest_xray-normal2-im-1349-0001", question="Identify the imaging modality.",
         expect=dict(answer={"kind": "label", "value": "chest_xray"}, tools=[{"name": "image_info"}])),
    dict(id="uf-seg-outline", base="seg-polyp-00c7089c", question="Could you outline the polyp and give its area?"),
    dict(id="uf-seg-whatsize", base="seg-polyp-0a508419", question="What size is the polyp, in pixels?"),
    dict(id="uf-seg-bothlungs", base="seg-lung-262a70ca", question="Please segment both lungs and measure them."),
    dict(id="uf-seg-lungarea", base="seg-lung-a2eba651", question="What is the area of the lung fields?"),
    dict(id="uf-two-count-outline", base="polyp-count-1d05d79d", question="Count the polyps and outline each one.",
         expect=dict(answer=_count(1), tools=[*_POLYP, {"name": "segment"}])),
    dict(id="uf-follow-polyp-largest", base="polyp-count-0c449477", turns=[
        dict(question="Are there any polyps?", expect=dict(answer=_yn("yes"))),
        dict(question="How large is the largest one?", expect=dict(tools=_SEG_AREA, abstain=False))]),
    dict(id="uf-follow-wbc-where", base="bccd-wbc-00104", turns=[
        dict(question="How many white cells are there?", expect=dict(answer=_count(1), tools=_BLOOD)),
        dict(question="Where is it?", expect=dict(tools=[{"name": "detect"}], abstain=False))]),
    dict(id="uf-follow-cxr-kind", base="cxr-class-person9-bacteria-39", turns=[
        dict(question="Is there pneumonia?", expect=dict(answer=_yn("yes"), tools=_CLS)),
        dict(question="What kind?", expect=dict(answer={"kind": "label", "value": "bacterial_pneumonia"}, tools=_CLS))]),
    dict(id="uf-prior-oldfilm", base="prior-042f06a9-c9280a30",
         question="Has anything changed compared with the old film?",
         expect=dict(tools=[{"name": "compare_with_prior"}], abstain=False)),
    dict(id="uf-prior-progressed", base="prior-327d82ca-add529f3",
         question="How have things progressed since the last X-ray?",
         expect=dict(tools=[{"name": "compare_with_prior"}], abstain=False)),
    dict(id="uf-abstain-age", base="modality-chest_xray-person994-bacteria-2", question="How old is this child?",
         expect=dict(abstain=True)),
    dict(id="uf-abstain-tb", base="modality-chest_xray-00000109-002", question="Is there evidence of tuberculosis?",
         expect=dict(abstain=True)),
    dict(id="uf-abstain-stage", base="polyp-present-3c89a617", question="What stage is this cancer?",
         expect=dict(abstain=True)),
    dict(id="uf-abstain-diff", base="modality-blood_smear-bloodimage-00000",
         question="Give me a differential white cell count.", expect=dict(abstain=True)),
    dict(id="uf-abstain-hb", base="bccd-wbc-00024", question="Is the hemoglobin low?", expect=dict(abstain=True)),
]
