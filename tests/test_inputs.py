"""Hostile and wrong manifests: one line naming the file, the key, the value and what is
expected (exit 2), before anything is written or deleted; and the one helper every deletion
goes through, which refuses anything outside what the operation owns."""

import os
import shutil

import pytest

from imgload import cli, datasets
from imgload.manifest_check import ARCHIVE_RULE, NAME_RULE

from .helpers import REPO, TINY_CIFAR, TINY_LARGE, snapshot

URL_CIFAR = (
    (REPO / "datasets" / "cifar10.toml")
    .read_text()
    .replace(
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "http://127.0.0.1:9/cifar-10-python.tar.gz",
    )
)

URL_FOLDER = (
    """
name = "pics"
description = "an image folder"
layout = "image-folder"
formats = ["png", "jpeg"]
[source]
kind = "url"
url = "http://127.0.0.1:9/pics.tar.gz"
hash = "sha256:"""
    + "0" * 64
    + """"
archive = "pics.tar.gz"
folder = "pics"
train = "train"
test = "val"
[sample]
default = 4
"""
)

FORMAT_LIST = (
    "a non-empty list of format names from png, jpeg, jpeg-q75, jpeg-q95, jpeg-444,"
    " jpeg-progressive, webp, avif, jxl, heic, pickle-p2, pickle-p5, npy"
)
RESERVED = (
    "expected a name of the dataset's own (downloads, sources, .locks are folders the data dir"
    " keeps for itself)"
)
LARGE_SOURCE = '[source]\nkind = "synthetic"\nseed = 8\nshape = [75, 100]\ntrain = 5\ntest = 1\n'

# (base manifest, text replaced, replacement, the line after "<manifest>: ")
WRONG = {
    "sample-default-string": (
        TINY_LARGE,
        "default = 4",
        'default = "many"',
        "sample.default = 'many': expected a positive integer (images each timed call loads)",
    ),
    "sample-default-zero": (
        TINY_LARGE,
        "default = 4",
        "default = 0",
        "sample.default = 0: expected a positive integer (images each timed call loads)",
    ),
    "sample-default-bool": (
        TINY_LARGE,
        "default = 4",
        "default = true",
        "sample.default = True: expected a positive integer (images each timed call loads)",
    ),
    "sample-missing": (
        TINY_LARGE,
        "[sample]\ndefault = 4\n",
        "",
        "sample is missing: expected a table: [sample] with default = <images per timed call>",
    ),
    "name-int": (TINY_LARGE, 'name = "tiny-large"', "name = 5", f"name = 5: expected {NAME_RULE}"),
    "description-int": (
        TINY_LARGE,
        'description = "6 images of 75x100"',
        "description = 6",
        "description = 6: expected a string",
    ),
    "layout-int": (
        TINY_LARGE,
        'layout = "arrays"',
        "layout = 3",
        "layout = 3: expected one of cifar-python, image-folder, arrays",
    ),
    "unknown-key": (
        TINY_LARGE,
        'formats = ["png", "jpeg"]',
        'formtas = ["png"]',
        "formtas is not a manifest key here: expected one of name, description, licence, layout,"
        " formats, containers, batches, source, sample",
    ),
    "formats-string": (
        TINY_LARGE,
        'formats = ["png", "jpeg"]',
        'formats = "png"',
        f"formats = 'png': expected {FORMAT_LIST}",
    ),
    "formats-empty": (
        TINY_LARGE,
        'formats = ["png", "jpeg"]',
        "formats = []",
        f"formats = []: expected {FORMAT_LIST}",
    ),
    "formats-unknown": (
        TINY_LARGE,
        'formats = ["png", "jpeg"]',
        'formats = ["png", "gif"]',
        f"formats = ['png', 'gif']: expected {FORMAT_LIST} (unknown: 'gif')",
    ),
    "formats-twice": (
        TINY_LARGE,
        'formats = ["png", "jpeg"]',
        'formats = ["png", "png"]',
        "formats = ['png', 'png']: expected each format once",
    ),
    "source-int": (
        TINY_LARGE,
        LARGE_SOURCE,
        "source = 5\n",
        'source = 5: expected a table: [source] with kind = "synthetic" or "url"',
    ),
    "source-kind": (
        TINY_LARGE,
        'kind = "synthetic"',
        'kind = "ftp"',
        "source.kind = 'ftp': expected one of synthetic, url",
    ),
    "source-kind-list": (
        TINY_LARGE,
        'kind = "synthetic"',
        'kind = ["synthetic"]',
        "source.kind = ['synthetic']: expected one of synthetic, url",
    ),
    "source-unknown-key": (
        TINY_LARGE,
        "seed = 8",
        "seed = 8\nsize = 5",
        "source.size is not a manifest key here: expected one of source.kind, source.seed,"
        " source.shape, source.train, source.test",
    ),
    "shape-string": (
        TINY_LARGE,
        "shape = [75, 100]",
        'shape = "big"',
        "source.shape = 'big': expected [height, width], two integers from 1 to 65535",
    ),
    "shape-zero": (
        TINY_LARGE,
        "shape = [75, 100]",
        "shape = [0, 100]",
        "source.shape = [0, 100]: expected [height, width], two integers from 1 to 65535",
    ),
    "seed-negative": (
        TINY_LARGE,
        "seed = 8",
        "seed = -1",
        "source.seed = -1: expected an integer >= 0",
    ),
    "train-zero": (
        TINY_LARGE,
        "train = 5",
        "train = 0",
        "source.train = 0: expected a positive integer (training images)",
    ),
    "one-image": (
        TINY_LARGE,
        "train = 5\ntest = 1",
        "train = 1\ntest = 0",
        "source.train = 1, source.test = 0: expected at least 2 images in all (the last one primes"
        " the decoders and is never timed)",
    ),
    "batches-string": (
        TINY_CIFAR,
        "batches = true",
        'batches = "yes"',
        "batches = 'yes': expected true or false",
    ),
    "cifar-train-not-5-batches": (
        TINY_CIFAR,
        "train = 100",
        "train = 101",
        "source.train = 101: expected a multiple of 5 (the cifar-python layout splits the training"
        " images into 5 equal batches)",
    ),
    "cifar-no-test": (
        TINY_CIFAR,
        "test = 20",
        "test = 0",
        "source.test = 0: expected at least 1 (the cifar-python layout has a test batch)",
    ),
    "cifar-shape": (
        TINY_CIFAR,
        "shape = [32, 32]",
        "shape = [64, 64]",
        "source.shape = [64, 64]: expected [32, 32] (the cifar-python layout holds 32x32 images)",
    ),
    "url-hash-short": (
        URL_CIFAR,
        'hash = "md5:c58f30108f718f92721af3b95e74349a"',
        'hash = "md5:xyz"',
        "source.hash = 'md5:xyz': expected \"alg:hex\" with alg md5, sha1 or sha256 and a hex"
        " digest of its length",
    ),
    "url-hash-missing": (
        URL_CIFAR,
        'hash = "md5:c58f30108f718f92721af3b95e74349a"\n',
        "",
        'source.hash is missing: a url source needs hash = "alg:hex" (md5, sha1 or sha256);'
        " refusing a remote file without one",
    ),
    "url-size-string": (
        URL_CIFAR,
        "size = 170498071",
        'size = "big"',
        "source.size = 'big': expected a positive integer (bytes)",
    ),
    "url-cifar-train-folder": (
        URL_CIFAR,
        'folder = "cifar-10-batches-py"',
        'folder = "cifar-10-batches-py"\ntrain = "train"',
        "source.train = 'train': expected no train folder (only the image-folder layout reads"
        " train and test folders)",
    ),
    "url-folder-escapes": (
        URL_FOLDER,
        'folder = "pics"',
        'folder = "../../userdir"',
        "source.folder = '../../userdir': expected a relative path inside the archive"
        " (no '..', no leading '/')",
    ),
    "url-train-escapes": (
        URL_FOLDER,
        'train = "train"',
        'train = "../x"',
        "source.train = '../x': expected a folder inside `folder` (relative, no '..')",
    ),
}

# names and archives that, unchecked, deleted another set, the data dir or a user's files
HOSTILE = {
    "name-downloads": (
        TINY_LARGE,
        'name = "tiny-large"',
        'name = "downloads"',
        f"name = 'downloads': {RESERVED}",
    ),
    "name-sources": (
        TINY_LARGE,
        'name = "tiny-large"',
        'name = "sources"',
        f"name = 'sources': {RESERVED}",
    ),
    "name-Downloads": (
        TINY_LARGE,
        'name = "tiny-large"',
        'name = "Downloads"',
        f"name = 'Downloads': {RESERVED}",
    ),
    "name-locks": (
        TINY_LARGE,
        'name = "tiny-large"',
        'name = ".locks"',
        f"name = '.locks': expected {NAME_RULE}",
    ),
    "name-empty": (
        TINY_LARGE,
        'name = "tiny-large"',
        'name = ""',
        f"name = '': expected {NAME_RULE}",
    ),
    "name-dotdot": (
        TINY_LARGE,
        'name = "tiny-large"',
        'name = ".."',
        f"name = '..': expected {NAME_RULE}",
    ),
    "name-parent": (
        TINY_LARGE,
        'name = "tiny-large"',
        'name = "../victim"',
        f"name = '../victim': expected {NAME_RULE}",
    ),
    "name-absolute": (
        TINY_LARGE,
        'name = "tiny-large"',
        'name = "/tmp/victim"',
        f"name = '/tmp/victim': expected {NAME_RULE}",
    ),
    "name-nested": (
        TINY_LARGE,
        'name = "tiny-large"',
        'name = "tiny-large/png"',
        f"name = 'tiny-large/png': expected {NAME_RULE}",
    ),
    "name-hidden": (
        TINY_LARGE,
        'name = "tiny-large"',
        'name = ".tiny-large.partial-1"',
        f"name = '.tiny-large.partial-1': expected {NAME_RULE}",
    ),
    "name-option": (
        TINY_LARGE,
        'name = "tiny-large"',
        'name = "-rf"',
        f"name = '-rf': expected {NAME_RULE}",
    ),
    "archive-parent": (
        URL_CIFAR,
        'archive = "cifar-10-python.tar.gz"',
        'archive = "../../userdir/good.tar.gz"',
        f"source.archive = '../../userdir/good.tar.gz': expected {ARCHIVE_RULE}",
    ),
    "archive-absolute": (
        URL_CIFAR,
        'archive = "cifar-10-python.tar.gz"',
        'archive = "/tmp/good.tar.gz"',
        f"source.archive = '/tmp/good.tar.gz': expected {ARCHIVE_RULE}",
    ),
    "archive-nested": (
        URL_CIFAR,
        'archive = "cifar-10-python.tar.gz"',
        'archive = "sub/good.tar.gz"',
        f"source.archive = 'sub/good.tar.gz': expected {ARCHIVE_RULE}",
    ),
    "archive-empty": (
        URL_CIFAR,
        'archive = "cifar-10-python.tar.gz"',
        'archive = ""',
        f"source.archive = '': expected {ARCHIVE_RULE}",
    ),
    "archive-dotdot": (
        URL_CIFAR,
        'archive = "cifar-10-python.tar.gz"',
        'archive = ".."',
        f"source.archive = '..': expected {ARCHIVE_RULE}",
    ),
    "archive-hidden": (
        URL_CIFAR,
        'archive = "cifar-10-python.tar.gz"',
        'archive = ".good.tar.gz.part-1"',
        f"source.archive = '.good.tar.gz.part-1': expected {ARCHIVE_RULE}",
    ),
    "archive-missing": (
        URL_CIFAR,
        'archive = "cifar-10-python.tar.gz"\n',
        "",
        f"source.archive is missing: a url source needs archive = <file name>, {ARCHIVE_RULE}",
    ),
}


def _write(tmp_path, base, old, new):
    assert old in base, old  # the case really changes the manifest
    path = tmp_path / "manifest.toml"
    path.write_text(base.replace(old, new))
    return path


def _run(capsys, *argv) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.fixture
def world(tmp_path, tiny_large):
    """A data dir holding another prepared set, another set's download, sources and lock, and
    beside it a user's files: what the hostile manifests of issue 10 deleted."""
    data = tmp_path / "data"
    shutil.copytree(tiny_large, data / "tiny-large")
    for rel, body in {
        "downloads/other.tar.gz": b"archive",
        "sources/other/cifar-10-batches-py/data_batch_1": b"batch",
        ".locks/other.lock": b"",
        "../userdir/tmp_notes.txt": b"notes",
        "../userdir/good.tar.gz": b"mine",
        "../victim/keep.txt": b"keep",
    }.items():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(body)
    return data


@pytest.mark.parametrize("case", WRONG)
def test_wrong_manifest_is_one_line_naming_file_key_value_and_expectation(case, tmp_path, capsys):
    path = _write(tmp_path, *WRONG[case][:3])
    code, err = _run(capsys, "data", "prepare", path, "--data-dir", tmp_path / "data", "-q")
    assert (code, err) == (2, f"imgload: error: {path}: {WRONG[case][3]}\n")
    assert not (tmp_path / "data").exists(), "refused before anything is written"


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_name_or_archive_is_refused_and_nothing_changes(case, world, capsys):
    before = snapshot(world.parent)
    path = _write(world.parent, *HOSTILE[case][:3])
    before["manifest.toml"] = path.read_bytes()
    for command in ("prepare", "verify", "info"):
        code, err = _run(capsys, "data", command, path, "--data-dir", world)
        assert (code, err) == (2, f"imgload: error: {path}: {HOSTILE[case][3]}\n"), command
    assert snapshot(world.parent) == before


def test_shipped_manifests_pass_the_validation():
    for path in sorted((REPO / "datasets").glob("*.toml")):
        assert datasets.manifest(path).name == path.stem


def test_unreadable_manifest_is_one_line(tmp_path, capsys):
    (tmp_path / "folder.toml").mkdir()
    (tmp_path / "latin1.toml").write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    for path, message in [
        (tmp_path / "folder.toml", "cannot read the manifest (Is a directory)"),
        (
            tmp_path / "latin1.toml",
            "not UTF-8 text (invalid continuation byte at byte 11), as TOML must be",
        ),
    ]:
        code, err = _run(capsys, "data", "prepare", path, "--data-dir", tmp_path / "data")
        assert (code, err) == (2, f"imgload: error: {path}: {message}\n")


# ---------------------------------------------------------------- remove_owned


@pytest.fixture
def owned(tmp_path):
    """data/ with set `own`'s folder and scratch siblings, another set's, and a folder outside."""
    data = tmp_path / "data"
    for rel in (
        "own/png/00000.png",
        ".own.partial-12/x",
        ".own.part-3",
        "other/keep",
        ".other.partial-4/keep",
        ".own.partial-x/keep",
        "../outside/keep",
    ):
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes(b"x")
    return data


@pytest.mark.parametrize(
    "rel", ["own", "own/png/00000.png", ".own.partial-12", ".own.part-3", "own/not-there"]
)
def test_remove_owned_deletes_what_the_operation_owns(owned, rel):
    outside = snapshot(owned.parent / "outside")
    datasets.remove_owned(owned / rel, owned, "own")
    assert not os.path.lexists(owned / rel)
    assert (owned / "other" / "keep").is_file() and snapshot(owned.parent / "outside") == outside


@pytest.mark.parametrize(
    "rel",
    [
        ".",
        "other",
        "other/keep",
        ".other.partial-4",
        ".own.partial-x",
        "own/../other",
        "own/..",
        "../outside",
        "../outside/keep",
        "downloads",
    ],
)
def test_remove_owned_refuses_anything_else(owned, rel):
    before = snapshot(owned.parent)
    with pytest.raises(
        datasets.DatasetError,
        match=r"^refusing to delete .*: it is neither .*/data/own nor one of its partial folders$",
    ):
        datasets.remove_owned(owned / rel, owned, "own")
    assert snapshot(owned.parent) == before


def test_remove_owned_never_follows_a_link(owned):
    """A scratch name that is a link to a folder outside: the link goes, the folder stays; and
    a path through a link that leads outside is refused."""
    (owned / ".own.partial-77").symlink_to(owned.parent / "outside")
    datasets.remove_owned(owned / ".own.partial-77", owned, "own")
    assert (
        not os.path.lexists(owned / ".own.partial-77")
        and (owned.parent / "outside" / "keep").is_file()
    )
    shutil.rmtree(owned / "own")
    (owned / "own").symlink_to(owned.parent / "outside")
    with pytest.raises(datasets.DatasetError, match="refusing to delete"):
        datasets.remove_owned(owned / "own" / "keep", owned, "own")
    datasets.remove_owned(owned / "own", owned, "own")
    assert not os.path.lexists(owned / "own") and (owned.parent / "outside" / "keep").is_file()
