"""A test helper: write pixels as a minimal Secondary Capture DICOM (grey or RGB, 8 or 16 bits) with the tags a test
needs (study date, pixel spacing, modality, body part)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def write_secondary_capture(path: Path, pixels: np.ndarray, *, modality: str = "OT", date: str | None = None,
                            spacing_mm: float | None = None, photometric: str | None = None, bits: int = 8,
                            **tags: Any) -> None:
    """``pixels``: uint (H, W) grey or (H, W, 3) RGB; ``bits`` stored bits of a grey image (16-bit allocation
    above 8); ``tags``: any further DICOM keywords (``BodyPartExamined="CHEST"``)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    if date is not None:
        ds.StudyDate = date
    ds.Rows, ds.Columns = pixels.shape[:2]
    if pixels.ndim == 3:
        ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, photometric or "RGB", 0
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        data = np.ascontiguousarray(pixels, dtype=np.uint8)
    else:
        allocated = 8 if bits <= 8 else 16
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric or "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = allocated, bits, bits - 1, 0
        data = np.ascontiguousarray(pixels, dtype=np.uint8 if allocated == 8 else np.uint16)
    if spacing_mm is not None:
        ds.PixelSpacing = [spacing_mm, spacing_mm]
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.PixelData = data.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
