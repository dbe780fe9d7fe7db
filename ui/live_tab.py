"""The web app's Live tab: an endoscope video with the polyp detector's smoothed boxes drawn on it,
push-to-talk and typed questions answered on the frame on screen when they ended, the answers spoken
and shown, and the tool trace.  Built by :func:`add_live_tab` inside the app's Blocks.

Per browser tab one :class:`~voice.live_video.LiveEngine` (in ``gr.State``) reads the source given
(an upload, a camera index, a stream URL; never a path on the server, which would let a tab view any video
or image the server can read); a ``gr.Timer`` refreshes the view five times a second.  An answer's overlay
and spoken answer are handed out as copies in the tab's private folder (the server never serves the data
dir).  :class:`LiveHandlers` holds the handlers (plain functions of the state, testable without a
browser); each returns a mapping keyed by component name.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.private_files import copy_private

from . import views

if TYPE_CHECKING:
    from agent.runner import Assistant

__all__ = ["LiveHandlers", "add_live_tab", "STREAM_SCHEMES"]

log = logging.getLogger(__name__)

STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "srt", "udp")
"""Network stream URLs a typed source may name (not file:// or FFmpeg's other local protocols)."""
SERVER_PATH_REFUSED = ("The web app reads an uploaded video, a camera index (0) or a stream URL "
                       f"({', '.join(s + '://' for s in STREAM_SCHEMES[:3])}...), not a path on the server: "
                       "upload the video instead.")


class LiveHandlers:
    """Handlers of the Live tab.  ``state``: None or a dict {"engine", "exports" (the tab's private folder)}."""

    def __init__(self, assistant: Assistant) -> None:
        self.assistant = assistant
        self._recognizer: Any = None
        self._voice: Any = None

    def _speech(self) -> tuple[Any, Any, Any]:
        from ui.live import live_recognizer
        from voice.config import voice_settings
        from voice.tts import Voice

        vs = voice_settings(self.assistant.settings)
        if self._recognizer is None:
            self._recognizer = live_recognizer(self.assistant.settings, vs)
        if self._voice is None:
            self._voice = Voice(self.assistant.settings, vs)
        return self._recognizer, self._voice, vs

    def start(self, source: str | None, upload: str | None, rate: float, persist: int,
              state: dict | None) -> dict[str, Any]:
        from tools.errors import OslerError
        from voice.live_video import LiveEngine, LiveOptions
        from voice.video import LatestFrameReader

        self.stop(state)
        src = upload or (source or "").strip()
        if not src:
            return {"status": "Give a video file, a camera index (0) or a stream URL.", "state": None}
        if not upload and not (src.isdigit() or re.match(rf"(?:{'|'.join(STREAM_SCHEMES)})://", src, re.IGNORECASE)):
            return {"status": f"Cannot start: {SERVER_PATH_REFUSED}", "state": None}
        try:
            reader = LatestFrameReader(src, max_side=640)
            reader.open()
            _rec, voice, _vs = self._speech()
            engine = LiveEngine(self.assistant.settings, reader, assistant=self.assistant, voice=voice,
                                options=LiveOptions(rate_hz=float(rate), min_hits=int(persist)))
            engine.start()
        except Exception as exc:  # OslerError, or a reader bug (a camera index OpenCV cannot take): the tab goes on
            if not isinstance(exc, OslerError):
                log.exception("starting the live source failed")
                return {"status": f"Cannot start: internal error ({type(exc).__name__})", "state": None}
            why = views.without_folder(str(exc), upload) if upload else str(exc)  # not the server's folders
            return {"status": f"Cannot start: {why}", "state": None}
        exports = Path(tempfile.mkdtemp(prefix="osler-live-"))  # 0700; removed on stop, with the engine or at exit
        weakref.finalize(engine, shutil.rmtree, str(exports), True)
        return {"status": f"Live: {Path(str(src)).name if upload else src}",
                "state": {"engine": engine, "exports": exports}}

    def stop(self, state: dict | None) -> dict[str, Any]:
        if state and state.get("engine") is not None:
            state["engine"].stop()
            if state.get("exports") is not None:
                shutil.rmtree(state["exports"], ignore_errors=True)
            return {"status": "Stopped.", "state": None}
        return {"status": "Not running.", "state": None}

    def tick(self, state: dict | None) -> dict[str, Any]:
        """The current view with overlays, and the detector's numbers."""
        engine = state.get("engine") if state else None
        if engine is None:
            return {"view": None, "stats": ""}
        s = engine.detection_stats()
        stats = (f"detector **{s.get('detections_per_s') or 0:.1f}** runs/s, {s.get('detector_ms_median', 0):.0f} ms "
                 f"per run, frame-to-box {s.get('latency_ms_median', 0):.0f} ms (median); frames read "
                 f"{s.get('frames_read', 0)}, not taken by the detector {s.get('frames_dropped', 0)}"
                 if s.get("runs") else "starting...")
        if engine.frozen is not None:
            stats += " — **FROZEN** (say or type 'unfreeze')"
        if engine.reader.ended.is_set():
            stats += " — source ended"
        return {"view": engine.view(), "stats": stats}

    def _result(self, out: dict[str, Any], state: dict) -> dict[str, Any]:
        """The answer's outputs; its overlay and spoken answer (in the data dir) as copies in the tab's folder."""
        from tools.answer import AskResult

        def copy(path: str | None) -> str | None:
            if not path:
                return None
            state["exports"].mkdir(mode=0o700, exist_ok=True)
            dst = state["exports"] / Path(path).name
            copy_private(path, dst)
            return str(dst)

        head = f"**{out.get('spoken_text') or out.get('answer')}**  \nframe {out['frame_index']} " \
               f"at {out['frame_time']:.1f} s" + (" (frozen)" if out["live"].get("frozen") else "")
        if out.get("transcript") is not None:
            head = f"Heard: \"{out['transcript']}\"  \n" + head
        if out.get("tool_calls") is not None:
            head += "\n\n" + str(out.get("answer"))
        asked = {k: v for k, v in out.items() if k in AskResult.model_fields}
        rows = views.trace_rows([AskResult.model_validate(asked)]) if out.get("tool_calls") is not None else []
        return {"answer": head, "spoken": copy(out.get("spoken_wav")), "trace": rows,
                "overlay": copy(((out.get("artifacts") or {}).get("overlays") or [None])[-1])}  # a refusal has none

    def ask_text(self, question: str, state: dict | None) -> dict[str, Any]:
        engine = state.get("engine") if state else None
        if engine is None or not (question or "").strip():
            return {"answer": "Start a video first, then ask.", "spoken": None, "trace": [], "overlay": None}
        snap = engine.snapshot()  # the moment the question is submitted
        if snap is None:
            return {"answer": "No frame yet.", "spoken": None, "trace": [], "overlay": None}
        return self._result(engine.answer(snap, text=question.strip()), state)

    def ask_audio(self, audio_path: str | None, state: dict | None) -> dict[str, Any]:
        from tools.errors import OslerError
        from voice.audio import prepare
        from voice.live_script import hear_live

        engine = state.get("engine") if state else None
        if engine is None or not audio_path:
            return {"answer": "Start a video first, then speak.", "spoken": None, "trace": [], "overlay": None}
        snap = engine.snapshot()  # end of recording = end of speech
        rec, _voice, vs = self._speech()
        try:
            audio = prepare(audio_path, vs)
        except OslerError as exc:
            return {"answer": f"Not used: {exc}", "spoken": None, "trace": [], "overlay": None}
        if snap is None:
            return {"answer": "No frame yet.", "spoken": None, "trace": [], "overlay": None}
        return self._result(hear_live(engine, snap, audio, rec, vs.wake_word, ask_level=vs.ask_level,
                                              reply_level=vs.reply_level), state)


def add_live_tab(assistant: Assistant) -> None:
    """Add the Live tab to the Blocks being built (call inside ``with gr.Blocks()``)."""
    import gradio as gr

    h = LiveHandlers(assistant)
    with gr.Tab("Live video (endoscopy)", elem_id="live-tab"):
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3, min_width=260):
                source = gr.Textbox(label="Video source: camera index (0) or stream URL", max_lines=1,
                                    elem_id="live-source")
                upload = gr.File(label="...or upload a video file", type="filepath", elem_id="live-upload")
                with gr.Row():
                    rate = gr.Slider(1, 15, value=5, step=1, label="Detector runs per second (at most)")
                    persist = gr.Slider(1, 8, value=3, step=1, label="Runs a box must persist")
                with gr.Row():
                    start_btn = gr.Button("Start", variant="primary", elem_id="live-start")
                    stop_btn = gr.Button("Stop", elem_id="live-stop")
                status = gr.Markdown(elem_id="live-status")
                question = gr.Textbox(label="Ask about what is on screen (or: freeze, unfreeze, outline it, "
                                      "compare with ten seconds ago)", max_lines=2, elem_id="live-question")
                mic = gr.Audio(sources=["microphone"], type="filepath", label="Push to talk", elem_id="live-mic")
                answer = gr.Markdown(elem_id="live-answer")
                spoken = gr.Audio(label="Spoken answer", autoplay=True, interactive=False)
            with gr.Column(scale=6, min_width=360):
                view = gr.Image(label="Live view: smoothed polyp boxes (green), raw detections (grey)",
                                interactive=False, height=480, format="jpeg", elem_id="live-view")
                stats = gr.Markdown(elem_id="live-stats")
                overlay = gr.Image(label="Overlay of the latest answer", type="filepath", interactive=False,
                                   height=300)
        trace = gr.Dataframe(headers=views.TRACE_HEADERS, interactive=False, wrap=True, elem_id="live-trace")
        timer = gr.Timer(0.2)

        comps = {"status": status, "state": state, "view": view, "stats": stats, "answer": answer,
                 "spoken": spoken, "trace": trace, "overlay": overlay}

        def keyed(result: dict[str, Any]) -> dict:
            return {comps[k]: v for k, v in result.items()}

        start_btn.click(lambda s, u, r, p, st: keyed(h.start(s, u, r, p, st)), [source, upload, rate, persist, state],
                        [status, state], api_name="live_start")
        stop_btn.click(lambda st: keyed(h.stop(st)), [state], [status, state], api_name="live_stop")
        timer.tick(lambda st: keyed(h.tick(st)), [state], [view, stats], api_visibility="private",
                   show_progress="hidden")
        answer_out = [answer, spoken, trace, overlay]
        question.submit(lambda q, st: keyed(h.ask_text(q, st)), [question, state], answer_out, api_name="live_ask")
        mic.stop_recording(lambda a, st: keyed(h.ask_audio(a, st)), [mic, state], answer_out,
                           api_visibility="private")
        mic.upload(lambda a, st: keyed(h.ask_audio(a, st)), [mic, state], answer_out, api_name="live_voice")
