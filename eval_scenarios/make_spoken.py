"""Write the spoken-question suite ``eval_scenarios/spoken/``: each case's question is spoken by the
bundled piper voice (espeak-ng when piper is missing) into a 16-bit WAV next to ``spoken.yaml``.

    python -m eval_scenarios.make_spoken            # (re)writes the WAVs
    osler eval eval_scenarios/spoken                # real recogniser -> strict parser -> planner -> tools

The WAVs are synthetic speech (one voice, no noise): the suite checks that spoken questions run end to
end through the real voice pipeline, not how well speech is recognised (``osler bench voice`` does that).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent / "spoken"

# WAV file -> what the voice says (the planner sees only what the recogniser hears)
SPOKEN = {
    "wbc_00001.wav": "How many white cells are there?",
    "polyp_count_003ab8b5.wav": "How many polyps do you see?",
    "polyp_negative_0b952aa7.wav": "Is there a polyp?",
    "chatter.wav": "Could you pass me the other retractor, thanks.",
}


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
        synthesize(SPOKEN[name], settings, path=HERE / name)
        print(f"{name}: {SPOKEN[name]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
