"""Benchmark prior-study comparison: registration accuracy, change detection, real-pair success.

    python -m eval_scenarios.bench_comparison --data ../shared/data --out runs/bench_comparison.json

Sets (see :mod:`eval_scenarios.comparison_sets`):

* **known transform** (``--n-transform`` per kind: Hannover dev CXR, BCCD smears, EndoTect frames):
  corner error (mean distance of the prior's four corners mapped by the estimated vs the true
  matrix, current pixels), rotation error (degrees), scale error, success rate, time per pair.
* **known edit** (``--n-edit`` per label: polyp, WBC; edits cycle removed-from-prior -> ``new``,
  removed-from-current -> ``resolved``, ``grown`` / ``shrunk`` by area ``--factor``, ``control``):
  - *oracle findings*: the ground-truth masks of both studies go through the real registration,
    mapping, matching and measurement (:func:`experts.change.compare_findings`); this scores the
    comparison machinery alone.
  - *tool*: the whole ``compare_with_prior`` tool in a session with the experts this install has
    (a label whose expert is unavailable is reported as skipped, with the reason).
  A reported change (status other than ``unchanged``) is a true positive when its status is the
  expected one and its finding's centroid lies in the edited region (dilated 10 px); every other
  reported change is a false positive; an expected change not reported is a false negative.
  Size error: |reported - true area change| in percentage points, for true-positive grown/shrunk.
* **Hannover pairs** (``longitudinal_pairs.csv`` rows of ``--split``): registration success rate
  (not refused), NCC before/after, time per pair, by projection pair (AP/PA); and as many
  different-patient pairs (seeded), to show how far NCC separates "same patient" from "another
  patient" (AUC, and the fraction of different-patient pairs the threshold refuses).

Writes JSON (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "bench_transforms", "bench_edits_oracle", "bench_edits_tool", "bench_hannover", "score_changes"]

log = logging.getLogger(__name__)


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "mean": None, "median": None, "p90": None, "max": None}
    a = np.asarray(values, dtype=np.float64)
    return {"n": int(a.size), "mean": round(float(a.mean()), 3), "median": round(float(np.median(a)), 3),
            "p90": round(float(np.percentile(a, 90)), 3), "max": round(float(a.max()), 3)}


def bench_transforms(cases: list[Any]) -> dict[str, Any]:
    """Registration against known transforms, per kind and overall."""
    from experts.registration import corner_error, decompose, register

    rows = []
    for c in cases:
        t0 = time.perf_counter()
        out = register(c.prior, c.current)
        dt = time.perf_counter() - t0
        _, _, rot_true, scale_true = decompose(c.matrix)
        rows.append({"name": c.name, "kind": c.kind, "source": c.source, "success": out.success, "method": out.method,
                     "corner_err_px": corner_error(out.matrix, c.matrix, c.prior.shape),
                     "rot_err_deg": abs(out.rotation_deg - rot_true), "scale_err": abs(out.scale / scale_true - 1.0),
                     "true_rot_deg": rot_true, "true_scale": scale_true, "ncc_before": out.ncc_before,
                     "ncc_after": out.ncc_after, "seconds": dt})
    summary: dict[str, Any] = {}
    for kind in sorted({r["kind"] for r in rows}) + ["all"]:
        sel = [r for r in rows if kind in ("all", r["kind"])]
        err = [r["corner_err_px"] for r in sel]
        summary[kind] = {
            "n": len(sel), "success_rate": round(float(np.mean([r["success"] for r in sel])), 3),
            "corner_err_px": _stats(err), "within_2px": round(float(np.mean([e <= 2.0 for e in err])), 3),
            "rot_err_deg": _stats([r["rot_err_deg"] for r in sel]),
            "within_1deg": round(float(np.mean([r["rot_err_deg"] <= 1.0 for r in sel])), 3),
            "scale_err_pct": _stats([100 * r["scale_err"] for r in sel]),
            "seconds": _stats([r["seconds"] for r in sel]),
        }
    return {"summary": summary, "cases": rows}


def _reference_mask(case: Any) -> np.ndarray:
    """Where the edited finding is, in the current frame (dilated 10 px)."""
    import cv2

    from experts.registration import warp_mask

    shape = case.current.shape[:2]
    ref = np.zeros(shape, dtype=bool)
    if case.edited_current_mask is not None:
        ref |= case.edited_current_mask
    if case.edited_prior_mask is not None:
        ref |= warp_mask(case.edited_prior_mask, case.matrix, shape)
    return cv2.dilate(ref.astype(np.uint8), np.ones((21, 21), np.uint8)) > 0


def score_changes(case: Any, reported: list[tuple[str, str, tuple[float, float], float | None]]) -> dict[str, Any]:
    """TP / FP / FN of one case.  ``reported``: (label, status, centroid (x, y) in the current
    frame, area change %) of every finding whose status is not 'unchanged'."""
    ref = _reference_mask(case)
    h, w = ref.shape
    tp, fp, fp_same, size_err = 0, 0, 0, None
    hit_done = False
    for label, status, (x, y), pct in reported:
        inside = 0 <= int(y) < h and 0 <= int(x) < w and bool(ref[int(y), int(x)])
        if (not hit_done and case.expected_status is not None and status == case.expected_status and inside
                and label.lower() == case.label.lower()):
            tp += 1
            hit_done = True
            if status in ("grown", "shrunk") and pct is not None and case.true_area_change_pct is not None:
                size_err = abs(pct - case.true_area_change_pct)
        else:
            fp += 1
            fp_same += int(label.lower() == case.label.lower())
    fn = int(case.expected_status is not None and not hit_done)
    return {"tp": tp, "fp": fp, "fp_same_label": fp_same, "fn": fn, "size_err_pct": size_err}


def _summarise_edits(rows: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in sorted({r["label"] for r in rows}) + ["all"]:
        sel = [r for r in rows if key in ("all", r["label"]) and not r.get("skipped")]
        tp, fp, fn, fps = (sum(r.get(k, 0) for r in sel) for k in ("tp", "fp", "fn", "fp_same_label"))
        sizes = [r["size_err_pct"] for r in sel if r.get("size_err_pct") is not None]
        by_edit = {}
        for e in sorted({r["edit"] for r in sel}):
            s2 = [r for r in sel if r["edit"] == e]
            by_edit[e] = {"n": len(s2), "tp": sum(r["tp"] for r in s2), "fp": sum(r["fp"] for r in s2),
                          "fn": sum(r["fn"] for r in s2)}
        out[key] = {"n": len(sel), "tp": tp, "fp": fp, "fn": fn,
                    "precision": round(tp / (tp + fp), 3) if tp + fp else None,
                    "recall": round(tp / (tp + fn), 3) if tp + fn else None,
                    "precision_edited_label": round(tp / (tp + fps), 3) if tp + fps else None,
                    "size_err_pct": _stats(sizes), "by_edit": by_edit,
                    "skipped": sum(1 for r in rows if key in ("all", r["label"]) and r.get("skipped"))}
    return out


def bench_edits_oracle(cases: list[Any]) -> dict[str, Any]:
    """Ground-truth findings through the real registration + matching + measurement."""
    from experts.change import compare_findings, finding_from_mask
    from experts.registration import register, warp_image

    rows = []
    for c in cases:
        t0 = time.perf_counter()
        reg = register(c.prior, c.current)
        shape = c.current.shape[:2]
        prior = ([c.edited_prior_mask] if c.edited_prior_mask is not None else []) + c.other_prior_masks
        current = ([c.edited_current_mask] if c.edited_current_mask is not None else []) + c.other_current_masks
        f_p = [finding_from_mask(c.label, m) for m in prior if m.any()]
        f_c = [finding_from_mask(c.label, m) for m in current if m.any()]
        valid = warp_image(np.full(c.prior.shape[:2], 255, np.uint8), reg.matrix, shape, nearest=True) > 0
        records, _ = compare_findings(f_p, f_c, reg.matrix, shape, prior_valid=valid)
        reported = [(r.label, r.status, (r.current or r.prior).centroid, r.area_change_pct)
                    for r in records if r.status != "unchanged"]
        s = score_changes(c, reported)
        rows.append({"name": c.name, "label": c.label, "edit": c.edit, "expected": c.expected_status,
                     "true_pct": c.true_area_change_pct, "registered": reg.success,
                     "reported": [(lab, st, None if p is None else round(p, 1)) for lab, st, _, p in reported],
                     "seconds": time.perf_counter() - t0, **s})
    return {"summary": _summarise_edits(rows), "cases": rows}


def bench_edits_tool(cases: list[Any], settings: Any) -> dict[str, Any]:
    """The whole compare_with_prior tool, in a session, on every case."""
    from agent.boundary.compare import run_comparison
    from agent.boundary.toolset import invoke
    from agent.runner import Assistant
    from experts.overlay import save_png
    from tools.comparison import CompareRequest
    from tools.errors import OslerError

    assistant = Assistant(settings)
    rows: list[dict[str, Any]] = []
    unchanged_pct: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for c in cases:
            pp, cp = Path(tmp) / f"{c.name}-prior.png", Path(tmp) / f"{c.name}-current.png"
            save_png(str(pp), c.prior)
            save_png(str(cp), c.current)
            s = assistant.new_session()
            s.load("current", cp, study_date="2024-03-13")
            s.load("prior", pp, study_date="2024-03-01")
            t0 = time.perf_counter()
            try:
                r, records = run_comparison(s, CompareRequest(), s.new_evidence_id(), invoke)
            except OslerError as exc:
                rows.append({"name": c.name, "label": c.label, "edit": c.edit, "skipped": True,
                             "reason": str(exc).splitlines()[0][:300]})
                continue
            dt = time.perf_counter() - t0
            if r.status == "refused":
                rows.append({"name": c.name, "label": c.label, "edit": c.edit, "refused": r.reason, "seconds": dt,
                             **score_changes(c, [])})
                continue
            reported = []
            for rec in records:
                if rec.status == "unchanged":
                    unchanged_pct.setdefault(rec.label, []).append(abs(rec.area_change_pct or 0.0))
                    continue
                where = (rec.current or rec.prior).centroid
                reported.append((rec.label, rec.status, where, rec.area_change_pct))
            rows.append({"name": c.name, "label": c.label, "edit": c.edit, "expected": c.expected_status,
                         "true_pct": c.true_area_change_pct, "seconds": dt, "backend": r.provenance.note,
                         "reported": [(lab, st, p) for lab, st, _, p in reported],
                         "counts": [(x.label, x.prior, x.current) for x in r.count_changes],
                         **score_changes(c, reported)})
    summary = _summarise_edits(rows)
    summary["abs_area_change_pct_of_unchanged"] = {k: _stats(v) for k, v in unchanged_pct.items()}
    summary["seconds"] = _stats([r["seconds"] for r in rows if "seconds" in r])
    return {"summary": summary, "cases": rows}


def bench_hannover(data_root: Path, split: str = "dev", max_pairs: int | None = None, seed: int = 0) -> dict[str, Any]:
    """Registration success on real longitudinal pairs, and NCC on different-patient pairs."""
    import cv2

    from experts.registration import RegistrationParams, register

    from .comparison_sets import hannover_pairs

    rows = hannover_pairs(data_root, split)[: max_pairs or None]
    png = Path(data_root) / "hannover_cxr" / "png"
    cache: dict[str, np.ndarray] = {}

    def load(i: str) -> np.ndarray:
        if i not in cache:
            cache[i] = cv2.imread(str(png / f"{i}.png"), cv2.IMREAD_GRAYSCALE)
        return cache[i]

    params = RegistrationParams()
    same = []
    for r in rows:
        t0 = time.perf_counter()
        o = register(load(r["prior_image"]), load(r["current_image"]), params)
        same.append({"prior": r["prior_image"], "current": r["current_image"], "interval_days": int(r["interval_days"]),
                     "projections": f"{r['prior_projection']}-{r['current_projection']}", "success": o.success,
                     "reason": o.reason, "method": o.method, "ncc_before": o.ncc_before, "ncc_after": o.ncc_after,
                     "rotation_deg": o.rotation_deg, "scale": o.scale, "seconds": time.perf_counter() - t0})
    rng = np.random.default_rng(seed)
    diff = []
    while len(diff) < len(rows) and len(rows) > 1:
        a, b = rng.choice(len(rows), 2, replace=False)
        if rows[a]["patient_id"] == rows[b]["patient_id"]:
            continue
        o = register(load(rows[a]["current_image"]), load(rows[b]["current_image"]), params)
        diff.append({"ncc_after": o.ncc_after, "success": o.success})
    s_ncc = np.array([x["ncc_after"] for x in same])
    d_ncc = np.array([x["ncc_after"] for x in diff])
    auc = None
    if len(s_ncc) and len(d_ncc):
        auc = float((s_ncc[:, None] > d_ncc[None, :]).mean() + 0.5 * (s_ncc[:, None] == d_ncc[None, :]).mean())
    by_proj = {}
    for pj in sorted({x["projections"] for x in same}):
        sel = [x for x in same if x["projections"] == pj]
        by_proj[pj] = {"n": len(sel), "success_rate": round(float(np.mean([x["success"] for x in sel])), 3)}
    summary = {
        "split": split, "pairs": len(same), "success_rate": round(float(np.mean([x["success"] for x in same])), 3),
        "ncc_before": _stats([x["ncc_before"] for x in same]), "ncc_after": _stats([x["ncc_after"] for x in same]),
        "seconds": _stats([x["seconds"] for x in same]), "by_projection": by_proj,
        "different_patients": {"pairs": len(diff), "ncc_after": _stats(list(d_ncc)),
                               "refused_rate": (round(float(np.mean([not x["success"] for x in diff])), 3)
                                                if diff else None),
                               "auc_same_vs_different": None if auc is None else round(auc, 3)},
        "min_ncc_after": params.min_ncc_after,
    }
    return {"summary": summary, "pairs": same}


def _table(result: dict[str, Any]) -> str:
    lines = []
    t = result.get("known_transform", {}).get("summary", {})
    if t:
        lines.append("known transform      n  success  corner err px (median/p90/max)  <=2px  "
                     "rot err deg (median/max)  <=1deg  s/pair")
        for k, v in t.items():
            ce, re_, sec = v["corner_err_px"], v["rot_err_deg"], v["seconds"]
            lines.append(f"  {k:16s} {v['n']:3d}  {v['success_rate']:7.3f}  {ce['median']:6.2f} / {ce['p90']:6.2f} / "
                         f"{ce['max']:7.2f}        {v['within_2px']:5.2f}  {re_['median']:6.3f} / {re_['max']:6.3f}"
                         f"          {v['within_1deg']:5.2f}  {sec['median']:.2f}")
    for key in ("known_edit_oracle", "known_edit_tool"):
        e = result.get(key, {}).get("summary", {})
        if not e:
            continue
        lines.append(f"{key:20s}   n  TP  FP  FN  precision (edited label)  recall  size err pp (median/max)  skipped")
        for k, v in e.items():
            if not isinstance(v, dict) or "tp" not in v:
                continue
            se = v["size_err_pct"]
            med = "-" if se["median"] is None else f"{se['median']:.1f} / {se['max']:.1f}"
            pe = f"{v['precision']} ({v['precision_edited_label']})"
            lines.append(f"  {k:18s} {v['n']:3d} {v['tp']:3d} {v['fp']:3d} {v['fn']:3d}  {pe:24s}  "
                         f"{v['recall']!s:6s}  {med:24s}  {v['skipped']}")
    h = result.get("hannover", {}).get("summary")
    if h:
        dp = h["different_patients"]
        lines.append(f"hannover {h['split']}: {h['pairs']} pairs, success {h['success_rate']:.3f} "
                     f"(NCC >= {h['min_ncc_after']}), NCC median {h['ncc_before']['median']:.3f} -> "
                     f"{h['ncc_after']['median']:.3f}, {h['seconds']['median']:.2f} s/pair (median), by projection "
                     f"{ {k: v['success_rate'] for k, v in h['by_projection'].items()} }")
        lines.append(f"  different patients: {dp['pairs']} pairs, NCC median {dp['ncc_after']['median']}, refused "
                     f"{dp['refused_rate']}, AUC same-vs-different {dp['auc_same_vs_different']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_comparison", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="root of the shared data")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_comparison.json"))
    ap.add_argument("--n-transform", type=int, default=10, help="known-transform cases per image kind")
    ap.add_argument("--n-edit", type=int, default=10, help="known-edit cases per label (polyp, WBC)")
    ap.add_argument("--factor", type=float, default=1.5, help="area factor of grown / shrunk edits")
    ap.add_argument("--polyp-files", type=Path, default=None,
                    help="polyp frames to draw edits from: a list (one name a line) or a model card .md "
                         "(e.g. experts/weights/polyp_unet.md: its validation files, never trained on)")
    ap.add_argument("--split", default="dev")
    ap.add_argument("--max-pairs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip", nargs="*", default=[], choices=["transform", "oracle", "tool", "hannover"])
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2
    from tools.settings import OslerSettings

    from .comparison_sets import known_edit_cases, known_transform_cases

    result: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    t0 = time.perf_counter()
    if "transform" not in args.skip:
        result["known_transform"] = bench_transforms(known_transform_cases(args.data, args.n_transform, args.seed))
    files = None
    if args.polyp_files:  # a list, one name a line, or a model card: its lines that name a .jpg/.png
        lines = [ln.strip() for ln in args.polyp_files.read_text().splitlines()]
        if args.polyp_files.suffix == ".md":
            lines = [ln for ln in lines if ln.lower().endswith((".jpg", ".png")) and " " not in ln]
        files = [Path(f).stem for f in lines if f]
    if "oracle" not in args.skip or "tool" not in args.skip:
        edits = known_edit_cases(args.data, args.n_edit, args.seed, factor=args.factor, polyp_files=files)
        if "oracle" not in args.skip:
            result["known_edit_oracle"] = bench_edits_oracle(edits)
        if "tool" not in args.skip:
            with tempfile.TemporaryDirectory() as tmp:
                settings = OslerSettings(data_dir=Path(tmp), shared_data=args.data)
                result["known_edit_tool"] = bench_edits_tool(edits, settings)
    if "hannover" not in args.skip:
        result["hannover"] = bench_hannover(args.data, args.split, args.max_pairs, args.seed)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float))
    print(_table(result))
    print(f"wrote {args.out} ({result['wall_s']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
