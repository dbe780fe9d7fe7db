"""Live video mode (``osler live``): the latest-frame reader, detection smoothing, the live grammar, the
script, and whole scripted sessions on a video made from real held-out EndoTect frames."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tools.errors import InvalidInputError
from voice.live_commands import parse_live
from voice.live_demo import NEGATIVE_FRAME, POLYP_FRAME, make_pan_zoom_video, score_detections
from voice.live_script import load_script
from voice.live_smooth import DetectionSmoother, iou_matrix
from voice.video import LatestFrameReader

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (DATA / "endotect_polyps" / "images" / f"{POLYP_FRAME}.jpg").exists(),
                                reason="EndoTect frames not found under ../shared/data")


@pytest.fixture(scope="module")
def short_video(tmp_path_factory):
    if not (DATA / "endotect_polyps").exists():
        pytest.skip("EndoTect frames not found under ../shared/data")
    out = tmp_path_factory.mktemp("live") / "short.avi"
    truth = make_pan_zoom_video(out, DATA, polyp_s=1.0, negative_s=1.0)
    return out, truth


# ---- the test video itself -----------------------------------------------------------------------------
@needs_data
def test_ground_truth_box_follows_the_pan_and_zoom(short_video):
    import cv2

    _, truth = short_video
    mask = cv2.imread(str(DATA / "endotect_polyps" / "masks" / f"{POLYP_FRAME}.png"), cv2.IMREAD_GRAYSCALE) > 127
    ys, xs = np.nonzero(mask)
    s = 256 / mask.shape[1]  # frame 0 shows the whole 768x576 image at 256x192
    expected = (xs.min() * s, ys.min() * s, (xs.max() + 1) * s, (ys.max() + 1) * s)
    assert truth[0].box is not None and np.allclose(truth[0].box, expected, atol=1.5)
    polyp = [g for g in truth if g.segment == "polyp"]
    assert all(g.box is not None for g in polyp)
    assert polyp[-1].box[2] - polyp[-1].box[0] > 1.2 * (polyp[0].box[2] - polyp[0].box[0])  # zoomed in
    assert all(g.box is None for g in truth if g.segment == "negative")
    assert NEGATIVE_FRAME != POLYP_FRAME


# ---- reader ----------------------------------------------------------------------------------------------
@needs_data
def test_file_plays_at_its_own_frame_rate_and_keeps_only_the_latest_frame(short_video):
    path, truth = short_video
    reader = LatestFrameReader(path).start()
    t0 = time.monotonic()
    taken, last = [], -1
    while True:
        f = reader.take(after=last, timeout=2.0)
        if f is None:
            break
        taken.append(f)
        last = f.index
        time.sleep(0.25)  # a slow consumer: frames in between are overwritten, never queued
    elapsed = time.monotonic() - t0
    reader.stop()
    assert reader.stats.fps == pytest.approx(10.0)
    assert elapsed >= (len(truth) - 1) / 10.0 - 0.15  # 20 frames at 10 fps: not faster than 1.9 s
    assert reader.stats.taken == len(taken) < len(truth)
    assert reader.stats.dropped >= reader.stats.read - reader.stats.taken - 1 > 0  # overwritten, counted
    assert all(b.index > a.index for a, b in zip(taken, taken[1:]))
    assert taken[-1].time_s == pytest.approx(taken[-1].index / 10.0)


def test_reader_refuses_a_missing_file(tmp_path):
    with pytest.raises(InvalidInputError, match="not a file"):
        LatestFrameReader(tmp_path / "nope.avi")


# ---- smoothing -------------------------------------------------------------------------------------------
def test_a_box_is_shown_only_after_it_persists_and_survives_a_short_miss():
    sm = DetectionSmoother(min_hits=3, max_missed=1)
    box = np.array([[60.0, 70.0, 140.0, 130.0]])
    moved = box + 4.0
    assert sm.update(box, [0.6], 0) == []
    assert sm.update(np.zeros((0, 4)), [], 1) == []  # a one-run blip never shows
    assert sm.update(box, [0.6], 2) == [] and sm.update(moved, [0.6], 3) == []
    shown = sm.update(moved, [0.7], 4)
    assert len(shown) == 1 and iou_matrix(shown[0].box[None], moved)[0, 0] > 0.8
    assert len(sm.update(np.zeros((0, 4)), [], 5)) == 1  # one missed run: still shown
    assert sm.update(np.zeros((0, 4)), [], 6) == []  # two: gone
    far = np.array([[0.0, 0.0, 20.0, 20.0]])
    for k in range(7, 10):
        shown = sm.update(np.vstack([box, far]), [0.6, 0.5], k)
    assert len(shown) == 2 and {t.id for t in shown} == {t.id for t in sm.confirmed()}


# ---- grammar and script ----------------------------------------------------------------------------------
@pytest.mark.parametrize("said, intent, slots", [
    ("Freeze.", "freeze", {}), ("hold the frame", "freeze", {}), ("Unfreeze!", "unfreeze", {}),
    ("go live", "unfreeze", {}), ("Compare with 10 seconds ago.", "compare_ago", {"ago": "10"}),
    ("compare it to a minute ago", "compare_ago", {"ago": "60"}), ("Outline it.", "outline", {}),
    ("how big is it", "measure", {}), ("How many polyps are visible?", "count", {"count_target": "polyps"}),
])
def test_live_grammar(said, intent, slots):
    cmd = parse_live(said)
    assert cmd is not None and cmd.intent == intent and cmd.slots == slots


@pytest.mark.parametrize("said", ["freeze the patient", "compare with eleven seconds ago", "outline",
                                  "and freeze it now", "unfreeze the patient please now"])
def test_live_grammar_rejects_what_is_not_a_whole_command(said):
    assert parse_live(said) is None


@pytest.mark.parametrize("heard, intent", [
    ("Osler, freeze.", "freeze"), ("Osler and freeze.", None),  # 'and freeze' may be 'unfreeze': never a freeze
    ("Osler, unfreeze.", "unfreeze"), ("Awesome. How big is it?", "measure"),  # a misheard wake word, push-to-talk
    ("Awesome.", None), ("Osler. Segment lesion.", "outline"), ("Osler, tell me what I'm going to play with.", None),
    ("Also, freeze back in the last five minutes.", None),
])
def test_spoken_transcripts_in_live_mode(heard, intent):
    from voice.live_commands import hear_spoken

    _text, cmd, why = hear_spoken(heard)
    assert (cmd.intent if cmd else None) == intent
    assert (why is None) == (intent is not None)


def test_the_live_prompt_holds_no_whole_command_whisper_would_drop_as_an_echo():
    from voice.live_commands import LIVE_PROMPT
    from voice.live_demo import DEMO_SCRIPT, latency_script
    from voice.normalize import normalize

    prompt = normalize(LIVE_PROMPT)
    for _t, words in DEMO_SCRIPT + latency_script(40):
        said = normalize(words)
        assert not (len(said.split()) >= 6 and said in prompt), said


def test_script_is_checked_before_the_video_starts(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    good = tmp_path / "s.json"
    good.write_text(json.dumps([{"time": 3, "question": "freeze"}, {"time": 1.5, "audio": "a.wav"}]))
    entries = load_script(good)
    assert [e.time for e in entries] == [1.5, 3.0] and entries[0].audio == tmp_path / "a.wav"
    for bad, msg in (([{"time": 1}], "exactly one"), ([{"question": "x"}], "time"), ({"time": 1}, "list"),
                     ([{"time": 1, "audio": "missing.wav"}], "no such WAV")):
        p = tmp_path / "bad.json"
        p.write_text(json.dumps(bad))
        with pytest.raises(InvalidInputError, match=msg):
            load_script(p)


# ---- whole sessions through `osler live` -----------------------------------------------------------------
def said_one_polyp(a: dict) -> bool:
    """The spoken answer is one polyp: the frame's own count, or the smoothed count when the frame's differs
    (and the answer says so)."""
    return a["spoken_text"].lower().startswith("one polyp") and (
        a["value"] == 1 or (a["live"]["smoothed_count"] == 1 and "on this frame alone" in a["spoken_text"]))


def _osler_live(args: list[str], tmp: Path) -> tuple[list[dict], dict, float]:
    env = dict(os.environ, OMP_NUM_THREADS="1", OSLER_TORCH_THREADS="1", OSLER_DATA_DIR=str(tmp / "data"),
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", YOLO_OFFLINE="1")
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ui.cli", "live", *args, "--json", "--out", str(tmp / "out")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    answers = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    timeline = json.loads((tmp / "out" / "timeline.json").read_text())
    return answers, timeline, wall


@pytest.mark.slow
@needs_data
def test_spoken_session_on_a_real_endoscopy_video(tmp_path):
    """Spoken questions (piper voice) and typed ones against a 12 s pan/zoom video: detection where the
    polyp is visible, counts right for their frames, freeze holds the frame, outline and compare work."""
    from ui.cli import make_settings
    from voice.live_demo import write_script

    video = tmp_path / "video.avi"
    truth = make_pan_zoom_video(video, DATA)  # 6 s polyp, 6 s negative, 10 fps, 256x192
    script = write_script(tmp_path / "script", make_settings(data_dir=tmp_path / "data"))
    entries = json.loads(script.read_text()) + [{"time": 2.5, "question": "outline it"},
                                               {"time": 5.5, "question": "compare with three seconds ago"}]
    script.write_text(json.dumps(entries))
    answers, timeline, wall = _osler_live(["--video", str(video), "--audio-script", str(script)], tmp_path)

    assert wall >= 12.0  # a file plays at its own frame rate, not faster
    acc = score_detections(timeline, truth)
    assert acc["recall"] >= 0.8 and acc["false_positive_rate"] <= 0.1, acc
    assert len(answers) == len(timeline["answers"]) == 7
    for a in answers:
        assert {"answer", "transcript", "frame_index", "frame_time", "live"} <= set(a)
        assert a["frame_time"] == pytest.approx(a["frame_index"] / 10.0, abs=1e-3)
    by_intent = [a["live"]["intent"] for a in answers]
    assert by_intent.count("count") == 3 and "freeze" in by_intent and "unfreeze" in by_intent
    counts = [a for a in answers if a["live"]["intent"] == "count"]
    freeze = next(a for a in answers if a["live"]["intent"] == "freeze")
    # 1st count: the polyp is in view at the frame where the question ended; the spoken answer gives the
    # smoothed count when that single frame's detector count differs (and says so)
    assert truth[counts[0]["frame_index"]].box is not None
    assert said_one_polyp(counts[0])
    # 2nd count: asked while the video already shows the negative frame, answered on the frozen frame
    assert counts[1]["live"]["utterance_end"] > 6.0 and counts[1]["live"]["frozen"]
    assert counts[1]["frame_index"] == freeze["frame_index"] and said_one_polyp(counts[1])
    # 3rd count, after unfreeze: the live negative frame, no polyp
    assert truth[counts[2]["frame_index"]].box is None and counts[2]["value"] == 0
    assert counts[2]["live"]["smoothed_count"] == 0
    for a in counts:
        assert Path(a["live"]["frame_file"]).is_file() and a["images"]["current"]["width"] == 256
    outline = next(a for a in answers if a["live"]["intent"] == "outline")
    assert outline["live"]["prompt"] is not None and outline["artifacts"]["masks"]
    mask_box = truth[outline["frame_index"]].box
    px, py = outline["live"]["prompt"]["point_xy"]
    assert mask_box[0] <= px <= mask_box[2] and mask_box[1] <= py <= mask_box[3]
    compare = next(a for a in answers if a["live"]["intent"] == "compare_ago")
    assert compare["frame_index"] - compare["live"]["prior_frame_index"] == pytest.approx(30, abs=3)
    assert any(c["name"] == "compare_with_prior" and c["ok"] for c in compare["tool_calls"])
    compared = next(c for c in compare["tool_calls"] if c["name"] == "compare_with_prior")
    if compared["result"]["status"] == "compared":  # two frames of one video: one patient, and the answer says nothing else
        assert compared["result"]["patient_check"] == "same_patient_id"
        assert "same patient" not in compare["answer"]
    spoken = [a for a in answers if a["live"].get("audio")]
    assert all(a["live"]["timings_ms"]["latency_ms"] > 0 and a.get("spoken_wav") for a in spoken)
    assert timeline["detection_stats"]["runs"] >= 20 and timeline["speech_latency_ms"]["n"] == 5


@pytest.mark.slow
@needs_data
def test_live_tab_handlers_show_boxes_and_answer_on_the_frozen_frame(short_video, assistant):
    """The web app's Live tab without a browser: start a real video, the view gets the smoothed box,
    typed freeze holds the frame and a question is answered on it."""
    from ui.live_tab import LiveHandlers

    path, truth = short_video
    h = LiveHandlers(assistant)
    started = h.start(None, str(path), 10, 2, None)
    st = started["state"]
    assert st is not None, started["status"]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not st["engine"].detections:
            time.sleep(0.1)
        time.sleep(0.5)  # a few detector runs on the polyp part (the first second)
        tick = h.tick(st)
        assert tick["view"] is not None and tick["view"].shape == (192, 256, 3) and "runs/s" in tick["stats"]
        frz = h.ask_text("freeze", st)
        assert "frame" in frz["answer"]
        engine = st["engine"]
        frozen_index = engine.frozen.frame.index
        ans = h.ask_text("How many polyps are visible?", st)
        last = engine.answers[-1]
        assert last["frame_index"] == frozen_index and last["live"]["frozen"]
        assert (last["value"] == 1) == (truth[frozen_index].box is not None)
        assert ans["trace"] and any(row[2] == "count" for row in ans["trace"])
    finally:
        assert h.stop(st)["state"] is None


def test_a_grey_video_pauses_the_detector_and_counts_are_refused(short_video, assistant, tmp_path):
    """A black-and-white recording had given no boxes, i.e. 'no polyp', on every frame: the detector reads
    colour, so colourless frames are skipped (and counted), and a question about one is refused."""
    import cv2

    from ui.live_tab import LiveHandlers

    path, _truth = short_video
    grey = tmp_path / "grey.avi"
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 10
    out = None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        g = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
        if out is None:
            out = cv2.VideoWriter(str(grey), cv2.VideoWriter_fourcc(*"MJPG"), fps, (g.shape[1], g.shape[0]))
        out.write(g)
    out.release()
    h = LiveHandlers(assistant)
    st = h.start(None, str(grey), 10, 2, None)["state"]
    assert st is not None
    engine = st["engine"]
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and engine.colourless_frames < 3:
            time.sleep(0.1)
        assert engine.colourless_frames >= 3 and not engine.detections
        h.ask_text("freeze", st)
        ans = h.ask_text("How many polyps are visible?", st)
        # refused by the modality gate (a grey frame is unlike its endoscopy) or by the colour check behind it
        assert engine.answers[-1]["value"] is None
        assert "needs a colour image" in ans["answer"] or "ran no diagnosis tool" in ans["answer"]
    finally:
        h.stop(st)
    stats = engine.detection_stats()
    assert stats["colourless_frames"] >= 3
    assert stats["runs"] == 0 and stats["frames_read"] >= stats["colourless_frames"]  # read, not "0 frames read"
