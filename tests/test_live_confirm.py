"""Confirmation on doubt in live mode: an utterance the recogniser rejects, but whose command spotter names a
command with some confidence, is proposed back ("Did you mean: how many polyps? Say yes or no."); nothing runs
until "yes", which answers on the frame of the first utterance.  Real engine, real EndoTect frame, real count
tool; the recogniser is a test double that returns what Whisper + the spotter would have returned."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from voice.transcript import Transcript
from voice.second_opinion import NOT_PROPOSED, may_propose
from voice.live_demo import POLYP_FRAME
from voice.live_script import hear_live
from voice.live_video import SORRY, LiveEngine, LiveOptions, Snapshot
from voice.video import Frame

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FRAME = DATA / "endotect_polyps" / "images" / f"{POLYP_FRAME}.jpg"
pytestmark = pytest.mark.skipif(not FRAME.exists(), reason="EndoTect frames not found under ../shared/data")


class HeardAs:
    """Test double of the recogniser: each call returns the next scripted (text, spotter opinion, tail)."""

    def __init__(self, *heard: tuple[str, dict | None, dict | None]) -> None:
        self.heard = list(heard)

    def transcribe(self, audio):
        text, spotter, tail = self.heard.pop(0)
        extra = {k: v for k, v in (("spotter", spotter), ("tail", tail)) if v is not None}
        return Transcript(text=text, backend="test-double", model="scripted", elapsed_ms=1.0, audio_s=1.0,
                          extra=extra)


def _snap(index: int, rgb: np.ndarray) -> Snapshot:
    return Snapshot(Frame(index, index / 10.0, time.monotonic(), rgb), [], False)


@pytest.fixture
def engine(settings, assistant, tmp_path):
    import cv2

    rgb = np.ascontiguousarray(cv2.imread(str(FRAME))[..., ::-1])
    eng = LiveEngine(settings, reader=None, assistant=assistant, out_dir=tmp_path / "live",
                     options=LiveOptions(confirm_timeout_s=30.0))
    return eng, rgb


def test_the_rule_never_proposes_a_reply_or_no_command():
    assert may_propose("count(count_target=polyps)", 0.5, 0.35)
    assert not may_propose("count(count_target=polyps)", 0.3, 0.35)
    assert not any(may_propose(m, 0.99, 0.35) for m in NOT_PROPOSED) and not may_propose(None, 0.99, 0.35)


def test_a_doubtful_count_is_proposed_and_yes_answers_it_on_the_first_frame(engine):
    eng, rgb = engine
    doubt = {"meaning": "count(count_target=polyps)", "prob": 0.52, "outcome": "none"}
    rec = HeardAs(("", doubt, None), ("Yes.", {"meaning": "yes", "prob": 0.97}, None))
    first = hear_live(eng, _snap(12, rgb), None, rec, speak=False, ask_level=0.35)
    assert first["reply"] == "confirm" and first["spoken_text"] == "Did you mean: how many polyps? Say yes or no."
    assert first["live"]["proposal"]["asked_frame_index"] == 12 and "value" not in first  # nothing ran
    second = hear_live(eng, _snap(30, rgb), None, rec, speak=False, ask_level=0.35)
    assert second["reply"] == "answer" and second["live"]["intent"] == "count"
    assert second["frame_index"] == 12  # the frame of the question, not of the "yes"
    assert second["live"]["confirmed"]["reply_frame_index"] == 30
    assert second["live"]["confirmed"]["proposed"] == "How many polyps?"
    assert any(c["name"] == "count" for c in second["tool_calls"]) and second["value"] == 1  # one polyp in view


def test_no_declines_and_other_speech_keeps_waiting(engine):
    eng, rgb = engine
    doubt = {"meaning": "freeze", "prob": 0.6}
    rec = HeardAs(("", doubt, None), ("", {"meaning": "other", "prob": 0.9}, None), ("No.", None, None),
                  ("Yes.", None, None))
    assert hear_live(eng, _snap(5, rgb), None, rec, speak=False, ask_level=0.35)["reply"] == "confirm"
    waiting = hear_live(eng, _snap(6, rgb), None, rec, speak=False, ask_level=0.35)
    assert waiting["spoken_text"] == "Say yes or no." and waiting["reply"] == "rejected"
    declined = hear_live(eng, _snap(7, rgb), None, rec, speak=False, ask_level=0.35)
    assert declined["spoken_text"] == "Cancelled." and eng.frozen is None  # the freeze never happened
    late_yes = hear_live(eng, _snap(8, rgb), None, rec, speak=False, ask_level=0.35)
    assert late_yes["spoken_text"] == "There is nothing to confirm." and eng.frozen is None


@pytest.mark.parametrize("spotter, tail, level", [
    ({"meaning": "count(count_target=polyps)", "prob": 0.2}, None, 0.35),  # below the level
    ({"meaning": "other", "prob": 0.9}, None, 0.35),  # no command
    ({"meaning": "yes", "prob": 0.9}, None, 0.35),  # a reply with nothing pending
    ({"meaning": "count(count_target=polyps)", "prob": 0.6}, {"outcome": "vetoed"}, 0.35),  # speaker went on
    ({"meaning": "count(count_target=polyps)", "prob": 0.6}, None, None),  # proposals off
    (None, None, 0.35),  # no spotter opinion (weights missing)
])
def test_what_is_not_proposed_is_rejected_as_before(engine, spotter, tail, level):
    eng, rgb = engine
    out = hear_live(eng, _snap(3, rgb), None, HeardAs(("", spotter, tail)), speak=False, ask_level=level)
    assert out["reply"] == "rejected" and out["spoken_text"] == SORRY


def test_a_proposal_expires(settings, assistant, tmp_path):
    import cv2

    rgb = np.ascontiguousarray(cv2.imread(str(FRAME))[..., ::-1])
    eng = LiveEngine(settings, reader=None, assistant=assistant, out_dir=tmp_path / "live",
                     options=LiveOptions(confirm_timeout_s=0.0))
    rec = HeardAs(("", {"meaning": "freeze", "prob": 0.6}, None), ("Yes.", None, None))
    assert hear_live(eng, _snap(1, rgb), None, rec, speak=False, ask_level=0.35)["reply"] == "confirm"
    time.sleep(0.01)
    assert hear_live(eng, _snap(2, rgb), None, rec, speak=False, ask_level=0.35)["spoken_text"] == \
        "There is nothing to confirm."
    assert eng.frozen is None


def test_while_a_proposal_waits_a_doubtful_yes_is_read_by_the_reply_level(engine):
    eng, rgb = engine
    doubt = {"meaning": "freeze", "prob": 0.6}
    faint_yes = {"meaning": "other", "prob": 0.5, "yes": 0.4, "no": 0.05}
    rec = HeardAs(("", doubt, None), ("", faint_yes, None), ("", doubt, None), ("", faint_yes, None))
    assert hear_live(eng, _snap(4, rgb), None, rec, speak=False, ask_level=0.35)["reply"] == "confirm"
    # without a reply level the recogniser's rejection stands: ask again
    again = hear_live(eng, _snap(5, rgb), None, rec, speak=False, ask_level=0.35)
    assert again["spoken_text"] == "Say yes or no." and eng.frozen is None
    assert hear_live(eng, _snap(6, rgb), None, rec, speak=False, ask_level=0.35)["reply"] == "confirm"
    done = hear_live(eng, _snap(7, rgb), None, rec, speak=False, ask_level=0.35, reply_level=0.3)
    assert done["reply"] == "freeze" and eng.frozen is not None and eng.frozen.frame.index == 6
    assert "taken as 'yes' while the proposal waits" in " ".join(done["live"]["asr"]["notes"])
    # with nothing waiting, the same faint yes is no command
    idle = hear_live(eng, _snap(8, rgb), None, HeardAs(("", faint_yes, None)), speak=False, reply_level=0.3)
    assert idle["reply"] == "rejected" and idle["spoken_text"] == SORRY


# ---- the benchmark's view of the same rules (voice.bench_grammar tune-ask / tune-reply / ask-report) ------------
def _row(expected, spot, replies=None, is_command=None):
    """A stored clip the shipped spotter policy rejects (the grammar backs nothing; the spotter alone is unsure)."""
    return dict(set="dev", voice="v1", is_command=expected is not None if is_command is None else is_command,
                expected=expected, noise="babble", snr_db=10.0, ms=1.0, free_text="Something else entirely.",
                grammar=dict(meaning=None, margin=0.0, gap=0.0), _spot=spot, _replies=replies)


ARGS = (7.0, 8.0, 0.0, 4.0, False, 0.7, 0.1, 0.7)
T = dict(margin=7.0, gap=8.0, token_bonus=0.0, confirm_margin=4.0)
S = dict(spotter_take=0.7, spotter_veto=0.1, spotter_alone=0.7)


def test_proposals_and_their_tuning_on_stored_clips():
    from voice.bench_grammar_ask import ask_table, proposal, tune_ask

    polyps = "count(count_target=polyps)"
    cmd = _row(polyps, (polyps, 0.5))
    assert proposal(cmd, ARGS, 0.35) == polyps and proposal(cmd, ARGS, 0.55) is None
    assert proposal(_row(polyps, ("other", 0.9)), ARGS, 0.2) is None
    taken = _row(polyps, (polyps, 0.9))  # the spotter alone takes it: executed, nothing to propose
    assert policy_of(taken) == polyps and proposal(taken, ARGS, 0.2) is None
    # non-commands at 0.22 .. 0.60: the lowest level asking at most 5 % of them
    nons = [_row(None, ("freeze", p)) for p in np.linspace(0.22, 0.6, 20)] + [_row(None, ("other", 0.9))] * 80
    v = tune_ask(nons + [cmd, _row(polyps, (polyps, 0.58))], T, S)  # 0.56, 0.58, 0.60 asked; 0.50 would ask 6
    assert v["dev_non_commands_asked"] == 3 and v["ask_level"] == 0.55 and v["dev_commands_asked"] == 1
    rows = ask_table([cmd, _row(polyps, ("freeze", 0.5)), nons[-1]], ARGS, 0.35, {("babble", 10.0): 0.5})
    c = next(r for r in rows if r["clips"] == "command")
    assert (c["asked"], c["asked_right"], c["asked_wrong"], c["right"]) == (2, 1, 1, 0)
    assert c["right_after_yes_pct"] == 25.0  # (0 + 1 x 0.5) of 2


def policy_of(r):
    from voice.bench_grammar_policy import policy

    return policy(r, "spotter", *ARGS)


def test_the_reply_level_and_its_tuning_on_stored_clips():
    from voice.bench_grammar_ask import reply, tune_reply

    yes = _row("yes", ("yes", 0.3), (0.3, 0.01))
    no = _row("no", ("no", 0.2), (0.02, 0.2))
    assert reply(yes, ARGS, None) is None and reply(yes, ARGS, 0.25) == "yes" and reply(no, ARGS, 0.15) == "no"
    assert reply(yes, ARGS, 0.35) is None
    # a faint "no" that leans to yes decides the level: 0.15 would take it as yes, so the level is above it
    faint = _row("no", ("yes", 0.16), (0.16, 0.1))
    others = [_row(None, ("other", 0.9), (0.01, 0.01))] * 50
    v = tune_reply(others, [yes, no, faint], T, S)
    assert v["reply_level"] == 0.2 and v["dev_replies_crossed"] == 0 and v["dev_replies_heard"] == 2
