"""Reading study images: PNG, JPEG, TIFF, BMP and DICOM, into one in-memory form.

``StudyImage.pixels`` is always ``uint8``, shape ``(H, W, 3)`` RGB, for display and for experts
that work on photographs; ``StudyImage.raw`` keeps the rescaled DICOM values (float32, (H, W))
when the source was DICOM.  Coordinates everywhere are pixels of this array.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tools.common import ImageMeta
from tools.errors import InvalidInputError
from tools.inputs import clean_text, parse_study_date

from .intensity import default_window, nominal_range
from .jpeg_quality import jpeg_quality

__all__ = ["StudyImage", "load_image", "window_to_uint8", "display_name", "plausible_spacing", "jpeg_quality"]

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
    patient_key: str | None = None  # a hash of DICOM (IssuerOfPatientID, PatientID): is a prior this patient's?
    video_key: str | None = None  # the live video this frame was taken from (two frames of it may be identical)

    @classmethod
    def from_pixels(cls, rgb: np.ndarray, source: str = "pixels.png", role: str = "current") -> "StudyImage":
        """An RGB uint8 ``(H, W, 3)`` array as a study image read from a PNG named ``source`` (a video frame, a
        shrunk or cropped copy in a benchmark)."""
        from tools.common import ImageMeta

        h, w = rgb.shape[:2]
        meta = ImageMeta(role=role, source=source, format="png", width=w, height=h, channels=3)  # type: ignore[arg-type]
        return cls(pixels=np.ascontiguousarray(rgb), meta=meta)

    @property
    def gray(self) -> np.ndarray:
        """uint8 (H, W) luminance."""
        import cv2

        return cv2.cvtColor(self.pixels, cv2.COLOR_RGB2GRAY)

    @property
    def colourless(self) -> bool:
        """Whether the image carries no colour: one channel, or three that agree (a grey photograph of a stained
        smear, a black-and-white endoscope recording).  Read on every 4th pixel: mean |R-G| + |G-B| under 8 grey levels
        (measured: grey films 0, grey frames through MJPEG 3.5; the dimmest BCCD smear 19, EndoTect frames >= 36)."""
        if self.meta.channels == 1 or self.pixels.ndim == 2:
            return True
        sub = self.pixels[::4, ::4, :3].astype(np.int16)
        chroma = np.abs(sub[..., 0] - sub[..., 1]) + np.abs(sub[..., 1] - sub[..., 2])
        return float(chroma.mean()) < 8.0

    @property
    def spacing(self) -> tuple[float, float] | None:
        return self.meta.pixel_spacing_mm


def display_name(path: str | Path) -> str:
    """A file name safe to show and log: valid Unicode (bytes that are not UTF-8 become U+FFFD)."""
    return clean_text(Path(path).name, single_line=True, max_chars=200)


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


MAX_MESSAGE_CHARS = 399  # one line a terminal can still show
SPACING_RANGE_MM = (0.01, 10.0)  # plausible detector/pixel spacing of radiographs, CT, MR, US, endoscopy
SPACING_MAX_ANISOTROPY = 3.0  # row/column spacing ratio beyond which the tag is called inconsistent


def plausible_spacing(values: object, *, modality: str | None = None) -> tuple[tuple[float, float] | None, str | None]:
    """A DICOM (row, column) pixel spacing in mm -> (spacing, None) when plausible, else (None, why).

    Zero, negative, non-finite, outside 0.01-10 mm (slide microscopy 'SM': 0.00001-10 mm) or with a
    row/column ratio above 3 is refused: measurements then fall back to pixels and say why.
    """
    try:
        row, col = (float(v) for v in values)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return None, f"PixelSpacing {values!r} is not two numbers"
    shown = f"{row:g}\\{col:g}"
    lo, hi = (1e-5, SPACING_RANGE_MM[1]) if modality == "SM" else SPACING_RANGE_MM
    if not (np.isfinite(row) and np.isfinite(col)) or row <= 0 or col <= 0:
        return None, f"PixelSpacing {shown} mm is zero, negative or not a number"
    if not (lo <= row <= hi and lo <= col <= hi):
        return None, f"PixelSpacing {shown} mm lies outside the plausible {lo:g}-{hi:g} mm"
    if max(row, col) / min(row, col) > SPACING_MAX_ANISOTROPY:
        return None, f"PixelSpacing {shown} mm is inconsistent (row and column spacing differ {max(row, col) / min(row, col):.0f}-fold)"
    return (row, col), None


def _dicom_spacing(ds: object, modality: str | None) -> tuple[tuple[float, float] | None, str | None]:
    """The first plausible of PixelSpacing / ImagerPixelSpacing, or (None, caveat) when a tag was refused."""
    notes = []
    for tag in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(tag)  # type: ignore[attr-defined]
        if value is None or value == "":
            continue
        if not isinstance(value, (list, tuple)) and not hasattr(value, "__len__"):
            value = [value]
        if len(value) != 2:
            notes.append(f"{tag} has {len(value)} values, not 2")
            continue
        spacing, why = plausible_spacing(value, modality=modality)
        if spacing is not None:
            return spacing, None
        notes.append(why.replace("PixelSpacing", tag, 1) if why else tag)
    if notes:
        return None, "; ".join(notes) + ": ignored, sizes are in pixels"
    return None, None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def _decode_problem(ds: object, exc: BaseException) -> str:
    """One line naming why pydicom could not decode the pixel data."""
    text = str(exc)
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    ts_name = getattr(ts, "name", None) or str(ts or "unknown transfer syntax")
    if "missing dependencies" in text or "plugin" in text.lower() and "missing" in text.lower():
        needs = [line.strip().split(" - requires ", 1)[-1] for line in text.splitlines()[1:] if " - requires " in line]
        hint = f" (any one of: {'; '.join(needs)})" if needs else ""
        return (f"its pixel data is compressed as {ts_name} and no decoder for that is installed here{hint}; "
                f"install one, or convert the file to uncompressed DICOM or PNG")
    if isinstance(exc, (EOFError, ValueError, OSError)) and any(
            w in text.lower() for w in ("truncat", "end of", "too short", "expected", "insufficient", "not enough",
                                        "buffer", "premature", "incomplete")):
        return f"its pixel data ({ts_name}) is truncated or corrupt ({_first_line(exc).split(' - ')[0]}); is the file complete?"
    return f"its pixel data ({ts_name}) cannot be decoded ({_first_line(exc)}); is the file complete?"


def _dicom_int(ds: object, tag: str, default: int) -> int:
    value = ds.get(tag, default)  # type: ignore[attr-defined]
    try:
        return int(value if value not in (None, "") else default)
    except (TypeError, ValueError):
        raise InvalidInputError(f"DICOM tag {tag} = {str(value)[:40]!r} is not a whole number") from None


def _load_dicom(path: Path, role: str, max_pixels: int) -> StudyImage:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import pixel_array

    name = display_name(path)
    try:
        ds = pydicom.dcmread(str(path), force=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError, struct.error, IndexError,
            OverflowError, NotImplementedError, AttributeError) as exc:  # what pydicom raises on damaged files
        raise InvalidInputError(f"{name}: not a readable DICOM file ({type(exc).__name__}: {_first_line(exc)})") from exc
    if "PixelData" not in ds:
        # a truncated file: pydicom may give up on the whole dataset; its header alone tells what it was
        try:
            header = pydicom.dcmread(str(path), force=True, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - the first read already succeeded; this is only a diagnosis
            header = ds
        if len(header) > len(ds):
            ds = header
    try:
        rows, cols = _dicom_int(ds, "Rows", 0), _dicom_int(ds, "Columns", 0)
        frames = _dicom_int(ds, "NumberOfFrames", 1) or 1
        samples = _dicom_int(ds, "SamplesPerPixel", 1) or 1
    except InvalidInputError as exc:
        raise InvalidInputError(f"{name}: {exc}") from None
    if "PixelData" not in ds:
        if rows and cols:  # an image header without its pixels: the reader stopped early
            raise InvalidInputError(f"{name}: DICOM file is truncated: the {cols}x{rows} image header is there but its pixel "
                                    f"data is missing or incomplete; is the copy complete?")
        raise InvalidInputError(f"{name}: DICOM file has no pixel data (a report or structured document?)")
    if rows <= 0 or cols <= 0 or frames <= 0 or samples not in (1, 3, 4):
        raise InvalidInputError(f"{name}: DICOM image tags are not plausible (Rows {rows}, Columns {cols}, "
                                f"NumberOfFrames {frames}, SamplesPerPixel {samples})")
    values = frames * rows * cols * samples
    if rows * cols > max_pixels or values > 3 * max_pixels:
        raise InvalidInputError(f"{name}: DICOM of {frames} frame(s) x {rows} x {cols} x {samples} sample(s) "
                                f"({values / 1e6:.0f} M values) exceeds the limit of {max_pixels} pixels")
    try:
        # multi-frame: decode only the middle frame (a series is shown by its middle slice)
        arr = pixel_array(ds, index=frames // 2) if frames > 1 else ds.pixel_array
    except Exception as exc:  # pydicom raises many types for bad or unsupported pixel data
        raise InvalidInputError(f"{name}: {_decode_problem(ds, exc)}") from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    window = None
    raw: np.ndarray | None = None
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        # pydicom already converts YBR_* to RGB (pixel_array(as_rgb=True)); converting again shifts the colours
        arr = arr[..., :3]
        rgb = arr.astype(np.uint8) if arr.dtype == np.uint8 else window_to_uint8(arr.astype(np.float32), float(arr.mean()), float(np.ptp(arr) or 1))
    elif arr.ndim == 2:
        values_f = arr.astype(np.float32) * _dicom_float(ds, "RescaleSlope", 1.0) + _dicom_float(ds, "RescaleIntercept", 0.0)
        raw = values_f
        c, w = _dicom_window(ds, values_f)
        window = (c, w)
        gray = window_to_uint8(values_f, c, w)
        if photometric == "MONOCHROME1":
            gray = 255 - gray
        rgb = np.repeat(gray[..., None], 3, axis=2)
    else:
        raise InvalidInputError(f"{name}: DICOM pixel array of shape {arr.shape} is not an image this reader shows")
    tags = {
        k: clean_text(ds.get(k), single_line=True)[:64]
        for k in ("Modality", "BodyPartExamined", "StudyDate", "SeriesDescription", "ViewPosition")
        if ds.get(k) not in (None, "")
    }
    spacing, spacing_note = _dicom_spacing(ds, tags.get("Modality"))
    if spacing_note:
        log.info("%s: %s", role, spacing_note)
    meta = ImageMeta(
        role=role,
        source=name,
        format="dicom",
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
        channels=1 if raw is not None else 3,
        pixel_spacing_mm=spacing,
        spacing_note=spacing_note,
        study_date=_iso_date(ds.get("StudyDate") or ds.get("SeriesDate") or ds.get("AcquisitionDate")),
        modality_tag=tags.get("Modality"),
        body_part=tags.get("BodyPartExamined"),
        window=window,
    )
    return StudyImage(pixels=np.ascontiguousarray(rgb), meta=meta, raw=raw, dicom_tags=tags, path=path,
                      patient_key=_patient_key(ds))


def _patient_key(ds: Any) -> str | None:
    """A hash of the patient's identifier in a DICOM header (never the identifier itself), or None."""
    pid = clean_text(ds.get("PatientID"), single_line=True).strip()
    if not pid:
        return None
    issuer = clean_text(ds.get("IssuerOfPatientID"), single_line=True).strip()
    return hashlib.sha256(f"{issuer}\x00{pid}".encode()).hexdigest()[:16]


def _dicom_float(ds: object, tag: str, default: float) -> float:
    value = ds.get(tag)  # type: ignore[attr-defined]
    try:
        out = float(value) if value not in (None, "") else default
    except (TypeError, ValueError):
        return default
    return out if np.isfinite(out) and (tag != "RescaleSlope" or out != 0) else default


def _dicom_window(ds: object, values: np.ndarray) -> tuple[float, float]:
    """(center, width) from WindowCenter/WindowWidth when usable, else ``experts.intensity.default_window``."""
    import pydicom

    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")  # type: ignore[attr-defined]
    try:
        c = float(center[0] if isinstance(center, pydicom.multival.MultiValue) else center)
        w = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
        if np.isfinite(c) and np.isfinite(w) and w > 0:
            return c, w
    except (TypeError, ValueError, IndexError):
        pass
    return default_window(values, _dicom_nominal_range(ds))


def _dicom_nominal_range(ds: object) -> tuple[float, float] | None:
    """The stored-value range (BitsStored, PixelRepresentation) in rescaled units, for the default window."""
    bits = _dicom_float(ds, "BitsStored", 0.0)
    if not 1 <= bits <= 32:
        return None
    lo, hi = nominal_range(np.zeros(1), bits=int(bits), signed=_dicom_float(ds, "PixelRepresentation", 0.0) == 1)
    slope, icpt = _dicom_float(ds, "RescaleSlope", 1.0), _dicom_float(ds, "RescaleIntercept", 0.0)
    a, b = lo * slope + icpt, hi * slope + icpt
    return min(a, b), max(a, b)


def _pil_open(path: Path):  # noqa: ANN202 - a PIL image
    """PIL's own ``Image.open``.  Once ultralytics is imported, ``Image.open`` is its wrapper, which answers a
    file PIL cannot identify by trying to install pi-heif and raising ModuleNotFoundError."""
    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    opener = getattr(patches, "_image_open", None) or Image.open
    return opener(path)


def _load_raster(path: Path, fmt: str, role: str, max_pixels: int) -> StudyImage:
    from PIL import UnidentifiedImageError

    name = display_name(path)
    try:
        with _pil_open(path) as im:
            if im.width * im.height > max_pixels:
                raise InvalidInputError(
                    f"{name}: image of {im.width}x{im.height} pixels exceeds the limit of {max_pixels} pixels"
                )
            pages = int(getattr(im, "n_frames", 1) or 1)
            if pages > 1 and fmt != "jpeg":  # the pages may be different films: the first alone would be a guess
                raise InvalidInputError(f"{name}: a {fmt.upper()} of {pages} images (pages); Osler reads one image "
                                        f"a file: save the one you mean on its own")
            im.load()
            quality = jpeg_quality(im) if fmt == "jpeg" else None
            channels = len(im.getbands())
            if im.mode in ("L", "I;16", "I;16B", "I;16L", "I", "F"):  # one grey channel of any depth
                arr = np.asarray(im)
                gray = window_to_uint8(arr.astype(np.float32), *default_window(arr))
                rgb = np.repeat(gray[..., None], 3, axis=2)
            else:
                rgb = np.asarray(im.convert("RGB"))
    except InvalidInputError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, ImportError) as exc:
        raise InvalidInputError(f"{name}: cannot decode the image ({_first_line(exc)}); is the file complete?") from exc
    meta = ImageMeta(
        role=role,
        source=name,
        format=fmt,  # type: ignore[arg-type]
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
        channels=min(max(channels, 1), 4),
        jpeg_quality=quality,
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

    ``study_date`` (typed by the user; DICOM dates come from the file) must be a real date
    (:func:`tools.inputs.parse_study_date`).  ``meta.source`` is the file name made valid Unicode.

    Raises:
        InvalidInputError: missing file, not an image, truncated, DICOM without pixels, too large,
        an impossible study date.  Always one line.
    """
    from PIL import Image

    date = parse_study_date(study_date) if study_date else None  # refuse a bad date before reading anything
    Image.MAX_IMAGE_PIXELS = max_pixels  # PIL's own bomb guard, per call
    p = Path(path)
    name = display_name(p)
    if not p.exists():
        raise InvalidInputError(f"{clean_text(str(p), single_line=True)}: no such file")
    if not p.is_file():
        raise InvalidInputError(f"{clean_text(str(p), single_line=True)}: not a file")
    size = p.stat().st_size
    if size == 0:
        raise InvalidInputError(f"{name}: file is empty")
    if size > max_file_mb * 1024 * 1024:
        raise InvalidInputError(f"{name}: file of {size / 1e6:.0f} MB exceeds the limit of {max_file_mb:.0f} MB")
    with p.open("rb") as fh:
        head = fh.read(132)
    fmt = _sniff(head)
    if fmt is None and p.suffix.lower() in (".dcm", ".dicom"):
        fmt = "dicom"
    if fmt is None:
        raise InvalidInputError(f"{name}: not a PNG, JPEG, TIFF, BMP or DICOM image")
    try:
        image = _load_dicom(p, role, max_pixels) if fmt == "dicom" else _load_raster(p, fmt, role, max_pixels)
    except Image.DecompressionBombError as exc:
        raise InvalidInputError(f"{name}: image exceeds the limit of {max_pixels} pixels") from exc
    except InvalidInputError as exc:  # messages quote values read from the file: one clean line
        msg = clean_text(str(exc), single_line=True)
        if msg == str(exc) and len(msg) <= MAX_MESSAGE_CHARS:
            raise
        raise InvalidInputError(msg[:MAX_MESSAGE_CHARS]) from exc
    except Exception as exc:
        if fmt != "dicom":
            raise
        # pydicom parses elements lazily: a damaged element can raise any type when it is first read
        log.debug("damaged DICOM %s", name, exc_info=True)
        raise InvalidInputError(clean_text(f"{name}: DICOM file is damaged ({type(exc).__name__}: "
                                           f"{_first_line(exc)})", single_line=True)[:MAX_MESSAGE_CHARS]) from exc
    if date:
        image.meta = image.meta.model_copy(update={"study_date": date})
    return image
