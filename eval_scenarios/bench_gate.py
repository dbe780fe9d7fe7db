"""``osler bench gate``: does the modality gate know when it does not know?

Images: the gate's *test* groups (``training/gate_data.py``: 25 % of the groups of each origin are
held out from training, seed 0; half of those tuned the refusal limits, the other half, used here,
was seen by neither training nor tuning), each in every transform of ``gate_data.TRANSFORMS``
(original, grayscale, inverted, cropped, rotated by 90 degrees and by 10-30 degrees, JPEG quality 15,
16-bit TIFF read back through ``load_image``, down- and up-sized, blurred).  Real non-medical photographs
(scikit-image, matplotlib, gradio and ultralytics sample photos, LFW faces) are reported on their own.

For each image the gate's verdict is *routed* (a trusted medical kind: its diagnosis tools may run) or
*withheld* (kind ``other``, or a verdict the gate does not trust).  Printed and written as JSON:

* per kind and transform: routed to the true kind / withheld / routed to a wrong kind;
* the **false-accept rate of each diagnosis tool**: the share of images of any other kind (and of the
  photos) that the gate would let reach it, per transform and overall;
* the DICOM path: pydicom's CT/MR test files are never called a chest X-ray.

Usage: ``osler bench gate [--out runs/bench_gate.json] [--weights PATH]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["DIAGNOSIS_TOOLS", "main", "run"]

ROOT = Path(__file__).resolve().parents[1]


def _diagnosis_tools() -> dict[str, tuple[str, ...]]:
    """Tool (as the planner calls it) -> the image kinds it accepts, from ``tools.kinds``."""
    from tools.kinds import CLASSIFY_TASK_KINDS, IMAGE_KINDS
    from tools.targets import TARGET_KINDS

    tools = {f"classify {t}": k for t, k in CLASSIFY_TASK_KINDS.items() if k != IMAGE_KINDS}
    tools.update({f"detect/count/segment {t}": k for t, k in TARGET_KINDS.items() if k != IMAGE_KINDS})
    return tools


DIAGNOSIS_TOOLS = _diagnosis_tools()


def _gate_data():
    sys.path.insert(0, str(ROOT / "training"))
    try:
        import gate_data
        import train_gate
    finally:
        sys.path.remove(str(ROOT / "training"))
    return gate_data, train_gate


def _verdicts(gate, views) -> list[dict]:
    from experts.imaging import StudyImage
    from tools.common import ImageMeta

    rows = []
    for src, view, expected, rgb in views:
        meta = ImageMeta(role="current", source="bench", format="png", width=int(rgb.shape[1]),
                         height=int(rgb.shape[0]), channels=3)
        out = gate.predict(StudyImage(pixels=rgb, meta=meta))
        routed = out.label if (out.trusted and out.label != "other") else None
        rows.append({"kind": src.kind, "origin": src.origin, "group": src.group, "transform": view,
                     "expected": expected, "label": out.label, "p": round(out.probabilities[out.label], 4),
                     "trusted": out.trusted, "routed": routed, "doubt": out.doubt})
    return rows


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


def summarise(rows: list[dict], photo_origins: tuple[str, ...]) -> dict:
    kinds = sorted({r["kind"] for r in rows})
    transforms = list(dict.fromkeys(r["transform"] for r in rows))
    per: dict[str, dict] = {}
    for kd in kinds:
        for t in transforms:
            sel = [r for r in rows if r["kind"] == kd and r["transform"] == t]
            if not sel:
                continue
            right = sum(r["routed"] == kd for r in sel)
            withheld = sum(r["routed"] is None for r in sel)
            per[f"{kd}/{t}"] = {"n": len(sel), "routed_true_kind": _rate(right, len(sel)),
                                "withheld": _rate(withheld, len(sel)),
                                "routed_wrong_kind": _rate(len(sel) - right - withheld, len(sel))}
    photos = [r for r in rows if r["origin"] in photo_origins]
    fa: dict[str, dict] = {}
    for tool, accepted in DIAGNOSIS_TOOLS.items():
        others = [r for r in rows if r["kind"] not in accepted]
        own = [r for r in rows if r["kind"] in accepted and r["expected"] in accepted]
        entry = {"accepts": list(accepted),
                 "false_accept": _rate(sum(r["routed"] in accepted for r in others), len(others)),
                 "n_other_kinds": len(others),
                 "false_accept_photos": _rate(sum(r["routed"] in accepted for r in photos), len(photos)),
                 "n_photos": len(photos),
                 "own_kind_reaches_tool": _rate(sum(r["routed"] in accepted for r in own), len(own)),
                 "per_transform": {}}
        for t in transforms:
            sel = [r for r in others if r["transform"] == t]
            entry["per_transform"][t] = _rate(sum(r["routed"] in accepted for r in sel), len(sel))
        fa[tool] = entry
    wrong = [r for r in rows if r["routed"] is not None and r["routed"] != r["kind"]]
    return {"per_kind_transform": per, "false_accept": fa, "n_views": len(rows), "n_photo_views": len(photos),
            "photos_withheld": _rate(sum(r["routed"] is None for r in photos), len(photos)),
            "misrouted_examples": [{k: r[k] for k in ("group", "transform", "label", "p")} for r in wrong[:25]]}


def dicom_check(gate, gate_data) -> dict:
    """pydicom's / pydicom-data's CT and MR files: decided by tags, never a chest X-ray."""
    n = cxr = ct = 0
    for _name, img in gate_data.ct_mr_images():
        out = gate.predict(img)
        n, cxr, ct = n + 1, cxr + (out.label == "chest_xray"), ct + (out.label == "ct_mr")
    return {"ct_mr_files": n, "called_ct_mr": ct, "called_chest_xray": cxr}


def run(shared: Path, seed: int = 0, weights: Path | None = None) -> dict:
    from experts.modality_gate import ModalityGate

    gate_data, train_gate = _gate_data()
    gate = ModalityGate(weights) if weights else ModalityGate()
    gate.load()
    t0 = time.perf_counter()
    _, val = gate_data.split_groups(gate_data.gather_sources(shared, seed), seed, 0.25)
    _, test = gate_data.split_tune_test(val, seed)
    views = train_gate.transformed_views(test, seed + 23, n_aug=0)
    rows = _verdicts(gate, views)
    report = summarise(rows, gate_data.PHOTO_ORIGINS)
    report.update({"seed": seed, "test_sources": len(test), "weights": str(gate.weights),
                   "model": gate.model_id, "dicom": dicom_check(gate, gate_data),
                   "elapsed_s": round(time.perf_counter() - t0, 1)})
    report["rows"] = rows
    return report


def table(report: dict) -> str:
    lines = ["| kind / transform | n | routed to true kind | withheld | routed to a wrong kind |", "|---|---|---|---|---|"]
    for key, v in report["per_kind_transform"].items():
        lines.append(f"| {key} | {v['n']} | {v['routed_true_kind']:.3f} | {v['withheld']:.3f} | "
                     f"{v['routed_wrong_kind']:.3f} |")
    transforms = list(next(iter(report["false_accept"].values()))["per_transform"])
    lines += ["", "False-accept rate of each diagnosis tool (images of other kinds that would reach it):", "",
              "| tool | all | photos | own kind reaches it | " + " | ".join(transforms) + " |",
              "|---|---|---|---|" + "---|" * len(transforms)]
    for tool, v in report["false_accept"].items():
        per = " | ".join("-" if v["per_transform"][t] is None else f"{v['per_transform'][t]:.3f}" for t in transforms)
        lines.append(f"| {tool} | {v['false_accept']:.4f} (n={v['n_other_kinds']}) | {v['false_accept_photos']:.3f} "
                     f"(n={v['n_photos']}) | {v['own_kind_reaches_tool']:.3f} | {per} |")
    d = report["dicom"]
    lines += ["", f"photos withheld: {report['photos_withheld']:.3f} of {report['n_photo_views']} views; "
              f"DICOM CT/MR files: {d['ct_mr_files']}, called ct_mr {d['called_ct_mr']}, called chest_xray "
              f"{d['called_chest_xray']}; {report['n_views']} views of {report['test_sources']} test sources in "
              f"{report['elapsed_s']} s"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="osler bench gate", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared-data", default=str(ROOT / ".." / "shared" / "data"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--weights", type=Path, default=None, help="gate npz (default: the bundled one)")
    ap.add_argument("--out", type=Path, default=Path("runs/bench_gate.json"))
    args = ap.parse_args(argv)
    shared = Path(args.shared_data)
    if not shared.is_dir():
        print(f"osler bench gate: dev data not found at {shared}", file=sys.stderr)
        return 2
    report = run(shared, args.seed, args.weights)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(table(report))
    print(f"\nJSON: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
