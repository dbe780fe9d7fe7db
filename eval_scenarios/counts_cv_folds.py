"""The smears, folds and per-fold tuning of ``osler bench counts-cv`` (:mod:`eval_scenarios.bench_counts_cv`).

* :class:`Smear` and :func:`load_smears`: the BCCD dev smears with their annotated counts, stain components
  and (only for smears the YOLO never trained on) its low-threshold boxes.
* :func:`make_folds`: ``image`` (seeded shuffle) or ``batch`` (contiguous by file index) held-out folds.
* Tuning on the training folds: :func:`tune_opencv` (classical counter's grid), :func:`tune_yolo` (YOLO
  confidence per class) and :func:`_tune_tol` (cross-check tolerance), with the counts and scores they
  optimise (:func:`opencv_counts`, :func:`yolo_count`, :func:`_class_metrics`, :func:`cross_check_stats`).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CLASSES", "WBC_GRID", "PLT_GRID", "YOLO_GRID", "TOLERANCES", "MAX_FALSE_ALARMS", "MIN_RISK_RATIO",
           "Smear", "load_smears", "make_folds", "opencv_counts", "tune_opencv", "yolo_count", "tune_yolo",
           "cross_check_stats"]

CLASSES = ("WBC", "Platelets")
WBC_GRID = {"close_px": (15, 11, 9), "wbc_area": (2000, 3000, 4000), "wbc_s": (70.0, 75.0, 80.0),
            "merge_gap": (0, 10, 20), "edge_area": (0, 4000, 6000, 8000)}
PLT_GRID = {"plt_area": (60, 100, 150), "plt_s": (62.0, 66.0, 70.0, 74.0, 78.0), "plt_v": (170.0, 180.0, 190.0, 200.0)}
YOLO_GRID = tuple(round(float(x), 2) for x in np.arange(0.10, 0.61, 0.05))
TOLERANCES = (0, 1, 2, 3)
MAX_FALSE_ALARMS = 0.10  # at most this fraction of right answers flagged
MIN_RISK_RATIO = 2.0  # flagged answers must be wrong at least this many times as often as unflagged ones


@dataclass
class Smear:
    """One dev smear: its annotated counts, its stain components, and (when scored) YOLO's raw boxes."""

    name: str
    truth: dict[str, int]
    comps: dict[int, list[Any]]  # stain components per closing disc (``BloodParams.close_px``)
    shape: tuple[int, int]
    yolo: Any = None  # Detections at a low threshold, only for smears the YOLO never trained on


def _grid(spec: dict[str, tuple]) -> list[dict[str, Any]]:
    return [dict(zip(spec, vals)) for vals in itertools.product(*spec.values())]


def load_smears(data_root: Path, yolo: Any = None, yolo_unseen: set[str] | None = None,
                limit: int | None = None, labels: str = "as-labelled") -> list[Smear]:
    """Read the dev smears; ``yolo`` (a loaded detector) predicts at 0.05 on ``yolo_unseen`` stems only.

    ``labels="audited"`` applies the WBC corrections of :mod:`eval_scenarios.bccd_audit` (the smears
    it reviewed are the YOLO's unseen ones; every other count stays as annotated)."""
    if labels not in ("as-labelled", "audited"):
        raise ValueError(f"labels must be 'as-labelled' or 'audited', not {labels!r}")
    from experts.blood_opencv import stain_components
    from experts.imaging import load_image

    from .ground_truth import voc_counts

    bccd = data_root / "bccd"
    names = (bccd / "split.txt").read_text().split()[:limit]
    out = []
    for name in names:
        img = load_image(bccd / "images" / f"{name}.jpg")
        truth = voc_counts(bccd / "annotations" / f"{name}.xml")
        comps = {k: stain_components(img.pixels, k) for k in WBC_GRID["close_px"]}
        counts = {c: int(truth.get(c, 0)) for c in CLASSES}
        if labels == "audited":
            from .bccd_audit import audited_counts

            counts = audited_counts(name, counts)
        s = Smear(name, counts, comps, img.pixels.shape[:2])
        if yolo is not None and yolo_unseen is not None and name in yolo_unseen:
            s.yolo = yolo.predict(img, min_score=0.05)
        out.append(s)
    return out


def make_folds(names: list[str], k: int, scheme: str) -> list[list[int]]:
    """Index lists of k held-out folds: ``image`` (seeded shuffle) or ``batch`` (contiguous by file index)."""
    idx = list(range(len(names)))
    if scheme == "image":
        random.Random(0).shuffle(idx)
        return [sorted(idx[i::k]) for i in range(k)]
    idx.sort(key=lambda i: int("".join(ch for ch in names[i] if ch.isdigit()) or 0))
    return [sorted(part.tolist()) for part in np.array_split(np.array(idx), k)]


def opencv_counts(smear: Smear, params: Any) -> dict[str, int]:
    from experts.blood_opencv import platelet_blobs, wbc_cells

    comps = smear.comps[params.close_px]
    cells = wbc_cells(comps, smear.shape, params)
    plts = platelet_blobs(comps, [n for _, n, _ in cells], smear.shape, params)
    return {"WBC": len(cells), "Platelets": len(plts)}


def tune_opencv(smears: list[Smear]) -> Any:
    """Grid search on these smears: WBC parameters by exact rate (then MAE), then platelets by MAE.
    Ties keep the earliest grid point."""
    from experts.blood_opencv import BloodParams

    def score_wbc(p: BloodParams) -> tuple[float, float]:
        errs = [opencv_counts(s, p)["WBC"] - s.truth["WBC"] for s in smears]
        return (-sum(e == 0 for e in errs) / len(errs), float(np.mean(np.abs(errs))))

    best = min((replace(BloodParams(), **g) for g in _grid(WBC_GRID)), key=score_wbc)

    def score_plt(p: BloodParams) -> float:
        return float(np.mean([abs(opencv_counts(s, p)["Platelets"] - s.truth["Platelets"]) for s in smears]))

    return min((replace(best, **g) for g in _grid(PLT_GRID)), key=score_plt)


def yolo_count(smear: Smear, cls: str, thr: float) -> int:
    from experts.geometry import dedup_boxes

    d = smear.yolo
    sel = [i for i, (lab, sc) in enumerate(zip(d.labels, d.scores)) if lab == cls and sc >= thr]
    if not sel:
        return 0
    return len(dedup_boxes(d.boxes[sel], d.scores[sel], [cls] * len(sel), 0.5))


def tune_yolo(smears: list[Smear], cls: str) -> float:
    """The class's confidence threshold: WBC by exact rate (then MAE), platelets by MAE; ties to the lower."""
    def loss(t: float) -> tuple[float, float]:
        errs = [yolo_count(s, cls, t) - s.truth[cls] for s in smears]
        exact, mae = sum(e == 0 for e in errs) / len(errs), float(np.mean(np.abs(errs)))
        return (-exact, mae) if cls == "WBC" else (mae, -exact)

    return min(YOLO_GRID, key=loss)


def _class_metrics(pred: list[int], truth: list[int]) -> dict[str, float | int]:
    errs = np.array(pred) - np.array(truth)
    return {"n": len(errs), "exact": float(np.mean(errs == 0)), "mae": float(np.mean(np.abs(errs))),
            "bias": float(np.mean(errs))}


def cross_check_stats(primary: list[int], other: list[int], truth: list[int], tol: int | None) -> dict[str, Any]:
    """Flag = |primary - other| > tol (never, when tol is None).  Catch rate = wrong & flagged / wrong;
    false-alarm rate = right & flagged / right."""
    p, o, t = np.array(primary), np.array(other), np.array(truth)
    flag = np.abs(p - o) > tol if tol is not None else np.zeros(len(p), bool)
    wrong = p != t
    nw, nr = int(wrong.sum()), int((~wrong).sum())
    return {"n": len(p), "tolerance": tol, "flagged": int(flag.sum()),
            "flag_rate": float(flag.mean()) if len(p) else None,
            "wrong": nw, "wrong_flagged": int((wrong & flag).sum()), "right_flagged": int((~wrong & flag).sum()),
            "catch_rate": float((wrong & flag).sum() / nw) if nw else None,
            "false_alarm_rate": float((~wrong & flag).sum() / nr) if nr else None,
            "wrong_given_flagged": float(wrong[flag].mean()) if flag.any() else None,
            "wrong_given_unflagged": float(wrong[~flag].mean()) if (~flag).any() else None}


def _tune_tol(primary: list[int], other: list[int], truth: list[int]) -> int | None:
    """Highest catch rate with a false-alarm rate <= MAX_FALSE_ALARMS (ties: the smaller tolerance), or None
    (do not cross-check this class) when no tolerance keeps false alarms that low or, at the chosen one,
    the answers it flags are not wrong at least MIN_RISK_RATIO times as often as those it does not flag
    (an uninformative flag).  A flag that fired on none of these smears is kept (no evidence against it)."""
    stats = {t: cross_check_stats(primary, other, truth, t) for t in TOLERANCES}
    ok = [t for t in TOLERANCES if (stats[t]["false_alarm_rate"] or 0.0) <= MAX_FALSE_ALARMS]
    if not ok:
        return None
    best = max(ok, key=lambda t: ((stats[t]["catch_rate"] or 0.0), -t))
    flagged, unflagged = stats[best]["wrong_given_flagged"], stats[best]["wrong_given_unflagged"]
    if flagged is not None and flagged < MIN_RISK_RATIO * (unflagged or 0.0):
        return None
    return best
