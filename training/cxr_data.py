"""Kermany chest X-ray data for training and validation: labels, patient keys, splits, cache, augmentation.

Splits (all by patient; a patient's files never straddle two parts):

* ``split_by_patient``: seeded, label-stratified random split (validation / calibration / train).
* ``shifted_holdout``: the earliest ``frac`` of patients *by id within each naming series* (``IM-xxxx``
  and ``NORMAL2-IM-xxxx`` normal batches, ``personN`` pneumonia ids, which roughly follow acquisition
  order), i.e. a held-out acquisition period, as a new site / time would differ from training.  The official
  Kermany test folder uses the lowest ids of the same series, so this is the closest dev-data proxy for it.
* ``kfold_by_patient``: ``k`` label-stratified patient folds of the remaining files.

Images are cached once as uint8 ``(N, S, S)`` after :func:`experts.cxr_classifier.preprocess`'s grey +
per-image percentile normalisation + resize, exactly the inference path.  ``augment`` turns a batch of
those into what another site might send (tone curve, gamma, blur / sharpening, noise, JPEG quality,
re-normalisation, then rotation / scale / shift / crop and horizontal flip).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from eval_scenarios.kermany import patient_id, series_of

__all__ = [
    "LABELS", "patient_id", "series_of", "label_of", "list_files", "split_by_patient", "shifted_holdout", "batch_holdout",
    "kfold_by_patient", "shifted_and_folds", "load_cache", "augment", "to_input",
]

LABELS = ("normal", "bacterial_pneumonia", "viral_pneumonia")


def label_of(path: Path) -> int:
    """0 normal (folder ``NORMAL``), 1 bacterial, 2 viral pneumonia (from the file name)."""
    if path.parent.name.upper() == "NORMAL":
        return 0
    return 1 if "_bacteria_" in path.name else 2


def list_files(root: Path) -> list[Path]:
    """Sorted image files of ``<root>/<CLASS>/``."""
    return sorted(p for p in Path(root).glob("*/*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))


def _groups(files: list[Path]) -> dict[str, list[Path]]:
    groups: dict[str, list[Path]] = {}
    for f in files:
        groups.setdefault(patient_id(f.name), []).append(f)
    return groups


def split_by_patient(files: list[Path], seed: int, val_frac: float, cal_frac: float) -> dict[str, list[str]]:
    """Seeded, label-stratified patient split -> {"train", "val", "cal"} lists of file names."""
    groups = _groups(files)
    rng = np.random.default_rng(seed)
    out: dict[str, list[str]] = {"train": [], "val": [], "cal": []}
    by_label: dict[int, list[str]] = {}
    for g, fs in sorted(groups.items()):
        by_label.setdefault(max(label_of(f) for f in fs), []).append(g)  # mixed patients go with viral
    for lab in sorted(by_label):
        keys = by_label[lab]
        rng.shuffle(keys)
        n_val, n_cal = round(len(keys) * val_frac), round(len(keys) * cal_frac)
        for i, g in enumerate(keys):
            part = "val" if i < n_val else "cal" if i < n_val + n_cal else "train"
            out[part].extend(sorted(f.name for f in groups[g]))
    return out


def shifted_holdout(files: list[Path], frac: float = 0.2) -> tuple[list[str], list[str]]:
    """(held-out, rest) file names: the patients with the lowest ``frac`` of ids in each naming series."""
    groups = _groups(files)
    by_series: dict[str, list[tuple[int, str]]] = {}
    for g, fs in groups.items():
        series, num = series_of(fs[0].name)
        by_series.setdefault(series, []).append((num, g))
    held: set[str] = set()
    for series, items in by_series.items():
        if series == "other":
            continue
        items.sort()
        held.update(g for _, g in items[:round(len(items) * frac)])
    out = sorted(f.name for g in held for f in groups[g])
    rest = sorted(f.name for g, fs in groups.items() if g not in held for f in fs)
    return out, rest


def batch_holdout(files: list[Path], frac: float = 0.2, batch: str = "IM") -> tuple[list[str], list[str]]:
    """(held-out, rest) file names: every file of one normal naming batch (``"IM"`` or ``"NORMAL2-IM"``)
    plus the earliest ``frac`` of ``personN`` pneumonia patients (so both classes are present): a whole
    acquisition batch never seen in training, a harder shift than :func:`shifted_holdout` for normals."""
    early, _ = shifted_holdout([f for f in files if series_of(f.name)[0] == "person"], frac)
    held = set(early) | {f.name for f in files if series_of(f.name)[0] == batch}
    return sorted(held), sorted(f.name for f in files if f.name not in held)


def kfold_by_patient(files: list[Path], k: int, seed: int) -> list[list[str]]:
    """``k`` disjoint, label-stratified patient folds (lists of file names) covering ``files``."""
    groups = _groups(files)
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(k)]
    by_label: dict[int, list[str]] = {}
    for g, fs in sorted(groups.items()):
        by_label.setdefault(max(label_of(f) for f in fs), []).append(g)
    offset = 0
    for lab in sorted(by_label):
        keys = by_label[lab]
        rng.shuffle(keys)
        for i, g in enumerate(keys):
            folds[(i + offset) % k].extend(groups[g][j].name for j in range(len(groups[g])))
        offset += len(keys)
    return [sorted(f) for f in folds]


def shifted_and_folds(files: list[Path], shift_frac: float, k: int, seed: int
                      ) -> tuple[list[str], list[str], list[list[str]]]:
    """The validation protocol of the CXR scripts: (the shifted hold-out, the rest, ``k`` patient folds of the rest)."""
    by_name = {f.name: f for f in files}
    held, rest = shifted_holdout(files, shift_frac)
    return held, rest, kfold_by_patient([by_name[n] for n in rest], k, seed)


def load_cache(files: list[Path], size: int, cache: Path | None = None) -> np.ndarray:
    """uint8 ``(N, size, size)``: grey, per-image percentile-normalised, resized exactly as at inference.

    With ``cache`` (an ``.npz``), reuse it when it holds the same file names, else write it.
    """
    import cv2

    from experts.cxr_preprocess import preprocess

    names = np.array([f.name for f in files])
    if cache is not None and cache.exists():
        z = np.load(cache)
        if z["names"].shape == names.shape and (z["names"] == names).all():
            return z["images"]
    out = np.empty((len(files), size, size), np.uint8)
    for i, f in enumerate(files):
        img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        x = preprocess(img, size, 1, [0.0], [1.0])[0]  # grey in [0, 1]
        out[i] = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, names=names, images=out)
    return out


def _jpeg(batch: np.ndarray, quality: np.ndarray) -> np.ndarray:
    import cv2

    out = batch.copy()
    for i, q in enumerate(quality):
        if q > 0:
            ok, buf = cv2.imencode(".jpg", batch[i], [cv2.IMWRITE_JPEG_QUALITY, int(q)])
            if ok:
                out[i] = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return out


def _renormalise(x: "torch.Tensor") -> "torch.Tensor":  # noqa: F821
    """Per-image 0.5 / 99.5 percentile normalisation of ``(N, 1, S, S)`` (as at inference)."""
    import torch

    flat = x.flatten(1)
    q = torch.quantile(flat, torch.tensor([0.005, 0.995]), dim=1)
    lo, hi = q[0].view(-1, 1, 1, 1), q[1].view(-1, 1, 1, 1)
    return ((x - lo) / (hi - lo).clamp_min(1e-3)).clamp(0.0, 1.0)


def augment(batch_u8: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> "torch.Tensor":  # noqa: F821
    """uint8 ``(N, S, S)`` -> float ``(N, 1, S, S)`` in ``[0, 1]`` that looks like another site's films.

    Intensity: monotone tone curve (histogram shift), gamma 0.67-1.5, Gaussian blur or unsharp masking,
    noise, JPEG quality 20-90, then the inference percentile normalisation.  Geometry: rotation +-10 deg,
    scale 0.85-1.2 (crop when > 1), shift +-8 %, horizontal flip.
    """
    import torch
    import torch.nn.functional as F

    n, s = batch_u8.shape[0], batch_u8.shape[-1]
    q = np.where(rng.random(n) < 0.3 * strength, rng.integers(20, 91, n), 0)
    x = torch.from_numpy(_jpeg(batch_u8, q)).float().div_(255.0).unsqueeze(1)
    r = lambda *shape: torch.from_numpy(rng.random(shape).astype(np.float32))  # noqa: E731
    w = (r(n, 1, 1, 1) * 2 - 1) * 0.8 * strength
    x = x + w * torch.sin(2 * math.pi * x) / (2 * math.pi)  # monotone for |w| < 1
    gamma = torch.exp((r(n, 1, 1, 1) * 2 - 1) * math.log(1.5) * strength)
    x = x.clamp(0, 1) ** gamma
    sigma = 0.4 + r(n) * 1.0
    kind = r(n)
    coords = torch.arange(-3, 4, dtype=torch.float32)
    for i in range(n):
        if kind[i] < 0.4 * strength:  # blur (p 0.25) or sharpen (p 0.15)
            k1 = torch.exp(-coords ** 2 / (2 * sigma[i] ** 2))
            k1 = k1 / k1.sum()
            img = x[i:i + 1]
            b = F.conv2d(F.pad(img, (3, 3, 0, 0), mode="replicate"), k1.view(1, 1, 1, 7))
            b = F.conv2d(F.pad(b, (0, 0, 3, 3), mode="replicate"), k1.view(1, 1, 7, 1))
            x[i:i + 1] = b if kind[i] < 0.25 * strength else img + (img - b) * 1.0
    noisy = (r(n, 1, 1, 1) < 0.3 * strength).float()
    x = x + noisy * torch.randn(x.shape, generator=torch.Generator().manual_seed(int(rng.integers(1 << 31)))) \
        * (r(n, 1, 1, 1) * 0.03)
    x = _renormalise(x)
    ang = (r(n) * 2 - 1) * math.radians(10) * strength
    scale = 0.85 + r(n) * 0.35
    flip = torch.where(r(n) < 0.5, -1.0, 1.0)
    tx, ty = (r(2, n) * 2 - 1) * 0.16 * strength
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, s, s], align_corners=False)
    return F.grid_sample(x, grid, align_corners=False, padding_mode="zeros")


def to_input(x01: "torch.Tensor", mean: list[float], std: list[float]) -> "torch.Tensor":  # noqa: F821
    """``(N, 1, S, S)`` in ``[0, 1]`` -> ``(N, C, S, S)`` normalised network input (C = len(mean))."""
    import torch

    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    sd = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x01.expand(-1, len(mean), -1, -1) - m) / sd
