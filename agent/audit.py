"""Append-only audit log: one JSON object per line, flushed and fsynced per event.

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

import datetime as dt
import json
import os
import threading
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
                os.fsync(fd)
            finally:
                os.close(fd)

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
