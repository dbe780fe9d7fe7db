"""The web app, driven through its real HTTP API with gradio_client (server on a free loopback port)."""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA, SMEAR

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

SMEAR_PATH = DATA / SMEAR  # 1 WBC per its VOC annotation
PLATELET_SMEAR = DATA / "bccd" / "images" / "BloodImage_00005.jpg"  # 3 platelets, 1 WBC annotated


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, shared_pool):
    if not SMEAR_PATH.is_file():
        pytest.skip(f"real data not found at {DATA}")
    from agent.runner import Assistant
    from tools.settings import OslerSettings
    from ui.app import build_app, serve

    settings = OslerSettings(data_dir=tmp_path_factory.mktemp("osler_ui"), shared_data=DATA)
    app = build_app(Assistant(settings, pool=shared_pool))
    _, url, share_url = serve(app, settings, port=_free_port(), prevent_thread_lock=True, quiet=True)
    yield types.SimpleNamespace(app=app, url=url, share_url=share_url, settings=settings)
    app.close()


def _client(server, tmp_path) -> Client:
    return Client(server.url, verbose=False, download_files=str(tmp_path))


def _texts(chat: list[dict]) -> list[str]:
    out = []
    for m in chat:
        content = m["content"]
        parts = content if isinstance(content, list) else [content]
        out.append(" ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in parts))
    return out


def _ask(client: Client, question: str):
    chat, overlay, trace, findings, summary, downloads, audio, box = client.predict(question, False, api_name="/ask")
    return types.SimpleNamespace(chat=chat, overlay=overlay, trace=trace, findings=findings, summary=summary,
                                 downloads=downloads, audio=audio, box=box)


def test_serves_on_loopback_without_share(server):
    assert server.url.startswith("http://127.0.0.1:")
    assert not server.share_url
    assert server.app.share is False
    assert server.app.analytics_enabled is False


def test_upload_smear_count_and_overlay(server, tmp_path):
    import cv2

    c = _client(server, tmp_path)
    preview, chat = c.predict(handle_file(str(SMEAR_PATH)), "", api_name="/load_current")
    assert Path(preview).is_file() and "Loaded the **current** study" in _texts(chat)[-1]
    r = _ask(c, "How many white blood cells are in this smear?")
    texts = _texts(r.chat)
    assert texts[-2 - len(r.trace["data"])] == "How many white blood cells are in this smear?"  # user turn, then calls
    answer = texts[-1]
    assert "**Answer:**" in answer and "1." in answer  # numbered steps precede the answer
    tools = [row[2] for row in r.trace["data"]]
    assert "count" in tools and all(row[6] == "ok" for row in r.trace["data"])
    count_row = r.trace["data"][tools.index("count")]
    assert count_row[4] not in ("-", "", None)  # the backend is named
    overlay = cv2.imread(r.overlay)
    assert overlay is not None and overlay.shape[:2] == (480, 640)  # the smear is 640x480
    answers_json = next(p for p in r.downloads if p.endswith("answers.json"))
    answers = json.loads(Path(answers_json).read_text())
    assert len(answers) == 1 and answers[0]["value"] == 1  # BloodImage_00001: one WBC annotated
    assert f"**{answers[0]['value']:g}" in r.summary
    assert r.findings["data"] and all(row[1] for row in r.findings["data"])  # every finding cites evidence
    assert r.box == ""  # the question box is cleared


def test_two_clients_keep_their_own_sessions(server, tmp_path):
    a, b = _client(server, tmp_path / "a"), _client(server, tmp_path / "b")
    a.predict(handle_file(str(SMEAR_PATH)), "", api_name="/load_current")
    b.predict(handle_file(str(PLATELET_SMEAR)), "", api_name="/load_current")
    ja = a.submit("How many white blood cells are in this smear?", False, api_name="/ask")
    jb = b.submit("How many platelets are there?", False, api_name="/ask")
    ra, rb = ja.result(timeout=120), jb.result(timeout=120)
    ta, tb = " ".join(_texts(ra[0])), " ".join(_texts(rb[0]))
    assert "white blood cells are in this smear" in ta and "platelets" not in ta.lower()
    assert "How many platelets" in tb and "BloodImage_00001" not in tb and "BloodImage_00005" in tb
    for trace in (ra[2], rb[2]):  # each tab's trace holds only its own one question
        assert {row[0] for row in trace["data"]} == {1}
    assert any('"WBC"' in row[3] for row in ra[2]["data"]) and any('"Platelets"' in row[3] for row in rb[2]["data"])


def test_bad_upload_shows_error_and_session_goes_on(server, tmp_path):
    c = _client(server, tmp_path)
    junk = tmp_path / "notes.png"
    junk.write_text("this is not an image")
    preview, chat = c.predict(handle_file(str(junk)), "", api_name="/load_current")
    assert preview is None
    assert _texts(chat)[-1].startswith("**Error:**") and "notes.png" in _texts(chat)[-1]
    r = _ask(c, "How many white blood cells are in this smear?")  # nothing loaded: an error, not a crash
    assert "**Error:**" in _texts(r.chat)[-1] and "no current image" in _texts(r.chat)[-1]
    c.predict(handle_file(str(SMEAR_PATH)), "", api_name="/load_current")
    r = _ask(c, "How many white blood cells are in this smear?")
    assert "**Answer:**" in _texts(r.chat)[-1] and r.overlay


def test_failing_tool_is_shown_and_the_session_goes_on(server, tmp_path, monkeypatch, shared_pool):
    from tools.errors import ExpertFailedError

    real_get = shared_pool.get

    def broken_detectors(key, backend=None):
        if key.startswith("detect:"):
            raise ExpertFailedError("the detector crashed (test)")
        return real_get(key, backend)

    c = _client(server, tmp_path)
    c.predict(handle_file(str(SMEAR_PATH)), "", api_name="/load_current")
    monkeypatch.setattr(shared_pool, "get", broken_detectors)
    r = _ask(c, "How many white blood cells are in this smear?")
    failed = [row for row in r.trace["data"] if row[6] == "failed"]
    assert failed and "detector crashed" in failed[0][7]
    assert any("failed" in (m.get("metadata") or {}).get("title", "") for m in r.chat)  # the call, in the chat
    assert "**Answer:**" in _texts(r.chat)[-1]
    monkeypatch.setattr(shared_pool, "get", real_get)
    r = _ask(c, "How many white blood cells are in this smear?")
    assert [row[6] for row in r.trace["data"] if row[0] == 2] and all(row[6] == "ok" for row in r.trace["data"]
                                                                      if row[0] == 2)
    assert json.loads(Path(next(p for p in r.downloads if p.endswith("answers.json"))).read_text())[1]["value"] == 1


def test_dicom_upload_is_shown_windowed(server, tmp_path):
    from ui.examples import _pydicom_radiograph

    dcm = _pydicom_radiograph()
    if dcm is None:
        pytest.skip("pydicom-data is not installed")
    from experts.imaging import load_image

    c = _client(server, tmp_path)
    preview, chat = c.predict(handle_file(str(dcm)), "", api_name="/load_current")
    import cv2

    shown = cv2.cvtColor(cv2.imread(preview), cv2.COLOR_BGR2RGB)
    expected = load_image(dcm, "current").pixels
    step = int(np.ceil(max(expected.shape[:2]) / 1024))
    assert np.array_equal(shown, expected[::step, ::step])  # PNG preview = the windowed pixels, exactly
    assert "dicom" in _texts(chat)[-1] and "window" in _texts(chat)[-1]


def _tone(path: Path) -> Path:
    import soundfile as sf

    sf.write(path, (0.1 * np.sin(np.linspace(0, 2000, 16000))).astype(np.float32), 16000)
    return path


def test_voice_falls_back_to_typing_when_no_recogniser_can_run(server, tmp_path, monkeypatch):
    """The real pipeline with every ASR backend reporting what it lacks: the tab says so and goes on."""
    import dataclasses

    import voice.asr

    missing = tuple(dataclasses.replace(s, check=lambda _settings, n=s.name: f"{n} is not installed")
                    for s in voice.asr.ASR_BACKENDS)
    monkeypatch.setattr(voice.asr, "ASR_BACKENDS", missing)
    wav = _tone(tmp_path / "q.wav")
    c = _client(server, tmp_path)
    asked, box, chat = c.predict(handle_file(str(wav)), api_name="/voice")
    assert asked == "" and "Voice is not available here" in _texts(chat)[-1]
    assert "whisper is not installed" in _texts(chat)[-1]


def test_voice_command_is_asked_and_other_words_go_to_the_box(server, tmp_path, monkeypatch):
    wav = _tone(tmp_path / "q.wav")
    fake = types.ModuleType("voice.pipeline")
    monkeypatch.setitem(sys.modules, "voice.pipeline", fake)
    c = _client(server, tmp_path)
    fake.transcribe_command = lambda path, settings: types.SimpleNamespace(
        question="How many white cells are visible?", transcript="how many white cells are there")
    asked, box, chat = c.predict(handle_file(str(wav)), api_name="/voice")
    assert (asked, box) == ("How many white cells are visible?", "")
    assert "how many white cells are there" in _texts(chat)[-1]
    fake.transcribe_command = lambda path, settings: types.SimpleNamespace(question=None, transcript="hello there")
    asked, box, chat = c.predict(handle_file(str(wav)), api_name="/voice")
    assert (asked, box) == ("", "hello there") and "not a command I know" in _texts(chat)[-1]


@pytest.mark.slow
def test_real_voice_round_trip(server, tmp_path):
    """Spoken question (synthesised) -> recognised command; answer read aloud as a WAV."""
    pytest.importorskip("voice.pipeline")
    import soundfile as sf
    from voice.tts import synthesize

    spoken = synthesize("How many white blood cells are there?", server.settings, path=tmp_path / "q.wav")
    c = _client(server, tmp_path)
    c.predict(handle_file(str(SMEAR_PATH)), "", api_name="/load_current")
    asked, box, _ = c.predict(handle_file(str(spoken)), api_name="/voice")
    assert "white" in asked.lower() and asked.endswith("?")
    chat, overlay, trace, findings, summary, downloads, audio, box = c.predict(asked, True, api_name="/ask")
    assert "count" in [row[2] for row in trace["data"]]
    data, rate = sf.read(audio)
    assert rate > 8000 and len(data) > rate // 2  # at least half a second of speech


def test_settings_panel_backends_and_planner(server, tmp_path):
    c = _client(server, tmp_path)
    table, device = c.predict(api_name="/backends")
    rows = {(r[0], r[1]): r[2] for r in table["data"]}
    assert rows[("detect:blood_cells", "opencv")] == "ready"
    assert "device setting" in device
    msg = c.predict("openai", f"http://127.0.0.1:{_free_port()}/v1", "some-model", api_name="/planner")
    assert msg.startswith("**Error:**") and "cannot reach" in msg
    assert "builtin" in c.predict("builtin", "", "", api_name="/planner")


def test_example_case_loads_real_images(server, tmp_path):
    from ui.examples import example_cases

    cases = example_cases(server.settings)
    assert cases and all(case.files_exist() for case in cases)
    pair = next((i for i, case in enumerate(cases) if case.prior is not None), None)
    if pair is None:
        pytest.skip("no prior/current pair in the data here")
    c = _client(server, tmp_path)
    out = c.predict(pair, api_name="/example")
    cur_view, pri_view, question = out[0], out[1], out[4]
    assert Path(cur_view).is_file() and Path(pri_view).is_file() and question == cases[pair].question


def test_views_render_by_type():
    from tools.answer import AskResult, Finding, ReasoningStep, Timings, ToolCallRecord
    from ui import views

    ok = ToolCallRecord(id="E1", name="count", args={"target": "blood_cells", "classes": ["WBC"]}, backend="opencv",
                        elapsed_ms=12.34, ok=True, summary="1 WBC")
    bad = ToolCallRecord(id="E2", name="segment", args={"target": "polyp"}, ok=False, error="no backend")
    r = AskResult(question="q", answer="I count 1 WBC [E1].", value=1, unit="cells", tool_calls=[ok, bad],
                  findings=[Finding(text="1 WBC", evidence=["E1"]), Finding(text="x", evidence=["E9"], verified=False)],
                  steps=[ReasoningStep(text="counted", evidence=["E1"])], timings=Timings(total_ms=5, experts_ms=1),
                  planner="builtin")
    assert views.trace_rows([r, r])[2] == [2, "E1", "count", 'target=blood_cells, classes=["WBC"]', "opencv", 12.3,
                                           "ok", "1 WBC"]
    assert views.trace_rows([r])[1][6:] == ["failed", "no backend"]
    assert views.findings_rows(r) == [["1 WBC", "E1", "count", "yes"], ["x", "E9", "", "NO"]]
    msgs = views.chat_messages(r)
    assert [m["metadata"]["title"] for m in msgs[:2]] == ['E1 · count(target=blood_cells, classes=["WBC"])',
                                                          "E2 · segment(target=polyp) — failed"]
    assert msgs[-1]["content"].startswith("1. counted `E1`") and "**Value:** 1 cells" in msgs[-1]["content"]


def test_main_parses_host_and_port(monkeypatch, tmp_path):
    import ui.app as app_mod

    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path))
    seen = {}

    def fake_serve(app, settings, **kw):
        seen.update(host=settings.host, port=settings.port, app=app)
        return None, f"http://{settings.host}:{settings.port}/", None

    monkeypatch.setattr(app_mod, "serve", fake_serve)
    monkeypatch.setattr(app_mod, "build_app",
                        lambda assistant: types.SimpleNamespace(close=lambda: None, block_thread=lambda: None))
    assert app_mod.main(["--port", "7999"]) == 0
    assert seen["host"] == "127.0.0.1" and seen["port"] == 7999
    assert app_mod.main(["--host", "0.0.0.0", "--port", "8001"]) == 0
    assert seen["host"] == "0.0.0.0" and seen["port"] == 8001


def test_main_reports_a_taken_port(server, capsys, monkeypatch, tmp_path):
    from ui.app import main

    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path))
    port = int(server.url.rstrip("/").rsplit(":", 1)[1])
    assert main(["--port", str(port)]) == 2
    assert "cannot listen" in capsys.readouterr().err



def test_click_maps_preview_pixels_to_the_original_image(assistant, tmp_path):
    """The preview of a 2500 x 1200 study is strided by 3 (at most 1024 px a side), so a click at preview
    (100, 50) is original (300, 150); no study, no question."""
    import cv2

    from ui.handlers import Handlers, _preview

    h = Handlers(assistant, [])
    q, st = h.click_question(None, [10, 10])
    assert q == ""
    big = tmp_path / "big.png"
    cv2.imwrite(str(big), np.full((1200, 2500, 3), 128, np.uint8))
    st.session.load("current", big)
    assert _preview(st.session.images["current"].pixels).shape[:2] == (400, 834)
    q, st = h.click_question(st, [100, 50])
    assert q == "Outline and measure the region at (300, 150)"
    q, _ = h.click_question(st, [5000, 5000])  # clamped into the image
    assert q == "Outline and measure the region at (2499, 1199)"


# ---- issue 15: what the server hands out, and text that is not valid Unicode --------------------
def _get(server, path: str):
    import httpx

    return httpx.get(f"{server.url.rstrip('/')}/gradio_api/file={path}", timeout=30)


def test_data_dir_is_never_served_only_the_tabs_own_copies(server, tmp_path):
    """Before: /gradio_api/file= served audit.jsonl and every session's answers.json and overlays."""
    c = Client(server.url, verbose=False, download_files=False)
    c.predict(handle_file(str(SMEAR_PATH)), "", api_name="/load_current")
    chat, overlay, *_rest = c.predict("How many white blood cells are in this smear?", False, api_name="/ask")
    downloads = _rest[3]
    data_dir = Path(server.settings.data_dir).resolve()
    audit = server.settings.audit_path.resolve()
    assert audit.is_file()
    session_files = sorted(data_dir.glob("sessions/*/*.png")) + sorted(data_dir.glob("sessions/*/answers.json"))
    assert session_files, "the ask wrote no session files"
    for path in [audit, *session_files]:
        assert _get(server, str(path)).status_code == 403, path
    own = [f for f in [overlay, *downloads] if isinstance(f, dict) and "path" in f]  # overlay: a skip without one
    assert own and all(not Path(f["path"]).resolve().is_relative_to(data_dir) for f in own)
    for f in own:  # this tab's own copies are served (keyed-hash paths in gradio's cache)
        r = _get(server, f["path"])
        assert r.status_code == 200 and r.content
    answers = json.loads(_get(server, next(f["path"] for f in downloads if f["path"].endswith("answers.json"))).text)
    assert answers[0]["images"]["current"]["source"].startswith("current-")  # no file name in the session file


def test_the_live_tab_opens_no_path_on_the_server(server, tmp_path):
    """Before: the Live tab's source box opened any file the server could read (another session's overlay, a
    patient video, a file:// URL) and showed its frames to whoever typed the path."""
    c = _client(server, tmp_path)
    c.predict(handle_file(str(SMEAR_PATH)), "", api_name="/load_current")
    _ask(c, "How many white blood cells are in this smear?")
    overlay = next(Path(server.settings.data_dir).glob("sessions/*/overlay-*.png"))  # another tab's patient image
    for source in (str(overlay), str(SMEAR_PATH), f"file://{overlay}", f"  {overlay}  "):
        status = c.predict(source, None, 5, 3, api_name="/live_start")
        assert status.startswith("Cannot start:") and "not a path on the server" in status, (source, status)
    status = c.predict("rtsp://127.0.0.1:9/none", None, 5, 3, api_name="/live_start")  # a stream URL is tried
    assert "not a path on the server" not in status


def test_a_live_answer_is_served_as_the_tabs_own_copy(server, tmp_path):
    """Before: a Live answer's overlay and spoken answer lay in the data dir, which the server blocks, so every
    Live question failed in the app ("The upstream Gradio app has raised an exception")."""
    from voice.live_demo import make_pan_zoom_video

    video = tmp_path / "scope.avi"
    make_pan_zoom_video(video, DATA, polyp_s=6.0, negative_s=0.5)
    c = Client(server.url, verbose=False, download_files=False)  # outputs: the server's paths
    folders = set(Path(tempfile.gettempdir()).glob("osler-live-*"))
    umask = os.umask(0o022)  # the server runs in this process: its copies must be private all the same
    status = c.predict("", handle_file(str(video)), 5, 3, api_name="/live_start")
    assert status.startswith("Live:"), status
    try:
        deadline = time.monotonic() + 60  # until a frame the gate trusts: the answer has an overlay
        while not (out := c.predict("How many polyps are visible?", api_name="/live_ask"))[3]:
            assert time.monotonic() < deadline, out[0]
            time.sleep(0.2)
        answer, spoken, trace, overlay = out
        assert "frame" in answer and any(row[2] == "count" for row in trace["data"])
        data_dir = Path(server.settings.data_dir).resolve()
        for served in (f for f in (overlay, spoken) if f):
            assert not Path(served["path"]).resolve().is_relative_to(data_dir)
            assert _get(server, served["path"]).status_code == 200
        (tab,) = set(Path(tempfile.gettempdir()).glob("osler-live-*")) - folders  # before: its copies were 0644
        assert oct(tab.stat().st_mode & 0o777) == "0o700"
        assert [oct(f.stat().st_mode & 0o777) for f in tab.iterdir()] == ["0o600"] * len(list(tab.iterdir())) != []
    finally:
        os.umask(umask)
        c.predict(api_name="/live_stop")


def test_a_lone_surrogate_through_the_api_does_not_break_the_tab(server, tmp_path, monkeypatch):
    """A JavaScript client may send "\\udcff" (a lone surrogate) in JSON.  Before: the chat could no longer be
    serialised and every later ask of that tab failed."""
    import httpx

    real_post = httpx.post

    def post_like_a_browser(url, *args, json=None, **kw):  # JSON.stringify escapes lone surrogates as \\udcff
        if json is not None:
            import json as _json

            kw["content"] = _json.dumps(json).encode("ascii")
            kw["headers"] = {**(kw.get("headers") or {}), "content-type": "application/json"}
        return real_post(url, *args, **kw)

    c = _client(server, tmp_path)
    c.predict(handle_file(str(SMEAR_PATH)), "2024-03-01", api_name="/load_current")
    monkeypatch.setattr(httpx, "post", post_like_a_browser)
    first = _ask(c, "How many \udcff\udcfe white blood cells are in this smear?")
    texts = _texts(first.chat)
    assert any("How many \ufffd\ufffd white blood cells" in t for t in texts)
    assert "**Answer:**" in texts[-1] or "**Error:**" in texts[-1]
    second = _ask(c, "How many white blood cells are in this smear?")
    assert "**Answer:**" in _texts(second.chat)[-1]


def test_upload_with_an_impossible_date_is_refused_in_one_line(server, tmp_path):
    c = _client(server, tmp_path)
    preview, chat = c.predict(handle_file(str(SMEAR_PATH)), "2023-13-45", api_name="/load_current")
    last = _texts(chat)[-1]
    assert preview is None and last.startswith("**Error:**") and "is not a valid date" in last
    preview, chat = c.predict(handle_file(str(SMEAR_PATH)), "2023-01-05", api_name="/load_current")
    assert preview is not None and "study date 2023-01-05" in _texts(chat)[-1]


def test_sigterm_removes_the_uploaded_dicom(tmp_path):
    """Before: after SIGTERM the upload stayed in gradio's temporary folder (only Ctrl+C cleaned up)."""
    import os
    import signal
    import subprocess

    import pydicom.data

    uploads = tmp_path / "gradio"
    uploads.mkdir()
    port = _free_port()
    env = dict(os.environ, GRADIO_TEMP_DIR=str(uploads), OSLER_DATA_DIR=str(tmp_path / "osler"),
               OSLER_TORCH_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "serve", "--port", str(port)], env=env,
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()  # the user's GRADIO_TEMP_DIR is used, and the log says so
        assert "GRADIO_TEMP_DIR is set" in first and "Osler is running at" in proc.stdout.readline()
        c = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path / "dl"))
        named = tmp_path / "Testperson_Johanna.dcm"
        named.write_bytes(Path(pydicom.data.get_testdata_file("CT_small.dcm")).read_bytes())
        c.predict(handle_file(str(named)), "", api_name="/load_current")
        assert list(uploads.rglob("*.dcm")), "the upload did not reach the temporary folder"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(uploads.rglob("*.dcm"))


def test_served_patient_files_are_private_under_umask_022(tmp_path):
    """Before: with umask 022 gradio's upload folder (a shared /tmp/gradio), the session folders, their overlays
    and answers.json were readable by all local users (0755/0644)."""
    import signal
    import subprocess

    tmp, data = tmp_path / "tmp", tmp_path / "osler"
    tmp.mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}
    env.update(TMPDIR=str(tmp), OSLER_DATA_DIR=str(data), OSLER_TORCH_THREADS="1", OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "serve", "--port", str(port)], env=env,
                            cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=lambda: os.umask(0o022))
    try:
        assert "Osler is running at" in proc.stdout.readline()
        c = Client(f"http://127.0.0.1:{port}/", verbose=False, download_files=str(tmp_path / "dl"))
        c.predict(handle_file(str(SMEAR_PATH)), "", api_name="/load_current")
        assert _ask(c, "How many white blood cells are in this smear?").downloads
        uploads = [p for p in tmp.iterdir() if any(p.rglob(SMEAR_PATH.name))]
        assert len(uploads) == 1 and uploads[0].name.startswith("osler-gradio-")
        dirs = [p for p in [*tmp.iterdir(), data, *data.rglob("*")] if p.is_dir()]
        files = [p for p in [*data.rglob("*"), *tmp.glob("osler-tab-*/*")] if p.is_file()]
        assert any(p.name == "answers.json" for p in files) and any(p.suffix == ".png" for p in files)
        wrong = {str(p): oct(p.stat().st_mode & 0o777) for p in dirs if p.stat().st_mode & 0o777 != 0o700}
        wrong |= {str(p): oct(p.stat().st_mode & 0o777) for p in files if p.stat().st_mode & 0o777 != 0o600}
        assert not wrong
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not list(tmp.glob("osler-gradio-*"))  # removed when the app stops


def test_a_network_interface_needs_a_login(tmp_path, monkeypatch, capsys):
    """Binding anything but the loopback interface without a login is refused before anything listens; an auth
    file must hold 'user:password' lines; open_network is the explicit way out."""
    import gradio as gr

    from tools.settings import OslerSettings
    from ui.app import LoginRequired, main, read_auth, serve

    with gr.Blocks() as app:
        gr.Markdown("x")
    settings = OslerSettings(data_dir=tmp_path / "d", host="0.0.0.0")
    with pytest.raises(LoginRequired, match="auth_file"):
        serve(app, settings, port=_free_port(), prevent_thread_lock=True, quiet=True)
    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path / "d"))
    assert main(["--host", "0.0.0.0", "--port", str(_free_port())]) == 2
    assert "without a login" in capsys.readouterr().err
    bad = tmp_path / "auth.txt"
    bad.write_text("# logins\nalice\n")
    with pytest.raises(ValueError, match="line 2"):
        read_auth(bad)
    bad.write_text("# nobody\n\n")
    with pytest.raises(ValueError, match="no 'user:password'"):
        read_auth(bad)
    with pytest.raises(ValueError, match="cannot read"):
        read_auth(tmp_path / "missing.txt")
    good = tmp_path / "logins.txt"
    good.write_text("alice:s3cr:et\n bob : pw\n")
    assert read_auth(good) == [("alice", "s3cr:et"), ("bob", " pw")]


def test_the_login_guards_the_api(tmp_path):
    """With an auth file (here on the loopback interface) the app's API answers nothing before a login."""
    import urllib.error
    import urllib.request

    import gradio as gr

    from tools.settings import OslerSettings
    from ui.app import serve

    with gr.Blocks() as app:
        box = gr.Textbox()
        gr.Button("go").click(lambda s: s.upper(), box, box, api_name="echo")
    logins = tmp_path / "logins.txt"
    logins.write_text("alice:secret\n")
    _, url, _ = serve(app, OslerSettings(data_dir=tmp_path / "d", auth_file=logins), port=_free_port(),
                      prevent_thread_lock=True, quiet=True)
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url.rstrip("/") + "/config", timeout=10)
        assert err.value.code in (401, 403)
        with pytest.raises(Exception):
            Client(url, verbose=False)
        client = Client(url, verbose=False, auth=("alice", "secret"))
        assert client.predict("hi", api_name="/echo") == "HI"
    finally:
        app.close()
