"""Voice: pure parts (normalisation, strict parser, wake-word gate, dialog, short answers, audio
checks, backend selection).  No models, no audio devices."""

from __future__ import annotations

import numpy as np
import pytest

from tools.answer import AskResult, Timings
from tools.errors import ExpertUnavailableError, InvalidInputError


# ---- normalisation ------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ("Osler, how many WBCs are visible?", "osler how many white cells are visible"),
    ("How many white blood cells are visible?", "how many white cells are visible"),
    ("Count the leukocytes.", "count the white cells"),
    ("how many RBCs", "how many red cells"),
    ("Is their pneumonia?", "is there pneumonia"),
    ("It's 12 mm, about 35%", "it is twelve millimeters about thirty five percent"),
    ("What's the 2nd X-ray?", "what is the second x ray"),
    ("  ", ""),
])
def test_normalize(raw, expected):
    from voice.normalize import normalize

    assert normalize(raw) == expected


def test_number_words():
    from voice.normalize import number_to_words

    assert [number_to_words(n) for n in (0, 7, 21, 40, 105, 999)] == \
        ["zero", "seven", "twenty one", "forty", "one hundred five", "nine hundred ninety nine"]


# ---- strict parser --------------------------------------------------------------------------------
@pytest.mark.parametrize("text, intent, slots, question", [
    ("How many white cells are visible?", "count", {"count_target": "white cells"}, "How many white cells are visible?"),
    ("how many WBCs", "count", {"count_target": "white cells"}, "How many white cells are visible?"),
    ("How many platelets are there?", "count", {"count_target": "platelets"}, "How many platelets are visible?"),
    ("how many red blood cells do you see", "count", {"count_target": "red cells"}, "How many red cells are visible?"),
    ("How many polyps are visible?", "count", {"count_target": "polyps"}, "How many polyps are visible?"),
    ("Is there a polyp?", "detect_polyp", {}, "Is there a polyp?"),
    ("Segment the lungs.", "segment", {"seg_target": "lung"}, "Segment the lung."),
    ("segment the lesion", "segment", {"seg_target": "lesion"}, "Segment the lesion."),
    ("How big is it?", "measure", {}, "How big is it?"),
    ("Compare with the prior.", "compare", {}, "Compare with the prior."),
    ("What changed?", "changes", {}, "What changed since the prior?"),
    ("What kind of image is this?", "image_kind", {}, "What kind of image is this?"),
    ("Is this normal?", "normal", {}, "Is this normal?"),
    ("Is there pneumonia?", "pneumonia", {}, "Is there pneumonia?"),
    ("Please count the platelets, please.", "count", {"count_target": "platelets"}, "How many platelets are visible?"),
])
def test_questions_parse(text, intent, slots, question):
    from voice.commands import parse_command

    c = parse_command(text)
    assert c is not None and (c.intent, c.slots, c.question, c.kind) == (intent, slots, question, "question")


# Natural phrasings people use for the same questions (2026-12-03): whole utterances, still strict
@pytest.mark.parametrize("text, intent, slots", [
    ("What am I looking at?", "image_kind", {}), ("Tell me what kind of image this is.", "image_kind", {}),
    ("Is there any pneumonia?", "pneumonia", {}), ("Does this look normal?", "normal", {}),
    ("Is the chest X-ray normal?", "normal", {}), ("What's the size of it?", "measure", {}),
    ("Measure it.", "measure", {}), ("How big is that?", "measure", {}),
    ("Compare with the old image.", "compare", {}), ("Has anything changed?", "changes", {}),
    ("What is different?", "changes", {}), ("Do you see a polyp?", "detect_polyp", {}),
    ("Is there a polyp here?", "detect_polyp", {}), ("Can you count the polyps?", "count", {"count_target": "polyps"}),
    ("What's the number of platelets?", "count", {"count_target": "platelets"}),
    ("Could you tell me how many white cells are visible?", "count", {"count_target": "white cells"}),
    ("count white cells", "count", {"count_target": "white cells"}),
])
def test_natural_phrasings_parse(text, intent, slots):
    from voice.commands import parse_command

    c = parse_command(text)
    assert c is not None and (c.intent, c.slots) == (intent, slots)


def test_no_benchmark_or_training_non_command_parses():
    """Every sentence the recognition benchmarks and the spotter's training use as NOT a command (theatre talk,
    lookalikes that open like a command: "how many platelets are in the fridge") stays rejected by the widened
    grammar, in the still-image and the live command set."""
    from training import train_spotter as T
    from voice import bench_data as D
    from voice import bench_grammar_sets as S
    from voice.commands import parse_command
    from voice.live_commands import parse_live

    sentences = [*S.DEV_NON_COMMANDS, *S.TEST_NON_COMMANDS, *S.FINAL_NON_COMMANDS, *S.FRESH_NON_COMMANDS,
                 *S.FRESH2_NON_COMMANDS, *S.LOOKALIKE_NON_COMMANDS, *D.CHATTER, *D.CROWD_CHATTER,
                 *T.TRAIN_NON_COMMANDS, *T.TRAIN_CHATTER, *T.TRAIN_LOOKALIKES]
    assert len(sentences) > 150
    parsed = [(t, c.intent) for t in sentences for c in (parse_command(t), parse_live(t)) if c is not None]
    assert parsed == []


@pytest.mark.parametrize("text, intent, kind, slots", [
    ("Cancel.", "cancel", "control", {}), ("Never mind", "cancel", "control", {}), ("Repeat that.", "repeat", "control", {}),
    ("Louder!", "louder", "control", {}), ("Yes.", "yes", "control", {}), ("No.", "no", "control", {}),
    ("Read back the last finding.", "read_back", "local", {}),
    ("Switch image to next.", "switch_image", "state", {"direction": "next"}),
    ("Switch the image to the previous one", "switch_image", "state", {"direction": "previous"}),
    ("Load the prior.", "load_prior", "state", {}), ("Clear.", "clear", "state", {}),
])
def test_controls_and_state_changes_parse(text, intent, kind, slots):
    from voice.commands import parse_command

    c = parse_command(text)
    assert c is not None and (c.intent, c.kind, c.slots) == (intent, kind, slots)
    assert c.needs_confirmation == (kind == "state")


@pytest.mark.parametrize("text", [
    "", "thank you", "how many dogs are visible", "segment the", "how many", "count the sponges before we close",
    "clear the tray when you have a moment", "how many white cells are visible and what about the red ones",
    "yes but not now", "switch image", "is there a polyp or two", "Osler, how many white cells are visible?",
    "how many white cells are missing", "osler voice commands how many white cells red cells platelets",
    "tell me", "can you", "what am i looking for", "measure the gap", "has the patient changed position",
    "is the consent form normal", "what is the number of the theatre", "do you see the nurse",
])
def test_incomplete_or_foreign_text_is_rejected(text):
    """A hypothesis that is not a whole command is never guessed into one (the wake word is removed
    by the gate, not the parser)."""
    from voice.commands import parse_command

    assert parse_command(text) is None


def test_grammar_words_are_all_in_the_pocketsphinx_dictionary():
    from voice.asr_sphinx import check
    from voice.commands import jsgf_grammar, vocabulary

    assert check(None) is None, "a grammar word missing from the dictionary stops pocketsphinx from starting"
    g = jsgf_grammar()
    assert g.startswith("#JSGF V1.0;") and "public <utterance> = [osler]" in g and "<c_switch_image>" in g
    assert "osler" in vocabulary() and "target" not in vocabulary()


# ---- activation -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, mode, activated, rest", [
    ("Osler, how many polyps?", "wake", True, "how many polyps"),
    ("Hey Osler count the platelets", "wake", True, "count the platelets"),
    ("how many polyps?", "wake", False, "how many polyps"),
    ("Ask Osler to bring the scope", "wake", False, "ask osler to bring the scope"),
    ("how many polyps?", "ptt", True, "how many polyps"),
    ("Osler, how many polyps?", "ptt", True, "how many polyps"),
    ("", "wake", False, ""),
])
def test_wake_word_gate(text, mode, activated, rest):
    from voice.activation import gate

    g = gate(text, mode)
    assert (g.activated, g.text) == (activated, rest)


def test_endpointer_cuts_one_utterance():
    from voice.activation import Endpointer

    sr = 16000
    rng = np.random.default_rng(0)
    quiet = 0.001 * rng.standard_normal(sr).astype(np.float32)
    speech = 0.2 * np.sin(2 * np.pi * 200 * np.arange(sr) / sr).astype(np.float32)
    ep = Endpointer(sr, end_silence_s=0.4)
    out = [ep.push(b) for b in np.split(np.concatenate([quiet, speech, quiet]), 100)]
    cut = [o for o in out if o is not None]
    assert ep.speech_started and len(cut) == 1
    assert 1.0 * sr <= len(cut[0]) <= 1.8 * sr


# ---- dialog ---------------------------------------------------------------------------------------
def _cmd(text):
    from voice.commands import parse_command

    return parse_command(text)


def test_state_change_needs_yes():
    from voice.dialog import DialogManager

    d = DialogManager()
    r = d.handle(_cmd("switch image to next"))
    assert r.kind == "confirm" and "next image" in r.say and d.state == "confirming"
    assert d.handle(None, "mumble").kind == "rejected" and d.state == "confirming"
    r = d.handle(_cmd("yes"))
    assert r.kind == "execute" and r.command.intent == "switch_image" and d.state == "idle"
    assert d.handle(_cmd("yes")).say == "There is nothing to confirm."


def test_no_cancel_timeout_and_new_command_drop_the_pending_change():
    from voice.dialog import DialogManager

    now = [0.0]
    d = DialogManager(confirm_timeout_s=10, clock=lambda: now[0])
    d.handle(_cmd("clear"))
    assert d.handle(_cmd("no")).say == "Cancelled." and d.state == "idle"
    d.handle(_cmd("load the prior"))
    assert d.handle(_cmd("cancel")).kind == "say" and d.pending is None
    d.handle(_cmd("load the prior"))
    r = d.handle(_cmd("how many polyps are visible"))
    assert r.kind == "ask" and d.pending is None
    d.handle(_cmd("clear"))
    now[0] = 11.0
    assert d.handle(_cmd("yes")).kind == "say" and d.pending is None  # expired: nothing is executed


def test_repeat_louder_read_back_and_barge_in():
    from voice.dialog import DialogManager

    d = DialogManager(volume=1.0)
    assert d.handle(_cmd("repeat")).say == "Nothing to repeat yet."
    d.record_answer("One white blood cell.", "I count 1 white blood cell (WBC) [E2].")
    assert d.handle(_cmd("repeat")).say == "One white blood cell."
    r = d.handle(_cmd("louder"))
    assert r.say == "One white blood cell." and d.volume > 1.0
    assert d.handle(_cmd("read back the last finding")).say.startswith("I count 1 white")
    d.speaking = True
    assert d.barge_in() is True and d.barge_in() is False


# ---- short spoken answers -------------------------------------------------------------------------
def _result(**kw):
    return AskResult(question="q", planner="builtin", timings=Timings(total_ms=1, experts_ms=1), **kw)


@pytest.mark.parametrize("kw, spoken", [
    (dict(answer="I count 2 white blood cells (WBC) (confidence threshold 0.50) [E2].", value=2.0,
          unit="white blood cells"), "Two white blood cells."),
    (dict(answer="I count 1 white blood cell (WBC) [E2].", value=1.0, unit="white blood cells"), "One white blood cell."),
    (dict(answer="Yes. I see 1 polyp [E2].", value=1.0, unit="polyps", label="yes"), "Yes. One polyp."),
    (dict(answer="The lesion is 12.5 mm2 [E3].", value=12.54, unit="mm2"), "12.5 square millimetres."),
    (dict(answer="This image is a blood smear (microscopy) (gate confidence 0.70) [E1].", label="blood_smear"),
     "This image is a blood smear."),
    (dict(answer="I could not count polyp: detect:polyp: no backend can run here", abstained=True),
     "I could not count polyp."),
    (dict(answer="x", status="error"), "Sorry, that failed. The details are on screen."),
])
def test_short_answer(kw, spoken):
    from voice.answers import short_answer

    assert short_answer(_result(**kw)) == spoken


# ---- audio checks -------------------------------------------------------------------------------
def _vs():
    from voice.config import VoiceSettings

    return VoiceSettings()


def _tone(sr=16000, seconds=1.0, amp=0.3):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


@pytest.mark.parametrize("make, message", [
    (lambda: (np.zeros(32000, np.float32), 16000), "silent"),
    (lambda: (np.clip(_tone(amp=3.0), -1, 1), 16000), "clipped"),
    (lambda: (_tone(sr=8000), 8000), "8000 Hz"),
    (lambda: (_tone(seconds=0.1), 16000), "too short"),
    (lambda: (_tone(seconds=40), 16000), "at most"),
])
def test_bad_audio_is_refused_with_a_clear_message(make, message):
    from voice.audio import check_audio, from_array

    x, sr = make()
    with pytest.raises(InvalidInputError, match=message):
        check_audio(from_array(x, sr, "clip.wav"), _vs())


def test_files_that_are_not_audio(tmp_path):
    from voice.audio import read_audio

    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all")
    for name, message in (("empty.wav", "empty"), ("text.wav", "not an audio file"), ("missing.wav", "not found")):
        with pytest.raises(InvalidInputError, match=message):
            read_audio(tmp_path / name)


def test_resample_22050_to_16k_keeps_the_tone():
    from voice.audio import resample

    x = _tone(sr=22050, seconds=1.0)
    y = resample(x, 22050, 16000)
    assert len(y) == 16000
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(int(np.argmax(spectrum)) - 220) <= 1


# ---- backend selection ------------------------------------------------------------------------------
def test_asr_selection_truth_table():
    from voice.asr import select_backend

    ok = {"whisper": None, "pocketsphinx": None, "speechbrain": "set models.speechbrain_asr_dir"}
    assert select_backend("auto", ok)[0].name == "whisper"
    assert select_backend("pocketsphinx", ok)[0].name == "pocketsphinx"
    with pytest.raises(ExpertUnavailableError, match="speechbrain_asr_dir"):
        select_backend("speechbrain", ok)
    spec, why = select_backend("auto", {"whisper": "no model", "pocketsphinx": None, "speechbrain": "x"})
    assert spec.name == "pocketsphinx" and "whisper: no model" in why
    with pytest.raises(ExpertUnavailableError, match="no speech recogniser"):
        select_backend("auto", {"whisper": "a", "pocketsphinx": "b", "speechbrain": "c"})
    with pytest.raises(ExpertUnavailableError, match="unknown ASR backend"):
        select_backend("kaldi", ok)


def test_speechbrain_check_names_the_setting(tmp_path, settings):
    from voice.asr_speechbrain import check

    assert "models.speechbrain_asr_dir" in check(settings)
    s2 = settings.model_copy(update={"models": settings.models.model_copy(update={"speechbrain_asr_dir": tmp_path})})
    assert "no hyperparams.yaml" in check(s2)
    (tmp_path / "hyperparams.yaml").write_text("pretrained_path: speechbrain/asr-crdnn\nsource: speechbrain/asr-x\n")
    assert "never downloads" in check(s2) and "speechbrain/asr-x" in check(s2)


def test_whisper_dir_setting_is_checked(tmp_path, settings):
    from voice.asr_whisper import check

    s2 = settings.model_copy(update={"models": settings.models.model_copy(update={"whisper_dir": tmp_path})})
    assert "OSLER_MODELS__WHISPER_DIR" in check(s2)


def test_wer():
    from voice.bench import wer

    assert wer("osler how many white cells are visible", "Osler, how many WBCs are visible?") == (0, 7)
    assert wer("ten of clubs", "ten of hearts") == (1, 3)
    assert wer("a b c", "") == (3, 3)


def test_importing_voice_loads_no_model_library():
    """Heavy libraries load lazily: importing every voice module pulls in none of them."""
    import subprocess
    import sys

    code = ("import sys, voice.cli, voice.pipeline, voice.bench, voice.live, voice.tts, voice.asr_whisper, "
            "voice.asr_sphinx, voice.asr_speechbrain, voice.bench_data; "
            "print(sorted(m for m in ('torch', 'faster_whisper', 'piper', 'speechbrain', 'pocketsphinx', "
            "'sounddevice', 'ctranslate2', 'onnxruntime', 'agent.runner') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"


def test_push_to_talk_drops_leading_fillers_only():
    from voice.activation import gate
    from voice.commands import parse_command

    assert gate("So, how many platelets are visible?", "ptt").text == "how many platelets are visible"
    assert gate("Uh, um, cancel.", "ptt").text == "cancel"
    assert gate("So", "ptt").text == "so"  # a lone filler stays (and parses to nothing)
    assert not gate("So, how many platelets are visible?", "wake").activated
    assert parse_command(gate("how many so platelets", "ptt").text) is None


class ScriptedRecognizer:
    """Test double: 'hears' the next scripted transcript, whatever the audio."""

    name = "scripted"

    def __init__(self, texts):
        self.texts = list(texts)

    def load(self):
        pass

    def transcribe(self, audio):
        from voice.asr import Transcript

        return Transcript(text=self.texts.pop(0), backend=self.name, model="script", elapsed_ms=1.0,
                          audio_s=audio.seconds)


def test_bare_wake_word_opens_a_short_window_and_chatter_is_not_logged(settings, assistant, data_dir):
    from tests.conftest import SMEAR
    from voice.audio import from_array
    from voice.config import voice_settings
    from voice.pipeline import VoiceAssistant

    rec = ScriptedRecognizer(["Mr Smith in bed four needs his potassium.", "Osler.", "How many white cells are visible?",
                              "How many white cells are visible?"])
    va = VoiceAssistant(settings, [data_dir / SMEAR], vs=voice_settings(settings, tts_backend="none"),
                        assistant=assistant, recognizer=rec)
    clip = from_array(_tone(seconds=1.5), 16000, "mic")
    assert va.hear(clip, mode="wake").reply == "ignored"
    t = va.hear(clip, mode="wake")
    assert t.heard.woke and t.spoken_text == "Yes?"
    t = va.hear(clip, mode="wake")  # no wake word needed right after "Yes?"
    assert t.reply == "ask" and t.result.question == "How many white cells are visible?"
    assert t.spoken_wav is None and t.spoken_text  # tts 'none': the short answer is text only
    assert va.hear(clip, mode="wake").reply == "ignored"  # the window closed
    events = [e for e in va.session.audit.read() if e["event"] == "voice"]
    assert [e["transcript"] for e in events] == [None, None, "how many white cells are visible", None]
    assert "Smith" not in va.session.audit.path.read_text()
