"""Image inputs: formats, DICOM metadata, and every bad-input case gives a clear error (exit 2)."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from tests.conftest import SMEAR
from tools.errors import InvalidInputError


def _testdata(name: str) -> str:
    import pydicom.data

    return pydicom.data.get_testdata_file(name)


def test_jpeg_png_tiff_bmp_roundtrip(tmp_path, data_dir):
    from PIL import Image

    from experts.imaging import load_image

    src = Image.open(data_dir / SMEAR)
    for ext, fmt in (("png", "png"), ("tif", "tiff"), ("bmp", "bmp")):
        p = tmp_path / f"x.{ext}"
        src.save(p)
        img = load_image(p)
        assert img.meta.format == fmt and img.pixels.shape == (480, 640, 3) and img.pixels.dtype == np.uint8
    assert load_image(data_dir / SMEAR).meta.format == "jpeg"


def test_dicom_ct_keeps_spacing_date_and_rescale():
    from experts.imaging import load_image

    img = load_image(_testdata("CT_small.dcm"))
    assert img.meta.format == "dicom" and img.meta.modality_tag == "CT"
    assert img.meta.pixel_spacing_mm == pytest.approx((0.661468, 0.661468))
    assert img.meta.study_date == "2004-01-19"
    assert img.raw is not None and img.raw.dtype == np.float32
    assert img.meta.window is not None and img.pixels.shape[2] == 3


def test_dicom_chest_radiograph_is_windowed():
    from experts.imaging import load_image

    img = load_image(_testdata("RG1_UNCR.dcm"))
    assert img.meta.modality_tag in ("CR", "DX", "RG")
    assert img.pixels.std() > 20, "windowing must spread the grey levels"


def _huge_png(path):
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", 60000, 60000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


@pytest.mark.parametrize("case", ["missing", "not_image", "truncated", "empty", "dicom_no_pixels", "huge"])
def test_bad_inputs_raise_clear_errors(case, tmp_path, data_dir):
    from experts.imaging import load_image

    p = tmp_path / "input.bin"
    if case == "missing":
        p = tmp_path / "nope.png"
    elif case == "not_image":
        p.write_text("patient notes, not an image\n" * 20)
    elif case == "truncated":
        p = tmp_path / "cut.jpg"
        p.write_bytes((data_dir / SMEAR).read_bytes()[:3000])
    elif case == "empty":
        p.write_bytes(b"")
    elif case == "dicom_no_pixels":
        p = _testdata("rtplan.dcm")
    elif case == "huge":
        p = tmp_path / "huge.png"
        _huge_png(p)
    with pytest.raises(InvalidInputError) as info:
        load_image(p)
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300


@pytest.mark.parametrize("case", ["missing", "not_image", "dicom_no_pixels"])
def test_cli_bad_input_exit_code_2_one_line(case, tmp_path, capsys, monkeypatch):
    from ui.cli import main

    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path / "d"))
    p = {"missing": str(tmp_path / "nope.png"), "dicom_no_pixels": _testdata("rtplan.dcm")}.get(case)
    if case == "not_image":
        p = str(tmp_path / "notes.txt")
        (tmp_path / "notes.txt").write_text("hello")
    rc = main(["ask", p, "How many cells?"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("osler:") and "Traceback" not in err[0]


def test_cli_unreachable_planner_exit_code_2(tmp_path, capsys, monkeypatch, data_dir):
    import socket

    from ui.cli import main

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path / "d"))
    rc = main(["ask", str(data_dir / SMEAR), "How many cells?", "--planner", "openai",
               "--base-url", f"http://127.0.0.1:{port}/v1", "--model", "x"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "cannot reach the planner" in err[0]


def test_cli_json_output(tmp_path, capsys, monkeypatch, data_dir):
    import json

    from ui.cli import main

    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path / "d"))
    rc = main(["ask", str(data_dir / SMEAR), "How many white blood cells are in this smear?", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["value"] == 1 and out["artifacts"]["overlays"]
    assert [c["name"] for c in out["tool_calls"]] == ["image_info", "count"]


def test_bad_question_is_invalid_input(assistant, data_dir):
    s = assistant.new_session()
    s.load("current", data_dir / SMEAR)
    with pytest.raises(InvalidInputError):
        assistant.ask(s, "   ")
    with pytest.raises(InvalidInputError):
        assistant.ask(s, "x" * 5000)


def test_cli_json_stdout_is_pure_json_even_when_libraries_print(tmp_path, capsys, monkeypatch, data_dir):
    import json

    from ui.cli import main

    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path / "fresh"))  # first run: ultralytics writes its notices
    frame = data_dir / "endotect_polyps/images/0a508419-ba4f-428c-9a30-43feb39c35c2.jpg"
    rc = main(["ask", str(frame), "How many polyps are there?", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["value"] == 1
