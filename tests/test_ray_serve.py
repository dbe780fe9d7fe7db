"""Experts on Ray Serve (experts/ray_serve.py, experts/ray_deployment.py, experts/remote.py).

Fast tests (no Ray): the batch runner on real images and real experts, errors as data, the serving settings.
Slow tests (``-m slow``; skipped when ``ray[serve]`` is not installed): a real local Ray instance; answers through
Ray Serve equal in-process answers on a BCCD smear and an EndoTect frame; a replica killed mid-request is retried
or reported and the session goes on; shutdown leaves no Ray process (checked with ``ps``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import numpy as np
import pytest

from tests.conftest import SMEAR
from tools.errors import ExpertFailedError, ExpertUnavailableError, InvalidInputError

POLYP_FRAME = "endotect_polyps/images"  # the first frame by name (bench_ask's workload)
SMEAR_Q = "How many white blood cells are in this smear?"
POLYP_Q = "How many polyps are in this frame?"

def _ray_missing() -> str | None:
    from experts.ray_serve import ray_unavailable_reason  # does not import ray (start_ray sets its switches first)

    return ray_unavailable_reason()


RAY_MISSING = _ray_missing()


def _load(path):
    from experts.imaging import load_image

    return load_image(path)


# -- without Ray ------------------------------------------------------------------------------------------------
def test_run_batch_equals_predict_one_by_one_on_real_smears(data_dir):
    """The batch a replica runs gives each call what ``predict`` gives it alone (YOLO: one ``predict_batch``)."""
    from experts.remote import run_batch
    from experts.yolo_detector import build_blood
    from tools.settings import OslerSettings

    det = build_blood(OslerSettings(torch_threads=1))
    det.load()
    images = [_load(data_dir / SMEAR), _load(data_dir / "bccd/images/BloodImage_00002.jpg")]
    calls = [(images[0], {}), (images[1], {}), (images[0], {"min_score": 0.5})]
    out = run_batch(det, calls)
    for (image, kw), got in zip(calls, out):
        alone = det.predict(image, **kw)
        assert got.labels == alone.labels and len(got.labels) > 0
        np.testing.assert_allclose(got.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(got.scores, alone.scores, atol=1e-5)
    assert len(out[2].labels) < len(out[0].labels)  # the stricter threshold of the third call was applied


def test_run_batch_reports_a_failing_call_in_its_slot(data_dir):
    """One bad image fails its own call only; the error comes back as data of the right Osler type."""
    from experts.blood_opencv import build
    from experts.remote import RemoteFailure, run_batch
    from tools.settings import OslerSettings

    expert = build(OslerSettings())
    good = _load(data_dir / SMEAR)
    bad = _load(data_dir / SMEAR)
    bad.pixels = np.zeros((0, 0, 3), np.uint8)  # nothing to count on
    out = run_batch(expert, [(good, {}), (bad, {}), (good, {})])
    assert isinstance(out[1], RemoteFailure) and isinstance(out[1].error(), ExpertFailedError)
    assert expert.name in out[1].message
    assert out[0].labels == out[2].labels == expert.predict(good).labels


def test_remote_failure_keeps_the_error_type():
    from experts.remote import RemoteFailure

    assert type(RemoteFailure.of(ExpertUnavailableError("weights missing"), "x").error()) is ExpertUnavailableError
    assert type(RemoteFailure.of(InvalidInputError("bad"), "x").error()) is InvalidInputError
    err = RemoteFailure.of(RuntimeError("CUDA out of memory"), "blood_cell_detector").error()
    assert type(err) is ExpertFailedError and "blood_cell_detector: RuntimeError: CUDA out of memory" in str(err)


def test_describe_carries_what_the_tools_read():
    from experts.remote import describe
    from experts.yolo_detector import build_blood
    from tools.settings import OslerSettings

    det = build_blood(OslerSettings())
    info = describe(det, "backend 'yolo', best available")
    assert info["backend"] == "yolo" and info["classes"] == tuple(det.classes)
    assert info["class_min_scores"] == dict(det.class_min_scores) and info["default_min_score"] == det.default_min_score


def test_warm_up_runs_the_expert_once_or_says_it_could_not():
    from experts.grabcut import build as build_grabcut
    from experts.remote import warm_up
    from experts.yolo_detector import build_blood
    from tools.settings import OslerSettings

    det = build_blood(OslerSettings(torch_threads=1))
    det.load()
    assert warm_up(det) > 0
    assert warm_up(build_grabcut(OslerSettings())) is None  # a promptable segmenter refuses a call without prompts


def test_serving_settings(monkeypatch):
    from experts.ray_serve import with_serving
    from tools.serving_settings import ServingSettings
    from tools.settings import OslerSettings

    assert OslerSettings().serving.experts == "inprocess"  # in-process stays the default
    monkeypatch.setenv("OSLER_SERVING__EXPERTS", "ray")
    monkeypatch.setenv("OSLER_SERVING__NUM_GPUS", "0.25")
    s = OslerSettings()
    assert s.serving.experts == "ray" and s.serving.num_gpus == 0.25
    with pytest.raises(ValueError, match="both"):
        ServingSettings(max_replicas=4)
    with pytest.raises(ValueError, match="larger"):
        ServingSettings(min_replicas=3, max_replicas=2)
    assert ServingSettings(min_replicas=1, max_replicas=4).autoscaling
    s2 = with_serving(OslerSettings(), experts="ray", ray_address="127.0.0.1:6379")
    assert s2.serving.experts == "ray" and s2.serving.ray_address == "127.0.0.1:6379"


def test_missing_ray_is_a_clear_error(monkeypatch):
    from experts import ray_serve

    monkeypatch.setattr(ray_serve.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ExpertUnavailableError, match=r"pip install 'ray\[serve\]==2.60.0'"):
        ray_serve.start_ray(ray_serve.ServingSettings())


# -- a real local Ray instance -------------------------------------------------------------------------------------
ray_needed = pytest.mark.skipif(RAY_MISSING is not None, reason=str(RAY_MISSING))


@ray_needed
def test_deployment_options_come_from_the_serving_settings():
    from experts.ray_serve import expert_app
    from tools.settings import OslerSettings

    s = OslerSettings(torch_threads=1)
    auto = s.serving.model_copy(update={"min_replicas": 1, "max_replicas": 3, "num_gpus": 0.25, "max_batch_size": 12})
    d = expert_app(s.model_copy(update={"serving": auto}), "detect:blood_cells", "yolo")._bound_deployment
    assert d.name == "osler-detect-blood_cells-yolo"
    assert d.ray_actor_options["num_gpus"] == 0.25 and d.ray_actor_options["num_cpus"] == 0.25
    env = d.ray_actor_options["runtime_env"]["env_vars"]
    assert env["HF_HUB_OFFLINE"] == "1" and env["RAY_USAGE_STATS_ENABLED"] == "0" and env["OMP_NUM_THREADS"] == "1"
    scaling = d._deployment_config.autoscaling_config
    assert (scaling.min_replicas, scaling.max_replicas, scaling.target_ongoing_requests) == (1, 3, 2.0)
    assert d._deployment_config.max_ongoing_requests == 24  # room for a full batch while one runs
    fixed = expert_app(s.model_copy(update={"serving": s.serving.model_copy(update={"num_replicas": 2})}),
                       "classify:image_kind", "gate")._bound_deployment
    assert fixed.num_replicas == 2 and fixed._deployment_config.autoscaling_config is None


def _ray_pids(root_pid: int) -> set[int]:
    import psutil

    out = set()
    for p in psutil.Process(root_pid).children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if "ray" in cmd:
            out.add(p.pid)
    return out


def _alive_with_ps(pids: set[int]) -> set[int]:
    if not pids:
        return set()
    proc = subprocess.run(["ps", "-o", "pid=,stat=", "-p", ",".join(map(str, sorted(pids)))], capture_output=True,
                          text=True)
    alive = set()
    for line in proc.stdout.splitlines():
        pid, stat = line.split()
        if not stat.startswith("Z"):  # a zombie has exited; its parent has not reaped it yet
            alive.add(int(pid))
    return alive


@pytest.fixture(scope="module")
def ray_pool(tmp_path_factory):
    from experts.ray_serve import RayExpertPool
    from tools.settings import OslerSettings

    settings = OslerSettings(torch_threads=1, data_dir=tmp_path_factory.mktemp("osler-ray"))
    settings = settings.model_copy(update={"serving": settings.serving.model_copy(update={"experts": "ray"})})
    pool = RayExpertPool(settings)
    state = {"pids": _ray_pids(os.getpid()), "shut": False}
    yield pool, state
    if not state["shut"]:
        pool.shutdown()


def _ask(assistant, image, question):
    session = assistant.new_session()
    session.load("current", image)
    return session, assistant.ask(session, question)


def _summary(result):
    return {"answer": result.answer, "value": result.value, "label": result.label, "status": result.status,
            "calls": [(c.name, c.backend, c.ok) for c in result.tool_calls]}


@ray_needed
@pytest.mark.slow
def test_answers_through_ray_serve_equal_in_process_answers(ray_pool, data_dir, settings, shared_pool):
    from agent.runner import Assistant

    pool, _ = ray_pool
    polyp = sorted((data_dir / POLYP_FRAME).glob("*.jpg"))[0]
    local, remote = Assistant(settings, pool=shared_pool), Assistant(settings, pool=pool)
    for image, question in ((data_dir / SMEAR, SMEAR_Q), (polyp, POLYP_Q)):
        s_local, r_local = _ask(local, image, question)
        s_remote, r_remote = _ask(remote, image, question)
        assert _summary(r_remote) == _summary(r_local)
        assert r_remote.status == "ok" and r_remote.value is not None
        for c_local, c_remote in zip(r_local.tool_calls, r_remote.tool_calls):
            ev_local, ev_remote = s_local.evidence[c_local.id], s_remote.evidence[c_remote.id]
            assert "served by Ray Serve" in (ev_remote.provenance.note or "") or c_remote.name == "image_info"
            if hasattr(ev_local, "counts"):
                boxes = lambda ev: [d.box.xyxy for c in ev.counts for d in c.instances]  # noqa: E731
                np.testing.assert_allclose(boxes(ev_remote), boxes(ev_local), atol=1e-3)
    assert {"osler-detect-blood_cells-yolo", "osler-detect-polyp-yolo_unet"} <= set(pool.batch_stats())


@ray_needed
@pytest.mark.slow
def test_concurrent_calls_meet_in_one_batch(ray_pool, data_dir):
    pool, _ = ray_pool
    gate = pool.remote("classify:image_kind")
    image = _load(data_dir / SMEAR)
    before = gate.stats()["largest_batch"]
    threads = [threading.Thread(target=gate.predict, args=(image,)) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gate.stats()["largest_batch"] >= max(2, before)


@ray_needed
@pytest.mark.slow
def test_a_replica_killed_mid_request_is_retried_or_reported(ray_pool, data_dir, settings):
    """Kill the blood detector's replica while sessions wait on it: every turn is answered (the call retried on
    the new replica, or reported as a failed tool call), and the sessions go on."""
    from agent.runner import Assistant

    pool, _ = ray_pool
    assistant = Assistant(settings, pool=pool)
    smears = [data_dir / SMEAR, *sorted((data_dir / "bccd/images").glob("BloodImage_0001*.jpg"))[:3]]
    expected = {p: _ask(assistant, p, SMEAR_Q)[1].value for p in smears}
    detector = pool.remote("detect:blood_cells")
    pid = detector.replica_pid()
    results: dict = {}

    def turn(path):
        results[path] = _ask(assistant, path, SMEAR_Q)

    threads = [threading.Thread(target=turn, args=(p,)) for p in smears]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while detector.stats()["running"] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)  # wait until the replica computes a batch of these asks' calls
    os.kill(pid, signal.SIGKILL)
    for t in threads:
        t.join(timeout=300)
    assert len(results) == len(smears)  # no turn lost
    assert detector.lost_calls >= 1  # the kill hit calls in flight
    for path, (session, result) in results.items():
        count = [c for c in result.tool_calls if c.name == "count"]
        assert count, "the count tool was called"
        if count[0].ok:
            assert result.value == expected[path]  # retried on the new replica
        else:
            assert "replica died" in (count[0].error or "")  # reported
        follow_up = assistant.ask(session, SMEAR_Q)  # the session goes on
        assert follow_up.status == "ok" and follow_up.value == expected[path]
    assert detector.replica_pid() != pid


@ray_needed
@pytest.mark.slow
def test_the_local_instance_listens_on_loopback_only(ray_pool):
    """GCS, raylet, agents, the Serve controller and the replicas accept connections on 127.0.0.1 only."""
    import psutil

    pool, _ = ray_pool
    pool.remote("classify:image_kind")
    pids = {os.getpid()} | {p.pid for p in psutil.Process().children(recursive=True)}
    listening = {(c.laddr.ip, c.laddr.port, c.pid) for c in psutil.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN and c.pid in pids}
    assert len(listening) >= 3  # GCS, raylet, the replica's workers
    exposed = {x for x in listening if x[0] not in ("127.0.0.1", "::1", "::ffff:127.0.0.1")}
    assert not exposed, f"listening beyond loopback: {exposed}"


@ray_needed
@pytest.mark.slow
def test_shutdown_leaves_no_ray_processes(ray_pool):
    pool, state = ray_pool
    pool.remote("classify:image_kind")  # at least one replica runs
    pids = state["pids"] | _ray_pids(os.getpid())
    assert pids, "the local Ray instance runs as child processes of this one"
    pool.shutdown()
    state["shut"] = True
    deadline = time.monotonic() + 30
    while _alive_with_ps(pids) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _alive_with_ps(pids)
    import ray

    assert not ray.is_initialized()


@ray_needed
@pytest.mark.slow
def test_osler_ask_with_ray_experts_answers_like_in_process(data_dir, tmp_path):
    """The command line end to end: `osler ask --experts ray --json` starts a local Ray instance, answers, and
    stops it (no Ray process outlives the command)."""
    import json
    import sys

    from tests.conftest import REPO

    env = dict(os.environ, OSLER_DATA_DIR=str(tmp_path), OSLER_TORCH_THREADS="1")
    env.pop("RAY_ADDRESS", None)

    def ray_daemons() -> set[str]:
        out = subprocess.run(["ps", "-eo", "pid=,comm="], capture_output=True, text=True).stdout.split("\n")
        return {line.split()[0] for line in out if line.split()[1:] and line.split()[1] in ("raylet", "gcs_server")}

    before = ray_daemons()
    answers = {}
    for experts in ("inprocess", "ray"):
        proc = subprocess.run([sys.executable, "-m", "ui.cli", "ask", str(data_dir / SMEAR), SMEAR_Q, "--json",
                               "--experts", experts], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        answers[experts] = json.loads(proc.stdout)
    assert answers["ray"]["answer"] == answers["inprocess"]["answer"] and answers["ray"]["value"] == 1
    assert [c["backend"] for c in answers["ray"]["tool_calls"]] == [c["backend"] for c in answers["inprocess"]["tool_calls"]]
    assert ray_daemons() <= before  # the command's raylet and GCS are gone
