"""Make ultralytics run with no network attempt.  Call :func:`prepare_ultralytics` before the
first ``import ultralytics`` (the YOLO expert and the training script do).

What ultralytics tries to reach, and what this stops (measured; see ``shared/STACK.md``):

* DNS probes at import, the PyPI version check, analytics  -> ``YOLO_OFFLINE=1`` and
  ``sync=False`` in its settings;
* pip-installing missing packages at run time              -> ``YOLO_AUTOINSTALL=false``;
* downloading ``Arial.ttf`` / ``Arial.Unicode.ttf`` for plots and labels, even when offline
  -> a TTF of that name in ``<config_dir>/Ultralytics/`` (matplotlib's DejaVuSans.ttf);
* writing settings to ``~/.config/Ultralytics``            -> ``YOLO_CONFIG_DIR=<config_dir>``.

Model names such as ``yolo11n.pt`` and dataset names such as ``coco8.yaml`` still download when
given to ultralytics: callers pass local files only (:mod:`experts.yolo_detector` checks).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
from pathlib import Path

__all__ = ["prepare_ultralytics", "default_config_dir", "FONT_NAMES"]

log = logging.getLogger(__name__)

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
_lock = threading.Lock()
_prepared: Path | None = None


def default_config_dir(data_dir: Path) -> Path:
    """``<settings.data_dir>/ultralytics``: where the settings file and the fonts live."""
    return Path(data_dir).expanduser() / "ultralytics"


def _font_source() -> Path:
    import matplotlib

    src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    if not src.exists():  # pragma: no cover - matplotlib always ships it
        raise FileNotFoundError(f"matplotlib's DejaVuSans.ttf is missing at {src}")
    return src


def prepare_ultralytics(config_dir: Path) -> Path:
    """Set ultralytics' offline environment, fonts and settings under ``config_dir``.

    Idempotent and thread-safe.  Returns ``config_dir / "Ultralytics"`` (the folder ultralytics
    uses for its settings file and fonts).  If ultralytics was already imported by someone else,
    the import-time probe has happened; this still turns syncing off and logs a warning.
    """
    global _prepared
    config_dir = Path(config_dir).expanduser().resolve()
    with _lock:
        ul_dir = config_dir / "Ultralytics"
        if _prepared == config_dir:
            return ul_dir
        already = "ultralytics" in sys.modules
        if already:
            log.warning("ultralytics was imported before prepare_ultralytics(); its import-time checks already ran")
        os.environ["YOLO_OFFLINE"] = "1"
        os.environ["YOLO_AUTOINSTALL"] = "false"
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
        ul_dir.mkdir(parents=True, exist_ok=True)
        src = _font_source()
        for name in FONT_NAMES:
            dst = ul_dir / name
            if not dst.exists() or dst.stat().st_size == 0:
                shutil.copyfile(src, dst)

        from ultralytics import utils as ul_utils

        ul_utils.ONLINE = False  # effective even when ultralytics was imported earlier
        if ul_utils.SETTINGS.get("sync", True):
            ul_utils.SETTINGS.update(sync=False)
        live_dir = Path(ul_utils.USER_CONFIG_DIR)
        if live_dir.resolve() != ul_dir:  # imported earlier with another config dir: fonts go there too
            log.warning("ultralytics keeps its settings in %s (imported before YOLO_CONFIG_DIR was set)", live_dir)
            for name in FONT_NAMES:
                if not (live_dir / name).exists():
                    shutil.copyfile(src, live_dir / name)
        _prepared = config_dir
        return ul_dir
