"""Which catalogue target and classes a question names: the target table derived from the expert catalogue
(plugins included), the target a clause names first and the classes it names, and what the catalogue says of them
(an organ, a kind of a class the detector does not tell apart).  Pure functions over text and the catalogue."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import overload

from experts.catalogue import catalogue

__all__ = ["TARGET_PATTERNS", "TargetRow", "classes_of", "find_target", "is_organ", "kind_of", "plural_of",
           "target_table"]

TargetRow = tuple[str, str, "tuple[str, ...] | None"]
_LESION: TargetRow = (r"\b(lesions?|masses|growths?|findings?|abnormalit(y|ies))\b", "lesion", None)
"""Generic finding words: 'lesion' is resolved by image kind to the target that is its lesion (TargetSpec.lesion)."""


def target_table() -> list[TargetRow]:
    """(question regex, target, classes) in match order, derived from the expert catalogue (plugins included):
    for each target, one row per class it names alone, then the target as a whole; the generic lesion row last."""
    rows: list[TargetRow] = []
    for spec in catalogue().targets:
        rows += [(c.pattern, spec.name, (c.label,)) for c in spec.classes if c.pattern]
        if spec.pattern:
            rows.append((spec.pattern, spec.name, None))
    return rows + [_LESION]


class _TargetTable(Sequence):
    """:func:`target_table` as a sequence read at each use (``TARGET_PATTERNS``, read by agent.planners.hybrid)."""

    @overload
    def __getitem__(self, i: int) -> TargetRow: ...
    @overload
    def __getitem__(self, i: slice) -> list[TargetRow]: ...
    def __getitem__(self, i):  # type: ignore[no-untyped-def]
        return target_table()[i]

    def __len__(self) -> int:
        return len(target_table())

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(target_table())
TARGET_PATTERNS = _TargetTable()  # read by agent.planners.hybrid, re-exported by intents


def find_target(text: str) -> tuple[str | None, tuple[str, ...] | None]:
    """(the target a clause names first, the classes of it the clause names, in order) or (None, None)."""
    found: list[tuple[int, str, tuple[str, ...] | None]] = []
    classes: list[str] = []
    target = None
    for pattern, tgt, cls in target_table():
        for m in re.finditer(pattern, text):
            if cls is None and any(t == tgt and c for _, t, c in found):
                continue  # "white blood cells" already matched a specific class
            found.append((m.start(), tgt, cls))
    if not found:
        return None, None
    found.sort()
    target = found[0][1]
    for _, tgt, cls in found:
        if tgt == target and cls:
            for c in cls:
                if c not in classes:
                    classes.append(c)
    return target, (tuple(classes) if classes else None)


def classes_of(target: str | None) -> tuple:
    """The target's classes in the catalogue (none for an unknown target)."""
    entry = catalogue().entry(target) if target else None
    return entry.spec.classes if entry is not None else ()


def kind_of(c: str, target: str | None, classes: tuple[str, ...] | None) -> tuple[str, str] | None:
    """(the kind of a named class that the detector does not tell apart, the class's plural name):
    ('neutrophil', 'white blood cells (WBC)'), or None."""
    for cls in classes_of(target):
        if classes is None or cls.label in classes:
            word = next((w for w in cls.subtypes if re.search(rf"\b{w}s?\b", c)), None)
            if word is not None:
                return word, cls.plural
    return None


def is_organ(target: str | None) -> bool:
    entry = catalogue().entry(target) if target else None
    return entry is not None and bool(entry.spec.organ)


def plural_of(target: str | None, label: str | None = None) -> str:
    """How an answer names several of a target, or of one of its classes: 'polyps', 'white blood cells (WBC)'."""
    entry = catalogue().entry(target) if target else None
    if entry is None:
        return "findings"
    return next((k.plural for k in entry.spec.classes if k.label == label), entry.spec.plural)
