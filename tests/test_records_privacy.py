"""Issue 15, "Patient data": what the audit log and the session files hold for a DICOM with patient tags
and a question that names the patient.  By default: content hashes, not names; intervals, not dates;
the question de-identified with its SHA-256.  ``settings.audit.verbatim`` keeps everything as given."""

from __future__ import annotations

import hashlib
import json

import pytest

NAME_PARTS = ("Testperson", "Johanna", "99887766", "MRN99887766")
DATES = ("2004-01-19", "20040119")
QUESTION = "Does Johanna Testperson (MRN 99887766) have a lesion? Scanned 2004-01-19."


@pytest.fixture
def patient_dicom(tmp_path):
    """pydicom's CT_small.dcm as a named patient, under a file name that names her (tmp only)."""
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = "Testperson^Johanna"
    ds.PatientID = "MRN99887766"
    ds.PatientBirthDate = "19500101"
    path = tmp_path / "Testperson_Johanna_MRN99887766.dcm"
    ds.save_as(path)
    return path


def _ask(settings, shared_pool, image, question=QUESTION):
    from agent.runner import Assistant
    from ui.views import answers_json

    assistant = Assistant(settings, pool=shared_pool)
    session = assistant.new_session()
    session.load("current", image)
    result = assistant.ask(session, question)
    return session, result, answers_json(session.answers, redact=session.redact)


def test_audit_and_session_files_hold_no_patient_identifiers(tmp_path, shared_pool, patient_dicom):
    from tools.settings import OslerSettings

    settings = OslerSettings(data_dir=tmp_path / "osler")
    session, result, answers = _ask(settings, shared_pool, patient_dicom)
    audit = settings.audit_path.read_text(encoding="utf-8")
    for text, where in ((audit, "audit.jsonl"), (answers, "answers.json")):
        for word in NAME_PARTS + DATES + ("19500101",):
            assert word not in text, (word, where)
    for word in NAME_PARTS:  # the answer itself (shown to the asking user) keeps the date, not the file name
        assert word not in json.dumps(result.images), word
    lines = [json.loads(x) for x in audit.splitlines()]
    image = next(e for e in lines if e["event"] == "image")
    digest = hashlib.sha256(patient_dicom.read_bytes()).hexdigest()
    assert image["source"] == f"current-{digest[:16]}.dcm"  # an auditor can match the file, not read its name
    question = next(e for e in lines if e["event"] == "question")
    assert question["question_sha256"] == hashlib.sha256(QUESTION.encode()).hexdigest()
    assert "[redacted]" in question["question"] and "have a lesion" in question["question"]
    # the study date survives only as an interval relative to the current study
    assert "the current study date" in audit  # (DATES were checked above)
    # the answer still knows the date in memory (comparisons need it), the records do not
    assert session.images["current"].meta.study_date == "2004-01-19"


def test_dicom_patient_tags_never_leave_the_process(tmp_path, shared_pool, patient_dicom):
    from tools.settings import OslerSettings

    settings = OslerSettings(data_dir=tmp_path / "osler", audit={"verbatim": True})
    _, result, answers = _ask(settings, shared_pool, patient_dicom, question="What kind of image is this?")
    out = result.model_dump_json() + answers + settings.audit_path.read_text(encoding="utf-8")
    for tag_value in ("Testperson^Johanna", "19500101", "Johanna"):
        if tag_value == "Johanna":
            out = out.replace("Testperson_Johanna_MRN99887766.dcm", "")  # verbatim keeps the file name only
        assert tag_value not in out, tag_value


def test_verbatim_setting_keeps_what_was_given(tmp_path, shared_pool, patient_dicom, monkeypatch):
    from tools.settings import OslerSettings

    monkeypatch.setenv("OSLER_AUDIT__VERBATIM", "true")
    settings = OslerSettings(data_dir=tmp_path / "osler")
    assert settings.audit.verbatim
    _, result, answers = _ask(settings, shared_pool, patient_dicom)
    audit = [json.loads(x) for x in settings.audit_path.read_text(encoding="utf-8").splitlines()]
    assert next(e for e in audit if e["event"] == "question")["question"] == QUESTION
    assert result.images["current"]["source"] == "Testperson_Johanna_MRN99887766.dcm"
    assert "Testperson_Johanna_MRN99887766.dcm" in answers


def test_png_question_with_a_titled_name_is_scrubbed(tmp_path, shared_pool, data_dir):
    from tests.conftest import SMEAR
    from tools.settings import OslerSettings

    settings = OslerSettings(data_dir=tmp_path / "osler")
    q = "How many white blood cells does Mrs. Johanna Testperson have? Her MRN is 99887766."
    _ask(settings, shared_pool, data_dir / SMEAR, question=q)
    audit = settings.audit_path.read_text(encoding="utf-8")
    for word in NAME_PARTS + ("BloodImage_00001",):
        assert word not in audit, word
