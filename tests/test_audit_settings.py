"""Audit log durability and the settings object."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SMEAR


def test_crash_mid_answer_leaves_earlier_lines_intact(assistant, data_dir, settings, monkeypatch):
    from agent.builtin import procedures

    s = assistant.new_session()
    s.load("current", data_dir / SMEAR)
    real = procedures._count

    def crash_after_count(*a, **k):
        yield from real(*a, **k)
        raise KeyboardInterrupt("operator pulled the plug")

    monkeypatch.setattr(procedures, "_count", crash_after_count)
    with pytest.raises(KeyboardInterrupt):
        assistant.ask(s, "How many platelets?")
    # a torn last line, as a hard kill could leave
    with settings.audit_path.open("a") as fh:
        fh.write('{"event": "tool_ca')
    from agent.audit import AuditLog

    events = [e["event"] for e in AuditLog(settings.audit_path).read() if e.get("session") == s.id]
    assert events == ["image", "question", "tool_call", "tool_call"]
    monkeypatch.undo()
    r = assistant.ask(s, "How many platelets?")  # the session goes on
    assert r.tool_calls[-1].ok


def test_audit_has_no_pixels(assistant, data_dir, settings):
    s = assistant.new_session()
    s.load("current", data_dir / SMEAR)
    assistant.ask(s, "Count the white cells and give the area of the largest")
    for line in settings.audit_path.read_text().splitlines():
        assert len(line) < 20000
        rec = json.loads(line)
        assert "pixels" not in rec


def test_settings_env_and_toml(tmp_path, monkeypatch):
    from tools.settings import OslerSettings

    cfg = tmp_path / "osler.toml"
    cfg.write_text('planner = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n[models]\nsam_model_type = "vit_l"\n')
    monkeypatch.setenv("OSLER_CONFIG", str(cfg))
    monkeypatch.setenv("OSLER_DEVICE", "cpu")
    monkeypatch.setenv("OSLER_MODELS__SAM_CHECKPOINT", "/models/sam.pth")
    s = OslerSettings()
    assert s.planner == "openai" and s.base_url == "http://127.0.0.1:9/v1"
    assert s.device == "cpu" and str(s.models.sam_checkpoint) == "/models/sam.pth"
    assert s.models.sam_model_type == "vit_l"
    assert OslerSettings(planner="builtin").planner == "builtin"  # keyword beats file
