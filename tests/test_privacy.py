"""De-identification for planners that are not on this machine: what the server receives, checked
on a real HTTP server (the 'remote' decision is injected: the server itself listens on 127.0.0.1)."""

from __future__ import annotations

import base64
import datetime as dt

import numpy as np
import pytest

from tests.scripted_openai_server import ScriptedOpenAIServer, final_answer, tool_call

PHI = ("Smith", "John", "12345678", "2004-01-19", "20040119", "CompressedSamples", "JFK", "1CT1")
QUESTION = "Mr. Smith (MRN 12345678), scanned on 2004-01-19: what kind of image is this?"


@pytest.mark.parametrize("text,gone,kept", [
    ("Mr. Smith (MRN 12345678), scanned on 2004-01-19: how many WBC?", ["Smith", "12345678", "2004"], ["WBC"]),
    ("Patient John Smith, DOB 03/05/1950, phone 555-123-4567", ["John", "Smith", "1950", "555"], ["Patient"]),
    ("Compare with the study of March 3, 2020 for patient Jane Doe; accession A123456",
     ["March", "Jane", "Doe", "A123456"], ["Compare"]),
    ("Dr. Who asked about the patient CT scan, id 7781", ["Who", "7781"], ["CT scan"]),
    ("name: Smith^John, email j.smith@example.org", ["Smith", "John", "example.org"], []),
    ("Is the polyp larger than 10 mm? Is 40% of the left lung involved?", [], ["10 mm", "40%", "left lung"]),
])
def test_scrub_text(text, gone, kept):
    from agent.privacy import scrub_text

    out, kinds = scrub_text(text)
    for word in gone:
        assert word not in out, (word, out)
    for word in kept:
        assert word in out, (word, out)
    assert bool(kinds) == bool(gone)


def test_dates_become_intervals_relative_to_the_current_study():
    from agent.privacy import scrub_text

    out, kinds = scrub_text("prior of 2003-12-20, current 20040119", reference=dt.date(2004, 1, 19))
    assert out == "prior of 30 days before the current study, current the current study date" and kinds == ["date"]


def test_policy_truth_table():
    from agent.privacy import policy_for
    from tools.settings import OslerSettings

    s = OslerSettings(planner_vision=True)
    local = policy_for(s, "http://127.0.0.1:8000/v1")
    remote = policy_for(s, "https://llm.example.org/v1")
    assert (local.remote, local.deidentify, local.send_images) == (False, False, True)
    assert (remote.remote, remote.deidentify, remote.send_images, remote.host) == (True, True, False, "llm.example.org")
    assert policy_for(s, "https://llm.example.org/v1", remote_images="mask").mask_images
    allowed = policy_for(OslerSettings(planner_vision=True, allow_remote_phi=True), "https://llm.example.org/v1")
    assert (allowed.deidentify, allowed.send_images, allowed.mask_images) == (False, True, False)
    assert not policy_for(OslerSettings(), "https://x.org/v1").send_images  # text-only model: never pixels


@pytest.fixture
def named_dicom(tmp_path):
    """pydicom's CT_small.dcm, renamed and re-tagged as a named patient (written to tmp only)."""
    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = "Smith^John"
    ds.PatientID = "12345678"
    path = tmp_path / "Smith_John_20040119.dcm"
    ds.save_as(path)
    return path


def _ask(tmp_path, shared_pool, image, *, remote, question=QUESTION, remote_images="withhold", **kw):
    from agent.planners.openai import build_openai_model
    from agent.runner import Assistant
    from tools.settings import OslerSettings

    script = [tool_call("image_info", {}), final_answer("The image kind is given in [E1].")]
    with ScriptedOpenAIServer(script) as server:
        settings = OslerSettings(data_dir=tmp_path / "osler", planner="openai", base_url=server.url,
                                 model=server.model, **kw)
        assistant = Assistant(settings, pool=shared_pool)
        session = assistant.new_session()
        session.load("current", image)
        model, name = build_openai_model(settings, session, remote=remote, remote_images=remote_images)
        result = assistant.ask(session, question, model=model, planner_name=name)
    return server, session, result


def test_remote_planner_receives_no_names_ids_dates_or_file_names(tmp_path, shared_pool, named_dicom):
    server, session, result = _ask(tmp_path, shared_pool, named_dicom, remote=True)
    sent = server.received_text()
    assert result.status == "ok" and len(server.requests) == 2
    for word in PHI:
        assert word not in sent, word
    assert "current-image" in sent and "the current study date" in sent
    assert '"path"' not in sent
    # the local record keeps the real metadata; only the wire is de-identified
    assert result.images["current"]["source"].startswith("current-")  # a content hash: the name is PHI (issue 15)
    assert result.tool_calls[0].result["meta"]["study_date"] == "2004-01-19"
    requests = [e for e in session.audit.read() if e["event"] == "planner_request"]
    assert len(requests) == 2 and all(e["remote"] and e["deidentified"] for e in requests)
    assert requests[0]["host"] == "127.0.0.1" and "text:name" in requests[0]["scrubbed"]
    assert {"source", "study_date", "text:id"} <= set(requests[1]["scrubbed"])
    assert requests[1]["tool_results"] == ["image_info"]


def test_loopback_planner_gets_content_as_is(tmp_path, shared_pool, named_dicom):
    server, session, _ = _ask(tmp_path, shared_pool, named_dicom, remote=False)
    sent = server.received_text()
    assert "12345678" in sent and "2004-01-19" in sent
    assert "Smith_John_20040119.dcm" not in sent  # file names are replaced by a content hash at load (issue 15)
    assert not any(e["deidentified"] for e in session.audit.read() if e["event"] == "planner_request")


def test_allow_remote_phi_sends_as_is(tmp_path, shared_pool, named_dicom):
    server, _, _ = _ask(tmp_path, shared_pool, named_dicom, remote=True, allow_remote_phi=True)
    assert "12345678" in server.received_text()


@pytest.fixture
def cxr_with_text(tmp_path, data_dir):
    """A real chest X-ray with a burned-in name, date and MRN drawn on it (tmp only)."""
    import cv2

    rgb = cv2.cvtColor(cv2.imread(str(data_dir / "hannover_cxr/png/09258248.png")), cv2.COLOR_BGR2RGB)
    marked = rgb.copy()
    cv2.putText(marked, "SMITH, JOHN 12/03/1950", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2)
    cv2.putText(marked, "MRN 483920", (440, 500), cv2.FONT_HERSHEY_PLAIN, 1.2, (230, 230, 230), 1)
    path = tmp_path / "cxr_marked.png"
    cv2.imwrite(str(path), cv2.cvtColor(marked, cv2.COLOR_RGB2BGR))
    text_pixels = np.abs(marked.astype(int) - rgb.astype(int)).sum(2) > 30
    return path, marked, text_pixels, rgb


def test_mask_text_regions_blacks_out_burned_in_text(cxr_with_text, data_dir):
    import cv2

    from agent.privacy import mask_text_regions

    _, marked, text_pixels, clean = cxr_with_text
    masked, boxes = mask_text_regions(marked)
    assert len(boxes) >= 2
    assert (masked[text_pixels] == 0).all(axis=1).mean() >= 0.98
    assert (masked.sum(2) == 0).mean() < 0.10  # the text lines and little else
    clean_masked, _ = mask_text_regions(clean)
    assert (clean_masked.sum(2) == 0).mean() < 0.03  # without text, the anatomy stays (measured 0.5% mean on 20 CXRs)
    smear = cv2.cvtColor(cv2.imread(str(data_dir / "bccd/images/BloodImage_00001.jpg")), cv2.COLOR_BGR2RGB)
    assert mask_text_regions(smear)[1] == []  # no text, nothing masked


def test_remote_vision_images_withheld_by_default_and_masked_on_request(tmp_path, shared_pool, cxr_with_text):
    import cv2

    path, marked, text_pixels, _ = cxr_with_text
    server, session, _ = _ask(tmp_path, shared_pool, path, remote=True, question="Is this a chest X-ray?",
                              planner_vision=True)
    assert "image_url" not in server.received_text()
    assert [e["images_withheld"] for e in session.audit.read() if e["event"] == "planner_request"] == [1, 1]

    server, session, _ = _ask(tmp_path / "m", shared_pool, path, remote=True, question="Is this a chest X-ray?",
                              planner_vision=True, remote_images="mask")
    parts = server.messages(0)[-1]["content"]
    url = next(p["image_url"]["url"] for p in parts if p["type"] == "image_url")
    sent = cv2.imdecode(np.frombuffer(base64.b64decode(url.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert sent.shape == marked.shape
    assert (sent[text_pixels] == 0).all(axis=1).mean() >= 0.98
    event = next(e for e in session.audit.read() if e["event"] == "planner_request")
    assert event["images"] == ["current"] and event["images_masked_regions"]["current"] >= 2


def test_history_from_earlier_turns_is_scrubbed_too(tmp_path, named_dicom):
    """An earlier answer (e.g. from the built-in planner, which saw the real file) is rewritten before it
    goes to a remote server: tool-call arguments and text alike."""
    from pydantic_ai.messages import ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart, UserPromptPart
    from pydantic_ai.models.function import FunctionModel

    from agent.privacy import PrivacyModel, PrivacyPolicy
    from agent.session import Session
    from tools.settings import OslerSettings

    session = Session(OslerSettings(data_dir=tmp_path / "osler"))
    session.load("current", named_dicom)
    model = PrivacyModel(FunctionModel(lambda m, i: None), PrivacyPolicy("llm.example.org", True, True, False, False),
                         session)
    history = [
        ModelRequest(parts=[UserPromptPart("Is this John Smith's CT from 2004-01-19?")]),
        ModelResponse(parts=[ToolCallPart("final_result", {"answer": "Smith_John_20040119.dcm is a CT slice."}),
                             TextPart("Patient Smith, MRN 12345678.")]),
        ModelRequest(parts=[ToolReturnPart("final_result", "Final result processed."),
                            UserPromptPart("And the prior?")]),
    ]
    out = model.outgoing(history)
    flat = repr(out)
    for word in ("Smith", "John", "12345678", "2004-01-19"):
        assert word not in flat, word
    assert out[1].parts[0].args == {"answer": "[redacted] is a CT slice."}
    assert repr(history).count("Smith") == 3  # the session's own history is not modified
