"""Grammar scoring with Whisper's own decoder (voice.asr_grammar): the model file reader, the trie scorer
against one-by-one scoring, the decision rules, and the recogniser on real espeak-ng speech.  Skipped with a
reason when espeak-ng or the bundled Whisper is missing."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from voice.asr_grammar import AMBIGUOUS, Candidate, candidates, decide
from voice.grammar_sentences import grammar_sentences
from voice.whisper_decoder import read_ct2_model
from voice.live_commands import LIVE_SET, hear_spoken, parse_live

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (Debian: apt-get install espeak-ng)")


def _speech(tmp_path: Path, text: str, voice: str = "en-us", wpm: int = 150) -> np.ndarray:
    import soundfile as sf

    from voice.audio import ASR_RATE
    from voice.bench_data import resample

    p = tmp_path / "said.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(p), text], check=True, timeout=30)
    x, rate = sf.read(str(p), dtype="float32")
    x = resample(x, rate, ASR_RATE)
    pad = np.zeros(int(0.3 * ASR_RATE), np.float32)
    return np.concatenate([pad, x, pad]).astype(np.float32)


@pytest.fixture
def recognizer(live_recognizer):
    return live_recognizer


def _model_bin() -> Path:
    from tools.settings import OslerSettings
    from voice.asr_whisper import check, model_dir

    s = OslerSettings()
    if check(s):
        pytest.skip(f"Whisper cannot run here: {check(s)}")
    return model_dir(s) / "model.bin"


def test_reads_the_whisper_model_file_and_refuses_another_format(tmp_path):
    w = read_ct2_model(_model_bin())
    emb = w["decoder/embeddings/weight"]
    assert emb.ndim == 2 and emb.shape[0] > 50000 and emb.dtype == np.float16
    assert w["decoder/projection/weight"] is emb  # an alias in the file
    assert int(w["decoder/num_heads"]) * 64 == emb.shape[1]
    bad = tmp_path / "model.bin"
    bad.write_bytes(struct.pack("<I", 5) + b"\0" * 16)
    with pytest.raises(ValueError, match="format 5"):
        read_ct2_model(bad)


def test_every_grammar_sentence_is_a_whole_command_with_its_meaning():
    sents = grammar_sentences(LIVE_SET)
    assert len(sents) > 300
    for s, (intent, slots) in sents:
        cmd = parse_live(s)
        assert cmd is not None and cmd.intent == intent and tuple(sorted(cmd.slots.items())) == slots, s
    assert {m[0] for _s, m in sents} == {spec.intent for spec in LIVE_SET}


def test_natural_phrasings_do_not_replace_the_commands_representatives():
    """A phrasing added in CommandSpec.more ("measure it", shorter than "how big is it") is scored only when Whisper
    heard something near it; the two phrasings that stand for each command in the check stay those of its first
    rule (when they changed, a babble clip's runner-up fell and a wrong "no" passed the margin)."""
    from voice.grammar_sentences import spoken_form

    primary = {s for s, _m in grammar_sentences(LIVE_SET, primary=True)}
    added = {s for s, _m in grammar_sentences(LIVE_SET)} - primary
    assert {"measure it", "what am i looking at", "do you see a polyp", "has anything changed"} <= added
    texts = {c.text for c in candidates(LIVE_SET, [], "osler")}
    assert "Osler, how big is it?" in texts and "Measure it." not in texts and "Osler, measure it." not in texts
    assert not any(t.rstrip("?.").lower().removeprefix("osler, ") in added for t in texts)
    texts = {c.text for c in candidates(LIVE_SET, ["Osler, measure it."], "osler")}
    assert "Osler, measure it." in texts  # near what was heard: scored
    assert spoken_form("measure", LIVE_SET, "osler") == "Osler, how big is it?"


def test_candidates_hold_every_meaning_and_the_sentences_near_what_was_heard():
    cands = candidates(LIVE_SET, ["Osler, compared to the frame from ten seconds ago."], "osler")
    meanings = {c.meaning for c in cands}
    assert meanings - {m for _s, m in grammar_sentences(LIVE_SET)} == {(AMBIGUOUS, (("may_be", "unfreeze"),))}
    assert {m for _s, m in grammar_sentences(LIVE_SET)} <= meanings
    texts = {c.text for c in cands}
    assert "Osler, compared to the frame from ten seconds ago." in texts  # the near phrasing, with the wake word
    assert "Compared to the frame from ten seconds ago." in texts  # and without
    assert "Osler, how many polyps?" in texts


def test_decision_needs_a_margin_over_other_commands_and_a_small_gap_to_the_free_text():
    a, b = ("freeze", ()), ("unfreeze", ())
    cands = [Candidate("Osler, freeze.", a), Candidate("Freeze.", a), Candidate("Osler, unfreeze.", b)]
    took = decide(cands, [-3.0, -6.0, -8.0], [-2.5], margin=2.0, gap=4.0)
    assert took.meaning == a and took.text == "Osler, freeze." and took.margin == pytest.approx(5.0)
    assert took.gap == pytest.approx(0.5)
    close = decide(cands, [-3.0, -6.0, -4.0], [-2.5], margin=2.0, gap=4.0)
    assert close.meaning is None and "equally" in close.why and close.runner_up == b
    far = decide(cands, [-13.0, -16.0, -18.0], [-2.5], margin=2.0, gap=4.0)
    assert far.meaning is None and "no command" in far.why and far.gap == pytest.approx(10.5)
    decoy = Candidate("Osler, and freeze.", (AMBIGUOUS, (("may_be", "unfreeze"),)))
    heard_and = decide(cands + [decoy], [-3.0, -6.0, -8.0, -2.0], [-2.5], margin=2.0, gap=4.0)
    assert heard_and.meaning is None and "may be unfreeze" in heard_and.why


@needs_espeak
def test_trie_scores_equal_one_by_one_scores_and_the_spoken_command_wins(tmp_path, recognizer):
    x = _speech(tmp_path, "Osler, how many polyps are visible?")
    _hyps, ctx = recognizer._decode(x)
    enc, prompt, tok = ctx.enc, ctx.plain, ctx.tok
    texts = ["Osler, how many polyps are visible?", "Osler, how many platelets are visible?",
             "Osler, how many polyps?", "Osler, freeze.", "Osler, is there a polyp?", "How many polyps are visible?"]
    seqs = [tok.encode(" " + t) + [tok.eot] for t in texts]
    together = recognizer._scorer.score(enc, prompt, seqs)
    # the same sequences in another order build another trie (other batches, other row indices)
    order = [5, 3, 1, 0, 4, 2]
    shuffled = recognizer._scorer.score(enc, prompt, [seqs[i] for i in order])
    assert np.allclose(together[order], shuffled, atol=1e-3)
    assert int(np.argmax(together)) == 0
    assert together[0] - together[1] > 2.0  # "polyps", not "platelets"


@needs_espeak
def test_scores_match_a_plain_forward_pass(tmp_path, recognizer):
    """The trie's cached, shared-key attention gives the same log-probabilities as one full forward pass."""
    import torch

    x = _speech(tmp_path, "Osler, freeze the frame.")
    _hyps, ctx = recognizer._decode(x)
    enc, prompt, tok = ctx.enc, ctx.plain, ctx.tok
    seqs = [tok.encode(" Osler, freeze the frame.") + [tok.eot], tok.encode(" Osler, unfreeze.") + [tok.eot]]
    sc = recognizer._scorer
    got = sc.score(enc, prompt, seqs)
    vocab_ids = sorted({t for s in seqs for t in s})
    col = {t: j for j, t in enumerate(vocab_ids)}
    with torch.inference_mode():
        cross = sc._cross(enc)
        for k, seq in enumerate(seqs):
            lp, _ = sc._forward(torch.tensor([list(prompt) + seq[:-1]]), 0, None, cross, torch.tensor(vocab_ids))
            rows = lp[0, len(prompt) - 1:]
            want = sum(float(rows[i, col[t]]) for i, t in enumerate(seq))
            assert got[k] == pytest.approx(want, abs=1e-3)


@needs_espeak
def test_a_clear_command_is_confirmed_and_speech_that_is_no_command_is_not_forced_onto_one(tmp_path, recognizer):
    from voice.audio import ASR_RATE, Audio

    tr = recognizer.transcribe(Audio(_speech(tmp_path, "Osler, how many platelets are visible?"), ASR_RATE, "t"))
    g = tr.extra["grammar"]
    assert hear_spoken(tr.text)[1].slots == {"count_target": "platelets"}
    assert g["meaning"] == "count(count_target=platelets)" and g["outcome"] == "free transcript confirmed"
    for said in ("Osler, suction please.", "Osler, pass me the grasper."):
        tr = recognizer.transcribe(Audio(_speech(tmp_path, said), ASR_RATE, "t"))
        assert hear_spoken(tr.text)[1] is None, (said, tr.text, tr.extra.get("grammar"))
        assert tr.extra["grammar"]["outcome"].startswith("no command")


@needs_espeak
def test_free_text_and_grammar_that_disagree_are_rejected(tmp_path, recognizer, monkeypatch):
    """A scorer (test double) that prefers another command than the one Whisper wrote: nothing is done."""
    from voice.audio import ASR_RATE, Audio

    x = _speech(tmp_path, "Osler, how big is it?")

    def prefer_freeze(enc, prompt, seqs):
        tok = recognizer._decode(x)[1].tok
        freeze = set(map(tuple, [tok.encode(" Osler, freeze.") + [tok.eot], tok.encode(" Freeze.") + [tok.eot]]))
        return np.array([0.0 if tuple(s) in freeze else -20.0 for s in seqs])

    monkeypatch.setattr(recognizer._scorer, "score", prefer_freeze)
    monkeypatch.setattr(recognizer, "_spotter", None)  # the grammar check alone (the spotter: test_voice_spotter)
    tr = recognizer.transcribe(Audio(x, ASR_RATE, "t"))
    assert tr.text == "" and hear_spoken(tr.text)[1] is None
    assert tr.extra["heard"].lower().startswith("osler") and "how big" in tr.extra["heard"].lower()
    assert any("grammar check" in d for d in tr.extra["dropped"])


@needs_espeak
def test_grammar_scoring_can_be_switched_off(tmp_path):
    from tools.settings import OslerSettings
    from voice.asr_whisper import WhisperRecognizer, check
    from voice.audio import ASR_RATE, Audio
    from voice.config import voice_settings

    s = OslerSettings()
    if check(s):
        pytest.skip(check(s))
    rec = WhisperRecognizer(s, voice_settings(s, whisper_grammar=False, whisper_threads=1))
    tr = rec.transcribe(Audio(_speech(tmp_path, "Osler, is there a polyp?"), ASR_RATE, "t"))
    assert "grammar" not in tr.extra and rec._scorer is None
    assert hear_spoken(tr.text)[1].intent == "detect_polyp"


def _row(expected, free_text, meaning, margin, gap, free_command=None):
    return dict(set="dev", is_command=expected is not None, expected=expected, noise="clean", snr_db=None, ms=1.0,
                free_text=free_text, grammar=dict(meaning=meaning, margin=margin, gap=gap, free_command=free_command))


def test_benchmark_policies_and_threshold_tuning_on_development_rows():
    from voice.bench_grammar_policy import policy, tune, verdict
    from voice.bench_grammar_sets import FINAL_VOICES, TEST_VOICES
    from voice.bench_unseen import _used_voices

    rescued = _row("freeze", "Osler 3.", "freeze", 6.0, 2.0)
    confirmed = _row("measure", "Osler, how big is it?", "measure", 8.0, 0.0, free_command="measure")
    disputed = _row("measure", "Osler, how big is it?", "freeze", 1.0, 0.0, free_command="measure")
    chatter = _row(None, "Osler, suction please.", "yes", 3.0, 9.0)
    assert policy(rescued, "free", 2, 4) is None and policy(rescued, "grammar", 2, 4) == "freeze"
    assert policy(confirmed, "grammar", 2, 4) == "measure" and policy(disputed, "grammar", 2, 4) is None
    assert policy(chatter, "grammar", 2, 4) is None and verdict(chatter, policy(chatter, "grammar", 2, 10)) == "wrong"
    t = tune([rescued, confirmed, disputed, chatter])
    assert t["dev_wrong"] == 0 and t["dev_right"] == 2 and t["gap"] < 9.0 and t["margin"] <= 6.0
    assert not set(TEST_VOICES) & _used_voices() and not set(FINAL_VOICES) & (_used_voices() | set(TEST_VOICES))


@needs_espeak
def test_a_failing_grammar_check_leaves_the_free_transcript_and_says_so(tmp_path, recognizer, monkeypatch):
    from voice.audio import ASR_RATE, Audio

    def broken(enc, prompt, seqs):
        raise ValueError("weights this reader does not know")

    monkeypatch.setattr(recognizer._scorer, "score", broken)
    tr = recognizer.transcribe(Audio(_speech(tmp_path, "Osler, is there a polyp?"), ASR_RATE, "t"))
    assert hear_spoken(tr.text)[1].intent == "detect_polyp"
    assert "weights this reader" in tr.extra["grammar"]["error"]
    assert any("grammar check unavailable" in d for d in tr.extra["dropped"])
