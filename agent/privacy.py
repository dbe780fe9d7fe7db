"""What a language-model planner is allowed to see.

A planner whose server is not on this machine (``agent.privacy.is_loopback`` is False) gets only
de-identified content unless ``settings.allow_remote_phi`` is set:

* the question and every other text is scrubbed of dates, ID-like numbers (MRN, accession, phone,
  any run of 6+ digits), titled names ("Mr./Mrs./Dr. Name"), capitalised names after "patient" and
  every identifier known from the session's files (file names, DICOM patient tags read from the file);
* tool results lose image file names (``source`` -> ``current-image``), local file paths
  (``path`` is dropped) and absolute dates (``study_date`` and any date in a text become intervals
  relative to the current study, e.g. ``412 days before the current study``);
* images (vision planners only) are withheld: burned-in text cannot be guaranteed away.  With
  ``remote_images="mask"`` they are sent after text-like regions are blacked out
  (:func:`mask_text_regions`, a heuristic: see docs/planners.md for its measured coverage).

:class:`PrivacyModel` wraps the pydantic-ai model and rewrites every outgoing message list in
``request`` / ``request_stream`` / ``count_tokens``, so no code path reaches the server around it.
It also attaches the session's images to the question for vision planners (inline PNG, never a URL)
and writes one ``planner_request`` audit line per request: host, remote or not, de-identified or
not, which kinds of content went out and what was scrubbed.  Loopback planners get the content as is.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import logging
import re
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Iterable, Literal
from urllib.parse import urlparse

import numpy as np
from pydantic import BaseModel
from pydantic_ai.messages import BinaryContent, ModelMessage, ModelRequest, ModelResponse, ToolCallPart, UserPromptPart
from pydantic_ai.models.wrapper import WrapperModel

from tools.inputs import clean_text

from agent.burned_in_text import mask_text_regions
from agent.messages import GUARD_PREFIX  # follow-ups of agent.grounding.guard; images are never attached to them

__all__ = ["PrivacyPolicy", "policy_for", "is_loopback", "Deidentifier", "scrub_text", "mask_text_regions",
           "png_for_planner",
           "PrivacyModel", "GUARD_PREFIX"]

log = logging.getLogger(__name__)

MAX_IMAGE_SIDE = 1024
_DICOM_PHI_TAGS = ("PatientName", "PatientID", "OtherPatientIDs", "PatientBirthDate", "AccessionNumber",
                   "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "InstitutionName",
                   "InstitutionAddress", "StationName", "PatientAddress", "PatientTelephoneNumbers")
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_RE = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?"
_NAME = r"[A-Z](?:[a-z]|['’][A-Z])[a-zA-Z'’\-]*"  # capitalised word with a lower-case letter (not "CT")
_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("email", re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+\.[\w.-]+\b")),  # starts at a token: 'a.a.a...' is linear
    ("name", re.compile(rf"\b(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof)\.?\s+{_NAME}(?:\s+{_NAME})?")),
    ("name", re.compile(rf"(?<=\b[Pp]atient)(?:'s)?(?:\s+(?:name|named|is))?\s*:?\s+{_NAME}(?:\s+{_NAME})*")),
    ("name", re.compile(rf"(?<=\b[Nn]ame)\s*[:=]\s*{_NAME}(?:[\s,^]+{_NAME})*")),
    ("id", re.compile(r"\b(?:MRN|mrn|ID|id|Id|SSN|NHS|[Aa]ccession|[Pp]atient\s+(?:ID|id|number))\s*(?:no\.?|number|#)?"
                      r"\s*[:#]?\s*[A-Za-z]*\d[\w-]*")),
    ("id", re.compile(r"\b\d{3}-\d{2}-\d{4}\b|\(?\b\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b")),
]
_DATE_PATTERNS = [
    re.compile(r"\b(?P<y>(?:19|20)\d{2})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})\b"),
    re.compile(r"\b(?P<y>(?:19|20)\d{2})(?P<m>0[1-9]|1[0-2])(?P<d>0[1-9]|[12]\d|3[01])\b"),
    re.compile(r"\b(?P<d>\d{1,2})[/.-](?P<m>\d{1,2})[/.-](?P<y>(?:19|20)?\d{2})\b"),
    re.compile(rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?P<mn>{_MONTH_RE})\s*,?\s*(?P<y>(?:19|20)\d{{2}})\b", re.I),
    re.compile(rf"\b(?P<mn>{_MONTH_RE})\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s*,?\s*(?P<y>(?:19|20)\d{{2}})\b", re.I),
    re.compile(rf"\b(?P<mn>{_MONTH_RE})\s+(?P<y>(?:19|20)\d{{2}})\b", re.I),
]
_LONG_DIGITS = re.compile(r"(?<![\w.])\d{6,}(?!\w|\.\d)")  # a sentence may end right after it


# ---- policy -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PrivacyPolicy:
    """What may leave for one planner server."""

    host: str
    remote: bool
    deidentify: bool
    send_images: bool
    mask_images: bool


def is_loopback(url: str) -> bool:
    """True when ``url``'s host is this machine (localhost, 127.x, ::1): such a planner is not remote.
    An address is parsed, not matched by prefix: "127.0.0.1.example.org" is a name anyone can point anywhere."""
    host = (urlparse(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def policy_for(settings: Any, url: str | None, *, remote: bool | None = None,
               remote_images: Literal["withhold", "mask"] = "withhold") -> PrivacyPolicy:
    """The policy for a planner at ``url``.  ``remote`` overrides the loopback test (tests, proxies)."""
    host = (urlparse(url).hostname or "local") if url else "local"
    is_remote = (not is_loopback(url)) if (remote is None and url) else bool(remote)
    deid = is_remote and not settings.allow_remote_phi
    vision = bool(settings.planner_vision)
    return PrivacyPolicy(host=host, remote=is_remote, deidentify=deid,
                         send_images=vision and (not deid or remote_images == "mask"),
                         mask_images=vision and deid and remote_images == "mask")


# ---- text -------------------------------------------------------------------------------------
def _parse_date(m: re.Match[str]) -> dt.date | None:
    g = m.groupdict()
    try:
        y = int(g["y"])
        y = y + (2000 if y < 50 else 1900) if y < 100 else y
        month = _MONTHS.index(g["mn"][:3].lower()) + 1 if g.get("mn") else int(g["m"])
        return dt.date(y, month, int(g.get("d") or 1))
    except (ValueError, TypeError, KeyError):
        return None


def relative_date(date: dt.date | None, reference: dt.date | None) -> str:
    if date is None or reference is None:
        return "[date]"
    days = (date - reference).days
    if days == 0:
        return "the current study date"
    return f"{abs(days)} days {'before' if days < 0 else 'after'} the current study"


def scrub_text(text: str, known: Iterable[str] = (), reference: dt.date | None = None) -> tuple[str, list[str]]:
    """Remove identifiers from ``text``; return it and the kinds removed ('name', 'date', 'id', 'email', 'known')."""
    kinds: list[str] = []
    out = text
    for kind, pat in _PATTERNS:
        if pat.search(out):
            kinds.append(kind)
            out = pat.sub(" [name]" if kind == "name" and pat.pattern.startswith("(?<=") else f"[{kind}]", out)
    for ident in sorted({k for k in known if k and len(k) >= 3}, key=len, reverse=True):
        pat = re.compile(rf"(?<![\w]){re.escape(ident)}(?![\w])", re.I)
        if pat.search(out):
            out = pat.sub("[redacted]", out)
            kinds.append("known")
    for pat in _DATE_PATTERNS:
        def _date(m: re.Match[str]) -> str:
            kinds.append("date")
            return relative_date(_parse_date(m), reference)
        out = pat.sub(_date, out)
    if _LONG_DIGITS.search(out):
        kinds.append("id")
        out = _LONG_DIGITS.sub("[id]", out)
    return out, sorted(set(kinds))


# ---- values (tool results, tool-call arguments) -----------------------------------------------
@dataclass
class Deidentifier:
    """Scrubs values for one session: knows its identifiers, image roles and reference date."""

    known: set[str] = dataclasses.field(default_factory=set)
    reference: dt.date | None = None
    removed: set[str] = dataclasses.field(default_factory=set)  # what was changed, for the audit
    keep_sources: frozenset[str] = frozenset()  # ``source`` values that are already hashes (agent.session)

    @classmethod
    def for_session(cls, session: Any) -> "Deidentifier":
        known: set[str] = set()
        reference = None
        for role, img in session.images.items():
            meta = img.meta
            name = clean_text(Path(img.path).name) if getattr(img, "path", None) else meta.source  # source: a hash
            known.update({meta.source, name})
            stem = name.rsplit(".", 1)[0]
            if not stem.isalpha() or not stem.islower():  # "John_Smith_2020", not a plain word like "image"
                known.add(stem)
            known.update(t for t in re.split(r"[\s_.\-^,]+", stem) if len(t) >= 3 and t[:1].isupper() and t.isalpha())
            known.update(_dicom_identifiers(getattr(img, "path", None)) if meta.format == "dicom" else ())
            if role == "current" and meta.study_date:
                try:
                    reference = dt.date.fromisoformat(meta.study_date)
                except ValueError:
                    reference = None
        return cls(known=known, reference=reference)

    def text(self, s: str) -> str:
        out, kinds = scrub_text(s, self.known, self.reference)
        self.removed.update(f"text:{k}" for k in kinds)
        return out

    def value(self, v: Any, key: str | None = None, role: str | None = None) -> Any:
        if isinstance(v, BaseModel):
            v = v.model_dump(mode="json")
        if isinstance(v, dict):
            role = v.get("role") if isinstance(v.get("role"), str) else (v.get("image") if isinstance(v.get("image"), str) else role)
            out = {}
            for k, x in v.items():
                if k == "path" and isinstance(x, str):
                    self.removed.add("path")
                    continue
                if k == "source" and isinstance(x, str) and x not in self.keep_sources:
                    self.removed.add("source")
                    out[k] = f"{role or 'study'}-image"
                elif k.endswith("date") and isinstance(x, str) and x:
                    self.removed.add(k)
                    m = next((p.search(x) for p in _DATE_PATTERNS if p.search(x)), None)
                    out[k] = relative_date(_parse_date(m) if m else None, self.reference)
                else:
                    out[k] = self.value(x, k, role)
            return out
        if isinstance(v, (list, tuple)):
            return [self.value(x, key, role) for x in v]
        if isinstance(v, str):
            return self.text(v)
        return v


def _dicom_identifiers(path: Any) -> set[str]:
    """Patient-identifying DICOM values of a file (names split into components), for scrubbing."""
    if not path:
        return set()
    try:
        import pydicom

        ds = pydicom.dcmread(str(path), stop_before_pixels=True, force=True)
    except Exception:  # unreadable header: nothing to add (the image itself was read earlier)
        return set()
    out: set[str] = set()
    for tag in _DICOM_PHI_TAGS:
        value = ds.get(tag)
        if value in (None, ""):
            continue
        s = str(value).strip()
        out.add(s)
        parts = [p for p in re.split(r"[\^,\s]+", s) if len(p) >= 2]
        out.update(parts)
        if tag.endswith("Name") and len(parts) >= 2:
            out.update({" ".join(parts[:2]), " ".join(reversed(parts[:2])), ", ".join(parts[:2])})
    return out


# ---- images -----------------------------------------------------------------------------------
def png_for_planner(rgb: np.ndarray) -> bytes:
    """An image as a planner gets it: PNG, longest side capped at ``MAX_IMAGE_SIDE``."""
    return _png(rgb)


def _png(rgb: np.ndarray) -> bytes:
    import cv2

    h, w = rgb.shape[:2]
    scale = min(1.0, MAX_IMAGE_SIDE / max(h, w))
    if scale < 1.0:
        rgb = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


# ---- the wrapper model ------------------------------------------------------------------------
class PrivacyModel(WrapperModel):
    """Rewrites what the wrapped model is sent, per :class:`PrivacyPolicy`; audits every request."""

    def __init__(self, wrapped: Any, policy: PrivacyPolicy, session: Any) -> None:
        super().__init__(wrapped)
        self.policy = policy
        self.session = session
        self._images: dict[tuple[str, str], tuple[BinaryContent, int]] = {}
        self._deid_key: tuple[Any, ...] | None = None
        self._deid = Deidentifier()

    # every way a message list can leave goes through outgoing()
    async def request(self, messages, model_settings, model_request_parameters):  # type: ignore[override]
        return await self.wrapped.request(self.outgoing(messages), model_settings, model_request_parameters)

    @asynccontextmanager
    async def request_stream(self, messages, model_settings, model_request_parameters,  # type: ignore[override]
                             run_context=None) -> AsyncIterator[Any]:
        async with self.wrapped.request_stream(self.outgoing(messages), model_settings, model_request_parameters,
                                               run_context) as stream:
            yield stream

    async def count_tokens(self, messages, model_settings, model_request_parameters):  # type: ignore[override]
        return await self.wrapped.count_tokens(self.outgoing(messages, audit=False), model_settings,
                                               model_request_parameters)

    def _image_parts(self) -> tuple[list[Any], dict[str, int]]:
        parts: list[Any] = []
        masked: dict[str, int] = {}
        for role, img in sorted(self.session.images.items()):
            key = (role, self.session.image_tag(role))
            if key not in self._images:
                pixels = img.pixels
                n = 0
                if self.policy.mask_images:
                    pixels, boxes = mask_text_regions(pixels)
                    n = len(boxes)
                self._images[key] = (BinaryContent(data=_png(pixels), media_type="image/png"), n)
            content, n = self._images[key]
            parts += [f"Image '{role}':", content]
            masked[role] = n
        return parts, masked

    def outgoing(self, messages: list[ModelMessage], *, audit: bool = True) -> list[ModelMessage]:
        deid = None
        if self.policy.deidentify:
            key = tuple(sorted((r, self.session.image_tag(r)) for r in self.session.images))
            if self._deid_key != key:  # DICOM headers are read once per set of images, not per request
                self._deid_key, self._deid = key, Deidentifier.for_session(self.session)
            deid = Deidentifier(known=self._deid.known, reference=self._deid.reference)
        target = None
        if self.policy.send_images:
            for i, msg in enumerate(messages):
                if isinstance(msg, ModelRequest) and any(
                        isinstance(p, UserPromptPart) and not _text_of(p).startswith(GUARD_PREFIX) for p in msg.parts):
                    target = i
        images, masked = self._image_parts() if target is not None else ([], {})
        out: list[ModelMessage] = []
        tools_sent: list[str] = []
        dropped_images = 0
        for i, msg in enumerate(messages):
            if isinstance(msg, ModelRequest):
                parts = []
                for p in msg.parts:
                    if isinstance(p, UserPromptPart):
                        content = [p.content] if isinstance(p.content, str) else list(p.content)
                        kept = [c for c in content if isinstance(c, str) or self.policy.send_images]
                        dropped_images += len(content) - len(kept)
                        if deid is not None:
                            kept = [deid.text(c) if isinstance(c, str) else c for c in kept]
                        if i == target and not _text_of(p).startswith(GUARD_PREFIX):
                            kept = kept + images
                        p = dataclasses.replace(p, content=kept[0] if len(kept) == 1 and isinstance(kept[0], str) else kept)
                    elif hasattr(p, "content") and type(p).__name__ != "SystemPromptPart":
                        if getattr(p, "tool_name", None):
                            tools_sent.append(p.tool_name)
                        if deid is not None:
                            p = dataclasses.replace(p, content=deid.value(p.content))
                    parts.append(p)
                msg = dataclasses.replace(msg, parts=parts)
            elif isinstance(msg, ModelResponse) and deid is not None:
                parts = []
                for p in msg.parts:
                    if isinstance(p, ToolCallPart):
                        p = dataclasses.replace(p, args=_scrub_args(p.args, deid))
                    elif isinstance(getattr(p, "content", None), str):
                        p = dataclasses.replace(p, content=deid.text(p.content))
                    parts.append(p)
                msg = dataclasses.replace(msg, parts=parts)
            out.append(msg)
        if audit:
            self.session.audit.write(
                "planner_request", self.session.id, host=self.policy.host, remote=self.policy.remote,
                deidentified=self.policy.deidentify, messages=len(out), tool_results=tools_sent,
                images=sorted(masked), images_masked_regions=masked if self.policy.mask_images else None,
                images_withheld=(0 if self.policy.send_images or not self.session.settings.planner_vision
                                 else len(self.session.images)) + dropped_images,
                scrubbed=sorted(deid.removed) if deid is not None else [],
            )
        return out


def _text_of(part: UserPromptPart) -> str:
    c = part.content
    return c if isinstance(c, str) else " ".join(x for x in c if isinstance(x, str))


def _scrub_args(args: Any, deid: Deidentifier) -> Any:
    if isinstance(args, str):
        try:
            return json.dumps(deid.value(json.loads(args)))
        except json.JSONDecodeError:
            return deid.text(args)
    return deid.value(args) if args is not None else None
