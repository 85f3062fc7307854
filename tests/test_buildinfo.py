"""What an environment was built with: collected where envcheck runs,
tolerant of absent libraries."""

import re
import sys
import types
from importlib import metadata

from imgload import buildinfo

OPENCV_SAMPLE = """
  CPU/HW features:
    Baseline:                    SSE SSE2 SSE3
      requested:                 SSE3
    Dispatched code generation:  SSE4_1 SSE4_2 AVX FP16 AVX2 AVX512_SKX
  Media I/O:
    ZLib:                        /usr/lib64/libz.so (ver 1.2.11)
    JPEG:                        build-libjpeg-turbo (ver 3.1.2-70)
      SIMD Support Request:      YES
      SIMD Support:              YES
    PNG:                         /usr/local/lib/libpng.so (ver 1.6.58)
  Parallel framework:            pthreads
"""


def test_opencv_lines_keep_codecs_and_cpu_features():
    lines = buildinfo.opencv_lines(OPENCV_SAMPLE)
    assert lines == {
        "Baseline": "SSE SSE2 SSE3",
        "Dispatched code generation": "SSE4_1 SSE4_2 AVX FP16 AVX2 AVX512_SKX",
        "ZLib": "/usr/lib64/libz.so (ver 1.2.11)",
        "JPEG": "build-libjpeg-turbo (ver 3.1.2-70)",
        "SIMD Support": "YES",  # not the "SIMD Support Request" line before it
        "PNG": "/usr/local/lib/libpng.so (ver 1.6.58)",
        "Parallel framework": "pthreads",
    }


def test_collect_reports_the_libraries_installed_here():
    info = buildinfo.collect()
    assert info["numpy"] == metadata.version("numpy")
    assert info["pillow"]["version"] == metadata.version("pillow")
    assert info["pillow"]["libjpeg_turbo"] and info["pillow"]["zlib"]
    assert info["opencv"]["version"] == ".".join(
        metadata.version("opencv-python-headless").split(".")[:3]
    )
    assert "libjpeg-turbo" in info["opencv"]["JPEG"] and info["opencv"]["PNG"]
    assert info["cpu"] and info["python"].count(".") == 2
    # what bench_formats' formats are read with: Pillow's libwebp and libavif, its plugins
    from PIL import features

    assert info["pillow"]["webp"] == features.version("webp")
    assert info["pillow"]["avif"] == features.version("avif")
    plugins = info["pillow_plugins"]
    assert plugins["pillow_heif"] == metadata.version("pillow-heif") and plugins["libheif"]
    assert plugins["pillow_jxl"] == metadata.version("pillow-jxl-plugin")
    assert "AVIF" in info["opencv"] and "WEBP" in info["opencv"]


DECODER_RECORDS = (
    "opencv",
    "pillow",
    "simplejpeg",
    "imagecodecs",
    "pyvips",
    "turbojpeg",
    "kornia_rs",
    "pyspng",
    "ajpegli",
    "skimage",
    "torchvision",
)


def test_an_absent_library_is_reported_absent(monkeypatch):
    monkeypatch.setattr(
        buildinfo, "_import", lambda name: None if name != "numpy" else sys.modules["numpy"]
    )
    info = buildinfo.collect()
    assert all(info[name] is None for name in DECODER_RECORDS) and info["numpy"]


def test_banners_read_codec_versions_from_a_binary(tmp_path):
    binary = tmp_path / "libcodec.so"
    binary.write_bytes(
        b"\x00libjpeg-turbo version 3.1.2 (build 20251010)\x00inflate 1.2.11 Copyright 1995-2017"
        b"\x00/cargo/registry/src/zune-jpeg-0.5.15/src/mcu.rs\x00/root/png-0.18.1/src/decoder.rs\x00"
        b"\x00AOMedia Project AV1 Decoder v3.15.1\x00"
    )
    assert buildinfo.banners(binary) == {
        "libjpeg-turbo": "3.1.2",
        "zlib": "1.2.11",
        "zune-jpeg": "0.5.15",
        "png crate": "0.18.1",
        "libaom": "3.15.1",
    }
    assert buildinfo.banners(tmp_path / "missing.so") == {} and buildinfo.banners(None) == {}


def test_loaded_library_finds_a_mapped_shared_library():
    path = buildinfo.loaded_library("libc")  # every CPython process on Linux maps libc
    assert path and re.search(r"/libc[.-]", path)
    assert buildinfo.loaded_library("libnothing-mapped-here") is None


def _installed(dist: str) -> bool:
    try:
        return bool(metadata.version(dist))
    except metadata.PackageNotFoundError:
        return False


VERSION = re.compile(r"\d+\.\d+(\.\d+)?")


def test_every_decoders_codec_libraries_are_recorded():
    """What .venv's decoders link, as far as each says or its binary shows (bench_codecs' set)."""
    info = buildinfo.collect()
    checks = {
        "simplejpeg": lambda r: VERSION.fullmatch(r["libjpeg_turbo"]),
        "imagecodecs": lambda r: (
            r["version"] == metadata.version("imagecodecs") and r["libjpeg_turbo"] and r["libpng"]
        ),
        "pyvips": lambda r: (
            VERSION.fullmatch(r["libvips"])
            and re.fullmatch(r"(mozjpeg|libjpeg-turbo) [\d.]+", r["jpeg"])
        ),
        "kornia-rs": lambda r: (
            r["jpeg"].startswith("zune-jpeg ") and r["png"].startswith("png crate ")
        ),
        "pyspng": lambda r: VERSION.fullmatch(r["zlib"]),
        "ajpegli": lambda r: re.fullmatch(r"[0-9a-f]{40}", r["jpegli_commit"]),
        "scikit-image": lambda r: (
            r["version"] == metadata.version("scikit-image") and r["imageio"]
        ),
    }
    keys = {"kornia-rs": "kornia_rs", "scikit-image": "skimage"}
    checked = 0
    for dist, check in checks.items():
        record = info[keys.get(dist, dist)]
        if not _installed(dist):
            assert record is None, dist
            continue
        assert record and check(record), (dist, record)
        checked += 1
    assert checked, (
        "none of the decoders is installed here:"
        " .venv installs them all (pyproject's decoders extra)"
    )


def _fake_turbojpeg(monkeypatch, init):
    fake = types.ModuleType("turbojpeg")

    class TurboJPEG:
        def __init__(self):
            init()

    fake.TurboJPEG = TurboJPEG
    monkeypatch.setitem(sys.modules, "turbojpeg", fake)


def test_turbojpeg_without_its_system_library_says_why(monkeypatch):
    def no_library():
        raise RuntimeError("PyTurboJPEG 2.0 requires libjpeg-turbo 3.0 or later.\nPlease upgrade")

    _fake_turbojpeg(monkeypatch, no_library)
    record = buildinfo.turbojpeg()
    assert (
        record["libturbojpeg"]
        == "unavailable: PyTurboJPEG 2.0 requires libjpeg-turbo 3.0 or later."
    )


def test_turbojpeg_records_the_library_it_loaded(monkeypatch, tmp_path):
    lib = tmp_path / "libturbojpeg.so.0"
    lib.write_bytes(b"\x00libjpeg-turbo version 2.1.5 (build 20230203)\x00")
    _fake_turbojpeg(monkeypatch, lambda: None)
    monkeypatch.setattr(
        buildinfo, "loaded_library", lambda stem: str(lib) if stem == "libturbojpeg" else None
    )
    record = buildinfo.turbojpeg()
    assert record["libturbojpeg"] == str(lib) and record["libjpeg_turbo"] == "2.1.5"
