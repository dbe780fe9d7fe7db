"""Example cases for the web app, built from real public images under ``settings.shared_data``.

Each case names its files; a case whose files are missing on this machine is left out (logged at
debug level), so the app starts with whatever data is present.  Nothing is copied: the app reads
the files in place.  Sources and licences: ``../shared/data/README.md`` and each folder's
``SOURCE.md``; the DICOM case reads ``pydicom-data`` (MIT) from its installed package.
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

from tools.settings import OslerSettings

__all__ = ["ExampleCase", "example_cases"]

log = logging.getLogger(__name__)

# The Hannover set gives follow-up offsets in days, not dates; examples anchor them here.
_ANCHOR = dt.date(2020, 3, 1)


@dataclass(frozen=True)
class ExampleCase:
    """One ready-made question: a current study, an optional prior, and what to ask."""

    title: str
    question: str
    current: Path
    prior: Path | None = None
    current_date: str | None = None
    prior_date: str | None = None
    source: str = ""

    def files_exist(self) -> bool:
        return self.current.is_file() and (self.prior is None or self.prior.is_file())


def _first(folder: Path, pattern: str) -> Path | None:
    try:
        return next(iter(sorted(folder.glob(pattern))), None)
    except OSError:
        return None


def _hannover_pair(root: Path) -> ExampleCase | None:
    table = root / "hannover_cxr" / "longitudinal_pairs.csv"
    if not table.is_file():
        return None
    with table.open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("split", "dev") == "dev"]
    if not rows:
        return None
    r = rows[0]
    png = root / "hannover_cxr" / "png"
    prior_date = (_ANCHOR + dt.timedelta(days=int(r["prior_day"]))).isoformat()
    current_date = (_ANCHOR + dt.timedelta(days=int(r["current_day"]))).isoformat()
    return ExampleCase(
        title=f"Chest X-ray follow-up ({r['interval_days']} days): what changed since the prior?",
        question="What has changed compared with the prior study?",
        current=png / f"{r['current_image']}.png", prior=png / f"{r['prior_image']}.png",
        current_date=current_date, prior_date=prior_date,
        source="Hannover COVID-19 CXR, CC BY 3.0 (dates anchored at 2020-03-01; the set gives day offsets)",
    )


def _pydicom_radiograph() -> Path | None:
    spec = importlib.util.find_spec("data_store")  # the import name of the pydicom-data wheel
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "RG1_UNCR.dcm"
    return path if path.is_file() else None


def example_cases(settings: OslerSettings) -> list[ExampleCase]:
    """The example cases whose files exist here, in display order."""
    root = Path(settings.shared_data)
    cases: list[ExampleCase | None] = [
        ExampleCase(
            title="Blood smear: count the white cells",
            question="How many white blood cells are in this smear?",
            current=root / "bccd" / "images" / "BloodImage_00001.jpg", source="BCCD, MIT",
        ),
        ExampleCase(
            title="Blood smear: count the platelets",
            question="How many platelets are there?",
            current=root / "bccd" / "images" / "BloodImage_00005.jpg", source="BCCD, MIT",
        ),
    ]
    polyp = _first(root / "endotect_polyps" / "images", "*.jpg")
    if polyp is not None:
        cases.append(ExampleCase(
            title="Colonoscopy: find, outline and measure the polyp",
            question="Is there a polyp? Outline it and give its area.",
            current=polyp, source="EndoTect / HyperKvasir, CC BY 4.0",
        ))
    pneumonia = root / "kermany_cxr" / "train" / "PNEUMONIA" / "person1000_bacteria_2931.jpeg"
    cases.append(ExampleCase(
        title="Paediatric chest X-ray: pneumonia?",
        question="Does this chest X-ray show pneumonia?",
        current=pneumonia, source="Kermany et al. 2018, CC BY 4.0",
    ))
    cases.append(_hannover_pair(root))
    dicom = _pydicom_radiograph()
    if dicom is not None:
        cases.append(ExampleCase(
            title="DICOM chest radiograph: what kind of image is this?",
            question="What kind of image is this?",
            current=dicom, source="pydicom-data, MIT",
        ))
    out = []
    for case in cases:
        if case is None:
            continue
        if case.files_exist():
            out.append(case)
        else:
            log.debug("example %r left out: its files are not on this machine", case.title)
    return out
