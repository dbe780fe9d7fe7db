"""The live microphone loop of ``osler voice --live``.

Capture: ``sounddevice`` at 16 kHz mono in 30 ms blocks (needs Debian ``libportaudio2``; without
it :func:`microphone_problem` says so and the loop does not start).

* Push-to-talk: press the key (default space; a USB foot pedal that types a key works the same)
  to start recording, press it again to stop.  Pressing it while an answer plays stops the answer
  at once (barge-in).
* Wake word (``--mode wake`` or ``both``): utterances are cut by an energy endpointer; each is
  transcribed and acted on only when it opens with the wake word.  Without echo cancellation the
  loop does not listen while an answer plays (its own voice would be heard).

``q`` or Ctrl-C quits.  Bad audio (clipped, silent) is reported in one line and ignored.
"""

from __future__ import annotations

import logging
import queue
import sys
import time
from typing import Any

import numpy as np

from tools.errors import ConfigurationError, OslerError

from .activation import Endpointer, KeyReader
from .audio import ASR_RATE, from_array

__all__ = ["microphone_problem", "run_live"]

log = logging.getLogger(__name__)

BLOCK = int(0.03 * ASR_RATE)


def microphone_problem() -> str | None:
    """None when a microphone can be opened, else what to install or plug in."""
    try:
        import sounddevice as sd
    except OSError as exc:  # PortAudio missing: sounddevice raises OSError at import
        return f"microphone capture needs PortAudio: apt-get install libportaudio2 ({exc})"
    except ImportError:
        return "microphone capture needs the Python package sounddevice (pip install sounddevice)"
    try:
        dev = sd.query_devices(kind="input")
    except Exception as exc:
        return f"no microphone found ({exc}); plug one in or check the audio permissions"
    if not dev or int(dev.get("max_input_channels", 0)) < 1:
        return "no microphone found; plug one in"
    return None


def _say(msg: str) -> None:
    print(msg, flush=True)


def run_live(va: Any, mode: str = "both") -> int:
    """Run the loop until 'q' / Ctrl-C.  ``va`` is a :class:`voice.pipeline.VoiceAssistant`."""
    problem = microphone_problem()
    if problem:
        raise ConfigurationError(problem)
    if getattr(va.recognizer, "name", "") == "pocketsphinx" and mode != "ptt":
        raise ConfigurationError("the pocketsphinx backend forces any speech into some command (measured: most "
                                 "chatter), so hands-free listening is unsafe with it: use --mode ptt, or --asr whisper")
    import sounddevice as sd

    key = va.vs.ptt_key or " "
    frames: "queue.Queue[np.ndarray]" = queue.Queue()

    def callback(indata, _n, _t, status):  # audio thread: copy and hand over, nothing else
        if status:
            log.debug("audio status %s", status)
        frames.put(indata[:, 0].copy())

    _say("Loading the recogniser and the voice...")
    va.load()
    endpointer = Endpointer(ASR_RATE, end_silence_s=va.vs.end_silence_s, max_seconds=va.vs.max_seconds)
    key_name = "space" if key == " " else repr(key)
    _say(f"Ready. Push-to-talk: press {key_name} to start and again to stop" +
         (f"; or say '{va.vs.wake_word.capitalize()}, ...'" if mode in ("wake", "both") else "") + ". q quits.")
    recording: list[np.ndarray] | None = None
    playing_until = 0.0
    with KeyReader() as keys, sd.InputStream(samplerate=ASR_RATE, channels=1, dtype="float32", blocksize=BLOCK,
                                             callback=callback):
        while True:
            k = keys.poll(0.02)
            if k == "q":
                return 0
            if k == key and mode in ("ptt", "both"):
                if recording is None:
                    if time.monotonic() < playing_until or va.dialog.barge_in():
                        sd.stop()  # barge-in: the answer stops at once
                        playing_until = 0.0
                    recording = []
                    _say("[listening]")
                else:
                    clip, recording = np.concatenate(recording) if recording else np.zeros(0, np.float32), None
                    playing_until = _handle(va, clip, "ptt", sd)
            while not frames.empty():
                block = frames.get_nowait()
                if recording is not None:
                    recording.append(block)
                elif mode in ("wake", "both") and time.monotonic() >= playing_until:
                    utt = endpointer.push(block)
                    if utt is not None:
                        playing_until = _handle(va, utt, "wake", sd)


def _handle(va: Any, clip: np.ndarray, mode: str, sd: Any) -> float:
    """Transcribe and answer one utterance; play the answer; return when playback ends."""
    try:
        turn = va.hear(from_array(clip, ASR_RATE, source="microphone"), mode=mode)
    except OslerError as exc:
        if mode == "ptt":
            _say(f"[not used] {exc}")
        return 0.0
    if turn.reply == "ignored":
        log.debug("ignored: %r", turn.heard.transcript)
        return 0.0
    _say(f'Heard: "{turn.heard.transcript}" -> {turn.heard.intent or "not a command"}')
    if turn.full_answer:
        _say(f"Answer: {turn.full_answer}")
    if turn.spoken_text:
        _say(f"Spoken: {turn.spoken_text}")
    if turn.spoken_wav:
        import soundfile as sf

        data, rate = sf.read(turn.spoken_wav, dtype="float32")
        sd.play(data, rate)
        return time.monotonic() + len(data) / rate
    return 0.0


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run: osler voice --live --image IMG")
