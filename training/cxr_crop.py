"""Is this a whole chest film or a part of one?  A supervised check on the pneumonia classifier's own features.

A crop of a chest film is still a chest X-ray to the modality gate, and the classifier, which learnt from whole
films, had answered 6-16 % of crops confidently against the whole film's answer.  Two unsupervised checks (a feature
distance, the lung share) failed their rule (model card).  This one *learns* the difference: a logistic regression
on the classifier's pooled penultimate features (computed anyway when it answers; mean over the film and its mirror
image) of whole training films, with site-like changes drawn at random (gamma, contrast, blur, JPEG, scale + pad),
against random parts of them (each side 25-75 %, anywhere; halves).

* training: ``--train-n`` films of the classifier's training pool only;
* threshold: the lowest P(part) that flags at most ``--max-flag`` of the **validation fold's** whole films;
* reported, never tuned on: the **shifted** hold-out's whole films, their crops (30 / 45 / 60 %, halves), their
  site-like changes (the fixed set of ``training/cxr_ood.py``), two different shifted films side by side or stacked,
  and how many confident flips are caught;
* ``--montages``: two different training films side by side or stacked are trained as "not a whole film" too.

The rule (the one the unsupervised checks were held to, model card): shifted films flagged <= 3 %, every site-like
change <= 10 %, 30 % crops >= 50 % and the confident flips of 30 / 45 % crops >= 50 % caught.

``python -m training.cxr_crop --out runs/cxr_crop [--ship]`` prints the report; ``--ship`` writes
``experts/weights/cxr_crop.npz`` (the regression and its threshold).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from experts.cxr_decision import margin
from training.cxr_adult import _threshold, fit, score
from training.cxr_ood import _classifier, _embed, _read, views_of

__all__ = ["main"]


def _augment(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A whole film with a random site-like change (parameters drawn, unlike the fixed report set)."""
    import cv2

    g = rgb[..., 0].astype(np.float32) / 255
    k = int(rng.integers(5))
    if k == 0:
        g = g ** float(np.exp(rng.uniform(-0.7, 0.7)))
    elif k == 1:
        lo = rng.uniform(0, 0.35)
        g = lo + rng.uniform(0.4, 1 - lo) * g
    elif k == 2:
        g = cv2.GaussianBlur(g, (0, 0), float(rng.uniform(0.5, 2.5)))
    out = np.clip(g * 255, 0, 255).astype(np.uint8)
    if k == 3:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(8, 60))])
        out = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    elif k == 4:
        f = float(rng.uniform(0.8, 0.97))
        small = cv2.resize(out, None, fx=f, fy=f)
        pad = [int(rng.integers(0, 20)) for _ in range(4)]
        out = cv2.copyMakeBorder(small, *pad, cv2.BORDER_CONSTANT, value=int(rng.integers(0, 30)))
    return np.repeat(out[..., None], 3, axis=2)


def _part(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = rgb.shape[:2]
    if rng.random() < 0.2:  # a half
        return [rgb[:, : w // 2], rgb[:, w // 2:], rgb[: h // 2], rgb[h // 2:]][int(rng.integers(4))]
    ch, cw = int(h * rng.uniform(0.25, 0.75)), int(w * rng.uniform(0.25, 0.75))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return rgb[y:y + ch, x:x + cw]


def _montage(a: np.ndarray, b: np.ndarray, vertical: bool) -> np.ndarray:
    """Two films side by side (or stacked), the second resized to the first's height (width): a comparison
    screenshot."""
    import cv2

    h, w = a.shape[:2]
    if vertical:
        return np.vstack([a, cv2.resize(b, (w, max(1, round(b.shape[0] * w / b.shape[1]))))])
    return np.hstack([a, cv2.resize(b, (max(1, round(b.shape[1] * h / b.shape[0])), h))])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.cxr_crop", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("runs/cxr_crop"))
    ap.add_argument("--train-n", type=int, default=1000)
    ap.add_argument("--report-n", type=int, default=300)
    ap.add_argument("--max-flag", type=float, default=0.01)
    ap.add_argument("--c", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--montages", action="store_true", help="two different films side by side count as not whole")
    ap.add_argument("--ship", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.time()
    rng = np.random.default_rng(args.seed)
    import torch

    clf = _classifier()
    split = torch.load(clf.weights, map_location="cpu", weights_only=True)["split"]
    files = {f.name: f for f in sorted((args.data_root / "kermany_cxr" / "train").glob("*/*.jpeg"))}
    val, shifted = sorted(split["val"]), sorted(split["shifted"])
    pool = sorted(set(files) - set(val) - set(shifted))
    train = [pool[i] for i in sorted(rng.choice(len(pool), min(args.train_n, len(pool)), replace=False))]
    args.out.mkdir(parents=True, exist_ok=True)
    whole, parts = [], []
    for i, n in enumerate(train):
        rgb = _read(files[n])
        whole += [rgb, _augment(rgb, rng)]
        parts += [_part(rgb, rng) for _ in range(2)]
        if args.montages:  # two different films in one image
            parts.append(_montage(rgb, _read(files[train[(i + 1 + int(rng.integers(len(train) - 1))) % len(train)]]),
                                  bool(rng.random() < 0.5)))
    f_whole, _ = _embed(clf, whole)
    f_parts, _ = _embed(clf, parts)
    x = np.concatenate([f_whole, f_parts])
    y = np.r_[np.zeros(len(f_whole)), np.ones(len(f_parts))]
    model = fit(x, y, args.c)
    f_val, _ = _embed(clf, [_read(files[n]) for n in val])
    p_val = score(model, f_val)
    thr = _threshold(p_val, args.max_flag)
    sub = [shifted[i] for i in sorted(rng.choice(len(shifted), min(args.report_n, len(shifted)), replace=False))]
    f_sh, p_sh = _embed(clf, [_read(files[n]) for n in shifted])
    whole_p = dict(zip(shifted, p_sh))
    cthr, band = clf.threshold, clf.uncertain_band
    report: dict[str, Any] = {"train_films": len(train), "threshold": round(thr, 4), "c": args.c,
                              "flagged": {"validation": round(float((p_val >= thr).mean()), 4),
                                          "shifted": round(float((score(model, f_sh) >= thr).mean()), 4)},
                              "views_of_shifted_films": {}}
    views, owners = views_of(sub, files, rng)
    for vertical in (False, True):  # two different shifted films in one image: reported, owned by the first
        key = "montage_stacked" if vertical else "montage_side_by_side"
        views[key] = [_montage(_read(files[a]), _read(files[sub[(j + 7) % len(sub)]]), vertical)
                      for j, a in enumerate(sub)]
        owners[key] = list(sub)

    for name, ims in views.items():
        f, pv = _embed(clf, ims)
        flag = score(model, f) >= thr
        base = np.array([whole_p[o] for o in owners[name]])
        flipped = (pv >= cthr) != (base >= cthr)
        confident = flipped & (np.abs(margin(pv, cthr)) >= band)  # outside the uncertain band: stated as a class
        report["views_of_shifted_films"][name] = {
            "n": len(ims), "flagged": round(float(flag.mean()), 4), "flipped": int(flipped.sum()),
            "confident_flips": int(confident.sum()), "confident_flips_caught": int((confident & flag).sum())}
    report["wall_s"] = round(time.time() - t0, 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    print("| view | n | flagged | confident flips | caught |")
    for k2, r in report["views_of_shifted_films"].items():
        print(f"| {k2} | {r['n']} | {r['flagged']:.3f} | {r['confident_flips']} | {r['confident_flips_caught']} |")
    if args.ship:
        np.savez("experts/weights/cxr_crop.npz", **model, threshold=np.float32(thr),
                 model_id=np.array(clf.model_id), features=np.array("cxr classifier penultimate, mean of film + mirror"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
