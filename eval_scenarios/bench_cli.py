"""``osler bench <name> ARGS``: dispatch to one benchmark module's ``main(argv)``.

Benchmarks live in their own modules (written by the engineers of each area) and are imported
only when asked for; a missing one is reported as "not part of this build" (exit code 2).
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["BENCHMARKS", "main"]

BENCHMARKS: dict[str, tuple[str, str]] = {
    "ask": ("eval_scenarios.bench_ask", "end-to-end latency of `ask`, expert time, overhead, cold start, peak RSS"),
    "counts": ("eval_scenarios.count_accuracy", "WBC exact-count rate, platelet/RBC count MAE on the BCCD dev smears"),
    "counts-cv": ("eval_scenarios.bench_counts_cv", "cross-validated WBC/platelet counts (YOLO and classical), "
                                                    "thresholds tuned on training folds, cross-check catch rate"),
    "detection": ("eval_scenarios.bench_detection", "detector mAP, precision/recall, counting error, speed"),
    "segmentation": ("eval_scenarios.bench_segmentation", "segmenter Dice/IoU and speed"),
    "sam": ("eval_scenarios.bench_sam", "SAM/MedSAM image-embedding and prompt-decoding time (any device)"),
    "classification": ("eval_scenarios.bench_classification", "classifier accuracy, calibration, speed"),
    "gate": ("eval_scenarios.bench_gate", "modality gate on transformed held-out images and photos: routing, refusals, "
                                          "false-accept rate of each diagnosis tool"),
    "comparison": ("eval_scenarios.bench_comparison", "prior-study comparison: registration and change detection"),
    "voice": ("voice.bench", "speech recognition and command accuracy"),
}


def _usage() -> str:
    width = max(map(len, BENCHMARKS))
    lines = ["usage: osler bench NAME [ARGS...]   (osler bench NAME --help for its options)", "", "benchmarks:"]
    lines += [f"  {name:{width}s}  {desc}" for name, (_, desc) in BENCHMARKS.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], list(argv[1:])
    if name not in BENCHMARKS:
        print(f"osler bench: unknown benchmark {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = BENCHMARKS[name][0]
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):  # the benchmark module itself (or its package) is missing
            print(f"osler bench: '{name}' is not part of this build ({module})", file=sys.stderr)
            return 2
        raise
    return int(mod.main(rest) or 0)
