"""Which pixels a hunt traces: fixed ones known before any image exists (centre, edge, corners,
traced in the render pass) and ones chosen from the two images (largest intensity-weighted
disagreement, brightest reference peak, a background pixel). Pixels are (slow, fast)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChosenPixel:
    pixel: tuple[int, int]  # (slow, fast)
    reason: str
    a_value: float  # reference image value (photons)
    b_value: float  # port image value (photons)




FIXED_REASONS = ("detector centre (near the direct beam)", "edge (middle of fast-min edge)", "corner (0, 0)",
                  "opposite corner")
FIXED_ROI_REASONS = ("centre of the -roi", "edge (middle of the -roi fast-min edge)", "-roi corner (min, min)",
                      "opposite -roi corner")


def fixed_pixels(shape: tuple[int, int], roi: tuple[int, int, int, int] | None = None) -> tuple[ChosenPixel, ...]:
    """Pixels chosen before any image exists, so the render pass itself can trace them: the
    detector centre (near the direct beam), the middle of the fast-min edge and two opposite
    corners (geometry faults grow towards the edges and corners). With the run's -roi
    (xmin, xmax, ymin, ymax inclusive) the same four points of the ROI box, since a pixel
    outside it is never computed. Values are filled later."""
    if roi is None:
        ymin, ymax, xmin, xmax = 0, shape[0] - 1, 0, shape[1] - 1
        reasons = FIXED_REASONS
    else:
        xmin, xmax, ymin, ymax = roi
        reasons = FIXED_ROI_REASONS
    mid_s, mid_f = (ymin + ymax + 1) // 2, (xmin + xmax + 1) // 2
    picks = zip([(mid_s, mid_f), (mid_s, xmin), (ymin, xmin), (ymax, xmax)], reasons)
    seen: dict = {}
    for p, why in picks:
        seen.setdefault(p, ChosenPixel(p, why, math.nan, math.nan))
    return tuple(seen.values())


def image_pixels(a: np.ndarray, b: np.ndarray, n: int, exclude=(),
                 roi: tuple[int, int, int, int] | None = None) -> tuple[ChosenPixel, ...]:
    """Pixels chosen from the two images, each with why: the largest |B − A| in photons (absolute,
    so a 1 % error on a bright spot outranks 100 % on dim background), the brightest reference
    pixel, a background pixel, then further large-|Δ| pixels until ``n``. a, b: (S, F) photons.
    roi: the run's -roi (xmin, xmax, ymin, ymax inclusive): choose only inside it."""
    if roi is not None:
        xmin, xmax, ymin, ymax = roi
        box = (slice(ymin, ymax + 1), slice(xmin, xmax + 1))
        inner = image_pixels(a[box], b[box], n, [(s - ymin, f - xmin) for s, f in exclude])
        return tuple(dataclasses.replace(c, pixel=(c.pixel[0] + ymin, c.pixel[1] + xmin)) for c in inner)
    F = a.shape[1]
    fa, fb = np.nan_to_num(a), np.nan_to_num(b)
    diff = np.abs(fb - fa)
    taken = {tuple(p) for p in exclude}
    chosen: dict[tuple[int, int], ChosenPixel] = {}

    def pick(pixel, reason):
        pixel = (int(pixel[0]), int(pixel[1]))
        if pixel not in chosen and pixel not in taken and len(chosen) < n:
            chosen[pixel] = ChosenPixel(pixel, reason, float(a[pixel]), float(b[pixel]))

    if diff.max() > 0:
        pick(np.unravel_index(int(np.argmax(diff)), a.shape), "largest |B-A| (photons)")
    pick(np.unravel_index(int(np.argmax(fa)), a.shape), "brightest pixel of the reference")
    pick(_background_pixel(fa), "background (median intensity, inner region)")
    if diff.max() > 0:
        for k in np.argsort(-diff, axis=None)[: 4 * n]:
            if len(chosen) >= n or diff.flat[k] == 0:
                break
            # skip the immediate neighbours of pixels already chosen: they say the same thing
            s, f = divmod(int(k), F)
            if all(abs(s - p[0]) > 2 or abs(f - p[1]) > 2 for p in [*chosen, *taken]):
                pick((s, f), "next largest |B-A|")
    return tuple(chosen.values())


def choose_pixels(a: np.ndarray, b: np.ndarray, n: int = 7,
                  roi: tuple[int, int, int, int] | None = None) -> tuple[ChosenPixel, ...]:
    """Every pixel a hunt traces for these images: image-derived ones first, then the fixed ones."""
    fixed = tuple(dataclasses.replace(c, a_value=float(a[c.pixel]), b_value=float(b[c.pixel]))
                  for c in fixed_pixels(a.shape, roi))
    return image_pixels(a, b, max(n - len(fixed), 1), exclude=[c.pixel for c in fixed], roi=roi) + fixed


def _background_pixel(img: np.ndarray) -> tuple[int, int]:
    S, F = img.shape
    inner = img[S // 8: S - S // 8 or S, F // 8: F - F // 8 or F]
    k = int(np.argmin(np.abs(inner - np.median(inner))))
    s, f = divmod(k, inner.shape[1])
    return s + S // 8, f + F // 8
