"""Batch asks (``osler ask FOLDER|GLOB|CSV``): one JSON line per image, error rows instead of aborts,
resume after an interruption, several workers, on real smears."""

from __future__ import annotations

import io
import json
import shutil

import pytest

from ui.batch import collect_jobs, done_ids, is_batch_spec, run_batch

WBC_Q = "How many white blood cells are in this smear?"


@pytest.fixture
def smear_dir(tmp_path, data_dir):
    d = tmp_path / "smears"
    (d / "sub").mkdir(parents=True)
    for name, dest in (("BloodImage_00001.jpg", "a.jpg"), ("BloodImage_00010.jpg", "sub/b.jpg")):
        shutil.copy(data_dir / "bccd" / "images" / name, d / dest)
    (d / "notes.txt").write_text("not an image")
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)  # a PNG signature, then nothing
    return d


def _voc_wbc(data_dir, name):
    from eval_scenarios.ground_truth import voc_counts

    return voc_counts(data_dir / "bccd" / "annotations" / name.replace(".jpg", ".xml"))["WBC"]


def test_specs_and_jobs(smear_dir, tmp_path):
    assert is_batch_spec(str(smear_dir)) and is_batch_spec(str(smear_dir / "*.jpg"))
    assert not is_batch_spec(str(smear_dir / "a.jpg"))
    jobs = collect_jobs(str(smear_dir), WBC_Q)
    assert [j.image.name for j in jobs] == ["a.jpg", "broken.png", "b.jpg"]  # notes.txt is not an image
    assert len({j.id for j in jobs}) == 3
    assert [j.image.name for j in collect_jobs(str(smear_dir / "**" / "*.jpg"), WBC_Q)] == ["a.jpg", "b.jpg"]
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text(f"image,question\nsmears/a.jpg,{WBC_Q}\nsmears/a.jpg,How many platelets?\n")
    rows = collect_jobs(str(csv_file), None)
    assert [j.question for j in rows] == [WBC_Q, "How many platelets?"] and rows[0].id != rows[1].id
    assert rows[0].image == smear_dir / "a.jpg"
    from tools.errors import InvalidInputError

    with pytest.raises(InvalidInputError):
        collect_jobs(str(tmp_path / "nothing-*.png"), WBC_Q)


def test_batch_answers_each_image_and_reports_bad_ones(assistant, smear_dir, data_dir):
    sink = io.StringIO()
    counts = run_batch(assistant, collect_jobs(str(smear_dir), WBC_Q), sink, workers=2, progress=False)
    rows = {json.loads(line)["image"].split("/")[-1]: json.loads(line) for line in sink.getvalue().splitlines()}
    assert counts == {"jobs": 3, "ok": 2, "errors": 1, "skipped": 0}
    assert rows["broken.png"]["ok"] is False and rows["broken.png"]["error"].startswith("InvalidInputError")
    assert rows["a.jpg"]["value"] == _voc_wbc(data_dir, "BloodImage_00001.jpg")  # 1 WBC, an easy smear
    for name in ("a.jpg", "sub/b.jpg"):  # a batch row is what a single ask answers
        session = assistant.new_session()
        session.load("current", smear_dir / name)
        single = assistant.ask(session, WBC_Q)
        row = rows[name.split("/")[-1]]
        assert (row["value"], row["answer"]) == (single.value, single.answer)
        assert [c["name"] for c in row["tool_calls"]] == [c.name for c in single.tool_calls]


def test_resume_skips_finished_rows_and_drops_a_half_line(assistant, smear_dir, tmp_path):
    jobs = collect_jobs(str(smear_dir), WBC_Q)
    out = tmp_path / "out.jsonl"
    with out.open("w") as sink:
        run_batch(assistant, jobs[:1], sink, progress=False)
    with out.open("a") as sink:
        sink.write('{"id": "half-writ')  # the process died mid-line
    skip = done_ids(out)
    assert skip == {jobs[0].id}
    with out.open("a") as sink:
        counts = run_batch(assistant, jobs, sink, skip=skip, progress=False)
    assert counts["jobs"] == 2 and counts["skipped"] == 1
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(j.id for j in jobs)


def test_cli_batch_prints_json_lines(smear_dir, capsys):
    from ui.cli import main

    assert main(["ask", str(smear_dir / "*.jpg"), WBC_Q, "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and json.loads(out[0])["ok"] is True  # only a.jpg matches the non-recursive glob
