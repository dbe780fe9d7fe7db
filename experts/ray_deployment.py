"""The Ray Serve deployment that serves one expert backend (imported only when Ray serves the experts).

A replica builds its expert with the same registry and selection as the in-process pool
(:class:`~experts.registry.ExpertPool`, with the backend the agent's side chose), loads it once, and answers
``predict(image, kwargs)``.  Concurrent calls, from any session of any process, meet in ``@serve.batch``
(up to ``serving.max_batch_size`` calls, waiting at most ``serving.batch_wait_timeout_s``) and run as one batch
(:func:`experts.remote.run_batch`: the expert's ``predict_batch`` where it has one).  The batch runs in a worker
thread, so the replica keeps receiving calls (the next batch fills) while the model computes.

Options (replicas or autoscaling bounds, ``num_cpus``, ``num_gpus``) come from
:class:`~tools.serving_settings.ServingSettings` in :func:`experts.ray_serve.expert_app`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ray import serve

from tools.settings import OslerSettings

from .imaging import StudyImage
from .registry import ExpertPool
from .remote import Call, RemoteFailure, describe, run_batch, warm_up

__all__ = ["ExpertDeployment"]


def _loopback_replica_grpc() -> None:
    """On a local instance, bind this replica's inter-deployment gRPC server to 127.0.0.1.

    Ray Serve 2.60 binds it to ``[::]:0`` (every interface) with no setting to change that; Osler's handles do
    not use it, and nothing outside this machine may reach it.  Called in the replica before Serve starts that
    server (after the constructor); on a cluster (``serving.ray_address`` set) it is left alone."""
    from ray.serve._private import replica as serve_replica

    bind = serve_replica.add_port_to_grpc_server
    if getattr(bind, "osler_loopback", False):
        return

    def loopback(server: Any, address: str) -> Any:
        if address.startswith("[::]:") or address.startswith("0.0.0.0:"):
            address = "127.0.0.1:" + address.rsplit(":", 1)[1]
        return bind(server, address)

    loopback.osler_loopback = True  # type: ignore[attr-defined]
    serve_replica.add_port_to_grpc_server = loopback


@serve.deployment
class ExpertDeployment:
    """One expert backend (``key`` such as ``"detect:blood_cells"``, ``backend`` such as ``"yolo"``)."""

    def __init__(self, settings: OslerSettings, key: str, backend: str) -> None:
        if not settings.serving.ray_address:
            _loopback_replica_grpc()
        pool = ExpertPool(settings)
        self.expert, _, self.why = pool.get(key, backend)  # builds and loads: the replica is ready when it answers
        self.warm_up_ms = warm_up(self.expert)  # a new replica (autoscaling, a restart) is not slow for its first user
        self.batch_sizes: list[int] = []  # sizes of the batches run so far (for benchmarks and tests)
        self.running = 0  # calls in the batch being computed now
        self._batched.set_max_batch_size(settings.serving.max_batch_size)
        self._batched.set_batch_wait_timeout_s(settings.serving.batch_wait_timeout_s)

    def describe(self) -> dict[str, Any]:
        return describe(self.expert, self.why)

    def pid(self) -> int:
        """The replica's process id (tests kill it)."""
        return os.getpid()

    def stats(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "batches": len(self.batch_sizes), "calls": sum(self.batch_sizes),
                "largest_batch": max(self.batch_sizes, default=0), "running": self.running,
                "warm_up_ms": self.warm_up_ms}

    async def predict(self, image: StudyImage, kwargs: dict[str, Any]) -> Any:
        """A ``Detections`` / ``Masks`` / ``ClassProbabilities``, or a :class:`~experts.remote.RemoteFailure`."""
        return await self._batched((image, kwargs))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _batched(self, calls: list[Call]) -> list[Any]:
        self.batch_sizes.append(len(calls))
        self.running = len(calls)
        try:
            return await asyncio.to_thread(run_batch, self.expert, calls)
        except Exception as exc:  # noqa: BLE001 - run_batch catches per call; this is a last resort
            return [RemoteFailure.of(exc, self.expert.name)] * len(calls)
        finally:
            self.running = 0
