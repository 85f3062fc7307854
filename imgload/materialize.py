"""Source arrays -> one folder per format, one file per image, plus index and checksums.

File stems are the zero-padded global index in source order (train then test), so the
same stem names the same picture in every format. Encoding runs in a fork-based process
pool over contiguous index ranges; the arrays reach the workers through fork, not pickling.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import shutil
from concurrent.futures import as_completed
from pathlib import Path

import numpy as np

from . import progress
from .workers import fork_pool

IMAGE_FORMATS = ("png", "jpeg")
ARRAY_FORMATS = ("pickle-p2", "pickle-p5", "npy")
FORMATS = IMAGE_FORMATS + ARRAY_FORMATS
SUFFIX = {"png": ".png", "jpeg": ".jpg", "pickle-p2": ".pkl", "pickle-p5": ".pkl", "npy": ".npy"}

# Baseline JPEG, 4:2:0 chroma subsampling (what cameras and ImageNet files mostly use).
JPEG_QUALITY = 90
JPEG_SUBSAMPLING = "4:2:0"
PNG_COMPRESS_LEVEL = 6  # zlib's and Pillow's default

_IMAGES: np.ndarray | None = None  # set in the parent before the pool forks


def _portable_ndarray_reduce(a: np.ndarray):
    # NumPy 2 writes protocol-5 arrays as numpy._core.numeric._frombuffer, which NumPy 1.26
    # cannot import; the public constructor over an in-band bytearray is read by every
    # NumPy, zero-copy, as _frombuffer is.
    return np.ndarray, (a.shape, a.dtype.str, bytearray(a.tobytes()))


class _PortablePickler(pickle.Pickler):
    def reducer_override(self, obj):
        if type(obj) is np.ndarray:
            return _portable_ndarray_reduce(obj)
        return NotImplemented


def encode(fmt: str, image: np.ndarray) -> bytes:
    """The bytes of one file of `fmt` holding `image` (H, W, 3) uint8 RGB."""
    if fmt in IMAGE_FORMATS:
        from PIL import Image

        buf = io.BytesIO()
        if fmt == "png":
            Image.fromarray(image).save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL)
        else:
            Image.fromarray(image).save(
                buf, "JPEG", quality=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING
            )
        return buf.getvalue()
    if fmt == "pickle-p2":
        return pickle.dumps(image, protocol=2)  # exactly what ndarray.dump(path) writes
    if fmt == "pickle-p5":
        buf = io.BytesIO()
        _PortablePickler(buf, protocol=5).dump(image)
        return buf.getvalue()
    if fmt == "npy":
        return _npy_header(image.shape, image.dtype.str) + image.tobytes()
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


@functools.cache
def _npy_header(shape: tuple[int, ...], dtype: str) -> bytes:
    """The header np.save writes for this shape and dtype (made once, then reused)."""
    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, dtype=dtype), allow_pickle=False)
    return buf.getvalue()[: -int(np.prod(shape)) * np.dtype(dtype).itemsize or None]


def stem_width(count: int) -> int:
    return max(5, len(str(count - 1)))


def _write_range(root: str, formats: tuple[str, ...], start: int, stop: int, *, width: int):
    """Write images[start:stop] in every format; return {fmt: (sizes, sha256 digests)}.

    A sequence with an `original(i, fmt)` method (an image folder) supplies the file's own
    bytes where they can stand for that format; each image is decoded once, which also
    proves a file kept as it is decodes whole."""
    original = getattr(_IMAGES, "original", None)
    out = {fmt: ([], []) for fmt in formats}
    for i in range(start, stop):
        image = _IMAGES[i]
        for fmt in formats:
            data = original(i, fmt) if original and fmt in IMAGE_FORMATS else None
            if data is None:
                data = encode(fmt, image)
            fd = os.open(
                os.path.join(root, fmt, f"{i:0{width}d}{SUFFIX[fmt]}"),
                os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                0o644,
            )
            try:
                os.write(fd, data)  # regular files take a write of this size whole
            finally:
                os.close(fd)
            out[fmt][0].append(len(data))
            out[fmt][1].append(hashlib.sha256(data).hexdigest())
    return out


def write_files(images, root: Path, formats=FORMATS, workers: int | None = None) -> dict:
    """Write every image in every format under root/<fmt>/; return per-format sizes and digests.

    `images` is an (N, H, W, 3) uint8 array or any sequence of (H, W, 3) arrays."""
    global _IMAGES
    root = Path(root)
    count = len(images)
    width = stem_width(count)
    for fmt in formats:
        (root / fmt).mkdir(parents=True, exist_ok=True)
    workers = workers or os.cpu_count() or 1
    step = max(1, min(2000, -(-count // (workers * 4))))
    starts = range(0, count, step)
    stops = [min(s + step, count) for s in starts]
    write = functools.partial(_write_range, str(root), tuple(formats), width=width)
    _IMAGES = images
    try:
        with fork_pool(workers) as pool, progress.bar(count, "writing") as shown:
            futures = {pool.submit(write, a, b): b - a for a, b in zip(starts, stops)}
            for done in as_completed(futures):
                shown.update(futures[done])
            parts = [f.result() for f in futures]  # in submission order: stem order
    finally:
        _IMAGES = None
    result = {}
    for fmt in formats:
        sizes = [s for p in parts for s in p[fmt][0]]
        digests = [d for p in parts for d in p[fmt][1]]
        result[fmt] = {"sizes": sizes, "digests": digests}
    return result


BATCH_SUFFIX = {"pickle": "", "npy": ".npy"}


def batch_path(root: Path, fmt: str, name: str) -> Path:
    """batches/pickle/<name> (the source batch file as is) or batches/npy/<name>.npy."""
    return Path(root) / "batches" / fmt / f"{name}{BATCH_SUFFIX[fmt]}"


def write_batches(root: Path, batches: dict[str, tuple[Path, np.ndarray]]) -> dict:
    """Every source batch as it came, and as one (N, H, W, 3) .npy; per batch, its image
    count and shape, and the size of each file (checked before a prepared set is reused)."""
    for fmt in BATCH_SUFFIX:
        (root / "batches" / fmt).mkdir(parents=True, exist_ok=True)
    info = {}
    for name, (source, images) in batches.items():
        shutil.copyfile(source, batch_path(root, "pickle", name))
        np.save(batch_path(root, "npy", name), images, allow_pickle=False)
        sizes = {fmt: batch_path(root, fmt, name).stat().st_size for fmt in BATCH_SUFFIX}
        info[name] = {"count": len(images), "shape": list(images.shape[1:]), "bytes": sizes}
    return info


def checksum_lines(files: dict, width: int) -> list[str]:
    """sha256sum-style lines ("<hex>  <fmt>/<stem><suffix>"), checkable with `sha256sum -c`."""
    return [
        f"{digest}  {fmt}/{i:0{width}d}{SUFFIX[fmt]}"
        for fmt, info in files.items()
        for i, digest in enumerate(info["digests"])
    ]


def encoder_versions() -> dict:
    from PIL import Image, features

    return {
        "pillow": Image.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "zlib": features.version("zlib"),
        "numpy": np.__version__,
    }
