"""The whole-film measurement's pieces (training/cxr_whole_film.py): the picture without its uniform border and the
lung share over it."""

from __future__ import annotations

import numpy as np

from training.cxr_whole_film import content_box, lung_share


def test_the_uniform_border_is_trimmed_and_a_picture_without_one_is_kept_whole():
    rng = np.random.default_rng(0)
    film = rng.integers(0, 255, (200, 160), dtype=np.uint8)
    framed = np.zeros((240, 200), np.uint8)
    framed[12:212, 25:185] = film
    assert content_box(framed) == (25, 12, 185, 212)
    assert content_box(film) == (0, 0, 160, 200)
    assert content_box(np.zeros((50, 40), np.uint8)) == (0, 0, 40, 50)  # uniform throughout: the whole image


def test_the_lung_share_of_a_framed_film_is_the_share_of_the_film():
    film = np.random.default_rng(1).integers(0, 255, (100, 100), dtype=np.uint8)
    mask = np.zeros((100, 100), bool)
    mask[20:80, 10:45] = mask[20:80, 55:90] = True  # 42 % of the film
    framed, fmask = np.zeros((140, 140), np.uint8), np.zeros((140, 140), bool)
    framed[20:120, 20:120], fmask[20:120, 20:120] = film, mask
    assert abs(lung_share(film, mask) - 0.42) < 1e-9
    assert abs(lung_share(framed, fmask) - 0.42) < 1e-9
    assert lung_share(film, None) == 0.0
