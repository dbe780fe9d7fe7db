"""Bit depth, windowing and file format do not change what the experts see (issue 15).

One real chest film (Hannover CXR, CC BY 3.0; and a Kermany film, CC BY 4.0) is written as 8-bit PNG,
16-bit TIFF scaled to the full 16-bit range and to a 12-bit range inside 16 bits, float TIFF, and
DICOM MONOCHROME2 and MONOCHROME1 (inverted stored values).  ``load_image`` must give nearly the
same pixels for all of them, and the real ``classify`` tool the same class and probabilities
within 2 points, whichever classifier is installed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA
from tests.dicom_sc import write_secondary_capture

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data (public dev images) is not present")

FILMS = ("hannover_cxr/png/006f3a8a.png", "kermany_cxr/train/PNEUMONIA/person1000_bacteria_2931.jpeg")


def _film(rel: str) -> np.ndarray:
    from PIL import Image

    path = DATA / rel
    if not path.exists():
        pytest.skip(f"{rel} is not in the dev data")
    return np.asarray(Image.open(path).convert("L"))


def _dicom(path: Path, stored: np.ndarray, photometric: str, bits: int) -> None:
    write_secondary_capture(path, stored, modality="CR", photometric=photometric, bits=bits, BodyPartExamined="CHEST")


def write_variants(grey: np.ndarray, folder: Path) -> dict[str, Path]:
    """The film ``grey`` (uint8 ``(H, W)``) in every container; returns name -> path."""
    from PIL import Image

    v = grey.astype(np.float64)
    out = {"png8": folder / "film.png", "tiff16": folder / "film16.tif", "tiff12in16": folder / "film12.tif",
           "tiff_float": folder / "film_f.tif", "dicom_mono2": folder / "film_m2.dcm",
           "dicom_mono1": folder / "film_m1.dcm"}
    Image.fromarray(grey).save(out["png8"])
    Image.fromarray(np.round(v * 257).astype(np.uint16)).save(out["tiff16"])
    v12 = np.round(v * 4095 / 255).astype(np.uint16)
    Image.fromarray(v12).save(out["tiff12in16"])
    Image.fromarray((v / 255).astype(np.float32), mode="F").save(out["tiff_float"])
    _dicom(out["dicom_mono2"], v12, "MONOCHROME2", 12)
    _dicom(out["dicom_mono1"], 4095 - v12, "MONOCHROME1", 12)
    return out


@pytest.mark.parametrize("rel", FILMS)
def test_every_container_loads_to_the_same_pixels(rel: str, tmp_path: Path) -> None:
    from experts.imaging import load_image

    grey = _film(rel)
    paths = write_variants(grey, tmp_path)
    ref = load_image(paths["png8"]).pixels
    assert np.array_equal(ref[..., 0], grey)  # an 8-bit grey film is shown as it is
    for name, path in paths.items():
        px = load_image(path).pixels
        assert px.shape == ref.shape, name
        diff = np.abs(px.astype(int) - ref.astype(int))
        assert diff.max() <= 1 and diff.mean() < 0.05, (name, diff.max(), diff.mean())


def test_low_contrast_high_depth_image_is_auto_windowed(tmp_path: Path) -> None:
    """A film that uses a sliver of its 16-bit container is stretched, not shown nearly black."""
    from PIL import Image

    from experts.imaging import load_image

    grey = _film(FILMS[0]).astype(np.float64)
    Image.fromarray(np.round(1000 + grey * 4).astype(np.uint16)).save(tmp_path / "dim16.tif")
    px = load_image(tmp_path / "dim16.tif").pixels[..., 0].astype(float)
    lo, hi = np.percentile(px, [0.5, 99.5])
    assert lo <= 2 and hi >= 253
    assert np.corrcoef(px.ravel(), grey.ravel())[0, 1] > 0.99


def test_dicom_window_tags_still_win(tmp_path: Path) -> None:
    import pydicom

    from experts.imaging import load_image

    grey = _film(FILMS[0])
    path = tmp_path / "windowed.dcm"
    _dicom(path, np.round(grey.astype(float) * 4095 / 255), "MONOCHROME2", 12)
    ds = pydicom.dcmread(path)
    ds.WindowCenter, ds.WindowWidth = 1024, 1024  # the sender's narrow window: darker half only
    ds.save_as(path)
    img = load_image(path)
    assert img.meta.window == (1024.0, 1024.0)
    assert (img.pixels[..., 0] == 255).mean() > (grey == 255).mean() + 0.2


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.parametrize("rel", FILMS)
def test_classify_tool_gives_the_same_answer_for_every_container(rel: str, tmp_path: Path, assistant) -> None:
    from agent.boundary.toolset import invoke
    from tools.classification import ClassifyRequest

    paths = write_variants(_film(rel), tmp_path)
    results = {}
    for name, path in paths.items():
        s = assistant.new_session()
        s.load("current", path)
        results[name] = invoke(s, "classify", ClassifyRequest(task="cxr_pneumonia"))
    ref = results["png8"]
    for name, r in results.items():
        assert r.label == ref.label, (name, r.probabilities, ref.probabilities)
        for k, p in ref.probabilities.items():
            assert abs(r.probabilities[k] - p) <= 0.02, (name, k, r.probabilities[k], p)
