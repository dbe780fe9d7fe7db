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
import weakref
from pathlib import Path
from typing import Any, Callable

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
        self._state = threading.Condition()
        self._written = 0  # lines written so far
        self._durable = 0  # lines known to be on disk (fsynced)
        self._syncer: threading.Thread | None = None
        _track(self)

    def write(self, event: str, session_id: str, **fields: Any) -> None:
        fields = valid_unicode(fields)
        if self.redact is not None:
            fields = self.redact({k: v for k, v in fields.items() if k not in _UNREDACTED})
        record = {"ts": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"), "event": event,
                  "session": session_id, **fields}
        line = json.dumps(record, default=str, ensure_ascii=False)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, (line + "\n").encode("utf-8", errors="replace"))
            finally:
                os.close(fd)
            with self._state:
                self._written += 1
                if self._syncer is None:
                    self._syncer = threading.Thread(target=self._sync_loop, name="osler-audit-fsync", daemon=True)
                    self._syncer.start()
                self._state.notify_all()

    def _fsync(self) -> None:
        with self._state:
            target = self._written
        if target <= self._durable:
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(fd)  # the file's data, whichever descriptor wrote it
        finally:
            os.close(fd)
        with self._state:
            self._durable = max(self._durable, target)
            self._state.notify_all()

    def _sync_loop(self) -> None:
        while True:
            with self._state:
                if not self._state.wait_for(lambda: self._durable < self._written, timeout=2.0):
                    self._syncer = None  # idle: the next write starts a new thread
                    return
            try:
                self._fsync()
            except OSError:  # the file went away (a test's temporary folder): nothing left to make durable
                with self._state:
                    self._durable = self._written
                    self._state.notify_all()

    def sync(self, timeout: float | None = None) -> bool:
        """Wait until every line written so far is on disk; False when ``timeout`` ran out first."""
        with self._state:
            target = self._written
            return self._state.wait_for(lambda: self._durable >= target, timeout=timeout)

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


_open_logs: "weakref.WeakSet[AuditLog]" = weakref.WeakSet()
_exit_hook = threading.Lock()
_hooked = False


def _track(log_: AuditLog) -> None:
    """Remember a log for the exit hook (registered with the first log, not at import)."""
    global _hooked
    with _exit_hook:
        _open_logs.add(log_)
        if not _hooked:
            atexit.register(_sync_at_exit)
            _hooked = True


def _sync_at_exit() -> None:
    """Make every pending audit line durable before the interpreter exits (the sync thread is a daemon)."""
    for log_ in list(_open_logs):
        try:
            log_._fsync()
        except OSError:
            pass
