import sys

import numpy as np
import pytest
from PIL import Image

from imgload import datasets, decoders


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


@pytest.mark.parametrize("fmt,suffix", [("png", ".png"), ("jpeg", ".jpg")])
def test_channel_order_is_rgb(tmp_path, fmt, suffix):
    img = np.zeros((16, 48, 3), np.uint8)
    img[:, :16, 0] = 255  # red, green, blue stripes
    img[:, 16:32, 1] = 255
    img[:, 32:, 2] = 255
    path = tmp_path / f"rgb{suffix}"
    Image.fromarray(img).save(path, quality=95)
    for name, load in _available(decoders.IMAGE_DECODERS, fmt).items():
        a = load(str(path)).astype(int)
        for stripe, channel in enumerate((0, 1, 2)):
            mean = a[4:12, stripe * 16 + 4 : stripe * 16 + 12].mean(axis=(0, 1))
            assert mean.argmax() == channel and mean[channel] > 200, (name, stripe, mean)


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
        decoders.get("tensorflow", "png")
