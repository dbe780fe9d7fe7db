"""Voice settings: which recogniser and voice, the wake word, the push-to-talk key, gates.

``VoiceSettings`` lives in ``tools`` as ``OslerSettings.voice`` (env
``OSLER_VOICE__ASR_BACKEND=pocketsphinx``, TOML ``[voice]``); :func:`voice_settings` applies the
CLI's overrides.  Nothing here reads the environment.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tools.voice_settings import AsrBackend, TtsBackend, VoiceSettings

__all__ = ["VoiceSettings", "voice_settings", "AsrBackend", "TtsBackend"]

def voice_settings(settings: Any, **overrides: Any) -> VoiceSettings:
    """The voice settings of an :class:`~tools.settings.OslerSettings` (its ``voice`` field when
    present, else defaults), with ``overrides`` that are not None applied."""
    base = getattr(settings, "voice", None)
    if isinstance(base, VoiceSettings):
        data = base.model_dump()
    elif isinstance(base, BaseModel):
        data = {k: v for k, v in base.model_dump().items() if k in VoiceSettings.model_fields}
    elif isinstance(base, dict):
        data = {k: v for k, v in base.items() if k in VoiceSettings.model_fields}
    else:
        data = {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return VoiceSettings(**data)
