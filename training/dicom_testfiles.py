"""pydicom's and pydicom-data's DICOM test files that are on disk (never downloaded), for the modality gate's
training data, its benchmark and its tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

__all__ = ["local_dicom_testfiles", "ct_mr_images"]


def local_dicom_testfiles() -> dict[str, Path]:
    """pydicom's and pydicom-data's test files that are already on disk, by file name.

    ``pydicom.data.get_testdata_files()`` also tries to *download* every file of the online
    pydicom-data list that is not in its cache; this lists the local folders only (no network).
    """
    from pydicom.data.data_manager import DATA_ROOT, external_data_sources

    files: dict[str, Path] = {}
    for source in external_data_sources().values():  # pydicom-data's installed ``data_store``: a local glob
        for p in source.get_paths("**/*", 0):
            files.setdefault(Path(p).name, Path(p))
    for p in sorted((Path(DATA_ROOT) / "test_files").rglob("*")):
        if p.is_file():
            files.setdefault(p.name, p)
    return files


def ct_mr_images() -> Iterator[tuple[str, Any]]:
    """(file name, loaded StudyImage) of every local CT or MR test file (tag Modality); the ``693_*`` files
    (CC BY-NC-SA) and files that do not load (some are broken on purpose) are skipped."""
    from experts.imaging import load_image

    for name, path in sorted(local_dicom_testfiles().items()):
        if name.startswith("693_") or path.suffix not in (".dcm", ""):
            continue
        try:
            img = load_image(path)
        except Exception:  # noqa: BLE001 - test files include broken ones on purpose
            continue
        if img.dicom_tags.get("Modality") in ("CT", "MR"):
            yield name, img
