"""Files Osler writes about a patient, private to the user who runs it: folders 0700, files 0600.

Whatever the umask (022 makes new files 0644, readable by every local user), a session's folder, its overlays,
masks and answers.json, the web app's per-tab copies and the exports are made with these helpers.  A folder
that exists already keeps its mode (a user's ``--out`` folder is theirs); the files written into it do not.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import IO, Any

__all__ = ["PRIVATE_DIR", "PRIVATE_FILE", "private_dir", "private_data_dir", "open_private", "write_private_text",
           "copy_private", "make_private"]

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: str | Path) -> Path:
    """``path`` as a folder; every level this call creates is 0700 (``mkdir -p`` would make parents 0755)."""
    path = Path(path)
    missing = []
    p = path
    while not p.is_dir() and p != p.parent:
        missing.append(p)
        p = p.parent
    for p in reversed(missing):
        try:
            os.mkdir(p, PRIVATE_DIR)
        except FileExistsError:  # made meanwhile by another thread (a file there fails on the next level)
            continue
        os.chmod(p, PRIVATE_DIR)  # mkdir's mode passes through the umask
    return path


_TIGHTENED: set[str] = set()  # data folders checked by this process


def private_data_dir(path: str | Path) -> Path:
    """Osler's data folder (sessions, overlays, the audit log), made if missing, and 0700 when it is this user's: a
    folder an older version made 0755 (or a copy restored with the umask's modes) is tightened, so no other local
    user reaches any session in it, whatever the modes inside."""
    path = private_dir(path)
    if str(path) in _TIGHTENED:
        return path
    _TIGHTENED.add(str(path))
    st = path.stat()
    if st.st_mode & 0o077 and st.st_uid == os.getuid():
        os.chmod(path, PRIVATE_DIR)
        log.warning("Osler's data folder %s was readable by other users (mode %o): made private (0700)", path,
                    st.st_mode & 0o777)
    return path


def open_private(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> IO[Any]:
    """``open(path, mode)`` for writing ('w', 'a', 'wb', 'ab'), the file 0600 even when it existed."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
        return os.fdopen(fd, mode, encoding=None if "b" in mode else encoding)
    except BaseException:
        os.close(fd)
        raise


def write_private_text(path: str | Path, text: str) -> None:
    with open_private(path, "w") as fh:
        fh.write(text)


def copy_private(src: str | Path, dst: str | Path) -> Path:
    """Copy the bytes of ``src`` to ``dst`` (0600)."""
    with open(src, "rb") as fin, open_private(dst, "wb") as fout:
        while chunk := fin.read(1 << 20):
            fout.write(chunk)
    return Path(dst)


def make_private(*paths: str | Path) -> None:
    """0600 for files a library wrote with the umask's mode (OpenCV, pydicom, reportlab)."""
    for p in paths:
        os.chmod(p, PRIVATE_FILE)
