"""A planner on any OpenAI-compatible chat server (vLLM, llama.cpp server, Ollama, LM Studio, a hosted API).

The agent loop is pydantic-ai's: the seven tools are offered with their pydantic schemas, the final
answer is the ``final_result`` output tool (a :class:`~tools.answer.FinalAnswer`), and a tool call
whose arguments are not valid JSON, fail validation or name an unknown tool is answered with the
error so the model can fix it (each tool allows 3 retries; counted in ``grounding.guard.planner``).
The model is wrapped in :class:`agent.privacy.PrivacyModel`: vision models get the images inline
(PNG bytes in the request, never a URL the server must fetch), text-only models never see pixels,
and a server that is not on this machine only gets de-identified content.

Limits: ``planner_max_steps`` model turns with tool calls (then status 'stopped'), and
``planner_timeout_s`` for the whole ask (each HTTP request too); see :mod:`agent.grounding.guard`.  Every request
carries ``max_tokens`` (``planner_max_tokens``) and ``temperature`` (``planner_temperature``, 0 by default),
so a model that never closes its turn stops at a known length.  Small local models plan better through
``--planner llm`` (:mod:`agent.planners.hybrid`), which asks them for a short JSON plan instead of tool calls.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from tools.errors import ConfigurationError, PlannerError
from tools.settings import OslerSettings

from agent.privacy import PrivacyModel, policy_for
from agent.session import Session

__all__ = ["build_openai_model", "check_server"]

log = logging.getLogger(__name__)


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

HTTP_RETRIES = 1  # the OpenAI client's own retries of a failed HTTP request (connection reset, 5xx)


def build_openai_model(settings: OslerSettings, session: Session, *, remote: bool | None = None,
                       remote_images: Literal["withhold", "mask"] = "withhold",
                       check: bool = True) -> tuple[Any, str]:
    """The pydantic-ai model for ``settings.base_url`` / ``settings.model`` and its provenance name.

    ``remote`` overrides the loopback test of the URL (None: decide from the host name);
    ``remote_images`` says what a de-identifying policy does with images for vision models.
    Raises ConfigurationError when the URL or model is missing, PlannerError when the server cannot
    be reached (``check=False`` skips that probe).
    """
    if not settings.base_url or not settings.model:
        raise ConfigurationError("the openai planner needs OSLER_BASE_URL (--base-url) and OSLER_MODEL (--model)")
    if check:
        check_server(settings.base_url, settings.api_key)
    from openai import AsyncOpenAI
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider
    from pydantic_ai.settings import ModelSettings

    client = AsyncOpenAI(base_url=settings.base_url, api_key=settings.api_key or "not-needed",
                         timeout=settings.planner_timeout_s, max_retries=HTTP_RETRIES)
    chat = OpenAIChatModel(settings.model, provider=OpenAIProvider(openai_client=client),
                           settings=ModelSettings(timeout=settings.planner_timeout_s,
                                                  max_tokens=settings.planner_max_tokens,
                                                  temperature=settings.planner_temperature))
    policy = policy_for(settings, settings.base_url, remote=remote, remote_images=remote_images)
    log.info("openai planner %s at %s (remote=%s, de-identified=%s, images=%s)", settings.model, policy.host,
             policy.remote, policy.deidentify, policy.send_images)
    return PrivacyModel(chat, policy, session), f"openai:{settings.model}@{settings.base_url}"
