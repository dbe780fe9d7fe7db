"""Finding burned-in text (names, dates, IDs written into the pixels) so that it can be blacked out
before an image leaves the machine.  OpenCV morphology only; see docs/planners.md for its coverage."""

from __future__ import annotations

import numpy as np

__all__ = ["mask_text_regions"]


def mask_text_regions(rgb: np.ndarray, *, min_chars: int = 3) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Black out text-like regions of an image.

    ``rgb``: uint8 (H, W, 3).  Returns the masked copy and the boxes (xyxy, original pixels).  Bright and
    dark strokes (white top-hat / black-hat, 15 px) are thresholded; blobs of character size are chained
    along lines; chains of ``min_chars`` or more are masked with a margin.  A heuristic: high-contrast
    overlay text is found, faint text on a bright background may not be.
    """
    import cv2

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    scale = min(1.0, 1024 / max(gray.shape))
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    height = gray.shape[0]
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (15, 15))
    boxes: list[tuple[int, int, int, int]] = []
    for op in (cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT):
        hat = cv2.morphologyEx(gray, op, kernel)
        otsu, _ = cv2.threshold(hat, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
        bw = cv2.threshold(hat, max(otsu, 50), 255, cv2.THRESH_BINARY)[1]
        n, _, st, _ = cv2.connectedComponentsWithStats(bw, connectivity=8)
        max_h = max(14, int(0.07 * height))
        cand = sorted((i for i in range(1, n) if 4 <= st[i, 3] <= max_h and st[i, 2] <= 1.6 * st[i, 3] + 2
                       and st[i, 4] >= 6 and 0.08 <= st[i, 4] / (st[i, 2] * st[i, 3]) <= 0.95),
                      key=lambda i: st[i, 0])
        parent = {i: i for i in cand}

        def find(a: int) -> int:
            while parent[a] != a:
                parent[a] = parent[parent[a]]
                a = parent[a]
            return a

        for k, a in enumerate(cand):
            xa, ya, wa, ha = st[a, :4]
            for b in cand[k + 1:]:
                xb, yb, wb, hb = st[b, :4]
                if xb - (xa + wa) > 1.2 * max(ha, hb):
                    break
                if max(ha, hb) <= 1.8 * min(ha, hb) and abs((ya + ha / 2) - (yb + hb / 2)) <= 0.5 * max(ha, hb):
                    parent[find(a)] = find(b)
        groups: dict[int, list[int]] = {}
        for i in cand:
            groups.setdefault(find(i), []).append(i)
        for members in groups.values():
            if len(members) < min_chars:
                continue
            x0 = min(st[i, 0] for i in members)
            y0 = min(st[i, 1] for i in members)
            x1 = max(st[i, 0] + st[i, 2] for i in members)
            y1 = max(st[i, 1] + st[i, 3] for i in members)
            if x1 - x0 < 2.0 * float(np.median([st[i, 3] for i in members])):  # a line of text is wide; clumps of blobs (wire crossings) are not
                continue
            boxes.append((int(x0 / scale), int(y0 / scale), int(np.ceil(x1 / scale)), int(np.ceil(y1 / scale))))
    out = rgb.copy()
    for x0, y0, x1, y1 in boxes:
        pad = max(3, (y1 - y0) // 5)
        out[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad] = 0
    return out, boxes
