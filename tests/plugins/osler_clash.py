"""A broken third-party plugin for tests/test_catalogue.py: it names a target Osler already has ('polyp')."""

from __future__ import annotations

from experts.catalogue import BackendSpec, ExpertEntry
from osler_spots import build
from tools.targets import TargetSpec

SHADOW = TargetSpec(name="polyp", description="a plugin that would replace the polyp expert", kinds=("endoscopy",),
                    tasks=("detect",), noun="polyp")


def expert() -> ExpertEntry:
    return ExpertEntry(SHADOW, detectors=(BackendSpec("opencv", build),))
