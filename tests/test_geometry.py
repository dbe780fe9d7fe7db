"""experts.geometry: measurements, coverage, box IoU and de-duplication against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experts.geometry import (
    box_iou,
    connected_regions,
    coverage_fraction,
    dedup_boxes,
    mask_bbox,
    measure_mask,
)


def rect(h=60, w=80, rows=(10, 20), cols=(5, 25)) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[rows[0]:rows[1], cols[0]:cols[1]] = True
    return m


def test_rectangle_area_bbox_centroid():
    m = measure_mask(rect())  # 10 rows x 20 columns at rows 10..19, columns 5..24
    assert m.area_px == 200
    assert m.bbox == (5.0, 10.0, 25.0, 20.0)  # xyxy, exclusive max
    assert m.centroid == pytest.approx((15.0, 15.0))  # pixel centres average to the geometric centre
    assert m.area_mm2 is None and m.long_mm is None and m.short_mm is None


def test_rectangle_diameters_on_pixel_edges():
    m = measure_mask(rect())
    # longest: the 20 x 10 diagonal; perpendicular extent of a w x h rectangle across its diagonal: 2wh / diag
    assert m.long_px == pytest.approx(math.sqrt(20**2 + 10**2))
    assert m.short_px == pytest.approx(2 * 20 * 10 / math.sqrt(500))


def test_spacing_row_col_order_and_mm2():
    m = measure_mask(rect(), spacing_mm=(0.5, 0.2))  # (row_mm, col_mm): 20 columns = 4 mm wide, 10 rows = 5 mm tall
    assert m.area_mm2 == pytest.approx(200 * 0.5 * 0.2)
    assert m.long_mm == pytest.approx(math.sqrt(4**2 + 5**2))
    assert m.short_mm == pytest.approx(2 * 4 * 5 / math.sqrt(41))
    assert m.long_px == pytest.approx(math.sqrt(500))  # pixel values unchanged by the spacing


def test_single_pixel_and_empty():
    one = np.zeros((5, 5), dtype=bool)
    one[2, 3] = True
    m = measure_mask(one)
    assert (m.area_px, m.bbox, m.centroid) == (1, (3.0, 2.0, 4.0, 3.0), (3.5, 2.5))
    assert m.long_px == pytest.approx(math.sqrt(2)) and m.short_px == pytest.approx(math.sqrt(2))
    e = measure_mask(np.zeros((5, 5), dtype=bool))
    assert (e.area_px, e.long_px, e.short_px, e.bbox, e.centroid, e.area_mm2) == (0, 0.0, 0.0, None, None, None)
    e = measure_mask(np.zeros((5, 5), dtype=bool), spacing_mm=(1.0, 1.0))
    assert (e.area_mm2, e.long_mm, e.short_mm) == (0.0, 0.0, 0.0)


def test_rotated_ellipse_axes():
    import cv2

    img = np.zeros((200, 200), np.uint8)
    cv2.ellipse(img, (100, 100), (40, 15), 30, 0, 360, 1, -1)  # semi-axes 40 and 15 px, rotated 30°
    m = measure_mask(img.astype(bool))
    assert m.long_px == pytest.approx(81, abs=1.5)  # 2 * 40 + one pixel of edges
    assert m.short_px == pytest.approx(31, abs=2.0)
    assert m.area_px == pytest.approx(math.pi * 40.5 * 15.5, rel=0.04)
    assert m.centroid == pytest.approx((100.5, 100.5), abs=0.3)


def test_disk_is_round():
    import cv2

    img = np.zeros((100, 100), np.uint8)
    cv2.circle(img, (50, 50), 20, 1, -1)
    m = measure_mask(img.astype(bool), spacing_mm=(0.1, 0.1))
    assert m.long_px == pytest.approx(41, abs=1.0)
    assert abs(m.long_px - m.short_px) < 1.5
    assert m.long_mm == pytest.approx(m.long_px * 0.1)


def test_coverage_fraction():
    organ = rect()  # 200 px
    finding = np.zeros_like(organ)
    finding[10:15, 5:15] = True  # 50 px inside the organ
    finding[40:45, 40:50] = True  # 50 px outside: not counted
    assert coverage_fraction(finding, organ) == pytest.approx(0.25)
    assert coverage_fraction(organ, organ) == 1.0
    assert coverage_fraction(finding, np.zeros_like(organ)) == 0.0


def test_box_iou_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 4, 4]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]], np.float32)
    iou = box_iou(a, b)
    assert iou.shape == (2, 3)
    assert iou[0] == pytest.approx([1.0, 50 / 150, 0.0])  # identical, half-overlap, touching
    assert iou[1] == pytest.approx([16 / 100, 0.0, 0.0])  # nested: the small box's area over the large one's
    assert box_iou([0, 0, 0, 0], [0, 0, 0, 0])[0, 0] == 0.0  # degenerate boxes: 0, not NaN


def test_dedup_boxes_per_label_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [1, 0, 11, 10], [20, 20, 30, 30]], np.float32)
    labels = ["RBC", "RBC", "WBC", "RBC"]
    # box 1 overlaps box 0 with IoU 90/110 = 0.82 and scores lower: dropped; box 2 is another label
    assert dedup_boxes(boxes, np.array([0.9, 0.8, 0.7, 0.5]), labels).tolist() == [0, 2, 3]
    assert dedup_boxes(boxes, np.array([0.8, 0.9, 0.7, 0.5]), labels).tolist() == [1, 2, 3]  # the higher score wins
    assert dedup_boxes(boxes, np.array([0.9, 0.8, 0.7, 0.5]), labels, iou=0.9).tolist() == [0, 1, 2, 3]


def test_connected_regions_and_bbox():
    m = np.zeros((30, 30), dtype=bool)
    m[0:5, 0:10] = True  # 50 px
    m[20:22, 20:25] = True  # 10 px
    m[22, 25] = True  # touches the 10-px blob diagonally: 8-connected, 11 px
    comps = connected_regions(m, min_area=1)
    assert [int(c.sum()) for c in comps] == [50, 11]
    assert [int(c.sum()) for c in connected_regions(m, min_area=20)] == [50]
    assert mask_bbox(comps[1]) == (20.0, 20.0, 26.0, 23.0)
    assert mask_bbox(np.zeros((3, 3), bool)) is None


def test_prompt_markers_are_drawn_where_the_prompts_were():
    """Overlays show the click (green circled cross on a black halo, red cross for a negative point) and the
    box (white outline); the input is not modified."""
    from experts.overlay import draw_prompts

    img = np.full((300, 400, 3), 90, np.uint8)
    out = draw_prompts(img, boxes=[(20, 30, 120, 130)], points=[(200, 150, True), (320, 220, False)])
    assert (img == 90).all() and out.shape == img.shape
    green = (out == (0, 255, 0)).all(axis=2)
    red = (out == (255, 0, 0)).all(axis=2)
    white = (out == (255, 255, 255)).all(axis=2)
    ys, xs = np.nonzero(green)
    assert green.any() and abs(xs.mean() - 200) < 3 and abs(ys.mean() - 150) < 3
    ys, xs = np.nonzero(red)
    assert red.any() and abs(xs.mean() - 320) < 3 and abs(ys.mean() - 220) < 3
    assert white[30, 20:120].all() and white[30:130, 20].all() and not white[80, 70]  # outline only
