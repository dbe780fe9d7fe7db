"""``osler bench counts [--backend auto|opencv|yolo] [--limit N] [--json]``: blood-cell counting
accuracy on the BCCD dev smears (``bccd/split.txt``, 292 images) against their VOC annotations.

Counts go through the same tool boundary as ``ask`` (:func:`agent.boundary.toolset.invoke` of ``count`` with
target ``blood_cells``: modality gate, detector, duplicate merging).  Reported:

* ``wbc_exact``: fraction of images whose WBC count equals the annotation (WBC labels are reliable).
* ``platelets_mae`` (and ``platelets_exact``), ``rbc_mae`` and ``rbc_bias`` (mean predicted - annotated;
  RBC boxes miss overlapping cells, so the annotation undercounts and a positive bias is expected).
* ``cross_check``: per cross-checked class (the count result's ``cross_check``: the other backend's count
  within the validated tolerance), how often the flag fired, how many of the primary's wrong counts it
  flagged (``catch_rate``) and how many right ones (``false_alarm_rate``).  These 292 smears include the
  YOLO's training smears: ``osler bench counts-cv`` gives the held-out numbers.
* ``failed``: images where the tool refused or failed (counted in no metric).  A backend that
  cannot run at all raises ExpertUnavailableError (``osler bench`` exits 2 with its message).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["count_accuracy", "main"]

CLASSES = ("WBC", "Platelets", "RBC")


def _metrics(pairs: list[tuple[dict[str, int], dict[str, int]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    n = len(pairs)
    for cls in CLASSES:
        key = cls.lower()
        errs = [p.get(cls, 0) - t.get(cls, 0) for p, t in pairs]
        out[f"{key}_exact"] = sum(e == 0 for e in errs) / n if n else None
        out[f"{key}_mae"] = sum(abs(e) for e in errs) / n if n else None
        out[f"{key}_bias"] = sum(errs) / n if n else None
    return out


def _flag_stats(rows: list[tuple[bool, bool]]) -> dict[str, Any]:
    wrong = sum(w for _, w in rows)
    right = len(rows) - wrong
    return {"n": len(rows), "flagged": sum(f for f, _ in rows), "wrong": wrong,
            "wrong_flagged": sum(f and w for f, w in rows), "right_flagged": sum(f and not w for f, w in rows),
            "catch_rate": sum(f and w for f, w in rows) / wrong if wrong else None,
            "false_alarm_rate": sum(f and not w for f, w in rows) / right if right else None}


def count_accuracy(settings: Any, data_root: Path, limit: int | None = None, progress: bool = True) -> dict[str, Any]:
    from tqdm import tqdm

    from agent.session import Session
    from agent.boundary.toolset import invoke
    from experts.registry import ExpertPool
    from tools.detection import DetectRequest
    from tools.errors import ConfigurationError, ExpertUnavailableError

    from .ground_truth import voc_counts

    names = (data_root / "bccd" / "split.txt").read_text().split()[:limit]
    pool = ExpertPool(settings)
    pairs, failed, backends = [], [], set()
    checks: dict[str, list[tuple[bool, bool]]] = {}  # class -> (flagged, primary wrong) per image
    t0 = time.perf_counter()
    for name in tqdm(names, desc="counts", unit="img", file=sys.stderr, disable=not progress):
        truth = voc_counts(data_root / "bccd" / "annotations" / f"{name}.xml")
        session = Session(settings, pool)
        session.load("current", data_root / "bccd" / "images" / f"{name}.jpg")
        try:
            r = invoke(session, "count", DetectRequest(target="blood_cells"))
        except (ExpertUnavailableError, ConfigurationError):
            raise  # the requested backend cannot run at all: say so once (exit code 2)
        except Exception as exc:  # a refusal or expert failure on one image is counted, not fatal
            failed.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        backends.add(f"{r.provenance.backend}:{r.provenance.model}")
        pairs.append(({c.label: c.count for c in r.counts}, {k: truth.get(k, 0) for k in CLASSES}))
        for cc in r.cross_check.counts if r.cross_check else []:
            checks.setdefault(cc.label, []).append((not cc.agrees, cc.primary_count != truth.get(cc.label, 0)))
    wall = time.perf_counter() - t0
    return {"images": len(names), "scored": len(pairs), "failed": len(failed), "failures": failed[:10],
            "backend": sorted(backends), "requested_backend": settings.detector_backend, **_metrics(pairs),
            "cross_check": {label: _flag_stats(v) for label, v in checks.items()},
            "seconds": wall, "images_per_s": len(names) / wall if wall else None}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="osler bench counts", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", choices=["auto", "opencv", "yolo"], default="auto",
                    help="detector backend (default: whatever the registry picks)")
    ap.add_argument("--limit", type=int, help="only the first N smears of split.txt")
    ap.add_argument("--data-root", type=Path, help="default: settings.shared_data (../shared/data)")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--json", action="store_true", help="print only the JSON object")
    args = ap.parse_args(argv)
    from tools.settings import OslerSettings

    kw: dict[str, Any] = {"detector_backend": args.backend, "data_dir": tempfile.mkdtemp(prefix="osler-counts-")}
    if args.device:
        kw["device"] = args.device
    if args.data_root:
        kw["shared_data"] = args.data_root
    settings = OslerSettings(**kw)
    res = count_accuracy(settings, Path(settings.shared_data).resolve(), args.limit, progress=not args.json)
    if not args.json:
        print(f"BCCD dev smears: {res['scored']}/{res['images']} scored ({res['failed']} failed), "
              f"backend {', '.join(res['backend'])}")
        for cls in CLASSES:
            k = cls.lower()
            if res[f"{k}_mae"] is not None:
                print(f"  {cls:9s} exact {100 * res[f'{k}_exact']:5.1f}%   MAE {res[f'{k}_mae']:.2f}   "
                      f"bias {res[f'{k}_bias']:+.2f}")
        for label, st in res["cross_check"].items():
            print(f"  cross-check {label}: flagged {st['flagged']}/{st['n']}, caught "
                  f"{st['wrong_flagged']}/{st['wrong']} wrong counts, {st['right_flagged']} right counts flagged")
        print(f"  {res['images_per_s']:.1f} images/s")
    print(json.dumps(res, indent=2 if args.json else None))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
