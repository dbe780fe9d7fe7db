"""Cold start: the process that answers a first question does not import torchvision (~3 s: its ops import
``torch._dynamo``) or matplotlib (~0.6 s) on the way to a blood-smear or polyp answer, and what replaced them
gives the same numbers.

* the modality gate's MobileNetV2 is built in plain torch (``experts.gate_deep.mobilenet_v2_features``): the same
  embedding as torchvision's network with the same weights, on real images;
* without torchvision imported, ultralytics runs its own NMS instead of ``torchvision.ops.nms``: the same boxes on
  real smears and endoscopy frames;
* a fresh interpreter that answers a smear question has imported neither.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.conftest import SMEAR, first_wbc_answer_in_fresh_process


def test_plain_torch_mobilenet_v2_equals_torchvision(data_dir):
    pytest.importorskip("torchvision")
    from torchvision.models import mobilenet_v2

    from experts.gate_deep import DeepEmbedder
    from experts.imaging import load_image

    ours = DeepEmbedder()
    ours.load()
    net = mobilenet_v2(weights=None).features
    assert [tuple(v.shape) for v in net.state_dict().values()] == [tuple(v.shape) for v in ours._net.state_dict().values()]
    net.load_state_dict(dict(zip(net.state_dict().keys(), ours._net.state_dict().values())))
    net.eval()
    theirs = DeepEmbedder()
    theirs._net = net
    for rel in (SMEAR, "endotect_polyps/images"):
        path = data_dir / rel
        image = load_image(path if path.is_file() else sorted(path.glob("*.jpg"))[0]).pixels
        a, b = ours(image), theirs(image)
        assert a.shape == (1280,) and np.abs(a).max() > 0.1
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


def test_yolo_boxes_do_not_depend_on_which_nms_runs(data_dir, monkeypatch):
    """ultralytics uses torchvision's NMS only when torchvision is already imported; its own NMS must agree."""
    pytest.importorskip("torchvision")
    import torch

    from experts.imaging import load_image
    from experts.yolo_detector import build_blood, build_polyp
    from tools.settings import OslerSettings

    torch.set_num_threads(1)
    settings = OslerSettings(expert_runtime="torch")  # the torch path: ultralytics' NMS
    smears = sorted((data_dir / "bccd/images").glob("*.jpg"))[:6]
    frames = sorted((data_dir / "endotect_polyps/images").glob("*.jpg"))[:3]
    import torchvision  # noqa: F401 - present in sys.modules: ultralytics picks torchvision.ops.nms

    for build, paths in ((build_blood, smears), (build_polyp, frames)):
        det = build(settings)
        det.load()
        images = [load_image(p) for p in paths]
        with_tv = [det.predict(im) for im in images]
        monkeypatch.delitem(sys.modules, "torchvision")  # ultralytics checks sys.modules at each call
        without_tv = [det.predict(im) for im in images]
        monkeypatch.undo()
        assert sum(len(d.labels) for d in with_tv) > 0
        for a, b in zip(with_tv, without_tv):
            assert a.labels == b.labels
            np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
            np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)


@pytest.mark.slow
def test_a_first_answer_imports_neither_torchvision_nor_matplotlib(data_dir, tmp_path):
    out = first_wbc_answer_in_fresh_process(data_dir / SMEAR, tmp_path, "torch_threads=1",
                                            ("torchvision", "matplotlib", "torch._dynamo"))
    assert out["value"] == 1  # the smear's one WBC
    assert out["mods"] == []
