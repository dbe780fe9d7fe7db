"""Patient-disjoint K-fold cross-validation of the lung U-Net recipes: the folds, the commands, the table.

The 51 ``hannover_cxr/lung_seg`` films come from 30 patients (``hannover_cxr/data.csv``); the folds of
``training.train_unet --folds K --fold k`` (:func:`training.train_unet.patient_folds`) keep every patient's
films in one fold, so no held-out film has a sibling film of the same patient in training.

    .venv/bin/python -m training.lung_cv folds                    # the films of each fold
    .venv/bin/python -m training.lung_cv commands --out /tmp/lungcv  # one train_unet command per recipe x fold
    .venv/bin/python -m training.lung_cv table /tmp/lungcv/*.json    # per-fold Dice, mean +- sd per recipe

Each run writes ``--metrics-json``: its split, wall time and the held-out films' Dice at the original image
size through ``experts.unet_segmenter`` (the app's code path, ``bench_segmentation.evaluate``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DATA = ROOT.parent / "shared" / "data"
IMAGES = "hannover_cxr/lung_seg/images"
RECIPES = {"random": [], "pretrained": ["--pretrained"], "degrade": ["--pretrained", "--degrade", "0.5"]}
"""The recipes compared (degrade: ImageNet encoder plus site-like loss of detail, the shipped v4 recipe)."""
BUDGET = ["--size", "320", "--epochs", "300", "--max-minutes", "9", "--bf16", "--threads", "1", "--val-every", "10"]


def lung_folds(data: Path = DATA, k: int = 3, seed: int = 0) -> dict[str, int]:
    """stem -> fold of the lung films, exactly as ``train_unet --folds k --seed seed`` splits them."""
    from training.train_unet import patient_folds, patient_of

    stems = sorted(p.stem for p in (data / IMAGES).glob("*.jpg"))
    return patient_folds(stems, patient_of(data), k, seed)


def commands(out: Path, k: int = 3) -> list[str]:
    return [" ".join(["nice -n 10 .venv/bin/python -m training.train_unet --task lung", *BUDGET, *extra,
                      "--folds", str(k), "--fold", str(f), "--out", str(out / f"{name}_f{f}.pt"),
                      "--metrics-json", str(out / f"{name}_f{f}.json")])
            for f in range(k) for name, extra in RECIPES.items()]


def summarise(runs: list[dict]) -> dict[str, dict]:
    """recipe -> per-fold Dice (original size, mean over the fold's films), mean and sample sd across folds,
    pooled mean over all held-out films, per-film Dice, minutes of training per fold."""
    out: dict[str, dict] = {}
    for r in runs:
        name = "degrade" if "--degrade" in r.get("argv", []) else "pretrained" if r.get("pretrained") else "random"
        auto = r["metrics"]["auto"]
        rec = out.setdefault(name, {"folds": {}, "films": {}, "train_min": {}, "epochs": {}})
        rec["folds"][r["fold"]] = auto["dice"]
        rec["train_min"][r["fold"]] = r["train_s"] / 60
        rec["epochs"][r["fold"]] = r["epochs"]
        rec["films"].update({row["image"]: row["dice"] for row in auto.get("per_image", [])})
    for rec in out.values():
        ds = [rec["folds"][f] for f in sorted(rec["folds"])]
        rec["mean"] = float(np.mean(ds))
        rec["sd"] = float(np.std(ds, ddof=1)) if len(ds) > 1 else None
        rec["pooled"] = float(np.mean(list(rec["films"].values()))) if rec["films"] else None
    return out


def table(summary: dict[str, dict]) -> str:
    folds = sorted({f for rec in summary.values() for f in rec["folds"]})
    head = "| recipe | " + " | ".join(f"fold {f}" for f in folds) + " | mean ± sd | all films | min/fold | epochs |"
    lines = [head, "|" + "---|" * (len(folds) + 5)]
    for name, rec in summary.items():
        sd = "-" if rec["sd"] is None else f"{rec['sd']:.3f}"
        lines.append(f"| {name} | " + " | ".join(f"{rec['folds'][f]:.3f}" if f in rec["folds"] else "-" for f in folds)
                     + f" | {rec['mean']:.3f} ± {sd} | {rec['pooled']:.3f} | "
                     + f"{np.mean(list(rec['train_min'].values())):.1f} | "
                     + "/".join(str(rec["epochs"][f]) for f in sorted(rec["epochs"])) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("folds")
    f.add_argument("--folds", type=int, default=3)
    c = sub.add_parser("commands")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--folds", type=int, default=3)
    t = sub.add_parser("table")
    t.add_argument("runs", type=Path, nargs="+", help="--metrics-json files of train_unet runs")
    t.add_argument("--json", type=Path, help="also write the summary here")
    args = ap.parse_args(argv)
    if args.cmd == "folds":
        fold = lung_folds(k=args.folds)
        for k in range(args.folds):
            print(k, " ".join(s for s in sorted(fold) if fold[s] == k))
    elif args.cmd == "commands":
        print("\n".join(commands(args.out, args.folds)))
    else:
        summary = summarise([json.loads(p.read_text()) for p in args.runs])
        print(table(summary))
        for name, rec in summary.items():
            print(f"{name} per film: " + ", ".join(f"{Path(n).stem} {d:.3f}" for n, d in sorted(rec["films"].items())))
        if args.json:
            args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
