"""Loaders by name: (name, format, source) -> callable(path or bytes) -> ndarray.

Image decoders return RGB uint8 (H, W, 3), whatever the library's native channel order;
array loaders return the stored array. A loader reads from one of two sources:

    file    it is given the path and opens the file itself, as a data loader does
    memory  it is given the file's bytes, already in RAM: the decode alone

Libraries are imported only when a loader is built, so a library missing from an
environment costs nothing until it is asked for, and then raises Unavailable, a
NotImplementedError, which asv reports as n/a ("skipped"). So does a format or a source
the library cannot take, with the reason.
"""

from __future__ import annotations

import importlib
import io
import pickle
import struct
from collections.abc import Callable

import numpy as np

Load = Callable[[str | bytes], np.ndarray]
SOURCES = ("file", "memory")


class Unavailable(NotImplementedError):
    pass


class DecodeError(ValueError):
    pass


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise Unavailable(f"{module} is not installed in this environment ({e})") from None


def _rgb(arr: np.ndarray, src: str | bytes) -> np.ndarray:
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise DecodeError(
            f"{_what(src)}: decoded to {arr.dtype} {arr.shape}, expected uint8 (H, W, 3)"
        )
    return arr


def _what(src: str | bytes) -> str:
    """How an error names its input: the path, or the size of the bytes."""
    return src if isinstance(src, str) else f"<{len(src)} bytes in memory>"


def _from_bytes(decode: Callable[[bytes], np.ndarray], source: str) -> Load:
    """A loader for a library that decodes bytes only: `file` reads the file first, as
    the library's users do, so the read is part of what `file` costs."""
    if source == "memory":
        return decode

    def load(path: str) -> np.ndarray:
        with open(path, "rb") as f:
            return decode(f.read())

    return load


# ------------------------------------------------------------------ the pooled grid's five
# Their `file` loaders are kept exactly as they were before `memory` existed, so the
# pooled grid's history across commits measures the libraries, not a change of harness.


def _cv2(fmt: str, source: str) -> Load:
    cv2 = _require("cv2")

    def load(path: str) -> np.ndarray:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is None:
            raise DecodeError(f"{path}: cv2.imread could not read it")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def decode(data: bytes) -> np.ndarray:
        bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if bgr is None:
            raise DecodeError(f"{_what(data)}: cv2.imdecode could not read it")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    return decode if source == "memory" else load


# Pillow reads HEIC and JPEG XL only through a plugin, which its users register (pillow-heif)
# or import (pillow-jxl-plugin) first; imageio and scikit-image read them through Pillow too
_PILLOW_PLUGINS = {"heic": ("pillow_heif", "register_heif_opener"), "jxl": ("pillow_jxl", None)}


def _pillow_plugin(fmt: str) -> None:
    if fmt in _PILLOW_PLUGINS:
        module, register = _PILLOW_PLUGINS[fmt]
        plugin = _require(module)
        if register:
            getattr(plugin, register)()


def _pil(fmt: str, source: str) -> Load:
    image = _require("PIL.Image")
    _pillow_plugin(fmt)

    def load(path: str) -> np.ndarray:
        with image.open(path) as im:
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im)

    if source == "memory":
        return lambda data: load(io.BytesIO(data))  # Image.open takes a file object too
    return load


def _imageio(fmt: str, source: str) -> Load:
    iio = _require("imageio.v3")
    _pillow_plugin(fmt)

    def load(src: str | bytes) -> np.ndarray:  # imageio's uri is a path or the bytes themselves
        return _rgb(iio.imread(src), src)

    return load


def _simplejpeg(fmt: str, source: str) -> Load:
    simplejpeg = _require("simplejpeg")

    def load(path: str) -> np.ndarray:
        with open(path, "rb") as f:
            return simplejpeg.decode_jpeg(f.read(), colorspace="RGB")

    def decode(data: bytes) -> np.ndarray:
        return simplejpeg.decode_jpeg(data, colorspace="RGB")

    return decode if source == "memory" else load


# imagecodecs' decoder for each codec, and the name of its availability flag
_IMAGECODECS = {
    "png": ("png_decode", "PNG"),
    "jpeg": ("jpeg8_decode", "JPEG8"),
    "webp": ("webp_decode", "WEBP"),
    "avif": ("avif_decode", "AVIF"),
    "jxl": ("jpegxl_decode", "JPEGXL"),
    "heic": ("heif_decode", "HEIF"),
}


def _imagecodecs(fmt: str, source: str) -> Load:
    codecs = _require("imagecodecs")
    function, flag = _IMAGECODECS[fmt]
    if not getattr(codecs, flag).available:
        raise Unavailable(f"imagecodecs {codecs.__version__} is built without {flag} here")
    decode = getattr(codecs, function)

    def load(path: str) -> np.ndarray:
        with open(path, "rb") as f:
            return _rgb(decode(f.read()), path)

    if source == "memory":
        return lambda data: _rgb(decode(data), data)
    return load


# ------------------------------------------------------------------ bench_codecs' decoders


def _pyvips(fmt: str, source: str) -> Load:
    pyvips = _require("pyvips")
    # libvips caches operations by their arguments, so loading the same file (or the same
    # bytes) again would hand back the image decoded the first time: a timed call must decode
    pyvips.cache_set_max(0)

    def to_rgb(image, src) -> np.ndarray:
        if image.bands == 4:  # drop alpha, as Pillow's convert("RGB") does
            image = image.extract_band(0, n=3)
        elif image.bands < 3:
            image = image.colourspace("srgb")
        # numpy() runs the whole pipeline (libvips decodes lazily, on demand) into a new
        # buffer: the decode and the copy out of libvips both happen inside the call
        return _rgb(image.numpy(), src)

    if source == "memory":
        return lambda data: to_rgb(
            pyvips.Image.new_from_buffer(data, "", access="sequential"), data
        )
    return lambda path: to_rgb(pyvips.Image.new_from_file(path, access="sequential"), path)


def _turbojpeg(fmt: str, source: str) -> Load:
    turbojpeg = _require("turbojpeg")
    try:
        # ctypes over the system's libturbojpeg, which no wheel brings (README: PyTurboJPEG)
        jpeg = turbojpeg.TurboJPEG()
    except (RuntimeError, OSError) as e:
        reason = str(e).splitlines()[0]
        raise Unavailable(
            f"PyTurboJPEG needs the system's libturbojpeg, 3.0 or newer for PyTurboJPEG 2 "
            f"(README: PyTurboJPEG); here: {reason}"
        ) from None
    # RGB straight from libjpeg-turbo: PyTurboJPEG's default is BGR
    return _from_bytes(lambda data: jpeg.decode(data, pixel_format=turbojpeg.TJPF_RGB), source)


def _png_shape(data: bytes) -> tuple[int, int]:
    """(height, width) from a PNG's IHDR chunk, which always comes first."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise DecodeError(f"{_what(data)}: not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return height, width


def _kornia_rs(fmt: str, source: str) -> Load:
    """kornia-rs' own Rust codecs: zune-jpeg for JPEG, the png crate for PNG.

    (Not read_image_jpegturbo: libjpeg-turbo is what most other decoders here use.)
    Its decode-from-bytes functions want the size up front; reading it from the header
    is part of what a caller pays."""
    kornia = _require("kornia_rs")
    kio = getattr(kornia, "io", kornia)  # 0.2 moved the codecs into kornia_rs.io
    if fmt == "png":
        if source == "memory":
            return lambda data: _rgb(kio.decode_image_png_u8(data, _png_shape(data), "rgb"), data)
        return lambda path: _rgb(kio.read_image_png_u8(path, "rgb"), path)
    if source == "file":
        return lambda path: _rgb(kio.read_image_jpeg(path, "rgb"), path)
    if "image_shape" not in (kio.decode_image_jpeg.__text_signature__ or ""):  # 0.2: (src)
        return lambda data: _rgb(kio.decode_image_jpeg(data), data)
    header = kornia.ImageDecoder().read_header  # 0.1: (src, image_shape, mode)

    def decode(data: bytes) -> np.ndarray:
        size = header(data)
        return _rgb(kio.decode_image_jpeg(data, (size.height, size.width), "rgb"), data)

    return decode


def _pyspng(fmt: str, source: str) -> Load:
    pyspng = _require("pyspng")
    return _from_bytes(lambda data: _rgb(pyspng.load(data, format="RGB"), data), source)


def _ajpegli(fmt: str, source: str) -> Load:
    ajpegli = _require("ajpegli")
    if source == "memory":
        return lambda data: _rgb(ajpegli.imdecode(data, mode="RGB"), data)
    return lambda path: _rgb(ajpegli.imread(path, mode="RGB"), path)


def _skimage(fmt: str, source: str) -> Load:
    if source == "memory":
        raise Unavailable(
            "skimage.io.imread takes a file name or URL, not bytes "
            "(for bytes its users call imageio, measured as `imageio`)"
        )
    skio = _require("skimage.io")
    _pillow_plugin(fmt)  # skimage.io.imread reads through imageio, and so through Pillow
    return lambda path: _rgb(skio.imread(path), path)


# ------------------------------------------------------------------ the opt-in ML stack's
# torchvision and TensorFlow are large (a gigabyte or more with their dependencies), so only the
# stack of asv.ml.conf.json has them (`make bench-ml`); everywhere else they are n/a, saying so.

ML_STACK = "the opt-in ML decoders stack (asv.ml.conf.json, make bench-ml)"


def _require_ml(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise Unavailable(f"{module} is not installed here: it is in {ML_STACK} ({e})") from None


def _torchvision(fmt: str, source: str) -> Load:
    """torchvision.io's CPU decoders (libjpeg-turbo, libpng and libwebp, bundled in its wheel),
    as its users call them: the file read by `read_file`, or the bytes as a uint8 tensor; the
    C x H x W tensor comes back as an H x W x C view, without a copy (a loader would keep the
    tensor: a copy to HWC would be a cost torchvision's users do not pay)."""
    import warnings

    tio = _require_ml("torchvision.io")
    import torch  # torchvision imported it

    # torch.frombuffer warns for read-only bytes; the decoders only read them
    warnings.filterwarnings("ignore", message="The given buffer is not writable")
    decode = {"png": tio.decode_png, "jpeg": tio.decode_jpeg, "webp": tio.decode_webp}[fmt]
    rgb = tio.ImageReadMode.RGB

    def from_tensor(data, src) -> np.ndarray:
        return _rgb(decode(data, mode=rgb).permute(1, 2, 0).numpy(), src)

    if source == "memory":
        return lambda data: from_tensor(torch.frombuffer(data, dtype=torch.uint8), data)
    return lambda path: from_tensor(tio.read_file(path), path)


def _tensorflow(fmt: str, source: str) -> Load:
    """`tf.io.decode_image` on the CPU (eagerly, one call per image, as a tf.data map function
    runs it once traced): the file read by `tf.io.read_file`, or the bytes as a string tensor."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no start-up banner on every import
    tf = _require_ml("tensorflow")

    def decode(contents, src) -> np.ndarray:
        image = tf.io.decode_image(contents, channels=3, expand_animations=False)
        return _rgb(image.numpy(), src)

    if source == "memory":
        return lambda data: decode(tf.constant(data), data)
    return lambda path: decode(tf.io.read_file(path), path)


# ------------------------------------------------------------------ array files


def _pickle(fmt: str, source: str) -> Load:
    if source == "memory":
        return pickle.loads

    def load(path: str) -> np.ndarray:
        with open(path, "rb") as f:
            return pickle.load(f)

    return load


def _numpy(fmt: str, source: str) -> Load:
    # np.load reads .npy natively and falls back to pickle for ndarray.dump files,
    # which is how NumPy's documentation says to read those back
    allow_pickle = fmt != "npy"
    if source == "memory":
        return lambda data: np.load(io.BytesIO(data), allow_pickle=allow_pickle)
    return lambda path: np.load(path, allow_pickle=allow_pickle)


# name -> (codecs it reads, builder(codec, source)); a JPEG reader reads every JPEG variant
_MAIN = frozenset({"png", "jpeg"})
_PILLOW_READS = _MAIN | {"webp", "avif", "jxl", "heic"}
LOADERS: dict[str, tuple[frozenset[str], Callable[[str, str], Load]]] = {
    "cv2": (_MAIN | {"webp", "avif", "jxl"}, _cv2),
    "pil": (_PILLOW_READS, _pil),
    "imageio": (_PILLOW_READS, _imageio),
    "simplejpeg": (frozenset({"jpeg"}), _simplejpeg),
    "imagecodecs": (_PILLOW_READS, _imagecodecs),
    "pyvips": (_PILLOW_READS, _pyvips),
    "turbojpeg": (frozenset({"jpeg"}), _turbojpeg),
    "kornia-rs": (_MAIN, _kornia_rs),
    "pyspng": (frozenset({"png"}), _pyspng),
    "ajpegli": (frozenset({"jpeg"}), _ajpegli),
    "skimage": (_PILLOW_READS, _skimage),
    "torchvision": (_MAIN | {"webp"}, _torchvision),
    "tensorflow": (_MAIN | {"webp"}, _tensorflow),
    "pickle": (frozenset({"pickle-p2", "pickle-p5"}), _pickle),
    "numpy": (frozenset({"pickle-p2", "pickle-p5", "npy"}), _numpy),
}
# Codecs a library reads only where it was built with them (OpenCV's wheels with or without
# AVIF and JPEG XL, Pillow's with or without libavif, libvips' libheif without HEVC): whether it
# can here is known by decoding a file, which readable() does, not from version numbers.
BUILD_DEPENDENT = frozenset({"webp", "avif", "jxl", "heic"})
IMAGE_DECODERS = ("cv2", "pil", "imageio", "simplejpeg", "imagecodecs")
ALL_IMAGE_DECODERS = IMAGE_DECODERS + (
    "pyvips",
    "turbojpeg",
    "kornia-rs",
    "pyspng",
    "ajpegli",
    "skimage",
    "torchvision",  # these two in the opt-in ML stack only (ML_STACK)
    "tensorflow",
)
ARRAY_LOADERS = ("pickle", "numpy")


def codec(fmt: str) -> str:
    """The codec that reads `fmt` files: a decoder that reads JPEG reads every JPEG variant
    (materialize's jpeg-q75, jpeg-444, ...); every other format is its own codec."""
    return "jpeg" if fmt.startswith("jpeg-") else fmt


def get(name: str, fmt: str, source: str = "file") -> Load:
    """The loader `name` for `fmt` files from `source`; Unavailable if it cannot do that here."""
    try:
        formats, build = LOADERS[name]
    except KeyError:
        raise ValueError(f"unknown loader {name!r}; known: {', '.join(LOADERS)}") from None
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    if codec(fmt) not in formats:
        raise Unavailable(f"{name} does not read {fmt} files")
    return build(codec(fmt), source)


def primed(name: str, fmt: str, load: Load, src: str | bytes) -> np.ndarray:
    """`load(src)`: the priming decode before any timing. Where `fmt`'s codec is one the library
    reads only if built with it, a failure says this build cannot read it (Unavailable, n/a,
    with the library's own words); PNG and JPEG failures stay failures."""
    try:
        return load(src)
    except Exception as e:
        if codec(fmt) not in BUILD_DEPENDENT:
            raise
        said = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise Unavailable(f"{name} cannot read {fmt} files in this environment: {said}") from None


def limit_library_threads() -> None:
    """One thread per decode inside pools: OpenCV's own pool would oversubscribe the cores."""
    import sys

    cv2 = sys.modules.get("cv2")
    if cv2 is not None:
        cv2.setNumThreads(1)
