"""How a list of files is loaded: a plain loop, threads, or process workers.

Executions by name:
- `sequential`: a plain loop.
- `threads-N`: a pool of N threads given the files in chunks (a few per worker), not one
  future per file: a future costs more than decoding a 32x32 JPEG.
- `queue-N`: the pattern of the memo behind this suite: one queue.Queue of paths, N threads
  that take one path at a time, task_done / join, each result written by its index. Timed
  beside `threads-N` on the same files, it shows what a per-file hand-off costs.
- `processes-N`: N spawned workers that decode into shared memory; the parent gets views,
  no pixel goes through a pipe (imgload.process_pools, imgload.shared_arrays).
- `processes-N-pickle`: the same workers sending every array back pickled through a pipe,
  the transfer a plain process pool pays: a contrast, not a loader to copy.

Every execution returns the arrays in file order, equal to `sequential`'s. Workers of every
kind exist before timing starts; process workers are spawned once per process and reused,
like a data loader's persistent workers, and have imported and primed their decoder.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from . import decoders, process_pools
from .errors import UserError

# The grid of SmallImages, LargeImages and ArrayFiles. threads-3, queue-3 and the pickling
# pool answer narrower questions and are timed in classes of their own (benchmarks/), where
# a whole grid of them would cost `make bench` minutes that answer nothing new.
# threads-4 is in the wide grid only (IMGLOAD_GRID=wide): on the 2-core machine `make bench`
# is budgeted for it can only oversubscribe (at 79539b12 four threads gave 1.11 to 1.91x where
# two gave 1.26 to 2.02x), and it cost about 3 of the 20 minutes once the containers came.
GRIDS = {
    "default": ("sequential", "threads-2", "processes-2"),
    "wide": ("sequential", "threads-2", "threads-4", "processes-2"),
}


class GridError(UserError):
    pass


def grid() -> str:
    """IMGLOAD_GRID, checked: `make data` (and so `make bench`) stops on a wrong value before
    asv imports the benchmarks with it."""
    value = os.environ.get("IMGLOAD_GRID", "default")
    if value not in GRIDS:
        raise GridError(f"IMGLOAD_GRID={value!r}: expected one of {', '.join(GRIDS)}")
    return value


EXECUTIONS = GRIDS.get(os.environ.get("IMGLOAD_GRID", "default"), GRIDS["default"])
THREAD_PATTERNS = ("sequential", "threads-3", "queue-3")  # the memo ran 3 threads
TRANSFERS = ("sequential", "processes-2", "processes-2-pickle")
CHUNKS_PER_WORKER = 4


@dataclass(frozen=True)
class Execution:
    kind: (
        str  # what does the work: 'sequential', 'threads' or 'processes' (the report groups by it)
    )
    workers: int
    form: str  # threads: 'chunked' or 'queue'; processes: 'shared' or 'pickle'; sequential: 'loop'


def describe(execution: str) -> Execution:
    """'queue-3' -> Execution('threads', 3, 'queue');
    ValueError for a name that is none of them."""
    if execution == "sequential":
        return Execution("sequential", 1, "loop")
    prefix, _, rest = execution.partition("-")
    workers, _, suffix = rest.partition("-")
    forms = {
        ("threads", ""): "chunked",
        ("queue", ""): "queue",
        ("processes", ""): "shared",
        ("processes", "pickle"): "pickle",
    }
    form = forms.get((prefix, suffix))
    if form is None or not workers.isdigit() or int(workers) < 1:
        raise ValueError(
            f"unknown execution {execution!r}; expected sequential, threads-N, queue-N, "
            "processes-N or processes-N-pickle"
        )
    return Execution("processes" if prefix == "processes" else "threads", int(workers), form)


def parse(execution: str) -> tuple[str, int]:
    """'threads-4' -> ('threads', 4); 'queue-3' -> ('threads', 3);
    'sequential' -> ('sequential', 1)."""
    e = describe(execution)
    return e.kind, e.workers


def chunked(items: list, n_chunks: int) -> list[list]:
    """`items` split into at most n_chunks contiguous, nearly equal, non-empty runs."""
    n_chunks = max(1, min(n_chunks, len(items)))
    size, extra = divmod(len(items), n_chunks)
    out, start = [], 0
    for i in range(n_chunks):
        stop = start + size + (i < extra)
        out.append(items[start:stop])
        start = stop
    return out


def _load_chunk(load, files):
    return [load(f) for f in files]


class _Failed:
    """A queue worker's exception, kept in the result's place until the caller raises it."""

    def __init__(self, exc: BaseException):
        self.exc = exc


class QueueOfPaths:
    """The memo's pattern: N threads take (results, index, path) items off one queue.Queue,
    write load(path) at results[index], and call task_done; run() puts every path and
    joins the queue. The threads live as long as the object, like the memo's."""

    def __init__(self, load, workers: int):
        self._load = load
        self._queue: queue.Queue = queue.Queue()
        started = threading.Barrier(workers + 1)  # every thread exists before timing starts
        self._threads = [
            threading.Thread(target=self._work, args=(started,), daemon=True)
            for _ in range(workers)
        ]
        for t in self._threads:
            t.start()
        started.wait()

    def _work(self, started) -> None:
        decoders.limit_library_threads()
        started.wait()
        while True:
            item = self._queue.get()
            if item is None:
                self._queue.task_done()
                return
            results, i, path = item
            try:
                results[i] = self._load(path)
            except BaseException as e:  # the memo's threads would die here and hang join()
                results[i] = _Failed(e)
            finally:
                self._queue.task_done()

    def run(self, files: list[str]) -> list:
        results: list = [None] * len(files)
        for item in enumerate(files):
            self._queue.put((results, *item))
        self._queue.join()
        for r in results:
            if isinstance(r, _Failed):
                raise r.exc
        return results

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join()


def shutdown_process_pools() -> None:
    process_pools.shutdown()


class Runner:
    """Loads files with `loader` (name, format) under `execution`; call close() when done."""

    def __init__(self, execution: str, loader: str, fmt: str, prime: str | None = None):
        self.execution = describe(execution)
        self.kind, self.workers = self.execution.kind, self.execution.workers
        self.load = decoders.get(loader, fmt)  # Unavailable (n/a) before any worker is started
        self._pool = None
        if self.kind == "processes":
            self._pool = process_pools.get(loader, fmt, self.workers, prime)
            return
        if prime is not None:  # library initialisation and lazy imports, before any timing
            self.load(prime)
        if self.execution.form == "queue":
            self._pool = QueueOfPaths(self.load, self.workers)
        elif self.kind == "threads":
            self._pool = ThreadPoolExecutor(
                self.workers, initializer=decoders.limit_library_threads
            )
            barrier = threading.Barrier(self.workers)  # every thread exists before timing starts
            list(self._pool.map(lambda _: barrier.wait(), range(self.workers)))

    def run(self, files: list[str]) -> list[np.ndarray]:
        if self.kind == "sequential":
            return [self.load(f) for f in files]
        if self._pool is None:
            raise RuntimeError("this Runner is closed")
        if not files:
            return []
        if self.execution.form == "queue":
            return self._pool.run(files)
        chunks = chunked(files, self.workers * CHUNKS_PER_WORKER)
        if self.execution.form == "shared":
            return self._pool.run_shared(chunks)
        if self.execution.form == "pickle":
            return self._pool.run_pickled(chunks)
        out = []
        for part in self._pool.map(_load_chunk, [self.load] * len(chunks), chunks):
            out.extend(part)
        return out

    def close(self) -> None:
        """Stop a Runner's threads; process pools stay up for the next Runner
        (shutdown_process_pools)."""
        if self.kind == "threads" and self._pool is not None:
            if self.execution.form == "queue":
                self._pool.close()
            else:
                self._pool.shutdown(wait=True)
        self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
