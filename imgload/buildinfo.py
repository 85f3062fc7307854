"""What decides decode speed in one environment, beyond the pinned versions.

Two environments with the same Pillow version can still bundle different libjpeg-turbo
builds, and an OpenCV wheel may or may not use SIMD or IPP; the report shows these per
environment. Collected inside the environment itself (envcheck calls collect() where it
verifies the pins); a library that is absent is reported as absent, never an error.

Every decoder's record names the codec libraries it decodes with and their versions. Where
a library does not say (simplejpeg, libvips, kornia-rs, pyspng, libturbojpeg), the versions
are read from the version banners that the codecs compile into the binary that is loaded
(`libjpeg-turbo version 3.1.2 (build ...)`, zlib's `inflate 1.2.11 Copyright`, Rust crates'
source paths): the binary actually in use, not the one a package's metadata promises.
A codec whose version the binary does not carry is left out ("-" in the report).
"""

from __future__ import annotations

import importlib
import os
import platform
import re
from importlib import metadata

# cv2.getBuildInformation() lines worth showing: codecs, and what the CPU code may use
OPENCV_KEYS = (
    "JPEG",
    "SIMD Support",
    "PNG",
    "ZLib",
    "Baseline",
    "Dispatched code generation",
    "Parallel framework",
    "Intel IPP",
    "WEBP",
    "AVIF",
    "JPEG XL",
)
PIL_FEATURES = ("libjpeg_turbo", "jpg", "zlib", "webp", "avif")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def pillow() -> dict | None:
    pil, features = _import("PIL"), _import("PIL.features")
    if pil is None or features is None:
        return None
    out = {"version": pil.__version__}
    for feature in PIL_FEATURES:
        try:
            out[feature] = features.version(feature)
        except ValueError:  # a feature this Pillow does not know about
            out[feature] = None
    return out


def opencv_lines(build_information: str) -> dict[str, str]:
    """The first line for each of OPENCV_KEYS, as 'key: value' in getBuildInformation()."""
    out: dict[str, str] = {}
    for line in build_information.splitlines():
        m = re.match(r"\s*([^:]+?):\s+(.*\S)\s*$", line)
        if m and m.group(1) in OPENCV_KEYS and m.group(1) not in out:
            out[m.group(1)] = m.group(2)
    return out


def opencv() -> dict | None:
    cv2 = _import("cv2")
    if cv2 is None:
        return None
    return {"version": cv2.__version__, **opencv_lines(cv2.getBuildInformation())}


# codec -> pattern whose group 1 is the version, as compiled into a binary
BANNERS = {
    "libjpeg-turbo": rb"libjpeg-turbo version (\d+\.\d+\.\d+)",
    "mozjpeg": rb"mozjpeg version (\d+\.\d+\.\d+)",
    "libpng": rb"libpng version (\d+\.\d+\.\d+)",
    "zlib": rb"inflate (\d+\.\d+\.\d+(?:\.\d+)?) Copyright",
    # Rust crates (kornia-rs): their source paths, e.g. .../zune-jpeg-0.5.15/src/...
    "zune-jpeg": rb"zune-jpeg-(\d+\.\d+\.\d+)",
    "png crate": rb"/png-(\d+\.\d+\.\d+)/",
    # the AV1 decoder libheif reads AVIF with, in libvips (pyvips-binary)
    "libaom": rb"AOMedia Project AV1 Decoder v(\d+\.\d+\.\d+)",
    "dav1d": rb"dav1d (\d+\.\d+\.\d+)",
}


def banners(path: str | os.PathLike | None) -> dict[str, str]:
    """codec -> version for every BANNERS pattern found in the binary at `path`."""
    if path is None:
        return {}
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError:
        return {}
    return {
        codec: m.group(1).decode()
        for codec, pattern in BANNERS.items()
        if (m := re.search(pattern, blob))
    }


def loaded_library(stem: str) -> str | None:
    """The file of the shared library named `stem` (libvips, libturbojpeg) that this process
    has mapped, found in /proc/self/maps: the one the decoder really uses."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                path = line.split(maxsplit=5)[-1].strip()
                if os.path.basename(path).startswith(stem + "."):
                    return path
                if os.path.basename(path).startswith(stem + "-"):  # auditwheel's libvips-<hash>.so
                    return path
    except OSError:
        pass
    return None


def _dist(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def simplejpeg() -> dict | None:
    mod = _import("simplejpeg._jpeg")
    if mod is None:
        return None
    return {
        "version": _dist("simplejpeg"),
        "libjpeg_turbo": banners(mod.__file__).get("libjpeg-turbo"),
    }


IMAGECODECS_KEYS = (
    "libjpeg_turbo",
    "mozjpeg",
    "libpng",
    "libspng",
    "zlib",
    "zlib_ng",
    "libdeflate",
    "libwebp",
    "libavif",
    "libjxl",
    "heif",
)


def imagecodecs() -> dict | None:
    codecs = _import("imagecodecs")
    if codecs is None:
        return None
    linked = codecs.version(dict)  # every codec it was built with and its version, or "n/a"
    return {
        "version": codecs.__version__,
        **{k: linked[k] for k in IMAGECODECS_KEYS if linked.get(k) not in (None, "n/a")},
    }


def pyvips() -> dict | None:
    vips = _import("pyvips")
    if vips is None:
        return None
    found = banners(loaded_library("libvips"))
    return {
        "version": vips.__version__,
        "libvips": ".".join(str(vips.version(i)) for i in range(3)),
        "binary": _dist("pyvips-binary"),
        "jpeg": _codec(found, "libjpeg-turbo", "mozjpeg"),
        "png": _codec(found, "libpng"),
        "avif": _codec(found, "dav1d", "libaom"),
    }


def _codec(found: dict[str, str], *names: str) -> str | None:
    """'mozjpeg 5.0.0': the first of `names` found, with its version."""
    return next((f"{name} {found[name]}" for name in names if name in found), None)


def turbojpeg() -> dict | None:
    tj = _import("turbojpeg")
    if tj is None:
        return None
    out = {"version": _dist("PyTurboJPEG")}
    try:
        tj.TurboJPEG()  # loads the system's libturbojpeg
    except (RuntimeError, OSError) as e:
        return {**out, "libturbojpeg": f"unavailable: {str(e).splitlines()[0]}"}
    path = loaded_library("libturbojpeg")
    return {**out, "libturbojpeg": path, "libjpeg_turbo": banners(path).get("libjpeg-turbo")}


def kornia_rs() -> dict | None:
    kornia = _import("kornia_rs.kornia_rs")
    if kornia is None:
        return None
    found = banners(kornia.__file__)  # a static Rust extension: its crates are compiled in
    return {
        "version": _dist("kornia-rs"),
        "jpeg": _codec(found, "zune-jpeg"),
        "png": _codec(found, "png crate"),
        "libjpeg_turbo": found.get("libjpeg-turbo"),
    }


def pyspng() -> dict | None:
    mod = _import("pyspng._pyspng_c")
    if mod is None:
        return None
    # libspng itself carries no version banner; the zlib it inflates with does
    return {"version": _dist("pyspng"), "zlib": banners(mod.__file__).get("zlib")}


def ajpegli() -> dict | None:
    mod = _import("ajpegli")
    if mod is None:
        return None
    commit = getattr(mod, "jpegli_commit", None)  # the libjxl commit its jpegli is built from
    return {"version": _dist("ajpegli"), "jpegli_commit": commit() if callable(commit) else commit}


def skimage() -> dict | None:
    mod = _import("skimage")
    if mod is None:
        return None
    # skimage.io.imread decodes PNG and JPEG through imageio, which decodes with Pillow
    return {"version": mod.__version__, "imageio": _dist("imageio")}


def pillow_plugins() -> dict | None:
    """The plugins through which Pillow (and imageio and scikit-image) read HEIC and JPEG XL."""
    heif = _import("pillow_heif")
    jxl = _dist("pillow-jxl-plugin")
    if heif is None and jxl is None:
        return None
    return {
        "pillow_heif": None if heif is None else heif.__version__,
        "libheif": None if heif is None else heif.libheif_version(),
        "pillow_jxl": jxl,
    }


def torchvision() -> dict | None:
    """torchvision and the codec libraries its wheel bundles (in torchvision.libs)."""
    tv = _import("torchvision")
    if tv is None:
        return None
    found: dict[str, str] = {}
    libs = os.path.join(os.path.dirname(os.path.dirname(tv.__file__)), "torchvision.libs")
    for name in sorted(os.listdir(libs)) if os.path.isdir(libs) else []:
        if name.startswith(("libjpeg", "libpng")):
            found.update(banners(os.path.join(libs, name)))
    return {
        "version": tv.__version__,
        "torch": _dist("torch"),
        "jpeg": _codec(found, "libjpeg-turbo"),
        "png": _codec(found, "libpng"),
        "avif": _codec(found, "dav1d", "libaom"),
    }


def tensorflow() -> dict | None:
    if _dist("tensorflow-cpu") is None and _dist("tensorflow") is None:
        return None  # not imported to find out: TensorFlow takes seconds to import
    return {"version": _dist("tensorflow-cpu") or _dist("tensorflow")}


def collect() -> dict:
    numpy = _import("numpy")
    return {
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "numpy": numpy.__version__ if numpy else None,
        "pillow": pillow(),
        "opencv": opencv(),
        "simplejpeg": simplejpeg(),
        "imagecodecs": imagecodecs(),
        "pyvips": pyvips(),
        "turbojpeg": turbojpeg(),
        "kornia_rs": kornia_rs(),
        "pyspng": pyspng(),
        "ajpegli": ajpegli(),
        "skimage": skimage(),
        "pillow_plugins": pillow_plugins(),
        "torchvision": torchvision(),
        "tensorflow": tensorflow(),
    }
