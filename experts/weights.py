"""The one place that finds and reads weight files.  Local paths only; never a download."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from tools.errors import ExpertUnavailableError

__all__ = ["BUNDLED_DIR", "bundled", "sha256_of", "resolve_weights", "load_torch_state", "resolve_device"]

BUNDLED_DIR = Path(__file__).resolve().parent / "weights"


def bundled(name: str) -> Path:
    """Path of a weights file shipped with Osler (``experts/weights/<name>``)."""
    return BUNDLED_DIR / name


@lru_cache(maxsize=64)
def _sha256_cached(path: str, mtime: float, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_of(path: Path) -> str:
    st = path.stat()
    return _sha256_cached(str(path), st.st_mtime, st.st_size)


def resolve_weights(configured: Path | None, bundled_name: str | None, setting: str) -> Path | None:
    """The configured path if set (it must exist), else the bundled file if present, else None."""
    if configured is not None:
        path = Path(configured).expanduser()
        if not path.exists():
            raise ExpertUnavailableError(f"{setting} points to {path}, which does not exist; fix the setting")
        return path
    if bundled_name:
        path = bundled(bundled_name)
        if path.exists():
            return path
    return None


def load_torch_state(path: Path, expected_sha256: str | None = None, map_location: str = "cpu") -> Any:
    """torch.load with ``weights_only=True`` after an optional checksum check."""
    import torch

    if expected_sha256 and sha256_of(path) != expected_sha256:
        raise ExpertUnavailableError(f"{path.name}: checksum mismatch; the weights file is corrupt or replaced")
    return torch.load(str(path), map_location=map_location, weights_only=True)


def resolve_device(setting: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'.  'cuda' without a GPU is an error."""
    if setting == "cpu":
        return "cpu"
    import torch

    has_cuda = torch.cuda.is_available()
    if setting == "cuda" and not has_cuda:
        raise ExpertUnavailableError("OSLER_DEVICE=cuda but no CUDA GPU is visible; set OSLER_DEVICE=auto or cpu")
    return "cuda" if has_cuda else "cpu"
