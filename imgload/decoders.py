"""Loaders by name: (name, format) -> callable(path) -> ndarray.

Image decoders return RGB uint8 (H, W, 3), whatever the library's native channel order;
array loaders return the stored array. Libraries are imported only when a loader is
built, so a library missing from an environment costs nothing until it is asked for, and
then raises Unavailable, a NotImplementedError, which asv reports as n/a ("skipped").
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Callable

import numpy as np

Load = Callable[[str], np.ndarray]


class Unavailable(NotImplementedError):
    pass


class DecodeError(ValueError):
    pass


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise Unavailable(f"{module} is not installed in this environment ({e})") from None


def _rgb(arr: np.ndarray, path: str) -> np.ndarray:
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise DecodeError(f"{path}: decoded to {arr.dtype} {arr.shape}, expected uint8 (H, W, 3)")
    return arr


def _cv2(fmt: str) -> Load:
    cv2 = _require("cv2")

    def load(path: str) -> np.ndarray:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise DecodeError(f"{path}: cv2.imread could not read it")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    return load


def _pil(fmt: str) -> Load:
    image = _require("PIL.Image")

    def load(path: str) -> np.ndarray:
        with image.open(path) as im:
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im)

    return load


def _imageio(fmt: str) -> Load:
    iio = _require("imageio.v3")

    def load(path: str) -> np.ndarray:
        return _rgb(iio.imread(path), path)

    return load


def _simplejpeg(fmt: str) -> Load:
    simplejpeg = _require("simplejpeg")

    def load(path: str) -> np.ndarray:
        with open(path, "rb") as f:
            return simplejpeg.decode_jpeg(f.read(), colorspace="RGB")

    return load


def _imagecodecs(fmt: str) -> Load:
    codecs = _require("imagecodecs")
    decode = codecs.png_decode if fmt == "png" else codecs.jpeg8_decode

    def load(path: str) -> np.ndarray:
        with open(path, "rb") as f:
            return _rgb(decode(f.read()), path)

    return load


def _pickle(fmt: str) -> Load:
    def load(path: str) -> np.ndarray:
        with open(path, "rb") as f:
            return pickle.load(f)

    return load


def _numpy(fmt: str) -> Load:
    # np.load reads .npy natively and falls back to pickle for ndarray.dump files,
    # which is how NumPy's documentation says to read those back
    allow_pickle = fmt != "npy"

    def load(path: str) -> np.ndarray:
        return np.load(path, allow_pickle=allow_pickle)

    return load


# name -> (formats it reads, builder)
LOADERS: dict[str, tuple[frozenset[str], Callable[[str], Load]]] = {
    "cv2": (frozenset({"png", "jpeg"}), _cv2),
    "pil": (frozenset({"png", "jpeg"}), _pil),
    "imageio": (frozenset({"png", "jpeg"}), _imageio),
    "simplejpeg": (frozenset({"jpeg"}), _simplejpeg),
    "imagecodecs": (frozenset({"png", "jpeg"}), _imagecodecs),
    "pickle": (frozenset({"pickle-p2", "pickle-p5"}), _pickle),
    "numpy": (frozenset({"pickle-p2", "pickle-p5", "npy"}), _numpy),
}
IMAGE_DECODERS = ("cv2", "pil", "imageio", "simplejpeg", "imagecodecs")
ARRAY_LOADERS = ("pickle", "numpy")


def get(name: str, fmt: str) -> Load:
    """The loader `name` for files of `fmt`; Unavailable if it cannot read them here."""
    try:
        formats, build = LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown loader {name!r}; known: {', '.join(LOADERS)}") from None
    if fmt not in formats:
        raise Unavailable(f"{name} does not read {fmt} files")
    return build(fmt)


def limit_library_threads() -> None:
    """One thread per decode inside pools: OpenCV's own pool would oversubscribe the cores."""
    import sys

    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(1)
