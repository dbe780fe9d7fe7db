"""Scenario cases whose answer comes from the annotations of the development data: BCCD cell counts,
EndoTect polyp counts and presence, Kermany pneumonia labels, polyp and lung areas on the segmenters'
held-out images, and Hannover prior comparisons.  Each function returns the cases of one YAML file."""

from __future__ import annotations

import collections
import datetime as dt
from pathlib import Path

from .ground_truth import POLYP_MIN_PX, bccd_counts, hannover_pairs, kermany_picks, mask_components, polyp_counts, spread
from .schema import Expect, ExpectedAnswer, Images, Scenario, ToolExpectation

__all__ = ["bccd_cases", "polyp_cases", "cxr_cases", "segmentation_cases", "prior_cases", "MAX_LATENCY_S"]

MAX_LATENCY_S = 30.0
BASE_DATE = dt.date(2020, 3, 1)
HERE = Path(__file__).resolve().parent


def _d(path: str) -> str:
    return f"data:{path}"


def _count_case(cid: str, img: str, q: str, n: int, tol: float, subject: str, tags: list[str], source: str,
                target: str) -> Scenario:
    return Scenario(id=cid, images=Images(current=_d(img)), question=q, subject=subject, tags=tags, source=source,
                    expect=Expect(answer=ExpectedAnswer(kind="count", value=n, tolerance=tol),
                                  tools=[ToolExpectation(name="count", args={"target": target})],
                                  abstain=False, max_latency_s=MAX_LATENCY_S))


WBC_Q = ("How many white blood cells are in this smear?", "Count the WBCs in this image.",
         "How many leukocytes can you see?")
PLT_Q = ("How many platelets are in this smear?", "Count the platelets.")
RBC_Q = ("How many red blood cells are in this smear?", "Count the RBCs in this image.")


def bccd_cases(root: Path) -> list[Scenario]:
    counts = bccd_counts(root)
    stems = sorted(counts)
    out = []
    wbc = [s for s in stems if counts[s]["WBC"] != 1] + spread([s for s in stems if counts[s]["WBC"] == 1], 17)
    for i, s in enumerate(sorted(wbc)):
        n = counts[s]["WBC"]
        out.append(_count_case(f"bccd-wbc-{s[-5:]}", f"bccd/images/{s}.jpg", WBC_Q[i % 3], n, 0, "white blood cells",
                               ["bccd", "count", "wbc"], f"bccd/annotations/{s}.xml: {n} WBC", "blood_cells"))
    by_plt: dict[int, list[str]] = collections.defaultdict(list)
    for s in stems:
        by_plt[min(counts[s]["Platelets"], 3)].append(s)
    plt = spread(by_plt[0], 4) + spread(by_plt[1], 4) + spread(by_plt[2], 4) + spread(by_plt[3], 8)
    for i, s in enumerate(sorted(plt)):
        n = counts[s]["Platelets"]
        out.append(_count_case(f"bccd-plt-{s[-5:]}", f"bccd/images/{s}.jpg", PLT_Q[i % 2], n, 0, "platelets",
                               ["bccd", "count", "platelets"], f"bccd/annotations/{s}.xml: {n} platelets",
                               "blood_cells"))
    rbc = spread([s for s in stems if counts[s]["RBC"] >= 5], 15)
    for i, s in enumerate(rbc):
        n = counts[s]["RBC"]
        tol = float(max(3, round(0.25 * n)))
        out.append(_count_case(f"bccd-rbc-{s[-5:]}", f"bccd/images/{s}.jpg", RBC_Q[i % 2], n, tol, "red blood cells",
                               ["bccd", "count", "rbc"], f"bccd/annotations/{s}.xml: {n} RBC (boxes miss overlapping "
                                                         f"cells: tolerance ±{tol:g})", "blood_cells"))
    # a count compared with a number: answered by comparing, not by "found any" (a count of 1 once answered
    # "more than 3?" with "yes"); tagged apart from the count cases, so the probing twins stay as they were
    for i, s in enumerate(spread([s for s in stems if counts[s]["WBC"] >= 1], 4)):
        n = counts[s]["WBC"]
        q, yes = ((f"Are there more than {n} white blood cells in this smear?", "no") if i % 2 == 0 else
                  (f"Are there at least {n} white blood cells in this smear?", "yes"))
        out.append(Scenario(
            id=f"bccd-wbc-threshold-{s[-5:]}", images=Images(current=_d(f"bccd/images/{s}.jpg")), question=q,
            subject="white blood cells", tags=["bccd", "count_threshold"],
            source=f"bccd/annotations/{s}.xml: {n} WBC",
            expect=Expect(answer=ExpectedAnswer(kind="yes_no", value=yes), tools=[ToolExpectation(name="count")],
                          abstain=False, max_latency_s=MAX_LATENCY_S)))
    # two classes of one smear compared (once read as a comparison with a prior study), and a statement with a
    # question tag (once answered with a list of boxes and no yes/no); WBC and platelet labels are the reliable ones
    differ = [s for s in stems if counts[s]["WBC"] != counts[s]["Platelets"]]
    for i, s in enumerate(spread(differ, 4)):
        w, p = counts[s]["WBC"], counts[s]["Platelets"]
        q = "Are there more platelets than white blood cells in this smear?" if i % 2 == 0 else \
            "Are there fewer white cells than platelets here?"
        out.append(Scenario(
            id=f"bccd-class-compare-{s[-5:]}", images=Images(current=_d(f"bccd/images/{s}.jpg")), question=q,
            subject="platelets and white blood cells", tags=["bccd", "class_compare"],
            source=f"bccd/annotations/{s}.xml: {w} WBC, {p} platelets",
            expect=Expect(answer=ExpectedAnswer(kind="yes_no", value="yes" if p > w else "no"),
                          tools=[ToolExpectation(name="count")], abstain=False, max_latency_s=MAX_LATENCY_S)))
    for i, s in enumerate(spread([s for s in stems if counts[s]["WBC"] >= 1], 4)[::-1]):
        n = counts[s]["WBC"]
        said = n if i % 2 == 0 else n + 2
        out.append(Scenario(
            id=f"bccd-wbc-tag-{s[-5:]}", images=Images(current=_d(f"bccd/images/{s}.jpg")),
            question=f"There are {said} white blood cells in this smear, right?", subject="white blood cells",
            tags=["bccd", "count_threshold"], source=f"bccd/annotations/{s}.xml: {n} WBC",
            expect=Expect(answer=ExpectedAnswer(kind="yes_no", value="yes" if said == n else "no"),
                          tools=[ToolExpectation(name="count")], abstain=False, max_latency_s=MAX_LATENCY_S)))
    return out


def polyp_cases(root: Path) -> tuple[list[Scenario], list[str]]:
    counts = polyp_counts(root)
    pos = sorted(p for p, n in counts.items() if "/negatives/" not in p and n > 0)
    neg = sorted(p for p, n in counts.items() if "/negatives/" in p and n == 0)
    two = [p for p in pos if counts[p] >= 2]
    one = [p for p in pos if counts[p] == 1]
    counted = two + spread(one, 12)
    rest = [p for p in one if p not in counted]
    out = []
    for p in sorted(counted):
        n, stem = counts[p], Path(p).stem[:8]
        out.append(_count_case(f"polyp-count-{stem}", p, "How many polyps are in this frame?", n, 0, "polyps",
                               ["endotect", "count", "polyp"], f"{p.replace('images', 'masks')[:-4]}.png: {n} "
                               f"component(s) > {POLYP_MIN_PX} px", "polyp"))
    for p in spread(rest, 8):
        stem = Path(p).stem[:8]
        out.append(Scenario(
            id=f"polyp-present-{stem}", images=Images(current=_d(p)), question="Is there a polyp in this image?",
            subject="polyps", tags=["endotect", "presence", "polyp"], source=f"mask of {p}: {counts[p]} polyp(s)",
            expect=Expect(answer=ExpectedAnswer(kind="yes_no", value="yes"), tools=[ToolExpectation(name="count")],
                          abstain=False, max_latency_s=MAX_LATENCY_S)))
    for i, p in enumerate(neg):
        stem = Path(p).stem[:8]
        src = "ulcerative-colitis frame, all-zero mask"
        if i % 2 == 0:
            out.append(Scenario(
                id=f"polyp-negative-yn-{stem}", images=Images(current=_d(p)),
                question="Is there a polyp in this image?",
                tags=["endotect", "negative", "polyp"], source=src,
                expect=Expect(answer=ExpectedAnswer(kind="yes_no", value="no"), tools=[ToolExpectation(name="count")],
                              abstain=False, max_latency_s=MAX_LATENCY_S)))
        else:
            out.append(_count_case(f"polyp-negative-count-{stem}", p, "How many polyps are in this frame?", 0, 0,
                                   "polyps", ["endotect", "negative", "polyp"], src, "polyp"))
    return out, [_d(p) for p in neg]


CXR_Q = ("What is the diagnosis on this chest X-ray: normal, bacterial pneumonia or viral pneumonia?",
         "What does this chest X-ray show: normal lungs, bacterial pneumonia or viral pneumonia?")


def cxr_cases(root: Path, names: set[str] | None) -> list[Scenario]:
    out = []
    for i, (p, label) in enumerate(kermany_picks(root, 6, names)):
        stem = Path(p).stem.lower().replace("_", "-")
        tools = [ToolExpectation(name="classify", args={"task": "cxr_pneumonia"})]
        src = f"{p}: folder/file name -> {label}"
        if i % 3 == 2:
            yes = "no" if label == "normal" else "yes"
            out.append(Scenario(
                id=f"cxr-pneumonia-{stem}", images=Images(current=_d(p)),
                question="Does this chest X-ray show pneumonia?",
                tags=["kermany", "cxr", "classify"], source=src,
                expect=Expect(answer=ExpectedAnswer(kind="yes_no", value=yes), tools=tools, abstain=False,
                              max_latency_s=MAX_LATENCY_S)))
        else:
            out.append(Scenario(
                id=f"cxr-class-{stem}", images=Images(current=_d(p)), question=CXR_Q[i % 3],
                tags=["kermany", "cxr", "classify"], source=src,
                expect=Expect(answer=ExpectedAnswer(kind="label", value=label), tools=tools, abstain=False,
                              max_latency_s=MAX_LATENCY_S)))
    return out


SEG_CARDS = {"polyp": HERE.parent / "experts" / "weights" / "polyp_unet.md",
             "lung": HERE.parent / "experts" / "weights" / "lung_unet.md"}
SEG_Q = {"polyp": ("Segment the polyp and tell me its area.", "How big is the polyp?"),
         "lung": ("What is the area of the lungs?", "Outline the lungs and measure them.")}
SEG_TOL = {"polyp": 0.2, "lung": 0.15}  # relative to the ground-truth area


def segmentation_cases(root: Path) -> list[Scenario]:
    """Area of the polyp / lungs in pixels on the films listed as 'Validation files' in the segmenters' model cards
    (single-polyp frames only; held out for the polyp U-Net; the shipped lung U-Net v3 was trained on all 51 lung
    films, so the lung cases are a plumbing check and its unseen-patient estimate is the CV in its card): expected = ground-truth mask pixels (lung: value 255,
    the 127 'ignore' pixels left out), tolerance 20 % (polyp) / 15 % (lung) of it."""
    import cv2

    from .bench_segmentation import read_names

    out: list[Scenario] = []
    for target, sub, k in (("polyp", "endotect_polyps", 8), ("lung", "hannover_cxr/lung_seg", 5)):
        names = [n for n in read_names(SEG_CARDS[target]) if (root / sub / "images" / n).exists()]
        if target == "polyp":
            names = [n for n in names if mask_components(root / sub / "masks" / f"{Path(n).stem}.png") == 1]
        for i, name in enumerate(spread(names, k)):
            m = cv2.imread(str(root / sub / "masks" / f"{Path(name).stem}.png"), cv2.IMREAD_GRAYSCALE)
            area = int((m == 255).sum()) if target == "lung" else int((m > 127).sum())
            tag = "endotect" if target == "polyp" else "hannover"
            out.append(Scenario(
                id=f"seg-{target}-{Path(name).stem[:8]}", images=Images(current=_d(f"{sub}/images/{name}")),
                question=SEG_Q[target][i % 2], subject=target, tags=[tag, target, "segment"],
                source=f"{sub}/masks/{Path(name).stem}.png: {area} px; " + (
                    f"held out by {SEG_CARDS[target].name}" if target == "polyp" else
                    "a training film of lung_unet v3 (trained on all 51; unseen-patient estimate: the CV in lung_unet.md)"),
                expect=Expect(answer=ExpectedAnswer(kind="number", value=area, tolerance=round(SEG_TOL[target] * area)),
                              tools=[ToolExpectation(name="segment", args={"target": target}),
                                     ToolExpectation(name="measure")],
                              abstain=False, max_latency_s=MAX_LATENCY_S)))
    return out


def _pair_images(row: dict[str, str]) -> Images:
    day = lambda k: (BASE_DATE + dt.timedelta(days=int(row[k]))).isoformat()  # noqa: E731
    return Images(current=_d(f"hannover_cxr/png/{row['current_image']}.png"), current_date=day("current_day"),
                  prior=_d(f"hannover_cxr/png/{row['prior_image']}.png"), prior_date=day("prior_day"))


PRIOR_Q = ("What changed since the prior study?", "Compare this film with the previous one.",
           "Has anything changed since the last exam?")


def prior_cases(root: Path) -> list[Scenario]:
    rows = [r for r in hannover_pairs(root) if int(r["interval_days"]) > 0]
    rows.sort(key=lambda r: (r["patient_id"], int(r["current_day"])))
    out = []
    for i, r in enumerate(spread(rows, 14)):
        n = int(r["interval_days"])
        out.append(Scenario(
            id=f"prior-{r['patient_id']}-{r['current_image']}", images=_pair_images(r), question=PRIOR_Q[i % 3],
            tags=["hannover", "prior", "compare"],
            source=f"hannover longitudinal_pairs.csv dev row: {r['prior_image']} -> {r['current_image']}, {n} days",
            expect=Expect(tools=[ToolExpectation(name="compare_with_prior")], must_mention=[f"{n} day"], abstain=False,
                          max_latency_s=MAX_LATENCY_S)))
    return out
