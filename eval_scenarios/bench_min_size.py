"""``osler bench min-size [--sizes 32,48,...] [--json]``: how small may a smear or an endoscopy frame be before the
default counter goes wrong?  The numbers behind the modality gate's per-kind size floors
(:data:`experts.modality_gate.MIN_SIDE_BY_KIND`).

Each held-out image is shrunk (area interpolation, aspect kept) until its shorter side is each ``--sizes`` value, and
the default detector of its kind counts it directly (no gate, so a floor is not measured by itself):

* blood smears: the 58 BCCD smears the YOLO never saw (its checkpoint's validation list); WBC exact-count rate
  against the VOC annotation (the annotated cells stay in the shrunk image);
* endoscopy: the 33 held-out EndoTect frames (``experts/weights/polyp_val.txt``, 28 polyp, 5 negative); polyp
  exact-count rate against the mask's components.

Floor rule (written before the first run): the smallest tested size at which this size and every larger one stay
within 5 points of the full-size rate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

__all__ = ["shrink", "floor", "main"]

SIZES = (32, 48, 64, 96, 128, 160, 192, 256, 320)
TOLERANCE = 0.05


def shrink(rgb: np.ndarray, side: int) -> np.ndarray:
    """``rgb`` with its shorter side ``side`` px (never enlarged)."""
    import cv2

    h, w = rgb.shape[:2]
    f = side / min(h, w)
    if f >= 1:
        return rgb
    return cv2.resize(rgb, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA)


def floor(rates: dict[int, float], full: float, tolerance: float = TOLERANCE) -> int | None:
    """The smallest size whose rate, and every larger size's, is >= ``full - tolerance`` (None: no such size)."""
    ok = None
    for side in sorted(rates, reverse=True):
        if rates[side] < full - tolerance:
            break
        ok = side
    return ok


def _study(rgb: np.ndarray) -> Any:
    from experts.imaging import StudyImage

    return StudyImage.from_pixels(rgb, source="x.png")


def _rates(items: list[tuple[np.ndarray, int]], count: Callable[[Any], int], sizes: tuple[int, ...]
           ) -> tuple[float, dict[int, float]]:
    full = float(np.mean([count(_study(rgb)) == n for rgb, n in items]))
    return full, {s: float(np.mean([count(_study(shrink(rgb, s))) == n for rgb, n in items])) for s in sizes}


def unseen_smears(root: Path, settings: Any, limit: int | None = None) -> list[tuple[np.ndarray, dict[str, int]]]:
    """The smears the bundled blood-cell YOLO never trained on (the validation list its ``.pt`` records), with their
    annotated counts per class."""
    from experts.imaging import load_image
    from experts.ultralytics_env import validation_names
    from experts.yolo_detector import build_blood

    from .ground_truth import voc_counts

    yolo = build_blood(settings.model_copy(update={"device": "cpu", "expert_runtime": "torch"}))  # the .pt records
    yolo.load()  # (makes the checkpoint's classes loadable, as in bench_counts_cv)
    unseen = validation_names(yolo.weights)[:limit]  # the smears its checkpoint records as held out
    return [(load_image(root / "bccd" / "images" / f"{n}.jpg").pixels,
             voc_counts(root / "bccd" / "annotations" / f"{n}.xml")) for n in unseen]


def _smears(root: Path, settings: Any) -> tuple[list[tuple[np.ndarray, int]], Callable[[Any], int], str]:
    from experts.registry import ExpertPool

    det = ExpertPool(settings).detector("blood_cells")
    items = [(rgb, gt.get("WBC", 0)) for rgb, gt in unseen_smears(root, settings)]

    def count(study: Any) -> int:
        d = det.predict(study)
        return sum(1 for lab in d.labels if lab == "WBC")

    return items, count, f"{det.backend} ({det.why})"


def _frames(root: Path, settings: Any) -> tuple[list[tuple[np.ndarray, int]], Callable[[Any], int], str]:
    from experts.imaging import load_image
    from experts.registry import ExpertPool
    from experts.weights import bundled

    from .ground_truth import mask_ground_truth

    det = ExpertPool(settings).detector("polyp")
    names = [x.strip() for x in bundled("polyp_val.txt").read_text().splitlines() if x.strip() and x[0] != "#"]
    items = []
    for name in names:
        for folder in (root / "endotect_polyps", root / "endotect_polyps" / "negatives"):
            img = folder / "images" / name
            if img.exists():
                gt = mask_ground_truth(folder / "masks" / f"{img.stem}.png", img, "polyp")
                items.append((load_image(img).pixels, len(gt.boxes)))
                break

    def count(study: Any) -> int:
        return len(det.predict(study).boxes)

    return items, count, f"{det.backend} ({det.why})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="osler bench min-size", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from tools.settings import OslerSettings

    settings = OslerSettings()
    root = Path(args.data_root or settings.shared_data)
    sizes = tuple(int(s) for s in args.sizes.split(","))
    out: dict[str, Any] = {"tolerance": TOLERANCE, "sizes": sizes}
    t0 = time.perf_counter()
    for kind, load in (("blood_smear", _smears), ("endoscopy", _frames)):
        items, count, backend = load(root, settings)
        full, rates = _rates(items, count, sizes)
        out[kind] = {"images": len(items), "backend": backend, "full_size_exact": full,
                     "exact_by_side": {str(s): r for s, r in rates.items()}, "floor": floor(rates, full)}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps(out, indent=1))
    print(f"{'kind':<12} {'n':>3} {'full':>6} " + " ".join(f"{s:>5}" for s in sizes) + "  floor", file=sys.stderr
          if args.json else sys.stdout)
    for kind in ("blood_smear", "endoscopy"):
        r = out[kind]
        print(f"{kind:<12} {r['images']:>3} {r['full_size_exact']:>6.3f} "
              + " ".join(f"{r['exact_by_side'][str(s)]:>5.2f}" for s in sizes) + f"  {r['floor']}",
              file=sys.stderr if args.json else sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
