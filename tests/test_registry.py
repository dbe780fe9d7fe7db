"""Backend selection truth table (pure) and the pool's honest reporting."""

from __future__ import annotations

import pytest

from experts.registry import BackendSpec, ExpertPool, default_registry, select_backend
from tools.errors import ExpertUnavailableError

SPECS = [BackendSpec("yolo", "x:y"), BackendSpec("opencv", "x:z")]


@pytest.mark.parametrize(
    "requested, reasons, expect",
    [
        ("auto", {"yolo": None, "opencv": None}, "yolo"),
        ("auto", {"yolo": "no weights: set OSLER_MODELS__YOLO_BLOOD", "opencv": None}, "opencv"),
        ("opencv", {"yolo": None, "opencv": None}, "opencv"),
        ("sam", {"yolo": None, "opencv": None}, "yolo"),  # a setting for another task falls back to auto
    ],
)
def test_selection(requested, reasons, expect):
    spec, why = select_backend("detect:x", SPECS, requested, reasons)
    assert spec.name == expect
    if reasons["yolo"]:
        assert "OSLER_MODELS__YOLO_BLOOD" in why  # the fallback says why


def test_requested_backend_that_cannot_run_raises_with_instructions():
    with pytest.raises(ExpertUnavailableError, match="OSLER_MODELS__YOLO_BLOOD"):
        select_backend("detect:x", SPECS, "yolo", {"yolo": "set OSLER_MODELS__YOLO_BLOOD", "opencv": None})


def test_nothing_available_lists_every_reason():
    with pytest.raises(ExpertUnavailableError, match="yolo: a.*opencv: b"):
        select_backend("detect:x", SPECS, "auto", {"yolo": "a", "opencv": "b"})


def test_pool_reports_and_missing_module_is_a_reason(settings):
    reg = default_registry() | {"detect:fake": [BackendSpec("ghost", "experts.no_such_module:build", "experts.no_such_module:check")]}
    pool = ExpertPool(settings, reg)
    (name, reason), = pool.backends("detect:fake")
    assert name == "ghost" and "no_such_module" in reason
    with pytest.raises(ExpertUnavailableError):
        pool.get("detect:fake")
    assert dict(pool.backends("detect:blood_cells"))["opencv"] is None  # the classical fallback always runs


def test_registration_is_not_an_import_side_effect():
    import experts.registry as r

    assert not any(isinstance(v, dict) and any(isinstance(x, list) for x in v.values()) for v in vars(r).values())
    assert default_registry() is not default_registry()  # built fresh by a function
