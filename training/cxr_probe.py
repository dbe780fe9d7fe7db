"""Linear probe of the wheel-shipped ImageNet backbones on Kermany chest X-rays (cheap backbone comparison).

For each backbone of :data:`training.pretrained.BACKBONES`: frozen, pooled features of every training image
(grey, percentile-normalised, ``--size`` px, as at inference), then an L2-regularised multinomial logistic
regression (normal / bacterial / viral), evaluated

* by ``--folds``-fold cross-validation by patient on the files outside the shifted hold-out
  (per-fold numbers, mean and sd), and
* on the shifted hold-out (earliest acquisition ids of each naming series, see
  :func:`training.cxr_data.shifted_holdout`) after fitting on all the other files, and on a whole held-out
  normal batch (every ``IM-`` normal with the earliest pneumonia patients,
  :func:`training.cxr_data.batch_holdout`).

Normal-vs-pneumonia accuracy uses ``P(pneumonia) = 1 - P(normal) >= 0.5``.  Features are cached in
``runs/``.  Usage::

    nohup nice -n 10 .venv/bin/python -m training.cxr_probe --json runs/cxr_probe.json > runs/cxr_probe.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("cxr_probe")


def features(name: str, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """Frozen pooled features ``(N, D)`` of uint8 ``(N, S, S)`` percentile-normalised images."""
    import torch

    from training.cxr_data import to_input
    from training.pretrained import build_backbone, feature_net

    net, prov = build_backbone(name, 3)
    net.eval()
    fwd = feature_net(net, name)
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch]).float().div_(255.0).unsqueeze(1)
            out.append(fwd(to_input(x, prov["mean"], prov["std"])).numpy())
    return np.concatenate(out).astype(np.float32)


def fit_logreg(X: np.ndarray, y: np.ndarray, wd: float, k: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Multinomial logistic regression on standardised features (L-BFGS) -> (mu, sd, W with bias row)."""
    import torch

    mu, sd = X.mean(0), X.std(0) + 1e-6
    Xt = torch.from_numpy((X - mu) / sd).double()
    Xt = torch.cat([Xt, torch.ones(len(Xt), 1, dtype=torch.float64)], 1)
    yt = torch.from_numpy(y).long()
    counts = np.bincount(y, minlength=k)
    cw = torch.tensor(counts.sum() / (k * np.maximum(counts, 1)), dtype=torch.float64)
    W = torch.zeros(Xt.shape[1], k, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W], max_iter=300, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(Xt @ W, yt, weight=cw) + wd * (W[:-1] ** 2).sum()
        loss.backward()
        return loss
    opt.step(closure)
    return mu, sd, W.detach().numpy()


def predict_logreg(model: tuple[np.ndarray, np.ndarray, np.ndarray], X: np.ndarray) -> np.ndarray:
    mu, sd, W = model
    Z = np.concatenate([(X - mu) / sd, np.ones((len(X), 1))], 1) @ W
    return Z


def binary_metrics(p_pneu: np.ndarray, y: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """:func:`experts.cxr_decision.binary_metrics` of labels ``y`` (0 normal) plus the AUROC."""
    from eval_scenarios.metrics import auroc
    from experts.cxr_decision import binary_metrics as at_threshold

    return {**at_threshold(p_pneu, y > 0, threshold), "auroc": auroc(p_pneu, y > 0)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/kermany_cxr/train")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shift-frac", type=float, default=0.2)
    ap.add_argument("--wd", type=float, default=1e-3)
    ap.add_argument("--backbones", default="mobilenet_v2,tf_efficientnet_lite0")
    ap.add_argument("--json", default="runs/cxr_probe.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch

    from eval_scenarios.metrics import softmax
    from training.cxr_data import batch_holdout, label_of, list_files, load_cache, shifted_and_folds

    torch.set_num_threads(1)
    files = list_files(Path(args.data))
    by_name = {f.name: i for i, f in enumerate(files)}
    y = np.array([label_of(f) for f in files])
    held, rest, folds = shifted_and_folds(files, args.shift_frac, args.folds, args.seed)
    images = load_cache(files, args.size, Path(f"runs/cxr_cache_{args.size}.npz"))
    result: dict = {"size": args.size, "folds": args.folds, "shifted_images": len(held), "rest_images": len(rest)}
    for name in args.backbones.split(","):
        t0 = time.perf_counter()
        cache = Path(f"runs/cxr_feat_{name}_{args.size}.npy")
        F = np.load(cache) if cache.exists() else features(name, images)
        np.save(cache, F)
        t_feat = time.perf_counter() - t0
        per_fold = []
        for k, fold in enumerate(folds):
            val = np.array([by_name[n] for n in fold])
            train = np.array([by_name[n] for j, f in enumerate(folds) if j != k for n in f])
            model = fit_logreg(F[train], y[train], args.wd)
            p = softmax(predict_logreg(model, F[val]))
            m = binary_metrics(1 - p[:, 0], y[val])
            m["three_class_accuracy"] = float((p.argmax(1) == y[val]).mean())
            per_fold.append(m)
            log.info("%s fold %d %s", name, k, json.dumps(m))
        holdouts = {"shifted": (held, rest), "im_batch": batch_holdout(files, args.shift_frac, "IM")}
        outside = {}
        for key, (h_names, r_names) in holdouts.items():
            rest_idx = np.array([by_name[n] for n in r_names])
            held_idx = np.array([by_name[n] for n in h_names])
            model = fit_logreg(F[rest_idx], y[rest_idx], args.wd)
            p = softmax(predict_logreg(model, F[held_idx]))
            outside[key] = binary_metrics(1 - p[:, 0], y[held_idx])
            outside[key]["three_class_accuracy"] = float((p.argmax(1) == y[held_idx]).mean())
        shifted = outside["shifted"]
        summary = {key: {"mean": float(np.mean([f[key] for f in per_fold])),
                         "sd": float(np.std([f[key] for f in per_fold], ddof=1))}
                   for key in ("accuracy", "sensitivity", "specificity", "auroc", "three_class_accuracy")}
        result[name] = {"per_fold": per_fold, "cv": summary, "shifted": shifted, "im_batch": outside["im_batch"],
                        "feature_s": t_feat}
        log.info("%s CV %s shifted %s (features %.0f s)", name, json.dumps(summary), json.dumps(shifted), t_feat)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    rows = ["| backbone | CV accuracy | CV specificity | CV AUROC | shifted acc | shifted sens | shifted spec "
            "| IM-batch acc | IM-batch spec |", "|---|---|---|---|---|---|---|---|---|"]
    for name in args.backbones.split(","):
        r = result[name]
        c, s = r["cv"], r["shifted"]
        rows.append(f"| {name} | {c['accuracy']['mean']:.4f} ± {c['accuracy']['sd']:.4f} | "
                    f"{c['specificity']['mean']:.4f} ± {c['specificity']['sd']:.4f} | "
                    f"{c['auroc']['mean']:.4f} ± {c['auroc']['sd']:.4f} | {s['accuracy']:.4f} | "
                    f"{s['sensitivity']:.4f} | {s['specificity']:.4f} | {r['im_batch']['accuracy']:.4f} | "
                    f"{r['im_batch']['specificity']:.4f} |")
    print("\n".join(rows))  # noqa: T201 (CLI output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
