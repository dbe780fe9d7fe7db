"""Pneumonia-vs-normal decision of the chest X-ray classifier: threshold, uncertainty band, their tuning.

Pure numpy over class probabilities ``(N, K)`` whose labels include ``normal`` and ``*_pneumonia``:

* ``P(pneumonia) = 1 - P(normal)``; the film is called pneumonia when ``P(pneumonia) >= threshold``
  (then bacterial or viral by the larger of the two), else normal.
* The margin is measured in log-odds: ``m = logit(P(pneumonia)) - logit(threshold)``.  A film with
  ``|m| < band`` is *uncertain*: the answer gives the probabilities, not a confident class.
* ``tune_threshold`` / ``tune_band`` pick both on validation data only (never on a reported set):
  the threshold maximises balanced accuracy (mean of sensitivity and specificity, so it does not
  follow the training set's 3:1 pneumonia:normal prior), the band is the smallest that flags a given
  share of the validation errors without flagging more than a given share of all films.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Decision", "pneumonia_probability", "margin", "decide", "tune_threshold", "tune_band", "binary_metrics"]

_EPS = 1e-6


@dataclass(frozen=True)
class Decision:
    """The decided label of one film and whether it is too close to the threshold to trust."""

    label: str
    p_pneumonia: float
    margin: float  # log-odds distance to the threshold; positive = pneumonia side
    uncertain: bool
    reason: str | None
    kind: str | None = None  # why it is uncertain: "close_call" (near the threshold) or "not_read" (not a whole film)


def pneumonia_probability(probs: np.ndarray, labels: list[str] | tuple[str, ...]) -> np.ndarray:
    """``1 - P(normal)`` per row of ``(N, K)`` (or one ``(K,)`` row)."""
    return 1.0 - np.asarray(probs, np.float64)[..., list(labels).index("normal")]


def _logit(p: np.ndarray | float) -> np.ndarray:
    q = np.clip(np.asarray(p, np.float64), _EPS, 1 - _EPS)
    return np.log(q / (1 - q))


def margin(p_pneumonia: np.ndarray | float, threshold: float) -> np.ndarray:
    """Log-odds distance of ``P(pneumonia)`` to ``threshold`` (positive on the pneumonia side)."""
    return _logit(p_pneumonia) - _logit(threshold)


def decide(probs: dict[str, float], threshold: float = 0.5, band: float = 0.0) -> Decision:
    """Label of one film from its class probabilities (labels must include ``normal``)."""
    labels = list(probs)
    p = float(pneumonia_probability(np.array([probs[k] for k in labels]), labels))
    m = float(margin(p, threshold))
    if m >= 0:
        others = {k: v for k, v in probs.items() if k != "normal"}
        label = max(others, key=others.__getitem__)
    else:
        label = "normal"
    uncertain = abs(m) < band
    reason = None
    if uncertain:
        reason = (f"uncertain: P(pneumonia) {p:.2f} is close to the decision threshold {threshold:.2f} "
                  f"(log-odds margin {abs(m):.2f} < {band:.2f})")
    return Decision(label=label, p_pneumonia=p, margin=m, uncertain=uncertain, reason=reason,
                    kind="close_call" if uncertain else None)


def binary_metrics(p_pneumonia: np.ndarray, is_pneumonia: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, sensitivity (pneumonia), specificity (normal), balanced accuracy at ``threshold``
    (sensitivity / specificity NaN when there is no pneumonia / normal film)."""
    pos = np.asarray(is_pneumonia, bool)
    pred = np.asarray(p_pneumonia) >= threshold
    sens = float((pred & pos).sum() / pos.sum()) if pos.any() else float("nan")  # NaN: no such films
    spec = float((~pred & ~pos).sum() / (~pos).sum()) if (~pos).any() else float("nan")
    return {"accuracy": float((pred == pos).mean()), "sensitivity": sens, "specificity": spec,
            "balanced_accuracy": (sens + spec) / 2, "threshold": float(threshold), "n": int(len(pos)),
            "n_normal": int((~pos).sum()), "n_pneumonia": int(pos.sum())}


def tune_threshold(p_pneumonia: np.ndarray, is_pneumonia: np.ndarray, lo: float = 0.05, hi: float = 0.98) -> float:
    """Threshold in ``[lo, hi]`` with the highest balanced accuracy on validation data (ties: the
    middle of the best run of grid points, so the choice does not sit on an edge)."""
    grid = np.round(np.arange(lo, hi + 1e-9, 0.005), 4)
    scores = np.array([binary_metrics(p_pneumonia, is_pneumonia, t)["balanced_accuracy"] for t in grid])
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    run_start = best[0]
    runs, start = [], best[0]
    for a, b in zip(best[:-1], best[1:]):
        if b != a + 1:
            runs.append((start, a))
            start = b
    runs.append((start, best[-1]))
    run_start, run_end = max(runs, key=lambda r: r[1] - r[0])
    return float(grid[(run_start + run_end) // 2])


def tune_band(margins: np.ndarray, wrong: np.ndarray, catch: float = 0.5, max_flag: float = 0.1) -> float:
    """Smallest log-odds band that flags ``catch`` of the wrong validation answers, capped so that at most
    ``max_flag`` of all validation films are flagged (0 when there is nothing to catch)."""
    a = np.abs(np.asarray(margins, np.float64))
    w = np.asarray(wrong, bool)
    cap = float(np.quantile(a, max_flag)) if len(a) else 0.0
    if not w.any():
        return 0.0
    need = float(np.quantile(a[w], catch)) + 1e-9
    return float(min(need, cap))
