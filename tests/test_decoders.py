import io
import itertools
import math
import sys
import types

import numpy as np
import pytest
from PIL import Image

from imgload import datasets, decoders

from .helpers import asv_quick_in_venv, codecs_na_by_design

# JPEG decoders may differ from Pillow's libjpeg-turbo: kornia-rs decodes with zune-jpeg and
# ajpegli with jpegli, whose IDCTs and chroma upsampling round differently. Measured against
# Pillow on every image of the default datasets (3,000 32x32, 256 500x375, quality 90 4:2:0):
# zune-jpeg up to 10 levels at a pixel and 0.43 on average over an image, jpegli up to 13 and
# 1.06; the libjpeg-turbo family (cv2, imageio, simplejpeg, imagecodecs, pyvips' mozjpeg,
# skimage) is identical. The bounds leave room for other images and releases; a swapped
# channel order or a shifted image is off by tens on average, far outside them.
JPEG_MAX_DIFF = 16
JPEG_MEAN_DIFF = 1.5
SAMPLED = (0, 2, 4)  # images of each tiny set compared (the tiny-large set has 5 training images)


def _available(names, fmt):
    out = {}
    for name in names:
        try:
            out[name] = decoders.get(name, fmt)
        except decoders.Unavailable:
            pass
    return out


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_decoders_agree_on_shape_dtype_and_order(tiny, fmt):
    loaders = _available(decoders.IMAGE_DECODERS, fmt)
    assert {"cv2", "pil", "imageio"} <= set(loaders)
    index = datasets.load_index(tiny)
    source = np.load(tiny / "batches" / "npy" / "data_batch_1.npy")
    for i in (0, 7, 19):
        path = datasets.file_path(tiny, index, fmt, i)
        arrays = {name: load(path) for name, load in loaders.items()}
        for name, a in arrays.items():
            assert a.shape == (32, 32, 3) and a.dtype == np.uint8, name
            if fmt == "png":  # lossless: every decoder returns exactly the source pixels
                assert np.array_equal(a, source[i]), name
            else:  # libjpeg builds may round differently, never by much
                assert np.abs(a.astype(int) - arrays["pil"]).max() <= 4, name


@pytest.mark.parametrize("fmt", ["pickle-p2", "pickle-p5", "npy"])
def test_array_loaders_return_the_stored_array(tiny, fmt):
    index = datasets.load_index(tiny)
    expected = np.load(tiny / "batches" / "npy" / "data_batch_1.npy")[5]
    loaders = _available(decoders.ARRAY_LOADERS, fmt)
    assert set(loaders) == ({"numpy"} if fmt == "npy" else {"numpy", "pickle"})
    for name, load in loaders.items():
        assert np.array_equal(load(datasets.file_path(tiny, index, fmt, 5)), expected), name


def test_format_a_loader_cannot_read_is_a_skip():
    with pytest.raises(NotImplementedError, match="simplejpeg does not read png"):
        decoders.get("simplejpeg", "png")
    with pytest.raises(NotImplementedError):
        decoders.get("pickle", "npy")


def test_missing_library_is_a_skip_naming_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "simplejpeg", None)  # makes `import simplejpeg` fail
    with pytest.raises(NotImplementedError, match="simplejpeg is not installed"):
        decoders.get("simplejpeg", "jpeg")


def test_unreadable_file_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(decoders.DecodeError, match="broken.png"):
        decoders.get("cv2", "png")(str(bad))
    with pytest.raises(ValueError, match="unknown loader"):
        decoders.get("no-such-decoder", "png")
    with pytest.raises(ValueError, match="unknown source"):
        decoders.get("pil", "png", "network")


# ------------------------------------------------------------------ every decoder, every source


def _input(path: str, source: str) -> str | bytes:
    if source == "file":
        return path
    with open(path, "rb") as f:
        return f.read()


def _loader_or_skip(name: str, fmt: str, source: str):
    """The loader, or a skip naming why it is n/a here (asv shows the same as n/a)."""
    try:
        return decoders.get(name, fmt, source)
    except decoders.Unavailable as e:
        pytest.skip(f"n/a: {e}")


@pytest.mark.parametrize("source", decoders.SOURCES)
@pytest.mark.parametrize("fmt", ["png", "jpeg"])
@pytest.mark.parametrize("name", decoders.ALL_IMAGE_DECODERS)
def test_every_decoder_matches_pillow(tiny, tiny_large, name, fmt, source):
    load = _loader_or_skip(name, fmt, source)
    for root in (tiny, tiny_large):
        index = datasets.load_index(root)
        for i in SAMPLED:
            path = datasets.file_path(root, index, fmt, i)
            expected = np.asarray(Image.open(path).convert("RGB"))
            got = load(_input(path, source))
            assert isinstance(got, np.ndarray) and got.dtype == np.uint8, (name, path)
            assert got.shape == expected.shape == tuple(index["shape"]), (name, path)
            if fmt == "png":  # lossless: exactly Pillow's pixels
                assert np.array_equal(got, expected), (name, path)
            else:
                diff = np.abs(got.astype(np.int16) - expected)
                assert diff.max() <= JPEG_MAX_DIFF and diff.mean() <= JPEG_MEAN_DIFF, (
                    name,
                    path,
                    diff.max(),
                    diff.mean(),
                )


@pytest.mark.parametrize("source", decoders.SOURCES)
@pytest.mark.parametrize("fmt,suffix", [("png", ".png"), ("jpeg", ".jpg")])
@pytest.mark.parametrize("name", decoders.ALL_IMAGE_DECODERS)
def test_every_decoder_returns_rgb_order(tmp_path, name, fmt, suffix, source):
    load = _loader_or_skip(name, fmt, source)
    img = np.zeros((16, 48, 3), np.uint8)
    img[:, :16, 0] = 255  # red, green, blue stripes
    img[:, 16:32, 1] = 255
    img[:, 32:, 2] = 255
    path = tmp_path / f"rgb{suffix}"
    Image.fromarray(img).save(path, quality=95)
    a = load(_input(str(path), source)).astype(int)
    for stripe in range(3):
        mean = a[4:12, stripe * 16 + 4 : stripe * 16 + 12].mean(axis=(0, 1))
        assert mean.argmax() == stripe and mean[stripe] > 200, (name, stripe, mean)


NEW_LIBRARIES = [
    ("pyvips", "pyvips", "png"),
    ("turbojpeg", "turbojpeg", "jpeg"),
    ("kornia-rs", "kornia_rs", "png"),
    ("pyspng", "pyspng", "png"),
    ("ajpegli", "ajpegli", "jpeg"),
    ("skimage", "skimage.io", "png"),
    ("torchvision", "torchvision.io", "jpeg"),
    ("tensorflow", "tensorflow", "png"),
]


@pytest.mark.parametrize("name,module,fmt", NEW_LIBRARIES)
def test_a_missing_library_is_na_naming_it(monkeypatch, name, module, fmt):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail, installed or not
    with pytest.raises(decoders.Unavailable, match=f"{module} is not installed"):
        decoders.get(name, fmt, "file")


@pytest.mark.parametrize("name,module", [("torchvision", "torchvision.io"), ("tensorflow", None)])
def test_the_ml_decoders_say_which_stack_has_them(monkeypatch, name, module):
    monkeypatch.setitem(sys.modules, module or name, None)
    with pytest.raises(decoders.Unavailable, match=r"opt-in ML decoders stack .*make bench-ml"):
        decoders.get(name, "jpeg", "memory")


def _fake_turbojpeg(monkeypatch, init):
    """A stand-in PyTurboJPEG whose TurboJPEG() runs `init` (the system library's part)."""
    fake = types.ModuleType("turbojpeg")
    fake.TJPF_RGB, fake.TJPF_BGR = 0, 1

    class TurboJPEG:
        def __init__(self):
            init()

        def decode(self, data, pixel_format=fake.TJPF_BGR):
            self.decoded = (data, pixel_format)
            return np.zeros((2, 2, 3), np.uint8)

    fake.TurboJPEG = TurboJPEG
    monkeypatch.setitem(sys.modules, "turbojpeg", fake)
    return fake


def test_turbojpeg_without_libturbojpeg_is_na_saying_so(monkeypatch):
    def no_library():
        raise RuntimeError("Unable to locate turbojpeg library automatically.\nsecond line")

    _fake_turbojpeg(monkeypatch, no_library)
    with pytest.raises(
        decoders.Unavailable,
        match="libturbojpeg.*Unable to locate turbojpeg library automatically\\.$",
    ):
        decoders.get("turbojpeg", "jpeg")


@pytest.mark.parametrize("source", decoders.SOURCES)
def test_turbojpeg_decodes_to_rgb_not_its_default_bgr(monkeypatch, tmp_path, source):
    calls = []
    fake = _fake_turbojpeg(monkeypatch, lambda: None)
    real_decode = fake.TurboJPEG.decode
    monkeypatch.setattr(
        fake.TurboJPEG,
        "decode",
        lambda self, data, **kw: calls.append(kw) or real_decode(self, data, **kw),
    )
    path = tmp_path / "x.jpg"
    path.write_bytes(b"jpeg bytes")
    decoders.get("turbojpeg", "jpeg", source)(_input(str(path), source))
    assert calls == [{"pixel_format": fake.TJPF_RGB}]


def test_skimage_from_memory_is_na_with_the_reason():
    with pytest.raises(decoders.Unavailable, match="file name or URL, not bytes"):
        decoders.get("skimage", "png", "memory")


def test_pyvips_decodes_on_every_call(tmp_path):
    """libvips caches loads and decodes lazily: a second load of a changed file must see the
    new pixels (a cached image would not), and the result is a plain, filled ndarray."""
    load = _loader_or_skip("pyvips", "png", "file")
    path = tmp_path / "x.png"
    for value in (0, 200):
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(path)
        got = load(str(path))
        assert type(got) is np.ndarray and got.shape == (8, 8, 3) and (got == value).all()


def test_a_broken_input_from_memory_is_named_by_its_size():
    with pytest.raises(decoders.DecodeError, match="<13 bytes in memory>"):
        decoders.get("cv2", "png", "memory")(b"not an image!")


def test_kornia_png_from_memory_reads_the_size_from_the_header():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((3, 5, 3), np.uint8)).save(buf, format="PNG")
    assert decoders._png_shape(buf.getvalue()) == (3, 5)
    with pytest.raises(decoders.DecodeError, match="not a PNG"):
        decoders._png_shape(b"GIF89a" + bytes(30))


# ------------------------------------------------------------------ bench_codecs under asv


@pytest.mark.asv
def test_asv_runs_every_codecs_benchmark_or_shows_na_by_design(tmp_path, manifests):
    """A real `asv run --quick` of bench_codecs in .venv's own environment (no environment
    to build), smoke profile, on the tiny datasets: every combination measured or n/a by design."""
    rows = asv_quick_in_venv(
        tmp_path, manifests, "imgload-codecs", r"^bench_codecs\.", IMGLOAD_PROFILE="smoke"
    )
    assert set(rows) == {
        "bench_codecs.SmallCodecs.time_decode",
        "bench_codecs.LargeCodecs.time_decode",
    }
    for name, row in rows.items():
        combos = [tuple(v.strip("'") for v in c) for c in itertools.product(*row["params"])]
        assert (
            len(combos)
            == len(row["result"])
            == len(decoders.ALL_IMAGE_DECODERS) * 2 * len(decoders.SOURCES)
        )
        for combo, value in zip(combos, row["result"]):
            assert value is not None, f"{name} {combo} failed"
            assert math.isnan(value) == codecs_na_by_design(*combo), f"{name} {combo}: {value}"
            assert math.isnan(value) or value > 0


def test_the_ml_stack_pins_torchvision_tensorflow_and_the_newest_stack_s_libraries():
    """One opt-in stack of its own name, exact pins (envcheck's rule): torchvision with the torch
    it was built for (0.29 with 2.14: PyPI's torchvision does not import beside the torch
    stack's 2.13.0+cpu), TensorFlow's CPU build, and NumPy, Pillow and OpenCV at the newest
    default stack's versions, so that its decoders sit beside the others; the same folders as
    asv.conf.json, so the report shows it as one more stack."""
    import json

    from imgload import envcheck

    from .helpers import REPO

    conf = json.loads((REPO / "asv.ml.conf.json").read_text())
    default = json.loads((REPO / "asv.conf.json").read_text())
    [stack] = conf["include"]
    name = stack["env"]["IMGLOAD_STACK"]
    pins = envcheck.stack_pins(conf, name)
    assert (pins["torch"], pins["torchvision"]) == ("2.14.1", "0.29.1")
    assert "tensorflow-cpu" in pins and "tensorflow" not in pins
    newest = default["include"][-1]["req"]
    for lib in ("numpy", "pillow", "opencv-python-headless", "asv_runner", "pooch"):
        assert pins[lib] == newest[lib], lib
    assert name not in {e["env"]["IMGLOAD_STACK"] for e in default["include"]}
    for key in ("results_dir", "html_dir", "env_dir", "benchmark_dir", "repo", "pythons"):
        assert conf[key] == default[key], key
    assert conf["install_command"] == [
        "in-dir={conf_dir} python -m imgload.envcheck asv.ml.conf.json"
    ]
