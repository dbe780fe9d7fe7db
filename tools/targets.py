"""What each expert target is, as the contracts, the planner and the voice grammar see it: one frozen
:class:`TargetSpec` per target (the image kinds it accepts, its classes with their display names and
question synonyms, its unit words, how it is prompted and compared).  Everything that used to repeat these
facts (the tool argument vocabularies, the question parser's target table, the answer's unit words, the
voice grammar's slots, the comparison's automatic target) is derived from :func:`targets`.

This module is the contract half of the expert catalogue: it imports only stdlib and pydantic, so the
tool contracts can validate a target name without importing an expert.  The other half,
:mod:`experts.catalogue`, binds each spec to its backends (factory functions), default weights and model
card, and loads third-party experts from the ``osler.experts`` entry point group; the specs of those plugins
are registered here (:func:`register_plugins`) when the catalogue is built, so the contracts accept them.

>>> BLOOD_CELLS.labels
('RBC', 'WBC', 'Platelets')
>>> sorted(n for n, s in targets().items() if "detect" in s.tasks)
['blood_cells', 'polyp']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import Field, GetCoreSchemaHandler, GetJsonSchemaHandler, field_validator, model_validator
from pydantic_core import PydanticCustomError, core_schema

from .common import Frozen
from .kinds import IMAGE_KINDS, ImageKind

__all__ = ["TargetClass", "TargetSpec", "BLOOD_CELLS", "POLYP", "LUNG", "BUILTIN_TARGETS", "targets", "target",
           "register_plugins", "TargetName", "DetectTarget", "SegmentTarget", "CompareTarget", "TARGET_KINDS",
           "BLOOD_CLASSES", "PROMPT_TARGET", "LiveTable", "class_names"]

Task = Literal["detect", "segment"]
PROMPT_TARGET = "prompt"
"""The segmentation target of a box or point prompt: any object, on any kind of image."""


def _compiles(pattern: str | None) -> str | None:
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression ({exc}): {pattern!r}") from exc
    return pattern


class TargetClass(Frozen):
    """One class a target's detector reports."""

    label: str = Field(description="the label the detector reports and results carry, e.g. 'WBC'")
    singular: str = Field(description="how an answer names one, e.g. 'white blood cell (WBC)'")
    plural: str = Field(description="how an answer names several, e.g. 'white blood cells (WBC)'")
    pattern: str | None = Field(default=None, description="regex over the lower-case question that names this class "
                                "alone; None: the class is asked for only through the target")
    spoken: str | None = Field(default=None, description="the voice grammar's phrase for counting it ('white cells')")
    matched: bool = Field(default=True, description="matched one by one across two studies (False: only counted)")
    cross_check_tolerance: int | None = Field(
        default=None, ge=0, description="count difference beyond which an independent second backend disagrees; "
        "None: not cross-checked")
    subtypes: tuple[str, ...] = Field(
        default=(), description="words naming kinds of this class that the detector does not tell apart "
        "('neutrophil'): a question naming one is answered for the whole class and says so, never with a yes/no")
    caveat: str | None = Field(default=None, description="what a user must know about this class's counts, "
                               "added to every answer that reports it")

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, v: str | None) -> str | None:
        return _compiles(v)

    def names(self, raw: str) -> bool:
        """Whether a detector's raw class name (``'white blood cell'``, ``'wbcs'``) means this class."""
        text = raw.strip().lower()
        return text == self.label.lower() or bool(self.pattern and re.fullmatch(self.pattern, text))


class TargetSpec(Frozen):
    """One expert target: what it accepts, what it reports, how it is asked about, prompted and compared."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="the tool argument, e.g. 'blood_cells'")
    description: str = Field(description="one line for tool docstrings: what is found on which images")
    kinds: tuple[ImageKind, ...] = Field(min_length=1, description="the image kinds its tools accept")
    tasks: tuple[Task, ...] = Field(min_length=1, description="'detect' (detect and count), 'segment' or both")
    classes: tuple[TargetClass, ...] = Field(default=(), description="the detector's classes")
    pattern: str | None = Field(default=None, description="regex over the lower-case question naming the target")
    noun: str = Field(description="one instance or region, as an answer names it ('cell', 'polyp', 'lung')")
    noun_plural: str | None = Field(default=None, description="several of them (default: noun + 's')")
    count_unit: str | None = Field(default=None, description="unit of a total over several classes (default: name)")
    spoken: tuple[str, ...] = Field(default=(), description="voice phrases that count the whole target ('cells')")
    spoken_segment: tuple[str, ...] = Field(default=(), description="voice phrases that segment it ('polyps')")
    auto_prompt: str | None = Field(default=None, description="the detector target whose boxes prompt this target's "
                                    "segmenter when no prompt is given")
    compare: Literal["instances", "regions", "organ"] | None = Field(
        default=None, description="how two studies are compared: 'instances' (detections matched one by one and "
        "counted per class), 'regions' (segmented regions matched), 'organ' (organ fields and the opacity inside); "
        "None: not compared")
    compare_by_default: bool = Field(default=False, description="compare_with_prior(target='auto') picks it on its kinds")
    lesion: bool = Field(default=False, description="'lesion' / 'finding' in a question means it on its kinds")
    organ: bool = Field(default=False, description="an organ: outlined whole, never counted")
    colour: bool = Field(default=False, description="its experts read colour (a stain, the endoscope's light): an "
                         "image without colour is refused, not counted as empty")
    paired: bool = Field(default=False, description="a paired organ (the lungs): outlined as its two parts, each "
                         "with the patient's side as displayed (the patient's right on the image's left)")
    describe: tuple[Literal["count", "measure", "segment"], ...] = Field(
        default=(), description="what 'describe this image' runs for it on its kinds, in order")
    codes: tuple[tuple[str, str, str], tuple[str, str, str]] | None = Field(
        default=None, description="DICOM SEG / SR segment (category, type), each (code, scheme, meaning); None: the "
        "generic 'Image Region'")

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, v: str | None) -> str | None:
        return _compiles(v)

    @model_validator(mode="after")
    def _consistent(self) -> "TargetSpec":
        if self.organ and "detect" in self.tasks:
            raise ValueError(f"target '{self.name}': an organ is outlined, not detected")
        if self.paired and not self.organ:
            raise ValueError(f"target '{self.name}': only an organ is paired")
        if self.compare == "instances" and "detect" not in self.tasks:
            raise ValueError(f"target '{self.name}': comparing instances needs a detector")
        if self.compare in ("regions", "organ") and "segment" not in self.tasks:
            raise ValueError(f"target '{self.name}': comparing {self.compare} needs a segmenter")
        if len({c.label for c in self.classes}) != len(self.classes):
            raise ValueError(f"target '{self.name}': class labels repeat")
        return self

    @property
    def plural(self) -> str:
        """Several instances or regions, as an answer names them ('polyps')."""
        return self.noun_plural or f"{self.noun}s"

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(c.label for c in self.classes)

    def canonical_label(self, raw: str) -> str:
        """The class label a detector's raw class name means (``'white blood cells'`` -> ``'WBC'``), else ``raw``."""
        return next((c.label for c in self.classes if c.names(raw)), raw)


BLOOD_CELLS = TargetSpec(
    name="blood_cells", description="blood cells (RBC, WBC, Platelets) on a blood smear", kinds=("blood_smear",),
    tasks=("detect",), noun="cell", count_unit="cells", pattern=r"\b((blood )?cells?)\b", spoken=("cells",), colour=True,
    compare="instances", compare_by_default=True, describe=("count",),
    classes=(
        TargetClass(label="RBC", singular="red blood cell (RBC)", plural="red blood cells (RBC)",
                    pattern=r"\b(red (blood )?cells?|rbcs?|erythrocytes?)\b", spoken="red cells", matched=False,
                    caveat="red cell counts are approximate: overlapping red cells are missed (the training boxes "
                           "are incomplete)"),
        TargetClass(label="WBC", singular="white blood cell (WBC)", plural="white blood cells (WBC)",
                    pattern=r"\b(white (blood )?cells?|white (cell )?counts?|wbcs?|leu[ck]ocytes?|neutrophils?|lymphocytes?|monocytes?"
                            r"|eosinophils?|basophils?|granulocytes?)\b", spoken="white cells", cross_check_tolerance=0,
                    subtypes=("neutrophil", "lymphocyte", "monocyte", "eosinophil", "basophil", "granulocyte")),
        TargetClass(label="Platelets", singular="platelet", plural="platelets",
                    pattern=r"\b(platelets?|thrombocytes?|plts?|platelet clusters?|platelet clumps?)\b",
                    spoken="platelets"),
    ),
)
"""Wright-Giemsa blood smears.  WBC is cross-checked by the classical counter with tolerance 0, tuned by
``osler bench counts-cv`` (experts/weights/bccd_yolo.md); platelets are not (no tolerance made that check
informative), RBC neither (its annotations are incomplete).  RBCs (dozens, overlapping) are counted across
studies, never matched one by one."""

POLYP = TargetSpec(
    name="polyp", description="polyps on an endoscopy/colonoscopy frame", kinds=("endoscopy",),
    tasks=("detect", "segment"), noun="polyp", pattern=r"\b(polyps?|adenomas?|polypoid)\b", spoken=("polyps",), colour=True,
    spoken_segment=("polyp", "polyps"), auto_prompt="polyp", compare="regions", compare_by_default=True, lesion=True,
    describe=("count", "measure"),
    classes=(TargetClass(label="polyp", singular="polyp", plural="polyps"),),
    codes=(("49755003", "SCT", "Morphologically Abnormal Structure"), ("68496003", "SCT", "Polyp of colon")),
)
"""Automatic polyp segmentation is the polyp detector's boxes prompting the segmenter (when it takes prompts);
measured on 28 held-out EndoTect frames + 5 negatives: experts/weights/litemedsam.md and polyp_unet.md."""

LUNG = TargetSpec(
    name="lung", description="the lung fields on a chest X-ray", kinds=("chest_xray",), tasks=("segment",),
    noun="lung", pattern=r"\b(lung( fields?)?s?|lungs)\b", spoken_segment=("lung", "lungs"), compare="organ",
    compare_by_default=True, organ=True, paired=True, describe=("segment",), codes=(("91723000", "SCT", "Anatomical Structure"), ("39607008", "SCT", "Lung")),
)

BUILTIN_TARGETS: tuple[TargetSpec, ...] = (BLOOD_CELLS, POLYP, LUNG)
BLOOD_CLASSES: tuple[str, ...] = BLOOD_CELLS.labels

_plugins: dict[str, TargetSpec] = {}


def register_plugins(specs: list[TargetSpec] | tuple[TargetSpec, ...]) -> None:
    """Replace the plugin targets (called by :func:`experts.catalogue.catalogue` when it is built)."""
    builtin = {s.name for s in BUILTIN_TARGETS} | {PROMPT_TARGET}
    clash = [s.name for s in specs if s.name in builtin]
    if clash:
        raise ValueError(f"plugin target(s) {clash} would replace a built-in target")
    _plugins.clear()
    _plugins.update({s.name: s for s in specs})


def targets() -> dict[str, TargetSpec]:
    """Every target: the built-in ones, then those of the loaded plugins, in catalogue order."""
    return {s.name: s for s in BUILTIN_TARGETS} | dict(_plugins)


def target(name: str) -> TargetSpec | None:
    return targets().get(name)


class LiveTable(Mapping[str, Any]):
    """A read-only mapping computed from :func:`targets` at each use, so that it includes the targets of
    plugins loaded after import (``TARGET_KINDS``, the answer's unit words)."""

    def __init__(self, build: Callable[[], dict[str, Any]]) -> None:
        self._build = build

    def __getitem__(self, key: str) -> Any:
        return self._build()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._build())

    def __len__(self) -> int:
        return len(self._build())

    def __repr__(self) -> str:
        return f"LiveTable({self._build()!r})"


def _target_kinds() -> dict[str, tuple[str, ...]]:
    return {n: tuple(s.kinds) for n, s in targets().items()} | {PROMPT_TARGET: IMAGE_KINDS}


def class_names(plural: bool = True) -> dict[str, str]:
    """Class label -> how an answer names several (``plural``) or one, over every target's classes:
    ``{'WBC': 'white blood cells (WBC)', ..., 'polyp': 'polyps'}``."""
    return {c.label: (c.plural if plural else c.singular) for s in targets().values() for c in s.classes}


TARGET_KINDS: Mapping[str, tuple[str, ...]] = LiveTable(_target_kinds)
"""The image kinds each detection or segmentation target is valid for (``prompt``: every kind)."""


def _quoted(names: tuple[str, ...]) -> str:
    q = [f"'{n}'" for n in names]
    return q[0] if len(q) == 1 else ", ".join(q[:-1]) + " or " + q[-1]


class TargetName:
    """Pydantic annotation for a target argument: a string that must name a target of the catalogue with
    the given task.  Validation and the JSON schema's ``enum`` read the catalogue when they run, so the
    targets of a plugin are accepted and offered to the planner; an unknown name fails like a ``Literal``
    ("Input should be 'blood_cells' or 'polyp'")."""

    def __init__(self, task: Task | Literal["compare"], *, first: tuple[str, ...] = (), last: tuple[str, ...] = ()):
        self.task, self.first, self.last = task, first, last

    def names(self) -> tuple[str, ...]:
        if self.task == "compare":
            found = [n for n, s in targets().items() if s.compare is not None]
        else:
            found = [n for n, s in targets().items() if self.task in s.tasks]
        return (*self.first, *found, *self.last)

    def _validate(self, value: str) -> str:
        allowed = self.names()
        if value not in allowed:
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": _quoted(allowed)})
        return value

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_after_validator_function(self._validate, core_schema.str_schema())

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> dict:
        return {"enum": list(self.names()), "type": "string"}

    def __repr__(self) -> str:
        return f"TargetName({self.task!r})"


DetectTarget = Annotated[str, TargetName("detect")]
"""What a detector looks for: a target with a detector (``blood_cells``, ``polyp``, a plugin's)."""

SegmentTarget = Annotated[str, TargetName("segment", last=(PROMPT_TARGET,))]
"""What a segmenter outlines (``polyp``, ``lung``, a plugin's); ``prompt``: whatever the box or points select."""

CompareTarget = Annotated[str, TargetName("compare", first=("auto",))]
"""Which findings ``compare_with_prior`` matches across time; ``auto`` picks by image kind."""
