"""A real PyTorch DataLoader, timed as the suite's own executions are.

The suite's pools (imgload.execution) answer what a pool of workers *could* do; readers run
`torch.utils.data.DataLoader`, and this is that loader, unmodified, over the same files:

- the dataset is map-style (`Files`: `__getitem__` decodes one file with any of the suite's
  decoders, `decoders.get`); it needs no torch base class, so this module imports without
  torch and a stack without it reports the benchmarks n/a (`require`);
- batches of BATCH_SIZE are collated by torch's own `default_collate`, which turns the numpy
  arrays into tensors and, inside a worker, stacks them straight into shared memory; the
  parent gets a uint8 N x H x W x 3 tensor backed by that memory and `.numpy()` makes it an
  ndarray without a copy. That is the transfer the issue asked about: the batch's pixels
  never go through a pipe (only its file descriptor does);
- `num_workers` 0 (decoding in the calling process, like `sequential`) or N worker
  processes, persistent (`persistent_workers=True`), so one loader serves every epoch;
- every image comes back in file order, equal to the sequential decode (the DataLoader
  keeps batch order; the tests check it for every decoder).

Why the `forkserver` start method, not Linux's default `fork` under Python 3.11: a process
that has decoded with OpenCV has started its thread pool, and a forked child inherits the
pool without its threads (imgload.workers: cv2 workers hung in a futex here; with this
DataLoader and `fork`, a worker's cv2.setNumThreads(1) never returned once the parent had
used OpenCV's pool). The test process and a loader's own `num_workers=0` path decode in the
parent, so `fork` would be safe only by luck. A fork server is a clean process that forks
the workers; it preloads torch, numpy and the decoder (PRELOAD), so starting a worker costs
a fork of a warm process, as `fork` would, not an interpreter start and a torch import, as
`spawn` would. It is also the default start method on Linux from Python 3.14 on.

Workers are started and primed before timing, as the suite's pools are: each one builds its
decoder, sets library threads to one (decoders.limit_library_threads, as the pools do) and
decodes the priming file (a file outside the sample) in a priming epoch, which the loader's
batch sampler (`_Epoch`) serves before the timed epochs: the round-robin dispatch of a fresh
epoch hands one priming batch to each worker, and the epoch ends only when all have answered.

Nothing is left behind: each worker ends with the loader's process, however that ends
(`_exit_with` says why a fork server's worker needs telling). With `forkserver`, the
loader's queues hold named semaphores that multiprocessing's resource tracker watches; asv
ends a benchmark process with os._exit, which runs no finalizer, so a loader still alive
then would be reported as "leaked semaphore objects". `Loader.close` shuts the workers down
and collects the loader, which unlinks them; benchmarks/common.Benchmark.teardown calls it
after every sample. Torch's own shared memory (the default `file_descriptor` strategy) is
unlinked from /dev/shm as soon as it is created.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import select
import threading
import time
import warnings
from collections.abc import Iterator

import numpy as np

from . import datasets, decoders, suite

BATCH_SIZE = 32
# an epoch of fewer batches is mostly the pipeline filling and draining (epoch_indices)
MIN_EPOCH_BATCHES = 8
WORKERS = (0, 2, 4)  # num_workers: in-process, one per core, and twice the cores
DECODERS = ("cv2", "pil")  # the benchmark grid's; any of decoders.LOADERS' image decoders works
START_METHOD = "forkserver"
STOP_SECONDS = 5  # close() waits this long for a queue's feeder thread (it takes microseconds)
# what the fork server imports once, so a worker starts with it (a `fork` of a parent that
# has decoded would have it too); a decoder not named here is imported by each worker
PRELOAD_COMMON = ("__main__", "numpy", "torch", "imgload.decoders", "imgload.dataloader")
PRELOAD = {
    "cv2": ("cv2",),
    "pil": ("PIL.Image", "PIL.JpegImagePlugin", "PIL.PngImagePlugin"),
}
# Pillow hands out read-only arrays (np.asarray of an image); default_collate's as_tensor
# warns once per process that torch does not support non-writable tensors. Nothing writes to
# them: torch.stack copies them into the batch. The warning would be the same line on every
# benchmark's stderr, so it is silenced here, in every process that imports this module (the
# workers do, through the fork server's preload or when they unpickle the dataset).
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
# num_workers=4 on a 2-core machine is deliberate (what oversubscription costs), and torch's
# advice against it would otherwise be on every such benchmark's stderr
warnings.filterwarnings("ignore", message="This DataLoader will create")
NO_TORCH = (
    "torch is not installed in this environment: the DataLoader benchmarks run in the opt-in"
    " PyTorch stack (asv.torch.conf.json, `make bench-torch`)"
)


def require():
    """torch, or Unavailable (asv's n/a) with the reason and where the stack that has it is."""
    try:
        import torch
        import torch.utils.data
    except ImportError as e:
        raise decoders.Unavailable(f"{NO_TORCH} ({e})") from None
    return torch


def batchable(index: dict) -> None:
    """Unavailable unless every image of the dataset has one size: default_collate stacks a
    batch into one array, and images of different sizes need a resize the suite does not do."""
    if not index.get("shape"):
        raise decoders.Unavailable(
            f"dataset {index.get('name', '?')} has images of different sizes: a batch of them"
            " cannot be collated to one array without resizing them"
        )


class Files:
    """The map-style dataset: item i is `paths[i]` decoded by `loader`. It travels to each
    worker pickled, without its decoder (a closure); each process builds its own (`open`)."""

    def __init__(self, paths: list[str], loader: str, fmt: str):
        self.paths, self.loader, self.fmt = list(paths), loader, fmt
        self.owner = os.getpid()  # the process whose loader this is (_exit_with)
        self._load = None

    def open(self) -> None:
        if self._load is None:
            self._load = decoders.get(self.loader, self.fmt)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        if self._load is None:
            self.open()
        return self._load(self.paths[i])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_load": None}


class _Epoch:
    """The loader's batch sampler: the batches of whichever epoch comes next. A DataLoader
    with persistent workers iterates its batch sampler afresh at every epoch, so one loader
    serves the priming epoch and then the timed ones."""

    def __init__(self):
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def _start_worker(worker_id: int) -> None:
    """worker_init_fn: the worker tied to the loader's process, the decoder built and its
    library threads set to one, before the worker takes its first batch (the priming decode
    is that batch)."""
    import torch.utils.data

    dataset = torch.utils.data.get_worker_info().dataset
    _exit_with(dataset.owner)
    dataset.open()
    decoders.limit_library_threads()


def _exit_with(owner: int) -> None:
    """End this worker as soon as process `owner` has ended, from a thread of its own.

    A DataLoader worker watches its parent process and stops once that is gone; a worker of a
    fork server has the server for its parent, and the server stays up as long as any of its
    children holds its alive-pipe, which every worker does. So a loader's process that dies
    without closing the loader (SIGKILL, asv's timeout) would leave its workers, the server
    and the resource tracker running for good, holding asv's output pipes (seen here). This
    thread waits on a pidfd of the owner (readable once it has exited); where there is none,
    it looks every half second."""

    def watch() -> None:
        try:
            fd = os.pidfd_open(owner)
        except ProcessLookupError:
            os._exit(1)
        except (AttributeError, OSError):
            while True:
                try:
                    os.kill(owner, 0)
                except ProcessLookupError:
                    os._exit(1)
                time.sleep(0.5)
        select.select([fd], [], [])
        os._exit(1)

    threading.Thread(target=watch, name="imgload-exit-with-owner", daemon=True).start()


def _fork_server(loader: str) -> None:
    """The fork server up, with torch and the decoder imported, before anything is timed.
    Its preload is fixed when it starts: in a process that later makes a loader with another
    decoder, those workers import that decoder themselves (about 0.1 s each for Pillow, seen
    here). asv runs every combination in a process of its own, so a benchmark never does."""
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context(START_METHOD)
    ctx.set_forkserver_preload([*PRELOAD_COMMON, *PRELOAD.get(loader, ())])
    forkserver.ensure_running()


def batches_of(n: int, size: int) -> list[list[int]]:
    """Indices 0..n-1 in order, in batches of `size` (the last one shorter)."""
    return [list(range(i, min(i + size, n))) for i in range(0, n, size)]


class Loader:
    """One torch DataLoader over `files` (plus the priming file, outside them), in batches of
    `batch_size`, with `workers` worker processes (persistent) or none.

    run() loads every file, one epoch, as a list of uint8 N x H x W x 3 arrays;
    first() starts the loader's first epoch and returns its first batch (the rest of that
    epoch is left to close()). close() stops the workers and frees their queues."""

    def __init__(
        self,
        files: list[str],
        loader: str,
        fmt: str,
        workers: int,
        prime: str | None = None,
        batch_size: int = BATCH_SIZE,
    ):
        torch = require()
        decoders.get(loader, fmt)  # Unavailable (n/a) before any worker is started
        if workers < 0:
            raise ValueError(f"num_workers must be 0 or more, not {workers}")
        self.workers = workers
        self.dataset = Files([*files, *([prime] if prime else [])], loader, fmt)
        self._batches = batches_of(len(files), batch_size)
        self._epoch = _Epoch()
        self._iterator = None  # first()'s, held until close()
        options = {}
        if workers:
            _fork_server(loader)
            options = dict(
                worker_init_fn=_start_worker,
                multiprocessing_context=START_METHOD,
                persistent_workers=True,
            )
        self.loader = torch.utils.data.DataLoader(
            self.dataset,
            batch_sampler=self._epoch,
            num_workers=workers,
            collate_fn=torch.utils.data.default_collate,
            **options,
        )
        if prime:
            self.prime()

    def prime(self) -> None:
        """The priming epoch: one batch of the priming file per worker (for num_workers=0,
        one for this process). It starts the persistent workers; it ends when every worker
        has built its decoder and decoded the priming file."""
        self._epoch.batches = [[len(self.dataset) - 1]] * max(1, self.workers)
        for _ in self.loader:
            pass

    def run(self) -> list[np.ndarray]:
        """Every file, one epoch: every batch as an ndarray (a view of the batch's tensor)."""
        self._epoch.batches = self._batches
        return [batch.numpy() for batch in self.loader]

    def first(self) -> np.ndarray:
        """A fresh loader's first batch: workers start (the persistent ones' first epoch),
        the first batch arrives. The workers go on with the epoch until close()."""
        self._epoch.batches = self._batches
        self._iterator = iter(self.loader)
        return next(self._iterator).numpy()

    def close(self) -> None:
        """Stop the workers and collect the loader now, not when asv's os._exit would skip
        it: its queues' named semaphores are unlinked here (see the module's docstring).

        DataLoader has no public close; its iterator's _shutdown_workers is what its __del__
        calls. That closes each worker's index queue, whose feeder thread then ends on its
        own, and until it has, it holds two of the queue's semaphores: collected before that,
        they outlive the collection, and an os._exit right after reported "2 (or 4) leaked
        semaphore objects" (seen here in 2 of 5 runs of one benchmark). So the feeders are joined
        first."""
        loader = getattr(self, "loader", None)
        feeders = []
        for it in (self._iterator, getattr(loader, "_iterator", None)):
            shutdown = getattr(it, "_shutdown_workers", None)
            if shutdown is not None:
                shutdown()
                feeders += [getattr(q, "_thread", None) for q in it._index_queues]
        for thread in feeders:
            if thread is not None:
                thread.join(timeout=STOP_SECONDS)
        self._iterator = None
        self.loader = None
        gc.collect()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def images(batches: list[np.ndarray]) -> list[np.ndarray]:
    """The images of a run's batches, in order (views, one per image)."""
    return [image for batch in batches for image in batch]


# ------------------------------------------------------------------ the benchmarks' timed calls


def epoch_indices(index: dict) -> np.ndarray:
    """The training images one timed epoch loads: the profile's sample where that makes at
    least MIN_EPOCH_BATCHES batches (the small set's 1,000 images: 32); else, under the default
    profile, every training image. The large set's default sample, 32 images, is one batch of
    32: one worker would decode it while the others wait, and no loader with workers reaches a
    steady state in it (measured here: 2 workers took 1.8x the time of none). Its 255 training
    images make 8 batches. IMGLOAD_PROFILE=smoke keeps its few files, full its whole set.
    suite.images_per_call counts the same images, so the report's time per image is right."""
    which = datasets.profile()
    sample = datasets.sample_indices(index, which)
    if which == "default" and len(sample) < MIN_EPOCH_BATCHES * BATCH_SIZE:
        return datasets.sample_indices(index, "full")
    return sample


def _epoch(root: str, fmt: str, loader: str) -> tuple[list[str], str]:
    """An epoch's `fmt` files (epoch_indices) and the priming file; Unavailable (n/a) before
    any work where torch, the decoder or one size of image is missing."""
    require()
    decoders.get(loader, fmt)
    index = datasets.load_index(root)
    batchable(index)
    files = datasets.file_paths(root, index, fmt, epoch_indices(index))
    return files, datasets.priming_file(root, fmt)


class EpochLoad:
    """One timed call: one epoch of `fmt` files (epoch_indices) through a primed loader with
    `workers` persistent workers (the steady state of a training loop), from a cold or a warm
    cache. The report divides it into time per image (suite.LOADS, images_per_call)."""

    def __init__(self, root: str, fmt: str, loader: str, workers: int, cache: str):
        self.files, prime = _epoch(root, fmt, loader)
        self.loader = Loader(self.files, loader, fmt, workers, prime=prime)
        try:
            suite.set_cache(cache, self.files)
        except BaseException:
            self.loader.close()
            raise

    def __call__(self):
        return self.loader.run()

    def close(self) -> None:
        self.loader.close()


class FirstBatchLoad:
    """One timed call: a fresh loader over an epoch's files (workers started as part of the
    call) and its first batch, from a cold or a warm cache: what a reader waits for at the start
    of every epoch without persistent workers, and once per run with them. Setup starts the fork
    server (with its imports) and runs one loader through the priming file, so the call pays for
    starting workers, not for a process's first import of torch or the decoder, nor for the
    decoder library's first use in this process (num_workers=0)."""

    def __init__(self, root: str, fmt: str, loader: str, workers: int, cache: str):
        self.files, prime = _epoch(root, fmt, loader)
        self.args = (loader, fmt, workers)
        with Loader(self.files, loader, fmt, workers, prime=prime):
            pass
        self.current: Loader | None = None
        suite.set_cache(cache, self.files)

    def __call__(self):
        self.current = Loader(self.files, *self.args)
        return self.current.first()

    def close(self) -> None:
        """The call's loader: its workers go on with the epoch after the first batch, so they
        are stopped here, before the next setup evicts the files."""
        if self.current is not None:
            self.current.close()
            self.current = None
