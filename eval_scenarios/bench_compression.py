"""``osler bench compression [--qualities 90,50,...] [--json]``: how hard may an image be JPEG-compressed before the
default expert of its kind goes wrong?  The numbers behind the modality gate's per-kind quality floors
(:data:`experts.modality_gate.MIN_JPEG_QUALITY_BY_KIND`).

Each held-out image is saved as a JPEG at each ``--qualities`` value (PIL, 4:2:0 chroma as cameras and browsers
write it), read back through :func:`experts.imaging.load_image` (which also estimates the quality from the file's
quantisation table: the ``estimated`` column checks that estimate) and given to the default expert of its kind
directly (no gate, so a floor is not measured by itself):

* blood smears: the 58 BCCD smears the YOLO never saw; WBC exact-count rate against the VOC annotation;
* endoscopy: the 33 held-out EndoTect frames (28 polyp, 5 negative); polyp exact-count rate against the mask;
* chest films: ``--films`` films (seeded) of the CXR classifier's shifted hold-out; normal-vs-pneumonia accuracy of
  its decision at its own threshold, and how many wrong answers were given as certain (outside its uncertain band).

Floor rule (written before the first run, as for ``osler bench min-size``): the lowest tested quality at which this
quality and every higher one stay within 5 points of the rate on the original file.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .bench_min_size import TOLERANCE, _frames, _smears, floor  # the same rule: the lowest quality that holds

__all__ = ["recompress", "main"]

QUALITIES = (90, 75, 50, 40, 30, 20, 15, 10, 5)


def recompress(rgb: np.ndarray, quality: int, folder: Path) -> Any:
    """``rgb`` saved as a JPEG of ``quality`` in ``folder`` and read back as a study image (its meta carries the
    estimated quality)."""
    from PIL import Image

    from experts.imaging import load_image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    path = folder / f"q{quality}.jpg"
    path.write_bytes(buf.getvalue())
    return load_image(path)


def _films(root: Path, settings: Any, n: int, seed: int) -> tuple[list[tuple[np.ndarray, Any]], Callable, str]:
    import torch

    from experts.cxr_decision import decide
    from experts.imaging import load_image
    from experts.registry import ExpertPool
    from experts.weights import bundled

    from .kermany import kermany_label

    clf = ExpertPool(settings).classifier("cxr_pneumonia")
    split = torch.load(str(bundled("cxr_classifier.pt")), map_location="cpu", weights_only=True).get("split", {})
    names = sorted(split.get("shifted", []))
    paths = {p.name: p for p in (root / "kermany_cxr").rglob("*.jpeg")}
    chosen = [paths[x] for x in names if x in paths]
    pick = np.random.default_rng(seed).choice(len(chosen), min(n, len(chosen)), replace=False)
    items = [(load_image(chosen[i]).pixels, kermany_label(chosen[i])) for i in sorted(pick)]
    expert = clf.expert

    def answer(study: Any) -> tuple[bool, bool]:
        probs = clf.predict(study).probabilities
        d = decide(probs, expert.threshold, expert.uncertain_band)
        return d.label == "normal", d.uncertain

    return items, answer, f"{clf.backend} ({clf.why})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="osler bench compression", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, default=None)
    p.add_argument("--qualities", default=",".join(map(str, QUALITIES)))
    p.add_argument("--films", type=int, default=120, help="chest films drawn from the classifier's shifted hold-out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", default="blood_smear,endoscopy,chest_xray")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    from tools.settings import OslerSettings

    settings = OslerSettings()
    root = Path(args.data_root or settings.shared_data)
    qualities = tuple(sorted((int(q) for q in args.qualities.split(",")), reverse=True))
    out: dict[str, Any] = {"tolerance": TOLERANCE, "qualities": qualities}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for kind in args.kinds.split(","):
            estimated: dict[int, list[int | None]] = {q: [] for q in qualities}
            if kind == "chest_xray":
                items, answer, backend = _films(root, settings, args.films, args.seed)

                def score(study: Any, truth: Any) -> tuple[bool, bool]:
                    normal, uncertain = answer(study)
                    right = normal == (truth == "normal")
                    return right, (not right and not uncertain)
            else:
                items, count, backend = (_smears if kind == "blood_smear" else _frames)(root, settings)

                def score(study: Any, truth: Any) -> tuple[bool, bool]:
                    return count(study) == truth, False
            base = [score(recompress(rgb, 100, folder), truth) for rgb, truth in items]  # the original, as a q100 file
            full = float(np.mean([r for r, _ in base]))
            rates, confident_wrong = {}, {}
            for q in qualities:
                res = []
                for rgb, truth in items:
                    study = recompress(rgb, q, folder)
                    estimated[q].append(study.meta.jpeg_quality)
                    res.append(score(study, truth))
                rates[q] = float(np.mean([r for r, _ in res]))
                confident_wrong[q] = int(sum(c for _, c in res))
            out[kind] = {"images": len(items), "backend": backend, "original_rate": full,
                         "rate_by_quality": {str(q): rates[q] for q in qualities},
                         "estimate_exact": {str(q): float(np.mean([e == q for e in estimated[q]])) for q in qualities},
                         "floor": floor(rates, full)}
            if kind == "chest_xray":
                out[kind]["confident_wrong_by_quality"] = {str(q): confident_wrong[q] for q in qualities}
                out[kind]["original_confident_wrong"] = int(sum(c for _, c in base))
    out["seconds"] = round(time.perf_counter() - t0, 1)
    stream = sys.stderr if args.json else sys.stdout
    if args.json:
        print(json.dumps(out, indent=1))
    print(f"{'kind':<12} {'n':>3} {'orig':>6} " + " ".join(f"{'q' + str(q):>5}" for q in qualities) + "  floor",
          file=stream)
    for kind in args.kinds.split(","):
        r = out[kind]
        print(f"{kind:<12} {r['images']:>3} {r['original_rate']:>6.3f} "
              + " ".join(f"{r['rate_by_quality'][str(q)]:>5.2f}" for q in qualities) + f"  {r['floor']}", file=stream)
        if "confident_wrong_by_quality" in r:
            print(f"{'  sure+wrong':<12} {'':>3} {r['original_confident_wrong']:>6d} "
                  + " ".join(f"{r['confident_wrong_by_quality'][str(q)]:>5d}" for q in qualities), file=stream)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
