"""Backend selection truth table (pure) and the pool's honest reporting."""

from __future__ import annotations

import pytest

from experts.registry import BackendSpec, ExpertPool, default_registry, select_backend
from tools.errors import ExpertUnavailableError

def _never_built(settings):
    raise AssertionError("selection must not build an expert")


SPECS = [BackendSpec("yolo", _never_built), BackendSpec("opencv", _never_built)]


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


def test_pool_reports_a_check_reason_and_refuses_to_build(settings):
    built = []
    reg = default_registry() | {"detect:fake": [
        BackendSpec("ghost", built.append, lambda s: "set OSLER_MODELS__GHOST to a checkpoint")]}
    pool = ExpertPool(settings, reg)
    (name, reason), = pool.backends("detect:fake")
    assert name == "ghost" and "OSLER_MODELS__GHOST" in reason
    with pytest.raises(ExpertUnavailableError, match="OSLER_MODELS__GHOST"):
        pool.get("detect:fake")
    assert built == []
    assert dict(pool.backends("detect:blood_cells"))["opencv"] is None  # the classical fallback always runs


def test_an_import_bug_in_a_backend_surfaces(settings):
    """A broken import inside the project is a bug, raised as is, never "not part of this build"."""

    def broken(settings):
        from experts import no_such_module  # noqa: F401

    pool = ExpertPool(settings, {"detect:fake": [BackendSpec("ghost", broken)]})
    with pytest.raises(ImportError, match="no_such_module"):
        pool.get("detect:fake")


def test_registry_holds_functions_of_the_experts_package():
    """Factories and checks are the functions themselves (a rename breaks at import, not at run time)."""
    for key, specs in default_registry().items():
        assert specs, key
        for spec in specs:
            for fn in filter(None, (spec.factory, spec.check)):
                assert callable(fn) and fn.__module__.startswith("experts."), (key, spec.name, fn)


def test_registration_is_not_an_import_side_effect():
    import experts.registry as r

    assert not any(isinstance(v, dict) and any(isinstance(x, list) for x in v.values()) for v in vars(r).values())
    assert default_registry() is not default_registry()  # built fresh by a function


class _FakeDetector:
    """A detector double that records whether its pool lock was held while it predicted."""

    name, backend, model_id = "fake_detector", "fake", "fake-v1"
    classes, default_min_score = ("cell",), 0.5

    def __init__(self) -> None:
        self.loads = 0
        self.lock_held: list[bool] = []
        self.pool: ExpertPool | None = None

    def load(self) -> None:
        self.loads += 1

    def predict(self, image, *, min_score=None):
        from experts.protocols import Detections
        from tools.common import Provenance

        self.lock_held.append(self.pool._locks[("detect:fake", "fake")].locked())
        return Detections(boxes=[[0, 0, 2, 2]], scores=[0.9], labels=["cell"], min_score=min_score or 0.5,
                          provenance=Provenance(expert=self.name, backend=self.backend, model=self.model_id,
                                                elapsed_ms=0.0))


def test_typed_getter_handle_takes_the_lock_and_names_its_backend(settings):
    from experts.handles import DetectorHandle

    fake = _FakeDetector()
    pool = ExpertPool(settings, {"detect:fake": [BackendSpec("fake", lambda s: fake)]})
    fake.pool = pool
    det = pool.detector("fake")
    assert isinstance(det, DetectorHandle) and det.expert is fake
    assert (det.backend, det.model_id, det.classes) == ("fake", "fake-v1", ("cell",))
    assert "backend 'fake'" in det.why
    out = det.predict(None, min_score=0.3)
    assert out.min_score == 0.3 and out.labels == ["cell"]
    assert fake.lock_held == [True]  # the handle held the expert's lock around predict
    assert not pool._locks[("detect:fake", "fake")].locked()
    assert pool.detector("fake").expert is fake and fake.loads == 2  # built once; load() is idempotent per call
    with pytest.raises(ExpertUnavailableError, match="segment:fake"):
        pool.segmenter("fake")


def test_typed_getters_on_the_real_registry(settings):
    from experts.handles import ClassifierHandle, SegmenterHandle

    det = ExpertPool(settings).detector("blood_cells", backend="opencv")
    assert det.backend == "opencv" and {"WBC", "RBC", "Platelets"} <= set(det.classes)
    seg = ExpertPool(settings).segmenter("prompt", backend="opencv")
    assert isinstance(seg, SegmenterHandle) and seg.promptable
    gate = ExpertPool(settings).classifier("image_kind")
    from tools.kinds import IMAGE_KINDS

    assert isinstance(gate, ClassifierHandle) and gate.labels == tuple(IMAGE_KINDS)


def test_a_thread_safe_expert_runs_concurrently_and_others_one_at_a_time(settings):
    """Two threads inside predict at the same time: possible for a ``thread_safe`` expert (its handle takes no
    lock), impossible for the others (the second waits for the first)."""
    import threading

    from experts.protocols import Detections
    from tools.common import Provenance

    class Meeting(_FakeDetector):
        def __init__(self, safe: bool) -> None:
            super().__init__()
            self.thread_safe = safe
            self.barrier = threading.Barrier(2, timeout=1.0)
            self.met: list[bool] = []

        def predict(self, image, *, min_score=None):
            try:
                self.barrier.wait()
                self.met.append(True)
            except threading.BrokenBarrierError:
                self.met.append(False)
            return Detections(boxes=[[0, 0, 2, 2]], scores=[0.9], labels=["cell"], min_score=0.5,
                              provenance=Provenance(expert=self.name, backend=self.backend, model=self.model_id,
                                                    elapsed_ms=0.0))

    for safe in (True, False):
        fake = Meeting(safe)
        pool = ExpertPool(settings, {"detect:fake": [BackendSpec("fake", lambda s, f=fake: f)]})
        threads = [threading.Thread(target=pool.detector("fake").predict, args=(None,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(fake.met) is safe, f"thread_safe={safe}: {fake.met}"
