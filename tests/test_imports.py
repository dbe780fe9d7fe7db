"""Layering: contracts and planner import no heavy library; package names resolve inside the repo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_tools_and_agent_do_not_import_heavy_libraries():
    code = (
        "import sys, tools, agent, agent.runner, agent.boundary.toolset, agent.builtin.planner, agent.builtin.procedures, agent.grounding.check;"
        "heavy=[m for m in ('torch','ultralytics','gradio','segment_anything','transformers') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_tools_imports_only_stdlib_and_pydantic():
    code = (
        "import sys; before=set(sys.modules); import tools;"
        "new={m.split('.')[0] for m in set(sys.modules)-before};"
        "bad=sorted(m for m in new if m not in sys.stdlib_module_names and not m.startswith('_sysconfigdata') and m not in "
        "('tools','pydantic','pydantic_core','pydantic_settings','typing_extensions','annotated_types',"
        "'typing_inspection','dotenv','_distutils_hack'));print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_packages_resolve_inside_the_repo():
    import agent
    import eval_scenarios
    import experts
    import tools
    import ui
    import voice

    for mod in (agent, tools, experts, ui, voice, eval_scenarios):
        assert Path(mod.__file__).resolve().is_relative_to(REPO), mod.__file__


def test_network_guard_is_in_force_and_records(network_guard):
    """The guard the session fixture installed is the one whose list is checked at the end of the run
    (conftest's ``pytest_sessionfinish`` fails a run with any attempt)."""
    import socket

    assert socket.socket.connect is network_guard["connect"]
    assert socket.socket.connect_ex is network_guard["connect_ex"]
    attempts = network_guard["attempts"]
    before = list(attempts)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:  # refused by the guard before any packet leaves (TEST-NET-3 documentation address)
        assert s.connect_ex(("203.0.113.7", 9)) != 0
    finally:
        s.close()
    assert attempts[len(before):] == ["('203.0.113.7', 9)"]
    del attempts[len(before):]  # this deliberate attempt must not fail the run
    assert attempts == before == []
