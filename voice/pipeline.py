"""Audio in, spoken answer out: check -> recognise -> gate -> parse -> dialog -> ask/act -> speak.

* :func:`transcribe_command` ``(path, settings) -> HeardCommand``: what one recording says and
  which command it is (or None), with no image and no planner.
* :class:`VoiceAssistant`: one voice conversation about a list of images (``osler voice``, the
  live loop, the benchmark).  :meth:`VoiceAssistant.hear` handles one utterance and returns a
  :class:`VoiceTurn` (transcript, intent, the planner's :class:`~tools.answer.AskResult`, the
  spoken text and WAV, timings).  Questions go to ``Assistant.ask`` as text; state changes run only
  after a spoken "yes".

Latency (``timings.latency_ms``) is measured from the moment the finished utterance is handed
over (push-to-talk released / end of speech detected) to the first chunk of answer audio.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tools.answer import AskResult

from .activation import Mode, gate
from .answers import short_answer
from .asr import Recognizer, Transcript, build_recognizer
from .audio import Audio, prepare, speech_bounds
from .commands import Command, parse_command
from .config import VoiceSettings, voice_settings
from .dialog import DialogManager, Reply
from .tts import Voice

__all__ = ["HeardCommand", "VoiceTurn", "transcribe_command", "hear_audio", "VoiceAssistant"]

log = logging.getLogger(__name__)


class HeardCommand(BaseModel):
    """What one recording said, and the command it parses to (None: rejected)."""

    model_config = ConfigDict(frozen=True)

    transcript: str = Field(description="raw recogniser output")
    normalized: str = Field(description="after normalisation, wake word removed")
    activated: bool = Field(description="push-to-talk, or the wake word opened the utterance")
    woke: bool = Field(description="the wake word was heard at the start")
    intent: str | None = None
    kind: str | None = None
    slots: dict[str, str] = Field(default_factory=dict)
    question: str | None = Field(default=None, description="the question sent to Assistant.ask")
    asr_backend: str
    asr_model: str
    asr_ms: float
    audio_s: float
    speech_end_s: float | None = Field(default=None, description="end of the voiced part within the clip")
    confidence: float | None = None
    notes: list[str] = Field(default_factory=list)

    def command(self) -> Command | None:
        if self.intent is None:
            return None
        return Command(self.intent, self.kind or "question", dict(self.slots), self.question, self.normalized)  # type: ignore[arg-type]


class VoiceTurn(BaseModel):
    """One handled utterance."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    heard: HeardCommand
    reply: str = Field(description="ask | say | confirm | execute | rejected | ignored")
    spoken_text: str = ""
    spoken_wav: str | None = None
    spoken_backend: str | None = None
    full_answer: str | None = None
    result: AskResult | None = None
    action: str | None = Field(default=None, description="state change carried out after 'yes'")
    timings: dict[str, float] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``osler ask --json`` object (when a question was asked) plus the voice fields."""
        out: dict[str, Any] = self.result.model_dump(mode="json") if self.result is not None else {}
        out.update(
            transcript=self.heard.transcript, intent=self.heard.intent, slots=self.heard.slots,
            spoken_wav=self.spoken_wav,
            voice={"activated": self.heard.activated, "woke": self.heard.woke, "reply": self.reply,
                   "spoken_text": self.spoken_text, "spoken_backend": self.spoken_backend, "action": self.action,
                   "asr_backend": self.heard.asr_backend, "asr_model": self.heard.asr_model,
                   "confidence": self.heard.confidence, "normalized": self.heard.normalized,
                   "timings_ms": {k: round(v, 1) for k, v in self.timings.items()},
                   "notes": self.heard.notes + self.notes},
        )
        if self.result is None:
            out.setdefault("answer", self.full_answer or self.spoken_text)
        return out


def hear_audio(audio: Audio, recognizer: Recognizer, vs: VoiceSettings, mode: Mode = "ptt") -> HeardCommand:
    """Recognise and parse one checked 16 kHz utterance (see :func:`voice.audio.prepare`)."""
    tr: Transcript = recognizer.transcribe(audio)
    g = gate(tr.text, mode, vs.wake_word)
    cmd = parse_command(g.text) if g.activated else None
    bounds = speech_bounds(audio.samples, audio.sample_rate)
    notes = [str(n) for n in tr.extra.get("dropped", [])]
    if not g.activated:
        notes.append(g.reason)
    elif cmd is None and g.text:
        notes.append("not a complete command: rejected, nothing done")
    elif not g.text:
        notes.append("nothing was said after the wake word" if g.woke else "no words recognised")
    return HeardCommand(
        transcript=tr.text, normalized=g.text, activated=g.activated, woke=g.woke,
        intent=cmd.intent if cmd else None, kind=cmd.kind if cmd else None, slots=dict(cmd.slots) if cmd else {},
        question=cmd.question if cmd else None, asr_backend=tr.backend, asr_model=tr.model, asr_ms=tr.elapsed_ms,
        audio_s=tr.audio_s, speech_end_s=(bounds[1] / audio.sample_rate) if bounds else None,
        confidence=tr.confidence, notes=notes,
    )


def transcribe_command(path: str | Path | Audio, settings: Any, *, mode: Mode = "ptt",
                       recognizer: Recognizer | None = None, vs: VoiceSettings | None = None) -> HeardCommand:
    """What a recording says and which command it is.  Raises InvalidInputError for bad audio
    (empty, silent, clipped, too low a rate, not audio): such a recording is never acted on."""
    vs = vs or voice_settings(settings)
    audio = prepare(path, vs)
    recognizer = recognizer or build_recognizer(settings, vs)
    return hear_audio(audio, recognizer, vs, mode)


class VoiceAssistant:
    """A voice conversation about ``images`` (index 0 first); ``prior`` is the explicit prior study
    of the first image (loaded at once unless ``preload_prior`` is False).  "load the prior" loads
    it, or, for a later image of the list, the image before it."""

    OPEN_AFTER_WAKE_S = 8.0

    def __init__(self, settings: Any, images: list[str | Path], *, prior: str | Path | None = None,
                 vs: VoiceSettings | None = None, assistant: Any | None = None,
                 recognizer: Recognizer | None = None, voice: Voice | None = None,
                 preload_prior: bool = True) -> None:
        from agent.runner import Assistant

        self.settings = settings
        self.vs = vs or voice_settings(settings)
        self.assistant = assistant or Assistant(settings)
        self.recognizer = recognizer or build_recognizer(settings, self.vs)
        self.voice = voice or Voice(settings, self.vs)
        self.images = [Path(p) for p in images]
        if not self.images:
            from tools.errors import InvalidInputError

            raise InvalidInputError("give at least one image (--image FILE)")
        self.prior = Path(prior) if prior else None
        self.index = 0
        self._open_until = 0.0
        self.dialog = DialogManager(volume=self.vs.volume)
        self.session = self.assistant.new_session()
        self.session.load("current", self.images[0])
        if self.prior is not None and preload_prior:  # like `osler ask --prior`; else on "load the prior"
            self.session.load("prior", self.prior)

    def load(self) -> None:
        """Load the recogniser and the voice now, so the first utterance is not slow."""
        self.recognizer.load()
        self.voice.load()

    # ---- one utterance --------------------------------------------------------------------------
    def hear(self, source: str | Path | Audio, mode: Mode = "ptt", speak: bool = True) -> VoiceTurn:
        """Handle one utterance.  Bad audio raises InvalidInputError before anything is done."""
        t0 = time.perf_counter()
        audio = prepare(source, self.vs)
        if mode == "wake" and time.monotonic() < self._open_until:
            mode = "ptt"  # just after a bare "Osler" ("Yes?"), the next utterance needs no wake word
        self._open_until = 0.0
        heard = hear_audio(audio, self.recognizer, self.vs, mode)
        timings = {"asr_ms": heard.asr_ms}
        # Only commands are logged as text: other speech in the room may name patients.
        self.session.audit.write("voice", self.session.id, intent=heard.intent, activated=heard.activated,
                                 transcript=heard.normalized if heard.intent else None,
                                 words=len(heard.transcript.split()), mode=mode, asr=heard.asr_backend)
        if not heard.activated:
            timings["latency_ms"] = (time.perf_counter() - t0) * 1000
            return VoiceTurn(heard=heard, reply="ignored", timings=timings)
        if not heard.normalized and not heard.woke:
            timings["latency_ms"] = (time.perf_counter() - t0) * 1000
            return VoiceTurn(heard=heard, reply="ignored", timings=timings, notes=["no speech recognised"])
        if heard.woke and not heard.normalized:
            reply = Reply("say", say="Yes?")
            self._open_until = time.monotonic() + self.OPEN_AFTER_WAKE_S
        else:
            reply = self.dialog.handle(heard.command(), heard.normalized)
        result: AskResult | None = None
        action: str | None = None
        full = None
        say = reply.say
        if reply.kind == "ask" and reply.question:
            t1 = time.perf_counter()
            result = self.assistant.ask(self.session, reply.question)
            timings["ask_ms"] = (time.perf_counter() - t1) * 1000
            say, full = short_answer(result), result.answer
        elif reply.kind == "execute" and reply.command is not None:
            action = reply.command.intent
            say = self._execute(reply.command)
        self.voice.volume = self.dialog.volume
        turn = VoiceTurn(heard=heard, reply=reply.kind, spoken_text=say, full_answer=full, result=result,
                         action=action, timings=timings, notes=list(reply.notes))
        if speak and say:
            spoken = self.voice.speak_to_file(say)
            timings["tts_first_ms"] = spoken.first_audio_ms
            timings["tts_total_ms"] = spoken.total_ms
            turn.spoken_wav = str(spoken.path) if spoken.path else None
            turn.spoken_backend = spoken.backend
            timings["latency_ms"] = (time.perf_counter() - t0) * 1000 - spoken.total_ms + spoken.first_audio_ms
        else:
            timings["latency_ms"] = (time.perf_counter() - t0) * 1000
        turn.timings = timings
        if reply.kind in ("ask", "execute", "confirm") or heard.intent == "read_back":
            self.dialog.record_answer(say, full)
        self.dialog.speaking = bool(say)
        return turn

    # ---- confirmed state changes ----------------------------------------------------------------
    def _execute(self, cmd: Command) -> str:
        self.session.audit.write("voice_action", self.session.id, action=cmd.intent, slots=cmd.slots)
        if cmd.intent == "switch_image":
            step = 1 if cmd.slots.get("direction") == "next" else -1
            new = self.index + step
            if not 0 <= new < len(self.images):
                return f"There is no {cmd.slots.get('direction', 'next')} image."
            self.session.load("current", self.images[new])
            self.index = new
            self.session.clear_image("prior")
            self.session.reset_conversation()
            self.dialog.last_full = None  # "read back the last finding" must not read the other image's finding
            return f"Image {new + 1} of {len(self.images)}."
        if cmd.intent == "load_prior":
            path = self.prior if self.prior is not None and self.index == 0 else (
                self.images[self.index - 1] if self.index > 0 else None)
            if path is None:
                return "There is no prior study to load."
            self.session.load("prior", path)
            return "Prior study loaded."
        if cmd.intent == "clear":
            self.session.reset_conversation()
            self.dialog.last_full = None
            return "Cleared."
        return "Done."
