"""Use ultralytics safely: no network attempt, and weights only from local files read with
``weights_only=True``.  Call :func:`prepare_ultralytics` before the first ``import ultralytics``
(the YOLO expert and the training script do).

What ultralytics tries to reach, and what this stops (measured; see ``shared/STACK.md``):

* DNS probes at import, the PyPI version check, analytics  -> ``YOLO_OFFLINE=1`` and
  ``sync=False`` in its settings;
* pip-installing missing packages at run time              -> ``YOLO_AUTOINSTALL=false``;
* downloading ``Arial.ttf`` / ``Arial.Unicode.ttf`` for plots and labels, even when offline
  -> a TTF of that name in ``<config_dir>/Ultralytics/`` (matplotlib's DejaVuSans.ttf);
* writing settings to ``~/.config/Ultralytics``            -> ``YOLO_CONFIG_DIR=<config_dir>``.

Model names such as ``yolo11n.pt`` and dataset names such as ``coco8.yaml`` still download when
given to ultralytics: callers pass local files only (:mod:`experts.yolo_detector` checks).

Checkpoint files (:func:`save_checkpoint`, :func:`read_checkpoint`):

* ``osler-yolo-v1``: a dict of plain types and fp16 tensors -- ``{"format", "yaml" (model yaml
  dict), "names" (class names, index order), "imgsz" (training input size, px), "state_dict",
  "train" (metadata: split, metrics, command)}``; rebuilt as ``DetectionModel(yaml)``;
* an ultralytics ``.pt`` (e.g. ``best.pt``), read with ultralytics' restricted loader
  (``weights_only=True`` with its allow-list of model classes; no arbitrary unpickling).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from tools.errors import ExpertUnavailableError

__all__ = ["prepare_ultralytics", "default_config_dir", "FONT_NAMES", "FORMAT", "save_checkpoint", "read_checkpoint",
           "validation_names"]

log = logging.getLogger(__name__)

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
FORMAT = "osler-yolo-v1"
_lock = threading.Lock()
_prepared: Path | None = None


def default_config_dir(data_dir: Path) -> Path:
    """``<settings.data_dir>/ultralytics``: where the settings file and the fonts live."""
    return Path(data_dir).expanduser() / "ultralytics"


def _font_source() -> Path:
    """matplotlib's DejaVuSans.ttf, found without importing matplotlib (~0.6 s at a cold start)."""
    import importlib.util

    spec = importlib.util.find_spec("matplotlib")
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    src = Path(folders[0]) / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf" if folders else None
    if src is None or not src.exists():  # pragma: no cover - matplotlib always ships it
        raise FileNotFoundError(f"matplotlib's DejaVuSans.ttf is missing (looked at {src})")
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

        with contextlib.redirect_stdout(sys.stderr):  # its logger binds the stream now: keep stdout for results
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


def save_checkpoint(model: Any, names: Sequence[str], imgsz: int, path: Path, meta: dict | None = None) -> Path:
    """Write an ultralytics ``DetectionModel`` as an ``osler-yolo-v1`` fp16 state dict."""
    import torch

    cfg = {k: v for k, v in dict(model.yaml).items() if k != "yaml_file"}
    payload = {
        "format": FORMAT,
        "yaml": cfg,
        "names": [str(n) for n in names],
        "imgsz": int(imgsz),
        "state_dict": {k: v.detach().cpu().half() if v.is_floating_point() else v.detach().cpu()
                       for k, v in model.state_dict().items()},
        "train": dict(meta or {}),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return path


def read_checkpoint(path: Path, setting: str) -> tuple[Any, list[str], int | None, dict]:
    """(model in float32 eval mode, class names, training imgsz or None, metadata)."""
    import pickle

    import torch

    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        payload = None  # an ultralytics checkpoint: pickled model objects
    except Exception as exc:  # noqa: BLE001 - corrupt or not a torch file
        raise ExpertUnavailableError(f"{setting}: {path.name} is not a readable PyTorch checkpoint ({exc})") from exc
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        from ultralytics.nn.tasks import DetectionModel

        names = list(payload["names"])
        cfg = dict(payload["yaml"])
        if "scale" not in cfg and len(cfg.get("scales") or {}) == 1:
            cfg["scale"] = next(iter(cfg["scales"]))  # the one scale it was trained at
        model = DetectionModel(cfg=cfg, nc=len(names), verbose=False)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()})
        return model.float().eval(), names, int(payload["imgsz"]), dict(payload.get("train") or {})
    from ultralytics.nn.tasks import torch_safe_load

    try:
        ckpt, _ = torch_safe_load(str(path), safe_only=True)
    except Exception as exc:  # noqa: BLE001
        raise ExpertUnavailableError(
            f"{setting}: {path.name} is neither an osler-yolo-v1 state dict nor an ultralytics checkpoint that loads "
            f"with weights_only=True ({type(exc).__name__}: {exc}); re-export it with training/train_yolo.py"
        ) from exc
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, dict) else None
    if model is None or not hasattr(model, "names"):
        raise ExpertUnavailableError(f"{setting}: {path.name} holds no detection model")
    raw = model.names
    names = [raw[i] for i in range(len(raw))] if isinstance(raw, dict) else list(raw)
    args = ckpt.get("train_args") or getattr(model, "args", None) or {}
    imgsz = args.get("imgsz") if isinstance(args, dict) else None
    return model.float().eval(), [str(n) for n in names], int(imgsz) if isinstance(imgsz, int) else None, {}


def validation_names(path: Path) -> list[str]:
    """The file stems an ``osler-yolo-v1`` checkpoint records as held out from its training (``train["val"]``),
    sorted; empty when it records none (an ONNX export or a foreign checkpoint)."""
    import torch

    try:
        payload = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not an osler state dict: nothing recorded
        return []
    val = ((payload.get("train") or {}).get("val") or []) if isinstance(payload, dict) else []
    return sorted(Path(n).stem for n in val)
