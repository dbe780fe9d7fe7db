"""Shared test fixtures: offline switches, no network beyond loopback, real data paths."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = (REPO / ".." / "shared" / "data").resolve()

for _k, _v in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false",
               "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1", "DO_NOT_TRACK": "1"}.items():
    os.environ.setdefault(_k, _v)
os.environ["NO_PROXY"] = "127.0.0.1,localhost"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
NETWORK_ATTEMPTS: list[str] = []


def _is_local(address) -> bool:
    if isinstance(address, (str, bytes)):  # AF_UNIX
        return True
    host = str(address[0])
    return host in ("localhost", "::1", "0.0.0.0") or host.startswith("127.")


def _guarded_connect(self, address):
    if not _is_local(address):
        NETWORK_ATTEMPTS.append(repr(address))
        raise OSError(f"network access blocked in tests: {address!r}")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not _is_local(address):
        NETWORK_ATTEMPTS.append(repr(address))
        return 111
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def _no_network():
    """Every test runs with connects to anything but loopback refused (and recorded)."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture
def network_guard():
    """The guard in force and the list it records refused connects in (the same objects, whatever
    name a test module imported this file under)."""
    return {"connect": _guarded_connect, "connect_ex": _guarded_connect_ex, "attempts": NETWORK_ATTEMPTS}


def pytest_sessionfinish(session, exitstatus):
    """A run in which anything tried to reach the network fails, whichever test did it."""
    if NETWORK_ATTEMPTS:
        session.config.get_terminal_writer().line(
            f"network attempts during the test run (blocked): {NETWORK_ATTEMPTS}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA.exists():
        pytest.skip(f"real data not found at {DATA}")
    return DATA


@pytest.fixture
def settings(tmp_path):
    from tools.settings import OslerSettings

    return OslerSettings(data_dir=tmp_path / "osler", shared_data=DATA)


@pytest.fixture(scope="session")
def shared_pool():
    """One expert pool for the whole run (models load once)."""
    from experts.registry import ExpertPool
    from tools.settings import OslerSettings

    return ExpertPool(OslerSettings())


@pytest.fixture
def assistant(settings, shared_pool):
    from agent.runner import Assistant

    return Assistant(settings, pool=shared_pool)  # the pool's experts do not depend on data_dir


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module's model tests: on the shared 2-core machine two threads
    oversubscribe and run ~4x slower.  Use with ``pytest.mark.usefixtures("one_torch_thread")``."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SMEAR = "bccd/images/BloodImage_00001.jpg"  # 1 WBC, 0 platelets per its VOC annotation


def first_wbc_answer_in_fresh_process(image: Path, data_dir: Path, settings_args: str, watch: tuple[str, ...],
                                      timeout: int = 600) -> dict:
    """Ask "How many white blood cells are in this smear?" about ``image`` in a new Python process (settings
    ``OslerSettings(data_dir=..., <settings_args>)``) and return its value, the provenance notes of its tool
    calls and which of the ``watch`` modules that process imported."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from agent.runner import Assistant\n"
        "from tools.settings import OslerSettings\n"
        f"a = Assistant(OslerSettings(data_dir={str(data_dir)!r}, {settings_args}))\n"
        "s = a.new_session()\n"
        f"s.load('current', {str(image)!r})\n"
        "r = a.ask(s, 'How many white blood cells are in this smear?')\n"
        "print(json.dumps({'value': r.value, 'notes': [str(s.evidence[c.id].provenance.note) for c in r.tool_calls],\n"
        f"                  'mods': [m for m in {tuple(watch)!r} if m in sys.modules]}}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def scripted_smear(tmp_path, shared_pool, data_dir):
    """(script, settings_for) -> (server, assistant, session): a scripted OpenAI-compatible server on 127.0.0.1
    (tests/scripted_openai_server.py), an assistant with ``settings_for(server)`` (a dict of OslerSettings fields)
    and a session with the smear loaded; the servers stop at teardown."""
    from agent.runner import Assistant
    from tests.scripted_openai_server import ScriptedOpenAIServer
    from tools.settings import OslerSettings

    servers = []

    def _make(script, settings_for):
        server = ScriptedOpenAIServer(script).start()
        servers.append(server)
        settings = OslerSettings(data_dir=tmp_path / "osler", **settings_for(server))
        assistant = Assistant(settings, pool=shared_pool)
        session = assistant.new_session()
        session.load("current", data_dir / SMEAR)
        return server, assistant, session

    yield _make
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def live_recognizer():
    """The bundled Whisper recogniser with the live command grammar, as ``osler live`` builds it (grammar check
    and command spotter on), loaded once; skipped with the reason when Whisper cannot run here."""
    from tools.settings import OslerSettings
    from voice.asr_whisper import WhisperRecognizer, check
    from voice.config import voice_settings
    from voice.live_commands import LIVE_SET, hear_spoken, is_live_command

    s = OslerSettings()
    if check(s):
        pytest.skip(f"Whisper cannot run here: {check(s)}")
    vs = voice_settings(s, whisper_threads=1)
    rec = WhisperRecognizer(s, vs, is_command=lambda t: is_live_command(t, vs.wake_word), grammar=LIVE_SET,
                            parse=lambda t: hear_spoken(t, vs.wake_word)[1])
    rec.load()
    return rec
