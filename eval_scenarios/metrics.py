"""Metrics shared by the benchmarks and the training scripts (a library module, not a command): the
classifier's probabilities, calibration and ROC area, and percentiles.  ROC area comes from scikit-learn and
percentiles from numpy; what those libraries do not have (expected calibration error, temperature fitting, the
pneumonia report) is here.  Detection AP stays in ``bench_detection`` (the COCO 101-point mean, which
ultralytics approximates with a trapezoid)."""

from __future__ import annotations

from typing import Iterable

import numpy as np

__all__ = ["auroc", "classification_report", "ece", "fit_temperature", "nll", "percentile", "softmax"]


def percentile(values: Iterable[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0..100, numpy's default method); None for no values."""
    xs = list(values)
    return float(np.percentile(xs, q)) if xs else None


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``(N, K)`` logits divided by ``temperature``."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    p = softmax(logits, temperature)
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the NLL of held-out logits (log-grid search then refinement)."""
    grid = np.exp(np.linspace(np.log(0.05), np.log(20.0), 300))
    losses = [nll(logits, y, t) for t in grid]
    best = int(np.argmin(losses))
    lo, hi = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    fine = np.linspace(lo, hi, 200)
    return float(fine[int(np.argmin([nll(logits, y, t) for t in fine]))])


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``; ties count one half); NaN with one class only."""
    from sklearn.metrics import roc_auc_score

    pos = np.asarray(positive, bool)
    if pos.all() or not pos.any():
        return float("nan")
    return float(roc_auc_score(pos, np.asarray(scores, np.float64)))


def ece(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top label, ``bins`` equal-width confidence bins."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (conf > lo) & (conf <= hi)
        if sel.any():
            total += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(total)


def classification_report(probs: np.ndarray, y: np.ndarray, labels: list[str]) -> dict:
    """Accuracy, per-class sensitivity/specificity/AUROC, ECE; plus pneumonia metrics when the
    labels are the Osler CXR ones (``normal`` and ``*_pneumonia``)."""
    pred = probs.argmax(axis=1)
    out: dict = {"n": int(len(y)), "accuracy": float((pred == y).mean()), "ece": ece(probs, y), "per_class": {}}
    for k, lab in enumerate(labels):
        pos, neg = y == k, y != k
        out["per_class"][lab] = {
            "n": int(pos.sum()),
            "sensitivity": float((pred[pos] == k).mean()) if pos.any() else float("nan"),
            "specificity": float((pred[neg] != k).mean()) if neg.any() else float("nan"),
            "auroc": auroc(probs[:, k], pos),
        }
    if "normal" in labels and any(lab.endswith("pneumonia") for lab in labels):
        k_norm = labels.index("normal")
        is_pn = y != k_norm
        # the binary question: P(pneumonia) = 1 - P(normal) >= 0.5; also the 3-class arg-max reading
        out["normal_vs_pneumonia_accuracy"] = float(((probs[:, k_norm] <= 0.5) == is_pn).mean())
        out["normal_vs_pneumonia_accuracy_argmax"] = float(((pred != k_norm) == is_pn).mean())
        out["pneumonia_auroc"] = auroc(1.0 - probs[:, k_norm], is_pn)
        if "bacterial_pneumonia" in labels and "viral_pneumonia" in labels:
            kb, kv = labels.index("bacterial_pneumonia"), labels.index("viral_pneumonia")
            sel = (y == kb) | (y == kv)
            if sel.any():
                bv_pred = np.where(probs[sel, kb] >= probs[sel, kv], kb, kv)
                out["bacterial_vs_viral_accuracy"] = float((bv_pred == y[sel]).mean())
                out["bacterial_vs_viral_auroc"] = auroc(probs[sel, kv] / (probs[sel, kv] + probs[sel, kb]),
                                                        y[sel] == kv)
    return out
