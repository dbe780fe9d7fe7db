"""A session: the studies of one patient, the artifacts made from them, the evidence ledger,
the conversation history and the audit trail.  One per CLI call, browser tab or voice loop.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from experts.imaging import StudyImage, display_name, load_image
from experts.overlay import recompress_png, save_png
from experts.registry import ExpertPool
from tools.answer import AskResult, ToolCallRecord
from tools.common import ArtifactRef
from tools.errors import ArtifactNotFoundError, InvalidInputError
from tools.settings import OslerSettings

from agent.audit import AuditLog
from agent.private_files import make_private, private_data_dir, private_dir

__all__ = ["Session", "Artifact"]

log = logging.getLogger(__name__)


@dataclass
class Artifact:
    ref: ArtifactRef
    array: np.ndarray | None = field(default=None, repr=False)


_threads: dict[str, ThreadPoolExecutor] = {}
_threads_guard = threading.Lock()


def _thread(name: str) -> ThreadPoolExecutor:
    """One worker thread of the process by name, started on first use: ``osler-png`` writes the answers' PNGs in
    the order they were made, ``osler-png-compact`` recompresses overlays after them.  Their threads are joined at
    interpreter exit (concurrent.futures), so a file queued before exit is written."""
    with _threads_guard:
        if name not in _threads:
            _threads[name] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        return _threads[name]


def _write_now_compact_later(path: str, pixels: np.ndarray) -> None:
    """An overlay of an answer: written at once without compression (the answer waits for it), then
    recompressed in place on another thread, off the answer path (a 720x576 overlay: ~4 ms on the path instead
    of ~15; the file shrinks ~2.6x a moment later)."""
    _save_private(path, pixels, fast=True)
    _thread("osler-png-compact").submit(_recompress_private, path, pixels)


def _save_private(path: str, pixels: np.ndarray, *, fast: bool = False) -> None:
    """:func:`save_png`, the file 0600 (OpenCV writes with the umask's mode)."""
    save_png(path, pixels, fast=fast)
    make_private(path)


def _recompress_private(path: str, pixels: np.ndarray) -> None:
    if recompress_png(path, pixels):  # the replacement was written with the umask's mode
        try:
            make_private(path)
        except FileNotFoundError:  # its session was deleted meanwhile
            pass


class Session:
    """Holds everything one conversation about one patient needs.  Thread-safe counters."""

    def __init__(
        self,
        settings: OslerSettings,
        pool: ExpertPool | None = None,
        session_id: str | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool or ExpertPool(settings)
        self.id = session_id or uuid.uuid4().hex[:12]
        self.dir = private_data_dir(settings.data_dir) / "sessions" / self.id
        self.audit = audit or AuditLog(settings.audit_path)
        if not settings.audit.verbatim and self.audit.redact is None:
            self.audit.redact = self.redact
        self.images: dict[str, StudyImage] = {}
        self.image_kinds: dict[str, Any] = {}  # role -> ImageInfoResult (the gate's verdict, cached)
        self.artifacts: dict[str, Artifact] = {}
        self.evidence: dict[str, Any] = {}  # evidence id -> tool result model
        self.calls: list[ToolCallRecord] = []
        self.history: list[Any] = []  # pydantic-ai messages
        self.answers: list[AskResult] = []
        self.state: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._evidence_ids = itertools.count(1)
        self._artifact_ids = itertools.count(1)
        self._batch_ids: dict[Any, dict[str, str]] = {}  # one planner response's calls -> their evidence ids
        self._pending: dict[str, Future] = {}  # artifact id -> its PNG being written (add_artifact)
        self._background_writes = 0  # > 0 inside Assistant.ask: PNGs are encoded on the writer thread
        self._deid: Any = None  # agent.privacy.Deidentifier of the records of the loaded images, built on first use
        # cancellation of tool calls that outlive the planner's time limit (see tools.cancel)
        self.cancel = threading.Event()
        self._running: dict[str, str] = {}  # evidence id -> tool name, calls in flight
        self._abandoned: set[str] = set()  # calls still running when their ask ended: they record nothing
        self._idle = threading.Condition(self._lock)

    # ---- images -------------------------------------------------------------------------------
    def load(self, role: str, path: str | Path, study_date: str | None = None) -> StudyImage:
        """Read an image into the session as 'current' or 'prior'.  Raises InvalidInputError."""
        if role not in ("current", "prior"):
            raise InvalidInputError(f"image role must be 'current' or 'prior', not {role!r}")
        image = load_image(
            path, role, max_pixels=self.settings.max_image_pixels, max_file_mb=self.settings.max_file_mb,
            study_date=study_date,
        )
        if not self.settings.audit.verbatim:  # the file name may name the patient: records show a content hash
            image.meta = image.meta.model_copy(update={"source": f"{role}-{file_sha256(image.path)[:16]}"
                                                                 f"{_suffix(image.path)}"})
        self.set_image(role, image)
        return image

    def set_image(self, role: str, image: StudyImage) -> None:
        with self._lock:
            self.images[role] = image
            self.image_kinds.pop(role, None)
            self._deid = None
        self.audit.write("image", self.id, role=role, image=self.image_tag(role), width=image.meta.width,
                         height=image.meta.height, format=image.meta.format, source=image.meta.source)

    def clear_image(self, role: str) -> None:
        with self._lock:
            self.images.pop(role, None)
            self.image_kinds.pop(role, None)
            self._deid = None

    # ---- what records may hold -----------------------------------------------------------------
    def redact(self, value: Any) -> Any:
        """``value`` (a dict, list, model or str) as the audit log and session files store it: names, IDs and
        file names known from this session's files removed, dates as intervals relative to the current study,
        a ``question`` field de-identified with ``question_sha256`` of the text as asked.  Unchanged when
        ``settings.audit.verbatim``."""
        if self.settings.audit.verbatim:
            return value
        from agent.privacy import Deidentifier

        with self._lock:  # built once per set of images (set_image/clear_image reset it), not per record
            if self._deid is None:
                base = Deidentifier.for_session(self)
                hashed = frozenset(img.meta.source for img in self.images.values())  # load() made them hashes
                self._deid = Deidentifier(known=set(base.known) - hashed, reference=base.reference,
                                          keep_sources=hashed)
            deid = self._deid
        if isinstance(value, dict) and isinstance(value.get("question"), str):
            q = value["question"]
            value = {**value, "question_sha256": hashlib.sha256(q.encode("utf-8", "replace")).hexdigest()}
        return deid.value(value)

    def image(self, role: str) -> StudyImage:
        try:
            return self.images[role]
        except KeyError:
            if role == "prior":
                raise InvalidInputError(
                    "no prior study was given; load one (osler ask ... --prior FILE, or the prior upload)"
                ) from None
            raise InvalidInputError("no current image was given; load one first") from None

    def image_tag(self, role: str) -> str:
        """A short content hash that identifies an image in logs without naming the patient."""
        img = self.images.get(role)
        if img is None:
            return "none"
        return hashlib.sha256(np.ascontiguousarray(img.pixels[::8, ::8]).tobytes()).hexdigest()[:12]

    # ---- ids, evidence, artifacts -------------------------------------------------------------
    def new_evidence_id(self) -> str:
        with self._lock:
            return f"E{next(self._evidence_ids)}"

    def batch_evidence_id(self, batch: Any, call_ids: tuple[str, ...], call_id: str) -> str:
        """The evidence id of ``call_id``, one of the calls a planner response made together (``batch``: a key
        of that response).  They run concurrently, so the first to start reserves ids for all of them in the
        order the planner wrote them: the ids do not depend on which call starts first."""
        with self._lock:
            ids = self._batch_ids.get(batch)
            if ids is None:
                if len(self._batch_ids) > 64:  # only the current response's batch is ever asked for again
                    self._batch_ids.clear()
                ids = self._batch_ids[batch] = {c: f"E{next(self._evidence_ids)}" for c in call_ids}
            return ids[call_id]

    def record(self, evidence_id: str, result: Any) -> None:
        with self._lock:
            self.evidence[evidence_id] = result

    def add_artifact(self, kind: str, array: np.ndarray, *, keep_array: bool = True) -> ArtifactRef:
        """Store pixels (mask: bool (H, W); others uint8 RGB) as a PNG; return its reference.

        Inside :meth:`background_writes` (``Assistant.ask``) the PNG is encoded on a writer thread (OpenCV
        releases the GIL, so it overlaps the rest of the answer): :meth:`artifact` waits for it, and the ask
        flushes before it returns, so every path in an answer names a written file.  There an overlay is first
        stored uncompressed and recompressed in place later (:func:`_write_now_compact_later`).  Elsewhere (a tool invoked
        directly, an evaluation script) the file is written before this returns."""
        with self._lock:
            aid = f"{kind.replace('_', '-')}-{next(self._artifact_ids)}"
        if not self.dir.is_dir():  # a stat; mkdir(exist_ok=True) on every artifact cost ~0.4 ms here
            private_dir(self.dir)
        path = self.dir / f"{aid}.png"
        background = self._background_writes > 0
        if kind == "mask":
            pixels = array.astype(bool).astype(np.uint8) * 255
        else:  # queued: a copy, the caller may draw on its array again while the file is written
            pixels = np.array(array, copy=True) if background else array
        if not background:
            _save_private(str(path), pixels)
        ref = ArtifactRef(id=aid, kind=kind, path=str(path), width=int(array.shape[1]), height=int(array.shape[0]))
        with self._lock:
            self.artifacts[aid] = Artifact(ref=ref, array=array.astype(bool) if kind == "mask" and keep_array else None)
            if background:
                write = _save_private if kind == "mask" else _write_now_compact_later  # a mask compresses fast
                self._pending[aid] = _thread("osler-png").submit(write, str(path), pixels)
        return ref

    @contextmanager
    def background_writes(self) -> Iterator[None]:
        """Artifact PNGs made inside are encoded on the writer thread; call :meth:`flush_artifacts` before
        handing out their paths (``Assistant.ask`` does)."""
        with self._lock:
            self._background_writes += 1
        try:
            yield
        finally:
            with self._lock:
                self._background_writes -= 1

    def flush_artifacts(self) -> list[str]:
        """Wait until every artifact file queued so far is written; the ids whose file could not be written
        (each logged, and removed from :attr:`artifacts`)."""
        with self._lock:
            pending = dict(self._pending)
        failed = []
        for aid, fut in pending.items():
            exc = fut.exception()
            if exc is not None:
                log.error("artifact %s of session %s was not written: %s", aid, self.id, exc)
                failed.append(aid)
        with self._lock:
            for aid in pending:
                self._pending.pop(aid, None)
            for aid in failed:
                self.artifacts.pop(aid, None)
        return failed

    def _written(self, artifact_id: str) -> None:
        with self._lock:
            fut = self._pending.get(artifact_id)
        if fut is not None:
            fut.result()  # OSError when the file could not be written
            with self._lock:
                self._pending.pop(artifact_id, None)

    def artifact(self, artifact_id: str) -> Artifact:
        """The artifact, once its file is written."""
        try:
            art = self.artifacts[artifact_id]
        except KeyError:
            known = ", ".join(sorted(self.artifacts)) or "none yet"
            raise ArtifactNotFoundError(f"no artifact '{artifact_id}' in this session (known: {known})") from None
        self._written(artifact_id)
        return art

    def mask(self, artifact_id: str) -> np.ndarray:
        art = self.artifact(artifact_id)
        if art.ref.kind != "mask":
            raise InvalidInputError(f"artifact '{artifact_id}' is a {art.ref.kind}, not a mask")
        if art.array is None:
            import cv2

            art.array = cv2.imread(str(art.ref.path), cv2.IMREAD_GRAYSCALE) > 127
        return art.array

    def add_call(self, record: ToolCallRecord) -> None:
        with self._lock:
            self.calls.append(record)

    # ---- tool calls in flight ------------------------------------------------------------------
    def begin_call(self, evidence_id: str, name: str) -> None:
        with self._lock:
            self._running[evidence_id] = name

    def end_call(self, evidence_id: str) -> bool:
        """Mark a call finished; False when its ask already ended without it (it must record nothing)."""
        with self._idle:
            self._running.pop(evidence_id, None)
            self._idle.notify_all()
            return evidence_id not in self._abandoned

    def cancel_running(self, wait_s: float) -> list[tuple[str, str]]:
        """Cancel this ask's tool calls still in flight and wait up to ``wait_s`` for them to stop; returns
        (evidence id, tool) of those that did not stop in time (they are abandoned: their results and audit
        lines are discarded when they end)."""
        deadline = time.monotonic() + wait_s
        with self._idle:
            if not self._running:
                return []
            self.cancel.set()
            while self._running and (left := deadline - time.monotonic()) > 0:
                self._idle.wait(left)
            stuck = list(self._running.items())
            self._abandoned.update(eid for eid, _ in stuck)
            return stuck

    def reset_conversation(self) -> None:
        """Forget the conversation (history) but keep images, artifacts and the audit log."""
        with self._lock:
            self.history = []


def file_sha256(path: Path | None) -> str:
    """SHA-256 of a file's bytes (hex); identifies a study file in records without its name."""
    h = hashlib.sha256()
    if path is None:
        return h.hexdigest()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _suffix(path: Path | None) -> str:
    suffix = display_name(path).rsplit(".", 1)[-1].lower() if path is not None and "." in path.name else ""
    return f".{suffix}" if suffix.isalnum() and len(suffix) <= 5 else ""
