"""The rest-of-utterance check (voice.tail): its CTC arithmetic against brute force, its word targets, its rule in
the benchmark policy and tuning, the shipped net on real espeak-ng speech of held-out voices, and the recogniser's
use of it (kept, vetoed, missing weights).  Skipped with a reason when espeak-ng, the bundled Whisper or the
weights are missing."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

from voice.second_opinion import tail_settle
from voice.tail import UNK, TailChecker, ctc_exact_prefix, default_path, targets, vocabulary

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (Debian: apt-get install espeak-ng)")
needs_weights = pytest.mark.skipif(not default_path().is_file(), reason=f"no rest-of-utterance weights at {default_path()}")


def _collapse(path):
    out, prev = [], None
    for k in path:
        if k != prev and k != 0:
            out.append(k)
        prev = k
    return tuple(out)


def test_exact_and_prefix_probabilities_equal_the_sum_over_every_path():
    rng = np.random.default_rng(3)
    V, T = 4, 6
    lp = np.log(rng.dirichlet(np.ones(V), size=T))
    forms = [(1,), (1, 2), (2, 2), (1, 2, 1), (3, 1, 3)]
    exact, prefix = ctc_exact_prefix(lp, forms)
    for i, f in enumerate(forms):
        e = p = 0.0
        for path in itertools.product(range(V), repeat=T):
            c = _collapse(path)
            w = float(np.exp(sum(lp[t, k] for t, k in enumerate(path))))
            e += w * (c == f)
            p += w * (c[:len(f)] == f)
        assert exact[i] == pytest.approx(np.log(e), abs=1e-9)
        assert prefix[i] == pytest.approx(np.log(p), abs=1e-9)
        assert prefix[i] >= exact[i]


def test_targets_keep_grammar_words_and_make_one_unk_of_each_stretch_of_other_words():
    v = vocabulary()
    got = [v[k] for k in targets("Osler, how many platelets are in the cold fridge?")]
    assert got == ["osler", "how", "many", "platelets", "are", "in", "the", UNK]
    assert [v[k] for k in targets("How many WBCs are visible?")] == ["how", "many", "white", "cells", "are", "visible"]
    assert v[0] == "<blank>" and v[-1] == UNK and "osler" in v and "please" in v


def test_the_tail_rule_and_its_place_in_the_benchmark_policy():
    from voice.bench_grammar_policy import policy, tune_tail

    assert tail_settle(5.0, 4.0) == "vetoed" and tail_settle(3.9, 4.0) == "kept"

    def row(expected, rest):
        return dict(set="dev", voice="v1", is_command=expected is not None, expected=expected, noise="pink",
                    snr_db=10.0, ms=1.0, free_text="Osler, how many platelets are visible?",
                    grammar=dict(meaning="count(count_target=platelets)", margin=9.0, gap=0.0),
                    _spot=("count(count_target=platelets)", 0.99),
                    _tail=None if rest is None else {"count(count_target=platelets)": rest})

    t = dict(margin=7.0, gap=8.0, token_bonus=0.0, confirm_margin=4.0)
    s = dict(spotter_take=0.7, spotter_veto=0.1, spotter_alone=0.7)
    args = (t["margin"], t["gap"], 0.0, t["confirm_margin"], False, 0.7, 0.1, 0.7)
    right, lookalike, unscored = row("count(count_target=platelets)", 0.4), row(None, 9.0), row(None, None)
    assert policy(lookalike, "spotter", *args) == "count(count_target=platelets)"
    assert policy(lookalike, "tail", *args, 4.0) is None
    assert policy(right, "tail", *args, 4.0) == "count(count_target=platelets)"
    assert policy(unscored, "tail", *args, 4.0) == "count(count_target=platelets)"  # no rest stored: kept
    # tuning: the lowest level that costs at most 1 % of the right dev commands
    rights = [row("count(count_target=platelets)", r) for r in np.linspace(0.0, 3.0, 99)] + [
        row("count(count_target=platelets)", 7.6)]
    v = tune_tail(rights + [lookalike], t, s)
    assert v["dev_right_before"] == 100 and v["dev_right_lost"] <= 1 and v["tail_veto"] == 3.25
    assert v["dev_wrong_caught"] == 1
    # the report counts what the check never saw, so an unchecked row cannot pass for "the check changed nothing"
    from voice.bench_grammar_policy import render, table

    cells = {c["policy"]: c for c in table([right, lookalike, unscored], *args, 4.0) if c["clips"] == "non-command"}
    assert cells["tail"]["n"] == 2 and cells["tail"]["wrong"] == 1 and cells["tail"]["unchecked"] == 1
    assert cells["spotter"]["wrong"] == 2 and "unchecked" not in cells["spotter"]
    assert "Not checked (no stored rest): dev non-command pink 10.0: 1 of 2" in render(list(cells.values()))


def test_a_damaged_or_foreign_weights_file_is_a_clear_error(tmp_path):
    import torch

    bad = Path(tmp_path) / "tail.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(Exception):
        TailChecker(bad).load()
    other = Path(tmp_path) / "other.pt"
    torch.save(dict(vocab=["<blank>", "hello", "<unk>"], state_dict={}, config={}), other)
    with pytest.raises(ValueError, match="another command vocabulary"):
        TailChecker(other).load()
