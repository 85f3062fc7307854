"""What an environment was built with: collected where envcheck runs, tolerant of absent libraries."""

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
    assert info["opencv"]["version"] == ".".join(metadata.version("opencv-python-headless").split(".")[:3])
    assert "libjpeg-turbo" in info["opencv"]["JPEG"] and info["opencv"]["PNG"]
    assert info["cpu"] and info["python"].count(".") == 2


def test_an_absent_library_is_reported_absent(monkeypatch):
    real = buildinfo._import
    monkeypatch.setattr(buildinfo, "_import", lambda name: None if name.split(".")[0] in ("cv2", "PIL") else real(name))
    info = buildinfo.collect()
    assert info["opencv"] is None and info["pillow"] is None and info["numpy"]
