"""Deterministic images with natural-image statistics.

White noise compresses like nothing a camera produces, so sizes and decode times of
PNG/JPEG files made from it would say little about photos. Each image here is a
1/f ("pink") luminance field with two smoother chroma fields, overlaid with a few
flat-coloured occluding shapes that carry the same texture: the mix of smooth regions,
hard edges and fine detail that gives photo-like compressed sizes.

Images are produced in fixed chunks whose content depends only on (seed, chunk index),
so any chunk can be made on its own and the whole set is identical run after run.
"""

from __future__ import annotations

import os

import numpy as np

from . import progress
from .workers import fork_pool

CHUNK_PIXELS = 1 << 20  # pixels per independently seeded chunk: bounds memory for any size


def chunk_length(shape: tuple[int, int]) -> int:
    return max(1, CHUNK_PIXELS // (shape[0] * shape[1]))


def _pink_fields(rng: np.random.Generator, n: int, h: int, w: int, exponents) -> np.ndarray:
    """Random-phase fields with amplitude ~ 1/f**e, one per exponent: (n, len(e), h, w)."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    f[0, 0] = np.inf  # no DC component: brightness is set separately
    spectra = [f**-e for e in exponents]
    amp = np.stack(spectra).astype(np.float32)  # (c, h, w//2+1)
    c = len(exponents)
    phase = rng.standard_normal(
        (n, c, h, w // 2 + 1), dtype=np.float32
    ) + 1j * rng.standard_normal((n, c, h, w // 2 + 1), dtype=np.float32)
    fields = np.fft.irfft2(phase * amp, s=(h, w)).astype(np.float32)
    fields -= fields.mean(axis=(2, 3), keepdims=True)
    fields /= fields.std(axis=(2, 3), keepdims=True) + 1e-6
    return fields


def _shapes(rng: np.random.Generator, n: int, h: int, w: int, max_shapes: int):
    """Masks (n, k, h, w) of random ellipses/rectangles and their colours (n, k, 3)."""
    k = max_shapes
    yy = np.arange(h, dtype=np.float32)[None, :, None]
    xx = np.arange(w, dtype=np.float32)[None, None, :]
    cy = rng.uniform(0, h, (n, k, 1, 1)).astype(np.float32)
    cx = rng.uniform(0, w, (n, k, 1, 1)).astype(np.float32)
    ry = rng.uniform(0.08, 0.45, (n, k, 1, 1)).astype(np.float32) * h
    rx = rng.uniform(0.08, 0.45, (n, k, 1, 1)).astype(np.float32) * w
    is_ellipse = rng.random((n, k, 1, 1)) < 0.6
    present = rng.random((n, k, 1, 1)) < 0.7
    dy = (yy[:, None] - cy) / ry
    dx = (xx[:, None] - cx) / rx
    ellipse = dy * dy + dx * dx < 1.0
    rect = (np.abs(dy) < 1.0) & (np.abs(dx) < 1.0)
    masks = np.where(is_ellipse, ellipse, rect) & present
    colours = rng.uniform(-1.5, 1.5, (n, k, 3)).astype(np.float32)
    return masks, colours


def chunk(
    seed: int, index: int, n: int, shape: tuple[int, int], max_shapes: int = 4
) -> np.ndarray:
    """Images of chunk `index`: uint8 array (n, h, w, 3), RGB."""
    h, w = shape
    rng = np.random.default_rng([seed, index])
    # luminance ~1/f (power ~1/f^2, as in natural scenes); chroma smoother and weaker
    fields = _pink_fields(rng, n, h, w, exponents=(1.0, 1.4, 1.4))
    lum, chroma = fields[:, 0], fields[:, 1:] * 0.35
    masks, colours = _shapes(rng, n, h, w, max_shapes)
    base = np.zeros((n, 3, h, w), dtype=np.float32)
    for j in range(max_shapes):  # painter's order: later shapes occlude earlier ones
        m = masks[:, j][:, None]
        base = np.where(m, colours[:, j][:, :, None, None], base)
    # opponent colour space -> RGB: luminance shared, chroma moves channels apart
    texture = 0.55 * lum[:, None] + np.stack(
        [chroma[:, 0], -0.5 * chroma[:, 0] + chroma[:, 1], -0.5 * chroma[:, 0] - chroma[:, 1]],
        axis=1,
    )
    img = base + texture
    brightness = rng.uniform(90, 165, (n, 1, 1, 1)).astype(np.float32)
    contrast = rng.uniform(25, 60, (n, 1, 1, 1)).astype(np.float32)
    img = np.clip(img * contrast + brightness, 0, 255)
    return np.ascontiguousarray(np.rint(img).astype(np.uint8).transpose(0, 2, 3, 1))


def images(
    seed: int, count: int, shape: tuple[int, int], workers: int | None = None
) -> np.ndarray:
    """`count` images of `shape` (h, w): uint8 (count, h, w, 3), deterministic in `seed`
    (the chunking is fixed, so the number of worker processes does not change the result)."""
    out = np.empty((count, *shape, 3), dtype=np.uint8)
    step = chunk_length(shape)
    starts = list(range(0, count, step))
    args = [(seed, i, min(step, count - start), shape) for i, start in enumerate(starts)]
    workers = workers or os.cpu_count() or 1
    if workers == 1 or len(args) == 1:
        parts = (chunk(*a) for a in args)
    else:
        pool = fork_pool(workers)
        parts = pool.map(chunk, *zip(*args))
    with progress.bar(count, "generating") as shown:
        for start, part in zip(starts, parts):
            out[start : start + len(part)] = part
            shown.update(len(part))
    if workers > 1 and len(args) > 1:
        pool.shutdown()
    return out


def labels(seed: int, count: int, classes: int = 10) -> np.ndarray:
    """Balanced, shuffled class labels (as in CIFAR-10: equal counts per class)."""
    rng = np.random.default_rng([seed, 0xC1A55])
    return rng.permutation(np.arange(count) % classes).astype(np.int64)
