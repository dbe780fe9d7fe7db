"""An attacker's probe of the web app: what one tab, a browser or a typed URL could reach or leak, and bad input.

Each test names what happened before its fix."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pydicom
import pydicom.data
import pytest

from tests.conftest import DATA, SMEAR

SMEAR_PATH = DATA / SMEAR


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _texts(chat: list[dict]) -> list[str]:
    return [m["content"] if isinstance(m["content"], str) else json.dumps(m["content"]) for m in chat]


def test_no_run_history_is_kept_in_the_browser_or_offered_for_upload(tmp_path):
    """Before: gradio's run history was on: every run (questions, answers, links to the overlays) was kept in the
    browser's storage after the tab closed, listed at /gradio_api/runs for the next user of that browser, and
    that page offered to save the runs to a Hugging Face bucket."""
    import gradio as gr

    from tools.settings import OslerSettings
    from ui.app import serve

    with gr.Blocks() as app:
        box = gr.Textbox()
        gr.Button("go").click(lambda s: s.upper(), box, box, api_name="echo")
    _, url, _ = serve(app, OslerSettings(data_dir=tmp_path / "d"), port=_free_port(), prevent_thread_lock=True,
                      quiet=True)
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/config", timeout=10) as r:
            assert json.load(r)["run_history"] is False
        for route in ("/gradio_api/runs", "/gradio_api/run-history/records"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(url.rstrip("/") + route, timeout=10)
            assert err.value.code == 404, route
    finally:
        app.close()


@pytest.mark.parametrize("url, local", [
    ("http://127.0.0.1:8000/v1", True), ("http://127.3.2.1/v1", True), ("http://localhost:8000/v1", True),
    ("http://[::1]:8000/v1", True), ("http://127.0.0.1.attacker.example/v1", False),
    ("http://127.attacker.example/v1", False), ("http://localhost.attacker.example/v1", False),
])
def test_a_host_name_that_starts_with_127_is_not_this_machine(url, local):
    """Before: any host name starting with "127." counted as this machine, so a planner at
    http://127.0.0.1.attacker.example/v1 (a name its owner points anywhere) got names, IDs and dates as is."""
    from agent.privacy import is_loopback, policy_for
    from tools.settings import OslerSettings

    assert is_loopback(url) is local
    assert policy_for(OslerSettings(), url).deidentify is (not local)


class _ModelsServer(http.server.BaseHTTPRequestHandler):
    seen: list[str | None] = []

    def do_GET(self):  # noqa: N802
        type(self).seen.append(self.headers.get("Authorization"))
        body = b'{"data": [{"id": "m"}]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_planner_url_typed_in_a_tab_gets_neither_the_key_nor_the_consent(tmp_path, shared_pool):
    """Before: a tab that typed another server URL in Settings sent the operator's API key there, and with
    allow_remote_phi (the operator's consent for *their* server) every patient's names and dates too."""
    from agent.runner import Assistant
    from tools.settings import OslerSettings
    from ui.handlers import Handlers

    servers = []
    for _ in range(2):
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ModelsServer)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    configured, typed = (f"http://127.0.0.1:{s.server_address[1]}/v1" for s in servers)
    settings = OslerSettings(data_dir=tmp_path / "d", base_url=configured, model="m", api_key="sk-operator",
                             allow_remote_phi=True)
    h = Handlers(Assistant(settings, pool=shared_pool), [])
    try:
        _ModelsServer.seen.clear()
        status, st = h.set_planner("openai", typed, "m", None)
        assert "Error" not in status, status
        assert _ModelsServer.seen == [None]  # no Authorization header
        assert st.assistant.settings.api_key is None and st.assistant.settings.allow_remote_phi is False
        status, st = h.set_planner("openai", configured + "/", "m", st)  # the configured server keeps both
        assert _ModelsServer.seen[-1] == "Bearer sk-operator"
        assert st.assistant.settings.api_key == "sk-operator" and st.assistant.settings.allow_remote_phi is True
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()


@pytest.fixture
def named_ct(tmp_path) -> Path:
    ds = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
    ds.PatientName, ds.PatientID = "Testperson^Johanna", "MRN99887766"
    path = tmp_path / "upload" / "ct.dcm"
    path.parent.mkdir()
    ds.save_as(path)
    return path


def _ask(h, question, st):
    out = {}
    for values in h.ask(question, False, st):
        out.update(values)
    return out


def test_a_different_study_after_answers_is_a_new_session(assistant, named_ct, tmp_path):
    """Before: uploading another current study after asking kept the tab's session, so the next patient's report
    and DICOM SR (which carries that patient's name and ID) listed the previous image's findings as theirs, e.g.
    a white-cell count of a blood smear in a CT patient's measurements, and the planner kept the old history."""
    from agent.export.files import export_session
    from ui.handlers import Handlers

    if not SMEAR_PATH.is_file():
        pytest.skip(f"real data not found at {DATA}")
    h = Handlers(assistant, [])
    _, _, st = h.load_study("current", str(SMEAR_PATH), "", None)
    assert "**Answer:**" in _texts(_ask(h, "How many white blood cells are in this smear?", st)["chat"])[-1]
    smear_session = st.session
    _, _, same = h.load_study("current", str(SMEAR_PATH), "2024-03-01", st)  # the same file again: same session
    assert same.session is smear_session and len(same.session.answers) == 1
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    _, _, same = h.load_study("current", str(junk), "", st)  # an unreadable file: the session stays as it was
    assert same.session is smear_session and len(same.session.answers) == 1

    preview, chat, st = h.load_study("current", str(named_ct), "", same)
    assert preview is not None and st.session is not smear_session
    assert not st.session.answers and not st.session.history
    assert "new session" in _texts(chat)[0] and "white blood" not in " ".join(_texts(chat))
    assert "**Answer:**" in _texts(_ask(h, "What kind of image is this?", st)["chat"])[-1]
    result = export_session(st.session, tmp_path / "export", deidentify=False)
    for dcm in (p for p in result.paths if p.suffix == ".dcm"):  # before: an SR with this patient's name and ID
        assert "WBC" not in str(pydicom.dcmread(dcm)), dcm.name  # holding the smear's white-cell count
    report = (tmp_path / "export" / "report.md").read_text(encoding="utf-8")
    assert "CT" in report and "WBC" not in report and "white blood" not in report


def test_errors_about_an_upload_do_not_show_the_servers_folders(assistant, tmp_path):
    """Before: a file the decoder could not identify was refused with the server's full path of the upload
    (gradio's temporary folder and the keyed hash of the file) in the chat; a Live tab upload that would not
    open likewise; and a camera index too large for OpenCV raised out of the handler."""
    from ui.handlers import Handlers
    from ui.live_tab import LiveHandlers

    folder = tmp_path / "osler-gradio-secret" / "0123abcd"
    folder.mkdir(parents=True)
    bad = folder / "scan.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    preview, chat, _ = Handlers(assistant, []).load_study("current", str(bad), "", None)
    last = _texts(chat)[-1]
    assert preview is None and last.startswith("**Error:**") and "scan.png" in last
    assert str(tmp_path) not in last and "osler-gradio-secret" not in last

    empty = folder / "scope.avi"
    empty.write_bytes(b"")
    live = LiveHandlers(assistant)
    out = live.start("", str(empty), 5, 3, None)
    assert out["state"] is None and out["status"].startswith("Cannot start:") and "scope.avi" in out["status"]
    assert str(tmp_path) not in out["status"]
    out = live.start("123456789012345678901234567890", None, 5, 3, None)
    assert out["state"] is None and out["status"].startswith("Cannot start:")


def test_the_deidentified_report_leaves_out_names_and_ids_typed_in_the_question(assistant, named_ct):
    """Before: with "Remove patient identifiers" ticked, the report (Markdown, PDF) and answers.json quoted each
    question as typed, e.g. "What kind of image is Johanna Testperson's scan (MRN99887766)?", although the
    session's own records had those words removed."""
    from ui.export_view import report_view
    from ui.handlers import Handlers

    h = Handlers(assistant, [])
    _, _, st = h.load_study("current", str(named_ct), "", None)
    chat = _ask(h, "What kind of image is Johanna Testperson's scan (MRN99887766)?", st)["chat"]
    assert "**Answer:**" in _texts(chat)[-1]
    md, files, st = report_view(st, True)
    texts = [md] + [Path(f).read_text(encoding="utf-8") for f in files if f.endswith((".md", ".json"))]
    assert len(texts) == 3 and "What kind of image is" in texts[1]
    for text in texts:
        assert "Johanna" not in text and "Testperson" not in text and "MRN99887766" not in text
    md, files, st = report_view(st, False)  # not asked to de-identify: the question as typed
    assert "Johanna Testperson" in md


def test_osler_ask_deidentify_leaves_out_names_and_ids_typed_in_the_question(named_ct, tmp_path, monkeypatch, capsys):
    """Before: ``osler ask ... --out DIR --deidentify`` wrote the question as typed into report.md and answers.json."""
    from ui.cli import main

    monkeypatch.setenv("OSLER_DATA_DIR", str(tmp_path / "osler"))
    out = tmp_path / "ask"
    assert main(["ask", str(named_ct), "What kind of image is Johanna Testperson's scan (MRN99887766)?",
                 "--out", str(out), "--deidentify"]) == 0
    assert "Johanna" in capsys.readouterr().out  # the terminal shows what was asked; the files do not
    for name in ("report.md", "answers.json"):
        text = (out / name).read_text(encoding="utf-8")
        assert "What kind of image is" in text and "Johanna" not in text and "MRN99887766" not in text, name


def _status(url: str, headers: dict[str, str] | None = None, method: str = "GET", data: bytes | None = None) -> int:
    req = urllib.request.Request(url, headers=headers or {}, method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_other_web_pages_other_host_names_and_url_fetches_are_refused(tmp_path):
    """Before: gradio answered any page served from localhost (any port) with credentials, any Host header (a
    rebound DNS name reached the loopback server), uploads from any origin (a form post needs no preflight), and
    /gradio_api/file=https://... fetched the URL for the caller.  Now 403; the app itself, scripts without an
    Origin (gradio_client) and a configured proxy origin still work."""
    import gradio as gr
    from gradio_client import Client

    from tools.settings import OslerSettings
    from ui.app import serve

    with gr.Blocks() as app:
        box = gr.Textbox()
        gr.Button("go").click(lambda s: s.upper(), box, box, api_name="echo")
    port = _free_port()
    settings = OslerSettings(data_dir=tmp_path / "d", serve_origins=["https://osler.example.org"])
    _, url, _ = serve(app, settings, port=port, prevent_thread_lock=True, quiet=True)
    base = url.rstrip("/")
    try:
        info = base + "/gradio_api/info"
        assert _status(base + "/") == 200 and _status(info) == 200
        assert _status(info, {"Origin": base}) == 200
        assert _status(info, {"Origin": "https://osler.example.org"}) == 200
        assert _status(info, {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}) == 200
        assert _status(info, {"Origin": "http://localhost:9999"}) == 403  # another local page
        assert _status(info, {"Origin": "null"}) == 403  # a sandboxed frame or a file:// page
        assert _status(info, {"Host": f"rebound.example:{port}"}) == 403  # DNS rebinding
        form = {"Origin": "http://evil.example", "Content-Type": "multipart/form-data; boundary=x"}
        assert _status(base + "/gradio_api/upload", form, "POST", b"--x--\r\n") == 403
        assert _status(base + "/gradio_api/file=https://example.org/a.png") == 403
        assert Client(base + "/", verbose=False).predict("abc", api_name="/echo") == "ABC"
    finally:
        app.close()


def test_on_another_interface_any_host_name_may_reach_the_app_but_not_another_page():
    from ui.origin_guard import OriginGuard

    def scope(**headers: str) -> dict:
        return {"type": "http", "path": "/gradio_api/info",
                "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()]}

    guard = OriginGuard(lambda *a: None, loopback_only=False)
    assert guard.why_refused(scope(Host="osler.ward3.local:7860")) is None
    assert guard.why_refused(scope(Host="osler.ward3.local:7860", Origin="http://osler.ward3.local:7860")) is None
    assert "another web page" in guard.why_refused(scope(Host="osler.ward3.local:7860", Origin="http://evil.example"))
    assert "not this machine" in OriginGuard(lambda *a: None, loopback_only=True).why_refused(
        scope(Host="osler.ward3.local:7860"))


def test_the_email_pattern_of_the_scrubber_takes_linear_time():
    """Before: the e-mail pattern could start at every character of a run like 'a.a.a.', so scrubbing 40,000 such
    characters took 3-9 s (quadratic: 200,000 would take minutes); now a match starts only at a token."""
    import time

    from agent.privacy import scrub_text

    t0 = time.perf_counter()
    scrub_text("a." * 100_000)
    assert time.perf_counter() - t0 < 5.0
    text, found = scrub_text("write to john.doe@example.org today")
    assert "john.doe@example.org" not in text and found
