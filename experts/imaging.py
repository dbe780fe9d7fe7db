"""Reading study images: PNG, JPEG, TIFF, BMP and DICOM, into one in-memory form.

``StudyImage.pixels`` is always ``uint8``, shape ``(H, W, 3)`` RGB, for display and for experts
that work on photographs; ``StudyImage.raw`` keeps the rescaled DICOM values (float32, (H, W))
when the source was DICOM.  Coordinates everywhere are pixels of this array.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tools.common import ImageMeta
from tools.errors import InvalidInputError

__all__ = ["StudyImage", "load_image", "window_to_uint8"]

log = logging.getLogger(__name__)

_MAGIC = {
    b"\x89PNG": "png",
    b"\xff\xd8\xff": "jpeg",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
    b"BM": "bmp",
}


@dataclass
class StudyImage:
    """One decoded study image and its metadata."""

    pixels: np.ndarray
    meta: ImageMeta
    raw: np.ndarray | None = None
    dicom_tags: dict[str, str] = field(default_factory=dict)
    path: Path | None = None

    @property
    def gray(self) -> np.ndarray:
        """uint8 (H, W) luminance."""
        import cv2

        return cv2.cvtColor(self.pixels, cv2.COLOR_RGB2GRAY)

    @property
    def spacing(self) -> tuple[float, float] | None:
        return self.meta.pixel_spacing_mm


def _sniff(head: bytes) -> str | None:
    if len(head) >= 132 and head[128:132] == b"DICM":  # first: a DICOM preamble may look like TIFF
        return "dicom"
    for magic, fmt in _MAGIC.items():
        if head.startswith(magic):
            return fmt
    # DICOM without preamble (implicit VR little endian): starts with a group 0x0002 or 0x0008 tag
    if len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[2:4] < b"\x20\x00":
        return "dicom"
    return None


def window_to_uint8(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """Linear DICOM windowing (PS3.3 C.11.2.1.2, simplified) to uint8."""
    lo, hi = center - width / 2.0, center + width / 2.0
    out = (np.clip(values, lo, hi) - lo) / max(hi - lo, 1e-6)
    return (out * 255.0 + 0.5).astype(np.uint8)


def _iso_date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return dt.datetime.strptime(str(value).strip()[:8], "%Y%m%d").date().isoformat()
    except ValueError:
        return None


def _load_dicom(path: Path, role: str, max_pixels: int) -> StudyImage:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path), force=True)
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise InvalidInputError(f"{path.name}: not a readable DICOM file ({exc})") from exc
    if "PixelData" not in ds:
        raise InvalidInputError(f"{path.name}: DICOM file has no pixel data (a report or structured document?)")
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    if rows * cols > max_pixels:
        raise InvalidInputError(f"{path.name}: image of {cols}x{rows} pixels exceeds the limit of {max_pixels} pixels")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for bad or unsupported pixel data
        raise InvalidInputError(f"{path.name}: DICOM pixel data cannot be decoded ({exc})") from exc
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    if frames > 1:
        arr = arr[arr.shape[0] // 2]  # middle frame of a multi-frame series
    window = None
    raw: np.ndarray | None = None
    if arr.ndim == 3 and arr.shape[-1] == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, photometric, "RGB")
        rgb = arr.astype(np.uint8) if arr.dtype == np.uint8 else window_to_uint8(arr.astype(np.float32), float(arr.mean()), float(np.ptp(arr) or 1))
    else:
        values = arr.astype(np.float32) * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
        raw = values
        center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
        if center is not None and width is not None:
            c = float(center[0] if isinstance(center, pydicom.multival.MultiValue) else center)
            w = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
        else:
            lo, hi = np.percentile(values, [0.5, 99.5])
            c, w = float((lo + hi) / 2), float(max(hi - lo, 1.0))
        window = (c, w)
        gray = window_to_uint8(values, c, w)
        if photometric == "MONOCHROME1":
            gray = 255 - gray
        rgb = np.repeat(gray[..., None], 3, axis=2)
    spacing = None
    for tag in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(tag)
        if value is not None and len(value) == 2:
            spacing = (float(value[0]), float(value[1]))
            break
    tags = {
        k: str(ds.get(k))
        for k in ("Modality", "BodyPartExamined", "StudyDate", "SeriesDescription", "ViewPosition")
        if ds.get(k) not in (None, "")
    }
    meta = ImageMeta(
        role=role,
        source=path.name,
        format="dicom",
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
        channels=1 if raw is not None else 3,
        pixel_spacing_mm=spacing,
        study_date=_iso_date(ds.get("StudyDate") or ds.get("SeriesDate") or ds.get("AcquisitionDate")),
        modality_tag=tags.get("Modality"),
        body_part=tags.get("BodyPartExamined"),
        window=window,
    )
    return StudyImage(pixels=np.ascontiguousarray(rgb), meta=meta, raw=raw, dicom_tags=tags, path=path)


def _load_raster(path: Path, fmt: str, role: str, max_pixels: int) -> StudyImage:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.width * im.height > max_pixels:
                raise InvalidInputError(
                    f"{path.name}: image of {im.width}x{im.height} pixels exceeds the limit of {max_pixels} pixels"
                )
            im.load()
            channels = len(im.getbands())
            if im.mode in ("I;16", "I;16B", "I", "F"):
                arr = np.asarray(im, dtype=np.float32)
                lo, hi = np.percentile(arr, [0.5, 99.5])
                gray = window_to_uint8(arr, (lo + hi) / 2, max(hi - lo, 1.0))
                rgb = np.repeat(gray[..., None], 3, axis=2)
            else:
                rgb = np.asarray(im.convert("RGB"))
    except InvalidInputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidInputError(f"{path.name}: cannot decode the image ({exc}); is the file complete?") from exc
    meta = ImageMeta(
        role=role,
        source=path.name,
        format=fmt,  # type: ignore[arg-type]
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
        channels=min(max(channels, 1), 4),
    )
    return StudyImage(pixels=np.ascontiguousarray(rgb), meta=meta, path=path)


def load_image(
    path: str | Path,
    role: str = "current",
    *,
    max_pixels: int = 100_000_000,
    max_file_mb: float = 512.0,
    study_date: str | None = None,
) -> StudyImage:
    """Read a study image from disk.

    Raises:
        InvalidInputError: missing file, not an image, truncated, DICOM without pixels, too large.
    """
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max_pixels  # PIL's own bomb guard, per call
    p = Path(path)
    if not p.exists():
        raise InvalidInputError(f"{p}: no such file")
    if not p.is_file():
        raise InvalidInputError(f"{p}: not a file")
    size = p.stat().st_size
    if size == 0:
        raise InvalidInputError(f"{p.name}: file is empty")
    if size > max_file_mb * 1024 * 1024:
        raise InvalidInputError(f"{p.name}: file of {size / 1e6:.0f} MB exceeds the limit of {max_file_mb:.0f} MB")
    with p.open("rb") as fh:
        head = fh.read(132)
    fmt = _sniff(head)
    if fmt is None and p.suffix.lower() in (".dcm", ".dicom"):
        fmt = "dicom"
    if fmt is None:
        raise InvalidInputError(f"{p.name}: not a PNG, JPEG, TIFF, BMP or DICOM image")
    try:
        image = _load_dicom(p, role, max_pixels) if fmt == "dicom" else _load_raster(p, fmt, role, max_pixels)
    except Image.DecompressionBombError as exc:
        raise InvalidInputError(f"{p.name}: image exceeds the limit of {max_pixels} pixels") from exc
    if study_date:
        image.meta = image.meta.model_copy(update={"study_date": _iso_date(study_date.replace("-", "")) or study_date})
    return image
