"""How a list of files is loaded: a plain loop, a thread pool or a process pool.

Pools receive work in chunks (a few per worker), not one future per file: a future costs
more than decoding a 32x32 JPEG. Results always come back in file order. Process pools
are spawned once per process and reused, like a data loader's persistent workers: every
worker has imported and primed its decoder before the first timed call, and the arrays
come back to the parent (the pickling is part of what a process pool costs a loader).
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor, ThreadPoolExecutor

import numpy as np

from . import decoders
from .workers import spawn_barrier, spawn_pool

EXECUTIONS = ("sequential", "threads-2", "threads-4", "processes-2")
CHUNKS_PER_WORKER = 4


def parse(execution: str) -> tuple[str, int]:
    """'threads-4' -> ('threads', 4); 'sequential' -> ('sequential', 1)."""
    if execution == "sequential":
        return "sequential", 1
    kind, _, workers = execution.partition("-")
    if kind not in ("threads", "processes") or not workers.isdigit() or int(workers) < 1:
        raise ValueError(f"unknown execution {execution!r}; expected sequential, threads-N or processes-N")
    return kind, int(workers)


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


_worker_load = None  # the loader of a process-pool worker, built by its initializer


def _init_worker(name: str, fmt: str, prime: str | None, ready) -> None:
    global _worker_load
    _worker_load = decoders.get(name, fmt)
    decoders.limit_library_threads()
    if prime is not None:
        _worker_load(prime)
    ready.wait()  # returns once every worker of the pool has started and primed


def _worker_chunk(files):
    return [_worker_load(f) for f in files]


_process_pools: dict[tuple, Executor] = {}


def _process_pool(loader: str, fmt: str, workers: int, prime: str | None) -> Executor:
    key = (loader, fmt, workers, prime)
    if key not in _process_pools:
        pool = spawn_pool(workers, initializer=_init_worker, initargs=(loader, fmt, prime, spawn_barrier(workers)))
        list(pool.map(int, range(workers)))  # blocks until the barrier has released them all
        _process_pools[key] = pool
    return _process_pools[key]


def shutdown_process_pools() -> None:
    while _process_pools:
        _process_pools.popitem()[1].shutdown(wait=True)


class Runner:
    """Loads files with `loader` (name, format) under `execution`; call close() when done."""

    def __init__(self, execution: str, loader: str, fmt: str, prime: str | None = None):
        self.kind, self.workers = parse(execution)
        self.load = decoders.get(loader, fmt)
        self._pool: Executor | None = None
        if self.kind == "processes":
            self._pool = _process_pool(loader, fmt, self.workers, prime)
            return
        if prime is not None:  # library initialisation and lazy imports, before any timing
            self.load(prime)
        if self.kind == "threads":
            self._pool = ThreadPoolExecutor(self.workers, initializer=decoders.limit_library_threads)
            barrier = threading.Barrier(self.workers)  # every thread exists before timing starts
            list(self._pool.map(lambda _: barrier.wait(), range(self.workers)))

    def run(self, files: list[str]) -> list[np.ndarray]:
        if self.kind == "sequential":
            return [self.load(f) for f in files]
        if self._pool is None:
            raise RuntimeError("this Runner is closed")
        chunks = chunked(files, self.workers * CHUNKS_PER_WORKER)
        if self.kind == "threads":
            parts = self._pool.map(_load_chunk, [self.load] * len(chunks), chunks)
        else:
            parts = self._pool.map(_worker_chunk, chunks)
        out = []
        for part in parts:
            out.extend(part)
        return out

    def close(self) -> None:
        """Stop a thread pool; process pools stay up for the next Runner (shutdown_process_pools)."""
        if self.kind == "threads" and self._pool is not None:
            self._pool.shutdown(wait=True)
        self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
