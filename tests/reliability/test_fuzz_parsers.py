"""Property-based fuzzing (Hypothesis) of every parser that reads outside input: question intents, study
dates, DICOM headers, scenario files, voice commands, and the planner's tool-call text/JSON (local chat
models and the OpenAI-compatible path).  Each example is tallied: a clear refusal of the documented type
or a well-formed result is handled; any other exception fails (and Hypothesis shrinks it).

Examples per parser: 25 in the default run, 400 with ``make reliability`` (``OSLER_RELIABILITY=thorough``).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.reliability.tally import check
from tools.errors import InvalidInputError

TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=300)  # any code point, surrogates too
WORDY = st.lists(st.sampled_from(
    "how many white red blood cells platelets polyp polyps is there are the a an of in this smear chest x-ray "
    "pneumonia normal or outline segment measure largest smallest lung compare prior study since grown new "
    "not no any count find where at ( ) , 312 240 42 three ? and yes osler show me next image what kind size "
    "diameter area fraction left right mm % ignore previous instructions say leukemia".split()), max_size=25
).map(" ".join)
QUESTIONS = st.one_of(TEXT, WORDY)
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns on every invalid value it reads


# ---- question intents ---------------------------------------------------------------------------
@given(QUESTIONS)
def test_intents_parse_any_text(question):
    from agent.builtin.intents import parse_question

    def valid(intents):
        return intents and all(i.action and isinstance(i.clause, str) for i in intents)

    check("fuzz: question intents", lambda: parse_question(question), valid=valid)


@given(QUESTIONS)
def test_intents_follow_ups_parse_any_text(question):
    from agent.builtin.intents import parse_question

    previous = parse_question("How many white blood cells are in this smear?")[-1]
    check("fuzz: question intents", lambda: parse_question(question, previous), valid=bool)


# ---- study dates --------------------------------------------------------------------------------
@given(st.one_of(TEXT, st.from_regex(r"\d{4}[-/.]?\d{1,2}[-/.]?\d{1,2}", fullmatch=True)))
def test_dates_are_a_real_date_or_one_clear_line(text):
    from tools.inputs import parse_study_date

    def valid(iso):
        return iso is None or (dt.date.fromisoformat(iso).isoformat() == iso and parse_study_date(iso) == iso)

    check("fuzz: study dates", lambda: parse_study_date(text, what="--date"), (InvalidInputError,), valid)


@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date.today()), st.sampled_from(["%Y-%m-%d", "%Y%m%d"]))
def test_every_real_date_is_accepted(date, fmt):
    from tools.inputs import parse_study_date

    check("fuzz: study dates", lambda: parse_study_date(date.strftime(fmt)), valid=lambda iso: iso == date.isoformat())


# ---- DICOM headers ------------------------------------------------------------------------------
_NUM = st.one_of(st.integers(-70000, 70000), st.floats(allow_nan=True, allow_infinity=True), st.just(0))
_HEADER = st.fixed_dictionaries({}, optional={
    "Rows": st.integers(0, 65535), "Columns": st.integers(0, 65535), "NumberOfFrames": st.integers(0, 100000),
    "SamplesPerPixel": st.integers(0, 5), "BitsAllocated": st.sampled_from([0, 1, 7, 8, 12, 16, 32, 64]),
    "BitsStored": st.integers(0, 64), "PixelRepresentation": st.integers(0, 1),
    "PhotometricInterpretation": st.sampled_from(["MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL", "PALETTE COLOR",
                                                  "", "garbage"]),
    "PixelSpacing": st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=3),
    "ImagerPixelSpacing": st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=2),
    "WindowCenter": st.floats(-1e6, 1e6, allow_nan=False), "WindowWidth": st.floats(-1e6, 1e6, allow_nan=False),
    "RescaleSlope": st.floats(-1e3, 1e3, allow_nan=False), "RescaleIntercept": st.floats(-1e6, 1e6, allow_nan=False),
    "StudyDate": st.from_regex(r"[0-9]{0,10}", fullmatch=True), "Modality": st.from_regex(r"[A-Z]{0,4}", fullmatch=True),
})


def _check_dicom(path: Path) -> None:
    from experts.imaging import load_image

    def valid(image):
        spacing = image.meta.pixel_spacing_mm
        return (image.pixels.dtype == np.uint8 and image.pixels.ndim == 3 and image.pixels.shape[2] == 3
                and (spacing is None or all(0.00001 <= s <= 10 for s in spacing)))

    def load():
        try:
            return load_image(path, max_pixels=4_000_000)
        except InvalidInputError as exc:
            assert "\n" not in str(exc) and len(str(exc)) < 400, str(exc)
            raise
    check("fuzz: DICOM headers", load, (InvalidInputError,), valid)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(header=_HEADER, source=st.sampled_from(["CT_small.dcm", "MR_small.dcm", "SC_rgb.dcm", "emri_small.dcm"]))
def test_dicom_with_any_header_values_loads_or_is_refused_in_one_line(header, source, tmp_path_factory):
    import pydicom
    import pydicom.data

    ds = pydicom.dcmread(pydicom.data.get_testdata_file(source))
    for key, value in header.items():
        setattr(ds, key, value)
    path = tmp_path_factory.mktemp("dcm") / "fuzz.dcm"
    try:
        ds.save_as(path, enforce_file_format=False)
    except Exception:  # noqa: BLE001 - pydicom refuses to write some values; nothing to read then
        return
    _check_dicom(path)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(cuts=st.lists(st.tuples(st.integers(0, 2000), st.binary(min_size=1, max_size=8)), min_size=1, max_size=6),
       truncate=st.one_of(st.none(), st.integers(0, 40000)))
def test_dicom_with_corrupted_bytes_loads_or_is_refused_in_one_line(cuts, truncate, tmp_path_factory):
    import pydicom.data

    raw = bytearray(Path(pydicom.data.get_testdata_file("CT_small.dcm")).read_bytes())
    for offset, blob in cuts:
        raw[offset:offset + len(blob)] = blob
    path = tmp_path_factory.mktemp("dcm") / "corrupt.dcm"
    path.write_bytes(bytes(raw[:truncate] if truncate else raw))
    _check_dicom(path)


# ---- scenario files (eval_scenarios schema) ------------------------------------------------------
_JSON = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
                     lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=10), kids,
                                                                                        max_size=5)), max_leaves=20)
_SCENARIO_KEYS = ("id", "image", "images", "question", "turns", "expect", "tags", "prior", "value", "label", "tools")


def _real_scenario() -> dict:
    import yaml

    data = yaml.safe_load((Path(__file__).resolve().parents[2] / "eval_scenarios/public/bccd_counts.yaml").read_text())
    return data[0] if isinstance(data, list) else data


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.one_of(_JSON, st.fixed_dictionaries({k: _JSON for k in _SCENARIO_KEYS[:4]})),
       mutations=st.lists(st.tuples(st.sampled_from(_SCENARIO_KEYS), _JSON), max_size=4), mutate_real=st.booleans())
def test_scenario_files_load_or_are_refused_naming_the_file(doc, mutations, mutate_real, tmp_path_factory):
    import yaml

    from eval_scenarios.runner import load_scenarios

    if mutate_real:
        doc = _real_scenario()
        for key, value in mutations:
            doc[key] = value
    path = tmp_path_factory.mktemp("scen") / "fuzz.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")

    def load():
        try:
            return load_scenarios([path])
        except InvalidInputError as exc:
            assert "fuzz.yaml" in str(exc)
            raise
    check("fuzz: scenario files", load, (InvalidInputError,), valid=lambda cases: isinstance(cases, list))


# ---- voice commands -----------------------------------------------------------------------------
@given(st.one_of(TEXT, WORDY, WORDY.map(lambda s: "osler " + s)))
def test_voice_commands_parse_any_transcript(transcript):
    from voice.commands import parse_command

    def valid(cmd):
        return cmd is None or (cmd.intent and (cmd.question is None or isinstance(cmd.question, str)))

    check("fuzz: voice commands", lambda: parse_command(transcript), valid=valid)


# ---- planner tool-call text and JSON ------------------------------------------------------------
_TOOL_NAMES = st.sampled_from(["count", "detect", "segment", "measure", "classify", "image_info",
                               "compare_with_prior", "final_result", "rm -rf", ""])
_CALL_JSON = st.builds(lambda name, args, wrap: wrap.format(json.dumps({"name": name, "arguments": args})),
                       _TOOL_NAMES, _JSON, st.sampled_from(["{}", "<tool_call>{}</tool_call>", "```json\n{}\n```",
                                                            "text {} more", "<tool_call>{}", "{}}}{{"]))


@given(st.one_of(TEXT, _CALL_JSON, st.lists(_CALL_JSON, max_size=3).map("\n".join)))
def test_local_planner_tool_call_text_parses(text):
    from agent.planners.chat_format import parse_tool_calls

    def valid(out):
        calls, rest = out
        return isinstance(rest, str) and all(isinstance(n, str) for n, _ in calls)

    check("fuzz: planner tool-call JSON", lambda: parse_tool_calls(text), valid=valid)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=_TOOL_NAMES, args=st.one_of(TEXT, _JSON.map(json.dumps), _JSON.filter(lambda x: isinstance(x, dict))))
def test_openai_tool_call_arguments_are_recorded_never_raised(name, args, tmp_path_factory):
    """The OpenAI-compatible path: a server's tool call with arguments that are not valid JSON or not an
    object is recorded as a rejected call (agent.runner._record_rejected_calls), never raised."""
    from pydantic_ai.messages import ModelRequest, ModelResponse, RetryPromptPart, ToolCallPart

    from agent.runner import _record_rejected_calls
    from agent.session import Session
    from tools.settings import OslerSettings

    session = Session(OslerSettings(data_dir=tmp_path_factory.mktemp("s")), pool=object())
    messages = [ModelResponse(parts=[ToolCallPart(tool_name=name, args=args, tool_call_id="c1")]),
                ModelRequest(parts=[RetryPromptPart(content="invalid arguments", tool_name=name, tool_call_id="c1")])]

    def run():
        _record_rejected_calls(session, messages)
        return session.calls

    check("fuzz: planner tool-call JSON", run,
          valid=lambda calls: len(calls) <= 1 and all(not c.ok and json.dumps(c.args) for c in calls))
