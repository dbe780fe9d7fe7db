"""Experts on Ray Serve: every expert backend a deployment, shared by every session of every process.

``OSLER_SERVING__EXPERTS=ray`` (or ``osler serve --experts ray``) swaps the in-process
:class:`~experts.registry.ExpertPool` for :class:`RayExpertPool`.  Its getters return the same typed handles
(:mod:`experts.handles`) over a :class:`RemoteExpert`, whose ``predict`` is a call on a Ray Serve deployment
handle, so planners, tools, the UI, voice and the evaluation harness do not change.

* One deployment (:class:`experts.ray_deployment.ExpertDeployment`) per expert backend, deployed on first use
  (application ``osler-<task>-<target>-<backend>``), with replicas or autoscaling bounds, ``num_cpus`` and a
  ``num_gpus`` fraction from :class:`~tools.serving_settings.ServingSettings`, and ``@serve.batch``: calls that
  arrive together from different sessions run as one batch.
* No client-side lock: the replica's batch queue orders the calls (a lock here would keep concurrent sessions'
  calls from ever meeting in a batch).
* A call whose replica dies is retried (``serving.retries``, default 1) once Ray Serve has started a new
  replica; when that fails too it raises :class:`~tools.errors.ExpertFailedError`, which the tool boundary
  turns into a failed tool call: the turn is answered and the session goes on.
* :func:`start_ray`: ``serving.ray_address`` None starts a local Ray instance bound to 127.0.0.1, with no
  dashboard and no usage statistics (``RAY_USAGE_STATS_ENABLED=0``); an address (``auto``, ``head:6379``,
  ``ray://head:10001``) joins an existing cluster.  Serve runs with its HTTP proxy disabled: only deployment
  handles reach the experts.  :meth:`RayExpertPool.shutdown` deletes the applications and, for a local
  instance, stops Ray (no Ray process is left).

Ray is an optional dependency: nothing here imports it until a pool is started
(``pip install 'ray[serve]==2.60.0'``).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from pathlib import Path
from typing import Any

from tools.errors import ExpertFailedError, ExpertUnavailableError
from tools.serving_settings import ServingSettings
from tools.settings import OslerSettings

from .imaging import StudyImage
from .registry import BackendSpec, ExpertPool
from .remote import RemoteFailure

__all__ = ["RAY_REQUIREMENT", "ray_unavailable_reason", "RayRuntime", "start_ray", "RemoteExpert", "RayExpertPool",
           "app_name", "with_serving"]

log = logging.getLogger(__name__)

RAY_REQUIREMENT = "ray[serve]==2.60.0"
# passed to every replica (a cluster's workers do not inherit this process's environment): nothing downloads
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "YOLO_OFFLINE": "1",
              "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "False", "DO_NOT_TRACK": "1", "RAY_USAGE_STATS_ENABLED": "0",
              "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0"}


def ray_unavailable_reason() -> str | None:
    """None when Ray Serve can be imported here; otherwise what to install.  Does not import ray (its settings
    are read from the environment at import, see :func:`start_ray`)."""
    spec = importlib.util.find_spec("ray")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    if not any((Path(f) / "serve" / "__init__.py").is_file() for f in folders):
        return f"Ray Serve is not installed: pip install '{RAY_REQUIREMENT}'"
    return None


def with_serving(settings: OslerSettings, *, experts: str | None = None, ray_address: str | None = None
                 ) -> OslerSettings:
    """``settings`` with the serving choice of a command line (``--experts``) and an entry point's
    ``RAY_ADDRESS`` (used when the settings name no address)."""
    update: dict[str, Any] = {}
    if experts:
        update["experts"] = experts
    if ray_address and not settings.serving.ray_address:
        update["ray_address"] = ray_address
    if not update:
        return settings
    return settings.model_copy(update={"serving": settings.serving.model_copy(update=update)})


class RayRuntime:
    """Ray (a local instance this process started, or a cluster it joined) with Serve running on it."""

    def __init__(self, address: str | None, local: bool, owned: bool = True) -> None:
        self.address = address
        self.local = local  # this process started the instance: stopping it ends every Ray process
        self.owned = owned  # this process called ray.init (False: it found Ray initialised and leaves it so)

    def stop(self) -> None:
        """Disconnect; a local instance is shut down with every process it started (Serve's controller and
        replicas included: stopping Serve first only makes its controller's pending calls print failures)."""
        import ray

        if self.owned:
            ray.shutdown()


def start_ray(serving: ServingSettings) -> RayRuntime:
    """Start (or join) Ray and start Serve without its HTTP proxy.  Raises ExpertUnavailableError when Ray is
    not installed."""
    reason = ray_unavailable_reason()
    if reason:
        raise ExpertUnavailableError(reason)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # before ray is imported: Ray never reports usage
    os.environ["RAY_SERVE_ENABLE_DIRECT_INGRESS"] = "0"  # no HTTP server in any replica: handles only
    if not serving.ray_address:  # one node: Ray's servers bind 127.0.0.1, not the machine's network address
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray import serve

    common: dict[str, Any] = {"log_to_driver": False, "configure_logging": False, "logging_level": logging.WARNING}
    local, owned = not serving.ray_address, True
    if ray.is_initialized():  # this process joined Ray already (a test, a notebook): use that, leave it running
        local, owned = False, False
    elif local:
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False  # the switch above, in case ray was imported before it
        ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1",
                 num_cpus=serving.local_num_cpus, **common)
    else:
        ray.init(address=serving.ray_address, **common)
    if local and ray.util.get_node_ip_address() != "127.0.0.1":  # ray was imported before the switch above
        log.warning("the local Ray instance runs on %s, not 127.0.0.1 (import ray after start_ray)",
                    ray.util.get_node_ip_address())
    serve.start(proxy_location="Disabled", logging_config={"log_level": "WARNING"})
    log.info("Ray Serve ready (%s)", "local instance on 127.0.0.1" if local else f"cluster {serving.ray_address}")
    return RayRuntime(serving.ray_address, local, owned)


def app_name(key: str, backend: str) -> str:
    """The Serve application of one expert backend: ``osler-detect-blood_cells-yolo``."""
    return "osler-" + key.replace(":", "-") + "-" + backend


def expert_app(settings: OslerSettings, key: str, backend: str) -> Any:
    """The bound deployment of one expert backend, with the replica options of ``settings.serving``."""
    from .ray_deployment import ExpertDeployment

    s = settings.serving
    env = dict(WORKER_ENV)
    if settings.torch_threads:
        env["OMP_NUM_THREADS"] = str(settings.torch_threads)
    options: dict[str, Any] = {
        "name": app_name(key, backend),
        "ray_actor_options": {"num_cpus": s.num_cpus, "num_gpus": s.num_gpus, "runtime_env": {"env_vars": env}},
        "max_ongoing_requests": max(16, 2 * s.max_batch_size),  # room for a full batch while one runs
    }
    if s.autoscaling:
        options["autoscaling_config"] = {"min_replicas": s.min_replicas, "max_replicas": s.max_replicas,
                                         "target_ongoing_requests": s.target_ongoing_requests}
    else:
        options["num_replicas"] = s.num_replicas
    return ExpertDeployment.options(**options).bind(settings, key, backend)


class RemoteExpert:
    """Stands where a loaded expert stands inside a handle: the attributes the tool layer reads (from the
    replica's :func:`experts.remote.describe`) and ``predict``, a call on the deployment."""

    def __init__(self, handle: Any, info: dict[str, Any], serving: ServingSettings) -> None:
        self._handle = handle
        self._serving = serving
        self.info = info
        self.lost_calls = 0  # calls whose replica died under them (each retried or reported)
        self.name: str = info["name"]
        self.backend: str = info["backend"]
        self.model_id: str = info["model_id"]
        for attr in ("classes", "labels", "default_min_score", "class_min_scores", "promptable"):
            if attr in info:
                setattr(self, attr, info[attr])

    def load(self) -> None:
        """The replica loaded the weights before it answered ``describe``."""

    def __repr__(self) -> str:
        return f"RemoteExpert({self.name!r}, backend={self.backend!r})"

    def predict(self, image: StudyImage, **kwargs: Any) -> Any:
        """The replica's answer; a replica that dies during the call is retried ``serving.retries`` times."""
        import ray.exceptions as rx
        import ray.serve.exceptions as sx

        attempts = self._serving.retries + 1
        last: BaseException | None = None
        for attempt in range(attempts):
            try:
                out = self._handle.predict.remote(image, kwargs).result(timeout_s=self._serving.request_timeout_s)
            except (rx.RayActorError, rx.ActorUnavailableError, rx.WorkerCrashedError, sx.ReplicaUnavailableError,
                    sx.DeploymentUnavailableError) as exc:
                last = exc
                self.lost_calls += 1
                log.warning("%s: replica lost during a call (attempt %d of %d): %s", self.name, attempt + 1, attempts,
                            type(exc).__name__)
                continue
            except (TimeoutError, rx.GetTimeoutError) as exc:
                raise ExpertFailedError(f"{self.name}: no answer from Ray Serve within "
                                        f"{self._serving.request_timeout_s:.0f} s (serving.request_timeout_s)") from exc
            except sx.BackPressureError as exc:
                raise ExpertFailedError(f"{self.name}: too many calls queued at its Ray Serve replicas; ask again, or "
                                        "raise serving.num_replicas / serving.max_replicas") from exc
            except (rx.RayError, sx.RayServeException) as exc:
                raise ExpertFailedError(f"{self.name}: Ray Serve call failed ({type(exc).__name__})") from exc
            if isinstance(out, RemoteFailure):
                raise out.error()
            return out
        raise ExpertFailedError(f"{self.name}: its Ray Serve replica died during the call, {attempts} time(s) "
                                f"({type(last).__name__}); the result is missing, ask again") from last

    def stats(self) -> dict[str, Any]:
        """Batches run by one replica (the one the router picks)."""
        return self._handle.stats.remote().result(timeout_s=self._serving.request_timeout_s)

    def replica_pid(self) -> int:
        return self._handle.pid.remote().result(timeout_s=self._serving.request_timeout_s)


class _Unlocked:
    """The lock a handle takes around ``predict``, for a remote expert: none (the deployment orders calls)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


class RayExpertPool(ExpertPool):
    """An :class:`~experts.registry.ExpertPool` whose experts run as Ray Serve deployments.

    Backend selection is the in-process pool's (same registry, same truth table, decided here); the chosen
    backend is deployed on first use and its replicas build the expert themselves.  Use as a context manager
    or call :meth:`shutdown`."""

    def __init__(self, settings: OslerSettings, registry: dict[str, list[BackendSpec]] | None = None,
                 runtime: RayRuntime | None = None) -> None:
        super().__init__(settings, registry)
        self.runtime = runtime or start_ray(settings.serving)
        self._apps: list[str] = []
        self._unlocked = _Unlocked()
        self.deploy_ms: dict[str, float] = {}

    def get(self, key: str, backend: str | None = None) -> tuple[Any, Any, str]:
        spec, why = self.choose(key, backend)
        ident = (key, spec.name)
        with self._guard:  # one deployment per expert backend, even when sessions ask for it at once
            if ident not in self._experts:
                self._experts[ident] = self._deploy(key, spec.name)
        return self._experts[ident], self._unlocked, f"{why}; served by Ray Serve"

    def _deploy(self, key: str, backend: str) -> RemoteExpert:
        from ray import serve

        name = app_name(key, backend)
        t0 = time.perf_counter()
        try:
            handle = serve.run(expert_app(self.settings, key, backend), name=name, route_prefix=None)
            info = handle.describe.remote().result(timeout_s=self.settings.serving.request_timeout_s)
        except Exception as exc:  # noqa: BLE001 - a replica that cannot build its expert: say which and why
            raise ExpertUnavailableError(f"{key}: the Ray Serve deployment {name} did not start ({exc})"[:2000]) from exc
        self._apps.append(name)
        self.deploy_ms[name] = (time.perf_counter() - t0) * 1000
        log.info("deployed %s in %.0f ms", name, self.deploy_ms[name])
        return RemoteExpert(handle, info, self.settings.serving)

    def batch_stats(self) -> dict[str, dict[str, Any]]:
        """Per deployed expert: batches and calls one of its replicas ran, and its largest batch."""
        return {app_name(key, backend): expert.stats() for (key, backend), expert in list(self._experts.items())}

    def remote(self, key: str, backend: str | None = None) -> RemoteExpert:
        """The remote expert of a task key (deployed if needed): stats, replica pid."""
        return self.get(key, backend)[0]

    def shutdown(self) -> None:
        """Delete this pool's applications; stop Ray when this pool started a local instance."""
        from ray import serve

        with self._guard:
            if not self.runtime.local:
                for name in self._apps:
                    try:
                        serve.delete(name)
                    except Exception as exc:  # noqa: BLE001 - best effort on a shared cluster
                        log.warning("could not delete %s: %s", name, exc)
            self._apps.clear()
            self._experts.clear()
            self.runtime.stop()

    def __enter__(self) -> RayExpertPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

