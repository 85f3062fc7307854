import pickle

import numpy as np
import pytest

from imgload import cifar, synthetic


@pytest.fixture
def written(tmp_path):
    imgs = synthetic.images(11, 60, (32, 32))
    labels = synthetic.labels(11, 60)
    names = [f"img_{i}.png" for i in range(60)]
    train = cifar.Split(imgs[:50], labels[:50], names[:50])
    test = cifar.Split(imgs[50:], labels[50:], names[50:])
    cifar.write(tmp_path / cifar.FOLDER, train, test)
    return tmp_path / cifar.FOLDER, imgs, labels, names


def test_layout_matches_the_official_archive(written):
    folder, imgs, labels, names = written
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [*cifar.TRAIN_BATCHES, cifar.TEST_BATCH, "batches.meta"]
    )
    with open(folder / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")  # how users read the official Python 2 files
    # Python 2 strings: keys and file names come back as bytes, data as N x 3072 uint8
    assert set(raw) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert raw[b"data"].shape == (10, 3072) and raw[b"data"].dtype == np.uint8
    assert raw[b"filenames"][0] == b"img_0.png"
    # R plane, then G, then B, each row-major
    assert raw[b"data"][3, 0] == imgs[3, 0, 0, 0]
    assert raw[b"data"][3, 1024 + 33] == imgs[3, 1, 1, 1]
    assert raw[b"data"][3, 2048 + 31] == imgs[3, 0, 31, 2]
    meta = cifar.load_batch(folder / "batches.meta")
    assert meta["num_cases_per_batch"] == 10 and len(meta["label_names"]) == 10


def test_round_trip(written):
    folder, imgs, labels, names = written
    train, test = cifar.read(folder)
    assert np.array_equal(np.concatenate([train.images, test.images]), imgs)
    assert np.array_equal(np.concatenate([train.labels, test.labels]), labels)
    assert train.filenames + test.filenames == names
    assert train.batch_sizes == [10] * 5 and test.batch_sizes == [10]
    assert np.array_equal(cifar.load_batch_images(str(folder / "data_batch_2")), imgs[10:20])


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # would create the marker file when unpickled


def test_restricted_unpickler_refuses_foreign_globals_before_running_them(tmp_path):
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "data_batch_1"
    evil.write_bytes(
        pickle.dumps({"data": _Payload(str(marker)), "labels": [], "filenames": []}, protocol=2)
    )
    with pytest.raises(cifar.UnsafePickleError, match="io.open|builtins.open"):
        cifar.load_batch(evil)
    assert not marker.exists()


def test_not_a_batch_is_a_clear_error(tmp_path):
    bad = tmp_path / "data_batch_1"
    bad.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="data_batch_1"):
        cifar.load_batch(bad)
