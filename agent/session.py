"""A session: the studies of one patient, the artifacts made from them, the evidence ledger,
the conversation history and the audit trail.  One per CLI call, browser tab or voice loop.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experts.imaging import StudyImage, load_image
from experts.overlay import save_png
from experts.registry import ExpertPool
from tools.answer import AskResult, ToolCallRecord
from tools.common import ArtifactRef
from tools.errors import ArtifactNotFoundError, InvalidInputError
from tools.settings import OslerSettings

from .audit import AuditLog

__all__ = ["Session", "Artifact"]

log = logging.getLogger(__name__)


@dataclass
class Artifact:
    ref: ArtifactRef
    array: np.ndarray | None = field(default=None, repr=False)


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
        self.dir = Path(settings.data_dir) / "sessions" / self.id
        self.audit = audit or AuditLog(settings.audit_path)
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

    # ---- images -------------------------------------------------------------------------------
    def load(self, role: str, path: str | Path, study_date: str | None = None) -> StudyImage:
        """Read an image into the session as 'current' or 'prior'.  Raises InvalidInputError."""
        if role not in ("current", "prior"):
            raise InvalidInputError(f"image role must be 'current' or 'prior', not {role!r}")
        image = load_image(
            path, role, max_pixels=self.settings.max_image_pixels, max_file_mb=self.settings.max_file_mb,
            study_date=study_date,
        )
        self.set_image(role, image)
        return image

    def set_image(self, role: str, image: StudyImage) -> None:
        with self._lock:
            self.images[role] = image
            self.image_kinds.pop(role, None)
        self.audit.write("image", self.id, role=role, image=self.image_tag(role), width=image.meta.width,
                         height=image.meta.height, format=image.meta.format)

    def clear_image(self, role: str) -> None:
        with self._lock:
            self.images.pop(role, None)
            self.image_kinds.pop(role, None)

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

    def record(self, evidence_id: str, result: Any) -> None:
        with self._lock:
            self.evidence[evidence_id] = result

    def add_artifact(self, kind: str, array: np.ndarray, *, keep_array: bool = True) -> ArtifactRef:
        """Store pixels (mask: bool (H, W); others uint8 RGB) as a PNG; return its reference."""
        with self._lock:
            aid = f"{kind.replace('_', '-')}-{next(self._artifact_ids)}"
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"{aid}.png"
        pixels = (array.astype(bool).astype(np.uint8) * 255) if kind == "mask" else array
        save_png(str(path), pixels)
        ref = ArtifactRef(id=aid, kind=kind, path=str(path), width=int(array.shape[1]), height=int(array.shape[0]))
        with self._lock:
            self.artifacts[aid] = Artifact(ref=ref, array=array.astype(bool) if kind == "mask" and keep_array else None)
        return ref

    def artifact(self, artifact_id: str) -> Artifact:
        try:
            return self.artifacts[artifact_id]
        except KeyError:
            known = ", ".join(sorted(self.artifacts)) or "none yet"
            raise ArtifactNotFoundError(f"no artifact '{artifact_id}' in this session (known: {known})") from None

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

    def reset_conversation(self) -> None:
        """Forget the conversation (history) but keep images, artifacts and the audit log."""
        with self._lock:
            self.history = []
