"""Where a YOLO expert's checkpoint comes from: a local file only, never a model name (nothing is downloaded).

:func:`_weights` resolves the configured path or the bundled ``experts/weights`` file and refuses hub names
such as ``yolo11n.pt`` with an :class:`ExpertUnavailableError` naming the setting.
"""

from __future__ import annotations

from pathlib import Path

from tools.errors import ExpertUnavailableError
from tools.settings import OslerSettings

from .weights import resolve_weights

__all__ = ["_SETTINGS", "_config_dir", "_weights"]

_SETTINGS = {"blood": "OSLER_MODELS__YOLO_BLOOD", "polyp": "OSLER_MODELS__YOLO_POLYP",
             "custom": "OSLER_MODELS__YOLO_EXTRA"}


def _config_dir(settings: OslerSettings) -> Path:
    from .ultralytics_env import default_config_dir

    return default_config_dir(settings.data_dir)


def _weights(configured: Path | None, bundled: str | None, kind: str) -> Path:
    """The local weights file, or ExpertUnavailableError naming the setting (never a download)."""
    setting = _SETTINGS[kind]
    try:
        path = resolve_weights(configured, bundled, setting)
    except ExpertUnavailableError as exc:
        hint = ""
        if configured is not None and Path(configured).parent == Path("."):
            hint = " (a model name is not downloaded: give the path of a local .pt file)"
        raise ExpertUnavailableError(f"{exc}{hint}") from exc
    if path is None:
        what = f"the bundled experts/weights/{bundled} is missing" if bundled else "it is not set"
        raise ExpertUnavailableError(f"no YOLO weights for {kind}: set {setting}=/path/to/weights.pt ({what})")
    return path
