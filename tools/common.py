"""Building blocks shared by every tool contract: geometry, artifact references, provenance.

Coordinate convention, everywhere in Osler: pixels of the *original* image (before any
resizing an expert does internally), origin at the top-left corner, x to the right, y down.
A box is ``xyxy`` = (x_min, y_min, x_max, y_max) with x_max/y_max exclusive.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["Frozen", "Box", "Point", "ArtifactRef", "Provenance", "ImageMeta"]


class Frozen(BaseModel):
    """Base of every contract: immutable, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Box(Frozen):
    """An axis-aligned box in original-image pixels, ``xyxy``."""

    x_min: float = Field(ge=0, description="left edge, pixels")
    y_min: float = Field(ge=0, description="top edge, pixels")
    x_max: float = Field(ge=0, description="right edge (exclusive), pixels")
    y_max: float = Field(ge=0, description="bottom edge (exclusive), pixels")

    @model_validator(mode="after")
    def _ordered(self) -> "Box":
        if self.x_max <= self.x_min or self.y_max <= self.y_min:
            raise ValueError(f"box must have x_max > x_min and y_max > y_min, got {self.xyxy}")
        return self

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        return (self.x_min, self.y_min, self.x_max, self.y_max)

    @property
    def area(self) -> float:
        return (self.x_max - self.x_min) * (self.y_max - self.y_min)

    @classmethod
    def from_xyxy(cls, xyxy: "tuple[float, float, float, float] | list[float]") -> "Box":
        x0, y0, x1, y1 = (float(v) for v in xyxy)
        return cls(x_min=x0, y_min=y0, x_max=x1, y_max=y1)


class Point(Frozen):
    """A point prompt in original-image pixels."""

    x: float = Field(ge=0, description="column, pixels")
    y: float = Field(ge=0, description="row, pixels")
    positive: bool = Field(default=True, description="True: inside the object; False: background")


class ArtifactRef(Frozen):
    """A reference to pixels kept by the session (mask, overlay, saliency map, change map).

    Tool JSON never carries pixels: only this id.  The session resolves it to a PNG path.
    """

    id: str = Field(description="session-unique artifact id, e.g. 'mask-3' or 'overlay-2'")
    kind: Literal["mask", "overlay", "saliency", "change_map", "image"] = Field(description="what the pixels are")
    path: str | None = Field(default=None, description="PNG path on this machine, when written")
    width: int = Field(ge=1, description="pixels")
    height: int = Field(ge=1, description="pixels")


class Provenance(Frozen):
    """Which expert produced a result, how, and how long it took."""

    expert: str = Field(description="expert name, e.g. 'blood_cell_detector'")
    backend: str = Field(description="backend name, e.g. 'opencv', 'yolo', 'sam', 'unet'")
    model: str = Field(description="model or method id, e.g. 'bccd-yolo11n-v1' or 'hsv-watershed-v1'")
    weights_sha256: str | None = Field(default=None, description="checksum of the weights file; None for classical methods")
    device: str = Field(default="cpu", description="'cpu' or 'cuda:N'")
    elapsed_ms: float = Field(ge=0, description="wall time of the expert call, milliseconds")
    note: str | None = Field(default=None, description="anything a reader must know, e.g. 'classical fallback'")
    doubt: str | None = Field(default=None, description="why the output on this input may be wrong (the input looks "
                              "unlike the expert's validation images); None: no such sign")


class ImageMeta(Frozen):
    """What is known about one study image, without its pixels."""

    role: Literal["current", "prior"]
    source: str = Field(description="file name (no directory) the image was read from")
    format: Literal["png", "jpeg", "tiff", "bmp", "dicom", "other"]
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    channels: int = Field(ge=1, le=4)
    pixel_spacing_mm: tuple[float, float] | None = Field(
        default=None, description="(row, column) spacing in millimetres, from DICOM PixelSpacing or ImagerPixelSpacing"
    )
    spacing_note: str | None = Field(
        default=None, description="why a DICOM pixel spacing tag was ignored (zero, negative, absurd, inconsistent)"
    )
    study_date: str | None = Field(default=None, description="ISO date YYYY-MM-DD, from DICOM StudyDate or the user")
    modality_tag: str | None = Field(default=None, description="DICOM Modality tag (CR, DX, CT, MR, US, ...)")
    body_part: str | None = Field(default=None, description="DICOM BodyPartExamined")
    window: tuple[float, float] | None = Field(default=None, description="(center, width) used to display DICOM")
    jpeg_quality: int | None = Field(
        default=None, ge=1, le=100, description="for a JPEG file, the quality (IJG 1-100 scale) its luminance "
        "quantisation table matches best, estimated: how hard it was compressed")
