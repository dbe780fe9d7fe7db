"""Train the modality gate's pixel model: a small MLP (or softmax regression) on gate features.

Data: :mod:`gate_data` (real dev images per kind, synthetic fundus / CT-MR / graphics, seeded
group split: ``--val-frac`` of the groups of each origin held out).  Each training source gives its
clean image plus augmented views; each kind gets about ``--per-kind`` views shared equally by its
origins (:func:`views_per_source`; crop, rotation,
flips, brightness/contrast/gamma, hue/saturation jitter, blur, down-sampling, JPEG, grey; a few inverted
views labelled ``other``).  Inputs: :func:`experts.gate_features.gate_features` joined with the ``--pca``
principal components of the ImageNet MobileNetV2 embedding (:mod:`experts.gate_deep`), standardised.  Model: ``--hidden`` ReLU units (0 =
softmax regression), class-balanced cross-entropy, AdamW, full batch.  The softmax temperature is
fitted on out-of-fold logits of a 5-fold group cross-validation of the training set.  Held-out groups
are scored clean and augmented (:func:`evaluate_saved`).

Output: ``experts/weights/modality_gate.npz`` with ``W0, b0[, W1, b1]`` (ReLU between), ``mu``,
``sd`` and a JSON ``meta`` (kinds, feature version, temperature); read by ``experts.modality_gate``.

Usage:  OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python training/train_gate.py
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gate_data import (  # noqa: E402  (sibling module of this script)
    KINDS,
    TRAIN_AS_OTHER,
    TRANSFORMS,
    Source,
    augment,
    ct_mr_images,
    gather_sources,
    split_groups,
    split_tune_test,
)

log = logging.getLogger("train_gate")


INVERT_FRACTION = 0.06
"""Share of augmented views that are inverted and labelled ``other`` (``gate_data.TRAIN_AS_OTHER``)."""


def featurize(sources: list[Source], n_aug: dict[str, int], seed: int, clean: bool = True
              ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Features of each source (clean when ``clean``) and of ``n_aug[origin]`` augmented views
    (``INVERT_FRACTION`` of them inverted and labelled ``other``).

    Returns ``X (N, D)``, ``y (N,)`` kind indices, the group and the origin of each row.
    """
    from experts.gate_deep import DeepEmbedder
    from experts.modality_gate import raw_features

    embed = DeepEmbedder()
    rng = np.random.default_rng(seed)
    X, y, groups, origins = [], [], [], []
    for s in sources:
        base = s.load(None)
        views = [(base, s.kind)] if clean else []
        for _ in range(n_aug.get(s.origin, 0)):
            v = augment(s.load(rng) if s.dynamic else base, s.kind, rng)
            if rng.random() < INVERT_FRACTION:
                views.append((TRANSFORMS[TRAIN_AS_OTHER[0]](v, rng), "other"))
            else:
                views.append((v, s.kind))
        for v, kd in views:
            X.append(raw_features(v, embed))
            y.append(KINDS.index(kd))
            groups.append(s.group)
            origins.append(s.origin)
    return np.stack(X), np.asarray(y), groups, origins


def transformed_views(sources: list[Source], seed: int, n_aug: int = 2
                      ) -> list[tuple[Source, str, str, np.ndarray]]:
    """``(source, view, expected kind, rgb)`` of each source: every ``gate_data.TRANSFORMS`` entry and
    ``n_aug`` random augmentations; the expected kind of ``TRAIN_AS_OTHER`` transforms is ``other``."""
    rng = np.random.default_rng(seed)
    out = []
    for s in sources:
        base = s.load(None)
        for name, fn in TRANSFORMS.items():
            out.append((s, name, "other" if name in TRAIN_AS_OTHER else s.kind, fn(base, rng)))
        for _ in range(n_aug):
            out.append((s, "augmented", s.kind, augment(s.load(rng) if s.dynamic else base, s.kind, rng)))
    return out


def ood_statistics(Xs: np.ndarray, y: np.ndarray, shrink: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Per-kind mean ``(K, D)`` and shrunk precision ``(K, D, D)`` of standardised training features
    (covariance ``(1 - shrink) * S + shrink * mean(diag S) * I``), for the gate's distance score."""
    d = Xs.shape[1]
    mus, precs = [], []
    for i in range(len(KINDS)):
        Z = Xs[y == i]
        mu = Z.mean(axis=0)
        S = np.cov(Z - mu, rowvar=False) if len(Z) > 1 else np.eye(d)
        S = (1 - shrink) * S + shrink * float(np.mean(np.diag(S))) * np.eye(d)
        mus.append(mu)
        precs.append(np.linalg.inv(S))
    return np.stack(mus), np.stack(precs)


def tune_refusal(probs: np.ndarray, dists: list[np.ndarray], expected: np.ndarray, quantile: float
                 ) -> tuple[list[dict[str, float]], float]:
    """Per-kind limits for each distance in ``dists`` (each ``(N, K)``) and one probability floor.

    The rejection budget ``1 - quantile`` is shared equally by the checks (the floor and each distance):
    for each kind, a distance limit is the ``1 - (1 - quantile) / n_checks`` quantile of that distance
    over the tuning views of the kind that the model calls that kind; the floor is the
    ``(1 - quantile) / n_checks`` quantile of their top probability, kept within 0.5-0.8.  So about
    ``quantile`` of such views pass all checks."""
    pred = probs.argmax(axis=1)
    share = (1 - quantile) / (len(dists) + 1)
    limits: list[dict[str, float]] = [{} for _ in dists]
    tops = []
    for i, kd in enumerate(KINDS):
        ok = (expected == i) & (pred == i)
        for lim, dist in zip(limits, dists):
            lim[kd] = float(np.quantile(dist[ok, i], 1 - share)) if ok.sum() >= 5 else float("inf")
        if ok.sum() >= 5:
            tops.append(probs[ok, i])
    floor = float(np.clip(np.quantile(np.concatenate(tops), share), 0.5, 0.8)) if tops else 0.5
    return limits, floor


def views_per_source(train: list[Source], per_kind: int, cap: int = 80) -> dict[str, int]:
    """Augmented views per source, by origin: each kind's ``per_kind`` views are shared equally by
    its origins (so a few real CT/MR series weigh as much as many synthetic slices)."""
    out: dict[str, int] = {}
    for kd in KINDS:
        origins = sorted({s.origin for s in train if s.kind == kd})
        for o in origins:
            n = sum(s.origin == o for s in train)
            out[o] = int(np.clip(np.ceil(per_kind / len(origins) / n) - 1, 1, cap))
    return out


def fit_mlp(X: np.ndarray, y: np.ndarray, hidden: int, wd: float, epochs: int = 400, seed: int = 0
            ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Class-balanced MLP (``hidden`` = 0: softmax regression) on standardised ``X``; full-batch AdamW.

    Returns the layers ``[(W (out, in), b (out,)), ...]``, ReLU between them.
    """
    import torch
    import torch.nn as nn

    torch.manual_seed(seed)
    d, k = X.shape[1], len(KINDS)
    net = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, k)) if hidden else \
        nn.Sequential(nn.Linear(d, k))
    counts = np.bincount(y, minlength=k).astype(np.float64)
    weight = torch.tensor(len(y) / (k * np.maximum(counts, 1)), dtype=torch.float32)
    xt, yt = torch.from_numpy(X.astype(np.float32)), torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.AdamW(net.parameters(), lr=0.01, weight_decay=wd)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    net.train()
    for _ in range(epochs):
        loss = nn.functional.cross_entropy(net(xt), yt, weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    lins = [m for m in net if isinstance(m, nn.Linear)]
    return [(m.weight.detach().numpy().astype(np.float64), m.bias.detach().numpy().astype(np.float64)) for m in lins]


def mlp_logits(layers: list[tuple[np.ndarray, np.ndarray]], X: np.ndarray) -> np.ndarray:
    h = X
    for i, (W, b) in enumerate(layers):
        h = h @ W.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0.0)
    return h


def group_folds(groups: list[str], k: int, seed: int) -> np.ndarray:
    uniq = sorted(set(groups))
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = {uniq[j]: i % k for i, j in enumerate(order)}
    return np.array([fold_of[g] for g in groups])


def per_kind_accuracy(pred: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {kd: float((pred[y == i] == i).mean()) for i, kd in enumerate(KINDS) if (y == i).any()}


def evaluate_saved(shared: Path, seed: int = 0, weights: Path | None = None) -> dict:
    """Per-kind accuracy of the saved gate on held-out groups (clean and augmented views), on
    augmented views of the retina image with an unseen seed, and on DICOM tags of pydicom's CT/MR files.

    ``per_kind_accuracy`` counts every held-out view; ``_real`` leaves out synthetic images (fundus:
    only the retina's unseen augmentations remain, which are views of a training image);
    ``_real_clean`` also leaves out augmented views."""
    from experts.imaging import StudyImage, load_image
    from experts.modality_gate import ModalityGate
    from tools.common import ImageMeta

    gate = ModalityGate(weights) if weights else ModalityGate()
    gate.load()
    _, val = split_groups(gather_sources(shared, seed), seed, 0.25)
    rng = np.random.default_rng(seed + 7)
    meta = ImageMeta(role="current", source="bench", format="png", width=1, height=1, channels=3)
    rows: list[tuple[str, str, str, str]] = []  # kind, origin, view, predicted
    for s in val:
        for view, img in [("clean", s.load(None)), ("augmented", augment(s.load(rng), s.kind, rng))]:
            out = gate.predict(StudyImage(pixels=img, meta=meta))
            rows.append((s.kind, s.origin, view, out.label))
    retina = [s for s in gather_sources(shared, seed, 0, 0, 0) if s.origin == "retina"][0]
    for _ in range(40):
        img = augment(retina.load(None), "fundus", rng)
        rows.append(("fundus", "retina_unseen_augmentations", "augmented",
                     gate.predict(StudyImage(pixels=img, meta=meta)).label))
    report: dict = {"seed": seed, "per_kind_accuracy": {}, "per_kind_n": {}}
    subsets = {"": lambda r: True, "_real": lambda r: not r[1].startswith("synthetic"),
               "_real_clean": lambda r: not r[1].startswith("synthetic") and r[2] == "clean"}
    for suffix, keep in subsets.items():
        acc, cnt = report.setdefault(f"per_kind_accuracy{suffix}", {}), report.setdefault(f"per_kind_n{suffix}", {})
        for kd in KINDS:
            sel = [r for r in rows if r[0] == kd and keep(r)]
            cnt[kd] = len(sel)
            acc[kd] = float(np.mean([r[3] == kd for r in sel])) if sel else float("nan")
    report["per_origin"] = {}
    for origin in sorted({r[1] for r in rows}):
        for view in ("clean", "augmented"):
            sel = [r for r in rows if r[1] == origin and r[2] == view]
            if sel:
                wrong: dict[str, int] = {}
                for r in sel:
                    if r[3] != r[0]:
                        wrong[r[3]] = wrong.get(r[3], 0) + 1
                report["per_origin"][f"{origin}/{view}"] = {
                    "n": len(sel), "accuracy": float(np.mean([r[3] == r[0] for r in sel])), "errors": wrong}
    tag_rows = []
    for name, img in ct_mr_images():
        out = gate.predict(img)
        tag_rows.append((name, out.label, getattr(out, "source", "?")))
    report["dicom_ct_mr_files"] = len(tag_rows)
    report["dicom_ct_mr_called_ct_mr"] = sum(r[1] == "ct_mr" for r in tag_rows)
    report["dicom_ct_mr_called_chest_xray"] = sum(r[1] == "chest_xray" for r in tag_rows)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared-data", default="../shared/data")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-frac", type=float, default=0.25)
    ap.add_argument("--per-kind", type=int, default=900, help="training views per kind (augmentation fills up)")
    ap.add_argument("--hidden", type=int, default=128, help="hidden ReLU units; 0 = softmax regression")
    ap.add_argument("--wd", type=float, default=1e-2)
    ap.add_argument("--epochs", type=int, default=400)
    ap.add_argument("--pca", type=int, default=48, help="principal components kept of the MobileNetV2 embedding")
    ap.add_argument("--quantile", type=float, default=0.985,
                    help="share of held-out tuning views of each kind that all refusal checks together let through")
    ap.add_argument("--cache", default="runs/gate_features.npz", help="reuse training features from here")
    ap.add_argument("--out", default="experts/weights/modality_gate.npz")
    ap.add_argument("--report", default="runs/train_gate_report.json")
    ap.add_argument("--no-eval", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    from eval_scenarios.metrics import ece, fit_temperature, softmax
    from experts.gate_deep import DeepEmbedder
    from experts.gate_features import FEATURE_DIM
    from experts.modality_gate import RAW_VERSION, mahalanobis, model_inputs, raw_features

    t0 = time.perf_counter()
    shared = Path(args.shared_data)
    train, val = split_groups(gather_sources(shared, args.seed), args.seed, args.val_frac)
    tune, _test = split_tune_test(val, args.seed)
    n_src = {kd: sum(s.kind == kd for s in train) for kd in KINDS}
    n_aug = views_per_source(train, args.per_kind)
    key = json.dumps({"v": RAW_VERSION, "recipe": "grey-invert-rot90-v3", "seed": args.seed, "val": args.val_frac, "aug": n_aug,
                      "groups": len({s.group for s in train})}, sort_keys=True)
    cache = Path(args.cache) if args.cache else None
    if cache is not None and cache.exists() and str(np.load(cache)["key"]) == key:
        z = np.load(cache)
        X, y, groups = z["X"], z["y"], [str(g) for g in z["groups"]]
        log.info("features from cache %s", cache)
    else:
        log.info("training sources %s; augmented views per source %s; held-out sources %d", n_src, n_aug, len(val))
        X, y, groups, _ = featurize(train, n_aug, args.seed)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, X=X, y=y, groups=np.array(groups), key=np.array(key))
    feat_s = time.perf_counter() - t0
    log.info("features %s (%.0f s)", X.shape, feat_s)
    deep = X[:, FEATURE_DIM:].astype(np.float64)
    pca_mu = deep.mean(axis=0)
    pca_W = np.linalg.svd(deep - pca_mu, full_matrices=False)[2][:args.pca].T  # (DEEP_DIM, k)
    proj = np.concatenate([X[:, :FEATURE_DIM], (deep - pca_mu) @ pca_W], axis=1)
    mu, sd = proj.mean(axis=0), proj.std(axis=0) + 1e-6
    params = {"pca_mu": pca_mu, "pca_W": pca_W, "mu": mu, "sd": sd}
    Xs = model_inputs(X, params)
    folds = group_folds(groups, 5, args.seed)
    oof = np.zeros((len(y), len(KINDS)))
    for f in range(5):
        layers = fit_mlp(Xs[folds != f], y[folds != f], args.hidden, args.wd, args.epochs, args.seed)
        oof[folds == f] = mlp_logits(layers, Xs[folds == f])
    temperature = fit_temperature(oof, y)
    oof_acc = per_kind_accuracy(oof.argmax(axis=1), y)
    layers = fit_mlp(Xs, y, args.hidden, args.wd, args.epochs, args.seed)
    ood_mu, ood_prec = ood_statistics(Xs, y)
    deep_mu, deep_prec = ood_statistics(Xs[:, FEATURE_DIM:], y)
    views = transformed_views(tune, args.seed + 11)
    exp_t = np.array([KINDS.index(v[2]) for v in views])
    tcache = cache.with_name(cache.stem + "_tune.npz") if cache is not None else None
    if tcache is not None and tcache.exists() and str(np.load(tcache)["key"]) == key:
        raw_t = np.load(tcache)["X"]
    else:
        embed = DeepEmbedder()
        raw_t = np.stack([raw_features(v[3], embed) for v in views])
        if tcache is not None:
            np.savez(tcache, X=raw_t, key=np.array(key))
    Xt = model_inputs(raw_t, params)
    probs_t = softmax(mlp_logits(layers, Xt), temperature)
    (limits, deep_limits), floor = tune_refusal(
        probs_t, [mahalanobis(Xt, ood_mu, ood_prec), mahalanobis(Xt[:, FEATURE_DIM:], deep_mu, deep_prec)], exp_t,
        args.quantile)
    log.info("refusal tuned on %d views of %d held-out tuning sources: distance limits %s, embedding distance "
             "limits %s, probability floor %.3f", len(views), len(tune),
             json.dumps({k: round(v, 2) for k, v in limits.items()}),
             json.dumps({k: round(v, 2) for k, v in deep_limits.items()}), floor)
    train_wall = time.perf_counter() - t0
    meta = {"kinds": list(KINDS), "feature_version": RAW_VERSION, "pca_components": args.pca, "temperature": temperature, "seed": args.seed,
            "val_frac": args.val_frac, "hidden": args.hidden, "wd": args.wd, "model_id": f"gate-mlp{args.hidden}-mnv2-v3",
            "train_views": int(len(y)), "cv_per_kind_accuracy": oof_acc, "distance_limits": limits, "deep_distance_limits": deep_limits,
            "min_probability": floor, "tune_quantile": args.quantile, "tune_views": len(views),
            "tune_sources": len(tune)}
    arrays = {f"{n}{i}": a.astype(np.float32) for i, (W, b) in enumerate(layers) for n, a in (("W", W), ("b", b))}
    arrays.update(ood_mu=ood_mu.astype(np.float32), ood_prec=ood_prec.astype(np.float32),
                  deep_mu=deep_mu.astype(np.float32), deep_prec=deep_prec.astype(np.float32),
                  pca_mu=pca_mu.astype(np.float32), pca_W=pca_W.astype(np.float32))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, mu=mu.astype(np.float32), sd=sd.astype(np.float32), meta=np.array(json.dumps(meta)), **arrays)
    log.info("saved %s (%.1f kB); T=%.3f; group-CV per-kind accuracy %s", out, out.stat().st_size / 1e3,
             temperature, json.dumps(oof_acc))
    report = {} if args.no_eval else evaluate_saved(shared, args.seed, out)
    report.update({"train_wall_s": train_wall, "feature_s": feat_s, "temperature": temperature,
                   "cv_per_kind_accuracy": oof_acc, "train_views": int(len(y)), "train_sources": n_src,
                   "views_per_source": n_aug, "cv_ece_before": ece(softmax(oof), y),
                   "cv_ece_after": ece(softmax(oof, temperature), y), "args": vars(args)})
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=2, default=float))
    log.info("held-out per-kind accuracy %s", json.dumps(report.get("per_kind_accuracy")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
