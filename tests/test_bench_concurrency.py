"""``osler bench concurrency``: every mode answers real images from concurrent sessions and reports what it
measured; the web-app mode goes through the app's real HTTP API (gradio clients, a loopback server)."""

from __future__ import annotations

import pytest

from eval_scenarios.bench_concurrency import run_mode, workload

pytest.importorskip("gradio_client")


@pytest.mark.slow
def test_webapp_mode_answers_through_http(data_dir, tmp_path):
    from tools.settings import OslerSettings

    settings = OslerSettings(data_dir=tmp_path / "osler", shared_data=data_dir)
    work = workload(data_dir, 4, 0)
    res = run_mode("webapp", settings, work, [1, 2], asks=1)
    assert res["mode"] == "webapp" and [r["sessions"] for r in res["levels"]] == [1, 2]
    for r in res["levels"]:
        assert r["answers"] == r["sessions"] and r["ok"] == r["answers"]  # every answer came back as an answer
        assert r["throughput_per_s"] > 0 and r["latency_ms_p95"] >= r["latency_ms_p50"] > 0
