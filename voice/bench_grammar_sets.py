"""The clips of the grammar and spotter benchmark (:mod:`voice.bench_grammar`): which voices say which sentences
in which noise, each set kept apart for tuning or testing (see that module for what each set is for), and the
exact audio of every clip (the same order and mixing seeds in every run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .bench_data import CROWD_VOICES, VOICES, Mixer, synth
from .bench_unseen import FRESH_VOICES, LIVE_BENCH_COMMANDS, UNSEEN_VOICES

__all__ = ["DEV_VOICES", "TEST_VOICES", "FINAL_VOICES", "FRESH_SET_VOICES", "FRESH2_SET_VOICES", "DEV_NON_COMMANDS", "TEST_NON_COMMANDS",
           "FINAL_NON_COMMANDS", "FRESH_NON_COMMANDS", "FRESH2_NON_COMMANDS", "LOOKALIKE_NON_COMMANDS", "HELD_OUT_VOICES", "CONFIRM_REPLIES", "CONDITIONS",
           "clips"]

DEV_VOICES: dict[str, int | None] = {
    **{k: None for k, (engine, _n, _s) in VOICES.items() if k in ("espeak-us", "espeak-gb-f", "espeak-us-fast",
                                                                    "espeak-scot", "piper-joe")},
    **UNSEEN_VOICES, **{k: v for k, v in FRESH_VOICES.items() if k == "en-us-nyc+Gene"},
}
# espeak-ng voice+variant -> words per minute: variants no other part of the project uses (checked at start)
TEST_VOICES: dict[str, int] = {
    "en-us+Alicia": 150,
    "en-gb-scotland+Hugo": 145,
    "en-us-nyc+belinda": 165,
    "en-gb-x-gbcwmd+robert": 150,
    "en-029+steph": 155,
}
DEV_NON_COMMANDS: tuple[str, ...] = (
    "suction please", "pass me the grasper", "the pressure is dropping", "let's take a biopsy here",
    "move the scope to the left", "how long have we been going", "turn the lights down", "what time is it",
    "give me the snare", "can you zoom in a bit more",
    # added after the first test run showed Whisper writing the prompt's phrases for speech that shares their
    # words: sentences of that kind, written for development (the test sentences are not among them)
    "how big was the last one you removed", "clear the table please", "is this the normal saline",
    "compare notes later", "repeat the dose", "say it louder for the room",
)
TEST_NON_COMMANDS: tuple[str, ...] = (
    "irrigate please", "hand me the clip applier", "is the patient stable", "we need more insufflation",
    "how many units of blood did we give", "segmental resection is planned", "pull back slowly",
    "what is the heart rate", "close the window", "let's freeze the specimen for pathology",
)
# The final check, written after the first test run and before any result on them: three more espeak variants
# and non-commands with command words in them
FINAL_VOICES: dict[str, int] = {"en-us+travis": 150, "en-gb+linda": 160, "en-029+quincy": 150}
FINAL_NON_COMMANDS: tuple[str, ...] = (
    "outline the plan for tomorrow", "what changed in the protocol", "is there parking nearby",
    "compare the two instruments", "how many staff are on call", "louder music please", "cancel the next case",
    "read the consent form", "segment three looks fine",
)
# The command spotter's check (2026-12-02): six voices of the spotter's held-out families (never trained or tuned
# on: training/train_spotter.py voice_split()['holdout'], which leaves every variant above out of training) and
# sentences with command words in them, written before any result on them
FRESH_SET_VOICES: dict[str, int] = {"en-gb-x-rp+shelby": 150, "en-029+klatt": 150, "en-gb-x-gbcwmd+Storm": 155,
                                    "en-us-nyc+norbert": 160, "en-us+Zac": 150, "en-gb-scotland+female1": 145}
FRESH_NON_COMMANDS: tuple[str, ...] = (
    "freeze the margins for frozen section", "how many polyps did the last patient have",
    "is there a problem with the light source", "outline the consent before we start",
    "what changed since this morning's huddle", "compare the two scopes after the list", "repeat after me",
    "the white cell count was normal", "louder than yesterday's alarm",
)
# The retrained spotter's check (2026-12-02, written before it was trained): six more voices of the held-out
# families that no benchmark had used, other sentences with command words in them; run in babble and in the crowd
# noise (voice.bench_data.CROWD_VOICES: four more held-out talkers)
FRESH2_SET_VOICES: dict[str, int] = {"en-029+RicishayMax": 150, "en-us-nyc+RicishayMax3": 160,
                                     "en-gb-x-gbcwmd+Alex": 150, "en-us-nyc+klatt2": 155,
                                     "en-gb-x-gbcwmd+klatt4": 145, "en-gb-scotland+klatt6": 150}
FRESH2_NON_COMMANDS: tuple[str, ...] = (
    "freeze the blood for the bank", "how many polyps were in the referral letter", "is there a spare gown",
    "outline your concerns after the case", "what changed on the discharge summary", "compare prices later",
    "repeat the antibiotics at six", "cancel that order of gloves", "the platelets came back low",
)
# Non-commands that open like a command and turn to something else (the kind that command-primed decoding
# shortens into the command), written 2026-12-02 before the lookalike spotter (training/train_spotter.py recipe
# "lookalike") was trained and before any result on them; spoken by all 20 held-out voices above, no commands
LOOKALIKE_NON_COMMANDS: tuple[str, ...] = (
    "how many polyps did the pathology report mention", "how many white cells does the lab want",
    "is there a polyp registry for this patient", "how big is the recovery bay",
    "freeze the tissue block tonight", "outline it for the students after the list",
    "compare with the prior consultant's note", "cancel the taxi for four", "repeat that blood test tomorrow",
    "what has changed in the booking system", "louder alarms would help in here",
    "how many platelets are in the fridge",
)
HELD_OUT_VOICES: dict[str, int] = {**TEST_VOICES, **FINAL_VOICES, **FRESH_SET_VOICES, **FRESH2_SET_VOICES}
# The answers to "Did you mean ...? Say yes or no." (the live view's confirmation on doubt), said bare, by all 20
# held-out voices (``confirm``; the development voices: ``confirm_dev``); added 2026-12-03 before any result on them
CONFIRM_REPLIES: tuple[str, ...] = ("yes", "no")
CONDITIONS: tuple[tuple[str, float | None], ...] = (("clean", None), ("pink", 10.0), ("pink", 5.0), ("babble", 10.0))


def _clip(voice: str, wpm: int | None, said: str, cache: Path, settings: Any) -> np.ndarray:
    """``said`` by a voice of the voice benchmark (``wpm`` None: espeak or piper, by its name there) or by an
    espeak-ng voice+variant at ``wpm``; 16 kHz with 0.3 s of room tone either side, cached as WAV."""
    if wpm is None:
        return synth(said, voice, cache, settings)
    return synth(said, voice, cache / f"wpm{wpm}", settings, wpm=wpm)


def clips(settings: Any, which: str, limit: int | None, cache: Path,
           conditions: tuple[tuple[str, float | None], ...]):
    """Every clip of a set as (voice, text, said, is_command, noise, snr, audio thunk), in the order and with
    the mixing seeds every run uses (so ``spot`` re-creates the very audio ``run`` recognised)."""
    voices = {"dev": DEV_VOICES, "test": TEST_VOICES, "final": FINAL_VOICES, "fresh": FRESH_SET_VOICES,
              "fresh2": FRESH2_SET_VOICES, "lookalike": HELD_OUT_VOICES, "confirm": HELD_OUT_VOICES,
              "confirm_dev": DEV_VOICES}[which]
    nons = {"dev": DEV_NON_COMMANDS, "test": TEST_NON_COMMANDS, "final": FINAL_NON_COMMANDS,
            "fresh": FRESH_NON_COMMANDS, "fresh2": FRESH2_NON_COMMANDS, "lookalike": LOOKALIKE_NON_COMMANDS,
            "confirm": (), "confirm_dev": ()}[which]
    if which not in ("dev", "lookalike", "confirm", "confirm_dev"):  # lookalike, confirm: the held-out voices above, checked there
        used = {n for _e, n, _s in VOICES.values()} | set(UNSEEN_VOICES) | set(FRESH_VOICES) | set(DEV_VOICES)
        if which in ("final", "fresh"):
            used |= set(TEST_VOICES)
        if which in ("fresh", "fresh2"):
            used |= set(FINAL_VOICES)
        if which == "fresh2":
            used |= set(FRESH_SET_VOICES) | set(CROWD_VOICES)
        clash = set(voices) & used
        if clash:
            raise ValueError(f"test voices already used: {sorted(clash)}")
    commands = {"lookalike": (), "confirm": CONFIRM_REPLIES, "confirm_dev": CONFIRM_REPLIES}.get(which,
                                                                                            LIVE_BENCH_COMMANDS)
    items = [(c, True) for c in commands] + [(n, False) for n in nons]
    if limit:
        items = items[:limit] + [(n, False) for n in nons[:max(1, limit // 4)]]
    clips = [(v, wpm, text, is_cmd, k) for v, wpm in voices.items() for k, (text, is_cmd) in enumerate(items)]
    mixer = Mixer(cache, prefer_speechbrain=False)
    for j, (v, wpm, text, is_cmd, k) in enumerate(clips):
        # commands after the wake word ("Osler, <command>?", as bench_unseen); every other non-command too
        if which in ("confirm", "confirm_dev"):  # a bare reply to the question Osler just asked
            said = f"{text[0].upper()}{text[1:]}."
        elif is_cmd:
            said = f"Osler, {text}?"
        else:
            said = f"Osler, {text}." if k % 2 == 0 else f"{text[0].upper()}{text[1:]}."
        for noise, snr in conditions:
            def audio(v=v, wpm=wpm, said=said, noise=noise, snr=snr, j=j) -> np.ndarray:
                x = _clip(v, wpm, said, cache, settings)
                if noise == "rebabble":  # a second take: the same speech in another stretch of the babble
                    return mixer.mix(x, "babble", snr, seed=1000 * j + int(snr) + 500_000)
                return x if snr is None else mixer.mix(x, noise, snr, seed=1000 * j + int(snr))
            yield v, text, said, is_cmd, noise, snr, audio
