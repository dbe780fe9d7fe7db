"""Helpers for entry points only (``osler`` and its subcommands, ``python -m`` tools): the offline
switches, the planner flags and the settings object built from them.

Each entry point of ``ui``, ``voice`` and ``eval_scenarios`` imports them from here (not from another
entry point's module), so the command-line modules do not import each other.  Nothing below an entry
point calls these.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .settings import PLANNERS

__all__ = ["offline_environment", "make_settings", "planner_args"]


def offline_environment() -> None:
    """Entry-point-only: the switches that keep third-party libraries off the network."""
    for key, value in {
        "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1", "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "false", "YOLO_VERBOSE": "False", "GRADIO_ANALYTICS_ENABLED": "False", "DO_NOT_TRACK": "1",
    }.items():
        os.environ.setdefault(key, value)
    no_proxy = os.environ.get("NO_PROXY", "")
    if "127.0.0.1" not in no_proxy:
        os.environ["NO_PROXY"] = ",".join(filter(None, [no_proxy, "127.0.0.1", "localhost"]))


def make_settings(args: argparse.Namespace | None = None, **overrides: Any) -> Any:
    """The :class:`~tools.settings.OslerSettings` of the environment, the planner flags of ``args`` and
    ``overrides``."""
    from tools.settings import OslerSettings

    kw = dict(overrides)
    if args is not None:
        for name in ("planner", "base_url", "model", "device"):
            v = getattr(args, name, None)
            if v is not None:
                kw[name] = v
    return OslerSettings(**kw)


def planner_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--planner", choices=list(PLANNERS), help="planner (default: builtin)")
    p.add_argument("--base-url", dest="base_url", help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--model", help="model name on that server")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"])
