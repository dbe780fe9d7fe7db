"""The scenario runner, reports and CLI on real images: a crashing case does not stop the run, the
CI subset runs end to end, the schema file is in sync with the model, the public suite is valid."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from eval_scenarios.runner import load_scenarios, resolve_image, run_case, run_suite, select_cases
from eval_scenarios.schema import json_schema

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO / "eval_scenarios"


def _write(tmp_path: Path, cases: list[dict]) -> Path:
    f = tmp_path / "cases.yaml"
    f.write_text(yaml.safe_dump(cases), encoding="utf-8")
    return f


SMEAR = "data:bccd/images/BloodImage_00001.jpg"  # VOC: 1 WBC


def test_schema_file_in_sync_with_model():
    on_disk = json.loads((EVAL / "scenario.schema.json").read_text())
    assert on_disk == json_schema(), "regenerate: python -m eval_scenarios.schema > eval_scenarios/scenario.schema.json"


def test_schema_rejects_bad_cases(tmp_path):
    from tools.errors import InvalidInputError

    bad = _write(tmp_path, [{"id": "x", "images": {"current": SMEAR}}])  # no question
    with pytest.raises(InvalidInputError, match="cases.yaml"):
        load_scenarios([bad])
    dup = _write(tmp_path, [{"id": "x", "images": {"current": SMEAR}, "question": "q"}] * 2)
    with pytest.raises(InvalidInputError, match="appears in"):
        load_scenarios([dup])
    typo = _write(tmp_path, [{"id": "x", "images": {"current": SMEAR}, "question": "q", "expect": {"answr": 1}}])
    with pytest.raises(InvalidInputError):
        load_scenarios([typo])


def test_resolve_image(tmp_path, data_dir):
    assert resolve_image("data:bccd/images/a.jpg", tmp_path, data_dir) == data_dir / "bccd/images/a.jpg"
    assert resolve_image("img/a.png", tmp_path, data_dir) == tmp_path / "img/a.png"


class _CrashingAssistant:
    """The real assistant, except that one question raises as a planner bug would."""

    def __init__(self, inner):
        self.inner = inner

    def new_session(self):
        return self.inner.new_session()

    def ask(self, session, question):
        if "explode" in question:
            raise RuntimeError("planner bug")
        return self.inner.ask(session, question)


def test_crashing_case_does_not_stop_the_run(tmp_path, assistant, data_dir):
    f = _write(tmp_path, [
        {"id": "missing-image", "images": {"current": "nope.png"}, "question": "How many white blood cells?",
         "expect": {"answer": {"kind": "count", "value": 1}}},
        {"id": "crash", "images": {"current": SMEAR}, "question": "explode please", "expect": {"abstain": True}},
        {"id": "ok", "images": {"current": SMEAR}, "question": "How many white blood cells are in this smear?",
         "expect": {"answer": {"kind": "count", "value": 1}, "tools": ["count"], "forbidden_tools": ["classify"]},
         "tags": ["wbc"]},
    ])
    records = run_suite(_CrashingAssistant(assistant), load_scenarios([f]), data_dir, progress=False)
    assert [r.id for r in records] == ["missing-image", "crash", "ok"]
    assert records[0].error and "InvalidInputError" in records[0].error and not records[0].passed
    assert records[1].turns[0].error == "RuntimeError: planner bug" and not records[1].passed
    assert records[1].turns[0].verdict.abstention_correct is False
    ok = records[2]
    assert ok.error is None and ok.turns[0].result["tool_calls"], ok
    assert ok.turns[0].verdict.tool_recall == 1.0 and ok.turns[0].verdict.grounded is True


def test_multi_turn_memory(tmp_path, assistant, data_dir):
    turns = [{"question": "How many white blood cells are in this smear?"},
             {"question": "How big is the largest one?", "expect": {"tools": ["measure"]}}]
    f = _write(tmp_path, [{"id": "kept", "images": {"current": SMEAR}, "turns": turns},
                          {"id": "fresh", "images": {"current": SMEAR}, "turns": turns, "memory": "per_question"}])
    kept, fresh = (run_case(assistant, c, data_dir) for c in load_scenarios([f]))
    assert len(kept.turns) == 2 and kept.turns[1].verdict.tool_recall == 1.0, kept.turns[1].result["answer"]
    # without the conversation the follow-up has nothing to refer to
    assert fresh.turns[1].verdict.tool_recall == 0.0, fresh.turns[1].result["answer"]


def test_public_suite_is_valid(data_dir):
    cases = load_scenarios([EVAL / "public"])
    assert len(cases) >= 150
    tags = {t for c in cases for t in c.case.tags}
    assert {"wbc", "platelets", "rbc", "polyp", "cxr", "prior", "modality", "unanswerable", "wrong_modality",
            "probe", "multiturn"} <= tags
    ids = {c.case.id for c in cases}
    for c in cases:
        assert c.case.pair_of is None or c.case.pair_of in ids
        for ref in filter(None, (c.case.images.current, c.case.images.prior)):
            assert resolve_image(ref, c.file.parent, data_dir).exists(), (c.case.id, ref)
    assert select_cases(cases, ["wbc"], limit=3) == [c for c in cases if "wbc" in c.case.tags][:3]


def test_ci_subset_end_to_end(tmp_path, data_dir):
    from eval_scenarios.cli import main

    t0 = time.perf_counter()
    rc = main([str(EVAL / "ci"), "--out", str(tmp_path / "out"), "--quiet", "--data-root", str(data_dir)])
    elapsed = time.perf_counter() - t0
    assert rc == 0
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert (tmp_path / "out" / "summary.md").read_text().startswith("# Osler evaluation")
    assert (tmp_path / "out" / "scores.png").read_bytes()[:4] == b"\x89PNG"
    cases = doc["cases"]
    assert len(cases) >= 8 and all(c["error"] is None for c in cases)
    assert all(t["result"] and t["result"]["tool_calls"] for c in cases for t in c["turns"])
    # the modality gate and the refusal rules need no trained model: these must pass
    for c in cases:
        if {"modality", "abstain"} & set(c["tags"]):
            assert c["passed"], c
    assert doc["summary"]["probing"]["pairs"] >= 1
    assert elapsed < 30, f"CI subset took {elapsed:.1f}s"
    _check_manifest(tmp_path, doc, data_dir)


def _check_manifest(tmp_path, doc, data_dir):
    """What the run ran on: commit, weights, experts, inputs; and the diff of two manifests."""
    import copy
    import hashlib
    import shutil
    import subprocess

    from eval_scenarios.manifest import diff_manifests, main as manifest_main
    from experts.weights import bundled, sha256_of

    m = doc["meta"]["manifest"]
    assert m["weights"]["bundled/polyp_unet.pt"]["sha256"] == sha256_of(bundled("polyp_unet.pt"))
    assert ("image_info", "gate") in {(e["tool"], e["backend"]) for e in m["experts_used"]}
    refs = {t for c in doc["cases"] for t in m["inputs"]}
    assert refs and all(m["inputs"][r] == hashlib.sha256((data_dir / r[5:]).read_bytes()).hexdigest()
                        for r in refs if r.startswith("data:"))
    assert "api_key" not in m["settings"] and m["settings"]["planner"] == "builtin"
    if shutil.which("git") and (EVAL.parent / ".git").exists():
        head = subprocess.run(["git", "-C", str(EVAL.parent), "rev-parse", "HEAD"], capture_output=True, text=True)
        assert m["code"]["git_commit"] == head.stdout.strip()
    other = copy.deepcopy(doc)
    other["meta"]["manifest"]["weights"]["bundled/polyp_unet.pt"]["sha256"] = "0" * 64
    other["meta"]["manifest"]["settings"]["data_dir"] = "/elsewhere"  # a run's scratch folder is not a difference
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(doc))
    b.write_text(json.dumps(other))
    assert [k for k, _, _ in diff_manifests(m, other["meta"]["manifest"])] == ["weights.bundled/polyp_unet.pt.sha256"]
    assert manifest_main(["diff", str(a), str(a)]) == 0
    assert manifest_main(["diff", str(a), str(b), "--json"]) == 1


def test_cli_bad_input_and_fail_under(tmp_path, data_dir, capsys):
    from eval_scenarios.cli import main
    from tools.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        main([str(tmp_path / "nope.yaml")])
    f = _write(tmp_path, [{"id": "wrong", "images": {"current": SMEAR}, "question": "What kind of image is this?",
                           "expect": {"answer": {"kind": "label", "value": "endoscopy"}}}])
    assert main([str(f), "--quiet", "--data-root", str(data_dir), "--fail-under", "0.5"]) == 1
    assert "cases passed 0/1" in capsys.readouterr().out
    assert main([str(f), "--quiet", "--tags", "nothing"]) == 2


def test_bench_cli_dispatch(capsys):
    from eval_scenarios.bench_cli import BENCHMARKS, main

    assert main([]) == 2 and "benchmarks:" in capsys.readouterr().out
    assert main(["nope"]) == 2 and "unknown benchmark 'nope'" in capsys.readouterr().err
    seen = []
    BENCHMARKS["echo"] = (lambda argv: seen.append(argv) or 3, "records its arguments")
    try:
        assert main(["echo", "--n", "2"]) == 3 and seen == [["--n", "2"]]
    finally:
        del BENCHMARKS["echo"]
    for name, (run, desc) in BENCHMARKS.items():  # every entry is a function of this build
        assert callable(run) and desc, name



def test_audio_case_goes_through_the_transcriber(tmp_path, assistant, data_dir):
    f = _write(tmp_path, [{"id": "spoken", "images": {"current": SMEAR}, "audio": "q.wav",
                           "expect": {"answer": {"kind": "count", "value": 1}, "tools": ["count"]}}])
    (case,) = load_scenarios([f])
    heard = []

    def transcribe(path):
        heard.append(path)
        return "How many white blood cells are in this smear?"

    rec = run_case(assistant, case, data_dir, transcribe)
    assert heard == [tmp_path / "q.wav"]
    assert rec.turns[0].transcript.startswith("How many") and rec.turns[0].result["tool_calls"]
    no_voice = run_case(assistant, case, data_dir, None)
    assert "ConfigurationError" in no_voice.turns[0].error and not no_voice.passed


def test_cli_probe_derives_twins(tmp_path, data_dir, capsys):
    from eval_scenarios.cli import main

    f = _write(tmp_path, [{"id": "wbc", "images": {"current": SMEAR}, "subject": "white blood cells",
                           "question": "How many white blood cells are in this smear?",
                           "expect": {"answer": {"kind": "count", "value": 1}}}])
    assert main([str(f), "--quiet", "--probe", "--data-root", str(data_dir), "--out", str(tmp_path / "o")]) == 0
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    assert [c["id"] for c in doc["cases"]] == ["wbc", "wbc~twin"]
    assert doc["cases"][1]["turns"][0]["question"] == "Are there two white blood cells in this image?"
    assert doc["summary"]["probing"]["pairs"] == 1


def test_spoken_suite_runs_through_the_real_voice_pipeline(tmp_path, data_dir, capsys):
    """`osler eval` on the spoken suite: real WAVs -> the real recogniser -> the strict command parser ->
    the planner -> tools.  A phrase that is not a command is refused, never asked."""
    from eval_scenarios.cli import main

    assert main([str(EVAL / "spoken"), "--quiet", "--data-root", str(data_dir), "--out", str(tmp_path / "o")]) == 0
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    by_id = {c["id"]: c for c in doc["cases"]}
    wbc = by_id["spoken-wbc-00001"]["turns"][0]
    assert wbc["transcript"] and wbc["error"] is None and wbc["result"]["value"] == 1
    chatter = by_id["spoken-chatter-rejected"]["turns"][0]
    assert chatter["result"] is None and chatter["error"].startswith("InvalidInputError")
    # a held-out voice in pink noise at 10 dB that Whisper alone mishears ("Osler, this is me and my polyp."):
    # the command spotter takes "is there a polyp", and a theatre sentence in the same noise is still refused
    unseen = by_id["spoken-unseen-voice-polyp-pink10"]["turns"][0]
    assert unseen["transcript"] == "Is there a polyp?" and unseen["result"]["answer"].startswith("Yes.")
    assert by_id["spoken-unseen-voice-chatter-pink10"]["turns"][0]["result"] is None
    assert doc["summary"]["cases_passed"] == doc["summary"]["cases"] == 6


def test_expected_rejection_fails_when_the_input_is_acted_on():
    from eval_scenarios.schema import Expect
    from eval_scenarios.scoring import score_turn

    expect = Expect(rejected=True)
    assert score_turn(expect, None, 0.1, error="InvalidInputError: not a command").passed
    assert not score_turn(expect, {"answer": "1 WBC", "tool_calls": []}, 0.1).passed
    assert not score_turn(expect, None, 0.1, error="ConfigurationError: no transcriber").passed
