"""The image-folder layout: a plain tar or zip of image files, fetched and materialized."""

import hashlib
import io
import tarfile
import zipfile

import numpy as np
import pytest
from PIL import Image

from imgload import datasets, decoders, fetch, synthetic

from .helpers import serve

MANIFEST = """
name = "{name}"
description = "a tiny image folder"
licence = "CC0-1.0"
layout = "image-folder"
formats = ["png", "jpeg", "npy"]
[source]
kind = "url"
url = "{url}"
hash = "sha256:{sha256}"
archive = "{archive}"
folder = "pics"
train = "train"
test = "val"
[sample]
default = 4
"""


def _encode(image: np.ndarray, fmt: str, mode: str = "RGB", **save) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).convert(mode).save(buf, fmt, **save)
    return buf.getvalue()


def _rotated_jpeg(image: np.ndarray) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": cv2.imread applies it, Pillow does not
    return _encode(image, "JPEG", exif=exif.tobytes())


def _png16(image: np.ndarray) -> bytes:
    import cv2  # Pillow cannot write a 16-bit RGB PNG

    ok, data = cv2.imencode(".png", image[..., ::-1].astype(np.uint16) * 257)
    assert ok
    return data.tobytes()


def _members() -> dict[str, bytes]:
    """Archive path -> bytes: varied sizes, modes and formats, plus files that are no images."""
    shapes = [(48, 64), (40, 40), (33, 50), (64, 48), (20, 30), (36, 36), (24, 32), (30, 20)]
    imgs = [synthetic.images(30 + i, 1, shape)[0] for i, shape in enumerate(shapes)]
    return {
        "pics/train/cat/b.jpg": _encode(imgs[0], "JPEG", quality=85),  # RGB JPEG: kept as it is
        "pics/train/cat/a.png": _encode(imgs[1], "PNG"),  # RGB PNG: kept as it is
        "pics/train/dog/grey.jpg": _encode(imgs[2], "JPEG", mode="L"),  # one channel: re-encoded
        "pics/train/dog/alpha.png": _encode(imgs[3], "PNG", mode="RGBA"),  # alpha: re-encoded
        "pics/train/dog/turned.jpg": _rotated_jpeg(imgs[4]),  # EXIF rotation: re-encoded
        "pics/train/dog/deep.png": _png16(imgs[6]),  # 16 bits per channel: re-encoded
        "pics/train/dog/trns.png": _encode(
            imgs[7], "PNG", transparency=(0, 0, 0)
        ),  # tRNS chunk: re-encoded
        "pics/train/loose.webp": _encode(
            imgs[5], "WEBP", lossless=True
        ),  # no class folder: label -1
        "pics/val/cat/c.JPEG": _encode(imgs[0][::-1].copy(), "JPEG"),
        "pics/train/cat/notes.txt": b"not an image",
        "pics/train/dog/.hidden.jpg": b"editor junk",
        "pics/readme.md": b"# pics",
    }


ORDER = [
    "train/cat/a.png",
    "train/cat/b.jpg",
    "train/dog/alpha.png",
    "train/dog/deep.png",
    "train/dog/grey.jpg",
    "train/dog/trns.png",
    "train/dog/turned.jpg",
    "train/loose.webp",
    "val/cat/c.JPEG",
]


def _archive(path, members: dict[str, bytes]) -> str:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(path, "w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(tmp_path, archive, sha256, url="http://127.0.0.1:9/", name="pics"):
    path = tmp_path / f"{name}.toml"
    path.write_text(
        MANIFEST.format(name=name, url=url + archive.name, sha256=sha256, archive=archive.name)
    )
    return path


@pytest.fixture(autouse=True)
def no_mirror(monkeypatch):
    monkeypatch.setattr(fetch, "RETRIES", 0)
    monkeypatch.delenv("IMGLOAD_MIRROR", raising=False)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A tar.gz image folder fetched over HTTP from 127.0.0.1 and prepared."""
    tmp = tmp_path_factory.mktemp("imagefolder")
    members = _members()
    archive = tmp / "pics.tar.gz"
    sha = _archive(archive, members)
    with serve(archive.read_bytes(), archive.name) as httpd:
        path = datasets.prepare(
            _manifest(tmp, archive, sha, url=httpd.url.rsplit("/", 1)[0] + "/"), tmp / "data"
        )
    return path, members


def test_listing_order_split_labels_and_classes(prepared):
    path, _ = prepared
    index = datasets.load_index(path)
    assert index["layout"] == "image-folder"
    assert index["filenames"] == ORDER
    assert (index["count"], index["train"], index["test"]) == (9, 8, 1)
    assert index["classes"] == ["cat", "dog"]
    assert index["labels"] == [0, 0, 1, 1, 1, 1, 1, -1, 0]
    assert index["shape"] is None
    assert index["shapes"][0] == [40, 40, 3] and index["shapes"][2] == [64, 48, 3]


def test_rgb_originals_are_kept_byte_for_byte_and_the_rest_re_encoded(prepared):
    path, members = prepared
    src = {name: members["pics/" + name] for name in ORDER}
    assert (path / "png" / "00000.png").read_bytes() == src["train/cat/a.png"]
    assert (path / "jpeg" / "00001.jpg").read_bytes() == src["train/cat/b.jpg"]
    for i, name in enumerate(ORDER):
        if name.split("/")[-1] in ("alpha.png", "deep.png", "trns.png", "grey.jpg", "turned.jpg"):
            fmt, suffix = ("png", ".png") if name.endswith("png") else ("jpeg", ".jpg")
            assert (path / fmt / f"{i:05d}{suffix}").read_bytes() != src[name], name


def test_every_format_holds_the_pixels_pillow_decodes_from_the_source(prepared):
    path, members = prepared
    for i, name in enumerate(ORDER):
        expected = np.asarray(Image.open(io.BytesIO(members["pics/" + name])).convert("RGB"))
        assert np.array_equal(np.asarray(Image.open(path / "png" / f"{i:05d}.png")), expected), (
            name
        )
        assert np.array_equal(np.load(path / "npy" / f"{i:05d}.npy"), expected), name


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_every_decoder_reads_every_file_as_the_same_rgb_shape(prepared, fmt):
    path, _ = prepared
    files = sorted(str(p) for p in (path / fmt).iterdir())
    expected = [tuple(s) for s in datasets.load_index(path)["shapes"]]
    for name in ("cv2", "pil", "imageio", "imagecodecs"):
        load = decoders.get(name, fmt)
        arrays = [load(f) for f in files]
        assert [a.shape for a in arrays] == expected and {a.dtype for a in arrays} == {
            np.dtype(np.uint8)
        }, name


def test_zip_archive_from_a_mirror_folder(tmp_path, monkeypatch):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    sha = _archive(mirror / "pics.zip", _members())
    monkeypatch.setenv("IMGLOAD_MIRROR", str(mirror))
    path = datasets.prepare(_manifest(tmp_path, mirror / "pics.zip", sha), tmp_path / "data")
    assert datasets.load_index(path)["filenames"] == ORDER
    assert datasets.first_problem(path, full=True) is None


def test_corrupt_image_is_named_and_nothing_is_kept(tmp_path, monkeypatch):
    members = _members()
    good = members["pics/train/cat/b.jpg"]
    members["pics/train/cat/b.jpg"] = good[: len(good) // 2]  # header intact, scan data cut
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    sha = _archive(mirror / "pics.tar.gz", members)
    monkeypatch.setenv("IMGLOAD_MIRROR", str(mirror))
    data = tmp_path / "data"
    with pytest.raises(
        datasets.DatasetError, match=r"train/cat/b\.jpg: not a readable image"
    ) as e:
        datasets.prepare(_manifest(tmp_path, mirror / "pics.tar.gz", sha), data)
    assert "\n" not in str(e.value)
    assert not (data / "pics").exists() and not list(data.glob(".pics.partial-*"))


@pytest.mark.parametrize(
    "members, message",
    [
        ({"pics/train/a.txt": b"x", "pics/val/b.png": b"x"}, r"pics/train: holds no image files"),
        ({"pics/train/a.png": b"x"}, r"pics/val: no such split folder"),
    ],
)
def test_archive_without_the_expected_folders_is_named(tmp_path, monkeypatch, members, message):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    sha = _archive(mirror / "pics.tar.gz", members)
    monkeypatch.setenv("IMGLOAD_MIRROR", str(mirror))
    with pytest.raises(datasets.DatasetError, match=message):
        datasets.prepare(_manifest(tmp_path, mirror / "pics.tar.gz", sha), tmp_path / "data")


def test_batches_need_the_cifar_layout(tmp_path):
    path = _manifest(tmp_path, tmp_path / "pics.tar.gz", "0" * 64)
    path.write_text(
        path.read_text().replace(
            'formats = ["png", "jpeg", "npy"]', 'formats = ["png"]\nbatches = true'
        )
    )
    with pytest.raises(
        datasets.DatasetError, match="batches = true needs the cifar-python layout"
    ):
        datasets.manifest(path)


def test_per_image_figures_of_a_set_whose_sizes_vary(prepared, clean_env):
    from imgload import suite

    path, _ = prepared
    # the default sample is images 0, 2, 5 and 7: 40x40, 64x48, 30x20 and 36x36
    assert suite.images_per_call(str(path), "sample") == 4
    assert suite.pixels_per_image(str(path)) == round((1600 + 3072 + 600 + 1296) / 4)


def test_a_test_folder_without_a_train_folder_is_refused(tmp_path):
    # the training images would be the whole folder, test images included
    path = _manifest(tmp_path, tmp_path / "pics.tar.gz", "0" * 64)
    path.write_text(path.read_text().replace('train = "train"\n', ""))
    with pytest.raises(datasets.DatasetError, match="needs its train folder too"):
        datasets.manifest(path)
