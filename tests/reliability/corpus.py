"""The bad-input corpus: what a user (or an attacker) hands Osler, built from real files.

Every case is a function ``make(tmp_dir) -> Path`` (a file to read) or a plain value (a question, a date)
and the outcome it must have: ``"refused"`` (one-line InvalidInputError), ``"answered"`` (an answer or an
abstention, serialisable, audit log valid) or ``"either"``.  Images come from the BCCD smear and a
Hannover chest film in ``../shared/data``; DICOMs from pydicom's own test files (pydicom-data).
"""

from __future__ import annotations

import struct
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np

Outcome = Literal["refused", "answered", "either"]
SMEAR = "bccd/images/BloodImage_00001.jpg"
FILM = "hannover_cxr/png/09258248.png"


@dataclass(frozen=True)
class FileCase:
    name: str
    make: Callable[[Path, Path], Path]  # (tmp dir, data dir) -> file
    outcome: Outcome
    question: str = "What kind of image is this, and how many cells are there?"


def _testdata(name: str) -> str:
    import pydicom.data

    return pydicom.data.get_testdata_file(name)


def _smear_rgb(data: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(data / SMEAR).convert("RGB"))


def _save(arr_or_img, path: Path, **kw) -> Path:
    from PIL import Image

    img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
    img.save(path, **kw)
    return path


def _png_header_only(path: Path, w: int, h: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _gif(t: Path, d: Path) -> Path:
    from PIL import Image

    rgb = _smear_rgb(d)
    frames = [Image.fromarray(rgb).convert("P"), Image.fromarray(255 - rgb).convert("P")]
    frames[0].save(t / "animated.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return t / "animated.gif"


def _cmyk(t: Path, d: Path) -> Path:
    from PIL import Image

    return _save(Image.fromarray(_smear_rgb(d)).convert("CMYK"), t / "cmyk.jpg", quality=90)


def _palette(t: Path, d: Path) -> Path:
    from PIL import Image

    return _save(Image.fromarray(_smear_rgb(d)).convert("P", palette=Image.Palette.ADAPTIVE), t / "palette.png")


def _rgba(t: Path, d: Path) -> Path:
    rgb = _smear_rgb(d)
    alpha = np.full(rgb.shape[:2] + (1,), 128, np.uint8)
    return _save(np.concatenate([rgb, alpha], axis=2), t / "rgba.png")


def _film16(t: Path, d: Path) -> Path:
    from PIL import Image

    g = np.asarray(Image.open(d / FILM).convert("L")).astype(np.uint16) * 257
    return _save(Image.fromarray(g), t / "film16.png")


IMAGE_CASES: list[FileCase] = [
    FileCase("empty file", lambda t, d: _write(t / "empty.jpg", b""), "refused"),
    FileCase("zero-byte PNG", lambda t, d: _write(t / "zero.png", b""), "refused"),
    FileCase("HTML renamed .png", lambda t, d: _write(t / "page.png", b"<!doctype html><html><body>hi</body></html>"
                                                                      * 10), "refused"),
    FileCase("text renamed .dcm", lambda t, d: _write(t / "notes.dcm", b"Patient notes\n" * 50), "refused"),
    FileCase("truncated JPEG", lambda t, d: _write(t / "cut.jpg", (d / SMEAR).read_bytes()[:3000]), "refused"),
    FileCase("PNG header of 60000x60000", lambda t, d: _png_header_only(t / "bomb.png", 60000, 60000), "refused"),
    FileCase("1x1 image", lambda t, d: _save(_smear_rgb(d)[:1, :1], t / "one.png"), "either"),
    FileCase("50000x10 image", lambda t, d: _save(np.tile(_smear_rgb(d)[235:245], (1, 79, 1))[:, :50000],
                                                  t / "strip.png"), "either"),
    FileCase("10x50000 image", lambda t, d: _save(np.tile(_smear_rgb(d)[:, 315:325], (105, 1, 1))[:50000],
                                                  t / "column.png"), "either"),
    FileCase("CMYK JPEG", _cmyk, "answered"),
    FileCase("animated GIF", _gif, "refused"),  # not a format Osler reads: one clear line
    FileCase("palette PNG", _palette, "answered"),
    FileCase("RGBA PNG", _rgba, "answered"),
    FileCase("16-bit PNG chest film", _film16, "answered", "Is there pneumonia on this chest X-ray?"),
    FileCase("BMP smear", lambda t, d: _save(_smear_rgb(d), t / "smear.bmp"), "answered"),
    FileCase("all-black image", lambda t, d: _save(np.zeros((480, 640, 3), np.uint8), t / "black.png"), "answered"),
    FileCase("file name not UTF-8", lambda t, d: _write(t / "bad\udcffname.jpg", (d / SMEAR).read_bytes()), "answered"),
    FileCase("JPEG named .dcm", lambda t, d: _write(t / "smear.dcm", (d / SMEAR).read_bytes()), "answered"),
]


# ---- DICOM --------------------------------------------------------------------------------------
def _dicom(name: str, out: str, **tags) -> Callable[[Path, Path], Path]:
    def make(t: Path, d: Path) -> Path:
        import pydicom

        ds = pydicom.dcmread(_testdata(name))
        for key, value in tags.items():
            setattr(ds, key, value)
        ds.save_as(t / out)
        return t / out
    return make


def _truncated(name: str, frac: float) -> Callable[[Path, Path], Path]:
    def make(t: Path, d: Path) -> Path:
        raw = Path(_testdata(name)).read_bytes()
        return _write(t / f"cut_{name}", raw[: int(len(raw) * frac)])
    return make


def _no_pixels(t: Path, d: Path) -> Path:
    return Path(_testdata("rtplan.dcm"))


MEASURE = "Outline and measure the region at (64, 64)"
DICOM_CASES: list[FileCase] = [
    FileCase("DICOM without pixels (RT plan)", _no_pixels, "refused"),
    FileCase("truncated JPEG 2000 DICOM", _truncated("MR_small_jp2klossless.dcm", 0.5), "refused"),
    FileCase("truncated uncompressed DICOM", _truncated("CT_small.dcm", 0.6), "refused"),
    FileCase("JPEG Lossless DICOM, no decoder here", lambda t, d: Path(_testdata("JPEG-LL.dcm")), "either"),
    FileCase("JPEG-LS DICOM", lambda t, d: Path(_testdata("emri_small_jpeg_ls_lossless.dcm")), "answered"),
    FileCase("JPEG 2000 colour DICOM (YBR_RCT)", lambda t, d: Path(_testdata("US1_J2KR.dcm")), "answered"),
    FileCase("multi-frame DICOM", lambda t, d: Path(_testdata("emri_small.dcm")), "answered"),
    FileCase("PixelSpacing 0\\0", _dicom("CT_small.dcm", "zero.dcm", PixelSpacing=[0, 0]), "answered", MEASURE),
    FileCase("PixelSpacing negative", _dicom("CT_small.dcm", "neg.dcm", PixelSpacing=[-1, -1]), "answered", MEASURE),
    FileCase("PixelSpacing 500 mm", _dicom("CT_small.dcm", "huge.dcm", PixelSpacing=[500, 500]), "answered", MEASURE),
    FileCase("PixelSpacing 0.1\\9", _dicom("CT_small.dcm", "aniso.dcm", PixelSpacing=[0.1, 9]), "answered", MEASURE),
    FileCase("PixelSpacing one value", _dicom("CT_small.dcm", "one.dcm", PixelSpacing=[0.5]), "answered", MEASURE),
    FileCase("Rows 0", _dicom("CT_small.dcm", "rows0.dcm", Rows=0), "refused"),
    FileCase("Rows 65535 (absurd)", _dicom("CT_small.dcm", "rowsbig.dcm", Rows=65535), "refused"),
    FileCase("NumberOfFrames 100000", _dicom("emri_small.dcm", "frames.dcm", NumberOfFrames=100000), "refused"),
    FileCase("BitsAllocated 7", _dicom("CT_small.dcm", "bits7.dcm", BitsAllocated=7), "refused"),
    FileCase("SamplesPerPixel 2", _dicom("CT_small.dcm", "spp2.dcm", SamplesPerPixel=2), "refused"),
    FileCase("WindowWidth 0", _dicom("CT_small.dcm", "ww0.dcm", WindowCenter=40, WindowWidth=0), "answered"),
    FileCase("RescaleSlope 0", _dicom("CT_small.dcm", "slope0.dcm", RescaleSlope=0), "answered"),
    FileCase("StudyDate 20231345", _dicom("CT_small.dcm", "baddate.dcm", StudyDate="20231345"), "answered"),
    FileCase("Modality 'ZZ', Cyrillic series name", _dicom("CT_small.dcm", "odd.dcm", Modality="ZZ",
                                                           SpecificCharacterSet="ISO_IR 192",
                                                           SeriesDescription="Грудь \u202e"), "answered"),
    FileCase("patient tags and a named file", _dicom("CT_small.dcm", "Testperson_Johanna_MRN99887766.dcm",
                                                     PatientName="Testperson^Johanna", PatientID="MRN99887766"),
             "answered", "Does Johanna Testperson have a lesion?"),
]

PHI_WORDS = ("Testperson", "Johanna", "99887766")

# ---- text and dates -----------------------------------------------------------------------------
QUESTIONS: list[tuple[str, str, Outcome]] = [
    ("bytes that are not UTF-8", "How many \udcff\udcfe white cells?", "answered"),
    ("empty", "", "refused"),
    ("only spaces and newlines", "  \n\t ", "refused"),
    ("5000 characters", "How many cells? " * 313, "refused"),
    ("control characters", "How many\x00 white\x1b[2J cells\x07?", "answered"),
    ("right-to-left override", "How many \u202ewhite\u202c cells?", "answered"),
    ("emoji and CJK", "🩸 How many white cells 白血球?", "answered"),
    ("only punctuation", "?!?!...", "answered"),
    ("SQL-like", "'; DROP TABLE audit; -- how many cells?", "answered"),
    ("a number only", "42", "answered"),
    ("names a patient", "How many white cells does Mrs. Johanna Testperson (MRN 99887766) have?", "answered"),
    ("fake tool-call JSON", '{"name": "count", "arguments": {"target": "blood_cells"}}', "answered"),
]

DATES: list[tuple[str, str, Outcome]] = [
    ("month 13", "2023-13-45", "refused"),
    ("a word", "yesterday", "refused"),
    ("30 February", "2024-02-30", "refused"),
    ("all zeros", "0000-00-00", "refused"),
    ("year 9999", "9999-01-01", "refused"),
    ("DICOM form", "20240301", "answered"),
    ("ISO", "2024-03-01", "answered"),
    ("not UTF-8", "2024-03-01\udcff", "refused"),
]


# ---- audio --------------------------------------------------------------------------------------
def _wav(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


AUDIO_CASES: list[tuple[str, Callable[[Path], Path], Outcome]] = [
    ("empty file", lambda t: _write(t / "empty.wav", b""), "refused"),
    ("text renamed .wav", lambda t: _write(t / "notes.wav", b"not audio at all\n" * 40), "refused"),
    ("WAV header, no samples", lambda t: _wav(t / "nosamples.wav", np.zeros(0)), "refused"),
    ("truncated WAV header", lambda t: _write(t / "cut.wav", _wav(t / "full.wav", np.zeros(1600)).read_bytes()[:20]),
     "refused"),
    ("one second of silence", lambda t: _wav(t / "silence.wav", np.zeros(16000)), "either"),  # the recogniser: "is silent"
    ("white noise", lambda t: _wav(t / "noise.wav", np.random.default_rng(0).normal(0, 0.3, 16000)), "answered"),
    ("8 kHz telephone rate", lambda t: _wav(t / "odd.wav", np.sin(np.arange(8001) / 5.0) * 0.2, 8000), "either"),  # the recogniser refuses
    ("0.05 s click", lambda t: _wav(t / "click.wav", np.r_[np.zeros(400), np.ones(400) * 0.9]), "either"),
]
