"""Train the project's small YOLO detectors from a model yaml (random init, no pretrained weights).

    .venv/bin/python -m training.train_yolo bccd --epochs 50 --time-hours 0.38 --imgsz 320
    .venv/bin/python -m training.train_yolo endotect_polyps --epochs 60 --time-hours 0.38 --imgsz 256

``--init`` continues from an earlier stage's ``last.pt`` (same yaml); ``--time-hours`` caps the wall
clock (ultralytics re-plans epochs and LR to fit); ``--native-crop N`` trains on N x N crops at native
resolution (small objects keep their pixel size) while the saved detector runs on whole images at
``--infer-imgsz``.  The exact stage commands of the bundled weights are in their model cards.

Data are converted to YOLO format under ``--work`` (default ``/tmp/osler_yolo/<dataset>``) with a
seeded split (:mod:`training.yolo_data`); ultralytics trains on CPU (or ``--device``) with
``plots=False``, ``amp=False``, ``workers=0`` and no network (see :mod:`experts.ultralytics_env`;
any socket connect during training is refused and counted).  Validation runs after the last
epoch only (``val=False``), so the last epoch is kept; it is saved as a plain fp16 state dict that
loads with ``weights_only=True`` (:func:`experts.ultralytics_env.save_checkpoint`)::

    {"format": "osler-yolo-v1", "yaml": <model yaml dict>, "names": [...], "imgsz": int,
     "state_dict": {name: fp16 tensor}, "train": {...args, split, metrics, wall time...}}

with the validation file names in ``train["val"]`` (also in ``<work>/val.txt``).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import socket
import sys
import time
from pathlib import Path

from training.yolo_data import bccd_dataset, polyp_dataset

log = logging.getLogger("train_yolo")

REPO = Path(__file__).resolve().parents[1]
DATASETS = {"bccd": (bccd_dataset, "bccd_yolo.pt"), "endotect_polyps": (polyp_dataset, "polyp_yolo.pt")}
_ATTEMPTS: list[str] = []


def _refuse_network() -> None:
    real = socket.socket.connect

    def connect(self, address):  # noqa: ANN001
        if self.family in (socket.AF_INET, socket.AF_INET6):
            _ATTEMPTS.append(repr(address))
            raise OSError(f"network disabled during training (attempted {address!r})")
        return real(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]


def model_yaml(base: str, depth: float, width: float, max_ch: int, out: Path) -> Path:
    """Write ``base`` (e.g. 'yolo11n.yaml') with one custom scale to ``out``; returns the path."""
    import yaml
    from ultralytics.nn.tasks import yaml_model_load

    cfg = yaml_model_load(base)
    cfg.pop("yaml_file", None)
    cfg["scales"] = {"c": [depth, width, max_ch]}
    cfg["scale"] = "c"
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def export_state(best: Path, out: Path, meta: dict) -> None:
    """Convert an ultralytics checkpoint to the fp16 ``osler-yolo-v1`` state dict."""
    import torch
    from ultralytics.nn.tasks import torch_safe_load

    from experts.ultralytics_env import save_checkpoint

    try:
        ckpt, _ = torch_safe_load(str(best), safe_only=True)
    except TypeError:  # a model with a TorchVision backbone layer (training/models/yolo11-mnv2.yaml) is outside the
        ckpt, _ = torch_safe_load(str(best), safe_only=False)  # safe list; this file is the run's own output
    model = (ckpt.get("ema") or ckpt["model"]).float()
    names = model.names if isinstance(model.names, dict) else dict(enumerate(model.names))
    save_checkpoint(model, [names[i] for i in range(len(names))], meta["imgsz"], out, meta)
    torch.load(out, map_location="cpu", weights_only=True)  # must load safely


def _epochs_run(work: Path) -> int:
    csv = work / "runs" / "train" / "results.csv"
    return max(0, len(csv.read_text().strip().splitlines()) - 1) if csv.exists() else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dataset", choices=sorted(DATASETS))
    ap.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--work", type=Path, default=None, help="scratch dir (default /tmp/osler_yolo/<dataset>)")
    ap.add_argument("--out", type=Path, default=None, help="weights path (default experts/weights/<name>.pt)")
    ap.add_argument("--model", default="yolo11n.yaml", help="ultralytics model yaml (random init)")
    ap.add_argument("--depth", type=float, default=0.5)
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--max-channels", type=int, default=1024)
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-frac", type=float, default=0.2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--lr0", type=float, default=0.01)
    ap.add_argument("--mosaic", type=float, default=1.0)
    ap.add_argument("--close-mosaic", type=int, default=10)
    ap.add_argument("--fliplr", type=float, default=0.5)
    ap.add_argument("--flipud", type=float, default=0.5)
    ap.add_argument("--degrees", type=float, default=0.0)
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--hsv-h", type=float, default=0.015)
    ap.add_argument("--val-every-epoch", action="store_true", help="validate each epoch (slower); default: last only")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup-epochs", type=float, default=3.0)
    ap.add_argument("--native-crop", type=int, default=None,
                    help="train on N x N crops at native resolution (imgsz N) instead of downscaled whole images")
    ap.add_argument("--infer-imgsz", type=int, default=None,
                    help="input size the detector uses on whole images (default --imgsz); with --native-crop give "
                         "the native long side, e.g. 640 for BCCD")
    ap.add_argument("--init", type=Path, default=None,
                    help="continue from an ultralytics checkpoint of an earlier run of this script (same model yaml); "
                         "default: random init")
    ap.add_argument("--time-hours", type=float, default=None,
                    help="wall-clock cap: ultralytics re-plans the epochs (and the LR schedule) to fit it")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    from experts.ultralytics_env import prepare_ultralytics

    work = args.work or Path("/tmp/osler_yolo") / args.dataset
    work.mkdir(parents=True, exist_ok=True)
    prepare_ultralytics(work / "config")
    _refuse_network()
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    build, default_name = DATASETS[args.dataset]
    shutil.rmtree(work / "data", ignore_errors=True)  # derived files only; never stale crops or labels
    data = build(args.data_root, work / "data", seed=args.seed, val_frac=args.val_frac, crop=args.native_crop)
    out = args.out or REPO / "experts" / "weights" / default_name
    log.info("data %s: %d train, %d val", data.yaml, len(data.train), len(data.val))
    cfg_path = model_yaml(args.model, args.depth, args.width, args.max_channels, work / "model.yaml")

    from ultralytics import YOLO

    model = YOLO(str(cfg_path), task="detect")
    t0, cpu0 = time.time(), time.process_time()
    model.train(
        data=str(data.yaml), epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, device=args.device,
        workers=0, seed=args.seed, deterministic=True, plots=False, amp=False,
        pretrained=str(args.init) if args.init else False, warmup_epochs=args.warmup_epochs,
        project=str(work / "runs"), name="train", exist_ok=True, cache="ram", val=args.val_every_epoch,
        lr0=args.lr0, mosaic=args.mosaic, close_mosaic=args.close_mosaic, fliplr=args.fliplr, flipud=args.flipud,
        degrees=args.degrees, scale=args.scale, hsv_h=args.hsv_h, patience=0, verbose=True,
        **({"time": args.time_hours} if args.time_hours else {}),
    )
    wall = time.time() - t0
    best = work / "runs" / "train" / "weights" / "best.pt"
    if not best.exists():
        best = work / "runs" / "train" / "weights" / "last.pt"
    metrics = model.val(data=str(data.yaml), imgsz=args.imgsz, batch=args.batch, device=args.device, plots=False,
                        workers=0, project=str(work / "runs"), name="val", exist_ok=True, conf=0.001)
    per_class = {model.names[int(c)]: float(ap) for c, ap in zip(metrics.box.ap_class_index, metrics.box.ap50)}
    infer_imgsz = args.infer_imgsz or args.imgsz
    meta = {
        "model_id": f"{args.dataset}-{Path(args.model).stem}-w{args.width:g}-{infer_imgsz}px-seed{args.seed}",
        "dataset": args.dataset, "model": args.model, "scale": [args.depth, args.width, args.max_channels],
        "imgsz": infer_imgsz, "train_imgsz": args.imgsz, "native_crop": args.native_crop,
        "epochs": args.epochs, "time_hours": args.time_hours,
        "epochs_run": _epochs_run(work), "batch": args.batch, "seed": args.seed,
        "val_frac": args.val_frac, "device": args.device, "init": str(args.init) if args.init else None,
        "wall_s": round(wall, 1), "cpu_s": round(time.process_time() - cpu0, 1), "val": data.val,
        "ultralytics_val": {"map50": float(metrics.box.map50), "map50_95": float(metrics.box.map),
                            "ap50_per_class": per_class},
        "argv": argv if argv is not None else sys.argv[1:],
    }
    export_state(best, out, meta)
    (work / "val.txt").write_text("\n".join(data.val) + "\n")
    print(json.dumps({k: v for k, v in meta.items() if k != "val"}, indent=1))
    print(f"saved {out} ({out.stat().st_size / 1e6:.2f} MB); network attempts during training: {len(_ATTEMPTS)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
