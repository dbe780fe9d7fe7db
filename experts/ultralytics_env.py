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

    Idempotent and thread-safe; the first call in a process wins (ultralytics reads its config dir
    once, at import), later calls return the folder of the first.  Returns
    ``<config_dir>/Ultralytics`` (ultralytics' settings file and fonts).  If ultralytics was
    imported before the first call, its import-time probe has happened: this still marks it
    offline, turns syncing off, places the fonts where it looks, and logs a warning.
    """
    global _prepared
    config_dir = Path(config_dir).expanduser().resolve()
    with _lock:
        ul_dir = config_dir / "Ultralytics"
        if _prepared is not None:  # a second call (maybe another dir): the first one's settings hold
            if _prepared != config_dir:
                log.debug("ultralytics already prepared with %s; keeping it", _prepared)
            return _prepared / "Ultralytics"
        already = "ultralytics" in sys.modules
        if already:
            log.warning("ultralytics was imported before prepare_ultralytics(); its import-time checks already ran")
        os.environ["YOLO_OFFLINE"] = "1"
        os.environ["YOLO_AUTOINSTALL"] = "false"
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
        src = _font_source()
        _place_fonts(ul_dir, src)

        from ultralytics import utils as ul_utils

        ul_utils.ONLINE = False  # effective even when ultralytics was imported earlier
        live_dir = Path(ul_utils.USER_CONFIG_DIR).resolve()
        if live_dir != ul_dir:  # imported earlier with another config dir: its font lookup is there
            log.warning("ultralytics keeps its settings in %s (imported before YOLO_CONFIG_DIR was set)", live_dir)
            _place_fonts(live_dir, src)
        if ul_utils.SETTINGS.get("sync", True):
            ul_utils.SETTINGS.update(sync=False)
        _prepared = config_dir
        return ul_dir


def _place_fonts(folder: Path, src: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in FONT_NAMES:
        dst = folder / name
        if not dst.exists() or dst.stat().st_size == 0:
            shutil.copyfile(src, dst)
