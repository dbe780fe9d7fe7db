"""Make the public scenario suite (``eval_scenarios/public/*.yaml``) and its fast CI subset
(``eval_scenarios/ci/*.yaml``) from the annotations of the real development data.

    .venv/bin/python -m eval_scenarios.generate [--data-root ../shared/data] [--out eval_scenarios/public]
        [--ci-out eval_scenarios/ci] [--kermany-files FILE]

Ground truth: BCCD Pascal VOC boxes (WBC / platelet / RBC counts), EndoTect masks (polyps =
8-connected components of more than 50 px; ulcerative-colitis frames are negatives), Hannover
``longitudinal_pairs.csv`` dev rows (interval in days), Kermany folder + file name (normal /
bacterial / viral).  Selection is deterministic (sorted names, even strides): running it again
writes the same files.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
from pathlib import Path

import yaml

from .ground_truth import (POLYP_MIN_PX, bccd_counts, hannover_pairs, kermany_picks, mask_components,
                           polyp_counts, spread, voc_counts)
from .probing import derive_twin
from .schema import Expect, ExpectedAnswer, Images, Scenario, ToolExpectation, Turn

__all__ = ["voc_counts", "bccd_counts", "mask_components", "polyp_counts", "hannover_pairs", "kermany_picks",
           "build_suite", "ci_subset", "write_suite", "main"]

MAX_LATENCY_S = 30.0
BASE_DATE = dt.date(2020, 3, 1)
HERE = Path(__file__).resolve().parent


# ---- cases ---------------------------------------------------------------------------------------
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
    """Area of the polyp / lungs in pixels on the segmenters' held-out images (the 'Validation files' of
    their model cards; single-polyp frames only): expected = ground-truth mask pixels (lung: value 255,
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
                source=f"{sub}/masks/{Path(name).stem}.png: {area} px; held out by {SEG_CARDS[target].name}",
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


KIND_Q = ("What kind of image is this?", "What type of scan is this?", "Which modality is this image?")


def modality_cases(root: Path) -> list[Scenario]:
    picks: list[tuple[str, str]] = []
    picks += [(f"bccd/images/{s}.jpg", "blood_smear") for s in spread(sorted(bccd_counts(root)), 4)]
    picks += [(p, "endoscopy") for p in spread(sorted(polyp_counts(root)), 4)]
    cxr_png = sorted((root / "hannover_cxr" / "png").glob("*.png"))
    picks += [(f"hannover_cxr/png/{p.name}", "chest_xray") for p in spread(cxr_png, 3)]
    picks += [(p, "chest_xray") for p, _ in spread(kermany_picks(root, 20), 2)]
    picks += [(f"nih_cxr14_64/images/{p.name}", "chest_xray")
              for p in spread(sorted((root / "nih_cxr14_64" / "images").glob("*.png")), 2)]
    return [Scenario(id=f"modality-{kind}-{Path(p).stem[:20].lower().replace('_', '-')}", images=Images(current=_d(p)),
                     question=KIND_Q[i % 3], tags=["modality"], source=f"{p.split('/')[0]} is {kind}",
                     expect=Expect(answer=ExpectedAnswer(kind="label", value=kind),
                                   tools=[ToolExpectation(name="image_info")], abstain=False,
                                   max_latency_s=MAX_LATENCY_S))
            for i, (p, kind) in enumerate(picks)]


def abstain_cases(root: Path) -> list[Scenario]:
    smear = f"bccd/images/{sorted(bccd_counts(root))[7]}.jpg"
    smear2 = f"bccd/images/{sorted(bccd_counts(root))[150]}.jpg"
    pos = [p for p, n in polyp_counts(root).items() if n > 0]
    endo, endo2 = pos[3], pos[60]
    cxr = f"hannover_cxr/png/{hannover_pairs(root)[5]['current_image']}.png"
    kcxr = kermany_picks(root, 30)[0][0]
    unanswerable = [
        ("fracture", cxr, "Is there a rib fracture on this chest X-ray?"),
        ("age", kcxr, "How old is the patient?"),
        ("name", cxr, "What is the patient's name?"),
        ("malaria", smear, "Does this smear show malaria parasites?"),
        ("leukemia", smear2, "Does this patient have leukemia?"),
        ("tumour", endo, "Is this a malignant tumour?"),
        ("bleeding", endo2, "Is there active bleeding in this frame?"),
        ("effusion", kcxr, "Is there a pleural effusion?"),
        ("treatment", cxr, "What medication should this patient be given?"),
        ("cardiomegaly", cxr, "Is there cardiomegaly?"),
    ]
    out = [Scenario(id=f"unanswerable-{k}", images=Images(current=_d(p)), question=q, tags=["abstain", "unanswerable"],
                    source="no Osler tool covers this question",
                    expect=Expect(abstain=True, max_latency_s=MAX_LATENCY_S))
           for k, p, q in unanswerable]
    wrong = [
        ("pneumonia-smear", smear, "Does this smear show pneumonia?", ["classify"]),
        ("pneumonia-endoscopy", endo, "Is there pneumonia in this image?", ["classify"]),
        ("normal-smear", smear2, "Is this a normal chest X-ray?", ["classify"]),
        ("polyps-cxr", cxr, "How many polyps are in this image?", ["count", "detect"]),
        ("polyp-smear", smear, "Is there a polyp?", ["count", "detect"]),
        ("wbc-endoscopy", endo, "How many white blood cells are in this image?", ["count", "detect"]),
        ("platelets-cxr", kcxr, "Count the platelets.", ["count", "detect"]),
        ("rbc-endoscopy", endo2, "Count the red blood cells.", ["count", "detect"]),
        ("lungs-smear", smear2, "Segment the lungs.", ["segment"]),
        ("lungs-endoscopy", endo2, "Outline the lung fields.", ["segment"]),
    ]
    out += [Scenario(id=f"wrong-modality-{k}", images=Images(current=_d(p)), question=q,
                     tags=["abstain", "wrong_modality"], source=f"{p.split('/')[0]} image: the tool does not apply",
                     expect=Expect(abstain=True, forbidden_tools=f, max_latency_s=MAX_LATENCY_S))
            for k, p, q, f in wrong]
    return out


def multiturn_cases(root: Path) -> list[Scenario]:
    counts = bccd_counts(root)
    stems = sorted(counts)
    pos = sorted(p for p, n in polyp_counts(root).items() if n == 1)
    pairs = [r for r in hannover_pairs(root) if int(r["interval_days"]) > 0]
    out = []
    for s in spread([s for s in stems if counts[s]["WBC"] >= 1], 3):
        n = counts[s]["WBC"]
        out.append(Scenario(
            id=f"multi-wbc-size-{s[-5:]}", images=Images(current=_d(f"bccd/images/{s}.jpg")), memory="per_case",
            tags=["multiturn", "bccd"], source=f"bccd/annotations/{s}.xml: {n} WBC",
            turns=[Turn(question="How many white blood cells are in this smear?",
                        expect=Expect(answer=ExpectedAnswer(kind="count", value=n),
                                      tools=[ToolExpectation(name="count")],
                                      max_latency_s=MAX_LATENCY_S)),
                   Turn(question="How big is the largest one?",
                        expect=Expect(tools=[ToolExpectation(name="segment"), ToolExpectation(name="measure")],
                                      must_mention=["px"], abstain=False, max_latency_s=MAX_LATENCY_S))]))
    for p in spread(pos, 3):
        out.append(Scenario(
            id=f"multi-polyp-size-{Path(p).stem[:8]}", images=Images(current=_d(p)), memory="per_case",
            tags=["multiturn", "endotect"], source=f"mask of {p}: 1 polyp",
            turns=[Turn(question="Is there a polyp in this image?",
                        expect=Expect(answer=ExpectedAnswer(kind="yes_no", value="yes"), max_latency_s=MAX_LATENCY_S)),
                   Turn(question="How large is it?",
                        expect=Expect(tools=[ToolExpectation(name="segment"), ToolExpectation(name="measure")],
                                      abstain=False, max_latency_s=MAX_LATENCY_S))]))
    s = stems[40]
    out.append(Scenario(
        id=f"multi-fresh-{s[-5:]}", images=Images(current=_d(f"bccd/images/{s}.jpg")), memory="per_question",
        tags=["multiturn", "bccd"], source=f"bccd/annotations/{s}.xml: {counts[s]['Platelets']} platelets",
        turns=[Turn(question="How many platelets are in this smear?",
                    expect=Expect(answer=ExpectedAnswer(kind="count", value=counts[s]["Platelets"]))),
               Turn(question="What kind of image is this?",
                    expect=Expect(answer=ExpectedAnswer(kind="label", value="blood_smear")))]))
    r = pairs[len(pairs) // 2]
    out.append(Scenario(
        id=f"multi-prior-{r['current_image']}", images=_pair_images(r), memory="per_case",
        tags=["multiturn", "hannover", "prior"], source=f"longitudinal_pairs.csv: {r['interval_days']} days",
        turns=[Turn(question="What kind of image is this?",
                    expect=Expect(answer=ExpectedAnswer(kind="label", value="chest_xray"))),
               Turn(question="What changed since the prior?",
                    expect=Expect(tools=[ToolExpectation(name="compare_with_prior")],
                                  must_mention=[f"{r['interval_days']} day"]))]))
    return out


def build_suite(root: Path, kermany_names: set[str] | None = None) -> dict[str, list[Scenario]]:
    """File name -> cases of the public suite."""
    polyps, negatives = polyp_cases(root)
    suite = {
        "bccd_counts.yaml": bccd_cases(root),
        "polyps.yaml": polyps,
        "cxr_classify.yaml": cxr_cases(root, kermany_names),
        "priors.yaml": prior_cases(root),
        "modality.yaml": modality_cases(root),
        "abstain.yaml": abstain_cases(root),
        "multiturn.yaml": multiturn_cases(root),
        "segmentation.yaml": segmentation_cases(root),
    }
    probe_from = (
        spread([c for c in suite["bccd_counts.yaml"] if "wbc" in c.tags], 12)
        + spread([c for c in suite["bccd_counts.yaml"] if "platelets" in c.tags], 8)
        + spread([c for c in polyps if "count" in c.tags and "negative" not in c.tags], 8)
        + [c for c in polyps if "presence" in c.tags]
        + spread(suite["cxr_classify.yaml"], 9)
    )
    # negatives are endoscopy frames: only polyp presence cases may be mirrored onto them
    twins = (derive_twin(c, negatives if "presence" in c.tags and "polyp" in c.tags else ()) for c in probe_from)
    suite["probing.yaml"] = [t for t in twins if t is not None]
    return suite


CI_IDS_PREFIXES = ("bccd-wbc-", "bccd-plt-", "modality-blood_smear", "modality-endoscopy", "modality-chest_xray",
                   "unanswerable-malaria", "wrong-modality-pneumonia-smear", "wrong-modality-polyps-cxr",
                   "multi-wbc-size-")


def ci_subset(suite: dict[str, list[Scenario]]) -> list[Scenario]:
    """About ten fast cases that need only the always-available experts (blood-cell detector, gate)."""
    all_cases = [c for cases in suite.values() for c in cases]
    out = []
    for prefix in CI_IDS_PREFIXES:
        hit = next((c for c in all_cases if c.id.startswith(prefix)), None)
        if hit is not None:
            out.append(hit)
    twin = next((c for c in suite["probing.yaml"] if c.pair_of == out[0].id), None)
    return out + ([twin] if twin else [])


HEADER = ("# Generated by `python -m eval_scenarios.generate` from the annotations of ../shared/data; do not edit by "
          "hand.\n# Schema: eval_scenarios/scenario.schema.json\n")


def _dump(cases: list[Scenario]) -> str:
    data = [c.model_dump(mode="json", exclude_none=True, exclude_defaults=True) for c in cases]
    return HEADER + yaml.safe_dump(data, sort_keys=False, width=120, allow_unicode=True)


def write_suite(suite: dict[str, list[Scenario]], out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, cases in suite.items():
        path = out / name
        path.write_text(_dump(cases), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval_scenarios.generate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=HERE / "public")
    ap.add_argument("--ci-out", type=Path, default=HERE / "ci")
    ap.add_argument("--kermany-files", type=Path,
                    help="text file of Kermany file names held out from classifier training (one a line)")
    args = ap.parse_args(argv)
    names = set(args.kermany_files.read_text().split()) if args.kermany_files else None
    suite = build_suite(args.data_root, names)
    files = write_suite(suite, args.out)
    ci = write_suite({"ci.yaml": ci_subset(suite)}, args.ci_out)
    total = sum(len(c) for c in suite.values())
    for f in files + ci:
        print(f"wrote {f}")
    print(f"{total} public cases, {len(ci_subset(suite))} CI cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
