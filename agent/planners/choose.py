"""Planner choice: the built-in offline planner, the local LLM planner (llama.cpp, hybrid with the rule parser),
or any OpenAI-compatible chat server.

``build_model`` is the seam: it returns a pydantic-ai model and a name for provenance.
"""

from __future__ import annotations

import logging
from typing import Any

from tools.errors import ConfigurationError
from tools.settings import OslerSettings

from agent.builtin.planner import BuiltinPlanner, builtin_model
from agent.session import Session

__all__ = ["build_model"]

log = logging.getLogger(__name__)


def build_model(settings: OslerSettings, session: Session) -> tuple[Any, str]:
    if settings.planner == "builtin":
        planner = session.state.get("builtin_planner")
        if planner is None:
            planner = session.state["builtin_planner"] = BuiltinPlanner()
        planner.has_prior = "prior" in session.images
        return builtin_model(planner), "builtin"
    if settings.planner == "llm":
        from agent.planners.hybrid import HybridPlanner, LLMClient

        planner = session.state.get("llm_planner")
        if planner is None:
            from agent.privacy import policy_for

            client = LLMClient.from_settings(settings)
            policy = policy_for(settings, client.base_url or "http://127.0.0.1")  # llama-server: loopback
            planner = session.state["llm_planner"] = HybridPlanner(client=client, mode=settings.llm.mode,
                                                                   session=session, policy=policy)
        planner.has_prior = "prior" in session.images
        return builtin_model(planner), f"llm-{settings.llm.mode}:{planner.client.name}"
    if settings.planner == "openai":
        from agent.planners.openai import build_openai_model

        return build_openai_model(settings, session)
    if settings.planner == "local":
        from agent.planners.local import build_local_model

        return build_local_model(settings), f"local:{settings.models.local_llm_dir}"
    raise ConfigurationError(f"unknown planner {settings.planner!r}; use builtin, llm, openai or local")
