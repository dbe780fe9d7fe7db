"""The one Pascal VOC reader (BCCD annotations): image size and the objects with 0-based boxes.

VOC corners are 1-based and inclusive; boxes come back as ``(xmin - 1, ymin - 1, xmax, ymax)`` (0-based,
exclusive max), not clipped: callers clip to the image where they need to.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

__all__ = ["VocFile", "VocObject", "read_voc"]


@dataclass(frozen=True)
class VocObject:
    label: str
    box: tuple[float, float, float, float] | None  # None: an object without a bndbox


@dataclass(frozen=True)
class VocFile:
    width: int
    height: int
    objects: tuple[VocObject, ...]


def read_voc(path: Path | str) -> VocFile:
    root = ET.parse(path).getroot()
    objects = []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        box = None
        if bb is not None:
            x0, y0, x1, y1 = (float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax"))
            box = (x0 - 1, y0 - 1, x1, y1)
        objects.append(VocObject((obj.findtext("name") or "").strip(), box))
    return VocFile(int(root.findtext("size/width") or 0), int(root.findtext("size/height") or 0), tuple(objects))
