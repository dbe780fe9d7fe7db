"""Write the spoken-question suite ``eval_scenarios/spoken/``: each case's question is spoken by the
bundled piper voice (espeak-ng when piper is missing) into a 16-bit WAV next to ``spoken.yaml``.

    python -m eval_scenarios.make_spoken            # (re)writes the WAVs
    osler eval eval_scenarios/spoken                # real recogniser -> strict parser -> planner -> tools

Most WAVs are synthetic speech of one voice without noise: they check that spoken questions run end to end
through the real voice pipeline.  Two are spoken by espeak-ng voices of the command spotter's held-out families
(never used in its training or tuning, see ``training/train_spotter.py``) in the voice benchmark's pink noise at
10 dB: a command Whisper alone mishears and a theatre sentence that must not be acted on.  How well speech is
recognised is measured by ``osler bench voice`` and ``python -m voice.bench_grammar``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent / "spoken"

# WAV file -> what the voice says (the planner sees only what the recogniser hears); a tuple: (text, espeak-ng
# voice, noise of voice.bench_data at 10 dB SNR, mixing seed)
SPOKEN: dict[str, str | tuple[str, str, str, int]] = {
    "wbc_00001.wav": "How many white cells are there?",
    "polyp_count_003ab8b5.wav": "How many polyps do you see?",
    "polyp_negative_0b952aa7.wav": "Is there a polyp?",
    "chatter.wav": "Could you pass me the other retractor, thanks.",
    "unseen_voice_polyp_pink10.wav": ("Osler, is there a polyp?", "en-gb-scotland+female1", "pink", 78),
    "unseen_voice_chatter_pink10.wav": ("Let's check the drip rate.", "en-029+klatt", "pink", 83),
}


def _noisy(text: str, voice: str, noise: str, seed: int, path: Path) -> None:
    import tempfile

    import soundfile as sf

    from voice.audio import ASR_RATE
    from voice.bench_data import Mixer, synth

    with tempfile.TemporaryDirectory() as tmp:
        x = synth(text, voice, Path(tmp), wpm=150)
        y = Mixer(Path(tmp), prefer_speechbrain=False).mix(x, noise, 10.0, seed=seed)
    sf.write(str(path), y, ASR_RATE, subtype="PCM_16")


def main(argv: list[str] | None = None) -> int:
    from tools.settings import OslerSettings
    from voice.tts import synthesize

    settings = OslerSettings()
    wanted = {t.get("audio") for c in yaml.safe_load((HERE / "spoken.yaml").read_text())
              for t in (c.get("turns") or [c])} - {None}
    missing = wanted - set(SPOKEN)
    if missing:
        print(f"make_spoken: no text for {sorted(missing)}", file=sys.stderr)
        return 2
    for name in sorted(wanted):
        said = SPOKEN[name]
        if isinstance(said, tuple):
            _noisy(*said, path=HERE / name)
        else:
            synthesize(said, settings, path=HERE / name)
        print(f"{name}: {said}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
