"""Containers (imgload/containers.py): what prepare packs, what a call reads back, in which order,
from which cache state; what `data verify` says of a damaged one; what an interrupted prepare
leaves; and bench_containers under a real asv run."""

import itertools
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile

import numpy as np
import pytest

from imgload import cli, containers, datasets, decoders, pagecache, suite

from .helpers import REPO, TINY_LARGE, asv_quick_in_venv

SIZES = ["tiny", "tiny_large"]  # the conftest fixtures: 32x32 and 75x100 images
RANDOM_ACCESS = ("zip", "lmdb", "hdf5", "hdf5-decoded", "memmap")  # exact permutation


def _root(request, size) -> str:
    return str(request.getfixturevalue(size))


def _per_file(root: str) -> list[np.ndarray]:
    """What the per-file path returns for the same sample: cv2 over the jpeg/ files."""
    return suite.FileLoad(root, "jpeg", "cv2", "sequential", "warm")()


def _read(root, container, order, cache="warm") -> list[np.ndarray]:
    load = suite.ContainerLoad(root, container, order, cache)
    try:
        return load()
    finally:
        load.close()


def _which(images, reference) -> list[int]:
    """The position in `reference` of each image (the tiny sets' images are all distinct)."""
    return [next(i for i, r in enumerate(reference) if np.array_equal(r, a)) for a in images]


# ------------------------------------------------------------------ what a call returns


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("container", containers.CONTAINERS)
def test_sequential_returns_exactly_the_per_file_arrays_in_their_order(
    request, clean_env, size, container
):
    root = _root(request, size)
    expected = _per_file(root)
    got = _read(root, container, "sequential")
    assert len(got) == len(expected) == len(datasets.sample_files(root, "jpeg"))
    for a, b in zip(got, expected):
        assert a.dtype == np.uint8 and a.shape == b.shape and a.shape[2] == 3
        assert np.array_equal(a, b)


def _documented_permutation(container: str, n: int, group: int) -> list[int]:
    """The order ContainerLoad's docstring promises, computed here from its words: a
    random.Random(SEED) shuffle of the positions; for parquet the row groups shuffled, then the
    rows of each, with the same generator."""
    rng = random.Random(containers.SEED)
    if container == "parquet":
        groups = [list(range(s, min(s + group, n))) for s in range(0, n, group)]
        rng.shuffle(groups)
        for rows in groups:
            rng.shuffle(rows)
        return [p for rows in groups for p in rows]
    order = list(range(n))
    rng.shuffle(order)
    return order


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("container", (*RANDOM_ACCESS, "parquet"))
def test_shuffled_returns_the_per_file_arrays_in_the_seeded_permutation(
    request, clean_env, size, container
):
    root = _root(request, size)
    expected = _per_file(root)
    order = _documented_permutation(container, len(expected), containers.PARQUET_ROW_GROUP)
    assert sorted(order) == list(range(len(expected))) and order != sorted(order)
    got = _read(root, container, "shuffled")
    assert len(got) == len(expected)
    for a, p in zip(got, order):
        assert np.array_equal(a, expected[p])


def test_parquet_shuffled_reads_whole_row_groups_in_a_seeded_order(
    manifests, tmp_path, clean_env, monkeypatch
):
    """With several row groups (4 of 4 rows here; the tiny sets' 16 images fit in one group of
    100, where the block shuffle is just the permutation), each group is read once: its rows
    together, the groups in a seeded order, never the image-by-image permutation."""
    monkeypatch.setattr(containers, "PARQUET_ROW_GROUP", 4)
    root = str(datasets.prepare(manifests["small"], tmp_path))
    index = datasets.load_index(root)
    assert index["containers"]["packed"]["parquet"]["row_group_size"] == 4
    expected = _per_file(root)
    order = _documented_permutation("parquet", len(expected), 4)
    assert order != _documented_permutation("zip", len(expected), 4)
    got = _which(_read(root, "parquet", "shuffled"), expected)
    assert got == order
    blocks = [{p // 4 for p in got[i : i + 4]} for i in range(0, 16, 4)]
    assert all(len(b) == 1 for b in blocks), "each row group's rows are read together"
    assert [got[i] // 4 for i in range(0, 16, 4)] != [0, 1, 2, 3], "the groups are shuffled"


@pytest.mark.parametrize("size", SIZES)
def test_wds_shuffled_is_a_deterministic_permutation_of_the_sample(request, clean_env, size):
    """WebDataset's own shuffle (shards, then a buffer): not a permutation this test can compute,
    but every image of the sample once, the same order in every call, and not storage order."""
    root = _root(request, size)
    expected = _per_file(root)
    first = _which(_read(root, "wds", "shuffled"), expected)
    assert sorted(first) == list(range(len(expected)))
    # tiny-large's 4 images make 4 one-image shards, whose seeded order happens to be 0, 1, 2, 3
    # (one order in 24); tiny's 16 make 8 shards of 2, and storage order would be a bug
    assert (first != list(range(len(expected)))) == (size == "tiny")
    assert _which(_read(root, "wds", "shuffled"), expected) == first
    # and in one process, call after call (a fresh generator each epoch)
    load = suite.ContainerLoad(root, "wds", "shuffled", "warm")
    try:
        assert _which(load(), expected) == _which(load(), expected) == first
    finally:
        load.close()


def test_wds_shuffled_reads_the_shards_in_another_order(tiny, clean_env):
    """Shuffled wds begins with the shard order shuffled, as the docstring says: the shards are
    first reached in another order than they are stored in."""
    index = datasets.load_index(tiny)
    per_shard = index["containers"]["packed"]["wds"]["images_per_shard"]
    order = _which(_read(str(tiny), "wds", "shuffled"), _per_file(str(tiny)))
    shards_in_order_read = list(dict.fromkeys(p // per_shard for p in order))
    assert shards_in_order_read != sorted(shards_in_order_read)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("container", containers.CONTAINERS)
@pytest.mark.parametrize("cache", suite.CACHES)
def test_cold_and_warm_are_verified_before_the_call(request, clean_env, size, container, cache):
    root = _root(request, size)
    load = suite.ContainerLoad(root, container, "sequential", cache)
    try:
        files = load.container.files
        cached = sum(pagecache.resident_pages(f)[0] for f in files)
        total = sum(pagecache.resident_pages(f)[1] for f in files)
        if cache == "warm":
            assert cached == total > 0
        elif container == "lmdb":  # its two meta pages, mapped by its open, and no other
            assert cached == sum(containers.mapped_pages(f) for f in files) == 2 < total
        else:
            assert cached == 0 < total
        got = load()
    finally:
        load.close()
    assert all(np.array_equal(a, b) for a, b in zip(got, _per_file(root)))


def test_a_cold_container_that_stays_cached_is_an_error(tiny, clean_env, monkeypatch):
    """The check after the open is a check: eviction that leaves pages behind is refused."""
    pagecache.make_warm(containers.Container(str(tiny), datasets.load_index(tiny), "zip").files)
    monkeypatch.setattr(pagecache, "evict", lambda files: None)
    monkeypatch.setattr(pagecache, "make_cold", lambda files: None)
    with pytest.raises(pagecache.PageCacheError, match="of the zip container still cached"):
        suite.ContainerLoad(str(tiny), "zip", "sequential", "cold")


@pytest.mark.parametrize("container", containers.CONTAINERS)
@pytest.mark.parametrize("cache", suite.CACHES)
def test_open_opens_and_wds_reads_its_first_image(tiny, clean_env, container, cache):
    load = suite.ContainerOpen(str(tiny), container, cache)
    try:
        assert load.container.handle is None, "setup opens nothing: the call does"
        first = load()
        assert load.container.handle is not None
        if container == "wds":
            jpeg = datasets.sample_files(tiny, "jpeg")[0]
            with open(jpeg, "rb") as f:
                assert first["jpg"] == f.read()
        else:
            assert first is None
    finally:
        load.close()
    assert load.container.handle is None


@pytest.mark.parametrize("size", SIZES)
def test_images_per_call_is_what_a_call_reads_in_every_profile(
    request, clean_env, monkeypatch, size
):
    root = _root(request, size)
    default = len(datasets.sample_files(root, "jpeg"))
    assert suite.images_per_call(root, "containers") == default
    assert len(_read(root, "parquet", "shuffled")) == default
    assert suite.images_per_call(root, "open") == 1
    expected = _per_file(root)  # the default sample, read before the profile changes
    monkeypatch.setenv("IMGLOAD_PROFILE", "smoke")
    monkeypatch.setattr(datasets, "SMOKE_FILES", 3)
    assert suite.images_per_call(root, "containers") == 3
    for container in ("wds", "zip"):  # smoke: the first SMOKE_FILES of the container's order
        got = _read(root, container, "sequential")
        assert len(got) == 3 and all(np.array_equal(a, b) for a, b in zip(got, expected))
    monkeypatch.setenv("IMGLOAD_PROFILE", "full")
    with pytest.raises(NotImplementedError, match="default profile's sample"):
        suite.images_per_call(root, "containers")
    with pytest.raises(NotImplementedError, match="default profile's sample"):
        suite.ContainerLoad(root, "zip", "sequential", "warm")


def test_a_set_without_a_container_is_na_naming_it(tiny, clean_env):
    index = dict(datasets.load_index(tiny))
    index["containers"] = {**index["containers"], "packed": {}}
    with pytest.raises(decoders.Unavailable, match="has no lmdb container"):
        containers.Container(str(tiny), index, "lmdb")
    del index["containers"]
    with pytest.raises(decoders.Unavailable, match="has no lmdb container"):
        containers.Container(str(tiny), index, "lmdb")


# ------------------------------------------------------------------ what prepare writes


@pytest.mark.parametrize("size", SIZES)
def test_containers_hold_the_jpeg_files_bytes_and_labels_of_the_sample(request, size):
    root = _root(request, size)
    index = datasets.load_index(root)
    entry = index["containers"]
    indices = [int(i) for i in datasets.sample_indices(index, "default")]
    assert entry["indices"] == indices and entry["decoder"] == containers.DECODER
    blobs = []
    for path in datasets.file_paths(root, index, "jpeg", indices):
        with open(path, "rb") as f:
            blobs.append(f.read())
    keys = [f"{i:0{index['stem_width']}d}" for i in indices]
    labels = [index["labels"][i] for i in indices]
    folder = os.path.join(root, containers.FOLDER)

    members = []
    for shard in entry["packed"]["wds"]["files"]:
        with tarfile.open(os.path.join(root, shard)) as tar:
            members += [(m.name, tar.extractfile(m).read()) for m in tar]
    assert members == [
        m
        for k, b, y in zip(keys, blobs, labels)
        for m in ((f"{k}.jpg", b), (f"{k}.cls", b"%d" % y))
    ]
    per_shard = entry["packed"]["wds"]["images_per_shard"]
    assert per_shard == -(-len(keys) // containers.WDS_SHARDS)
    assert len(entry["packed"]["wds"]["files"]) == -(-len(keys) // per_shard)

    with zipfile.ZipFile(os.path.join(folder, "zip", containers.ZIP_FILE)) as zf:
        assert zf.namelist() == [f"{k}.jpg" for k in keys]
        assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
        assert [zf.read(f"{k}.jpg") for k in keys] == blobs

    import h5py
    import lmdb
    import pyarrow.parquet as pq

    env = lmdb.open(
        os.path.join(folder, "lmdb", containers.LMDB_FILE), subdir=False, readonly=True, lock=False
    )
    with env.begin() as txn:
        assert [(k.decode(), v) for k, v in txn.cursor()] == list(zip(keys, blobs))
    env.close()
    assert not os.path.exists(os.path.join(folder, "lmdb", containers.LMDB_FILE + "-lock"))

    with h5py.File(os.path.join(folder, "hdf5", containers.HDF5_FILE), "r") as f:
        assert [bytes(x) for x in f["jpeg"][:]] == blobs
        assert f["labels"][:].tolist() == labels
    expected = _decoded(blobs)
    with h5py.File(os.path.join(folder, "hdf5-decoded", containers.HDF5_FILE), "r") as f:
        assert f["images"].chunks == (1, *expected.shape[1:])
        assert np.array_equal(f["images"][:], expected)
        assert f["labels"][:].tolist() == labels
    assert np.array_equal(
        np.load(os.path.join(folder, "memmap", containers.MEMMAP_FILE)), expected
    )

    table = pq.read_table(os.path.join(folder, "parquet", containers.PARQUET_FILE))
    assert table.column("key").to_pylist() == keys
    assert table.column("jpeg").to_pylist() == blobs
    assert table.column("label").to_pylist() == labels
    meta = pq.ParquetFile(os.path.join(folder, "parquet", containers.PARQUET_FILE)).metadata
    assert meta.num_row_groups == -(-len(keys) // containers.PARQUET_ROW_GROUP)


def _decoded(blobs) -> np.ndarray:
    decode = decoders.get(containers.DECODER, "jpeg", "memory")
    return np.stack([decode(b) for b in blobs])


@pytest.mark.parametrize("size", SIZES)
def test_index_records_every_container_files_size_and_digest(request, size):
    root = _root(request, size)
    index = datasets.load_index(root)
    listed = containers.recorded(root, index)
    on_disk = sorted(
        os.path.join(dirpath, name)
        for dirpath, _, names in os.walk(os.path.join(root, containers.FOLDER))
        for name in names
    )
    assert sorted(p for p, _, _ in listed) == on_disk
    assert set(index["containers"]["packed"]) == set(containers.CONTAINERS)
    for path, size_, digest in listed:
        assert os.path.getsize(path) == size_ and containers.sha256(path) == digest
    for info in index["containers"]["packed"].values():
        assert info["total_bytes"] == sum(info["sizes"])


@pytest.mark.parametrize(
    "rel",
    ["containers/../png/x.png", "containers/zip/.hidden", "png/00000.png", "containers/zip"],
)
def test_an_index_naming_a_file_outside_a_container_is_refused(tiny_large, rel):
    index = json.loads((tiny_large / "index.json").read_text())
    info = index["containers"]["packed"]["zip"]
    info["files"] = [rel]
    with pytest.raises(ValueError, match="is not containers/zip/<file>"):
        containers.recorded(tiny_large, index)


def test_decoded_containers_refuse_images_of_several_sizes(tiny, tiny_large, tmp_path):
    jpegs = [datasets.sample_files(tiny, "jpeg")[0], datasets.sample_files(tiny_large, "jpeg")[0]]
    with pytest.raises(containers.ContainerError, match="2 sizes; leave them out"):
        containers.write(tmp_path, ["zip", "memmap"], [0, 1], jpegs, [0, 1], 5)
    made = containers.write(tmp_path / "ok", ["zip", "parquet"], [0, 1], jpegs, [0, 1], 5)
    assert set(made["packed"]) == {"zip", "parquet"}


# ------------------------------------------------------------------ the manifest key


@pytest.mark.parametrize(
    "line, message",
    [
        (
            'containers = ["zip", "tar"]',
            "containers = ['zip', 'tar']: expected a list of container",
        ),
        (
            'containers = ["zip", "zip"]',
            "containers = ['zip', 'zip']: expected each container once",
        ),
        ('containers = "zip"', "containers = 'zip': expected a list of container names from wds,"),
        ("containers = [1]", "containers = [1]: expected a list of container names"),
    ],
)
def test_manifest_containers_are_checked_in_one_line(tmp_path, line, message):
    path = tmp_path / "bad.toml"
    path.write_text(_with_containers(line))
    with pytest.raises(datasets.DatasetError) as e:
        datasets.manifest(path)
    assert str(e.value).startswith(f"{path}: {message}") and "\n" not in str(e.value)


def _with_containers(line: str) -> str:
    """TINY_LARGE with its containers line replaced by `line`."""
    [old] = [x for x in TINY_LARGE.splitlines() if x.startswith("containers = ")]
    return TINY_LARGE.replace(old, line)


def test_manifest_containers_need_the_jpeg_format(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(TINY_LARGE.replace('formats = ["png", "jpeg"]', 'formats = ["png"]'))
    with pytest.raises(datasets.DatasetError, match='formats must include "jpeg"'):
        datasets.manifest(path)
    path.write_text(_with_containers("containers = []"))
    assert datasets.manifest(path).containers == ()


def test_the_default_datasets_ask_for_every_container():
    for name in (datasets.SMALL_DEFAULT, datasets.LARGE_DEFAULT):
        assert datasets.manifest(name).containers == containers.CONTAINERS


# ------------------------------------------------------------------ data verify, data info


@pytest.fixture
def large_copy(tiny_large, tmp_path):
    shutil.copytree(tiny_large, tmp_path / "tiny-large")
    return tmp_path / "tiny-large"


def _verify(capsys, manifest, data_dir) -> tuple[int, str, str]:
    code = cli.main(["data", "verify", str(manifest), "--data-dir", str(data_dir)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("container", containers.CONTAINERS)
@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
def test_verify_names_a_damaged_container_in_one_line(
    manifests, large_copy, capsys, container, damage
):
    index = datasets.load_index(large_copy)
    victim = large_copy / index["containers"]["packed"][container]["files"][-1]
    good = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(good[: len(good) // 2])
    else:  # same size, one byte changed in the middle: only the digest can tell
        middle = len(good) // 2
        victim.write_bytes(good[:middle] + bytes([good[middle] ^ 0xFF]) + good[middle + 1 :])
    code, out, err = _verify(capsys, manifests["large"], large_copy.parent)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith(f"imgload: error: {victim}: content differs from what was prepared")
    assert "python -m imgload data prepare tiny-large" in err
    m = datasets.manifest(manifests["large"])
    # a truncated container is caught before reuse, and prepare rebuilds the set
    assert datasets.is_complete(large_copy, m) == (damage == "corrupt")
    if damage == "truncate":
        datasets.prepare(manifests["large"], large_copy.parent)
        assert victim.read_bytes() == good
        assert _verify(capsys, manifests["large"], large_copy.parent)[0] == 0


def test_verify_names_a_stray_file_beside_a_container(manifests, large_copy, capsys):
    stray = large_copy / "containers" / "lmdb" / (containers.LMDB_FILE + "-lock")
    stray.write_bytes(b"")
    code, out, err = _verify(capsys, manifests["large"], large_copy.parent)
    assert (code, err) == (
        1,
        f"imgload: error: {stray}: stray file, not part of the prepared set (delete it)\n",
    )


def test_verify_and_info_report_the_containers(manifests, large_copy, capsys):
    code, out, err = _verify(capsys, manifests["large"], large_copy.parent)
    assert (code, err) == (0, "")
    assert out == "tiny-large: ok, 12 files match SHA256SUMS, 7 containers match index.json\n"
    assert (
        cli.main(["data", "info", str(manifests["large"]), "--data-dir", str(large_copy.parent)])
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    packed = datasets.load_index(large_copy)["containers"]["packed"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[-len(packed) :]}
    assert rows["memmap"] == [f"{packed['memmap']['total_bytes'] / 4:.1f}", "0.1"]
    assert set(rows) == set(containers.CONTAINERS)


# ------------------------------------------------------------------ interrupted prepares


def test_a_prepare_that_fails_mid_container_leaves_nothing_used(manifests, tmp_path, monkeypatch):
    real = containers.WRITERS["parquet"]

    def half_written(folder, *args):
        (folder / containers.PARQUET_FILE).write_bytes(b"PAR1 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setitem(containers.WRITERS, "parquet", half_written)
    with pytest.raises(OSError, match="No space left"):
        datasets.prepare(manifests["large"], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".locks"], "no set, no partial folder"
    monkeypatch.setitem(containers.WRITERS, "parquet", real)
    path = datasets.prepare(manifests["large"], tmp_path)
    assert datasets.first_problem(path) is None
    assert (path / datasets.MARKER).stat().st_mtime_ns >= max(
        os.stat(p).st_mtime_ns for p, _, _ in containers.recorded(path, datasets.load_index(path))
    ), "COMPLETE is written after every container"


# A prepare that is killed while it writes containers: a writer that stops for good after its
# file is half written, in a process of its own, killed then.
HANGING_PREPARE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from imgload import containers, datasets

    def hang(folder, *args):
        (Path(folder) / containers.MEMMAP_FILE).write_bytes(b"half")
        (Path(sys.argv[3]) / "hanging").write_text("")
        time.sleep(600)

    containers.WRITERS["memmap"] = hang
    datasets.prepare(sys.argv[1], sys.argv[2])
    """
)


def test_a_prepare_killed_mid_container_exposes_nothing_and_is_rebuilt(manifests, tmp_path):
    data, flags = tmp_path / "data", tmp_path / "flags"
    flags.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", HANGING_PREPARE, str(manifests["large"]), str(data), str(flags)],
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 120
        while not (flags / "hanging").exists() and time.monotonic() < deadline:
            assert proc.poll() is None, "the prepare ended before it reached the containers"
            time.sleep(0.02)
        assert (flags / "hanging").exists()
        partial = list(data.glob(".tiny-large.partial-*/containers/memmap/*"))
        assert partial, "killed while the memmap container was half written"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (data / "tiny-large").exists(), "an interrupted prepare must not expose the set"
    path = datasets.prepare(manifests["large"], data)
    assert not list(data.glob(".tiny-large.partial-*")), "the killed prepare's folder is gone"
    assert datasets.first_problem(path) is None
    assert (path / "containers" / "memmap" / containers.MEMMAP_FILE).stat().st_size > 1000


# ------------------------------------------------------------------ under asv


@pytest.mark.asv
def test_asv_runs_every_container_benchmark(tmp_path, manifests):
    """One real `asv run --quick` of bench_containers (and bench_sample's counts) in .venv's own
    environment (no environment to build), default profile, on the tiny datasets."""
    rows = asv_quick_in_venv(
        tmp_path, manifests, "imgload-containers", r"^bench_containers\.|^bench_sample\."
    )
    sizes = {
        "bench_containers.SmallContainers.time_read": 7 * 2 * 2,
        "bench_containers.LargeContainers.time_read": 7 * 1 * 2,
        "bench_containers.ContainerOpen.time_open": 7 * 2,
    }
    for name, count in sizes.items():
        row = rows[name]
        assert len(list(itertools.product(*row["params"]))) == len(row["result"]) == count
        for combo, value in zip(itertools.product(*row["params"]), row["result"]):
            assert value is not None and not math.isnan(value) and value > 0, (name, combo)
    counts = rows["bench_sample.Sample.track_images_per_call"]
    counts = dict(zip(counts["params"][0], counts["result"]))
    assert (counts["'SmallContainers'"], counts["'LargeContainers'"]) == (16, 4)
    assert counts["'ContainerOpen'"] == 1


def test_wds_members_carry_no_time_stamp(tiny, tmp_path, manifests):
    """Plain files, read-only as webdataset's TarWriter makes them, with mtime 0: two prepares
    write the same shards."""
    index = datasets.load_index(tiny)
    shard = tiny / index["containers"]["packed"]["wds"]["files"][0]
    with tarfile.open(shard) as tar:
        assert {(m.mtime, m.mode, m.isfile()) for m in tar} == {(0, 0o444, True)}
    again = datasets.load_index(datasets.prepare(manifests["small"], tmp_path))
    for name in ("wds", "zip", "memmap"):
        assert again["containers"]["packed"][name] == index["containers"]["packed"][name]
