"""Export round trips: DICOM SEG/SR/SC written with highdicom and read back, PS3.15 de-identification,
the session report (Markdown + PDF rendered with poppler), and ``osler ask --out`` / ``osler report``.

The DICOM input is the real chest film of pydicom-data (``RG1_UNCR.dcm``, 1955x1841 CR, MIT): the fast
tests use it strided 4x (489x461, its patient and study modules unchanged, a pixel spacing of 0.6 mm
stated for the test so the millimetre path runs; the original's PixelSpacing is 0/0, which Osler
refuses); the slow test runs the full-size film end to end.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
hd = pytest.importorskip("highdicom")

QUESTION = "Outline and measure the lungs"


def _rg1() -> Path:
    import pydicom.data

    try:
        path = pydicom.data.get_testdata_file("RG1_UNCR.dcm", download=False)
    except TypeError:  # older pydicom: no download switch
        path = pydicom.data.get_testdata_file("RG1_UNCR.dcm")
    if not path:
        pytest.skip("pydicom-data's RG1_UNCR.dcm is not installed")
    return Path(path)


def _small_film(path: Path) -> Path:
    from pydicom.uid import generate_uid

    ds = pydicom.dcmread(_rg1())
    arr = np.ascontiguousarray(ds.pixel_array[::4, ::4])
    ds.PixelData, (ds.Rows, ds.Columns) = arr.tobytes(), arr.shape
    ds.PixelSpacing = [0.6, 0.6]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def _errors(path: Path) -> list[str]:
    """dciodvfy's error lines for a file (the test is skipped without dicom3tools)."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed")
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture(scope="module")
def case(tmp_path_factory, shared_pool, one_torch_thread):
    """One real ask on the film, exported plainly and de-identified (with the overlay as SC)."""
    from agent.export.files import export_session
    from agent.runner import Assistant
    from tools.settings import OslerSettings

    tmp = tmp_path_factory.mktemp("export")
    src = _small_film(tmp / "film.dcm")
    assistant = Assistant(OslerSettings(data_dir=tmp / "osler"), pool=shared_pool)
    session = assistant.new_session()
    session.load("current", src)
    result = assistant.ask(session, QUESTION)
    plain = export_session(session, tmp / "plain", secondary_capture=True)
    deid = export_session(session, tmp / "deid", deidentify=True, secondary_capture=True)
    return {"src": src, "session": session, "result": result, "plain": plain, "deid": deid}


def _typed(result, kind):
    from agent.export.results import typed_results

    return [r for r in typed_results(result.tool_calls).values() if isinstance(r, kind)]


def test_the_ask_measured_a_lung_mask_in_mm(case):
    from tools.segmentation import MeasurementResult

    r = case["result"]
    assert not r.abstained and r.unit in ("mm²", "mm2", "mm") and r.value is not None, r.answer
    assert _typed(r, MeasurementResult), [c.name for c in r.tool_calls]


def test_seg_frame_equals_the_mask_and_references_the_source(case):
    from tools.segmentation import SegmentationResult

    src = pydicom.dcmread(case["src"])
    seg = pydicom.dcmread(case["plain"].out_dir / "segmentation.dcm")
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.Modality == "SEG"
    assert seg.SegmentationType == "BINARY"
    segs = _typed(case["result"], SegmentationResult)
    regions = [g for s in segs for g in s.regions]
    unions = {s.union_mask.id for s in segs if s.union_mask is not None and len(s.regions) > 1}
    # every region (the right and the left lung), plus the union of both when it was measured
    assert len(regions) >= 1 and len(regions) <= len(seg.SegmentSequence) <= len(regions) + len(unions)
    frames = seg.pixel_array.reshape(len(seg.SegmentSequence), seg.Rows, seg.Columns)
    for item, frame in zip(seg.SegmentSequence, frames):
        mask_id = item.TrackingID.split()[1]
        assert np.array_equal(frame.astype(bool), case["session"].mask(mask_id)), mask_id
        assert item.SegmentedPropertyTypeCodeSequence[0].CodeValue == "39607008"  # SNOMED CT lung
        lung = next(s for s in segs if any(g.mask.id == mask_id for g in s.regions) or mask_id in unions)
        algo = item.SegmentationAlgorithmIdentificationSequence[0]
        assert item.SegmentAlgorithmName == algo.AlgorithmName == lung.provenance.expert
        assert algo.AlgorithmVersion == lung.provenance.model and lung.provenance.weights_sha256 in algo.AlgorithmParameters
    refs = {i.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert refs == {src.SOPInstanceUID}
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "StudyInstanceUID", "AccessionNumber"):
        assert getattr(seg, kw) == getattr(src, kw), kw  # copied, never invented
    assert seg.SOPInstanceUID != src.SOPInstanceUID and seg.SeriesInstanceUID != src.SeriesInstanceUID


def test_sr_measurements_equal_the_answer_with_ucum_units_and_provenance(case):
    from agent.export.dicom_content import UCUM
    from tools.segmentation import MeasurementResult

    r = case["result"]
    m = _typed(r, MeasurementResult)[0]
    eid = next(c.id for c in r.tool_calls if c.name == "measure" and c.ok)
    src = pydicom.dcmread(case["src"])
    seg = pydicom.dcmread(case["plain"].out_dir / "segmentation.dcm")
    sr = hd.sr.srread(case["plain"].out_dir / "measurements-sr.dcm")
    assert sr.CompletionFlag == "PARTIAL" and sr.VerificationFlag == "UNVERIFIED"
    groups = sr.content.get_planar_roi_measurement_groups()
    group = next(g for g in groups if str(g.tracking_identifier).startswith(eid))
    got = {x.name.meaning: (x.value, x.unit.value) for x in group.get_measurements()}
    assert got["Area"] == (pytest.approx(m.area_mm2, rel=1e-6), "mm2")
    assert got["Long axis"] == (pytest.approx(m.long_diameter_mm, rel=1e-6), "mm")
    assert got["Short axis"] == (pytest.approx(m.short_diameter_mm, rel=1e-6), "mm")
    # the answer's own number and unit are among them
    assert (pytest.approx(r.value, abs=0.05 + 1e-9), UCUM[r.unit][0]) in list(got.values())  # the answer: 0.1 mm²
    def texts(meaning):  # the group's own TEXT items (TID 4019 algorithm identification)
        return [i.TextValue for i in group[0].ContentSequence
                if i.ValueType == "TEXT" and i.ConceptNameCodeSequence[0].CodeMeaning == meaning]

    assert texts("Algorithm Name") == [m.provenance.expert]
    assert texts("Algorithm Version") == [m.provenance.model]
    params = texts("Algorithm Parameters")
    assert f"evidence={eid}" in params and f"backend={m.provenance.backend}" in params
    ref = group.roi if group.roi is not None else group.referenced_segmentation_frame
    assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
    assert ref.source_image_for_segmentation.referenced_sop_instance_uid == src.SOPInstanceUID
    assert f"weights_sha256={m.provenance.weights_sha256 or 'none (classical method)'}" in params
    assert str(group.tracking_identifier).startswith(f"{eid} ")
    evidence = {i.ReferencedSOPInstanceUID for s in sr.CurrentRequestedProcedureEvidenceSequence
                for ser in s.ReferencedSeriesSequence for i in ser.ReferencedSOPSequence}
    assert evidence == {src.SOPInstanceUID, seg.SOPInstanceUID}
    assert sr.PatientName == src.PatientName and sr.StudyInstanceUID == src.StudyInstanceUID


def test_dciodvfy_finds_no_error_in_seg_sr_and_sc(case):
    for folder in (case["plain"].out_dir, case["deid"].out_dir):
        for name in ("segmentation.dcm", "measurements-sr.dcm", "overlay-sc.dcm"):
            assert _errors(folder / name) == [], f"{folder.name}/{name}"


def test_deidentified_outputs_hold_no_identifier_and_stay_consistent(case):
    from agent.export.dicom_deid import BASIC_PROFILE

    src = pydicom.dcmread(case["src"])
    out = case["deid"].out_dir
    image = pydicom.dcmread(out / "image-deid.dcm")
    seg = pydicom.dcmread(out / "segmentation.dcm")
    secrets = [str(src.PatientName), src.PatientID, src.OtherPatientIDs, src.PatientBirthDate, src.InstitutionName,
               src.StationName, src.StudyInstanceUID, src.SOPInstanceUID, src.SeriesInstanceUID, src.AccessionNumber]
    for f in sorted(out.iterdir()):
        data = f.read_bytes()
        for s in secrets:
            assert s.encode() not in data, f"{s!r} left in {f.name}"
    for ds in (image, seg, pydicom.dcmread(out / "measurements-sr.dcm")):
        assert ds.PatientIdentityRemoved == "YES" and ds.PatientName == "" and ds.PatientID == ""
        assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
        assert ds.StudyInstanceUID == image.StudyInstanceUID  # one mapping: still one study
    refs = {i.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert refs == {image.SOPInstanceUID}
    for kw, action in BASIC_PROFILE.items():  # every profile attribute of the source got its action
        if kw in src and action == "X":
            assert kw not in image, kw
        elif kw in src and action == "Z":
            assert kw in image and image[kw].value in ("", None, []), kw
    answers = (out / "answers.json").read_text()
    iso = f"{src.StudyDate[:4]}-{src.StudyDate[4:6]}-{src.StudyDate[6:]}"
    for name in ("answers.json", "report.md"):
        text = (out / name).read_text()
        assert "film.dcm" not in text and iso not in text and src.StudyDate not in text, name


def test_basic_profile_on_the_full_film_private_tags_and_uid_consistency():
    from pydicom.datadict import tag_for_keyword

    from agent.export.dicom_deid import BASIC_PROFILE, UidMap, deidentify

    assert [k for k in BASIC_PROFILE if tag_for_keyword(k) is None] == []  # every entry is a DICOM keyword

    a = pydicom.dcmread(_rg1(), stop_before_pixels=True)
    a.add_new(0x00291010, "LO", "private vendor note")
    b = pydicom.dcmread(_rg1(), stop_before_pixels=True)
    uids = UidMap()
    da, db = deidentify(copy.deepcopy(a), uids), deidentify(copy.deepcopy(b), uids)
    assert (0x0029, 0x1010) not in da
    assert da.SOPInstanceUID == db.SOPInstanceUID != b.SOPInstanceUID
    assert da.SOPClassUID == b.SOPClassUID  # DICOM-defined UIDs are kept
    assert da.file_meta.MediaStorageSOPInstanceUID == da.SOPInstanceUID
    assert da.ContentDate == "20000101" and "AcquisitionDate" not in da and "OtherPatientIDs" not in da
    assert da.ReferringPhysicianName == "" and da.PatientSex == "" and da.StudyID == ""


def test_report_is_grounded_cites_evidence_and_links_figures(case):
    out = case["plain"].out_dir
    md = (out / "report.md").read_text()
    assert "DRAFT for review, not a diagnosis" in md
    ids = {c.id for c in case["result"].tool_calls}
    claims = [line for line in md.splitlines() if line.startswith("- ") and "None reported" not in line
              and not line.startswith("- Current study") and not line.startswith("- Prior study")]
    assert claims
    for line in claims:
        cited = re.findall(r"\[(E\d+(?:, E\d+)*)\]$", line)
        assert cited, line
        assert set(cited[0].split(", ")) <= ids, line
    links = re.findall(r"\]\(([^)]+\.png)\)", md)
    assert links and all((out / name).is_file() for name in links)


def test_report_leaves_out_a_statement_no_tool_backs(case):
    from agent.export.report import build_report, report_markdown

    r = case["result"]
    eid = next(c.id for c in r.tool_calls if c.name == "measure")
    tampered = r.model_copy(update={"answer": r.answer + f" The lung measures 987654 mm across [{eid}]."})
    md = report_markdown(build_report([tampered]))
    assert "987654" not in md
    assert "statement(s) no cited tool result backs were left out" in md


def test_pdf_renders_with_the_draft_banner(case, tmp_path):
    pdftoppm, pdftotext = shutil.which("pdftoppm"), shutil.which("pdftotext")
    if not pdftoppm or not pdftotext:
        pytest.skip("poppler-utils (pdftoppm, pdftotext) not installed")
    pdf = case["plain"].out_dir / "report.pdf"
    subprocess.run([pdftoppm, "-r", "60", "-png", "-f", "1", "-l", "1", str(pdf), str(tmp_path / "page")], check=True,
                   timeout=60)
    from PIL import Image

    page = np.asarray(Image.open(next(tmp_path.glob("page*.png"))).convert("RGB")).astype(int)
    assert page.std() > 10  # not blank
    red = (page[..., 0] > 150) & (page[..., 1] < 60) & (page[..., 2] < 60)
    assert red[: page.shape[0] // 8].mean() > 0.02  # the red DRAFT banner across the top
    text = subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True, timeout=60, check=True).stdout
    assert text.count("DRAFT for review, not a diagnosis") >= 2  # banner and footer
    assert "Models and versions" in text and "lung_segmenter" in text


def test_png_input_gives_json_and_png_only(tmp_path, assistant, data_dir):
    from agent.export.files import export_session

    image = sorted((data_dir / "bccd").rglob("*.jpg"))[0]
    s = assistant.new_session()
    s.load("current", image)
    r = assistant.ask(s, "How many white blood cells are in this smear?")
    res = export_session(s, tmp_path / "out")
    names = {p.name for p in res.paths}
    assert {"answers.json", "report.md", "report.pdf"} <= names and not any(n.endswith(".dcm") for n in names)
    assert any("not DICOM" in n for n in res.notes)
    saved = json.loads((tmp_path / "out" / "answers.json").read_text())
    assert saved[0]["answer"] == r.answer
    for p in saved[0]["artifacts"]["overlays"]:
        assert Path(p).parent == tmp_path / "out" and Path(p).is_file()


def test_cli_ask_out_and_report(case, tmp_path, capsys, monkeypatch):
    from ui.cli import main

    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path / "osler"))
    out = tmp_path / "ask"
    assert main(["ask", str(case["src"]), QUESTION, "--out", str(out), "--deidentify"]) == 0
    printed = capsys.readouterr().out
    assert "segmentation.dcm" in printed and "measurements-sr.dcm" in printed and "report.pdf" in printed
    assert (out / "image-deid.dcm").is_file() and not (out / "overlay-sc.dcm").exists()  # SC only when asked
    again = tmp_path / "again"
    assert main(["report", str(out), "--out", str(again)]) == 0
    assert (again / "report.pdf").is_file() and "DRAFT" in (again / "report.md").read_text()
    assert main(["report", str(tmp_path / "missing.json"), "--out", str(again)]) == 2


def _modes(root: Path) -> dict[str, str]:
    """Every folder and file under ``root`` (itself included) -> its permission bits in octal."""
    return {str(p.relative_to(root.parent)): oct(p.stat().st_mode & 0o777) for p in [root, *root.rglob("*")]}


def test_ask_out_writes_private_files_under_umask_022(tmp_path):
    """Before: with umask 022 the session folder and its overlays, masks and answers, and every exported file,
    were readable by all local users (0755/0644); only the audit log was 0600."""
    import os
    import sys

    film = _small_film(tmp_path / "film.dcm")
    env = dict(os.environ, OSLER_DATA_DIR=str(tmp_path / "osler"), OSLER_TORCH_THREADS="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "ui.cli", "ask", str(film), QUESTION, "--out", str(tmp_path / "out")],
                          env=env, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True,
                          timeout=300, preexec_fn=lambda: os.umask(0o022))
    assert done.returncode == 0, done.stderr
    modes = {**_modes(tmp_path / "osler"), **_modes(tmp_path / "out")}
    assert any(n.endswith(".png") and "sessions" in n for n in modes) and any(n.endswith(".dcm") for n in modes)
    wrong = {n: m for n, m in modes.items() if m != ("0o700" if (tmp_path / n).is_dir() else "0o600")}
    assert not wrong


def test_a_data_folder_an_older_version_left_open_is_made_private(tmp_path, caplog):
    """Before: only folders Osler created were 0700; a data folder an older version (or a restore with the umask's
    modes) had left 0755 stayed so, with every earlier session's files in reach of other local users."""
    import logging
    import os

    from agent.session import Session
    from tools.settings import OslerSettings

    old = tmp_path / "osler"
    (old / "sessions" / "0123abcd").mkdir(parents=True)
    (old / "sessions" / "0123abcd" / "answers.json").write_text("{}")
    os.chmod(old, 0o755)
    with caplog.at_level(logging.WARNING, logger="agent.private_files"):
        Session(OslerSettings(data_dir=old))
    assert oct(old.stat().st_mode & 0o777) == "0o700"
    assert any("made private" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_full_size_chest_film_end_to_end(tmp_path, monkeypatch, one_torch_thread):
    """The example session of docs/export.md: the 1955x1841 film, exported de-identified, validated."""
    from ui.cli import main

    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path / "osler"))
    out = tmp_path / "rg1"
    assert main(["ask", str(_rg1()), QUESTION, "--out", str(out), "--deidentify", "--secondary-capture"]) == 0
    for name in ("segmentation.dcm", "measurements-sr.dcm", "overlay-sc.dcm"):
        assert _errors(out / name) == [], name
    seg = pydicom.dcmread(out / "segmentation.dcm")
    mask = np.asarray(__import__("PIL.Image", fromlist=["x"]).open(next(out.glob("mask-*.png")))) > 127
    assert np.array_equal(seg.pixel_array.reshape(-1, seg.Rows, seg.Columns)[0].astype(bool), mask)


def test_export_modules_import_nothing_heavy():
    """highdicom, fpdf and pydicom are imported when something is exported, torch/gradio never."""
    import subprocess
    import sys

    code = ("import sys, agent.export.files, agent.export.report, agent.export.report_pdf, agent.export.dicom, agent.export.dicom_sr, agent.export.dicom_deid, "
            "agent.export.results, ui.export_view, ui.report_cli;"
            "print(','.join(m for m in ('torch', 'ultralytics', 'gradio', 'highdicom', 'fpdf', 'pydicom') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def _dicom_smear(path: Path, rgb: np.ndarray, complete: bool) -> Path:
    """A real BCCD smear as an RGB DICOM (test input); ``complete=False`` leaves out the study/series UIDs."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, VLMicroscopicImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = VLMicroscopicImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Modality, ds.StudyDate, ds.PatientName, ds.PatientID = "GM", "20240301", "Test^Smear", "SMEAR1"
    if complete:
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.StudyID, ds.SeriesNumber = generate_uid(), generate_uid(), "1", 1
        ds.InstanceNumber, ds.PatientBirthDate, ds.PatientSex, ds.AccessionNumber = 1, "", "", ""
        ds.ReferringPhysicianName, ds.StudyTime = "", "120000"
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.ascontiguousarray(rgb).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def test_counts_of_a_dicom_smear_go_to_the_sr_and_an_incomplete_source_is_not_patched(tmp_path, assistant, data_dir):
    from PIL import Image

    from agent.export.files import export_session
    from tools.detection import CountResult

    rgb = np.asarray(Image.open(sorted((data_dir / "bccd").rglob("*.jpg"))[0]).convert("RGB"))
    for complete in (True, False):
        s = assistant.new_session()
        s.load("current", _dicom_smear(tmp_path / f"smear{complete}.dcm", rgb, complete))
        r = assistant.ask(s, "How many white blood cells are in this smear?")
        counts = _typed(r, CountResult)
        assert counts, r.answer
        res = export_session(s, tmp_path / f"out{complete}")
        sr_path = tmp_path / f"out{complete}" / "measurements-sr.dcm"
        if not complete:  # no study UID to copy: no SR, said so; the JSON, PNGs and report stand
            assert not sr_path.exists() and any("no DICOM SEG/SR" in n for n in res.notes)
            assert (tmp_path / f"out{complete}" / "report.pdf").is_file()
            continue
        sr = hd.sr.srread(sr_path)
        got = {m.name.meaning: (m.value, m.unit.value) for g in sr.content.get_image_measurement_groups()
               for m in g.get_measurements()}
        for c in counts[0].counts:
            assert got[f"Number of {c.label} in image"] == (c.count, "{cells}")
        assert _errors(sr_path) == []
