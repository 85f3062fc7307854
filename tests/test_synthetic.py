import io

import numpy as np
from PIL import Image

from imgload import synthetic


def test_deterministic_and_seed_dependent():
    a = synthetic.images(1, 300, (32, 32))
    assert a.shape == (300, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, synthetic.images(1, 300, (32, 32)))
    assert not np.array_equal(a, synthetic.images(2, 300, (32, 32)))


def test_worker_count_does_not_change_the_images():
    n = synthetic.chunk_length((32, 32)) * 2 + 5  # three chunks
    assert np.array_equal(
        synthetic.images(3, n, (32, 32), workers=1), synthetic.images(3, n, (32, 32), workers=2)
    )


def test_labels_balanced_and_deterministic():
    labels = synthetic.labels(5, 1000)
    assert np.bincount(labels).tolist() == [100] * 10
    assert np.array_equal(labels, synthetic.labels(5, 1000))


def _encoded_size(img, **kw):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, **kw)
    return buf.tell()


def test_compresses_like_photos_not_like_noise():
    imgs = synthetic.images(4, 40, (96, 128))  # big enough that JPEG headers do not dominate
    noise = np.random.default_rng(0).integers(0, 256, imgs.shape, dtype=np.uint8)
    png = np.mean([_encoded_size(i, format="PNG") for i in imgs])
    jpeg = np.mean([_encoded_size(i, format="JPEG", quality=90) for i in imgs])
    noise_png = np.mean([_encoded_size(i, format="PNG") for i in noise])
    noise_jpeg = np.mean([_encoded_size(i, format="JPEG", quality=90) for i in noise])
    # white noise does not compress at all (ratio 1); these measure about 0.77 (PNG), 0.58 (JPEG)
    assert png < 0.85 * noise_png
    assert jpeg < 0.7 * noise_jpeg
    # and the pixels use the whole range without being saturated flat
    assert 90 < imgs.mean() < 165 and imgs.std() > 25


def test_spectrum_falls_off_like_natural_images():
    imgs = synthetic.images(6, 50, (128, 128)).mean(axis=3)
    power = np.mean(np.abs(np.fft.fft2(imgs - imgs.mean(axis=(1, 2), keepdims=True))) ** 2, axis=0)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(128), np.fft.fftfreq(128)))
    low, high = power[(f > 0.02) & (f < 0.05)].mean(), power[(f > 0.2) & (f < 0.4)].mean()
    slope = np.log(low / high) / np.log(0.3 / 0.035)
    assert 1.0 < slope < 3.5  # white noise: 0; natural scenes: about 2
