"""The command spotter (voice.spotter): its rule beside the grammar check, its training split, the shipped
weights on real espeak-ng speech of voices it never trained on, and the recogniser's use of it (agree, veto,
rescue, missing weights).  Skipped with a reason when espeak-ng, the bundled Whisper or the weights are missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from voice.second_opinion import spot_settle
from voice.spotter import OTHER, CommandSpotter, default_path

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (Debian: apt-get install espeak-ng)")
needs_weights = pytest.mark.skipif(not default_path().is_file(), reason=f"no spotter weights at {default_path()}")

KNOWN = {"freeze", "unfreeze", "measure", "count(count_target=polyps)"}


def test_the_spotter_never_brings_a_command_alone():
    # agrees with the command left by the grammar check
    assert spot_settle("freeze", "freeze", "freeze", 0.6, KNOWN, 0.9, 0.9) == "agreed"
    # hears another command, or no command, surely: rejected; unsure: the command stands
    assert spot_settle("freeze", "freeze", "unfreeze", 0.95, KNOWN, 0.9, 0.9) == "vetoed"
    assert spot_settle("freeze", "freeze", OTHER, 0.95, KNOWN, 0.9, 0.9) == "vetoed"
    assert spot_settle("freeze", "freeze", "unfreeze", 0.6, KNOWN, 0.9, 0.9) == "kept"
    # no command left: taken only when the grammar's best is the same command and the spotter is sure
    assert spot_settle(None, "measure", "measure", 0.95, KNOWN, 0.9, 0.9) == "spotted"
    assert spot_settle(None, "measure", "measure", 0.8, KNOWN, 0.9, 0.9) == "none"
    assert spot_settle(None, "freeze", "measure", 0.99, KNOWN, 0.9, 0.9) == "none"
    assert spot_settle(None, "measure", OTHER, 0.99, KNOWN, 0.9, 0.9) == "none"
    # a class outside the command set in use (the still-image set has no 'freeze') abstains
    assert spot_settle("measure", "measure", "outline", 0.99, KNOWN, 0.9, 0.9) == "kept"
    assert spot_settle(None, "outline", "outline", 0.99, KNOWN, 0.9, 0.9) == "none"


def test_a_phrasing_the_spotter_never_learnt_has_its_own_no_command_veto_level():
    """A command said in a phrasing added after the spotter was trained ("do you see a polyp"): with
    ``veto_added`` set, a "no command" vote vetoes it only at that level; a vote for another command still vetoes
    at ``veto``; a first phrasing is vetoed as before.  The parser says which phrasing matched, after the wake word,
    its mishearings and fillers; near misses and lookalikes are no command at all."""
    from voice.live_commands import hear_spoken

    def added_phrasing(text: str) -> bool:
        cmd = hear_spoken(text)[1]
        return cmd is not None and cmd.added_phrasing

    known = {"detect_polyp", "measure"}
    assert spot_settle("detect_polyp", "detect_polyp", OTHER, 0.6, known, 0.7, 0.1, 0.7, 0.85, True) == "kept"
    assert spot_settle("detect_polyp", "detect_polyp", OTHER, 0.9, known, 0.7, 0.1, 0.7, 0.85, True) == "vetoed"
    assert spot_settle("detect_polyp", "detect_polyp", "measure", 0.2, known, 0.7, 0.1, 0.7, 0.85, True) == "vetoed"
    assert spot_settle("detect_polyp", "detect_polyp", OTHER, 0.6, known, 0.7, 0.1, 0.7, 0.85, False) == "vetoed"
    assert spot_settle("detect_polyp", "detect_polyp", OTHER, 0.6, known, 0.7, 0.1, 0.7, None, True) == "vetoed"
    for text in ("Osler, do you see a polyp?", "Awesome, measure it.", "Osler, can you count the polyps?",
                 "Uh, tell me what kind of image this is.", "Could you tell me how many white cells are visible, please?"):
        assert added_phrasing(text), text
    for text in ("Osler, is there a polyp?", "Awesome, how big is it?", "Osler, count the white cells.", "Freeze.",
                 "Osler, how many platelets are in the fridge?", "Osler, do you see a parking space?", ""):
        assert not added_phrasing(text), text


def test_the_default_veto_rejects_a_command_the_spotter_does_not_name_even_unsure():
    """Dev clip (2026-12-02): "How long have we been going" in babble, written "How big is it?" by Whisper and
    taken by the grammar, while the spotter, unsure, named no command (p 0.21): executed with the old veto 0.5,
    rejected with the default tuned since (0.1); a nearly clueless spotter (p < 0.1) still leaves it standing."""
    from tools.voice_settings import VoiceSettings

    vs = VoiceSettings()
    args = (KNOWN, vs.spotter_take, vs.spotter_veto, vs.spotter_alone)
    assert spot_settle("measure", "measure", OTHER, 0.21, *args) == "vetoed"
    assert spot_settle("measure", "measure", OTHER, 0.21, KNOWN, vs.spotter_take, 0.5, vs.spotter_alone) == "kept"
    assert spot_settle("measure", "measure", "freeze", 0.05, *args) == "kept"
    assert spot_settle("measure", "measure", "measure", 0.3, *args) == "agreed"


def _row(expected, free_text, meaning, margin, gap, spot):
    return dict(set="dev", is_command=expected is not None, expected=expected, noise="pink", snr_db=10.0, ms=1.0,
                free_text=free_text, grammar=dict(meaning=meaning, margin=margin, gap=gap), _spot=spot)


def test_benchmark_spotter_policy_and_tuning():
    from voice.bench_grammar_policy import policy, tune_spotter

    t = dict(margin=7.0, gap=8.0, token_bonus=0.0, confirm_margin=4.0)
    rescued = _row("measure", "Osler, how big is this?", "measure", 2.0, 1.0, ("measure", 0.97))
    vetoed = _row(None, "Osler, how big is it?", "measure", 9.0, 0.0, (OTHER, 0.99))  # chatter heard as a command
    plain = _row("measure", "Osler, how big is it?", "measure", 9.0, 0.0, ("measure", 0.99))
    args = (t["margin"], t["gap"], 0.0, t["confirm_margin"])
    assert policy(rescued, "grammar", *args) is None and policy(rescued, "spotter", *args, take=0.9, veto=0.9) == "measure"
    assert policy(vetoed, "grammar", *args) == "measure" and policy(vetoed, "spotter", *args, take=0.9, veto=0.9) is None
    assert policy(plain, "spotter", *args, take=0.9, veto=0.9) == "measure"
    s = tune_spotter([rescued, vetoed, plain], t)
    assert s["dev_wrong"] == 0 and s["dev_right"] == 2 and s["spotter_take"] <= 0.97 and s["spotter_veto"] <= 0.99


def test_training_voices_never_meet_the_benchmark_or_the_held_out_families():
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from training.train_spotter import _alias, benchmark_variants, voice_split
    from voice.bench_data import CROWD_VOICES
    from voice.bench_grammar_sets import FRESH2_SET_VOICES, FRESH_SET_VOICES

    split = voice_split()
    fam = {k: {_alias(v.split("+", 1)[1]) for v in vs} for k, vs in split.items()}
    assert not fam["train"] & fam["holdout"] and not fam["train"] & fam["val"] and not fam["val"] & fam["holdout"]
    assert not (fam["train"] | fam["val"] | fam["holdout"]) & benchmark_variants()
    assert set(FRESH_SET_VOICES) <= set(split["holdout"])
    # the second check's target voices and crowd talkers: held out too, and the targets are new to every set
    assert set(FRESH2_SET_VOICES) | set(CROWD_VOICES) <= set(split["holdout"])
    assert not set(FRESH2_SET_VOICES) & (set(FRESH_SET_VOICES) | set(CROWD_VOICES))


def test_the_lookalike_recipe_adds_non_commands_and_keeps_every_shipped_clip():
    """Recipe "lookalike" = the shipped training clips unchanged (same text, voice, noise, seed) plus 8 non-commands
    per voice that open like a command; none of them is a benchmark sentence, and the benchmark's own lookalike set
    shares no sentence with any training list."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from training.train_spotter import TRAIN_LOOKALIKES, TRAIN_NON_COMMANDS, jobs, voice_split
    from voice import bench_grammar_sets as b

    split = voice_split()
    shipped, look = jobs(split, "val"), jobs(split, "val", recipe="lookalike")
    extra = [j for j in look if j not in shipped]
    assert [j for j in look if j in shipped] == shipped
    assert len(extra) == 8 * len(split["val"]) and {j["label"] for j in extra} == {"other"}
    assert {j["text"] for j in extra} <= set(TRAIN_LOOKALIKES)
    bench = set(b.DEV_NON_COMMANDS + b.TEST_NON_COMMANDS + b.FINAL_NON_COMMANDS + b.FRESH_NON_COMMANDS
                + b.FRESH2_NON_COMMANDS + b.LOOKALIKE_NON_COMMANDS)
    assert not bench & (set(TRAIN_LOOKALIKES) | set(TRAIN_NON_COMMANDS))
    # the blind set: every held-out voice, non-commands only
    assert set(b.HELD_OUT_VOICES) == set(b.TEST_VOICES) | set(b.FINAL_VOICES) | set(b.FRESH_SET_VOICES) | set(
        b.FRESH2_SET_VOICES)
    from tools.settings import OslerSettings

    rows = list(b.clips(OslerSettings(), "lookalike", None, Path("/nonexistent"), (("clean", None),)))
    assert len(rows) == 20 * len(b.LOOKALIKE_NON_COMMANDS) and not any(r[3] for r in rows)


def _speech(text: str, voice: str, wpm: int = 150) -> np.ndarray:
    from training.train_spotter import _espeak

    pad = np.zeros(4800, np.float32)  # 0.3 s of room tone either side, as the benchmarks
    x = np.concatenate([pad, _espeak(text, voice, wpm, 50), pad])
    return (x + 1e-3 * np.random.default_rng(0).standard_normal(len(x))).astype(np.float32)


@pytest.fixture
def recognizer(live_recognizer):
    return live_recognizer


@needs_espeak

def test_the_phrasings_recipe_adds_natural_phrasings_and_near_misses_and_keeps_every_shipped_clip():
    """Recipe "phrasings" = the shipped clips unchanged (drawn from each command's first rule, as the shipped spotter
    was, though the grammar now has more phrasings) plus per voice 6 natural phrasings that parse to their label and
    3 near misses that parse to nothing; no near miss is a sentence of the paraphrase benchmark."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    from training.train_spotter import TRAIN_NEAR_MISSES, _sentences_by_class, jobs, voice_split
    from voice.grammar_sentences import meaning_str
    from voice.bench_paraphrase import NEAR_MISSES, PARAPHRASES
    from voice.commands import parse_command
    from voice.live_commands import LIVE_SET

    split = voice_split()
    shipped, ph = jobs(split, "val"), jobs(split, "val", recipe="phrasings")
    assert [j for j in ph if j in shipped] == shipped
    first = {s for ss in _sentences_by_class().values() for s in ss}
    assert {j["text"] for j in shipped if j["label"] != "other"} <= first  # the first rules only
    extra = [j for j in ph if j not in shipped]
    assert len(extra) == 9 * len(split["val"])
    cmds = [j for j in extra if j["label"] != "other"]
    assert len(cmds) == 6 * len(split["val"])
    for j in cmds:
        c = parse_command(j["text"], LIVE_SET)
        assert c is not None and meaning_str((c.intent, tuple(sorted(c.slots.items())))) == j["label"], j
    assert sum(j["text"] not in first and j["text"].split()[0] in {"can", "could", "tell"} for j in cmds) > 0
    near = [j["text"] for j in extra if j["label"] == "other"]
    assert set(near) <= set(TRAIN_NEAR_MISSES) and not any(parse_command(t, LIVE_SET) for t in TRAIN_NEAR_MISSES)
    assert not set(TRAIN_NEAR_MISSES) & (set(NEAR_MISSES) | {q for q, _i, _s in PARAPHRASES})

@needs_weights
def test_the_spotter_names_commands_of_held_out_voices_and_not_theatre_talk(recognizer):
    """Voices of the spotter's held-out families (never trained or tuned on)."""
    spotter = recognizer._spotter
    assert spotter is not None
    got = {}
    for said, voice in [("Osler, freeze.", "en-us+Zac"), ("Osler, how many polyps are visible?", "en-029+klatt"),
                        ("Osler, compare with ten seconds ago.", "en-gb-x-rp+shelby"),
                        ("Pass me the grasper please.", "en-gb-scotland+female1")]:
        x = _speech(said, voice)
        _hyps, ctx = recognizer._decode(x)
        got[said] = spotter.spot(ctx.enc, ctx.n_samples).meaning
    assert got == {"Osler, freeze.": "freeze", "Osler, how many polyps are visible?": "count(count_target=polyps)",
                   "Osler, compare with ten seconds ago.": "compare_ago(ago=10)", "Pass me the grasper please.": OTHER}


@needs_espeak
@needs_weights
def test_the_recogniser_records_the_spotter_and_a_sure_disagreement_rejects(recognizer, monkeypatch):
    from voice.audio import ASR_RATE, Audio
    from voice.live_commands import hear_spoken
    from voice.spotter import Spot

    x = _speech("Osler, how big is it?", "en-us+Zac")
    tr = recognizer.transcribe(Audio(x, ASR_RATE, "t"))
    assert tr.extra["spotter"]["meaning"] == "measure" and tr.extra["spotter"]["outcome"] == "agreed"
    assert hear_spoken(tr.text)[1].intent == "measure"
    # a grammar (test double) that prefers 'freeze' rejects the free 'how big is it'; the spotter, sure of
    # 'measure', takes it back: the free text and the spotter agree, and the notes say so
    tok = recognizer._decode(x)[1].tok
    freeze = {tuple(tok.encode(" Osler, freeze.") + [tok.eot]), tuple(tok.encode(" Freeze.") + [tok.eot])}
    monkeypatch.setattr(recognizer._scorer, "score",
                        lambda enc, prompt, seqs: np.array([0.0 if tuple(s) in freeze else -20.0 for s in seqs]))
    tr = recognizer.transcribe(Audio(x, ASR_RATE, "t"))
    assert tr.extra["grammar"]["meaning"] == "freeze" and tr.extra["spotter"]["outcome"] == "spotted"
    assert hear_spoken(tr.text)[1].intent == "measure" and tr.text.startswith("Osler")  # Whisper heard "Osler"
    assert any("command spotter hears" in d for d in tr.extra["dropped"])
    monkeypatch.undo()
    # a spotter (test double) sure of another command: nothing is done, and the notes say why
    monkeypatch.setattr(recognizer._spotter, "spot", lambda enc, n: Spot("freeze", 0.99, "measure", 0.01))
    tr = recognizer.transcribe(Audio(x, ASR_RATE, "t"))
    assert tr.text == "" and tr.extra["spotter"]["outcome"] == "vetoed"
    assert any("command spotter" in d and "freeze" in d for d in tr.extra["dropped"])


@needs_espeak
def test_missing_spotter_weights_leave_the_grammar_check_and_say_so(tmp_path):
    from tools.settings import OslerSettings
    from voice.asr_whisper import WhisperRecognizer, check
    from voice.audio import ASR_RATE, Audio
    from voice.config import voice_settings
    from voice.live_commands import LIVE_SET, hear_spoken, is_live_command

    s = OslerSettings()
    if check(s):
        pytest.skip(check(s))
    vs = voice_settings(s, whisper_threads=1, spotter_path=tmp_path / "none.pt")
    rec = WhisperRecognizer(s, vs, is_command=lambda t: is_live_command(t, vs.wake_word), grammar=LIVE_SET,
                            parse=lambda t: hear_spoken(t, vs.wake_word)[1])
    tr = rec.transcribe(Audio(_speech("Osler, is there a polyp?", "en-us"), ASR_RATE, "t"))
    assert hear_spoken(tr.text)[1].intent == "detect_polyp"
    assert "no command spotter weights" in tr.extra["spotter"]["error"] and rec._spotter is None


def test_a_damaged_weights_file_is_a_clear_error(tmp_path):
    bad = Path(tmp_path) / "spotter.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):
        CommandSpotter(bad).load()


def test_every_meaning_the_spotter_can_name_is_written_as_a_transcript_that_parses_back():
    from voice.activation import gate
    from voice.grammar_sentences import grammar_sentences, meaning_str, spoken_form
    from voice.commands import COMMANDS, parse_command
    from voice.live_commands import LIVE_SET, hear_spoken

    for specs, parse in ((LIVE_SET, lambda t: hear_spoken(t)[1]),
                         (COMMANDS, lambda t: parse_command(gate(t, "ptt").text, COMMANDS))):
        for m in {meaning_str(m) for _s, m in grammar_sentences(specs)}:
            for wake in ("osler", None):
                said = spoken_form(m, specs, wake)
                cmd = parse(said)
                assert cmd is not None, said
                assert meaning_str((cmd.intent, tuple(sorted(cmd.slots.items())))) == m, (said, m)
    # without the wake word, the wake-word mode ignores what the spotter heard
    assert not gate(spoken_form("freeze", LIVE_SET, None), "wake").woke
    assert gate(spoken_form("freeze", LIVE_SET, "osler"), "wake").woke


@needs_espeak
def test_the_crowd_noise_is_other_talkers_mixed_at_the_asked_snr(tmp_path):
    """The held-out babble of the grammar benchmark (voice.bench_data 'crowd'): made on first use by the numpy
    mixer, unit RMS, not the benchmark's own babble, and at the asked SNR over the active speech."""
    from voice.audio import ASR_RATE, speech_bounds
    from voice.bench_data import Mixer

    mixer = Mixer(tmp_path, prefer_speechbrain=False, noise_seconds=8.0)
    x = _speech("Osler, how many polyps are visible?", "en-us+Zac")
    y = mixer.mix(x, "crowd", 10.0, seed=3)
    crowd, babble = mixer.noise["crowd"], mixer.noise["babble"]
    assert len(crowd) == len(babble) == 8 * ASR_RATE and abs(float(np.std(crowd)) - 1.0) < 0.01
    assert abs(float(np.corrcoef(crowd, babble)[0, 1])) < 0.1
    a, b = speech_bounds(x, ASR_RATE)
    snr = 10 * np.log10(np.mean(x[a:b].astype(np.float64) ** 2) / np.mean((y - x)[a:b].astype(np.float64) ** 2))
    assert abs(snr - 10.0) < 1.5, snr


def test_the_repeat_benchmark_takes_a_command_only_when_both_takes_name_it():
    """voice.bench_repeat's scoring: a command the recogniser took on either take counts as it is; when both takes
    were rejected, the spotter's shared best class is taken at the level (mean of the two probabilities), never a
    class it may not propose, and a non-command said twice that agrees is counted as executed."""
    from voice.bench_repeat import score

    def take(final: str, meaning: str, prob: float, is_command: bool = True, expected: str | None = "freeze",
             voice: str = "v") -> dict:
        return dict(final_text=final, spotter=dict(meaning=meaning, prob=prob), is_command=is_command,
                    expected=expected, voice=voice)

    rows = [(take("", "freeze", 0.5), take("", "freeze", 0.45)),          # both rejected, agree at mean 0.475
            (take("", "freeze", 0.9), take("", "measure", 0.9)),          # disagree: nothing
            (take("", "cancel", 0.9), take("", "cancel", 0.9, expected="cancel")),  # not proposable: nothing
            (take("", OTHER, 0.9), take("Osler, freeze.", "freeze", 0.9)),          # the repeat itself is taken
            (take("", "freeze", 0.6, False, None), take("", "freeze", 0.6, False, None))]  # a non-command twice
    shipped, low, high = score(rows, None), score(rows, 0.45), score(rows, 0.5)
    assert (shipped["two_right"], shipped["executed"]) == (1, 0)
    assert (low["two_right"], low["by_agreement"], low["mistaken"], low["executed"]) == (2, 1, 0, 1)
    assert (high["two_right"], high["executed"]) == (1, 1)
