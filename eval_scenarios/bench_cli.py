"""``osler bench <name> ARGS``: dispatch to one benchmark module's ``main(argv)``.

Benchmarks live in their own modules (written by the engineers of each area); each is imported only
when asked for (they pull in torch and the data readers), by a small function below.
"""

from __future__ import annotations

import sys
from typing import Callable

__all__ = ["BENCHMARKS", "main"]

Main = Callable[[list[str]], int | None]


def _ask(argv: list[str]) -> int | None:
    from eval_scenarios.bench_ask import main as run

    return run(argv)


def _counts(argv: list[str]) -> int | None:
    from eval_scenarios.count_accuracy import main as run

    return run(argv)


def _counts_cv(argv: list[str]) -> int | None:
    from eval_scenarios.bench_counts_cv import main as run

    return run(argv)


def _detection(argv: list[str]) -> int | None:
    from eval_scenarios.bench_detection import main as run

    return run(argv)


def _segmentation(argv: list[str]) -> int | None:
    from eval_scenarios.bench_segmentation import main as run

    return run(argv)


def _sam(argv: list[str]) -> int | None:
    from eval_scenarios.bench_sam import main as run

    return run(argv)


def _classification(argv: list[str]) -> int | None:
    from eval_scenarios.bench_classification import main as run

    return run(argv)


def _gate(argv: list[str]) -> int | None:
    from eval_scenarios.bench_gate import main as run

    return run(argv)


def _comparison(argv: list[str]) -> int | None:
    from eval_scenarios.bench_comparison import main as run

    return run(argv)


def _concurrency(argv: list[str]) -> int | None:
    from eval_scenarios.bench_concurrency import main as run

    return run(argv)


def _min_size(argv: list[str]) -> int | None:
    from eval_scenarios.bench_min_size import main as run

    return run(argv)


def _magnification(argv: list[str]) -> int | None:
    from eval_scenarios.bench_magnification import main as run

    return run(argv)


def _compression(argv: list[str]) -> int | None:
    from eval_scenarios.bench_compression import main as run

    return run(argv)


def _frame_quality(argv: list[str]) -> int | None:
    from eval_scenarios.bench_frame_quality import main as run

    return run(argv)


def _smear_tone(argv: list[str]) -> int | None:
    from eval_scenarios.bench_smear_tone import main as run

    return run(argv)


def _voice(argv: list[str]) -> int | None:
    from voice.bench import main as run

    return run(argv)


BENCHMARKS: dict[str, tuple[Main, str]] = {
    "ask": (_ask, "end-to-end latency of `ask`, expert time, overhead, cold start, peak RSS"),
    "counts": (_counts, "WBC exact-count rate, platelet/RBC count MAE on the BCCD dev smears"),
    "counts-cv": (_counts_cv, "cross-validated WBC/platelet counts (YOLO and classical), "
                              "thresholds tuned on training folds, cross-check catch rate"),
    "detection": (_detection, "detector mAP, precision/recall, counting error, speed"),
    "segmentation": (_segmentation, "segmenter Dice/IoU and speed"),
    "sam": (_sam, "SAM/MedSAM image-embedding and prompt-decoding time (any device)"),
    "classification": (_classification, "classifier accuracy, calibration, speed"),
    "gate": (_gate, "modality gate on transformed held-out images and photos: routing, refusals, "
                    "false-accept rate of each diagnosis tool"),
    "comparison": (_comparison, "prior-study comparison: registration and change detection"),
    "concurrency": (_concurrency, "N concurrent sessions (1, 2, 4, 8) on in-process vs Ray Serve experts: "
                                  "answers/s, p50/p95 latency, peak memory"),
    "min-size": (_min_size, "how small a smear or an endoscopy frame may be before the counter goes wrong "
                            "(the gate's size floors)"),
    "magnification": (_magnification, "smear counts when the same field comes at 2x or 4x the pixels (the red-cell "
                                      "ruler that resamples to the training magnification)"),
    "compression": (_compression, "how hard a smear, an endoscopy frame or a chest film may be JPEG-compressed "
                                  "before its expert goes wrong (the gate's quality floors)"),
    "frame-quality": (_frame_quality, "the polyp detector's doubt on noisy or scan-lined endoscopy frames: how often "
                                      "it fires and how many wrong counts it catches"),
    "smear-tone": (_smear_tone, "the blood-cell counter's doubt on brightened, darkened or gamma-changed smears: how "
                                "often it fires and how many wrong counts it catches"),
    "voice": (_voice, "speech recognition and command accuracy"),
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
    run, _ = BENCHMARKS[name]
    return int(run(rest) or 0)
