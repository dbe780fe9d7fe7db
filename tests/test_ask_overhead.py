"""What was taken off the answer path stays correct: the audit log's fsync runs on a background thread (every
line is written before ``write`` returns and durable after ``sync``), and ``dedup_boxes`` builds one IoU matrix
instead of one per pair, with the same kept boxes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

from agent.audit import AuditLog
from experts.geometry import box_iou, dedup_boxes
from tests.conftest import REPO


def test_audit_lines_are_written_at_once_and_made_durable(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(5):
        log.write("question", "s1", n=i)
        assert len(log.read()) == i + 1  # in the file before write returned, durable or not
    assert log.sync(timeout=10)
    assert synced  # at least one fsync covered the five lines (bursts share one)
    assert [r["n"] for r in log.read()] == list(range(5))


def test_pending_audit_lines_are_synced_when_the_process_exits(tmp_path):
    path = tmp_path / "audit.jsonl"
    code = ("import os\n"
            "from agent.audit import AuditLog\n"
            "calls = []\n"
            "real = os.fsync\n"
            "os.fsync = lambda fd: (calls.append(fd), real(fd))[1]\n"
            "import atexit\n"
            "from agent.audit import _SYNCER\n"
            f"log = AuditLog({str(path)!r})\n"
            "atexit.register(lambda: print(len(calls), sum(_SYNCER._durable.values()), "
            "sum(_SYNCER._written.values())))\n"  # registered before the first write: runs after the sync hook
            "for i in range(3):\n"
            "    log.write('answer', 's', n=i)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    fsyncs, durable, written = map(int, proc.stdout.split()[-3:])
    assert fsyncs >= 1 and durable == written == 3
    assert [json.loads(line)["n"] for line in path.read_text().splitlines()] == [0, 1, 2]


def _dedup_pairwise(boxes, scores, labels, iou):  # the definition: greedy by score, one pair at a time
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    for i in order:
        if all(labels[j] != labels[i] or box_iou(boxes[i], boxes[j])[0, 0] <= iou for j in keep):
            keep.append(int(i))
    return np.array(sorted(keep), dtype=np.int64)


def test_dedup_boxes_keeps_what_the_pairwise_definition_keeps():
    rng = np.random.default_rng(0)
    for n in (0, 1, 5, 40):
        xy = rng.uniform(0, 200, (n, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(5, 60, (n, 2))], axis=1)
        boxes[: n // 3] = boxes[: n // 3][::-1]  # exact duplicates too
        scores = rng.uniform(0, 1, n).round(1)  # ties: the stable order decides
        labels = [("WBC", "RBC", "Platelets")[k % 3] for k in range(n)]
        for iou in (0.3, 0.5):
            np.testing.assert_array_equal(dedup_boxes(boxes, scores, labels, iou),
                                          _dedup_pairwise(boxes, scores, labels, iou))
