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

# The main formats (every benchmark class), then the formats and JPEG variants that bench_formats
# times at one size: photos come as WebP, AVIF, JPEG XL and HEIC too, and as JPEGs of other
# qualities, chroma subsampling and progressive scans.
MAIN_IMAGE_FORMATS = ("png", "jpeg")
JPEG_VARIANTS = ("jpeg-q75", "jpeg-q95", "jpeg-444", "jpeg-progressive")
NEW_IMAGE_FORMATS = ("webp", "avif", "jxl", "heic")
IMAGE_FORMATS = MAIN_IMAGE_FORMATS + JPEG_VARIANTS + NEW_IMAGE_FORMATS
ARRAY_FORMATS = ("pickle-p2", "pickle-p5", "npy")
FORMATS = IMAGE_FORMATS + ARRAY_FORMATS
SUFFIX = {
    "png": ".png",
    "jpeg": ".jpg",
    **dict.fromkeys(JPEG_VARIANTS, ".jpg"),
    "webp": ".webp",
    "avif": ".avif",
    "jxl": ".jxl",
    "heic": ".heic",
    "pickle-p2": ".pkl",
    "pickle-p5": ".pkl",
    "npy": ".npy",
}

# Baseline JPEG, 4:2:0 chroma subsampling (what cameras and ImageNet files mostly use).
JPEG_QUALITY = 90
JPEG_SUBSAMPLING = "4:2:0"
PNG_COMPRESS_LEVEL = 6  # zlib's and Pillow's default

# How each image format is written: the encoder and its settings, recorded in index.json. The
# JPEG variants each change one setting of the baseline; WebP takes the JPEGs' quality; AVIF,
# JPEG XL and HEIC take their encoders' defaults, stated here so a new release cannot move them.
ENCODING = {
    "png": {"encoder": "Pillow", "compress_level": PNG_COMPRESS_LEVEL},
    "jpeg": {"encoder": "Pillow", "quality": JPEG_QUALITY, "subsampling": JPEG_SUBSAMPLING},
    "jpeg-q75": {"encoder": "Pillow", "quality": 75, "subsampling": JPEG_SUBSAMPLING},
    "jpeg-q95": {"encoder": "Pillow", "quality": 95, "subsampling": JPEG_SUBSAMPLING},
    "jpeg-444": {"encoder": "Pillow", "quality": JPEG_QUALITY, "subsampling": "4:4:4"},
    "jpeg-progressive": {
        "encoder": "Pillow",
        "quality": JPEG_QUALITY,
        "subsampling": JPEG_SUBSAMPLING,
        "progressive": True,
    },
    "webp": {
        "encoder": "Pillow (libwebp)",
        "quality": JPEG_QUALITY,
        "method": 4,
        "lossless": False,
    },
    "avif": {"encoder": "Pillow (libavif)", "quality": 75, "speed": 6, "subsampling": "4:2:0"},
    "jxl": {"encoder": "imagecodecs (libjxl)", "distance": 1.0, "effort": 7},
    "heic": {"encoder": "pillow-heif (libheif, x265)", "quality": 50},
}
# what each format needs to be written, beyond Pillow's JPEG and PNG (EncoderMissing says it)
_NEEDS = {
    "avif": "Pillow 11.3 or newer (its wheels bring libavif)",
    "webp": "Pillow with WebP",
    "jxl": "imagecodecs with JPEG XL",
    "heic": "pillow-heif",
}


class EncoderMissing(RuntimeError):
    """This environment cannot write a format the manifest asks for."""


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
        return _encode_image(fmt, image)
    if fmt == "pickle-p2":
        return pickle.dumps(image, protocol=2)  # exactly what ndarray.dump(path) writes
    if fmt == "pickle-p5":
        buf = io.BytesIO()
        _PortablePickler(buf, protocol=5).dump(image)
        return buf.getvalue()
    if fmt == "npy":
        return _npy_header(image.shape, image.dtype.str) + image.tobytes()
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


def _encode_image(fmt: str, image: np.ndarray) -> bytes:
    settings = {k: v for k, v in ENCODING[fmt].items() if k != "encoder"}
    if fmt == "jxl":
        import imagecodecs

        return bytes(imagecodecs.jpegxl_encode(image, **settings))
    from PIL import Image

    if fmt == "heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    pil_format = {"png": "PNG", "webp": "WEBP", "avif": "AVIF", "heic": "HEIF"}.get(fmt, "JPEG")
    Image.fromarray(image).save(buf, pil_format, **settings)
    return buf.getvalue()


def can_encode(fmt: str) -> bool:
    """Whether this environment can write `fmt` files (every format must be written by the
    environment that prepares a dataset: data is shared between stacks, never rewritten)."""
    try:
        _encode_image(fmt, np.zeros((8, 8, 3), np.uint8))
    except (ImportError, KeyError, OSError, ValueError):
        return False
    return True


def check_encoders(formats) -> None:
    """EncoderMissing, naming the first of `formats` this environment cannot write and what it
    needs, before any file is written."""
    for fmt in formats:
        if fmt in _NEEDS and not can_encode(fmt):
            raise EncoderMissing(
                f"writing {fmt} files needs {_NEEDS[fmt]}, which this environment lacks"
                " (`make data` prepares every dataset in .venv, which has it)"
            )


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


def encoder_versions(formats=IMAGE_FORMATS) -> dict:
    """The versions of what wrote `formats`' files (with NumPy, which made the pixels)."""
    from PIL import Image, features

    out = {
        "pillow": Image.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "zlib": features.version("zlib"),
        "numpy": np.__version__,
    }
    if "webp" in formats:
        out["libwebp"] = features.version("webp")
    if "avif" in formats:
        out["libavif"] = features.version("avif")
    if "jxl" in formats:
        import imagecodecs

        out["imagecodecs"] = imagecodecs.__version__
        out["libjxl"] = imagecodecs.jpegxl_version().split()[-1]
    if "heic" in formats:
        import pillow_heif

        out["pillow_heif"] = pillow_heif.__version__
        out["libheif"] = pillow_heif.libheif_version()
    return out


def encoding_record(formats) -> dict:
    """index.json's "encoding": each image format's encoder and settings, the array formats'
    writers, and the versions of what wrote them."""
    arrays = {
        "pickle-p2": "pickle protocol 2 of the ndarray (what ndarray.dump writes)",
        "pickle-p5": "pickle protocol 5, in-band, rebuilt by the public numpy.ndarray constructor",
        "npy": "numpy.save",
    }
    out = {fmt: ENCODING[fmt] for fmt in formats if fmt in ENCODING}
    out.update({fmt: arrays[fmt] for fmt in formats if fmt in arrays})
    out["versions"] = encoder_versions(tuple(f for f in formats if f in IMAGE_FORMATS))
    return out
