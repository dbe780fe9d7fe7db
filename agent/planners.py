"""Planner choice: the built-in offline planner, or any OpenAI-compatible chat server.

``build_model`` is the seam: it returns a pydantic-ai model and a name for provenance.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlparse

from tools.errors import ConfigurationError, PlannerError
from tools.settings import OslerSettings

from .builtin import BuiltinPlanner, builtin_model
from .session import Session

__all__ = ["build_model", "is_loopback", "check_server"]

log = logging.getLogger(__name__)


def is_loopback(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


def check_server(base_url: str, api_key: str | None, timeout: float = 3.0) -> None:
    """Fail fast, with a one-line message, when the planner server cannot be reached."""
    import httpx

    try:
        r = httpx.get(base_url.rstrip("/") + "/models", timeout=timeout,
                      headers={"Authorization": f"Bearer {api_key}"} if api_key else None)
    except httpx.HTTPError as exc:
        raise PlannerError(f"cannot reach the planner server at {base_url} ({type(exc).__name__}); start it, fix "
                           f"OSLER_BASE_URL / --base-url, or use --planner builtin") from exc
    if r.status_code >= 500:
        raise PlannerError(f"the planner server at {base_url} answered HTTP {r.status_code}")


def build_model(settings: OslerSettings, session: Session) -> tuple[Any, str]:
    if settings.planner == "builtin":
        planner = session.state.get("builtin_planner")
        if planner is None:
            planner = session.state["builtin_planner"] = BuiltinPlanner()
        planner.has_prior = "prior" in session.images
        return builtin_model(planner), "builtin"
    if settings.planner == "openai":
        from .openai_planner import build_openai_model

        return build_openai_model(settings, session)
    if settings.planner == "local":
        from .local_planner import build_local_model

        return build_local_model(settings), f"local:{settings.models.local_llm_dir}"
    raise ConfigurationError(f"unknown planner {settings.planner!r}; use builtin, openai or local")
