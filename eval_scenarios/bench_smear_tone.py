"""``osler bench smear-tone [--json]``: does the blood-cell counter's tone doubt (:mod:`experts.smear_tone`) fire on
the brightened smears whose platelets it loses, and stay quiet on ordinary ones?

The 58 BCCD smears the YOLO never trained on (``train["val"]`` in its checkpoint) are counted by the default
blood-cell detector as they are and after a change of tone (brightness +20, +40, -40; gamma 0.5, 0.7, 1.5; contrast
x0.7 about mid-grey).  Counts are the ``count`` tool's (same-label boxes overlapping more than IoU 0.5 are one) against
the VOC annotation.  Reported per condition: WBC exact rate, platelet MAE, how often the doubt fires, and of the wrong
counts (WBC wrong, or platelets off by 2 or more) how many it flags, and how many right counts it flags; its rate on
all 292 development smears is reported too.  The doubt is computed on the changed pixels directly, so the numbers
hold whether it is wired into the detector or not.

Rule, written before the first run: the doubt is adopted (wired into the detector) when it fires on at most 2 % of
the original unseen smears and of the 292 development smears, and fires on most (over half) of the smears whose
platelets are under-counted (fewer found than annotated) under brightness +40 and under gamma 0.5 each.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .bench_frame_quality import _gamma

__all__ = ["CONDITIONS", "main"]


def _offset(k: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda rgb: np.clip(rgb.astype(np.int16) + k, 0, 255).astype(np.uint8)


def _contrast(c: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda rgb: np.clip((rgb.astype(np.float32) - 128) * c + 128, 0, 255).astype(np.uint8)


CONDITIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "original": lambda rgb: rgb, "brightness +20": _offset(20), "brightness +40": _offset(40),
    "brightness -40": _offset(-40), "gamma 0.5": _gamma(0.5), "gamma 0.7": _gamma(0.7), "gamma 1.5": _gamma(1.5),
    "contrast x0.7": _contrast(0.7)}


def _counts(d: Any) -> dict[str, int]:
    """WBC and platelet counts as the ``count`` tool makes them (duplicates merged)."""
    from agent.boundary.calls import DEDUP_IOU
    from experts.geometry import dedup_boxes

    keep = dedup_boxes(d.boxes, d.scores, d.labels, DEDUP_IOU)
    labels = [d.labels[i] for i in keep]
    return {c: labels.count(c) for c in ("WBC", "Platelets")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="osler bench smear-tone", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from experts.imaging import StudyImage, load_image
    from experts.registry import ExpertPool
    from experts.smear_tone import PLASMA_RANGE, smear_doubt, smear_stats
    from tools.settings import OslerSettings

    from .bench_min_size import unseen_smears

    settings = OslerSettings()
    root = Path(args.data_root or settings.shared_data)
    bccd = root / "bccd"
    t0 = time.perf_counter()
    dev = (bccd / "split.txt").read_text().split()
    dev_tone, dev_flagged = [], 0
    for n in dev:
        rgb = load_image(bccd / "images" / f"{n}.jpg").pixels
        dev_tone.append(smear_stats(rgb))
        dev_flagged += smear_doubt(rgb) is not None
    det = ExpertPool(settings).detector("blood_cells")
    items = unseen_smears(root, settings, args.limit)
    out: dict[str, Any] = {"smears": len(items), "backend": f"{det.backend} ({det.why})",
                           "plasma_limits": list(PLASMA_RANGE),
                           "development": {"smears": len(dev), "flagged": dev_flagged,
                                           "plasma": [round(min(dev_tone), 1), round(max(dev_tone), 1)]},
                           "rows": []}
    for name, change in CONDITIONS.items():
        wbc_ok, plt_err, flagged, tone = [], [], [], []
        for rgb, gt in items:
            view = change(rgb)
            d = det.predict(StudyImage.from_pixels(view, source="x.png"))
            n = _counts(d)
            wbc_ok.append(n["WBC"] == gt.get("WBC", 0))
            plt_err.append(n["Platelets"] - gt.get("Platelets", 0))
            flagged.append(smear_doubt(view) is not None)  # the doubt itself, wired into the detector or not
            tone.append(smear_stats(view))
        ok, err, f = np.array(wbc_ok), np.array(plt_err), np.array(flagged)
        right = ok & (np.abs(err) < 2)
        under = err < 0
        out["rows"].append({"condition": name, "wbc_exact": float(ok.mean()), "platelet_mae": float(np.abs(err).mean()),
                            "flagged": float(f.mean()), "wrong": int((~right).sum()),
                            "wrong_flagged": int((~right & f).sum()), "right_flagged": int((right & f).sum()),
                            "platelets_under": int(under.sum()), "under_flagged": int((under & f).sum()),
                            "plasma": [round(min(tone), 1), round(max(tone), 1)]})
    rows = {r["condition"]: r for r in out["rows"]}
    caught = all(rows[c]["under_flagged"] > rows[c]["platelets_under"] / 2 for c in ("brightness +40", "gamma 0.5"))
    out["rule_met"] = bool(rows["original"]["flagged"] <= 0.02 and dev_flagged <= 0.02 * len(dev) and caught)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    stream = sys.stderr if args.json else sys.stdout
    if args.json:
        print(json.dumps(out, indent=1))
    print(f"development smears flagged {dev_flagged}/{len(dev)}, plasma V {out['development']['plasma']}, "
          f"limits {list(PLASMA_RANGE)}", file=stream)
    print(f"{'condition':<16} {'WBC exact':>9} {'PLT MAE':>7} {'flagged':>7} {'wrong':>5} {'caught':>6} "
          f"{'right flagged':>13} {'PLT under':>9} {'flagged':>7}  plasma V", file=stream)
    for r in out["rows"]:
        print(f"{r['condition']:<16} {r['wbc_exact']:>9.3f} {r['platelet_mae']:>7.2f} {r['flagged']:>7.3f} "
              f"{r['wrong']:>5d} {r['wrong_flagged']:>6d} {r['right_flagged']:>13d} {r['platelets_under']:>9d} "
              f"{r['under_flagged']:>7d}  {r['plasma']}", file=stream)
    print(f"rule met: {out['rule_met']}", file=stream)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
