"""Kermany chest X-ray facts and CXR-specific benchmark pieces (pure numpy + OpenCV).

* Naming: ``kermany_label`` (folder + file name -> Osler label), ``patient_id`` (patient key of a file name),
  ``series_of`` (naming series and numeric id: ``IM-``, ``NORMAL2-IM-``, ``personN``).
* ``site_perturbation``: the same film as another site might send it (robustness benchmark).
* ``decision_report`` / ``group_spread``: normal-vs-pneumonia metrics at a threshold, what the uncertainty
  band flags, and the spread over disjoint patient groups (``patient_groups``).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

__all__ = ["kermany_label", "patient_id", "series_of", "PERTURBATIONS", "site_perturbation", "patient_groups",
           "decision_report", "group_spread"]


def kermany_label(path: Path) -> str | None:
    """Osler label of a Kermany file from its folder and name; None when unknown."""
    folder = path.parent.name.upper()
    if folder == "NORMAL":
        return "normal"
    if folder == "PNEUMONIA":
        m = re.search(r"_(bacteria|virus)_", path.name)
        return {"bacteria": "bacterial_pneumonia", "virus": "viral_pneumonia"}.get(m.group(1)) if m else None
    return None


def patient_id(name: str) -> str:
    """Patient key of a Kermany file name (``person123_virus_4.jpeg`` -> ``p123``,
    ``NORMAL2-IM-0383-0001.jpeg`` -> ``n2im0383``, ``IM-0115-0001.jpeg`` -> ``im0115``)."""
    m = re.match(r"person(\d+)_", name)
    if m:
        return f"p{m.group(1)}"
    m = re.match(r"(NORMAL2-)?IM-(\d+)", name)
    if m:
        return f"{'n2' if m.group(1) else ''}im{m.group(2)}"
    return name


def series_of(name: str) -> tuple[str, int]:
    """Naming series and numeric id of a file: ``("person", 123)``, ``("NORMAL2-IM", 383)``, ``("IM", 115)``;
    ``("other", 0)`` when the name follows none of them."""
    m = re.match(r"person(\d+)_", name)
    if m:
        return "person", int(m.group(1))
    m = re.match(r"(NORMAL2-)?IM-(\d+)", name)
    if m:
        return ("NORMAL2-IM" if m.group(1) else "IM"), int(m.group(2))
    return "other", 0


PERTURBATIONS = ("none", "gamma0.7", "gamma1.4", "blur", "jpeg30", "clahe", "bit16")


def site_perturbation(rgb: np.ndarray, name: str) -> np.ndarray:
    """The same film as another site might send it: ``gamma0.7`` / ``gamma1.4`` (tone), ``blur`` (Gaussian
    sigma 1.5 px), ``jpeg30`` (JPEG quality 30), ``clahe`` (local histogram equalisation), ``bit16`` (16-bit
    values, x 257); ``none`` unchanged.  Returns grey ``(H, W)`` (uint8 or uint16)."""
    import cv2

    gray = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if name == "none":
        return gray
    if name.startswith("gamma"):
        return np.clip(255.0 * (gray / 255.0) ** float(name[5:]) + 0.5, 0, 255).astype(np.uint8)
    if name == "blur":
        return cv2.GaussianBlur(gray, (0, 0), 1.5)
    if name == "jpeg30":
        return cv2.imdecode(cv2.imencode(".jpg", gray, [cv2.IMWRITE_JPEG_QUALITY, 30])[1], cv2.IMREAD_GRAYSCALE)
    if name == "clahe":
        return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)
    if name == "bit16":
        return gray.astype(np.uint16) * 257
    raise ValueError(f"unknown perturbation '{name}'; one of {PERTURBATIONS}")


def patient_groups(names: list[str], k: int = 5, seed: int = 0) -> np.ndarray:
    """Group index ``0..k-1`` per file: ``k`` disjoint, seeded random groups of patients (the spread of a
    metric over them is reported as mean +- sd; each patient's films stay in one group)."""
    keys = sorted({patient_id(n) for n in names})
    order = np.random.default_rng(seed).permutation(len(keys))
    group = {keys[i]: j % k for j, i in enumerate(order)}
    return np.array([group[patient_id(n)] for n in names])


def decision_report(probs: np.ndarray, y: np.ndarray, labels: list[str], threshold: float, band: float) -> dict:
    """Normal-vs-pneumonia metrics at ``threshold`` and what the uncertainty ``band`` flags."""
    from experts.cxr_decision import binary_metrics, margin, pneumonia_probability

    p = pneumonia_probability(probs, labels)
    pos = y != labels.index("normal")
    out: dict = binary_metrics(p, pos, threshold)
    flagged = np.abs(margin(p, threshold)) < band
    wrong = (p >= threshold) != pos
    out.update({
        "uncertain_band": float(band), "uncertain_rate": float(flagged.mean()), "uncertain_n": int(flagged.sum()),
        "wrong_n": int(wrong.sum()), "wrong_flagged": int((wrong & flagged).sum()),
        "right_flagged": int((~wrong & flagged).sum()), "wrong_unflagged": int((wrong & ~flagged).sum()),
        "accuracy_unflagged": float((~wrong[~flagged]).mean()) if (~flagged).any() else float("nan"),
    })
    return out


def group_spread(probs: np.ndarray, y: np.ndarray, labels: list[str], names: list[str], threshold: float,
                 k: int = 5) -> dict:
    """Binary metrics per disjoint patient group, with their mean and sample sd."""
    from experts.cxr_decision import binary_metrics, pneumonia_probability

    g = patient_groups(names, k)
    p = pneumonia_probability(probs, labels)
    pos = y != labels.index("normal")
    per = [binary_metrics(p[g == j], pos[g == j], threshold) for j in range(k)]
    spread = {m: {"mean": float(np.nanmean([r[m] for r in per])),  # a group may lack one class: NaN, skipped
                  "sd": float(np.nanstd([r[m] for r in per], ddof=1))}
              for m in ("accuracy", "sensitivity", "specificity", "balanced_accuracy")}
    return {"k": k, "per_group": per, "spread": spread}
