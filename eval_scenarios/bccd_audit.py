"""The audited WBC labels of the BCCD smears the blood-cell YOLO never trained on.

BCCD's boxes are mostly right, but not always: on the 58 smears ``bccd_yolo.pt`` never saw, one
platelet is boxed as a WBC and one whole neutrophil has no box, so no counter can be scored above
56/58 there. ``bccd_wbc_audit.json`` (next to this file) records an audit of every one of the 58
against a rule written beforehand, what it changed and why, and what it found ambiguous and kept.
Benchmarks report both label sets (``osler bench counts-cv --labels audited``); the VOC files in
``../shared/data`` are never edited.

``python -m eval_scenarios.bccd_audit sheets --out DIR`` draws the sheets the audit was done on (the
ground-truth WBC boxes red, platelets blue, six smears to a sheet), so anyone can repeat it.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["AUDIT_PATH", "load_audit", "audited_counts", "draw_sheets", "main"]

AUDIT_PATH = Path(__file__).with_name("bccd_wbc_audit.json")


@functools.lru_cache(maxsize=1)
def load_audit(path: Path = AUDIT_PATH) -> dict[str, Any]:
    """The audit record: rule, reviewed smears, corrections (``wbc_labelled`` -> ``wbc_audited``)."""
    return json.loads(Path(path).read_text())


@functools.lru_cache(maxsize=1)
def _fixes() -> dict[str, dict[str, Any]]:
    return {c["image"]: c for c in load_audit()["corrections"]}


def audited_counts(name: str, counts: dict[str, int]) -> dict[str, int]:
    """``counts`` (class -> annotated count) with the audit's WBC correction for smear ``name`` applied.

    Raises ``ValueError`` when the annotation no longer holds the count the audit corrected (the data
    changed under the audit), so a stale audit is never applied silently."""
    fix = _fixes().get(name)
    if fix is None:
        return dict(counts)
    if int(counts.get("WBC", 0)) != int(fix["wbc_labelled"]):
        raise ValueError(f"{name}: the annotation has {counts.get('WBC', 0)} WBC, the audit corrected "
                         f"{fix['wbc_labelled']}: {AUDIT_PATH.name} does not match this data")
    return {**counts, "WBC": int(fix["wbc_audited"])}


def draw_sheets(data_root: Path, names: list[str], out: Path, per_sheet: int = 6) -> list[Path]:
    """Contact sheets of ``names`` with their WBC (red) and platelet (blue) boxes; no model output."""
    import cv2
    import numpy as np

    from .voc import read_voc

    colours = {"WBC": (0, 0, 255), "Platelets": (255, 0, 0)}
    tile_w, tile_h = 384, 288

    def tile(name: str) -> np.ndarray:
        bccd = data_root / "bccd"
        img = cv2.imread(str(bccd / "images" / f"{name}.jpg"))
        if img is None:
            raise FileNotFoundError(bccd / "images" / f"{name}.jpg")
        n_wbc = 0
        for o in read_voc(bccd / "annotations" / f"{name}.xml").objects:
            if o.label in colours and o.box is not None:
                x0, y0, x1, y1 = (int(round(v)) for v in o.box)
                cv2.rectangle(img, (x0, y0), (x1, y1), colours[o.label], 3)
                n_wbc += o.label == "WBC"
        cv2.putText(img, f"{name[-5:]} W={n_wbc}", (8, 34), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (0, 0, 0), 3)
        return cv2.resize(img, (tile_w, tile_h))

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    cols = 3
    for s in range(0, len(names), per_sheet):
        tiles = [tile(n) for n in names[s:s + per_sheet]]
        tiles += [np.full((tile_h, tile_w, 3), 255, np.uint8)] * (per_sheet - len(tiles))
        rows = [np.hstack(tiles[r:r + cols]) for r in range(0, per_sheet, cols)]
        p = out / f"sheet_{s // per_sheet:02d}.png"
        cv2.imwrite(str(p), np.vstack(rows))
        paths.append(p)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval_scenarios.bccd_audit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sh = sub.add_parser("sheets", help="draw the audit sheets of the reviewed smears")
    sh.add_argument("--out", type=Path, required=True)
    sh.add_argument("--data-root", type=Path, help="default: settings.shared_data (../shared/data)")
    sub.add_parser("show", help="print the audit record")
    args = ap.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.cmd == "show":
        print(json.dumps(load_audit(), indent=1))
        return 0
    from tools.settings import OslerSettings

    root = Path(args.data_root or OslerSettings().shared_data).resolve()
    for p in draw_sheets(root, list(load_audit()["reviewed"]), args.out):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
