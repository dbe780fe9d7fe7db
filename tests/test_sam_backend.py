"""SAM backend: pre/post-processing, prompts, embedding cache, checkpoint loading and checks, with a
tiny randomly initialised ``Sam`` (no real checkpoint needed) on a real EndoTect colonoscopy frame."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("segment_anything")

from experts.geometry import mask_bbox  # noqa: E402
from experts.imaging import load_image  # noqa: E402
from experts.sam_segmenter import SamSegmenter, build, check, extract_state_dict, pixels_key  # noqa: E402
from tools.errors import ExpertUnavailableError, InvalidInputError  # noqa: E402
from tools.settings import ModelPaths, OslerSettings  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FRAME = DATA / "endotect_polyps" / "images" / "003ab8b5-cf6d-442a-849d-80ddf0d1edaf.jpg"  # 720x576 (not square)
OTHER = DATA / "endotect_polyps" / "negatives" / "images" / "0b952aa7-cbbd-44a2-9d0b-c31a46776aac.jpg"

pytestmark = [pytest.mark.skipif(not FRAME.exists(), reason="../shared/data is not present"),
              pytest.mark.usefixtures("one_torch_thread")]


def tiny_sam():
    """A 256-px Sam: ViT with embed_dim 64, depth 2; 32-channel prompt encoder and decoder."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    dim = 32
    enc = ImageEncoderViT(img_size=256, patch_size=16, in_chans=3, embed_dim=64, depth=2, num_heads=2, mlp_ratio=2.0,
                          out_chans=dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                          use_rel_pos=True, window_size=4, global_attn_indexes=(1,))
    pe = PromptEncoder(embed_dim=dim, image_embedding_size=(16, 16), input_image_size=(256, 256), mask_in_chans=8)
    dec = MaskDecoder(num_multimask_outputs=3, transformer_dim=dim, iou_head_depth=2, iou_head_hidden_dim=32,
                      transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=64, num_heads=2))
    return Sam(enc, pe, dec, pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()


class BoxEchoDecoder(torch.nn.Module):
    """Stands in for the mask decoder: logits +10 inside the prompt box (as the prompt encoder received
    it, in model-input pixels, divided by 4 for the 64x64 low-res grid), -10 outside.  Multimask:
    three masks, the box shrunk by 3 cells, the box, shrunk again, with predicted IoUs (0.2, 0.9, 0.5),
    so the best is the box; single mask: the box with IoU 0.7."""

    def __init__(self, seen: dict) -> None:
        super().__init__()
        self.seen = seen

    def forward(self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, multimask_output):
        x0, y0, x1, y1 = (self.seen["box"] / 4).tolist()  # input 256 px -> low-res 64: / 4
        shrink = (3, 0, 3) if multimask_output else (0,)  # the best mask is the box itself
        low = torch.full((1, len(shrink), 64, 64), -10.0)
        r = [int(round(v)) for v in (x0, y0, x1, y1)]
        for k, d in enumerate(shrink):
            low[0, k, r[1] + d:r[3] - d, r[0] + d:r[2] - d] = 10.0
        ious = torch.tensor([[0.2, 0.9, 0.5]]) if multimask_output else torch.tensor([[0.7]])
        return low, ious


def echo_segmenter(variant: str) -> SamSegmenter:
    """Tiny Sam whose img_size is 256 (low-res 64 = input / 4) and whose decoder echoes the box."""
    sam = tiny_sam()
    seen: dict = {}
    pe = sam.prompt_encoder
    orig = pe.forward

    def spy(points, boxes, masks):
        seen["box"] = boxes.reshape(-1)[:4].detach().clone()
        return orig(points, boxes, masks)

    pe.forward = spy
    sam.mask_decoder = BoxEchoDecoder(seen)
    return SamSegmenter.from_model(sam, variant=variant)


@pytest.fixture(scope="module")
def frame():
    return load_image(FRAME)


@pytest.mark.parametrize("variant", ["sam", "medsam"])
def test_box_maps_back_to_original_pixels(frame, variant):
    seg = echo_segmenter(variant)
    box = (300.0, 150.0, 520.0, 400.0)
    out = seg.predict(frame, box=box)
    assert len(out.masks) == 1
    m = out.masks[0]
    assert m.shape == frame.pixels.shape[:2] == (576, 720) and m.dtype == bool
    ref = np.zeros_like(m)
    ref[150:400, 300:520] = True
    iou = (m & ref).sum() / (m | ref).sum()
    assert iou > 0.9, iou  # scaling, padding crop and upsampling undone
    # each edge within one low-res cell (720 px -> 256 input -> 64 low-res: 11.25 px); the other
    # masks (shrunk by 3 cells) would miss by ~34 px: the best-IoU mask was picked
    assert np.allclose(mask_bbox(m), box, atol=11.5), mask_bbox(m)
    assert out.scores[0] == pytest.approx(0.9 if variant == "sam" else 0.7)  # best predicted IoU is the score


def test_real_tiny_decoder_box_and_points_give_image_sized_masks(frame):
    seg = SamSegmenter.from_model(tiny_sam())
    seg.sam.mask_threshold = -1e6  # random weights: make every mask non-empty so its shape can be read
    for kwargs in ({"box": (300.0, 150.0, 520.0, 400.0)},
                   {"points": [(400.0, 260.0, True), (100.0, 500.0, False)]},
                   {"box": (300.0, 150.0, 520.0, 400.0), "points": [(400.0, 260.0, True)]}):
        out = seg.predict(frame, **kwargs)
        assert len(out.masks) == 1 and out.masks[0].shape == (576, 720) and out.masks[0].dtype == bool
        assert 0.0 <= out.scores[0] <= 1.0
        assert out.provenance.backend == "sam" and out.provenance.device == "cpu"


def test_embedding_computed_once_per_image(frame):
    seg = SamSegmenter.from_model(tiny_sam())
    calls = []
    seg.sam.image_encoder.register_forward_hook(lambda *a: calls.append(1))
    seg.predict(frame, box=(300.0, 150.0, 520.0, 400.0))
    out2 = seg.predict(frame, points=[(400.0, 260.0, True)])
    assert len(calls) == 1 and seg.embeddings_computed == 1
    assert out2.provenance.note == "image embedding reused"
    seg.predict(load_image(OTHER), box=(10.0, 10.0, 200.0, 200.0))
    assert len(calls) == 2
    seg.predict(frame, box=(0.0, 0.0, 100.0, 100.0))  # still cached
    assert len(calls) == 2


def test_pixels_key_depends_on_content():
    a = np.zeros((4, 4, 3), np.uint8)
    b = a.copy()
    b[0, 0, 0] = 1
    assert pixels_key(a) == pixels_key(a.copy()) != pixels_key(b)
    assert pixels_key(a) != pixels_key(np.zeros((4, 4, 3), np.int16))


def test_prompts_are_validated(frame):
    seg = SamSegmenter.from_model(tiny_sam())
    with pytest.raises(InvalidInputError):
        seg.predict(frame)
    with pytest.raises(InvalidInputError):
        seg.predict(frame, box=(800.0, 10.0, 900.0, 50.0))  # right of a 720-px-wide image


def test_check_names_the_setting(tmp_path):
    msg = check(OslerSettings(models=ModelPaths()))
    assert msg and "OSLER_MODELS__SAM_CHECKPOINT" in msg
    msg = check(OslerSettings(models=ModelPaths(sam_checkpoint=tmp_path / "missing.pth")))
    assert msg and "OSLER_MODELS__SAM_CHECKPOINT" in msg and "does not exist" in msg
    ck = tmp_path / "sam.pth"
    ck.write_bytes(b"x")
    assert check(OslerSettings(models=ModelPaths(sam_checkpoint=ck))) is None


def test_build_picks_medsam_by_file_name(tmp_path):
    s = OslerSettings(models=ModelPaths(sam_checkpoint=tmp_path / "medsam_vit_b.pth"))
    assert build(s).variant == "medsam" and build(s).model_id == "medsam-vit_b"
    s = OslerSettings(models=ModelPaths(sam_checkpoint=tmp_path / "sam_vit_l_0b3195.pth", sam_model_type="vit_l"))
    assert build(s).variant == "sam" and build(s).model_id == "sam-vit_l"


def test_load_reads_wrapped_checkpoint(tmp_path, monkeypatch, frame):
    import segment_anything

    sd = {f"module.{k}": v for k, v in tiny_sam().state_dict().items()}
    ck = tmp_path / "tiny.pth"
    torch.save({"model": sd, "epoch": 3}, ck)
    monkeypatch.setitem(segment_anything.sam_model_registry, "vit_b", lambda checkpoint=None: tiny_sam_zeroed())
    seg = SamSegmenter(ck, model_type="vit_b", device="cpu")
    seg.load()
    ref = tiny_sam().state_dict()
    got = seg.sam.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)  # weights came from the file, not the zeroed build
    assert seg.sha256 and len(seg.sha256) == 64
    seg.sam.mask_threshold = -1e6
    assert seg.predict(frame, box=(300.0, 150.0, 520.0, 400.0)).provenance.weights_sha256 == seg.sha256


def tiny_sam_zeroed():
    sam = tiny_sam()
    with torch.no_grad():
        for p in sam.parameters():
            p.zero_()
    return sam


def test_load_rejects_a_checkpoint_of_another_model(tmp_path):
    ck = tmp_path / "wrong.pth"
    torch.save(tiny_sam().state_dict(), ck)
    seg = SamSegmenter(ck, model_type="vit_b", device="cpu")
    with pytest.raises(ExpertUnavailableError, match="SAM_MODEL_TYPE"):
        seg.load()


def test_extract_state_dict_rejects_empty():
    with pytest.raises(ExpertUnavailableError):
        extract_state_dict({})
    assert extract_state_dict({"state_dict": {"module.a": 1}}) == {"a": 1}


def test_bench_sam_times_one_embedding_per_image_and_each_prompt(tmp_path):
    """`osler bench sam` on a tiny random SAM: one embedding per image, every box decoded on the cached one."""
    import shutil

    from eval_scenarios.bench_sam import time_sam

    for src in (FRAME, OTHER):
        shutil.copy(src, tmp_path / src.name)
    seg = SamSegmenter.from_model(tiny_sam(), device="cpu", model_id="sam-tiny")
    res = time_sam(seg, sorted(tmp_path.iterdir()), boxes=3)
    assert res["images"] == 2 and res["prompts"] == 6
    assert res["embeddings_computed"] == 2  # the 3 box prompts per image reuse its embedding
    assert res["first_embedding_s"] > 0 and res["embedding_s"] > 0 and res["decode_s"] > 0


def test_polyp_segmentation_with_sam_is_prompted_by_the_detector(tmp_path):
    """OSLER_SEGMENTER_BACKEND=sam: automatic polyp segmentation runs the polyp detector (the real bundled
    YOLO) and prompts SAM with its box; one embedding for the frame.  A tiny random SAM stands in for a
    MedSAM checkpoint, so only the wiring is checked, not the mask quality."""
    pytest.importorskip("ultralytics")
    from agent.runner import Assistant
    from agent.boundary.toolset import invoke
    from experts.registry import BackendSpec, ExpertPool, default_registry, select_backend
    from tools.segmentation import SegmentRequest
    from tools.settings import OslerSettings

    specs = default_registry()["segment:polyp"]
    ready = {s.name: None for s in specs}
    no_sam = ready | {"sam": "no SAM checkpoint is configured"}
    assert select_backend("segment:polyp", specs, "auto", no_sam)[0].name == "litemedsam"  # the shipped default
    assert select_backend("segment:polyp", specs, "auto", ready)[0].name == "sam"  # a configured checkpoint wins
    assert select_backend("segment:polyp", specs, "sam", ready)[0].name == "sam"

    seg = SamSegmenter.from_model(tiny_sam(), device="cpu", model_id="sam-tiny")

    reg = default_registry()
    reg["segment:polyp"] = [BackendSpec("sam", lambda _settings: seg)]
    settings = OslerSettings(data_dir=tmp_path, device="cpu", segmenter_backend="sam")
    s = Assistant(settings, pool=ExpertPool(settings, registry=reg)).new_session()
    s.load("current", FRAME)
    r = invoke(s, "segment", SegmentRequest(target="polyp"))
    assert r.provenance.backend == "sam" and "box(es) of the polyp detector (yolo" in r.provenance.note
    assert seg.embeddings_computed == 1
    assert all(s.mask(x.mask.id).shape == (576, 720) for x in r.regions)
