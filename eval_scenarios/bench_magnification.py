"""``osler bench magnification [--scales 1,2,4] [--json]``: does the smear counter hold when the same field comes at
another pixel size (a high-resolution camera or scanner, an upscaled export)?

The 58 BCCD smears the YOLO never saw (as in ``osler bench min-size``) are enlarged by each ``--scales`` factor
(linear interpolation) and counted by the default blood-cell detector, which reads the red cells' size and
resamples the image to its training magnification (:mod:`experts.magnification`); ``--without`` also counts with
that step off (the detector as it was before, which tiles a large image at its own pixel size).  Reported: WBC
exact-count rate and platelet MAE against the VOC annotation, and the red-cell size ratio it read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main"]


def _enlarge(rgb: np.ndarray, f: float) -> np.ndarray:
    import cv2

    if f == 1:
        return rgb
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (round(w * f), round(h * f)), interpolation=cv2.INTER_LINEAR)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="osler bench magnification", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--scales", default="1,2,4")
    p.add_argument("--without", default="2", help="scales also counted with the magnification step off ('' none)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from experts.imaging import StudyImage
    from experts.registry import ExpertPool
    from tools.settings import OslerSettings

    from .bench_min_size import unseen_smears

    settings = OslerSettings()
    root = Path(args.data_root or settings.shared_data)
    t0 = time.perf_counter()
    det = ExpertPool(settings).detector("blood_cells")
    backend = f"{det.backend} ({det.why})"
    ruler = det.expert.ruler
    items = unseen_smears(root, settings, args.limit)
    runs = [(float(s), True) for s in args.scales.split(",")] + [
        (float(s), False) for s in args.without.split(",") if s.strip()]
    out: dict[str, Any] = {"smears": len(items), "backend": backend, "ruler": {
        "label": ruler.label, "side_px": ruler.side_px, "band": ruler.band}, "rows": []}
    for scale, on in runs:
        det.expert.ruler = ruler if on else None
        wbc, plt, ratios = [], [], []
        for rgb, gt in items:
            view = _enlarge(rgb, scale)
            if on:
                ratios.append(det.expert._magnification(view))
            d = det.predict(StudyImage.from_pixels(view, source="x.png"))
            wbc.append(d.labels.count("WBC") == gt.get("WBC", 0))
            plt.append(abs(d.labels.count("Platelets") - gt.get("Platelets", 0)))
        read = [r for r in ratios if r is not None]
        out["rows"].append({"scale": scale, "magnification_step": on, "wbc_exact": float(np.mean(wbc)),
                            "platelet_mae": float(np.mean(plt)),
                            "ratio_read": ([round(float(np.quantile(read, q)), 2) for q in (0, 0.5, 1)]
                                           if read else None), "not_read": len(ratios) - len(read)})
    det.expert.ruler = ruler
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(out, indent=1))
    print(f"{'scale':>5} {'step':>4} {'WBC exact':>9} {'PLT MAE':>7}  ratio read (min/median/max), not read",
          file=sys.stderr if args.json else sys.stdout)
    for r in out["rows"]:
        print(f"{r['scale']:>5g} {'on' if r['magnification_step'] else 'off':>4} {r['wbc_exact']:>9.3f} "
              f"{r['platelet_mae']:>7.2f}  {r['ratio_read']}, {r['not_read'] if r['magnification_step'] else '-'}",
              file=sys.stderr if args.json else sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
