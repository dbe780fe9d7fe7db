"""Artifact PNGs made during an ask are encoded off the answer path (``Session.background_writes``), but every
path an answer names is a written file: ``Assistant.ask`` flushes before it returns, and ``Session.artifact``
waits.  Outside an ask (a tool invoked directly, an evaluation script) the file is written before
``add_artifact`` returns."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.session import Session
from tests.conftest import SMEAR


def test_artifact_waits_for_its_file_and_holds_the_pixels(settings, data_dir):
    session = Session(settings)
    pixels = session.load("current", data_dir / SMEAR).pixels
    mask = np.zeros(pixels.shape[:2], bool)
    mask[10:50, 20:90] = True
    with session.background_writes():
        ref = session.add_artifact("overlay", pixels)
        mref = session.add_artifact("mask", mask, keep_array=False)
        path = session.artifact(ref.id).ref.path  # waits for the writer
        back = cv2.imread(path, cv2.IMREAD_COLOR)[..., ::-1]
        np.testing.assert_array_equal(back, pixels)
        np.testing.assert_array_equal(session.mask(mref.id), mask)  # read back from the PNG once it is written
    assert session.flush_artifacts() == []


def test_a_queued_array_may_be_reused_by_the_caller(settings, data_dir):
    session = Session(settings)
    pixels = session.load("current", data_dir / SMEAR).pixels.copy()
    with session.background_writes():
        ref = session.add_artifact("overlay", pixels)
        expected = pixels.copy()
        pixels[:] = 0  # the caller draws on its array again: the queued file keeps what was added
    session.flush_artifacts()
    np.testing.assert_array_equal(cv2.imread(ref.path, cv2.IMREAD_COLOR)[..., ::-1], expected)


def test_outside_an_ask_the_file_exists_when_add_artifact_returns(settings, data_dir):
    session = Session(settings)
    ref = session.add_artifact("overlay", session.load("current", data_dir / SMEAR).pixels)
    assert Path(ref.path).is_file() and not session._pending


def test_a_file_that_cannot_be_written_is_reported_and_dropped(settings, data_dir):
    session = Session(settings)
    pixels = session.load("current", data_dir / SMEAR).pixels
    session.dir.mkdir(parents=True, exist_ok=True)
    (session.dir / "overlay-1.png").mkdir()  # a folder where the file should go: the write fails
    (session.dir / "overlay-2.png").mkdir()
    with session.background_writes():
        ref = session.add_artifact("overlay", pixels)
    assert session.flush_artifacts() == [ref.id]
    assert ref.id not in session.artifacts
    with pytest.raises(OSError):  # outside an ask the caller gets the error at once, as before
        session.add_artifact("overlay", pixels)


def test_every_overlay_of_an_answer_exists_when_ask_returns(assistant, data_dir):
    session = assistant.new_session()
    session.load("current", data_dir / SMEAR)
    result = assistant.ask(session, "How many white blood cells are in this smear?")
    assert result.artifacts.overlays
    for path in result.artifacts.overlays:
        img = cv2.imread(path)
        assert img is not None and img.shape[:2] == session.image("current").pixels.shape[:2]
