"""``osler bench counts-cv [--folds 5] [--no-yolo] [--json]``: honest, cross-validated blood-cell counting.

Every threshold is tuned on the training folds only and scored on the held-out fold; numbers are
reported per fold with mean and sample sd.  Data: the 292 BCCD dev smears (``bccd/split.txt``) and
their VOC boxes (WBC counts 0-2 per smear, 279 of 292 hold exactly one; platelets 0-6).

* **Folds**, two schemes: ``image`` (smears shuffled with seed 0, k folds) and ``batch`` (smears
  sorted by their ``BloodImage_NNNNN`` index and cut into k contiguous blocks: the stain hue drifts
  with the index, so a block is the closest thing to an acquisition batch the names allow).
* **Classical counter** (``experts/blood_opencv.py``, no training): its WBC parameters
  (closing disc, nucleus area, saturation, lobe merge gap, border rule) maximise WBC exact-count rate on the
  training folds, its platelet parameters minimise platelet MAE; a grid of 324 + 60 settings.
* **YOLO** (``bccd_yolo.pt``, as the registry builds it: flip test-time augmentation): it was trained
  on 234 of the 292 smears, so only the 58 it never saw (``train["val"]`` in the checkpoint) are
  scored; its confidence threshold per class (grid 0.10..0.60; WBC by exact rate, platelets by MAE)
  is tuned on the unseen smears of the training folds.  Counting is the ``count`` tool's:
  same-label boxes overlapping more than IoU 0.5 are one instance.
* **Cross-check**: for each class, a *primary* method's count is compared with the other method's;
  the flag fires when they differ by more than a tolerance (0..3, tuned on the training folds: the
  highest catch rate whose false-alarm rate stays <= 10 %, ties: the smaller; a class is not
  cross-checked when no tolerance qualifies or the answers it flags are not wrong at least twice as
  often as the others).  Reported on the held-out smears that both methods score
  honestly: how often it fires, catch rate (wrong answers flagged / all wrong answers) and false-alarm
  rate (right answers flagged / all right answers), both ways round (YOLO primary, classical primary).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from .counts_cv_folds import (  # noqa: F401 (also re-exported: the names this module always had)
    CLASSES, MAX_FALSE_ALARMS, MIN_RISK_RATIO, PLT_GRID, TOLERANCES, WBC_GRID, YOLO_GRID, Smear, _class_metrics,
    _grid, _tune_tol, cross_check_stats, load_smears, make_folds, opencv_counts, tune_opencv, tune_yolo, yolo_count,
)

__all__ = ["Smear", "load_smears", "make_folds", "tune_opencv", "opencv_counts", "yolo_count", "cross_check_stats",
           "run", "main"]


def _summary(values: list[float | None]) -> dict[str, float | None]:
    v = [x for x in values if x is not None]
    return {"mean": statistics.fmean(v) if v else None, "sd": statistics.stdev(v) if len(v) > 1 else None}


def run(smears: list[Smear], k: int, scheme: str) -> dict[str, Any]:
    """k-fold CV of both methods and of the cross-check; per-fold numbers, mean and sd, pooled held-out numbers."""
    folds = make_folds([s.name for s in smears], k, scheme)
    per_fold, pooled = [], {c: {"truth": [], "opencv": [], "yolo": [], "yolo_truth": [], "ocv_on_yolo_set": [],
                                 "flag": {"yolo": [], "opencv": []}} for c in CLASSES}
    for f, test in enumerate(folds):
        test_set = set(test)
        train = [s for i, s in enumerate(smears) if i not in test_set]
        held = [smears[i] for i in test]
        params = tune_opencv(train)
        row: dict[str, Any] = {"fold": f, "n": len(held), "opencv_params": asdict(params)}
        ocv = {s.name: opencv_counts(s, params) for s in smears}  # tuned without the held-out fold
        y_train = [s for s in train if s.yolo is not None]
        y_held = [s for s in held if s.yolo is not None]
        row["n_yolo"] = len(y_held)
        thresholds = {c: tune_yolo(y_train, c) for c in CLASSES} if y_train else {}
        row["yolo_threshold"] = thresholds
        for c in CLASSES:
            pred, truth = [ocv[s.name][c] for s in held], [s.truth[c] for s in held]
            row[f"opencv_{c}"] = _class_metrics(pred, truth)
            pooled[c]["opencv"] += pred
            pooled[c]["truth"] += truth
            if not y_held or not y_train:
                continue
            thr = thresholds[c]
            yp = [yolo_count(s, c, thr) for s in y_held]
            yt = [s.truth[c] for s in y_held]
            op = [ocv[s.name][c] for s in y_held]
            row[f"yolo_{c}"] = {**_class_metrics(yp, yt), "threshold": thr}
            row[f"opencv_on_yolo_set_{c}"] = _class_metrics(op, yt)
            pooled[c]["yolo"] += yp
            pooled[c]["yolo_truth"] += yt
            pooled[c]["ocv_on_yolo_set"] += op
            # tolerance tuned on the training folds' unseen smears (both methods scored there)
            ytr = [yolo_count(s, c, thr) for s in y_train]
            otr = [ocv[s.name][c] for s in y_train]
            ttr = [s.truth[c] for s in y_train]
            for primary, (p_tr, o_tr, p_te, o_te) in {"yolo": (ytr, otr, yp, op), "opencv": (otr, ytr, op, yp)}.items():
                tol = _tune_tol(p_tr, o_tr, ttr)
                if tol is None:  # not cross-checked in this fold: nothing flagged
                    flag = [False] * len(p_te)
                else:
                    flag = (np.abs(np.array(p_te) - np.array(o_te)) > tol).tolist()
                pooled[c]["flag"][primary] += flag
                row[f"cross_check_{primary}_primary_{c}"] = cross_check_stats(p_te, o_te, yt, tol)
        per_fold.append(row)
    out: dict[str, Any] = {"scheme": scheme, "folds": k, "images": len(smears), "per_fold": per_fold, "summary": {}}
    for c in CLASSES:
        key = "exact" if c == "WBC" else "mae"
        summ = {"opencv": _summary([r[f"opencv_{c}"][key] for r in per_fold]),
                "opencv_pooled": _class_metrics(pooled[c]["opencv"], pooled[c]["truth"])}
        if pooled[c]["yolo"]:
            summ["yolo"] = _summary([r[f"yolo_{c}"][key] for r in per_fold if f"yolo_{c}" in r])
            summ["yolo_pooled"] = _class_metrics(pooled[c]["yolo"], pooled[c]["yolo_truth"])
            summ["opencv_on_yolo_set_pooled"] = _class_metrics(pooled[c]["ocv_on_yolo_set"], pooled[c]["yolo_truth"])
            for primary in ("yolo", "opencv"):
                p = pooled[c]["yolo" if primary == "yolo" else "ocv_on_yolo_set"]
                t = pooled[c]["yolo_truth"]
                flag = np.array(pooled[c]["flag"][primary], bool)
                wrong = np.array(p) != np.array(t)
                nw, nr = int(wrong.sum()), int((~wrong).sum())
                summ[f"cross_check_{primary}_primary_pooled"] = {
                    "n": len(t), "flagged": int(flag.sum()), "wrong": nw, "wrong_flagged": int((wrong & flag).sum()),
                    "right_flagged": int((~wrong & flag).sum()),
                    "catch_rate": float((wrong & flag).sum() / nw) if nw else None,
                    "false_alarm_rate": float((~wrong & flag).sum() / nr) if nr else None,
                    "wrong_given_flagged": float(wrong[flag].mean()) if flag.any() else None,
                    "wrong_given_unflagged": float(wrong[~flag].mean()) if (~flag).any() else None}
        out["summary"][c] = {"metric": key, **summ}
    out["opencv_params_all"] = asdict(tune_opencv(smears))  # what the shipped defaults should be
    y_all = [s for s in smears if s.yolo is not None]
    if y_all:  # what ships: threshold and cross-check tolerances tuned on every unseen smear
        thresholds = out["yolo_threshold_all_unseen"] = {c: tune_yolo(y_all, c) for c in CLASSES}
        params = tune_opencv(smears)
        tols = {}
        for c in CLASSES:
            thr = thresholds[c]
            yp = [yolo_count(s, c, thr) for s in y_all]
            op = [opencv_counts(s, params)[c] for s in y_all]
            tr = [s.truth[c] for s in y_all]
            tols[c] = {"yolo_primary": _tune_tol(yp, op, tr), "opencv_primary": _tune_tol(op, yp, tr),
                       "sweep_yolo_primary": [cross_check_stats(yp, op, tr, t) for t in TOLERANCES]}
        out["cross_check_tolerance_all_unseen"] = tols
    return out


def _fmt(v: Any, pct: bool) -> str:
    if v is None:
        return "   -  "
    return f"{100 * v:5.1f}%" if pct else f"{v:6.3f}"


def table(res: dict[str, Any]) -> str:
    rows = [f"scheme {res['scheme']}, {res['folds']} folds, {res['images']} smears "
            "(YOLO: only smears it never trained on)",
            f"{'fold':>4} {'n':>4} {'ocv WBC':>8} {'ocv PLT':>8} {'nY':>3} {'yolo WBC':>8} {'yolo PLT':>8} "
            f"{'ocv WBC*':>8} {'ocv PLT*':>8}  (WBC: exact, PLT: MAE; * = on the YOLO-unseen smears of the fold)"]
    for r in res["per_fold"]:
        g = lambda k, m: r[k][m] if k in r else None  # noqa: E731
        rows.append(f"{r['fold']:>4} {r['n']:>4} {_fmt(r['opencv_WBC']['exact'], True):>8} "
                    f"{_fmt(r['opencv_Platelets']['mae'], False):>8} {r['n_yolo']:>3} "
                    f"{_fmt(g('yolo_WBC', 'exact'), True):>8} {_fmt(g('yolo_Platelets', 'mae'), False):>8} "
                    f"{_fmt(g('opencv_on_yolo_set_WBC', 'exact'), True):>8} "
                    f"{_fmt(g('opencv_on_yolo_set_Platelets', 'mae'), False):>8}")
    rows.append(f"YOLO threshold per fold {[r['yolo_threshold'] for r in res['per_fold']]}; opencv parameters "
                f"tuned on all smears {res['opencv_params_all']}")
    for c in CLASSES:
        s = res["summary"][c]
        pct = c == "WBC"
        line = f"{c:9s} opencv {_fmt(s['opencv']['mean'], pct)} ± {_fmt(s['opencv']['sd'], pct)}"
        if "yolo" in s:
            m = "exact" if pct else "mae"
            line += (f" | yolo {_fmt(s['yolo']['mean'], pct)} ± {_fmt(s['yolo']['sd'], pct)}; pooled on the "
                     f"{s['yolo_pooled']['n']} YOLO-unseen smears: yolo {_fmt(s['yolo_pooled'][m], pct)}, "
                     f"opencv {_fmt(s['opencv_on_yolo_set_pooled'][m], pct)}")
        rows.append(line)
        for primary in ("yolo", "opencv"):
            cc = s.get(f"cross_check_{primary}_primary_pooled")
            if cc:
                tols = [r[f"cross_check_{primary}_primary_{c}"]["tolerance"] for r in res["per_fold"]
                        if f"cross_check_{primary}_primary_{c}" in r]
                wf, wu = cc["wrong_given_flagged"], cc["wrong_given_unflagged"]
                rows.append(f"  cross-check, {primary} primary (tolerance per fold {tols}): "
                            f"flagged {cc['flagged']}/{cc['n']}, wrong {cc['wrong']}, catch {cc['wrong_flagged']}/"
                            f"{cc['wrong']}, false alarms {cc['right_flagged']}/{cc['n'] - cc['wrong']}; "
                            f"wrong when flagged {_fmt(wf, True)}, "
                            f"unflagged {_fmt(wu, True)}")
    tol = res.get("cross_check_tolerance_all_unseen")
    if tol:
        shipped = ", ".join(f"{c} {v['yolo_primary']}" for c, v in tol.items())
        rows.append(f"tuned on every YOLO-unseen smear (what ships): YOLO threshold "
                    f"{res['yolo_threshold_all_unseen']}, cross-check tolerance (YOLO primary) {shipped}")
        for c, v in tol.items():
            sweep = "; ".join(f"tol {st['tolerance']}: flagged {st['flagged']}, catch "
                              f"{st['wrong_flagged']}/{st['wrong']}, false alarms {st['right_flagged']}"
                              for st in v["sweep_yolo_primary"])
            rows.append(f"  {c} sweep (in-sample, descriptive): {sweep}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="osler bench counts-cv", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--scheme", choices=["image", "batch", "both"], default="both")
    ap.add_argument("--no-yolo", action="store_true", help="classical counter only (no torch needed)")
    ap.add_argument("--limit", type=int, help="only the first N smears of split.txt")
    ap.add_argument("--data-root", type=Path, help="default: settings.shared_data (../shared/data)")
    ap.add_argument("--labels", choices=["as-labelled", "audited"], default="as-labelled",
                    help="audited: the WBC corrections of eval_scenarios/bccd_wbc_audit.json (2 of the 58 unseen smears)")
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    args = ap.parse_args(list(sys.argv[1:] if argv is None else argv))
    from tools.settings import OslerSettings

    settings = OslerSettings(**({"shared_data": args.data_root} if args.data_root else {}))
    root = Path(settings.shared_data).resolve()
    t0 = time.perf_counter()
    yolo, unseen = None, None
    if not args.no_yolo:
        from experts.yolo_detector import build_blood

        yolo = build_blood(settings.model_copy(update={"device": "cpu", "expert_runtime": "torch"}))  # the .pt: its
        # validation list is in it (the default runtime would give the ONNX export, which records none)
        yolo.load()
        from experts.ultralytics_env import validation_names

        unseen = set(validation_names(yolo.weights))  # the smears its checkpoint records as held out
        if not unseen:
            print(f"note: {yolo.weights.name} records no validation list: the YOLO is not scored", file=sys.stderr)
    smears = load_smears(root, yolo, unseen, args.limit, labels=args.labels)
    schemes = ["image", "batch"] if args.scheme == "both" else [args.scheme]
    res = {"backend_models": {"opencv": "hsv-cc-v2", "yolo": getattr(yolo, "model_id", None)}, "labels": args.labels,
           "results": [run(smears, args.folds, s) for s in schemes], "seconds": time.perf_counter() - t0}
    if not args.json:
        print(f"labels: {args.labels}" + (" (WBC corrections of eval_scenarios/bccd_wbc_audit.json)"
                                          if args.labels == "audited" else " (the VOC files as annotated)"))
        for r in res["results"]:
            print(table(r))
            print()
    print(json.dumps(res, indent=None if not args.json else 1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
