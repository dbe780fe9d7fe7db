"""The reliability suite: a bad-input corpus, property-based fuzzing of every parser that reads outside
input, and (when present) the prompt-injection set of ``tests/injection_cases.py``.

``make reliability`` runs it with many more Hypothesis examples (``OSLER_RELIABILITY=thorough``); the
default test run keeps a few per parser.  At the end it prints tried / handled / failed per category.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

from tests.reliability.tally import TALLY, record, summary_lines

THOROUGH = os.environ.get("OSLER_RELIABILITY", "") == "thorough"
settings.register_profile("osler-quick", max_examples=25, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.register_profile("osler-thorough", max_examples=400, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
settings.load_profile("osler-thorough" if THOROUGH else "osler-quick")


class _OutcomeTally:
    """Registered as a plugin (not a conftest hook) so it also sees tests outside this folder, such as the
    prompt-injection cases of tests/test_lying_planner.py."""

    @staticmethod
    def pytest_runtest_logreport(report: pytest.TestReport) -> None:
        """Corpus cases and injection cases are tallied by outcome (property tests tally their examples)."""
        if report.when != "call" and not (report.when == "setup" and report.failed):
            return
        if "reliability_injection" in report.keywords:
            category = "prompt injection"
        else:
            category = dict(report.user_properties).get("reliability")
        if category is None or report.skipped:
            return
        record(category, report.passed)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "reliability(category): a bad-input corpus case, tallied under category")
    config.addinivalue_line("markers", "reliability_injection: a prompt-injection case (tests/injection_cases.py)")
    if not config.pluginmanager.has_plugin("osler-reliability-tally"):
        config.pluginmanager.register(_OutcomeTally(), "osler-reliability-tally")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        mark = item.get_closest_marker("reliability")
        if mark and mark.args:
            item.user_properties.append(("reliability", mark.args[0]))  # the log report carries it


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001 - pytest hook
    lines = summary_lines()
    if lines:
        terminalreporter.section(f"reliability ({'thorough' if THOROUGH else 'quick'}): tried / handled / failed")
        for line in lines:
            terminalreporter.write_line(line)
    TALLY.clear()
