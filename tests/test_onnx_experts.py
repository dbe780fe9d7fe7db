"""The default CPU experts on onnxruntime (``experts.onnx_runtime``; exports by ``training/export_onnx.py``) give the
torch experts' results on real images, say which runtime ran, and keep torch out of a first smear answer.

Images: BCCD smears (MIT), EndoTect / HyperKvasir frames (CC BY 4.0) and chest films from ../shared/data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from experts.imaging import load_image
from experts.onnx_runtime import ONNX_SHA256, nms, use_onnx
from experts.weights import BUNDLED_DIR, sha256_of
from tests.conftest import SMEAR, first_wbc_answer_in_fresh_process
from tools.errors import ExpertUnavailableError
from tools.settings import ModelPaths, OslerSettings

pytest.importorskip("onnxruntime")


def _smears(data_dir: Path, n: int | None) -> list[Path]:
    names = (data_dir / "bccd" / "split.txt").read_text().split()
    return [data_dir / "bccd" / "images" / f"{name}.jpg" for name in (names if n is None else names[:n])]


def _same_detections(data_dir: Path, n: int | None) -> int:
    from experts.yolo_detector import build_blood
    from experts.yolo_onnx import YoloOnnxDetector

    torch_det = build_blood(OslerSettings(device="cpu", expert_runtime="torch", torch_threads=1))
    onnx_det = build_blood(OslerSettings(device="cpu", expert_runtime="onnx", torch_threads=1))
    assert isinstance(onnx_det, YoloOnnxDetector) and not isinstance(torch_det, YoloOnnxDetector)
    wbc = 0
    for path in _smears(data_dir, n):
        image = load_image(path)
        a, b = torch_det.predict(image), onnx_det.predict(image)
        assert a.labels == b.labels, path.name
        np.testing.assert_allclose(b.boxes, a.boxes, atol=0.05, err_msg=path.name)
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-4, err_msg=path.name)
        wbc += a.labels.count("WBC")
    return wbc


def test_onnx_blood_yolo_gives_the_torch_boxes_on_real_smears(data_dir):
    assert _same_detections(data_dir, 6) >= 6  # every dev smear holds at least one WBC


@pytest.mark.slow
def test_onnx_blood_yolo_gives_the_torch_boxes_on_every_dev_smear(data_dir):
    assert _same_detections(data_dir, None) >= 292


def test_onnx_gate_embedding_and_verdicts_equal_torch(data_dir):
    from experts.modality_gate import build

    torch_gate = build(OslerSettings(expert_runtime="torch"))
    onnx_gate = build(OslerSettings(expert_runtime="onnx"))
    paths = [data_dir / SMEAR, *sorted((data_dir / "endotect_polyps" / "images").glob("*.jpg"))[:2],
             *sorted((data_dir / "kermany_cxr").rglob("*.jpeg"))[:2], *sorted((data_dir / "hannover_cxr").rglob("*.png"))[:1]]
    assert len(paths) >= 4
    for path in paths:
        image = load_image(path)
        a, b = torch_gate._embedder(image.pixels), onnx_gate._embedder(image.pixels)
        assert a.shape == b.shape == (1280,) and np.abs(a).max() > 0.1
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-4 * np.abs(a).max())
        va, vb = torch_gate.predict(image), onnx_gate.predict(image)
        assert (va.label, va.trusted) == (vb.label, vb.trusted), path.name
        for kind, p in va.probabilities.items():
            assert vb.probabilities[kind] == pytest.approx(p, abs=1e-5)
        assert "onnxruntime" in vb.provenance.note and "on torch" in va.provenance.note


def test_numpy_nms_equals_ultralytics_on_a_real_head_output(data_dir):
    torch = pytest.importorskip("torch")
    from ultralytics.utils.nms import non_max_suppression

    from experts.onnx_runtime import OnnxModel
    from experts.yolo_postprocess import _canvas, _letterbox

    model = OnnxModel("bccd_yolo.onnx", threads=1)
    rgb = load_image(data_dir / SMEAR).pixels
    boxed, _, _ = _letterbox(rgb, 640, _canvas(rgb.shape[:2], 640, 32))
    preds = model(boxed.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    for conf, iou, classes in ((0.25, 0.5, None), (0.02, 0.5, [1, 2]), (0.02, 0.7, [0])):
        ours = nms(preds[0], conf, iou, classes=classes)
        theirs = non_max_suppression(torch.from_numpy(preds), conf_thres=conf, iou_thres=iou, classes=classes,
                                     nc=0)[0].numpy()
        assert len(ours) > 0
        np.testing.assert_allclose(ours, theirs[:, :6], atol=1e-4)


def test_runtime_choice(monkeypatch):
    import experts.onnx_runtime as rt

    monkeypatch.setattr(rt, "cuda_visible", lambda: False)
    assert use_onnx(OslerSettings(), "bccd_yolo.onnx")[0] is True
    assert use_onnx(OslerSettings(expert_runtime="torch"), "bccd_yolo.onnx")[0] is False
    site = ModelPaths(yolo_blood=Path("/site/best.pt"))
    on, why = use_onnx(OslerSettings(models=site), "bccd_yolo.onnx", site.yolo_blood)
    assert on is False and "best.pt" in why
    with pytest.raises(ExpertUnavailableError, match="OSLER_EXPERT_RUNTIME=onnx"):
        use_onnx(OslerSettings(expert_runtime="onnx"), "bccd_yolo.onnx", site.yolo_blood)
    with pytest.raises(ExpertUnavailableError, match="device=cuda"):
        use_onnx(OslerSettings(expert_runtime="onnx", device="cuda"), "bccd_yolo.onnx")
    assert use_onnx(OslerSettings(), "missing.onnx")[0] is False
    monkeypatch.setattr(rt, "cuda_visible", lambda: True)
    assert use_onnx(OslerSettings(), "bccd_yolo.onnx") == (False, "torch (a CUDA GPU is visible)")
    assert use_onnx(OslerSettings(device="cpu"), "bccd_yolo.onnx")[0] is True


def test_bundled_exports_match_their_checksums_and_model_cards():
    cards = {"bccd_yolo.onnx": "bccd_yolo.md", "gate_mobilenet_v2.onnx": "modality_gate.md"}
    for name, sha in ONNX_SHA256.items():
        assert sha256_of(BUNDLED_DIR / name) == sha
        assert sha in (BUNDLED_DIR / cards[name]).read_text()


def test_a_replaced_export_is_refused(tmp_path):
    from experts.onnx_runtime import OnnxModel

    fake = tmp_path / "bccd_yolo.onnx"
    fake.write_bytes((BUNDLED_DIR / "bccd_yolo.onnx").read_bytes()[:-1] + b"\0")
    with pytest.raises(ExpertUnavailableError, match="checksum mismatch"):
        OnnxModel("bccd_yolo.onnx", path=fake).load()


def test_a_first_smear_answer_does_not_import_torch(data_dir, tmp_path):
    out = first_wbc_answer_in_fresh_process(data_dir / SMEAR, tmp_path, "torch_threads=1, device='cpu'",
                                            ("torch", "ultralytics", "torchvision"), timeout=300)
    assert out["value"] == 1  # the smear's one WBC
    assert out["mods"] == []
    assert all("onnxruntime" in note for note in out["notes"])  # the gate and the count say which runtime ran


def test_the_onnx_yolo_gives_the_same_boxes_from_concurrent_threads(data_dir):
    """It is ``thread_safe`` (its handle takes no lock, so sessions answering at once use both cores): smears
    predicted from four threads at once give exactly the boxes of one thread."""
    from concurrent.futures import ThreadPoolExecutor

    from experts.yolo_detector import build_blood
    from experts.yolo_onnx import YoloOnnxDetector

    det = build_blood(OslerSettings(device="cpu", expert_runtime="onnx", torch_threads=1))
    assert isinstance(det, YoloOnnxDetector) and det.thread_safe
    images = [load_image(p) for p in _smears(data_dir, 6)]
    alone = [det.predict(im) for im in images]
    with ThreadPoolExecutor(4) as ex:
        together = list(ex.map(det.predict, images + images))
    for a, b in zip(alone + alone, together):
        assert a.labels == b.labels
        np.testing.assert_array_equal(a.boxes, b.boxes)
        np.testing.assert_array_equal(a.scores, b.scores)
