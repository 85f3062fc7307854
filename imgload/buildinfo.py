"""What decides decode speed in one environment, beyond the pinned versions.

Two environments with the same Pillow version can still bundle different libjpeg-turbo
builds, and an OpenCV wheel may or may not use SIMD or IPP; the report shows these per
environment. Collected inside the environment itself (envcheck calls collect() where it
verifies the pins); a library that is absent is reported as absent, never an error.
"""

from __future__ import annotations

import importlib
import platform
import re

# cv2.getBuildInformation() lines worth showing: codecs, and what the CPU code may use
OPENCV_KEYS = ("JPEG", "SIMD Support", "PNG", "ZLib", "Baseline", "Dispatched code generation",
               "Parallel framework", "Intel IPP")
PIL_FEATURES = ("libjpeg_turbo", "jpg", "zlib")


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


def collect() -> dict:
    numpy = _import("numpy")
    return {
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "numpy": numpy.__version__ if numpy else None,
        "pillow": pillow(),
        "opencv": opencv(),
    }
