"""What the asv benchmark classes share: which dataset, which files, what cache state.

Everything here runs in setup_cache/setup, never inside a timed call: a timed call is
only Runner.run(files) (or one batch load), the work a user's loader does.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from . import cifar, containers, datasets, decoders, pagecache
from .execution import Runner

CACHES = ("warm", "cold")

# Samples of every timed benchmark: ROUNDS rounds of REPEAT calls, 8 in all. asv runs the
# rounds interleaved across the stacks (stack A B C, then A B C again), so a machine that
# gets busier during `make bench` cannot fake a difference between stacks; and 8 + 8 raw
# samples (--record-samples) let asv's rank test reach p < 0.002, which 3 + 3 (or 6 + 6)
# never can. `imgload report` marks a difference only where that test and the ratio agree.
REPEAT = 4
ROUNDS = 2

# benchmark class -> (dataset role, what one timed call loads): bench_sample records the
# resulting counts with every run, so per-image figures never rely on a number copied by hand
LOADS = {
    "SmallImages": ("small", "sample"),
    "LargeImages": ("large", "sample"),
    "ArrayFiles": ("small", "sample"),
    "Overhead": ("small", "sample"),
    "CifarBatch": ("small", "batch"),
    "SmallCodecs": ("small", "codecs"),
    "LargeCodecs": ("large", "codecs"),
    "ThreadPatterns": ("small", "sample"),
    "PickleThreadPatterns": ("small", "sample"),
    "ProcessTransfer": ("large", "sample"),
    "SmallContainers": ("small", "containers"),
    "LargeContainers": ("large", "containers"),
    "ContainerOpen": ("small", "open"),
    "SmallDataLoader": ("small", "epoch"),  # bench_dataloader's epochs (the opt-in torch stack)
    "LargeDataLoader": ("large", "epoch"),
    # a fresh DataLoader's first batch: timed per call (per batch), its batch's images named
    "SmallFirstBatch": ("small", "first-batch"),
    "LargeFirstBatch": ("large", "first-batch"),
    # bench_formats: the whole sample of its own sets per call
    "JpegVariants": ("formats", "sample"),
    "NewFormats": ("formats", "sample"),
    "MediumCodecs": ("medium", "sample"),
    "CameraCodecs": ("camera", "sample"),
}

# bench_codecs times every image decoder from a file and from memory, some seventy
# combinations per stack: each of its calls loads every CODECS_STRIDE-th file of the profile's
# sample, which keeps the class near a minute per stack (make bench's budget) and its calls
# still long enough (milliseconds) to time. bench_sample records the resulting count.
CODECS_STRIDE = 4


# dataset role -> (the variable that names another dataset for it, the offline default). The
# small and large sets carry the whole grid; the other three only bench_formats' classes: every
# format at the large size, and two more sizes (1024 px, a 12 MP photo), generated, so that a
# size or a format is one class's question and does not multiply the grid.
ROLES = {
    "small": ("IMGLOAD_DATASET", datasets.SMALL_DEFAULT),
    "large": ("IMGLOAD_LARGE_DATASET", datasets.LARGE_DEFAULT),
    "formats": ("IMGLOAD_FORMATS_DATASET", "synthetic-formats"),
    "medium": ("IMGLOAD_MEDIUM_DATASET", "synthetic-1024"),
    "camera": ("IMGLOAD_CAMERA_DATASET", "synthetic-12mp"),
}


def dataset(role: str) -> str:
    variable, default = ROLES[role]
    return os.environ.get(variable, default)


def small_dataset() -> str:
    return dataset("small")


def large_dataset() -> str:
    return dataset("large")


# Every setup_cache's `timeout`. asv stops a setup_cache after this many seconds *without
# output* (asv.util.check_output reads the process's output with this timeout), not after this
# many seconds in all; prepare (below) prints a line at every step, at least every
# fetch.PROGRESS_SECONDS while a download runs and every datasets.LOCK_HEARTBEAT while it waits
# for another environment's prepare. So a 170 MB archive on a slow link downloads to its end,
# and only a step silent this long is stopped: the longest, writing CIFAR-10's 300,000 files,
# takes about 30 s here. tests/test_setup_cache.py checks asv's reading of the timeout.
SETUP_CACHE_TIMEOUT = 600


def prepare(dataset: str) -> str:
    """setup_cache's prepare: the same datasets.prepare as `make data` (fetch, hash check,
    IMGLOAD_MIRROR, locks), in whichever environment asv runs it.

    Its steps are lines on stderr, which asv shows as they come with `asv run -v` (and after a
    failed setup_cache with --show-stderr). setup_cache runs in a process of its own, so this is
    an entry point like the command line: a reason the set cannot be prepared ends the process
    with that one line, no traceback, and asv prints it as the setup_cache's failure."""
    try:
        return str(datasets.prepare(dataset, log=_say))
    except datasets.DatasetError as e:
        raise SystemExit(f"imgload: {e}") from None


def prepare_roles() -> dict[str, str | None]:
    """Every role's dataset, for the record of what one call loads (bench_sample). The small and
    large sets must prepare, as for their benchmarks; a set bench_formats alone reads may not be
    writable in this environment (an encoder it lacks): its root is None and its counts n/a, as
    its benchmarks are here, and the record of the others stands."""
    roots: dict[str, str | None] = {role: prepare(dataset(role)) for role in ("small", "large")}
    for role in ROLES.keys() - roots.keys():
        try:
            roots[role] = str(datasets.prepare(dataset(role), log=_say))
        except datasets.DatasetError as e:
            _say(f"{e}; what its benchmarks load is n/a here")
            roots[role] = None
    return roots


def _say(msg: str) -> None:
    print(f"imgload: {msg}", file=sys.stderr, flush=True)


def images_per_call(root: str, what: str) -> int:
    """Images one timed call loads: the profile's sample of files, bench_codecs' share of it,
    one whole CIFAR batch, the images a container holds for the profile, one (an open), a
    DataLoader's epoch or its first batch."""
    index = datasets.load_index(root)
    if what == "batch":
        return int(index["batches"][cifar.TRAIN_BATCHES[0]]["count"])
    if what == "codecs":
        return len(_codec_indices(index))
    if what == "containers":
        return container_count(index)
    if what == "open":
        return 1  # one open per call (for wds, with its first image read); time per open
    if what == "epoch":  # a DataLoader's epoch: at least a few batches (dataloader.epoch_indices)
        from . import dataloader  # here, not at the top: it imports this module

        return len(dataloader.epoch_indices(index))
    if what == "first-batch":  # one batch of the epoch's files
        from . import dataloader

        return min(dataloader.BATCH_SIZE, len(dataloader.epoch_indices(index)))
    return len(datasets.sample_indices(index, datasets.profile()))


def container_count(index: dict) -> int:
    """Images a container call reads. Containers hold the default profile's sample (imgload.
    containers says why): `default` reads all of it, the same images as the per-file call;
    `smoke` its first SMOKE_FILES in the order asked, to check that all runs; `full`, the whole
    training set, is not in any container, so n/a rather than a smaller call under its name."""
    entry = index.get("containers")
    if entry is None:
        raise decoders.Unavailable(f"dataset {index['name']} has no containers")
    which = datasets.profile()
    if which == "full":
        raise decoders.Unavailable(
            "containers hold the default profile's sample, not the whole training set that"
            " IMGLOAD_PROFILE=full loads"
        )
    n = len(entry["indices"])
    return min(datasets.SMOKE_FILES, n) if which == "smoke" else n


def _codec_indices(index: dict):
    """An evenly spread share of the profile's sample: every CODECS_STRIDE-th image of it."""
    return datasets.sample_indices(index, datasets.profile())[::CODECS_STRIDE]


def codec_files(root: str, fmt: str) -> list[str]:
    """The files one bench_codecs call loads."""
    index = datasets.load_index(root)
    return datasets.file_paths(root, index, fmt, _codec_indices(index))


def pixels_per_image(root: str) -> int:
    """Pixels of one image; where sizes vary (image folders),
    the mean over the profile's sample."""
    index = datasets.load_index(root)
    if index["shape"]:
        return int(index["shape"][0]) * int(index["shape"][1])
    shapes = [index["shapes"][i] for i in datasets.sample_indices(index, datasets.profile())]
    return round(sum(h * w for h, w, _ in shapes) / len(shapes))


def set_cache(cache: str, files: list[str]) -> None:
    if cache == "cold":
        pagecache.make_cold(files)
    elif cache == "warm":
        pagecache.make_warm(files)
    else:
        raise ValueError(f"unknown cache state {cache!r}; expected one of {CACHES}")


class FileLoad:
    """One timed call: load the profile's sample of `fmt` files with `loader` under `execution`."""

    def __init__(self, root: str, fmt: str, loader: str, execution: str, cache: str):
        self.files = datasets.sample_files(root, fmt)
        # The priming decode (a file outside the sample) pays for lazy plugin imports and
        # library initialisation before any timing; process-pool workers prime the same way.
        self.runner = Runner(execution, loader, fmt, prime=datasets.priming_file(root, fmt))
        set_cache(cache, self.files)

    def __call__(self):
        return self.runner.run(self.files)

    def close(self) -> None:
        self.runner.close()


class CodecLoad:
    """One timed call: decode bench_codecs' share of the sample (`whole`: all of it, as
    bench_formats does) from `source`, sequentially and warm: `file` gives the decoder the path,
    `memory` the bytes, read here, so the call is the decode alone."""

    def __init__(self, root: str, fmt: str, decoder: str, source: str, whole: bool = False):
        self.load = decoders.get(decoder, fmt, source)  # Unavailable (n/a) before any file work
        files = datasets.sample_files(root, fmt) if whole else codec_files(root, fmt)
        set_cache("warm", files)
        self.inputs = files if source == "file" else [_read(f) for f in files]
        # the priming decode, as FileLoad's: lazy imports and library initialisation before
        # timing; for a codec the library reads only if built with it, whether it can (n/a if not)
        prime = datasets.priming_file(root, fmt)
        decoders.primed(decoder, fmt, self.load, prime if source == "file" else _read(prime))

    def __call__(self):
        load = self.load
        return [load(x) for x in self.inputs]


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class ContainerLoad:
    """One timed call: read a container's images (container_count) in `order` and return them as
    RGB uint8 arrays, sequentially. Encoded containers decode with containers.DECODER, OpenCV
    (cv2.imdecode, then cvtColor to RGB), in every stack; the decoded ones (hdf5-decoded, memmap)
    hand out copies of their stored pixels.

    `sequential` reads in storage order, which is the per-file sample's order. `shuffled` reads a
    fixed seeded permutation (containers.positions): exact for zip, lmdb, hdf5, hdf5-decoded and
    memmap; for parquet row groups in random order and rows shuffled within each, each group read
    once; for wds what WebDataset does, and no more: the shard order shuffled, then a buffer of
    one shard's samples (containers.WDS_SHARDS shards), which mixes about a shard's worth of
    images at a time: images leave close to their shard-mates, where the others' permutation
    sends any image anywhere in the epoch.

    Setup (not timed) opens the container, as a loader's worker does once (time_open times it),
    and primes the decoder on the image outside the sample. Cold: the container's files are
    evicted and verified 0% cached before it is opened, and again after, so what the open read
    (a zip's central directory, a parquet footer) is not cached either; only LMDB keeps its two
    meta pages, which its open maps (containers.set_cache)."""

    def __init__(self, root: str, container: str, order: str, cache: str):
        index = datasets.load_index(root)
        count = container_count(index)  # Unavailable (n/a) before any file work
        self.container = containers.Container(root, index, container)
        self.positions = containers.positions(self.container.entry, container, order, count)
        self.order = order
        # the priming decode, as FileLoad's: library initialisation before any timing
        self.container.decode(_read(datasets.priming_file(root, "jpeg")))
        containers.set_cache(cache, self.container, opened=True)  # opens it, then cold or warm

    def __call__(self):
        return self.container.read(self.positions, self.order)

    def close(self) -> None:
        self.container.close()


class ContainerOpen:
    """One timed call: open a container as a loader's worker does, once (for wds: read the first
    shard's first image, which is all opening a tar stream is), from a cold or a warm cache."""

    def __init__(self, root: str, container: str, cache: str):
        index = datasets.load_index(root)
        self.container = containers.Container(root, index, container)  # imports, not opens
        containers.set_cache(cache, self.container, opened=False)

    def __call__(self):
        self.container.open()
        return self.container.first()

    def close(self) -> None:
        self.container.close()


class BatchLoad:
    """One timed call: load one whole CIFAR batch as an (N, 32, 32, 3) array."""

    def __init__(self, root: str, fmt: str, cache: str):
        self.path = datasets.batch_file(root, fmt)
        self.load = cifar.load_batch_images if fmt == "pickle" else np.load
        set_cache(cache, [self.path])

    def __call__(self):
        return self.load(self.path)
