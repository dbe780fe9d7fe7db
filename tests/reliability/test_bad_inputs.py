"""The bad-input corpus (tests/reliability/corpus.py) through the real path: Session.load, Assistant.ask with
the built-in planner and the real experts, the audit log.  Handled means: a refusal is one
InvalidInputError line; an answer (or abstention) serialises, its audit lines are valid UTF-8 JSON, and
it never claims a size of 0 mm² or leaks the patient's name."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SMEAR
from tests.reliability import corpus
from tests.reliability.conftest import THOROUGH
from tools.errors import InvalidInputError


def _one_line(exc: BaseException) -> None:
    msg = str(exc)
    assert msg and "\n" not in msg and len(msg) < 400, msg
    msg.encode("utf-8")


def _check_answer(assistant, session, result) -> None:
    json.loads(result.model_dump_json())
    assert result.status in ("ok", "stopped"), (result.status, result.answer)
    lines = assistant.settings.audit_path.read_text(encoding="utf-8").splitlines()
    events = [json.loads(x)["event"] for x in lines]
    assert events[-1] == "answer"
    if result.unit == "mm²":
        assert result.value and result.value > 0, result.answer


def _run_file(case: corpus.FileCase, assistant, tmp_path, data_dir):
    path = case.make(tmp_path, data_dir)
    session = assistant.new_session()
    try:
        session.load("current", path)
    except InvalidInputError as exc:
        _one_line(exc)
        assert case.outcome in ("refused", "either"), f"refused: {exc}"
        return None
    assert case.outcome in ("answered", "either"), "accepted a file that must be refused"
    result = assistant.ask(session, case.question)
    _check_answer(assistant, session, result)
    return result


@pytest.mark.reliability("bad files: images")
@pytest.mark.parametrize("case", corpus.IMAGE_CASES, ids=[c.name for c in corpus.IMAGE_CASES])
def test_image_file(case, assistant, tmp_path, data_dir):
    _run_file(case, assistant, tmp_path, data_dir)


@pytest.mark.reliability("bad files: DICOM")
@pytest.mark.parametrize("case", corpus.DICOM_CASES, ids=[c.name for c in corpus.DICOM_CASES])
def test_dicom_file(case, assistant, tmp_path, data_dir):
    result = _run_file(case, assistant, tmp_path, data_dir)
    if result is not None and "Testperson" in case.make.__qualname__ + case.question:
        audit = assistant.settings.audit_path.read_text(encoding="utf-8")
        for word in corpus.PHI_WORDS:
            assert word not in audit and word not in json.dumps(result.images), word


@pytest.fixture(scope="module")
def smear_session_factory(data_dir):
    def make(assistant):
        session = assistant.new_session()
        session.load("current", data_dir / SMEAR)
        return session
    return make


@pytest.mark.reliability("bad text: questions")
@pytest.mark.parametrize("name,question,outcome", corpus.QUESTIONS, ids=[q[0] for q in corpus.QUESTIONS])
def test_question(name, question, outcome, assistant, smear_session_factory):
    session = smear_session_factory(assistant)
    try:
        result = assistant.ask(session, question)
    except InvalidInputError as exc:
        _one_line(exc)
        assert outcome == "refused", str(exc)
        return
    assert outcome == "answered"
    _check_answer(assistant, session, result)
    if "Testperson" in question:
        audit = assistant.settings.audit_path.read_text(encoding="utf-8")
        assert not any(w in audit for w in corpus.PHI_WORDS)


@pytest.mark.reliability("bad text: study dates")
@pytest.mark.parametrize("name,date,outcome", corpus.DATES, ids=[d[0] for d in corpus.DATES])
def test_study_date(name, date, outcome, assistant, data_dir):
    session = assistant.new_session()
    try:
        image = session.load("current", data_dir / SMEAR, study_date=date)
    except InvalidInputError as exc:
        _one_line(exc)
        assert outcome == "refused", str(exc)
        return
    assert outcome == "answered" and image.meta.study_date == "2024-03-01"


@pytest.mark.reliability("bad files: audio")
@pytest.mark.parametrize("name,make,outcome", corpus.AUDIO_CASES, ids=[a[0] for a in corpus.AUDIO_CASES])
def test_audio_file(name, make, outcome, tmp_path, settings):
    from voice.audio import read_audio

    from ui.handlers import _heard
    from voice.pipeline import transcribe_command

    path = make(tmp_path)
    try:
        audio = read_audio(path)
        assert audio.samples.size > 0
        if THOROUGH:  # the whole recogniser too (loads Whisper: seconds); it refuses silence and 8 kHz
            question, _ = _heard(transcribe_command(path, settings))
            assert question == "" or question.isprintable()
    except InvalidInputError as exc:
        _one_line(exc)
        assert outcome in ("refused", "either"), str(exc)
        return
    assert outcome in ("answered", "either")
