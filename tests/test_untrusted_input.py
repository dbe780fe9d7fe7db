"""Issue 15, "Input that breaks things": text that is not UTF-8, impossible dates, DICOM pixel data that
cannot be read, implausible pixel spacing.  Each case is a real file (pydicom's test DICOMs, the BCCD
smear) and failed before the fix."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tests.conftest import SMEAR
from tools.errors import InvalidInputError

BAD_QUESTION = "How many \udcff\udcfe white cells?"  # what Python makes of $'How many \xff\xfe white cells?' in argv


def _testdata(name: str) -> str:
    import pydicom.data

    return pydicom.data.get_testdata_file(name)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and len(msg) < 400, msg
    return msg


# ---- text ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("raw,expected", [
    ("How many \udcff\udcfe white cells?", "How many \ufffd\ufffd white cells?"),
    (b"How many \xff\xfe white cells?", "How many \ufffd\ufffd white cells?"),
    ("line\x00one\x1b[31m", "lineone[31m"),
    ("Cafe\u0301", "Caf\u00e9"),  # NFC
    (None, ""),
])
def test_clean_text(raw, expected):
    from tools.inputs import clean_text

    out = clean_text(raw)
    assert out == expected
    out.encode("utf-8")  # never raises


def test_cli_non_utf8_question_and_file_name(tmp_path, capsys, monkeypatch, data_dir):
    """Before: UnicodeEncodeError in the audit log (text) / PydanticSerializationError (--json)."""
    from ui.cli import main

    image = tmp_path / "bad\udcffname.jpg"  # the bytes b'bad\xffname.jpg' on disk
    shutil.copyfile(data_dir / SMEAR, image)
    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path / "d"))
    rc = main(["ask", str(image), BAD_QUESTION, "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    out = json.loads(captured.out)
    assert out["question"] == "How many \ufffd\ufffd white cells?"
    assert [c["name"] for c in out["tool_calls"]][:1] == ["image_info"]
    audit = (tmp_path / "d" / "audit.jsonl").read_text(encoding="utf-8")  # strict UTF-8: raises on bad bytes
    events = [json.loads(line)["event"] for line in audit.splitlines()]
    assert events[0] == "image" and "question" in events and events[-1] == "answer"
    rc = main(["ask", str(image), BAD_QUESTION])  # the text renderer too
    assert rc == 0 and "Answer:" in capsys.readouterr().out


# ---- dates --------------------------------------------------------------------------------------
@pytest.mark.parametrize("value,iso", [("2024-03-01", "2024-03-01"), ("20240301", "2024-03-01"),
                                       ("2024/3/1", "2024-03-01"), ("", None), (None, None)])
def test_parse_study_date_accepts(value, iso):
    from tools.inputs import parse_study_date

    assert parse_study_date(value) == iso


@pytest.mark.parametrize("value", ["2023-13-45", "yesterday", "2023-02-29", "1800-01-01", "9999-01-01",
                                   "2024-03-01; DROP TABLE", "\udcff"])
def test_parse_study_date_refuses(value):
    from tools.inputs import parse_study_date

    with pytest.raises(InvalidInputError) as info:
        parse_study_date(value, what="--date")
    assert _one_line(info).startswith("--date ")


@pytest.mark.parametrize("flag,value", [("--date", "2023-13-45"), ("--prior-date", "yesterday")])
def test_cli_refuses_impossible_dates(flag, value, tmp_path, capsys, monkeypatch, data_dir):
    from ui.cli import main

    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path / "d"))
    args = ["ask", str(data_dir / SMEAR), "How many cells?", flag, value]
    if flag == "--prior-date":
        args += ["--prior", str(data_dir / "bccd/images/BloodImage_00000.jpg")]
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"osler: {flag} '{value}' is not a valid date")
    assert not (tmp_path / "d" / "audit.jsonl").exists()  # refused before anything was read or logged


def test_load_image_refuses_a_bad_date_and_normalises_a_good_one(data_dir):
    from experts.imaging import load_image

    with pytest.raises(InvalidInputError):
        load_image(data_dir / SMEAR, study_date="2023-13-45")
    assert load_image(data_dir / SMEAR, study_date="20230105").meta.study_date == "2023-01-05"


# ---- DICOM pixel data ---------------------------------------------------------------------------
def test_multiframe_size_counts_every_frame():
    """emri_small.dcm: 10 frames of 64x64.  Before: only Rows x Columns (4096) was checked."""
    from experts.imaging import load_image

    path = _testdata("emri_small.dcm")
    assert load_image(path).pixels.shape == (64, 64, 3)
    with pytest.raises(InvalidInputError) as info:
        load_image(path, max_pixels=64 * 64 * 3)  # 10 x 64 x 64 x 1 = 40960 values > 3 x 12288
    assert "10 frame(s)" in _one_line(info)


def test_jpeg_ls_decodes_and_a_missing_decoder_is_one_line(monkeypatch):
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLSLossless

    from experts.imaging import load_image

    path = _testdata("emri_small_jpeg_ls_lossless.dcm")
    reference = load_image(_testdata("emri_small.dcm"))  # the same series, uncompressed
    decoded = load_image(path)
    assert np.array_equal(decoded.raw, reference.raw)
    monkeypatch.setattr(get_decoder(JPEGLSLossless), "_available", {})  # as on a machine without pyjpegls
    with pytest.raises(InvalidInputError) as info:
        load_image(path)
    msg = _one_line(info)
    assert "JPEG-LS" in msg and "no decoder" in msg and "pylibjpeg" in msg


def test_lossless_jpeg_without_a_decoder_names_it():
    """JPEG-LL.dcm (JPEG Lossless process 14): no decoder is installed here at all."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import JPEGLosslessSV1

    from experts.imaging import load_image

    if get_decoder(JPEGLosslessSV1).is_available:
        pytest.skip("a JPEG Lossless decoder is installed here")
    with pytest.raises(InvalidInputError) as info:
        load_image(_testdata("JPEG-LL.dcm"))
    assert "no decoder" in _one_line(info)


@pytest.mark.parametrize("name", ["MR_small_jp2klossless.dcm", "US1_J2KR.dcm", "emri_small.dcm"])
def test_truncated_dicom_says_truncated(name, tmp_path):
    """Before: a truncated JPEG 2000 file was reported as 'has no pixel data'."""
    from experts.imaging import load_image

    raw = open(_testdata(name), "rb").read()
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InvalidInputError) as info:
        load_image(cut)
    msg = _one_line(info)
    assert "truncated" in msg and "no pixel data" not in msg


def test_ybr_colour_is_not_converted_twice():
    """pydicom returns RGB for YBR_FULL already; the RGB and YBR copies of one image must agree."""
    from experts.imaging import load_image

    rgb = load_image(_testdata("SC_rgb.dcm")).pixels.astype(int)
    ybr = load_image(_testdata("SC_ybr_full_uncompressed.dcm")).pixels.astype(int)
    assert np.abs(rgb - ybr).max() <= 8 and np.abs(rgb - ybr).mean() < 1  # converted twice: off by ~100


# ---- pixel spacing ------------------------------------------------------------------------------
def _ct_with_spacing(tmp_path, spacing, name="spacing.dcm"):
    import pydicom

    ds = pydicom.dcmread(_testdata("CT_small.dcm"))
    ds.PixelSpacing = spacing
    path = tmp_path / name
    ds.save_as(path)
    return path


@pytest.mark.parametrize("spacing,why", [([0, 0], "zero"), ([-0.5, -0.5], "negative"), ([50, 50], "outside"),
                                         ([0.001, 0.001], "outside"), ([0.5, 5.0], "inconsistent")])
def test_implausible_spacing_is_ignored_with_a_reason(spacing, why, tmp_path):
    from experts.imaging import load_image

    meta = load_image(_ct_with_spacing(tmp_path, spacing)).meta
    assert meta.pixel_spacing_mm is None and why in meta.spacing_note


def test_plausible_spacing_is_kept(tmp_path):
    from experts.imaging import load_image

    meta = load_image(_ct_with_spacing(tmp_path, [0.7, 0.7])).meta
    assert meta.pixel_spacing_mm == (0.7, 0.7) and meta.spacing_note is None


def test_zero_spacing_measures_in_pixels_with_a_caveat(tmp_path, assistant):
    """Before: 'area 0 mm²'."""
    session = assistant.new_session()
    session.load("current", _ct_with_spacing(tmp_path, [0, 0]))
    r = assistant.ask(session, "Outline and measure the region at (64, 64)")
    measures = [c for c in r.tool_calls if c.name == "measure" and c.ok]
    if not measures:
        pytest.skip(f"no region was segmented here ({r.answer[:120]})")
    assert measures[0].result["area_mm2"] is None and measures[0].result["area_px"] > 0
    assert r.unit in ("px", None) and "mm²" not in r.answer
    assert "PixelSpacing 0\\0" in (r.uncertainty or "") + r.answer, (r.answer, r.uncertainty)


def test_unreadable_image_is_refused_even_after_ultralytics_patched_pil(tmp_path):
    """Found by the DICOM fuzzer: once ultralytics is imported, PIL's Image.open is its wrapper, which met a
    file PIL cannot identify with ModuleNotFoundError (pi_heif) instead of a clear refusal."""
    pytest.importorskip("ultralytics")
    import ultralytics.utils.patches  # noqa: F401 - applies the patch, as loading a YOLO model does

    from experts.imaging import load_image

    path = tmp_path / "corrupt.dcm"
    path.write_bytes(b"II*\x00")  # TIFF magic, nothing else
    with pytest.raises(InvalidInputError) as info:
        load_image(path)
    assert "cannot decode" in _one_line(info)


@pytest.mark.parametrize("edit", ["cut_in_an_element", "newline_in_transfer_syntax"])
def test_damaged_dicom_found_by_the_fuzzer_is_one_line(edit, tmp_path):
    """Found by the DICOM fuzzer: a file cut inside an element (struct.error from pydicom) and a transfer
    syntax UID holding a newline (a two-line message)."""
    from experts.imaging import load_image

    raw = bytearray(open(_testdata("CT_small.dcm"), "rb").read())
    if edit == "cut_in_an_element":
        raw[0:1] = b"\x00"
        raw = raw[:990]
    else:
        at = raw.index(b"1.2.840.10008.1.2.1")
        raw[at + 12:at + 14] = b"\n\x00"
    path = tmp_path / "damaged.dcm"
    path.write_bytes(bytes(raw))
    with pytest.raises(InvalidInputError) as info:
        load_image(path)
    assert _one_line(info).startswith("damaged.dcm: ")


def test_an_image_without_colour_is_not_counted_as_empty(assistant, data_dir, tmp_path):
    """A grey copy of a real smear had been answered 'I count 0 white blood cells' (the detector and the
    classical cross-check read the stain colours); a grey endoscopy frame likewise. Both are now refused at the
    tool boundary (every planner), and the colour originals still counted."""
    import cv2

    from experts.imaging import load_image

    for src, question, target in (("bccd/images/BloodImage_00010.jpg", "How many white cells?", "blood cells"),
                                  ("endotect_polyps/images/003ab8b5-cf6d-442a-849d-80ddf0d1edaf.jpg",
                                   "How many polyps?", "polyp")):
        colour = cv2.imread(str(data_dir / src))
        grey_png, grey_jpg = tmp_path / "grey.png", tmp_path / "grey.jpg"
        cv2.imwrite(str(grey_png), cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY))
        cv2.imwrite(str(grey_jpg), cv2.cvtColor(cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR))
        assert not load_image(data_dir / src).colourless
        for grey in (grey_png, grey_jpg):  # one channel, and three equal ones
            assert load_image(grey).colourless
            s = assistant.new_session()
            s.load("current", grey)
            r = assistant.ask(s, question)
            assert r.abstained and "needs a colour image" in r.answer and r.value is None, r.answer
            assert not any(c.ok and c.name in ("count", "detect") for c in r.tool_calls)
        s = assistant.new_session()
        s.load("current", data_dir / src)
        r = assistant.ask(s, question)
        assert not r.abstained and r.value is not None
