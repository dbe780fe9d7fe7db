"""Is this a whole chest film, or a part of one?  The share of the image the lung U-Net calls lung.

On a whole film the lung fields take a roughly fixed share of the image (0.28-0.44 on validation films); a part of a
film (a crop, a half, a zoomed screenshot) shows them too large, too small, or not at all (the U-Net often finds no
lung in a small crop).  The accepted range is the ``[--low, --high]`` quantile range of the validation-fold films
(real, whole films only); the shifted hold-out, its site-like changes and its crops are only reported (see
``training/cxr_ood.py`` for the views and ``runs/cxr_ood/decision.txt`` for the rule written before the run).
A "confident flip" is a view answered outside the classifier's uncertain band on the other side of the threshold
from the whole film's answer (a flip inside the band is answered "uncertain" already).

The share is taken over the picture without its uniform border with ``--trim`` (a film shrunk inside a black frame
is still a whole film).  Measured twice, neither adopted (rules in ``runs/cxr_ood/decision.txt``; the classifier's
card has the numbers): with the v3 lung U-Net it caught crops but flagged 73 % of blurred whole films; with the v4
U-Net (trained on blurred, low-resolution and JPEG films) blurred films pass but it finds a whole film's lung share
inside most magnified crops (30 % crops flagged 16 %).

``python -m training.cxr_whole_film --trim --out runs/cxr_whole14`` writes ``report.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from experts.cxr_decision import margin
from experts.cxr_preprocess import content_box
from training.cxr_ood import _classifier, _embed, _read, views_of

__all__ = ["main", "content_box", "lung_share"]



def lung_share(image: np.ndarray, lung_mask: np.ndarray | None) -> float:
    """Share of the picture (uniform border trimmed) inside the lung mask; 0 when no lung was found."""
    if lung_mask is None:
        return 0.0
    x0, y0, x1, y1 = content_box(image)
    inner = lung_mask[y0:y1, x0:x1]
    return float(inner.mean()) if inner.size else 0.0


def _share(flags: np.ndarray) -> float:
    return round(float(np.mean(flags)), 4)


def _lung(settings: Any, weights: Path | None = None) -> Any:
    from experts.unet_segmenter import build_lung, make_segmenter

    return make_segmenter("lung", weights, device="cpu") if weights else build_lung(settings)


def _shares(seg: Any, trim: bool, images: list[np.ndarray]) -> np.ndarray:
    from experts.imaging import StudyImage
    out = []
    for rgb in images:
        m = seg.predict(StudyImage.from_pixels(rgb, source="x.png"))
        mask = m.masks[0] if m.masks else None
        out.append(lung_share(rgb, mask) if trim else float(mask.mean()) if mask is not None else 0.0)
    return np.array(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.cxr_whole_film", description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--out", type=Path, default=Path("runs/cxr_whole"))
    p.add_argument("--low", type=float, default=0.005)
    p.add_argument("--high", type=float, default=0.995)
    p.add_argument("--report-n", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lung-weights", type=Path, help="a lung U-Net checkpoint to measure (default: the shipped one)")
    p.add_argument("--range-out", type=Path, help="also write the accepted range for experts/whole_film.py here")
    p.add_argument("--trim", action="store_true", help="share over the image without its uniform border")
    p.add_argument("--debug-n", type=int, default=None, help="only the first N films of each set (a smoke run)")
    args = p.parse_args(argv)
    import torch

    from tools.settings import OslerSettings

    t0 = time.time()
    clf = _classifier()
    seg = _lung(OslerSettings(), args.lung_weights)
    split = torch.load(clf.weights, map_location="cpu", weights_only=True)["split"]
    files = {f.name: f for f in sorted((args.data_root / "kermany_cxr" / "train").glob("*/*.jpeg"))}
    val = sorted(split["val"])[:args.debug_n]
    s_val = _shares(seg, args.trim, [_read(files[n]) for n in val])
    lo, hi = (float(np.quantile(s_val, q)) for q in (args.low, args.high))

    def out(s: np.ndarray) -> np.ndarray:
        return (s < lo) | (s > hi)

    sh = sorted(split["shifted"])[:args.debug_n]
    s_sh = _shares(seg, args.trim, [_read(files[n]) for n in sh])
    report: dict[str, Any] = {"range": [lo, hi], "quantiles": [args.low, args.high],
                              "flagged": {"validation": _share(out(s_val)), "shifted": _share(out(s_sh))}}
    thr, band = float(clf._ckpt["threshold"]), float(clf._ckpt["uncertain_band"])

    def side(p: np.ndarray) -> np.ndarray:
        return p >= thr

    def sure(p: np.ndarray) -> np.ndarray:
        return np.abs(margin(p, thr)) >= band

    rng_views = np.random.default_rng(args.seed + 1)  # films and crops drawn as in training/cxr_ood.py (other draws)
    sub = [sh[i] for i in sorted(rng_views.choice(len(sh), min(args.report_n, len(sh)), replace=False))]
    _, p_sub = _embed(clf, [_read(files[n]) for n in sub])
    whole = dict(zip(sub, p_sub))
    views, owners = views_of(sub, files, rng_views)
    for k in (90, 180):  # reported only, not part of the rule: turned films (the gate's turn check comes first)
        views[f"turned{k}"] = [np.ascontiguousarray(np.rot90(_read(files[n]), k // 90)) for n in sub]
        owners[f"turned{k}"] = list(sub)
    per_view = {}
    for k, ims in views.items():
        _, pv = _embed(clf, ims)
        flag = out(_shares(seg, args.trim, ims))
        pw = np.array([whole[o] for o in owners[k]])
        flipped = side(pv) != side(pw)
        confident = flipped & sure(pv)
        per_view[k] = {"n": len(ims), "flagged": _share(flag), "answer_flipped": _share(flipped),
                       "confident_flips": int(confident.sum()), "confident_flips_flagged": int((confident & flag).sum())}
    report["views_of_shifted_films"] = per_view
    for k, paths in {"hannover_adult": sorted((args.data_root / "hannover_cxr" / "png").glob("*.png")),
                     "nih_64px": sorted((args.data_root / "nih_cxr14_64" / "images").glob("*.png"))[:300]}.items():
        if paths:
            report["flagged"][k] = _share(out(_shares(seg, args.trim, [_read(x) for x in paths])))
    report["quantiles_validation"] = {q: round(float(np.quantile(s_val, q)), 4) for q in (0.5, 0.9, 0.95, 0.99)}
    seg.load()
    report["lung_model"] = {"id": seg.model_id, "sha256": seg.sha256, "trim_border": bool(args.trim)}
    report["wall_s"] = round(time.time() - t0, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    if args.range_out:  # the measured range, for a check that would read it (none ships: see the docstring)
        args.range_out.write_text(json.dumps({
            "range": [round(lo, 4), round(hi, 4)], "lung_model_sha256": seg.sha256, "lung_model_id": seg.model_id,
            "quantiles": [args.low, args.high], "n_validation_films": len(val), "trim_border": bool(args.trim),
            "source": "training/cxr_whole_film.py on the Kermany validation-fold films of the CXR classifier"},
            indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
