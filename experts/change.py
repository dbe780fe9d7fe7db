"""Change between two studies, once the prior is registered onto the current image (pure functions).

A *finding* is one region (bool mask) or one instance (``xyxy`` box) of one study, in that study's own
pixels.  :func:`map_finding` carries a prior finding into the current frame with the 2x3 affine of
:mod:`experts.registration` (prior pixel -> current pixel).  :func:`match_findings` pairs mapped
prior findings with current ones of the same label (Hungarian assignment on ``1 - IoU`` plus a
centroid-distance term, gated), and :func:`compare_findings` turns the pairs into change records:

* matched, area change >= +threshold  -> ``grown``;  <= -threshold -> ``shrunk``;  else ``unchanged``
* only in the current study            -> ``new``
* only in the prior study              -> ``resolved``

Areas are compared in the **current frame** (a prior mask is warped; a prior box's area is scaled by
``|det A|``), so a change of scale or crop between the studies is not mistaken for growth.  Findings
outside the field of view common to both studies are set aside (they cannot be new or resolved); those cut by
its edge are measured inside it on both sides (:func:`clip_to_view`), so a crop is not read as shrinkage.
Area in mm² uses each study's own pixel spacing ``(row_mm, col_mm)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .geometry import box_iou, measure_mask
from .registration import transform_points, warp_mask

__all__ = [
    "Finding",
    "ChangeRecord",
    "finding_from_mask",
    "finding_from_box",
    "map_finding",
    "clip_to_view",
    "match_findings",
    "change_status",
    "compare_findings",
    "count_changes",
    "match_exposure",
    "opacity_change",
    "difference_map",
    "AREA_THRESHOLD",
]

AREA_THRESHOLD = 0.20  # |area change| below 20 % counts as unchanged


@dataclass
class Finding:
    """One finding of one study, in some frame.  Exactly one of ``mask`` / ``box`` is set.

    ``mask``: bool (H, W); ``box``: xyxy pixels.  ``area_px`` / ``diameter_px`` / ``centroid`` (x, y)
    are in the same frame.  ``area_native_px`` is the area in the study's own pixels (for mm²).
    """

    label: str
    area_px: float
    diameter_px: float
    centroid: tuple[float, float]
    mask: np.ndarray | None = field(default=None, repr=False)
    box: tuple[float, float, float, float] | None = None
    area_native_px: float | None = None
    source: str | None = None  # e.g. "mask-4" or "E3#2": where the finding came from

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        if self.box is not None:
            return self.box
        ys, xs = np.nonzero(self.mask)
        return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def finding_from_mask(label: str, mask: np.ndarray, source: str | None = None) -> Finding:
    """A region finding; diameter is the longest caliper diameter (px)."""
    m = measure_mask(mask)
    centroid = m.centroid or (0.0, 0.0)
    return Finding(label=label, area_px=float(m.area_px), diameter_px=m.long_px, centroid=centroid,
                   mask=np.asarray(mask, dtype=bool), area_native_px=float(m.area_px), source=source)


def finding_from_box(label: str, box: tuple[float, float, float, float], source: str | None = None) -> Finding:
    """An instance finding from a detection box; diameter is the mean of width and height."""
    x0, y0, x1, y1 = (float(v) for v in box)
    w, h = max(x1 - x0, 0.0), max(y1 - y0, 0.0)
    return Finding(label=label, area_px=w * h, diameter_px=(w + h) / 2.0, centroid=((x0 + x1) / 2, (y0 + y1) / 2),
                   box=(x0, y0, x1, y1), area_native_px=w * h, source=source)


def map_finding(f: Finding, matrix: np.ndarray, shape: tuple[int, int]) -> Finding:
    """Carry a prior finding into the current frame of ``shape`` (H, W).

    A mask is warped (bilinear, >= 0.5) and re-measured; a box becomes the axis-aligned box of its
    four mapped corners, with its area and diameter scaled by the transform's ``sqrt|det A|``.
    ``area_native_px`` is kept from the prior."""
    if f.mask is not None:
        warped = warp_mask(f.mask, matrix, shape)
        m = measure_mask(warped)
        return Finding(label=f.label, area_px=float(m.area_px), diameter_px=m.long_px,
                       centroid=m.centroid or tuple(float(v) for v in transform_points(matrix, [f.centroid])[0]),
                       mask=warped, area_native_px=f.area_native_px, source=f.source)
    x0, y0, x1, y1 = f.box
    corners = transform_points(matrix, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    s = math.sqrt(abs(float(np.linalg.det(np.asarray(matrix, dtype=np.float64)[:, :2]))))
    c = transform_points(matrix, [f.centroid])[0]
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    box = (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
    return Finding(label=f.label, area_px=f.area_px * s * s, diameter_px=f.diameter_px * s,
                   centroid=(float(c[0]), float(c[1])), box=box, area_native_px=f.area_native_px, source=f.source)


def clip_to_view(f: Finding, valid: np.ndarray | None) -> Finding:
    """The part of a finding (in the current frame) inside ``valid``, the field of view both studies show.

    A finding cut by the edge of one study's view (a prior that is a crop, a smear field shifted) would otherwise
    be compared whole on one side and cut on the other, and read as growth, shrinkage or a cell gone.  A mask is
    intersected with ``valid``, a box shrunk to the box of its valid pixels; ``area_native_px`` scales alike.
    Returned unchanged when wholly inside (or wholly outside: it is then set aside as not seen in both)."""
    if valid is None:
        return f
    h, w = valid.shape
    if f.mask is not None:
        inside = f.mask & valid
        kept = int(inside.sum())
        if kept == 0 or kept == int(f.mask.sum()):
            return f
        m = measure_mask(inside)
        ratio = kept / max(float(f.mask.sum()), 1.0)
        return Finding(label=f.label, area_px=float(m.area_px), diameter_px=m.long_px, centroid=m.centroid or f.centroid,
                       mask=inside, area_native_px=None if f.area_native_px is None else f.area_native_px * ratio,
                       source=f.source)
    x0, y0, x1, y1 = f.box
    xa, ya = int(max(math.floor(x0), 0)), int(max(math.floor(y0), 0))
    xb, yb = int(min(math.ceil(x1), w)), int(min(math.ceil(y1), h))
    if xb <= xa or yb <= ya:
        return f
    sub = valid[ya:yb, xa:xb]
    if sub.all() and (xa, ya, xb, yb) == (math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)):
        return f
    ys, xs = np.nonzero(sub)
    if ys.size == 0:
        return f
    box = (max(x0, float(xa + xs.min())), max(y0, float(ya + ys.min())),
           min(x1, float(xa + xs.max() + 1)), min(y1, float(ya + ys.max() + 1)))
    bw, bh = box[2] - box[0], box[3] - box[1]
    ratio = bw * bh / max((x1 - x0) * (y1 - y0), 1e-9)  # of the (mapped) box; its area may be less (rotation)
    return Finding(label=f.label, area_px=f.area_px * ratio, diameter_px=(bw + bh) / 2.0,
                   centroid=((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), box=box,
                   area_native_px=None if f.area_native_px is None else f.area_native_px * ratio, source=f.source)


def _iou(a: Finding, b: Finding) -> float:
    if a.mask is not None and b.mask is not None and a.mask.shape == b.mask.shape:
        inter = float(np.logical_and(a.mask, b.mask).sum())
        union = float(np.logical_or(a.mask, b.mask).sum())
        return inter / union if union else 0.0
    return float(box_iou(np.array(a.bbox), np.array(b.bbox))[0, 0])


def match_findings(
    prior: list[Finding], current: list[Finding], *, min_iou: float = 0.1, gate: float = 0.5
) -> tuple[list[tuple[int, int, float]], list[int], list[int]]:
    """Pair prior findings (already in the current frame) with current ones of the same label.

    Cost ``(1 - IoU) + d / D``, ``d`` the centroid distance and ``D`` the larger diameter of the
    two; a pair is allowed when IoU >= ``min_iou`` or ``d <= gate * D``.  Hungarian assignment
    (``scipy.optimize.linear_sum_assignment``).  Returns ``(pairs (i_prior, j_current, iou),
    unmatched prior indices, unmatched current indices)``."""
    from scipy.optimize import linear_sum_assignment

    if not prior or not current:
        return [], list(range(len(prior))), list(range(len(current)))
    big = 1e6
    cost = np.full((len(prior), len(current)), big)
    ious = np.zeros_like(cost)
    for i, a in enumerate(prior):
        for j, b in enumerate(current):
            if a.label.lower() != b.label.lower():
                continue
            iou = _iou(a, b)
            d = math.dist(a.centroid, b.centroid)
            dia = max(a.diameter_px, b.diameter_px, 1.0)
            if iou >= min_iou or d <= gate * dia:
                cost[i, j] = (1.0 - iou) + d / dia
                ious[i, j] = iou
    rows, cols = linear_sum_assignment(cost)
    pairs = [(int(i), int(j), float(ious[i, j])) for i, j in zip(rows, cols) if cost[i, j] < big]
    mp = {i for i, _, _ in pairs}
    mc = {j for _, j, _ in pairs}
    return pairs, [i for i in range(len(prior)) if i not in mp], [j for j in range(len(current)) if j not in mc]


def change_status(prior_area: float, current_area: float, threshold: float = AREA_THRESHOLD) -> tuple[str, float]:
    """('grown' | 'shrunk' | 'unchanged', area change in %) of a matched pair."""
    pct = 100.0 * (current_area - prior_area) / max(prior_area, 1e-9)
    if pct >= 100.0 * threshold:
        return "grown", pct
    if pct <= -100.0 * threshold:
        return "shrunk", pct
    return "unchanged", pct


@dataclass
class ChangeRecord:
    """One finding across time.  ``prior`` is in the current frame; either side may be None."""

    index: int
    label: str
    status: str
    prior: Finding | None
    current: Finding | None
    area_change_pct: float | None = None
    diameter_change_pct: float | None = None
    iou: float | None = None
    prior_area_mm2: float | None = None
    current_area_mm2: float | None = None


def _inside(f: Finding, valid: np.ndarray | None) -> bool:
    if valid is None:
        return True
    x, y = f.centroid
    h, w = valid.shape
    xi, yi = int(min(max(x, 0), w - 1)), int(min(max(y, 0), h - 1))
    return bool(valid[yi, xi]) and 0 <= x < w and 0 <= y < h


def _mm2(area_px: float | None, spacing: tuple[float, float] | None) -> float | None:
    if area_px is None or spacing is None:
        return None
    return float(area_px * spacing[0] * spacing[1])


def compare_findings(
    prior: list[Finding],
    current: list[Finding],
    matrix: np.ndarray,
    current_shape: tuple[int, int],
    *,
    prior_valid: np.ndarray | None = None,
    prior_spacing: tuple[float, float] | None = None,
    current_spacing: tuple[float, float] | None = None,
    threshold: float = AREA_THRESHOLD,
) -> tuple[list[ChangeRecord], int]:
    """Match and classify findings.  ``prior`` in prior pixels, ``current`` in current pixels.

    ``prior_valid``: bool (H, W) of the current frame, True where the warped prior has pixels; a
    current finding centred outside it, or a prior finding mapped outside the current image, is set
    aside (not seen in both studies).  Returns (records numbered
    1.. — matched first, then new, then resolved, each in reading order — and the number of
    findings set aside as outside the common field of view)."""
    # both sides measured inside the common field of view: a finding cut by one study's edge is compared cut on both
    mapped = [clip_to_view(map_finding(f, matrix, current_shape), prior_valid) for f in prior]
    current = [clip_to_view(f, prior_valid) for f in current]
    h, w = current_shape[:2]
    frame = np.ones((h, w), dtype=bool)
    keep_p = [i for i, f in enumerate(mapped) if f.area_px > 0 and _inside(f, frame)]
    keep_c = [j for j, f in enumerate(current) if _inside(f, prior_valid)]
    aside = (len(prior) - len(keep_p)) + (len(current) - len(keep_c))
    pm = [mapped[i] for i in keep_p]
    cm = [current[j] for j in keep_c]
    pairs, lone_p, lone_c = match_findings(pm, cm)

    def order(f: Finding) -> tuple[float, float]:
        return (round(f.centroid[1] / 32.0), f.centroid[0])

    records: list[ChangeRecord] = []
    for i, j, iou in sorted(pairs, key=lambda t: order(cm[t[1]])):
        a, b = pm[i], cm[j]
        status, pct = change_status(a.area_px, b.area_px, threshold)
        dpct = 100.0 * (b.diameter_px - a.diameter_px) / max(a.diameter_px, 1e-9)
        records.append(ChangeRecord(0, b.label, status, a, b, pct, dpct, iou,
                                    _mm2(a.area_native_px, prior_spacing),
                                    _mm2(b.area_native_px, current_spacing)))
    for j in sorted(lone_c, key=lambda j: order(cm[j])):
        b = cm[j]
        records.append(ChangeRecord(0, b.label, "new", None, b,
                                    current_area_mm2=_mm2(b.area_native_px, current_spacing)))
    for i in sorted(lone_p, key=lambda i: order(pm[i])):
        a = pm[i]
        records.append(ChangeRecord(0, a.label, "resolved", a, None,
                                    prior_area_mm2=_mm2(a.area_native_px, prior_spacing)))
    for k, r in enumerate(records, start=1):
        r.index = k
    return records, aside


def count_changes(prior_labels: list[str], current_labels: list[str], classes: "list[str] | tuple[str, ...]"
                  ) -> list[tuple[str, int, int, int]]:
    """(label, prior count, current count, current - prior) per class, in ``classes`` order."""
    out = []
    for c in classes:
        p = sum(1 for x in prior_labels if x.lower() == c.lower())
        q = sum(1 for x in current_labels if x.lower() == c.lower())
        out.append((c, p, q, q - p))
    return out


def match_exposure(prior: np.ndarray, current: np.ndarray, region: np.ndarray, bins: int = 64) -> np.ndarray:
    """The prior's grey values mapped onto the current's by quantile matching over ``region``
    (bool, same shape): removes any monotonic exposure difference (gain, offset, gamma, window).
    Inputs uint8 (H, W); returns float32 (H, W) in 0..1 (the current image's scale / 255)."""
    if region.sum() < 16:
        region = np.ones(prior.shape, dtype=bool)
    q = np.linspace(0.0, 100.0, bins + 1)
    src = np.percentile(prior[region], q)
    dst = np.percentile(current[region], q)
    src = src + np.arange(src.size) * 1e-6  # strictly increasing for np.interp
    return (np.interp(prior.astype(np.float32), src, dst) / 255.0).astype(np.float32)


def opacity_change(prior_warped: np.ndarray, current: np.ndarray, lungs: np.ndarray, valid: np.ndarray) -> float | None:
    """Mean of ``current - prior`` (0..1 grey scale) inside the lung fields, after matching the
    prior's exposure to the current's on the common field of view *outside* the lungs (soft tissue,
    bone, mediastinum), so a change inside the lungs is not normalised away: > 0 means the lungs
    became whiter (more opaque).  Inputs uint8 (H, W) grey in the current frame; ``lungs`` and
    ``valid`` bool (H, W).  None when no lung is in view."""
    region = lungs & valid
    if region.sum() < 100:
        return None
    reference = valid & ~lungs
    a = match_exposure(prior_warped, current, reference if reference.sum() >= 1000 else valid)
    b = current.astype(np.float32) / 255.0
    return float((b[region] - a[region]).mean())


def difference_map(prior_warped: np.ndarray, current: np.ndarray, valid: np.ndarray, sigma: float = 2.0,
                   full_scale: float = 0.25) -> np.ndarray:
    """Where the studies differ: |current - prior| after matching the prior's exposure to the
    current's over ``valid`` (0..1 grey scale), smoothed by a Gaussian of ``sigma`` px, divided by
    ``full_scale`` (fixed, so two alike studies give a dark map rather than amplified noise).
    float32 (H, W) in 0..1, zero outside ``valid``."""
    import cv2

    a = match_exposure(prior_warped, current, valid)
    b = current.astype(np.float32) / 255.0
    d = cv2.GaussianBlur(np.abs(b - a), (0, 0), sigma)
    d[~valid] = 0.0
    return np.clip(d / max(full_scale, 1e-6), 0.0, 1.0).astype(np.float32)
