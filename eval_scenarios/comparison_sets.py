"""Ground truth for prior-study comparison, built from real images with known changes.

Two sets, generated deterministically (seeded) from ``../shared/data``:

* **known transform** (:func:`known_transform_cases`): the *current* study is a real image as it is;
  the *prior* is the same image seen through a known similarity transform (rotation, scale, shift),
  on a canvas of another size (a crop / different field of view), with another exposure (gain,
  gamma, offset) and a little sensor noise.  ``matrix`` (prior pixel -> current pixel) is exact, so
  a registration can be scored by corner error and rotation error.
* **known edit** (:func:`known_edit_cases`): one finding of a real image (a polyp from its
  EndoTect mask, or a white blood cell from its BCCD box) is removed (``cv2.inpaint``) or rescaled
  about its centroid by a known area factor and blended back (feathered mask) in one of the two
  studies; the prior also gets a small known transform and exposure change.  Each case states the
  status a comparison must report (``new`` / ``resolved`` / ``grown`` / ``shrunk``), the true area
  change in %, and the ground-truth masks of every finding in both frames.  ``control`` cases carry
  no edit (only the transform): any reported change there is a false positive.

Images are RGB uint8 (H, W, 3); masks bool (H, W); coordinates in pixels, origin top-left.
Data: Hannover CXR (CC BY 3.0), EndoTect / HyperKvasir (CC BY 4.0), BCCD (MIT); see
``../shared/data/*/SOURCE.md``.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .voc import read_voc

__all__ = [
    "TransformCase",
    "EditCase",
    "similarity_about_center",
    "apply_exposure",
    "make_prior",
    "remove_region",
    "scale_region",
    "known_transform_cases",
    "known_edit_cases",
    "hannover_pairs",
    "polyp_items",
    "wbc_items",
]


@dataclass
class TransformCase:
    """A (prior, current) pair whose true prior -> current transform is ``matrix`` (2x3)."""

    name: str
    kind: str
    source: str
    prior: np.ndarray
    current: np.ndarray
    matrix: np.ndarray
    rotation_deg: float
    scale: float
    shift_px: tuple[float, float]
    exposure: dict[str, float]


@dataclass
class EditCase:
    """A (prior, current) pair with one known edit of one finding (or none, for a control)."""

    name: str
    kind: str
    source: str
    label: str  # "polyp" or "WBC"
    edit: str  # "removed_from_prior" | "removed_from_current" | "grown" | "shrunk" | "control"
    expected_status: str | None  # "new" | "resolved" | "grown" | "shrunk" | None (control)
    true_area_change_pct: float | None
    prior: np.ndarray
    current: np.ndarray
    matrix: np.ndarray  # true prior -> current
    edited_current_mask: np.ndarray | None  # the edited finding in the current frame (None if absent there)
    edited_prior_mask: np.ndarray | None  # ... in the prior frame (None if absent there)
    other_prior_masks: list[np.ndarray] = field(default_factory=list)
    other_current_masks: list[np.ndarray] = field(default_factory=list)


# ---- image operations --------------------------------------------------------------------------

def similarity_about_center(shape_src: tuple[int, int], shape_dst: tuple[int, int], angle_deg: float, scale: float,
                            shift: tuple[float, float]) -> np.ndarray:
    """2x3 affine mapping source pixels to destination pixels: rotate by ``angle_deg``
    (counter-clockwise on screen, as ``cv2.getRotationMatrix2D``) and scale about the source centre,
    land that centre on the destination centre, then shift by ``shift`` (dx, dy)."""
    import cv2

    (hs, ws), (hd, wd) = shape_src[:2], shape_dst[:2]
    m = cv2.getRotationMatrix2D((ws / 2.0, hs / 2.0), angle_deg, scale).astype(np.float64)
    m[0, 2] += wd / 2.0 - ws / 2.0 + shift[0]
    m[1, 2] += hd / 2.0 - hs / 2.0 + shift[1]
    return m


def apply_exposure(rgb: np.ndarray, gain: float, gamma: float, offset: float, noise: float,
                   rng: np.random.Generator) -> np.ndarray:
    """``255 * (gain * (x/255) ** gamma) + offset + N(0, noise)``, clipped to uint8."""
    x = (rgb.astype(np.float32) / 255.0) ** gamma * gain * 255.0 + offset
    if noise > 0:
        x = x + rng.normal(0.0, noise, size=x.shape[:2])[..., None].astype(np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


def make_prior(current: np.ndarray, rng: np.random.Generator, *, max_rot: float = 10.0,
               scale_range: tuple[float, float] = (0.85, 1.2), max_shift: float = 0.08,
               canvas_range: tuple[float, float] = (0.8, 1.0), exposure: float = 1.0, border: str = "constant"
               ) -> tuple[np.ndarray, np.ndarray, dict]:
    """The prior of a real current image: (prior RGB, true prior -> current 2x3, parameters).

    The prior canvas is ``canvas_range`` times the current size (each side drawn separately);
    the prior shows the current scene rotated by ``-rot`` and scaled by ``1/scale`` about its
    centre, so that the true matrix has rotation ``rot`` and scale ``scale``.  ``exposure`` scales
    the exposure change (1: gain 0.75-1.25, gamma 0.75-1.35, offset +-15, noise sd <= 4; 0: none);
    ``border`` 'constant' leaves black where the prior sees past the current image, 'reflect'
    mirrors the scene there (no artificial edges for the experts)."""
    import cv2

    h, w = current.shape[:2]
    rot = float(rng.uniform(-max_rot, max_rot))
    scale = float(np.exp(rng.uniform(np.log(scale_range[0]), np.log(scale_range[1]))))
    shift = (float(rng.uniform(-max_shift, max_shift) * w), float(rng.uniform(-max_shift, max_shift) * h))
    hp = int(round(h * rng.uniform(*canvas_range)))
    wp = int(round(w * rng.uniform(*canvas_range)))
    true = similarity_about_center((hp, wp), (h, w), rot, scale, shift)  # prior -> current
    to_prior = cv2.invertAffineTransform(true)
    mode = cv2.BORDER_REFLECT_101 if border == "reflect" else cv2.BORDER_CONSTANT
    prior = cv2.warpAffine(current, to_prior, (wp, hp), flags=cv2.INTER_LINEAR, borderMode=mode)
    params = {"rotation_deg": rot, "scale": scale, "dx": shift[0], "dy": shift[1], "prior_w": wp, "prior_h": hp}
    e = float(exposure)
    ex = {"gain": float(np.exp(rng.uniform(-0.25, 0.25) * e)), "gamma": float(np.exp(rng.uniform(-0.28, 0.3) * e)),
          "offset": float(rng.uniform(-15, 15) * e), "noise": float(rng.uniform(0.0, 4.0) * e)}
    if e > 0:
        prior = apply_exposure(prior, ex["gain"], ex["gamma"], ex["offset"], ex["noise"], rng)
    params.update(ex)
    return prior, true, params


def remove_region(rgb: np.ndarray, mask: np.ndarray, grow_px: int = 7) -> np.ndarray:
    """Paint a finding out: ``cv2.inpaint`` (Telea) over the mask grown by ``grow_px``."""
    import cv2

    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow_px + 1, 2 * grow_px + 1))
    hole = cv2.dilate(mask.astype(np.uint8), k)
    return cv2.inpaint(rgb, hole, 9, cv2.INPAINT_TELEA)


def scale_region(rgb: np.ndarray, mask: np.ndarray, area_factor: float, feather_px: float = 2.0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Rescale a finding about its centroid so its area changes by ``area_factor``; blend it back.

    The original region is inpainted first (so a shrunk finding leaves no rim), then the region
    scaled by ``sqrt(area_factor)`` is pasted with a feathered alpha.  Returns (image, new bool mask);
    the true factor is ``new_mask.sum() / mask.sum()``."""
    import cv2

    ys, xs = np.nonzero(mask)
    cx, cy = float(xs.mean()), float(ys.mean())
    k = math.sqrt(area_factor)
    m = np.array([[k, 0.0, cx * (1 - k)], [0.0, k, cy * (1 - k)]])
    h, w = mask.shape
    scaled_img = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    scaled_mask = cv2.warpAffine(mask.astype(np.float32), m, (w, h), flags=cv2.INTER_LINEAR) >= 0.5
    base = remove_region(rgb, mask)
    alpha = cv2.GaussianBlur(scaled_mask.astype(np.float32), (0, 0), feather_px)[..., None]
    out = scaled_img.astype(np.float32) * alpha + base.astype(np.float32) * (1 - alpha)
    return np.clip(out, 0, 255).astype(np.uint8), scaled_mask


# ---- data listings -----------------------------------------------------------------------------

def _rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return np.ascontiguousarray(img[..., ::-1])


def hannover_pairs(data_root: Path, split: str = "dev") -> list[dict[str, str]]:
    """Rows of ``hannover_cxr/longitudinal_pairs.csv`` of one split (prior_image, current_image, ...)."""
    with (Path(data_root) / "hannover_cxr" / "longitudinal_pairs.csv").open() as fh:
        return [r for r in csv.DictReader(fh) if r["split"] == split]


def polyp_items(data_root: Path, files: list[str] | None = None) -> list[tuple[Path, Path]]:
    """(image, mask) paths of EndoTect polyp frames, sorted; ``files`` (stems or names) restricts."""
    root = Path(data_root) / "endotect_polyps"
    items = []
    for img in sorted((root / "images").glob("*.jpg")):
        if files is not None and img.stem not in files and img.name not in files:
            continue
        items.append((img, root / "masks" / f"{img.stem}.png"))
    return items


def wbc_items(data_root: Path, margin: int = 12) -> list[tuple[Path, tuple[float, float, float, float], list]]:
    """(image, WBC box xyxy, all VOC boxes [(label, xyxy)]) for BCCD smears with exactly one WBC
    that does not touch the image border (``margin`` px)."""
    root = Path(data_root) / "bccd"
    out = []
    for xml in sorted((root / "annotations").glob("*.xml")):
        voc = read_voc(xml)
        w, h = voc.width, voc.height
        boxes = [(o.label, o.box) for o in voc.objects if o.box is not None]
        wbcs = [b for lab, b in boxes if lab == "WBC"]
        if len(wbcs) != 1:
            continue
        x0, y0, x1, y1 = wbcs[0]
        if x0 < margin or y0 < margin or x1 > w - margin or y1 > h - margin:
            continue
        img = root / "images" / f"{xml.stem}.jpg"
        if img.exists():
            out.append((img, wbcs[0], boxes))
    return out


def _ellipse_mask(shape: tuple[int, int], box: tuple[float, float, float, float]) -> np.ndarray:
    import cv2

    x0, y0, x1, y1 = box
    m = np.zeros(shape[:2], np.uint8)
    cv2.ellipse(m, (int(round((x0 + x1) / 2)), int(round((y0 + y1) / 2))),
                (max(1, int(round((x1 - x0) / 2))), max(1, int(round((y1 - y0) / 2)))), 0, 0, 360, 1, -1)
    return m > 0


def _components(mask: np.ndarray, min_area: int = 51) -> list[np.ndarray]:
    from experts.geometry import connected_regions

    return connected_regions(mask, min_area=min_area)


# ---- the two sets ------------------------------------------------------------------------------

def known_transform_cases(data_root: Path, n_per_kind: int = 10, seed: int = 0,
                          kinds: tuple[str, ...] = ("chest_xray", "blood_smear", "endoscopy")) -> list[TransformCase]:
    """Real current images (Hannover dev CXR, BCCD smears, EndoTect frames; every k-th file so the
    pick is spread) with synthetic priors of known transform and exposure."""
    rng = np.random.default_rng(seed)
    root = Path(data_root)
    sources: dict[str, list[Path]] = {}
    if "chest_xray" in kinds:
        ids = sorted({r["current_image"] for r in hannover_pairs(root)})
        sources["chest_xray"] = [root / "hannover_cxr" / "png" / f"{i}.png" for i in ids]
    if "blood_smear" in kinds:
        sources["blood_smear"] = sorted((root / "bccd" / "images").glob("*.jpg"))
    if "endoscopy" in kinds:
        sources["endoscopy"] = [p for p, _ in polyp_items(root)]
    cases = []
    for kind, paths in sources.items():
        step = max(1, len(paths) // max(n_per_kind, 1))
        for k, path in enumerate(paths[::step][:n_per_kind]):
            current = _rgb(path)
            prior, true, prm = make_prior(current, rng)
            cases.append(TransformCase(
                name=f"{kind}-{k:02d}", kind=kind, source=path.name, prior=prior, current=current, matrix=true,
                rotation_deg=prm["rotation_deg"], scale=prm["scale"], shift_px=(prm["dx"], prm["dy"]),
                exposure={k2: prm[k2] for k2 in ("gain", "gamma", "offset", "noise")},
            ))
    return cases


_EDITS = ("removed_from_prior", "removed_from_current", "grown", "shrunk", "control")
_STATUS = {"removed_from_prior": "new", "removed_from_current": "resolved", "grown": "grown", "shrunk": "shrunk",
           "control": None}


def _edit_pair(original: np.ndarray, target: np.ndarray, edit: str, factor: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None, float | None]:
    """(prior before transform, current, edited mask in prior, in current, true area change %)."""
    if edit == "removed_from_prior":
        return remove_region(original, target), original, None, target, None
    if edit == "removed_from_current":
        return original, remove_region(original, target), target, None, None
    if edit == "grown":  # the prior held a smaller finding: current / prior area = factor
        prior, small = scale_region(original, target, 1.0 / factor)
        return prior, original, small, target, 100.0 * (target.sum() / small.sum() - 1.0)
    if edit == "shrunk":  # the current holds a smaller finding
        current, small = scale_region(original, target, 1.0 / factor)
        return original, current, target, small, 100.0 * (small.sum() / target.sum() - 1.0)
    return original, original, target, target, 0.0


def known_edit_cases(data_root: Path, n_per_label: int = 10, seed: int = 0, factor: float = 1.5,
                     labels: tuple[str, ...] = ("polyp", "WBC"), polyp_files: list[str] | None = None,
                     max_rot: float = 4.0, exposure: float = 0.4) -> list[EditCase]:
    """Cases cycling through the edits (removed from prior -> ``new``, removed from current ->
    ``resolved``, ``grown`` / ``shrunk`` by area ``factor``, and ``control``), on real polyp frames
    (the largest polyp of the frame is edited) and on BCCD smears with one WBC (ellipse in its box).
    The prior is then moved by a small known transform (rotation <= ``max_rot`` degrees, scale
    0.92-1.08, shift <= 4 %, scene mirrored past the edges) with a milder exposure change
    (``exposure`` x that of the known-transform set: the classical cell detector's colour thresholds
    do not survive the full one, which is a fact about that expert, measured separately)."""
    import cv2

    rng = np.random.default_rng(seed)
    root = Path(data_root)
    cases: list[EditCase] = []
    for label in labels:
        if label == "polyp":
            pool = [(img, cv2.imread(str(msk), cv2.IMREAD_GRAYSCALE) > 127)
                    for img, msk in polyp_items(root, polyp_files)]
            sources = [(img, _components(m)) for img, m in pool]
        else:
            sources = []
            for img, box, _ in wbc_items(root):
                h, w = cv2.imread(str(img), cv2.IMREAD_GRAYSCALE).shape
                sources.append((img, [_ellipse_mask((h, w), box)]))
        sources = [(p, comps) for p, comps in sources if comps]
        step = max(1, len(sources) // max(n_per_label, 1))
        for k, (path, comps) in enumerate(sources[::step][:n_per_label]):
            original = _rgb(path)
            target, others = comps[0], comps[1:]
            edit = _EDITS[k % len(_EDITS)]
            pre, current, pm, cm, pct = _edit_pair(original, target, edit, factor)
            prior, true, _ = make_prior(pre, rng, max_rot=max_rot, scale_range=(0.92, 1.08), max_shift=0.04,
                                        canvas_range=(0.9, 1.0), exposure=exposure, border="reflect")
            to_prior = cv2.invertAffineTransform(true)
            hp, wp = prior.shape[:2]

            def in_prior(m: np.ndarray) -> np.ndarray:
                return cv2.warpAffine(m.astype(np.float32), to_prior, (wp, hp), flags=cv2.INTER_LINEAR) >= 0.5

            cases.append(EditCase(
                name=f"{label}-{k:02d}-{edit}", kind="endoscopy" if label == "polyp" else "blood_smear",
                source=path.name, label=label, edit=edit, expected_status=_STATUS[edit], true_area_change_pct=pct,
                prior=prior, current=current, matrix=true,
                edited_current_mask=cm, edited_prior_mask=None if pm is None else in_prior(pm),
                other_prior_masks=[in_prior(o) for o in others], other_current_masks=list(others),
            ))
    return cases
