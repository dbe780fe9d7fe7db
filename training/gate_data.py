"""Data recipe of the modality gate: real sources per kind, synthetic images, augmentation, split.

Kinds (``tools.kinds.IMAGE_KINDS``) and their sources (read-only; nothing is copied):

* ``chest_xray``: Hannover CXR ``png/`` and ``lung_seg/images``, a seeded sample of Kermany and of
  NIH ChestX-ray14 64 px, pydicom-data's RG1 chest radiograph (rendered like ``load_image`` does);
* ``endoscopy``: EndoTect polyp frames and negatives;  ``blood_smear``: BCCD smears;
* ``fundus``: ``skimage.data.retina()`` (the only real fundus image) augmented, plus procedural
  synthetic fundus photographs (disc, macula, vessel tree);
* ``ct_mr``: CT and MR slices of pydicom's and pydicom-data's test files (not the ``693_*`` files,
  CC BY-NC-SA) and matplotlib's ``s1045.ima`` MR slice, re-windowed; procedural CT/MR-like slices;
* ``other``: scikit-image, matplotlib and gradio sample photographs/graphics, LFW faces, pydicom
  ultrasound / extremity radiograph / nuclear medicine / test-pattern images, synthetic graphics.

A *group* is one file, one DICOM series or one synthetic seed; :func:`split_groups` holds out a
seeded fraction of the groups of each origin.  Used by ``training/train_gate.py`` and by
``eval_scenarios/bench_classification.py --gate``.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dicom_testfiles import ct_mr_images, local_dicom_testfiles  # noqa: F401  (re-exported)
from gate_synthetic import synthetic_ct_mr, synthetic_fundus, synthetic_other  # noqa: F401  (re-exported)

KINDS = ("chest_xray", "endoscopy", "blood_smear", "fundus", "ct_mr", "other")
_ROT = {"chest_xray": 30, "endoscopy": 30, "blood_smear": 180, "fundus": 180, "ct_mr": 30, "other": 30}
_CROP = {"chest_xray": 0.5, "endoscopy": 0.45, "blood_smear": 0.4, "fundus": 0.6, "ct_mr": 0.45, "other": 0.35}
"""Smallest crop side (fraction of the image side) of a training view, per kind."""
CT_MR_DICOMS = ("CT_small.dcm", "MR_small.dcm", "MR2_UNCI.dcm", "MR-SIEMENS-DICOM-WithOverlays.dcm",
                "examples_overlay.dcm", "emri_small.dcm", "eCT_Supplemental.dcm", "J2K_pixelrep_mismatch.dcm",
                "explicit_VR-UN.dcm")
SAME_SERIES = {"examples_overlay.dcm": "MR-SIEMENS-DICOM-WithOverlays.dcm"}
OTHER_DICOMS = ("US1_UNCR.dcm", "OBXXXX1A.dcm", "color-pl.dcm", "examples_rgb_color.dcm", "examples_palette.dcm",
                "gdcm-US-ALOKA-16.dcm", "ExplVR_BigEnd.dcm", "RG3_UNCR.dcm", "JPEG2000_UNC.dcm", "SC_rgb.dcm",
                "image_dfl.dcm", "mlut_18.dcm")
CXR_DICOMS = ("RG1_UNCR.dcm",)
SKIMAGE_OTHER = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "clock_motion.png", "coffee.png",
                 "coins.png", "color.png", "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg",
                 "logo.png", "moon.png", "motorcycle_left.png", "page.png", "rocket.jpg", "text.png",
                 "chessboard_RGB.png")
PACKAGE_OTHER = ("matplotlib/mpl-data/sample_data/grace_hopper.jpg",
                 "matplotlib/mpl-data/sample_data/Minduka_Present_Blue_Pack.png",
                 "matplotlib/mpl-data/sample_data/logo2.png", "gradio/media_assets/images/cheetah.jpg",
                 "gradio/media_assets/images/lion.jpg", "gradio/media_assets/images/tower.jpg",
                 "gradio/media_assets/images/groot.jpeg",
                 "gradio/media_assets/images/avatar.png", "gradio/test_data/cheetah2.jpg",
                 "gradio/media_assets/images/cheetah1.jpg", "ultralytics/assets/bus.jpg",
                 "ultralytics/assets/zidane.jpg")
PHOTO_ORIGINS = ("skimage", "package_images", "lfw")
"""Origins of the real non-medical photographs (the "photos" rows of the gate benchmark)."""


@dataclass
class Source:
    """One real or synthetic base image; ``load()`` returns uint8 RGB ``(H, W, 3)``."""

    kind: str
    group: str
    origin: str  # source family, for per-source reporting
    load: Callable[[np.random.Generator | None], np.ndarray]
    path: Path | None = None  # the file, for real file sources
    dynamic: bool = False  # load(rng) differs per call (DICOM re-windowing, synthetic): no caching


def _cap(rgb: np.ndarray, side: int = 512) -> np.ndarray:
    import cv2

    s = side / max(rgb.shape[:2])
    return cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else rgb


def _file_loader(path: Path) -> Callable[[np.random.Generator | None], np.ndarray]:
    def load(_rng: np.random.Generator | None) -> np.ndarray:
        from experts.imaging import load_image

        return _cap(load_image(path).pixels)
    return load


def _dicom_loader(path: Path, frame: int | None = None) -> Callable[[np.random.Generator | None], np.ndarray]:
    """Render like ``load_image``; with a generator, re-window the raw values at random."""
    def load(rng: np.random.Generator | None) -> np.ndarray:
        from experts.imaging import load_image, window_to_uint8

        img = load_image(path)
        if frame is not None or (rng is not None and img.raw is not None and rng.random() < 0.6):
            import pydicom

            ds = pydicom.dcmread(str(path), force=True)
            arr = ds.pixel_array.astype(np.float32)
            arr = arr[frame if frame is not None else arr.shape[0] // 2] if arr.ndim == 3 else arr
            vals = arr * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
            lo, hi = np.percentile(vals, [0.5, 99.5])
            c, w = (lo + hi) / 2, max(hi - lo, 1.0)
            if rng is not None:
                c, w = c + rng.uniform(-0.2, 0.2) * w, w * rng.uniform(0.5, 1.3)
            grey = window_to_uint8(vals, c, w)
            if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
                grey = 255 - grey
            return _cap(np.repeat(grey[..., None], 3, axis=2))
        return _cap(img.pixels)
    return load


def _array_loader(fn: Callable[[], np.ndarray]) -> Callable[[np.random.Generator | None], np.ndarray]:
    def load(_rng: np.random.Generator | None) -> np.ndarray:
        a = np.asarray(fn())
        if a.dtype != np.uint8:
            a = (255 * (a - a.min()) / max(float(np.ptp(a)), 1e-6)).astype(np.uint8)
        return _cap(np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a[..., :3])
    return load


def to_grey(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> the same image in grey (three equal channels), as a converted file would be."""
    import cv2

    g = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return np.repeat(g[..., None], 3, axis=2)


def _rotate(rgb: np.ndarray, angle: float, border: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    if angle % 90 == 0:
        return np.ascontiguousarray(np.rot90(rgb, int(angle // 90) % 4))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    return cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=border)


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])


def _resized(rgb: np.ndarray, scale: float) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (max(16, int(w * scale)), max(16, int(h * scale))),
                      interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def _bit16(rgb: np.ndarray) -> np.ndarray:
    """Saved as a 16-bit grey TIFF (full range) and read back through ``load_image``."""
    import tempfile

    from PIL import Image

    from experts.imaging import load_image

    grey = to_grey(rgb)[..., 0].astype(np.uint32) * 257
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image16.tif"
        Image.fromarray(grey.astype(np.uint16)).save(path)
        return load_image(path).pixels


def _crop(rgb: np.ndarray, frac: float, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    ch, cw = max(16, int(h * frac)), max(16, int(w * frac))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return np.ascontiguousarray(rgb[y0:y0 + ch, x0:x0 + cw])


TRANSFORMS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "original": lambda im, _r: im,
    "grayscale": lambda im, _r: to_grey(im),
    "inverted": lambda im, _r: np.ascontiguousarray(255 - im),
    "cropped": lambda im, r: _crop(im, float(r.uniform(0.4, 0.6)), r),
    "rotated90": lambda im, r: _rotate(im, float(r.choice([90, 270]))),
    "rotated": lambda im, r: _rotate(im, float(r.uniform(10, 30)) * float(r.choice([-1, 1]))),
    "jpeg_q15": lambda im, _r: _jpeg(im, 15),
    "bit16": lambda im, _r: _bit16(im),
    "downsized": lambda im, _r: _resized(im, 0.25),
    "upsized": lambda im, _r: _resized(im, 2.0),
    "blurred": lambda im, _r: __import__("cv2").GaussianBlur(im, (0, 0), 2.5),
}
"""Transforms a user's file may have gone through, for the gate benchmark (``eval_scenarios/bench_gate``).
A transformed image should keep its kind (``grayscale`` and ``bit16`` included), except ``inverted``,
which may also be withheld: an inverted film or smear is not what the diagnosis tools were made for."""
TRAIN_AS_OTHER = ("inverted",)
"""Transforms whose training views are labelled ``other``: the gate withholds diagnosis tools from them."""


def augment(rgb: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Random crop / rotation (now and then by 90 degrees) / flips / photometric jitter / blur / resolution /
    JPEG (quality 10-95) / conversion to grey (colour images) of a uint8 RGB image; the kind is kept."""
    import cv2

    h, w = rgb.shape[:2]
    lo = _CROP[kind] if rng.random() < 0.7 else 0.85
    sy = rng.uniform(lo, 1.0)
    sx = float(np.clip(sy * rng.uniform(0.85, 1.15), lo, 1.0))
    ch, cw = max(8, int(h * sy)), max(8, int(w * sx))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    img = rgb[y0:y0 + ch, x0:x0 + cw]
    wide = kind in ("blood_smear", "fundus") or rng.random() < 0.35
    ang = rng.uniform(-_ROT[kind], _ROT[kind]) if wide else rng.uniform(-8, 8)
    if abs(ang) > 0.5:
        m = cv2.getRotationMatrix2D((cw / 2, ch / 2), ang, 1.0)
        black = kind in ("fundus", "ct_mr", "endoscopy") or rng.random() < 0.5
        border = (0, 0, 0) if black else tuple(int(c) for c in img[0, 0])
        img = cv2.warpAffine(img, m, (cw, ch), borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if kind in ("blood_smear", "fundus", "other") and rng.random() < 0.5:
        img = img[::-1]
    f = img.astype(np.float32) / 255.0
    f = np.clip((f - 0.5) * rng.uniform(0.8, 1.25) + 0.5 + rng.uniform(-0.1, 0.1), 0, 1) ** rng.uniform(0.75, 1.33)
    img = (f * 255).astype(np.uint8)
    colour = float(np.abs(img[..., 0].astype(int) - img[..., 2]).mean()) > 3
    if colour:
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.int32)
        hsv[..., 0] = (hsv[..., 0] + int(rng.integers(-6, 7))) % 180
        hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.8, 1.2), 0, 255)
        img = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.3:
        s = rng.uniform(0.25, 0.7)
        small = cv2.resize(img, (max(8, int(cw * s)), max(8, int(ch * s))), interpolation=cv2.INTER_AREA)
        img = cv2.resize(small, (cw, ch), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.4:
        img = _jpeg(img, int(rng.integers(10, 95)))
    if rng.random() < 0.08:  # a film or frame saved on its side
        img = _rotate(img, 90.0 * int(rng.integers(1, 4)))
    if colour and rng.random() < GREY_FRACTION:  # a colour image converted to grey is still its kind
        img = to_grey(img)
    return np.ascontiguousarray(img)


GREY_FRACTION = 0.25
"""Share of the augmented views of colour images (smears, endoscopy, fundus, photos) turned grey."""


def gather_sources(shared: Path, seed: int, n_kermany: int = 300, n_nih: int = 300,
                   n_synth: int = 160) -> list[Source]:
    import importlib.util

    import skimage.data

    rng = np.random.default_rng(seed)
    src: list[Source] = []

    def folder(kind: str, origin: str, path: Path, pattern: str, n: int | None = None) -> None:
        files = sorted(path.glob(pattern))
        if n is not None and n < len(files):
            files = [files[i] for i in sorted(rng.choice(len(files), n, replace=False))]
        src.extend(Source(kind, f"{origin}/{f.name}", origin, _file_loader(f), f) for f in files)

    folder("chest_xray", "hannover_png", shared / "hannover_cxr/png", "*.png")
    folder("chest_xray", "hannover_lung_seg", shared / "hannover_cxr/lung_seg/images", "*.jpg")
    folder("chest_xray", "kermany", shared / "kermany_cxr/train", "*/*.jpeg", n_kermany)  # any patient: no label use
    folder("chest_xray", "nih_cxr14_64", shared / "nih_cxr14_64/images", "*.png", n_nih)
    folder("endoscopy", "endotect", shared / "endotect_polyps/images", "*.jpg")
    folder("endoscopy", "endotect_negatives", shared / "endotect_polyps/negatives/images", "*.jpg")
    folder("blood_smear", "bccd", shared / "bccd/images", "*.jpg")
    td = local_dicom_testfiles()
    for name in CXR_DICOMS:
        src.append(Source("chest_xray", f"dicom/{name}", "pydicom_cxr", _dicom_loader(td[name]), td[name], True))
    for name in CT_MR_DICOMS:
        import pydicom

        n_frames = int(pydicom.dcmread(str(td[name]), stop_before_pixels=True).get("NumberOfFrames", 1) or 1)
        group = f"dicom/{SAME_SERIES.get(name, name)}"
        for fr in range(n_frames) if n_frames > 1 else [None]:
            src.append(Source("ct_mr", group, "pydicom_ct_mr", _dicom_loader(td[name], fr), td[name], True))
    mpl = importlib.util.find_spec("matplotlib")
    if mpl is not None and mpl.origin:
        ima = Path(mpl.origin).parent / "mpl-data/sample_data/s1045.ima.gz"
        if ima.exists():
            def s1045(_r: np.random.Generator | None, p: Path = ima) -> np.ndarray:
                a = np.frombuffer(gzip.open(p).read(), np.uint16).reshape(256, 256).astype(np.float32)
                lo, hi = np.percentile(a, [0.5, 99.5])
                g = (np.clip((a - lo) / max(hi - lo, 1), 0, 1) * 255).astype(np.uint8)
                return np.repeat(g[..., None], 3, axis=2)
            src.append(Source("ct_mr", "mpl/s1045", "mpl_mr", s1045))
    src.append(Source("fundus", "skimage/retina", "retina", _array_loader(skimage.data.retina)))
    for name in OTHER_DICOMS:
        src.append(Source("other", f"dicom/{name}", "pydicom_other", _dicom_loader(td[name]), td[name], True))
    sk = Path(skimage.data.__file__).parent
    site = sk.parent.parent
    for name in SKIMAGE_OTHER:
        src.append(Source("other", f"skimage/{name}", "skimage", _file_loader(sk / name), sk / name))
    for rel in PACKAGE_OTHER:
        if (site / rel).exists():
            src.append(Source("other", f"pkg/{rel}", "package_images", _file_loader(site / rel), site / rel))
    faces = skimage.data.lfw_subset()
    for i in rng.choice(len(faces), 40, replace=False):
        src.append(Source("other", f"lfw/{i}", "lfw", _array_loader(lambda i=i: faces[i])))
    for i in range(n_synth):
        src.append(Source("fundus", f"synth_fundus/{i}", "synthetic_fundus",
                          lambda _r, s=seed * 100003 + i: synthetic_fundus(np.random.default_rng(s))))
        src.append(Source("ct_mr", f"synth_ct_mr/{i}", "synthetic_ct_mr",
                          lambda _r, s=seed * 100043 + i: synthetic_ct_mr(np.random.default_rng(s))))
        src.append(Source("other", f"synth_other/{i}", "synthetic_other",
                          lambda _r, s=seed * 100019 + i: synthetic_other(np.random.default_rng(s))))
    return src


def split_groups(sources: list[Source], seed: int, val_frac: float) -> tuple[list[Source], list[Source]]:
    """Hold out ``val_frac`` of the groups of each origin (at least one when it has two or more)."""
    rng = np.random.default_rng(seed + 1)
    held: set[str] = set()
    for origin in sorted({s.origin for s in sources}):
        groups = sorted({s.group for s in sources if s.origin == origin})
        if len(groups) < 2:
            continue
        k = max(1, round(len(groups) * val_frac))
        held.update(groups[i] for i in rng.choice(len(groups), k, replace=False))
    return [s for s in sources if s.group not in held], [s for s in sources if s.group in held]


def split_tune_test(val: list[Source], seed: int) -> tuple[list[Source], list[Source]]:
    """Halve the held-out groups of each origin: ``tune`` sets the gate's refusal thresholds, ``test``
    (never seen by training or tuning) is what ``eval_scenarios/bench_gate.py`` reports on."""
    rng = np.random.default_rng(seed + 2)
    tune: set[str] = set()
    for origin in sorted({s.origin for s in val}):
        groups = sorted({s.group for s in val if s.origin == origin})
        if len(groups) < 2:
            continue  # a single held-out group goes to the test half
        tune.update(groups[i] for i in rng.choice(len(groups), len(groups) // 2, replace=False))
    return [s for s in val if s.group in tune], [s for s in val if s.group not in tune]

