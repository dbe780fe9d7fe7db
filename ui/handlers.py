"""The web app's event handlers, one instance per app; what each browser tab owns lives in its
:class:`TabState` (held in ``gr.State``), so tabs never share images, history or chat.

Every handler turns an :class:`~tools.errors.OslerError` into a message in the chat and keeps the
session going.  Voice: ``voice.pipeline.transcribe_command(path, settings)`` and
``voice.tts.synthesize(text, settings) -> wav path`` are imported on first use; when no recogniser or
voice can run here (:class:`~tools.errors.ExpertUnavailableError`) the app says so and takes typed
questions.  gradio is imported only inside the handlers that need it.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.private_files import copy_private, private_dir, write_private_text
from tools.errors import ExpertUnavailableError, OslerError
from tools.inputs import clean_text, parse_study_date

from . import views
from .examples import ExampleCase

if TYPE_CHECKING:
    from agent.runner import Assistant
    from agent.session import Session

__all__ = ["ASK_OUTPUTS", "EXAMPLE_OUTPUTS", "TabState", "Handlers", "PREVIEW_MAX_SIDE", "VOICE_MISSING"]

log = logging.getLogger(__name__)

PREVIEW_MAX_SIDE = 1024
VOICE_MISSING = "Voice is not available here; type your question instead."
# what Handlers.ask and Handlers.load_example may update, by name; ui.app binds each name to its component
ASK_OUTPUTS = ("chat", "overlay", "trace", "findings", "summary", "downloads", "audio", "question", "state")
EXAMPLE_OUTPUTS = ("current_view", "prior_view", "current_file", "prior_file", "question", "chat", "overlay",
                   "trace", "findings", "summary", "downloads", "state")


@dataclass
class TabState:
    """What one browser tab owns: its assistant (planner settings), session and chat messages."""

    assistant: Assistant
    session: Session
    chat: list[dict[str, Any]] = field(default_factory=list)
    export_dir: Path | None = None  # this tab's copies of what it may download (outside the data dir)
    studies: dict[str, str] = field(default_factory=dict)  # role -> SHA-256 of the file last loaded in that role

    def exports(self) -> Path:
        """A private (0700) temporary folder for this tab's downloads, removed with the tab or at exit.

        The web server never serves the data dir (audit log, other sessions); a handler returns copies
        from here, which gradio moves into its cache under unguessable hashed paths."""
        if self.export_dir is None or not self.export_dir.is_dir():
            self.export_dir = Path(tempfile.mkdtemp(prefix="osler-tab-"))
            weakref.finalize(self, shutil.rmtree, str(self.export_dir), True)
        return self.export_dir


def _preview(pixels: Any) -> Any:
    """Stride a uint8 (H, W, 3) array down to at most PREVIEW_MAX_SIDE per side (display only)."""
    step = max(1, math.ceil(max(pixels.shape[:2]) / PREVIEW_MAX_SIDE))
    return pixels[::step, ::step]


def _heard(heard: Any) -> tuple[str, str]:
    """(question to ask, transcript) of what ``transcribe_command`` returned: a ``HeardCommand``
    (``question`` is None when the words are not a command it knows), or a plain transcript str."""
    if isinstance(heard, str):
        return clean_text(heard).strip(), clean_text(heard).strip()
    question = getattr(heard, "question", None) or ""
    transcript = getattr(heard, "transcript", None) or getattr(heard, "text", None) or question
    return clean_text(question).strip(), clean_text(transcript).strip()


class Handlers:
    """The app's event handlers; one instance per app, state per tab in :class:`TabState`."""

    def __init__(self, assistant: Assistant, cases: list[ExampleCase]) -> None:
        self.assistant = assistant
        self.cases = cases

    def tab(self, state: TabState | None) -> TabState:
        if state is None:
            state = TabState(assistant=self.assistant, session=self.assistant.new_session())
        return state

    # ---- studies ------------------------------------------------------------------------------
    def load_study(self, role: str, file: str | None, date: str | None, state: TabState | None):
        """Read an uploaded file as the current or prior study; returns (preview, chat, state)."""
        st = self.tab(state)
        if not file:
            st.session.clear_image(role)
            st.chat.append(views.note_message(f"The {role} study was removed."))
            return None, st.chat, st
        name = clean_text(Path(file).name, single_line=True)
        digest = _sha256(file)
        into = self._new_patient(st, role) if st.session.answers and st.studies.get(role) not in (None, digest) else st
        try:
            image = into.session.load(role, file, study_date=parse_study_date(date, what=f"the {role} study date"))
        except Exception as exc:  # OslerError, or a decoder bug: either way the upload is refused, the tab goes on
            if not isinstance(exc, OslerError):
                log.exception("reading an upload failed")
            st.session.clear_image(role)
            why = views.without_folder(clean_text(exc), file)  # the server's folders are not the browser's business
            st.chat.append(views.error_message(f"could not read the {role} study `{name}`: {why}"))
            return None, st.chat, st
        st = into
        st.studies[role] = digest
        st.chat.append(views.image_loaded_message(role, image, name))
        return _preview(image.pixels), st.chat, st

    def _new_patient(self, st: TabState, role: str) -> TabState:
        """A fresh tab state for a different file in ``role`` after questions were answered: the answers, the
        conversation and the report were about the other image (often another patient) and must not be
        carried into its records, its report or the planner's history.  The other study stays loaded.
        The tab keeps ``st`` when the new file cannot be read."""
        new = TabState(assistant=st.assistant, session=st.assistant.new_session())
        other = "prior" if role == "current" else "current"
        if other in st.session.images:
            new.session.set_image(other, st.session.images[other])
            if other in st.studies:
                new.studies[other] = st.studies[other]
        kept = f"; the {other} study stays loaded" if other in new.session.images else ""
        new.chat.append(views.note_message(f"A different {role} study: a new session. The earlier answers were "
                                           f"about the previous image and are not carried over{kept}."))
        return new

    def load_example(self, index: int, state: TabState | None):
        """Start a fresh session on an example case (a new patient); fills the question box."""
        st = self.tab(state)
        st = TabState(assistant=st.assistant, session=st.assistant.new_session())
        case = self.cases[int(index)]
        previews: dict[str, Any] = {"current": None, "prior": None}
        try:
            for role, path, date in (("current", case.current, case.current_date), ("prior", case.prior, case.prior_date)):
                if path is not None:
                    previews[role] = _preview(st.session.load(role, path, study_date=date).pixels)
                    st.studies[role] = _sha256(str(path))
                    st.chat.append(views.image_loaded_message(role, st.session.images[role], str(path)))
        except OslerError as exc:
            st.chat.append(views.error_message(f"could not load the example: {exc}"))
        st.chat.append(views.note_message(f"Example: *{case.title}* ({case.source}). Press **Ask**."))
        return {"current_view": previews["current"], "prior_view": previews["prior"], "current_file": None,
                "prior_file": None, "question": case.question, "chat": st.chat, "overlay": None,
                "trace": _table([], views.TRACE_HEADERS), "findings": _table([], views.FINDINGS_HEADERS),
                "summary": "", "downloads": None, "state": st}

    def click_question(self, state: TabState | None, index: Any) -> tuple[str, TabState]:
        """A click on the current study's preview at ``index`` = (x, y) preview pixels -> the question that
        outlines and measures what is there, in original-image pixels ("" when no current study)."""
        st = self.tab(state)
        image = st.session.images.get("current")
        if image is None or not isinstance(index, (list, tuple)) or len(index) != 2:
            return "", st
        h, w = image.pixels.shape[:2]
        step = max(1, math.ceil(max(h, w) / PREVIEW_MAX_SIDE))  # the preview is strided by this (see _preview)
        x = min(w - 1, max(0, int(index[0]) * step))
        y = min(h - 1, max(0, int(index[1]) * step))
        return f"Outline and measure the region at ({x}, {y})", st

    # ---- questions ----------------------------------------------------------------------------
    def ask(self, question: str | None, speak: bool, state: TabState | None, progress: Any = None):
        """Generator: first the question and a pending note, then the answer with every tool call.

        Yields the outputs to update, keyed by name (``ASK_OUTPUTS``); an output left out keeps its value.
        """
        st = self.tab(state)
        question = clean_text(question).strip()  # before it reaches the chat: one bad character must not break the tab
        if not question:
            yield {"state": st}
            return
        st.chat.append({"role": "user", "content": question})
        pending = {"role": "assistant", "content": "Choosing tools and running the experts…",
                   "metadata": {"title": "Working", "status": "pending"}}
        yield {"chat": st.chat + [pending], "question": "", "state": st}
        if progress is not None:
            progress(0.1, desc="planning and calling tools")
        try:
            result = st.assistant.ask(st.session, question)
        except OslerError as exc:
            st.chat.append(views.error_message(str(exc)))
            yield {"chat": st.chat, "question": "", "state": st}
            return
        except Exception as exc:  # a bug must not end the tab's session
            log.exception("ask failed")
            st.chat.append(views.error_message(f"internal error ({type(exc).__name__}); the session goes on"))
            yield {"chat": st.chat, "question": "", "state": st}
            return
        st.chat.extend(views.chat_messages(result))
        downloads = self._downloads(st, result)
        out = {"chat": st.chat, "trace": _table(views.trace_rows(st.session.answers), views.TRACE_HEADERS),
               "findings": _table(views.findings_rows(result), views.FINDINGS_HEADERS),
               "summary": views.summary_markdown(result), "downloads": downloads,
               "audio": self._speak(result.answer, st) if speak else None, "question": "", "state": st}
        if result.artifacts.overlays:
            out["overlay"] = downloads[-2]
        yield out

    def _downloads(self, st: TabState, result: Any) -> list[str]:
        """This answer's overlays and the session's answers.json (redacted as the audit log is, unless
        ``settings.audit.verbatim``), written to the session dir and copied to the tab's export folder:
        only those copies are handed to the web server.  The overlays come first, answers.json last."""
        private_dir(st.session.dir)
        text = views.answers_json(st.session.answers, redact=st.session.redact)
        write_private_text(st.session.dir / "answers.json", text)
        out = st.exports()
        copies = []
        for src in result.artifacts.overlays:
            dst = out / Path(src).name
            copy_private(src, dst)
            copies.append(str(dst))
        write_private_text(out / "answers.json", text)
        return [*copies, str(out / "answers.json")]

    def _speak(self, text: str, st: TabState) -> str | None:
        from voice.tts import synthesize

        try:
            wav = Path(synthesize(text, st.assistant.settings))
            copy = st.exports() / wav.name  # the web server serves only the tab's copies, never the data dir
            copy_private(wav, copy)
            return str(copy)
        except ExpertUnavailableError as exc:
            st.chat.append(views.note_message(f"Spoken answers are not available here ({exc})."))
            return None
        except Exception as exc:  # OslerError, or a synthesiser bug: the answer is still in the chat
            if not isinstance(exc, OslerError):
                log.exception("speech synthesis failed")
            st.chat.append(views.error_message(f"could not speak the answer: {exc}"))
            return None

    def transcribe(self, audio: str | None, state: TabState | None):
        """Speech -> (question to ask now, text for the question box, chat, state).

        A recognised command is asked at once; other words go to the question box to edit and send,
        never straight to the planner (the voice pipeline's strict parsing stays in force)."""
        st = self.tab(state)
        if not audio:
            return "", _skip(), st.chat, st
        from voice.pipeline import transcribe_command

        try:
            question, transcript = _heard(transcribe_command(audio, st.assistant.settings))
        except ExpertUnavailableError as exc:  # no recogniser can run here: typed questions still work
            st.chat.append(views.note_message(f"{VOICE_MISSING} ({exc})"))
            return "", _skip(), st.chat, st
        except Exception as exc:  # OslerError (bad audio), or a recogniser bug: the tab goes on
            if not isinstance(exc, OslerError):
                log.exception("transcription failed")
            st.chat.append(views.error_message(f"could not use the recording: {exc}"))
            return "", _skip(), st.chat, st
        if question:
            st.chat.append(views.note_message(f"Heard: “{transcript}”"))
            return question, "", st.chat, st
        if transcript:
            st.chat.append(views.note_message(f"Heard “{transcript}”, which is not a command I know: it is in the "
                                              "question box; edit it and press Ask."))
            return "", transcript, st.chat, st
        st.chat.append(views.note_message("I heard no words in that recording; please try again."))
        return "", _skip(), st.chat, st

    def new_conversation(self, state: TabState | None):
        st = self.tab(state)
        st.session.reset_conversation()
        st.chat = [views.note_message("New conversation; the loaded studies stay.")]
        return st.chat, st

    # ---- settings -----------------------------------------------------------------------------
    def set_planner(self, planner: str, base_url: str | None, model: str | None, state: TabState | None):
        """This tab's planner; the expert pool stays shared.  Returns (status markdown, state)."""
        from agent.planners.openai import check_server
        from agent.runner import Assistant

        st = self.tab(state)
        update = {"planner": planner, "base_url": clean_text(base_url, single_line=True).strip() or None,
                  "model": clean_text(model, single_line=True).strip() or None}
        configured = self.assistant.settings
        if (update["base_url"] or "").rstrip("/") != (configured.base_url or "").rstrip("/"):
            # the API key and the consent to send identifiable data (allow_remote_phi) are for the configured
            # server: a URL typed in a tab gets neither
            update.update(api_key=None, allow_remote_phi=False)
        settings = configured.model_copy(update=update)
        if planner == "openai":
            if not settings.base_url or not settings.model:
                return "**Error:** the server planner needs a server URL and a model name.", st
            try:
                check_server(settings.base_url, settings.api_key)
            except OslerError as exc:
                return f"**Error:** {exc}", st
        st.assistant = Assistant(settings, pool=self.assistant.pool)
        return f"Planner for this tab: **{planner}**" + (f" (`{settings.model}` at {settings.base_url})"
                                                          if planner == "openai" else ""), st

    def backends(self):
        """Which backends can run here (like ``osler doctor``) and the device; (rows, markdown)."""
        from experts.weights import resolve_device

        pool = self.assistant.pool
        rows = views.backend_rows({key: pool.backends(key) for key in pool.registry})
        setting = self.assistant.settings.device
        try:
            device = f"device setting `{setting}` → **{resolve_device(setting)}**"
        except OslerError as exc:
            device = f"device setting `{setting}`: {exc}"
        return _table(rows, views.BACKEND_HEADERS), device


def _sha256(path: str) -> str | None:
    """SHA-256 of the file's bytes; None when it cannot be read (loading it then says why)."""
    from agent.session import file_sha256

    try:
        return file_sha256(Path(path))
    except OSError:
        return None


def _skip() -> Any:
    import gradio as gr

    return gr.skip()


def _table(rows: list[list[Any]], headers: list[str]) -> Any:
    import pandas as pd

    return pd.DataFrame(rows, columns=headers)
