"""Packed datasets: one prepared set's JPEGs in the containers pipelines pack them in, written
once by prepare and read back the way each container's users read it.

    wds           WebDataset tar shards: <key>.jpg + <key>.cls per image, WDS_SHARDS shards
    zip           one zip, stored (ZIP_STORED: JPEG bytes do not deflate), read with zipfile
    lmdb          key -> JPEG bytes (the `lmdb` package), one file (subdir=False)
    hdf5          the JPEG bytes as a variable-length uint8 dataset (h5py)
    hdf5-decoded  the decoded (N, H, W, 3) uint8 array, chunked by image (h5py)
    parquet       a binary column of JPEG bytes plus the label, PARQUET_ROW_GROUP rows per row
                  group (pyarrow)
    memmap        the decoded (N, H, W, 3) uint8 array as one .npy, read with
                  np.load(mmap_mode="r")

What goes in: the images of the default profile's sample (datasets.sample_indices(index,
"default")), in that order, with the bytes of the set's own jpeg/ files, so a container and
the per-file benchmarks read the same images, and the same bytes, in the same order. Only the
sample: a call reads a whole container, the way a loader reads its dataset, and a tar shard
holding all 50,000 images would make a call read 50 times the images the per-file call reads
(index.json's "containers" names the indices). The decoded containers hold DECODER's decode of
those bytes, which is what the per-file path returns for them. Labels go where the layout has a
place for them (wds' .cls, the parquet label column, an hdf5 `labels` dataset); zip, lmdb and
memmap hold images only, as the jpeg/ folder does, and index.json has the labels.

Writing runs inside datasets.prepare, in the set's partial folder under its lock, before
COMPLETE: a prepare that fails or is killed mid-write leaves no container anyone reads. The
files are written to be the same bytes on every prepare where the library allows (tar and zip
members carry no time stamp), and each file's size and sha256 go into index.json, which
datasets checks (size before reuse, digest in `data verify`).

Reading: Container(...).open() does what a loader's worker does once (open the file, read its
index); read(positions) reads and decodes images in the order given; set_cache() makes the files
cold or warm, verified. The tar shards are read with webdataset itself (its DataPipeline, tar
expansion, key grouping and shuffle), as its users read them: its Python per-sample work (tar
headers parsed by tarfile, samples grouped by key) is part of what a wds call costs, and it runs
in every stack (0.2.79, 0.2.111 and 1.0.2 give the same order for the same seed). A
container's library is imported only when a Container is built, and one missing from an
environment raises decoders.Unavailable: asv shows n/a with the reason.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import itertools
import mmap
import os
import random
import tarfile
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import decoders, pagecache
from .errors import UserError

CONTAINERS = ("wds", "zip", "lmdb", "hdf5", "hdf5-decoded", "parquet", "memmap")
DECODED = ("hdf5-decoded", "memmap")  # hold pixels: read, never decoded, in a call
ORDERS = ("sequential", "shuffled")
FOLDER = "containers"  # <set>/containers/<name>/<files>
# One decoder for every encoded container, in every stack: OpenCV (cv2.imdecode + cvtColor to
# RGB) is pinned in every stack, bit-identical to the per-file cv2 path (cv2.imread) on the same
# bytes, and among the fastest JPEG decoders there (README); the decoded containers hold its
# decode.
DECODER = "cv2"
SEED = 20261125  # the shuffled order: random.Random(SEED), the same in every stack and call
# A 50,000-image set in WebDataset's usual shards of a few thousand images has ten or more of
# them: the sample is cut into ten (shards of 100 small or 4 large images), so that shuffling the
# shard order and a buffer means here what it means there. The buffer holds one shard's worth of
# samples, as webdataset's ImageNet examples do (shards of ~1,000 images, .shuffle(1000));
# webdataset's own `initial` (100) is kept.
WDS_SHARDS = 10
# Hugging Face `datasets` writes image datasets to Parquet in row groups of 100 rows
# (config.PARQUET_ROW_GROUP_SIZE_FOR_IMAGE_DATASETS): the layout its users read.
PARQUET_ROW_GROUP = 100
LMDB_FILE, HDF5_FILE, ZIP_FILE, PARQUET_FILE, MEMMAP_FILE = (
    "images.lmdb",
    "images.h5",
    "images.zip",
    "images.parquet",
    "images.npy",
)
LMDB_META_PAGES = 2  # LMDB's two meta pages, first in its file: what its open reads and maps
EVICTIONS = 3  # tries at a verified eviction (readahead still in flight keeps pages a moment)


class ContainerError(UserError):
    """A one-line reason a container cannot be written (datasets names the set in front)."""


def _require(module: str, container: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise decoders.Unavailable(
            f"the {container} container needs {module}, not installed in this environment ({e})"
        ) from None


# ---------------------------------------------------------------- writing


def write(
    root: Path,
    names: Sequence[str],
    indices: Sequence[int],
    jpegs: Sequence[str],
    labels: Sequence[int],
    width: int,
) -> dict:
    """Write containers `names` under root/containers/ from the JPEG files `jpegs` (of the images
    `indices`, in that order, with their `labels`; `width` is the set's stem width, which names
    keys as it names files); return index.json's "containers" entry."""
    data = []
    for path in jpegs:
        with open(path, "rb") as f:
            data.append(f.read())
    keys = [f"{int(i):0{width}d}" for i in indices]
    labels = [int(x) for x in labels]
    decoded = _decode_all(data) if any(n in DECODED for n in names) else None
    packed = {}
    for name in names:
        folder = Path(root) / FOLDER / name
        folder.mkdir(parents=True)
        try:
            made, extra = WRITERS[name](folder, keys, data, labels, decoded)
        except decoders.Unavailable as e:
            raise ContainerError(f"cannot write the {name} container: {e}") from None
        packed[name] = {**_describe(root, made), **extra}
    return {
        "images": "the default profile's sample (indices), in that order, with the jpeg/ files'"
        " bytes; decoded containers hold the decoder's decode of them",
        "indices": [int(i) for i in indices],
        "decoder": DECODER,
        "packed": packed,
    }


def _decode_all(data: list[bytes]) -> np.ndarray:
    decode = decoders.get(DECODER, "jpeg", "memory")
    images = [decode(d) for d in data]
    shapes = {a.shape for a in images}
    if len(shapes) != 1:
        raise ContainerError(
            f"hdf5-decoded and memmap hold one (N, H, W, 3) array, but the sample's images have"
            f" {len(shapes)} sizes; leave them out of the manifest's containers"
        )
    return np.stack(images)


def _describe(root: Path, paths: list[Path]) -> dict:
    """Each file's path (from the set's root), size and sha256, as index.json records them."""
    sizes = [p.stat().st_size for p in paths]
    return {
        "files": [str(p.relative_to(root)) for p in paths],
        "sizes": sizes,
        "sha256": [sha256(str(p)) for p in paths],
        "total_bytes": sum(sizes),
    }


def _write_wds(folder, keys, data, labels, decoded):
    """tarfile, not webdataset's TarWriter: TarWriter writes these same members through tarfile
    (name, size, mode 0o444) but stamps each with the current time, so two prepares would write
    different bytes; with mtime 0 the shards are reproducible, and prepare needs no webdataset."""
    per_shard = -(-len(keys) // WDS_SHARDS)
    paths = []
    for shard, start in enumerate(range(0, len(keys), per_shard)):
        path = folder / f"shard-{shard:06d}.tar"
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            for key, blob, label in zip(
                keys[start : start + per_shard],
                data[start : start + per_shard],
                labels[start : start + per_shard],
            ):
                _add_member(tar, f"{key}.jpg", blob)
                _add_member(tar, f"{key}.cls", str(label).encode("ascii"))
        paths.append(path)
    return paths, {"images_per_shard": per_shard}


def _add_member(tar: tarfile.TarFile, name: str, blob: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(blob), 0o444, 0
    tar.addfile(info, io.BytesIO(blob))


def _write_zip(folder, keys, data, labels, decoded):
    path = folder / ZIP_FILE
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for key, blob in zip(keys, data):
            info = zipfile.ZipInfo(f"{key}.jpg", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, blob, compress_type=zipfile.ZIP_STORED)
    return [path], {}


def _write_lmdb(folder, keys, data, labels, decoded):
    lmdb = _require("lmdb", "lmdb")
    path = folder / LMDB_FILE
    # the map must hold every page; LMDB writes only the pages it uses to the file
    env = lmdb.open(str(path), subdir=False, map_size=2 * sum(map(len, data)) + (64 << 20))
    try:
        with env.begin(write=True) as txn:
            for key, blob in zip(keys, data):  # keys ascending: append builds a packed B-tree
                txn.put(key.encode("ascii"), blob, append=True)
        env.sync(True)
    finally:
        env.close()
    # the lock file belongs to a writer's session, not to the data: readers open with lock=False
    Path(f"{path}-lock").unlink(missing_ok=True)
    return [path], {}


def _write_hdf5(folder, keys, data, labels, decoded):
    h5py = _require("h5py", "hdf5")
    path = folder / HDF5_FILE
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("jpeg", (len(data),), dtype=h5py.vlen_dtype(np.uint8))
        for i, blob in enumerate(data):
            ds[i] = np.frombuffer(blob, np.uint8)
        f.create_dataset("labels", data=np.asarray(labels, np.int64))
    return [path], {}


def _write_hdf5_decoded(folder, keys, data, labels, decoded):
    h5py = _require("h5py", "hdf5-decoded")
    path = folder / HDF5_FILE
    with h5py.File(path, "w") as f:
        # one chunk per image, uncompressed: a read of image i touches exactly its own bytes
        f.create_dataset("images", data=decoded, chunks=(1, *decoded.shape[1:]))
        f.create_dataset("labels", data=np.asarray(labels, np.int64))
    return [path], {}


def _write_parquet(folder, keys, data, labels, decoded):
    pa = _require("pyarrow", "parquet")
    pq = _require("pyarrow.parquet", "parquet")
    path = folder / PARQUET_FILE
    table = pa.table(
        {
            "key": pa.array(keys, pa.string()),
            "jpeg": pa.array(data, pa.binary()),
            "label": pa.array(labels, pa.int64()),
        }
    )
    # uncompressed, as zip is stored: JPEG bytes do not compress, and a codec would only add
    # its own pass over them to every read; format 2.6 and data page v1, which every pyarrow
    # in the stacks reads; no min/max statistics, which mean nothing for JPEG bytes
    pq.write_table(
        table,
        path,
        row_group_size=PARQUET_ROW_GROUP,
        compression="none",
        version="2.6",
        data_page_version="1.0",
        write_statistics=False,
    )
    return [path], {"row_group_size": PARQUET_ROW_GROUP}


def _write_memmap(folder, keys, data, labels, decoded):
    path = folder / MEMMAP_FILE
    np.save(path, decoded, allow_pickle=False)
    return [path], {}


WRITERS: dict[str, Callable] = {
    "wds": _write_wds,
    "zip": _write_zip,
    "lmdb": _write_lmdb,
    "hdf5": _write_hdf5,
    "hdf5-decoded": _write_hdf5_decoded,
    "parquet": _write_parquet,
    "memmap": _write_memmap,
}


# ---------------------------------------------------------------- what index.json records


def recorded(root: Path, index: dict) -> list[tuple[str, int, str]]:
    """(path, size, sha256) of every container file index.json lists. A name or path that is
    not one prepare writes is a ValueError (index.json damaged), so that no path read from it
    leads outside the set's containers/ folder."""
    entry = index.get("containers")
    if entry is None:
        return []
    out = []
    for name, info in entry["packed"].items():
        if name not in CONTAINERS:
            raise ValueError(f"unknown container {name!r}")
        paths, sizes, digests = info["files"], info["sizes"], info["sha256"]
        if not (len(paths) == len(sizes) == len(digests)) or not paths:
            raise ValueError(f"container {name}: {len(paths)} files, {len(sizes)} sizes")
        for rel, size, digest in zip(paths, sizes, digests):
            parts = Path(rel).parts
            if len(parts) != 3 or parts[:2] != (FOLDER, name) or parts[2].startswith("."):
                raise ValueError(f"container {name}: file {rel!r} is not {FOLDER}/{name}/<file>")
            out.append((os.path.join(root, rel), int(size), str(digest)))
    return out


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------- reading


def positions(entry: dict, name: str, order: str, count: int) -> list[int]:
    """The first `count` storage positions a call reads, in `order`.

    sequential: storage order, which is the sample's order. shuffled: a permutation of all
    positions, fixed by SEED: exact for the containers read image by image (zip, lmdb, hdf5,
    hdf5-decoded, memmap); for parquet, whose smallest read is a row group, the row groups in a
    seeded random order and the rows of each in a seeded random order, each group read once, as
    a shuffling Parquet loader reads (reading the group of every image anew would read each
    group a hundred times). For wds the order is webdataset's own (_open_wds)."""
    n = len(entry["indices"])
    if order == "sequential":
        return list(range(n))[:count]
    if order != "shuffled":
        raise ValueError(f"unknown order {order!r}; expected one of {', '.join(ORDERS)}")
    rng = random.Random(SEED)
    if name == "parquet":
        size = entry["packed"][name]["row_group_size"]
        groups = [list(range(s, min(s + size, n))) for s in range(0, n, size)]
        rng.shuffle(groups)
        for rows in groups:
            rng.shuffle(rows)
        return [p for rows in groups for p in rows][:count]
    out = list(range(n))
    rng.shuffle(out)
    return out[:count]


class Container:
    """One container of a prepared set: open() once, then read() any number of times, close().

    `files` are its files, what the page cache is made cold or warm for. Building one imports its
    library (decoders.Unavailable, asv's n/a, where it is missing) and touches no file."""

    def __init__(self, root: str, index: dict, name: str):
        if name not in KINDS:
            raise ValueError(f"unknown container {name!r}; known: {', '.join(CONTAINERS)}")
        entry = index.get("containers")
        if entry is None or name not in entry["packed"]:
            has = ", ".join(entry["packed"]) if entry else "none"
            raise decoders.Unavailable(
                f"dataset {index['name']} has no {name} container (it has: {has}); add it to"
                " its manifest's containers and run: python -m imgload data prepare"
            )
        self.name, self.entry, self.info = name, entry, entry["packed"][name]
        self.files = [os.path.join(root, rel) for rel in self.info["files"]]
        self.keys = [f"{i:0{index['stem_width']}d}" for i in entry["indices"]]
        self.kind = KINDS[name]
        self.lib = _require(*self.kind.library) if self.kind.library else None
        self.decode = decoders.get(DECODER, "jpeg", "memory")
        self.handle = None

    def open(self) -> None:
        """What a loader's worker does once: open the file, read the container's own index (a
        zip's central directory, a parquet footer, HDF5's superblock and dataset header, LMDB's
        meta pages); for wds, build the pipelines, which open shards only as they read them."""
        self.handle = self.kind.open(self)

    def first(self):
        """After open(): for wds, the first shard's first sample, read (not decoded): opening a
        tar stream is reading it. Nothing for the others, whose open is all there is."""
        if self.name == "wds":
            self.handle["first"] = iter(self.handle["plain"])
            return next(self.handle["first"])
        return None

    def read(self, positions: Sequence[int], order: str = "sequential") -> list[np.ndarray]:
        """The images at storage `positions`, RGB uint8, in that order. wds reads as webdataset
        does, in its own `order`, as many images as `positions` has."""
        return self.kind.read(self, positions, order)

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None and self.kind.close is not None:
            self.kind.close(handle)


class _Kind(NamedTuple):
    library: tuple[str, str] | None  # (module, container) imported when a Container is built
    open: Callable[[Container], object]
    read: Callable[[Container, Sequence[int], str], list]
    close: Callable[[object], None] | None  # None: references only (a memmap unmaps when its
    # last one goes, and reads hand out copies, never views)


def _open_wds(c: Container) -> dict:
    wds, shards = c.lib, list(c.files)

    def seeded(size: int):
        # a fresh random.Random(SEED) each time the pipeline is iterated: every call, one order
        return lambda src: wds.shuffle(size, rng=random.Random(SEED))(src)

    # the stages WebDataset(urls, shardshuffle=...).shuffle(n) chains, from webdataset's own
    # pieces (DataPipeline, shuffle(rng=...)), whose signatures every release in the stacks
    # shares; WebDataset's own arguments for seeds changed between them
    tail = [wds.to_tuple("jpg", "cls"), wds.map_tuple(c.decode, int)]
    return {
        "plain": wds.DataPipeline(wds.SimpleShardList(shards), wds.tarfile_to_samples()),
        "sequential": wds.DataPipeline(
            wds.SimpleShardList(shards), wds.tarfile_to_samples(), *tail
        ),
        # the shard list shuffled with a buffer as long as the list (a uniform shard order),
        # then the samples through a buffer of one shard's worth
        "shuffled": wds.DataPipeline(
            wds.SimpleShardList(shards),
            seeded(len(shards)),
            wds.tarfile_to_samples(),
            seeded(c.info["images_per_shard"]),
            *tail,
        ),
    }


def _read_wds(c: Container, positions, order):
    return [image for image, _ in itertools.islice(c.handle[order], len(positions))]


def _close_wds(handle: dict) -> None:
    first = handle.get("first")
    if first is not None:
        first.close()  # the generators' finally blocks close the shard first() left open


def _read_zip(c: Container, positions, order):
    read, decode, keys = c.handle.read, c.decode, c.keys
    return [decode(read(f"{keys[p]}.jpg")) for p in positions]


def _open_lmdb(c: Container):
    # as PyTorch LMDB datasets open theirs: read-only, no lock file, no readahead (a random
    # read should not pull its neighbours in), no zeroing of buffers
    env = c.lib.open(
        c.files[0], subdir=False, readonly=True, lock=False, readahead=False, meminit=False
    )
    return env, env.begin(buffers=False)


def _read_lmdb(c: Container, positions, order):
    get, decode, keys = c.handle[1].get, c.decode, c.keys
    return [decode(get(keys[p].encode("ascii"))) for p in positions]


def _open_hdf5(c: Container):
    f = c.lib.File(c.files[0], "r")
    return f, f["images" if c.name == "hdf5-decoded" else "jpeg"]


def _read_hdf5(c: Container, positions, order):
    ds, decode = c.handle[1], c.decode
    return [decode(ds[p]) for p in positions]  # ds[p]: the bytes as a uint8 array


def _read_hdf5_decoded(c: Container, positions, order):
    ds = c.handle[1]
    return [ds[p] for p in positions]  # a new array per image, read from its own chunk


def _read_parquet(c: Container, positions, order):
    """Row group by row group: a group is read when the first of its rows is asked for, and
    positions() keeps each group's rows together, so each is read once. One thread, as every
    container here is read: pyarrow's column-parallel reading is off."""
    pf, decode, size = c.handle, c.decode, c.info["row_group_size"]
    out, group, blobs = [], None, None
    for p in positions:
        if p // size != group:
            group = p // size
            table = pf.read_row_group(group, columns=["jpeg"], use_threads=False)
            blobs = table.column(0).to_pylist()
        out.append(decode(blobs[p - group * size]))
    return out


def _read_memmap(c: Container, positions, order):
    # copied out of the mapping: a view would leave the read to whoever touches it first,
    # after the timing
    mm = c.handle
    return [np.array(mm[p]) for p in positions]


KINDS: dict[str, _Kind] = {
    "wds": _Kind(("webdataset", "wds"), _open_wds, _read_wds, _close_wds),
    "zip": _Kind(None, lambda c: zipfile.ZipFile(c.files[0]), _read_zip, lambda h: h.close()),
    "lmdb": _Kind(("lmdb", "lmdb"), _open_lmdb, _read_lmdb, lambda h: h[0].close()),
    "hdf5": _Kind(("h5py", "hdf5"), _open_hdf5, _read_hdf5, lambda h: h[0].close()),
    "hdf5-decoded": _Kind(
        ("h5py", "hdf5-decoded"), _open_hdf5, _read_hdf5_decoded, lambda h: h[0].close()
    ),
    "parquet": _Kind(
        ("pyarrow.parquet", "parquet"),
        lambda c: c.lib.ParquetFile(c.files[0]),  # reads the footer: schema, row groups
        _read_parquet,
        lambda h: h.close(),
    ),
    # reads the .npy header, then maps the file: no pixel is read
    "memmap": _Kind(None, lambda c: np.load(c.files[0], mmap_mode="r"), _read_memmap, None),
}


# ---------------------------------------------------------------- page cache


def set_cache(cache: str, c: Container, opened: bool) -> None:
    """Make `c`'s files cold or warm, verified, then open it if `opened` (closed on entry).

    warm: opened, then every page read and verified 100% cached (pagecache.make_warm). cold:
    evicted and verified 0% cached while nothing of it is open or mapped, as FileLoad's files
    are; then opened, and evicted again, so that what the open read (a zip's central directory,
    a parquet footer) is not cached either, verified: no page cached but those this process has
    mapped, which no eviction can drop. Only LMDB maps any at open: its two meta pages, which
    are read first with readahead off, so that its open reads and maps them alone (left to
    itself, its open reads 80 KB ahead and maps up to 64 KB of that, the first images with it)."""
    if cache == "warm":
        if opened:
            c.open()
        pagecache.make_warm(c.files)
    elif cache == "cold":
        _evict(c, "before its open")
        if opened:
            if c.name == "lmdb":
                _read_alone(c.files[0], range(LMDB_META_PAGES))
            c.open()
            _evict(c, "after its open")
    else:
        raise ValueError(f"unknown cache state {cache!r}; expected warm or cold")


def _evict(c: Container, when: str) -> None:
    """Evict c's files until no page is cached but those this process maps; PageCacheError after
    EVICTIONS tries (pages still being read in by readahead are not dropped until they are in)."""
    for attempt in range(EVICTIONS):
        pagecache.evict(c.files)
        cached = sum(pagecache.resident_pages(f)[0] for f in c.files)
        mapped = sum(mapped_pages(f) for f in c.files)
        if cached <= mapped:
            return
        time.sleep(0.01 * (attempt + 1))
    raise pagecache.PageCacheError(
        f"cold cache not reached: {cached} pages of the {c.name} container still cached after"
        f" eviction {when} ({mapped} mapped by this process; first file: {c.files[0]})"
    )


def _read_alone(path: str, pages) -> None:
    """Bring `pages` of `path` into the page cache, and no others (readahead off on this read)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        for page in pages:
            os.pread(fd, mmap.PAGESIZE, page * mmap.PAGESIZE)
    finally:
        os.close(fd)


def mapped_pages(path: str) -> int:
    """Pages of `path` this process has mapped and present, from its own page table
    (/proc/self/maps, then the present bit of /proc/self/pagemap, which needs no privilege)."""
    real, spans = os.path.realpath(path), []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].rstrip("\n") == real:
                start, end = (int(x, 16) for x in fields[0].split("-"))
                spans.append((start, end))
    present = 0
    if spans:
        with open("/proc/self/pagemap", "rb") as pagemap:
            for start, end in spans:
                pagemap.seek(start // mmap.PAGESIZE * 8)
                entries = np.frombuffer(
                    pagemap.read((end - start) // mmap.PAGESIZE * 8), dtype=np.uint64
                )
                present += int(np.count_nonzero(entries >> np.uint64(63)))
    return present
