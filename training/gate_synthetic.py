"""Procedural images for the modality gate's kinds that have no dev folder: colour fundus photographs, CT / MR
slices and graphics ("other").  Seeded, pure numpy / OpenCV.  Moved out of :mod:`gate_data`, which re-exports
these names."""

from __future__ import annotations

import numpy as np

__all__ = ["synthetic_fundus", "synthetic_ct_mr", "synthetic_other"]


def synthetic_fundus(rng: np.random.Generator) -> np.ndarray:
    """Procedural colour fundus photograph: orange-red disc on black, optic disc, macula, vessels."""
    import cv2

    h = int(rng.integers(240, 480))
    w = int(h * rng.uniform(1.0, 1.45))
    cy, cx = h / 2 + rng.normal(0, h * 0.02), w / 2 + rng.normal(0, h * 0.02)
    R = min(h, w) * rng.uniform(0.42, 0.56)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rho = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / R
    base = np.array([rng.uniform(0.75, 1.0), rng.uniform(0.22, 0.5), rng.uniform(0.03, 0.18)], np.float32)
    shade = np.clip(1.0 - rng.uniform(0.25, 0.6) * rho ** 2, 0, 1)
    noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), h / 30) * rng.uniform(0.5, 2)
    img = shade[..., None] * base[None, None] * (1 + 0.05 * noise[..., None])
    side = rng.choice([-1, 1])
    dy, dx = cy + rng.normal(0, 0.08) * R, cx + side * rng.uniform(0.25, 0.45) * R
    dr = R * rng.uniform(0.07, 0.12)
    disc = np.exp(-(((yy - dy) ** 2 + (xx - dx) ** 2) / (2 * dr ** 2)))
    img = img * (1 - disc[..., None]) + disc[..., None] * np.array([1.0, 0.85, 0.55]) * rng.uniform(0.85, 1.0)
    my, mx = cy + rng.normal(0, 0.05) * R, cx - side * rng.uniform(0.05, 0.2) * R
    mac = np.exp(-(((yy - my) ** 2 + (xx - mx) ** 2) / (2 * (0.12 * R) ** 2)))
    img *= 1 - rng.uniform(0.15, 0.4) * mac[..., None]
    canvas = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    vessel = np.array([0.55, 0.1, 0.05]) * rng.uniform(0.6, 0.9)
    for _ in range(int(rng.integers(4, 9))):
        ang = rng.uniform(0, 2 * np.pi)
        y, x, th = dy, dx, float(rng.uniform(2.5, 5.0)) * h / 400
        for _step in range(int(rng.integers(15, 40))):
            ang += rng.normal(0, 0.25)
            ny, nx = y + np.sin(ang) * h / 50, x + np.cos(ang) * h / 50
            col = tuple(float(c) for c in (vessel * 255 * rng.uniform(0.9, 1.1)))
            cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), col, max(1, int(round(th))), cv2.LINE_AA)
            y, x, th = ny, nx, th * 0.97
    canvas = cv2.GaussianBlur(canvas, (0, 0), 0.8)
    canvas[rho > 1.0] = rng.integers(0, 12)
    return canvas


def synthetic_ct_mr(rng: np.random.Generator) -> np.ndarray:
    """Procedural CT- or MR-like axial slice: a body or head section on a black background."""
    import cv2

    n = int(rng.integers(160, 400))
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32)
    cy, cx = n / 2 + rng.normal(0, n * 0.03), n / 2 + rng.normal(0, n * 0.03)
    ct = rng.random() < 0.5
    img = np.zeros((n, n), np.float32)
    head = rng.random() < 0.4
    a = n * (rng.uniform(0.3, 0.42) if head else rng.uniform(0.36, 0.48))
    b = a * (rng.uniform(1.05, 1.3) if head else rng.uniform(0.55, 0.8))
    rho = np.sqrt(((xx - cx) / a) ** 2 + ((yy - cy) / b) ** 2)
    tissue = rng.uniform(0.35, 0.6)
    tex = cv2.GaussianBlur(rng.normal(0, 1, (n, n)).astype(np.float32), (0, 0), rng.uniform(1, 6))
    img[rho < 1] = tissue
    img += (rho < 1) * tex * rng.uniform(0.02, 0.08)
    rim = (rho > rng.uniform(0.86, 0.94)) & (rho < 1)
    img[rim] = rng.uniform(0.9, 1.0) if (head and ct) else rng.uniform(0.15, 0.3) if head else rng.uniform(0.2, 0.8)
    for _ in range(int(rng.integers(2, 9))):  # organs, ventricles, lungs, vertebra
        oy, ox = cy + rng.normal(0, 0.3) * b, cx + rng.normal(0, 0.3) * a
        ra, rb = a * rng.uniform(0.05, 0.3), b * rng.uniform(0.05, 0.3)
        inside = (((xx - ox) / ra) ** 2 + ((yy - oy) / rb) ** 2 < 1) & (rho < 0.85)
        img[inside] = rng.choice([rng.uniform(0.0, 0.15), rng.uniform(0.2, 0.8), rng.uniform(0.85, 1.0)])
    if not head and rng.random() < 0.5:  # table under the patient
        y_t = int(min(n - 3, cy + b + n * 0.04))
        cv2.line(img, (int(cx - a), y_t), (int(cx + a), y_t), float(rng.uniform(0.4, 0.8)), 2)
    img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5)) + rng.normal(0, rng.uniform(0.0, 0.04), (n, n))
    g = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def synthetic_other(rng: np.random.Generator) -> np.ndarray:
    """Procedural graphics that are none of the medical kinds: shapes, documents, plots, noise, grey scenes."""
    import cv2

    h, w = int(rng.integers(160, 420)), int(rng.integers(160, 480))
    mode = int(rng.integers(0, 6))
    if mode == 0:  # shapes on a gradient
        img = np.zeros((h, w, 3), np.float32)
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        img[:] = np.linspace(0, 1, w)[None, :, None] * (c1 - c0) + c0
        img = img.astype(np.uint8)
        for _ in range(int(rng.integers(3, 15))):
            col = tuple(int(c) for c in rng.integers(0, 256, 3))
            p = (int(rng.integers(0, w)), int(rng.integers(0, h)))
            if rng.random() < 0.5:
                cv2.circle(img, p, int(rng.integers(5, h // 3)), col, -1)
            else:
                cv2.rectangle(img, p, (int(rng.integers(0, w)), int(rng.integers(0, h))), col, -1)
        return img
    if mode == 1:  # document
        img = np.full((h, w, 3), int(rng.integers(220, 256)), np.uint8)
        ink = tuple(int(c) for c in rng.integers(0, 90, 3))
        for y in range(20, h - 5, int(rng.integers(14, 26))):
            text = "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz  0123456789"), int(rng.integers(10, 40))))
            cv2.putText(img, text, (8, y), cv2.FONT_HERSHEY_SIMPLEX, rng.uniform(0.35, 0.6), ink, 1, cv2.LINE_AA)
        return img
    if mode == 2:  # plot
        img = np.full((h, w, 3), 255, np.uint8)
        cv2.line(img, (30, h - 30), (w - 10, h - 30), (0, 0, 0), 1)
        cv2.line(img, (30, 10), (30, h - 30), (0, 0, 0), 1)
        for _ in range(int(rng.integers(1, 4))):
            ys = np.cumsum(rng.normal(0, 4, w - 40)) + h / 2
            pts = np.stack([np.arange(30, w - 10), np.clip(ys, 10, h - 30)], 1).astype(np.int32)
            cv2.polylines(img, [pts], False, tuple(int(c) for c in rng.integers(0, 200, 3)), 2)
        return img
    if mode == 3:  # coloured noise texture
        sigma = float(rng.uniform(0.5, 12))
        noise = cv2.GaussianBlur(rng.normal(0, 1, (h, w, 3)).astype(np.float32), (0, 0), sigma)
        noise = (noise - noise.min()) / max(float(np.ptp(noise)), 1e-6)
        return (noise * rng.uniform(100, 255) + rng.uniform(0, 80)).clip(0, 255).astype(np.uint8)
    if mode == 4:  # flat colour with a little noise
        img = np.zeros((h, w, 3), np.float32) + rng.uniform(0, 255, 3)
        return (img + rng.normal(0, rng.uniform(0, 12), (h, w, 1))).clip(0, 255).astype(np.uint8)
    grey = cv2.GaussianBlur(rng.uniform(0, 255, (h // 8 + 1, w // 8 + 1)).astype(np.float32), (0, 0), 1.0)
    grey = cv2.resize(grey, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)  # a grey scene that is not a radiograph
