"""How the experts are served: in this process (default) or as Ray Serve deployments
(:mod:`experts.ray_serve`).  A part of :class:`~tools.settings.OslerSettings` (``OSLER_SERVING__EXPERTS=ray``,
TOML ``[serving]``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ServingSettings", "ExpertServing"]

ExpertServing = Literal["inprocess", "ray"]


class ServingSettings(BaseModel):
    """Replicas, resources and batching of every expert deployment (one deployment per expert backend)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    experts: ExpertServing = Field(
        default="inprocess", description="'inprocess': models load in the asking process (one user); 'ray': each "
                                         "expert is a Ray Serve deployment shared by every session")
    ray_address: str | None = Field(
        default=None, description="an existing Ray cluster ('auto', 'ray://head:10001', 'head:6379'); None starts a "
                                  "local Ray instance bound to 127.0.0.1 (entry points fill it from RAY_ADDRESS)")
    local_num_cpus: int | None = Field(default=None, ge=1, description="logical CPUs of a local Ray instance "
                                                                       "(default: the machine's)")
    num_replicas: int = Field(default=1, ge=1, description="replicas per expert when autoscaling is off")
    min_replicas: int | None = Field(default=None, ge=0, description="autoscaling lower bound (set both bounds)")
    max_replicas: int | None = Field(default=None, ge=1, description="autoscaling upper bound (set both bounds)")
    target_ongoing_requests: float = Field(default=2.0, gt=0, description="autoscaling: requests per replica")
    num_cpus: float = Field(default=0.25, ge=0, description="logical CPUs each replica reserves (Ray's accounting)")
    num_gpus: float = Field(default=0.0, ge=0, description="GPU fraction each replica reserves, e.g. 0.25: four "
                                                           "experts share one GPU")
    max_batch_size: int = Field(default=8, ge=1, description="@serve.batch: calls gathered into one batch")
    batch_wait_timeout_s: float = Field(default=0.005, ge=0, description="@serve.batch: longest wait for a batch "
                                                                         "to fill")
    request_timeout_s: float = Field(default=120.0, gt=0, description="one expert call, queueing included")
    retries: int = Field(default=1, ge=0, description="retries of a call whose replica died (a new replica is "
                                                      "started by Ray Serve)")

    @model_validator(mode="after")
    def _bounds(self) -> ServingSettings:
        if (self.min_replicas is None) != (self.max_replicas is None):
            raise ValueError("set both serving.min_replicas and serving.max_replicas (autoscaling), or neither")
        if self.min_replicas is not None and self.max_replicas is not None and self.min_replicas > self.max_replicas:
            raise ValueError("serving.min_replicas is larger than serving.max_replicas")
        return self

    @property
    def autoscaling(self) -> bool:
        return self.max_replicas is not None
