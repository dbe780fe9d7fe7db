"""``osler serve``: the local web app.  Upload a study and its prior, ask, see the overlays and every
tool call, talk to it.

* ``build_app(assistant)`` makes the :class:`gradio.Blocks`; ``serve(app, settings)`` (:mod:`ui.launch`) launches
  it on ``settings.host`` (127.0.0.1 by default), never shared, analytics off, system fonts only (the page
  makes no request to any other host); ``main(argv)`` is the entry point.
* Per browser tab a :class:`~ui.handlers.TabState` (in ``gr.State``) holds its own
  :class:`~agent.session.Session` and chat, so tabs never see each other's images or history.  The
  expert pool is shared (models load once per process; the pool serialises each model).
* Handlers (:mod:`ui.handlers`) turn an :class:`~tools.errors.OslerError` into an error message in
  the chat; the session goes on.  What is shown comes from typed results (:mod:`ui.views`).
* Voice is optional (``voice.pipeline`` / ``voice.tts``, imported on first use).
* A click on the current study asks "Outline and measure the region at (x, y)" (original pixels): the
  planner segments there with a point prompt (polyp model on endoscopy, else SAM / GrabCut) and measures.

API endpoints (for ``gradio_client``): ``/load_current(file, date)``, ``/load_prior(file, date)``,
``/ask(question, speak)``, ``/voice(audio)`` (-> question asked, question box text, chat),
``/example(index)``, ``/new_conversation``, ``/planner(planner, base_url, model)``, ``/backends``,
``/report(deidentify)`` (-> report Markdown, downloads: report MD/PDF, masks, overlays, DICOM SEG/SR; see
:mod:`ui.export_view`).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from typing import TYPE_CHECKING, Any

from . import export_view, views
from .examples import example_cases
from .handlers import ASK_OUTPUTS, EXAMPLE_OUTPUTS, Handlers
from .launch import (LOOPBACK, SYSTEM_FONTS, LoginRequired, private_gradio_temp, read_auth, serve,  # noqa: F401
                     serve_until_stopped)

if TYPE_CHECKING:
    import gradio as gr

    from agent.runner import Assistant
    from tools.settings import OslerSettings

__all__ = ["main", "build_app", "serve", "read_auth", "LoginRequired", "SYSTEM_FONTS"]

log = logging.getLogger(__name__)

def build_app(assistant: Assistant) -> gr.Blocks:
    """The web app's Blocks (not launched).  One per process; state per tab."""
    import gradio as gr

    from tools.settings import PLANNERS

    settings = assistant.settings
    cases = example_cases(settings)
    h = Handlers(assistant, cases)

    components: dict[str, Any] = {}  # output name -> component, filled below as the layout creates them

    def keyed(values: dict[str, Any]) -> dict[Any, Any]:
        """A handler's outputs by name -> by component (gradio leaves the ones not named as they are)."""
        return {components[name]: value for name, value in values.items()}

    def ask(question, speak, state, progress=gr.Progress()):
        for values in h.ask(question, speak, state, progress):
            yield keyed(values)

    def load_example(index, state):
        return keyed(h.load_example(index, state))

    # uploads and overlays copied into gradio's cache: swept hourly when older than a day, all at shutdown
    with gr.Blocks(title="Osler", analytics_enabled=False, fill_width=True, delete_cache=(3600, 86400)) as app:
        state = gr.State(None)
        gr.Markdown("## Osler — evidence-bound answers about medical images, on this machine\n"
                    "Upload a study (and a prior), ask a question: every number comes from a tool call shown below. "
                    "Research software, not a medical device.")
        with gr.Row():
            with gr.Column(scale=3, min_width=260):
                cur_file = gr.File(label="Current study (PNG, JPEG, TIFF, BMP or DICOM)", type="filepath",
                                   elem_id="current-file")
                cur_date = gr.Textbox(label="Current study date", placeholder="YYYY-MM-DD (DICOM: read from the file)",
                                      max_lines=1)
                cur_view = gr.Image(label="Current (click to outline + measure)",
                                    interactive=False, height=220, format="png", elem_id="current-view")
                pri_file = gr.File(label="Prior study (optional)", type="filepath", elem_id="prior-file")
                pri_date = gr.Textbox(label="Prior study date", placeholder="YYYY-MM-DD", max_lines=1)
                pri_view = gr.Image(label="Prior", interactive=False, height=220, format="png", elem_id="prior-view")
            with gr.Column(scale=5, min_width=360):
                chat = gr.Chatbot(label="Conversation", height=560, elem_id="chat", feedback_options=None,
                                  buttons=["copy"], placeholder="Load a study or pick an example, then ask.")
                with gr.Row():
                    question = gr.Textbox(show_label=False, placeholder="Ask about the study, e.g. How many white "
                                          "blood cells are in this smear?", scale=8, max_lines=3, elem_id="question")
                    ask_btn = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="ask")
                with gr.Row():
                    mic = gr.Audio(sources=["microphone", "upload"], type="filepath", label="Speak a question",
                                   elem_id="mic")
                    with gr.Column(min_width=160):
                        speak = gr.Checkbox(label="Read answers aloud", value=False)
                        new_btn = gr.Button("New conversation", size="sm")
                heard = gr.Textbox(visible=False)  # a recognised spoken question, asked at once
                clicked = gr.Textbox(visible=False)  # the point-prompt question of a click on the current study
                spoken = gr.Audio(label="Spoken answer", autoplay=True, interactive=False, visible=True)
            with gr.Column(scale=5, min_width=360):
                overlay = gr.Image(label="Latest overlay (boxes, masks, change map)", type="filepath",
                                   interactive=False, height=520, elem_id="overlay")
                summary = gr.Markdown(elem_id="summary")
                downloads = gr.File(label="Downloads: overlay PNG and answers (JSON); the report button adds the "
                                    "report, masks and DICOM SEG/SR",
                                    file_count="multiple", interactive=False, elem_id="downloads")
                with gr.Row():  # export (ui.export_view): report MD/PDF, masks, overlays, DICOM SEG/SR
                    report_btn = gr.Button("Write report (draft for review)", size="sm", elem_id="report-btn")
                    report_deid = gr.Checkbox(label="Remove patient identifiers (PS3.15 basic profile)", value=True)
        with gr.Accordion("Report (DRAFT for review, not a diagnosis)", open=True, elem_id="report-panel"):
            report_md = gr.Markdown(export_view.REPORT_PLACEHOLDER, elem_id="report")
        with gr.Accordion("Tool trace — every call: name, arguments, backend, time, result", open=True,
                          elem_id="trace-panel"):
            trace = gr.Dataframe(headers=views.TRACE_HEADERS, interactive=False, wrap=True, elem_id="trace")
        with gr.Accordion("Findings of the latest answer", open=True):
            findings = gr.Dataframe(headers=views.FINDINGS_HEADERS, interactive=False, wrap=True, elem_id="findings")
        with gr.Accordion("Example cases (real public images)", open=True):
            examples = gr.Dataset(components=[gr.Textbox(visible=False)], samples=[[c.title] for c in cases],
                                  type="index", label=None, elem_id="examples")
            if not cases:
                gr.Markdown(f"No example images found under `{settings.shared_data}`.")
        with gr.Accordion("Settings", open=False):
            with gr.Row():
                planner = gr.Radio(list(PLANNERS), value=settings.planner, label="Planner")
                base_url = gr.Textbox(value=settings.base_url or "", label="Server URL (OpenAI-compatible)",
                                      placeholder="http://127.0.0.1:8000/v1")
                model = gr.Textbox(value=settings.model or "", label="Model name on that server")
                apply_btn = gr.Button("Use this planner")
            planner_md = gr.Markdown(f"Planner for this tab: **{settings.planner}**")
            backends_btn = gr.Button("Check backends and device", size="sm")
            device_md = gr.Markdown(f"device setting `{settings.device}`")
            backends = gr.Dataframe(headers=views.BACKEND_HEADERS, interactive=False, wrap=True)

        from .live_tab import add_live_tab  # the Live tab: endoscope video, smoothed boxes, push-to-talk

        add_live_tab(assistant)

        for role, file_c, date_c, view_c, name in (("current", cur_file, cur_date, cur_view, "load_current"),
                                                   ("prior", pri_file, pri_date, pri_view, "load_prior")):
            def load(file, date, st, _role=role):
                return h.load_study(_role, file, date, st)

            file_c.upload(load, [file_c, date_c, state], [view_c, chat, state], api_name=name)
            file_c.clear(load, [file_c, date_c, state], [view_c, chat, state], api_visibility="private")
            date_c.submit(load, [file_c, date_c, state], [view_c, chat, state], api_visibility="private")

        components.update(chat=chat, overlay=overlay, trace=trace, findings=findings, summary=summary,
                          downloads=downloads, audio=spoken, question=question, state=state, current_view=cur_view,
                          prior_view=pri_view, current_file=cur_file, prior_file=pri_file)
        answer_outputs = [components[name] for name in ASK_OUTPUTS]
        ask_inputs = [question, speak, state]
        ask_btn.click(ask, ask_inputs, answer_outputs, api_name="ask", concurrency_limit=2)
        question.submit(ask, ask_inputs, answer_outputs, api_visibility="private", concurrency_limit=2)
        voice_outputs = [heard, question, chat, state]
        voice_ask = [heard, speak, state]
        mic.upload(h.transcribe, [mic, state], voice_outputs, api_name="voice").then(
            ask, voice_ask, answer_outputs, api_visibility="private", concurrency_limit=2)
        mic.stop_recording(h.transcribe, [mic, state], voice_outputs, api_visibility="private").then(
            ask, voice_ask, answer_outputs, api_visibility="private", concurrency_limit=2)

        def on_click(st, evt):
            q, st = h.click_question(st, evt.index)
            return q, q, st

        on_click.__annotations__ = {"evt": gr.SelectData}  # gradio passes the click's (x, y) by this type
        cur_view.select(on_click, [state], [clicked, question, state], api_visibility="private").then(
            ask, [clicked, speak, state], answer_outputs, api_visibility="private", concurrency_limit=2)
        examples.click(load_example, [examples, state], [components[name] for name in EXAMPLE_OUTPUTS],
                       api_name="example")
        new_btn.click(h.new_conversation, [state], [chat, state], api_name="new_conversation")
        report_btn.click(export_view.report_view, [state, report_deid], [report_md, downloads, state], api_name="report")
        apply_btn.click(h.set_planner, [planner, base_url, model, state], [planner_md, state], api_name="planner")
        backends_btn.click(h.backends, [], [backends, device_md], api_name="backends")
    return app


def main(argv: list[str]) -> int:
    """``osler serve [--host H] [--port P] [--planner ...] [--device ...]``."""
    from tools.entrypoints import make_settings, offline_environment, planner_args

    offline_environment()
    parser = argparse.ArgumentParser(prog="osler serve", description="Start the local web app.")
    parser.add_argument("--host", help="interface to bind (default: 127.0.0.1; settings.host)")
    parser.add_argument("--port", type=int, help="port (default: 7860; settings.port)")
    parser.add_argument("--experts", choices=["inprocess", "ray"],
                        help="inprocess (default): models load in this process; ray: Ray Serve deployments on a local "
                             "Ray instance, or the cluster named by RAY_ADDRESS (docs/serving.md)")
    planner_args(parser)
    args = parser.parse_args(argv)
    settings = make_settings(args, **{k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None})

    from agent.runner import Assistant
    from experts.ray_serve import RayExpertPool, with_serving

    settings = with_serving(settings, experts=args.experts, ray_address=os.environ.get("RAY_ADDRESS"))
    pool = RayExpertPool(settings) if settings.serving.experts == "ray" else None
    if pool is not None:
        where = "local Ray instance on 127.0.0.1" if pool.runtime.local else f"Ray cluster {pool.runtime.address}"
        print(f"Experts: Ray Serve deployments on a {where} (each deploys on first use)", flush=True)
    uploads = private_gradio_temp()
    try:
        return serve_until_stopped(build_app(Assistant(settings, pool=pool)), settings, serve)
    finally:
        if pool is not None:
            pool.shutdown()
        if uploads is not None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
            shutil.rmtree(uploads, ignore_errors=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(main(sys.argv[1:]))
