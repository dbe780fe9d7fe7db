"""``osler bench ask`` and ``osler bench counts`` on a few real images (the full runs are benchmarks)."""

from __future__ import annotations

import json

import pytest

KEYS = {"overhead_ratio", "latency_ms_p50", "latency_ms_p95", "cold_start_ms", "peak_rss_mb", "experts_ms_sum",
        "total_ms_sum", "overhead_ratio_definition"}


def test_bench_ask_json(data_dir, capsys):
    from eval_scenarios.bench_ask import main

    assert main(["--n", "2", "--polyps", "0", "--no-cold", "--json", "--data-root", str(data_dir)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert KEYS <= set(res)
    assert res["n"] == 2 and res["cold_start_ms"] is None
    assert 0.0 <= res["overhead_ratio"] <= 1.0
    assert res["overhead_ratio"] == pytest.approx((res["total_ms_sum"] - res["experts_ms_sum"]) / res["total_ms_sum"])
    assert res["latency_ms_p50"] <= res["latency_ms_p95"] and res["peak_rss_mb"] > 50


@pytest.mark.slow
def test_bench_ask_cold_start(data_dir, tmp_path):
    from eval_scenarios.bench_ask import cold_start

    img = data_dir / "bccd" / "images" / "BloodImage_00001.jpg"
    res = cold_start(img, "How many white blood cells are in this smear?", {"data_dir": str(tmp_path)})
    assert res["cold_start_ms"] > res["cold_import_ms"] > 0 and res["cold_peak_rss_mb"] > 50


def test_count_accuracy_small(settings, data_dir):
    from eval_scenarios.count_accuracy import _metrics, count_accuracy

    res = count_accuracy(settings, data_dir, limit=3, progress=False)
    assert res["images"] == 3 and res["scored"] + res["failed"] == 3
    assert 0.0 <= res["wbc_exact"] <= 1.0 and res["rbc_mae"] >= 0
    m = _metrics([({"WBC": 1, "Platelets": 2, "RBC": 10}, {"WBC": 1, "Platelets": 0, "RBC": 14}),
                  ({"WBC": 2, "Platelets": 1, "RBC": 5}, {"WBC": 1, "Platelets": 1, "RBC": 5})])
    assert m["wbc_exact"] == 0.5 and m["platelets_mae"] == 1.0 and m["rbc_mae"] == 2.0 and m["rbc_bias"] == -2.0
