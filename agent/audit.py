"""Append-only audit log: one JSON object per line, written per event.

Each line is handed to the operating system (``os.write`` on an append-only descriptor) before
:meth:`AuditLog.write` returns, so a crash of the process loses nothing already written.  Making it
durable on disk (``fsync``, ~0.2-5 ms on this machine) happens off the answer path: a background thread
fsyncs after each burst of lines (one fsync covers every line before it), an exit hook fsyncs whatever
is still pending, and :meth:`AuditLog.sync` waits until every line written so far is durable.

No pixels and no file paths of patient images: images are referred to by session id, role
and a short content hash.  A crash mid-answer leaves every earlier line intact.

What an auditor needs, not what identifies the patient: unless ``settings.audit.verbatim`` is set,
every line passes through the session's ``redact`` function (:meth:`agent.session.Session.redact`):
patient names, IDs and file names known from the session's files are removed, dates become
intervals relative to the current study, and a question is stored de-identified with the SHA-256
of the text as asked (``question_sha256``), so a site can prove which question was asked without
keeping it.  Every string is valid Unicode before it is written (:func:`tools.inputs.clean_text`).
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Any, Callable

from agent.private_files import private_dir
from tools.inputs import clean_text

__all__ = ["AuditLog", "valid_unicode"]

_UNREDACTED = ("ts", "event", "session")


def valid_unicode(value: Any) -> Any:
    """``value`` with every string made valid Unicode (dict keys too); other values unchanged."""
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {valid_unicode(k) if isinstance(k, str) else k: valid_unicode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [valid_unicode(v) for v in value]
    return value


class AuditLog:
    def __init__(self, path: Path, redact: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.path = Path(path)
        self.redact = redact
        self._lock = threading.Lock()

    def write(self, event: str, session_id: str, **fields: Any) -> None:
        fields = valid_unicode(fields)
        if self.redact is not None:
            fields = self.redact({k: v for k, v in fields.items() if k not in _UNREDACTED})
        record = {"ts": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), "event": event,
                  "session": session_id, **fields}
        line = json.dumps(record, default=str, ensure_ascii=False)
        with self._lock:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            except FileNotFoundError:  # the first line: make the folder (not on every line: ~0.4 ms a call here)
                private_dir(self.path.parent)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode("utf-8", errors="replace"))
            finally:
                os.close(fd)
        _SYNCER.written(self.path)

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until every line written so far is on disk; False when ``timeout`` ran out first."""
        return _SYNCER.wait(self.path, timeout)

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a crash is skipped, never fatal
        return out


class _Syncer:
    """One daemon thread per process that fsyncs audit files after lines were written to them (every AuditLog
    of a path shares its counters), plus an exit hook for what is still pending."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._written: dict[Path, int] = {}
        self._durable: dict[Path, int] = {}
        self._thread: threading.Thread | None = None

    def written(self, path: Path) -> None:
        with self._cond:
            self._written[path] = self._written.get(path, 0) + 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="osler-audit-fsync", daemon=True)
                self._thread.start()
                atexit.register(self.flush)
            self._cond.notify_all()

    def _pending(self) -> dict[Path, int]:
        return {p: n for p, n in self._written.items() if self._durable.get(p, 0) < n}

    def flush(self) -> None:
        """fsync every file with lines not yet on disk."""
        with self._cond:
            todo = self._pending()
        for path, n in todo.items():
            try:
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)  # the file's data, whichever descriptor wrote it
                finally:
                    os.close(fd)
            except OSError:  # the file went away (a test's temporary folder): nothing left to make durable
                pass
            with self._cond:
                self._durable[path] = max(self._durable.get(path, 0), n)
                self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending()))
            self.flush()

    def wait(self, path: Path, timeout: float | None) -> bool:
        with self._cond:
            target = self._written.get(path, 0)
            return self._cond.wait_for(lambda: self._durable.get(path, 0) >= target, timeout=timeout)


_SYNCER = _Syncer()
