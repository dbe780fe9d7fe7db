"""Benchmark a classifier on a labelled folder, or the modality gate on its held-out images.

Classifier mode (default; the bundled torchvision checkpoint, ``--weights`` another one, ``--hf-dir``
a local transformers folder): a Kermany-style folder (``<root>/<CLASS>/*.jpeg``; ``PNEUMONIA`` files are
split into bacterial / viral by name) or any folder of class sub-folders whose names are labels.
``--file-list`` restricts to listed file names; ``--split`` picks a file list stored in the checkpoint by
``training/train_cxr.py``: by default (``auto``) the **shifted** validation set (an acquisition period held
out of training, selection and tuning), ``val`` the in-distribution validation fold, ``all`` the folder.
Reports accuracy, per-class sensitivity / specificity, one-vs-rest AUROC, normal-vs-pneumonia accuracy
(``P(pneumonia) = 1 - P(normal) >= 0.5``; also the 3-class arg-max reading) and AUROC, bacterial-vs-viral
accuracy (pneumonia images only, the larger of the two pneumonia probabilities), ECE (15 bins, top label),
images/s, and ``decision``: normal-vs-pneumonia accuracy / sensitivity / specificity at the checkpoint's
threshold, how often the uncertain flag fires and how many flagged / unflagged answers are wrong;
``groups``: the same per ``--groups`` disjoint patient groups with mean +- sd.  ``--perturb`` changes every
film as another site might (gamma, blur, JPEG, CLAHE, 16-bit) to measure robustness.  JSON and a table.

Gate mode (``--gate``): per-kind accuracy of the modality gate on the held-out part of its data
(see ``training/train_gate.py``, same seed and split).

Metric functions here are pure numpy and shared with the training scripts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .metrics import auroc, classification_report, ece, fit_temperature, nll, softmax  # noqa: F401 (re-exported)
from .kermany import (  # noqa: F401  (re-exported: training scripts and tests import them from here)
    PERTURBATIONS, decision_report, group_spread, kermany_label, patient_id, series_of, site_perturbation,
)

__all__ = ["main", "auroc", "ece", "fit_temperature", "softmax", "nll", "kermany_label", "patient_id", "series_of",
           "classification_report", "decision_report", "group_spread", "site_perturbation", "PERTURBATIONS"]

_IMG_EXT = {".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff", ".dcm"}


def _collect(root: Path, labels: tuple[str, ...], names: set[str] | None) -> list[tuple[Path, int]]:
    items = []
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() not in _IMG_EXT or (names is not None and p.name not in names):
            continue
        lab = kermany_label(p) or (p.parent.name if p.parent.name in labels else None)
        if lab in labels:
            items.append((p, labels.index(lab)))
    return items


def _table(report: dict, labels: list[str]) -> str:
    lines = [f"n={report['n']}  accuracy={report['accuracy']:.4f}  ECE={report['ece']:.4f}"]
    for key in ("normal_vs_pneumonia_accuracy", "normal_vs_pneumonia_accuracy_argmax", "pneumonia_auroc",
                "bacterial_vs_viral_accuracy", "ece_uncalibrated", "images_per_s"):
        if key in report:
            lines.append(f"{key}={report[key]:.4f}")
    lines.append(f"{'class':<22}{'n':>6}{'sens':>8}{'spec':>8}{'auroc':>8}")
    for lab in labels:
        c = report["per_class"][lab]
        lines.append(f"{lab:<22}{c['n']:>6}{c['sensitivity']:>8.4f}{c['specificity']:>8.4f}{c['auroc']:>8.4f}")
    dec = report.get("decision")
    if dec:
        where = report.get("split") or "all"
        if report.get("perturbation", "none") != "none":
            where += f", perturbed: {report['perturbation']}"
        lines.append(f"normal vs pneumonia at threshold {dec['threshold']:.3f} ({where}): "
                     f"accuracy {dec['accuracy']:.4f}  sensitivity {dec['sensitivity']:.4f}  "
                     f"specificity {dec['specificity']:.4f}  (n normal {dec['n_normal']}, pneumonia {dec['n_pneumonia']})")
        lines.append(f"uncertain flag (log-odds band {dec['uncertain_band']:.2f}): fires on {dec['uncertain_n']} "
                     f"({dec['uncertain_rate']:.1%}); wrong {dec['wrong_n']}: flagged {dec['wrong_flagged']}, "
                     f"unflagged {dec['wrong_unflagged']}; right but flagged {dec['right_flagged']}; "
                     f"accuracy of unflagged {dec['accuracy_unflagged']:.4f}")
        if wf := dec.get("whole_film_check"):
            lines.append(f"whole-film check: withholds {wf['withheld']} (right {wf['withheld_right']}, wrong "
                         f"{wf['withheld_wrong']}); accuracy counting them wrong "
                         f"{wf['accuracy_withheld_counted_wrong']:.4f}")
    groups = report.get("groups")
    if groups:
        lines.append(f"{'patient group':<14}{'n':>6}{'acc':>8}{'sens':>8}{'spec':>8}")
        for j, r in enumerate(groups["per_group"]):
            lines.append(f"{j:<14}{r['n']:>6}{r['accuracy']:>8.4f}{r['sensitivity']:>8.4f}{r['specificity']:>8.4f}")
        sp = groups["spread"]
        lines.append(f"{'mean ± sd':<14}{'':>6}" + "".join(
            f"{sp[m]['mean']:>8.4f}" for m in ("accuracy", "sensitivity", "specificity")))
        lines.append(f"{'':<20}" + "".join(f"{'±' + format(sp[m]['sd'], '.4f'):>8}"
                                           for m in ("accuracy", "sensitivity", "specificity")))
    return "\n".join(lines)


def _bench_classifier(args: argparse.Namespace) -> dict:
    import torch

    from experts.cxr_classifier import TorchvisionClassifier, TransformersClassifier
    from experts.weights import bundled
    from tools.errors import OslerError

    torch.set_num_threads(args.threads)
    clf: TorchvisionClassifier | TransformersClassifier
    if args.hf_dir:
        clf = TransformersClassifier(Path(args.hf_dir), args.device)
    else:
        from experts.cxr_crop import bundled_check

        clf = TorchvisionClassifier(Path(args.weights) if args.weights else bundled("cxr_classifier.pt"), args.device,
                                    crop_check=bundled_check())
    clf.load()
    names: set[str] | None = None
    if args.file_list:
        names = {Path(line.strip()).name for line in Path(args.file_list).read_text().splitlines() if line.strip()}
    elif args.split != "all" and isinstance(clf, TorchvisionClassifier):
        split = torch.load(str(clf.weights), map_location="cpu", weights_only=True).get("split", {})
        if args.split == "auto":  # the shifted hold-out when the checkpoint has one: what a new site sees
            args.split = "shifted" if "shifted" in split else "all"
        if args.split != "all":
            if args.split not in split:
                raise OslerError(f"the checkpoint stores no '{args.split}' file list; pass --file-list")
            names = set(split[args.split])
    elif args.split not in ("all", "auto"):
        raise OslerError("--split needs an Osler torchvision checkpoint; pass --file-list")
    items = _collect(Path(args.data), clf.labels, names)
    if args.limit and len(items) > args.limit:  # a seeded random subset, all classes represented in proportion
        pick = np.random.default_rng(args.seed).choice(len(items), args.limit, replace=False)
        items = [items[i] for i in sorted(pick)]
    if not items:
        raise OslerError(f"no images under {args.data} with labels among {list(clf.labels)}")
    y = np.asarray([lab for _, lab in items])
    report: dict
    withheld = None  # the whole-film check's verdicts, when the classifier has one
    if isinstance(clf, TorchvisionClassifier):  # batched logits: fast, and ECE before temperature scaling
        import cv2

        X = np.stack([clf.input_for(site_perturbation(
            cv2.cvtColor(cv2.imread(str(p), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB), args.perturb)) for p, _ in items])
        t0 = time.perf_counter()
        out = [clf.logits_and_features(X[i:i + args.batch]) for i in range(0, len(X), args.batch)]
        dt = time.perf_counter() - t0
        logits = np.concatenate([z for z, _ in out])
        feats = np.concatenate([f for _, f in out])
        withheld = (np.array([clf.crop_check.check(f).flagged for f in feats]) if clf.crop_check is not None
                    else None)  # the whole-film check (experts/cxr_crop.py): these films get no class
        probs = softmax(logits, clf.temperature)
        report = classification_report(probs, y, list(clf.labels))
        report.update({"ece_uncalibrated": ece(softmax(logits), y), "temperature": clf.temperature,
                       "batch": args.batch})
        threshold, band = clf.threshold, clf.uncertain_band
    else:  # any Classifier: one predict() per image, image decoding included in the timing
        from experts.imaging import load_image

        t0 = time.perf_counter()
        probs = np.array([[clf.predict(load_image(p)).probabilities[lab] for lab in clf.labels] for p, _ in items])
        dt = time.perf_counter() - t0
        report = classification_report(probs, y, list(clf.labels))
        report["batch"] = 1
        threshold, band = 0.5, 0.0
    report.update({"images_per_s": len(items) / dt, "threads": args.threads, "model": clf.model_id,
                   "perturbation": args.perturb,
                   "split": args.split if not args.file_list else "file-list"})
    if "normal" in clf.labels:
        labels = list(clf.labels)
        report["decision"] = decision_report(probs, y, labels, threshold, band)
        if isinstance(clf, TorchvisionClassifier) and withheld is not None:
            right = ((1.0 - probs[:, labels.index("normal")]) >= threshold) == (y != labels.index("normal"))
            report["decision"]["whole_film_check"] = {
                "withheld": int(withheld.sum()), "withheld_right": int((withheld & right).sum()),
                "withheld_wrong": int((withheld & ~right).sum()),
                "accuracy_withheld_counted_wrong": float((right & ~withheld).mean())}
        names_list = [p.name for p, _ in items]
        if len({patient_id(n) for n in names_list}) >= 2 * args.groups > 0:
            report["groups"] = group_spread(probs, y, labels, names_list, threshold, args.groups)
    return report


def _bench_gate(args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
    from train_gate import evaluate_saved  # the gate's data recipe lives with its training script

    return evaluate_saved(Path(args.shared_data), seed=args.seed)


def _finite(obj: object) -> object:
    """NaN (e.g. a metric of a class with no images) -> None, so the JSON is strict."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gate", action="store_true", help="benchmark the modality gate instead")
    ap.add_argument("--data", default="../shared/data/kermany_cxr/train", help="labelled folder")
    ap.add_argument("--shared-data", default="../shared/data", help="root of the dev data (gate mode)")
    ap.add_argument("--weights", default=None, help="torchvision classifier checkpoint (default: bundled)")
    ap.add_argument("--hf-dir", default=None, help="a local transformers image-classification folder instead")
    ap.add_argument("--file-list", default=None, help="text file of image names to evaluate")
    ap.add_argument("--split", default="auto", choices=["auto", "shifted", "val", "cal", "all"],
                    help="file list stored in the checkpoint: 'shifted' (held-out acquisition period), 'val' "
                         "(validation fold), 'all' the whole folder; 'auto' = 'shifted' when stored")
    ap.add_argument("--perturb", default="none", choices=PERTURBATIONS,
                    help="torchvision checkpoints: change every film the way another site might (robustness)")
    ap.add_argument("--groups", type=int, default=5, help="disjoint patient groups for mean +- sd (0: none)")
    ap.add_argument("--limit", type=int, default=0, help="evaluate a seeded random subset of this size")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a shared machine)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the report here too")
    args = ap.parse_args(argv)
    from tools.errors import OslerError

    try:
        report = _bench_gate(args) if args.gate else _bench_classifier(args)
    except OslerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    text = json.dumps(_finite(report), indent=2, default=float)
    if args.json:
        Path(args.json).write_text(text)
    print(text)
    if not args.gate:
        print(_table(report, list(report["per_class"])))
    else:
        print(f"{'kind':<14}{'n':>6}{'all':>8}{'n real':>8}{'real':>8}{'n clean':>9}{'clean':>8}")
        for kind, acc in report["per_kind_accuracy"].items():
            print(f"{kind:<14}{report['per_kind_n'][kind]:>6}{acc:>8.4f}"
                  f"{report['per_kind_n_real'][kind]:>8}{report['per_kind_accuracy_real'][kind]:>8.4f}"
                  f"{report['per_kind_n_real_clean'][kind]:>9}{report['per_kind_accuracy_real_clean'][kind]:>8.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
