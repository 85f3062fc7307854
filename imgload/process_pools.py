"""Persistent decoder process pools and the two ways their arrays come back.

A pool is spawned once per (loader, format, workers, priming file) and kept for the life of
the process, like a data loader's persistent workers: each worker has imported its loader,
set library threads to one and decoded the priming file before the pool is returned, so
none of that lands in a timed call. Work goes out in chunks of files.

- shared (`processes-N`): workers copy each array into the pool's shared-memory Arena and
  send back where it is; the parent returns views (imgload.shared_arrays says why views).
- pickled (`processes-N-pickle`): workers send the arrays themselves through their pipe,
  pickled; the contrast that shows what that transfer costs.

Sizing the shared regions: the parent learns sizes only from what workers decode (reading
headers in the parent would cost a file open per image in the timed call). Every chunk gets
len(chunk) slots of the largest array seen so far, the priming file's to begin with; a
worker places its arrays one after another in its chunk's region, and one that does not
fit (a larger image than any before) goes back pickled instead: correct, slower, counted in
`spilled`, and the slot grows so the next call fits. The arena is reserved before timing
for RESERVE_SLOTS slots and at least RESERVE_BYTES, so a default-profile call (32 500x375
images, or 1,000 32x32) never grows it inside the timing.
"""

from __future__ import annotations

import numpy as np

from . import decoders
from .shared_arrays import Arena, Lease, aligned
from .workers import SpawnedWorkers

RESERVE_SLOTS = 64
RESERVE_BYTES = 8 << 20

_load = None  # a worker's loader, built by _init_worker
_arena = None  # a worker's WorkerArena


def _init_worker(loader: str, fmt: str, prime: str | None, arena) -> int:
    """A worker's start: the loader, one thread per decode, the priming decode;
    its size in bytes."""
    global _load, _arena
    _load, _arena = decoders.get(loader, fmt), arena
    decoders.limit_library_threads()
    return 0 if prime is None else int(_load(prime).nbytes)


def _map_arena(capacity: int) -> None:
    _arena.map(capacity, populate=True)


def _decode_pickled(files: list[str]) -> list[np.ndarray]:
    return [_load(f) for f in files]


def _shareable(arr) -> bool:
    return isinstance(arr, np.ndarray) and arr.dtype.fields is None and not arr.dtype.hasobject


def _decode_shared(files: list[str], start: int, stop: int, capacity: int) -> tuple[list, int]:
    """Decode into the arena's [start, stop): per file (offset, shape, dtype), or the array
    itself where it does not fit; and the largest array's size."""
    _arena.map(capacity)
    out, at, largest = [], start, 0
    for f in files:
        arr = _load(f)
        largest = max(largest, getattr(arr, "nbytes", 0))
        if _shareable(arr) and at + arr.nbytes <= stop:
            _arena.write(at, arr)
            out.append((at, arr.shape, arr.dtype.str))
            at += aligned(arr.nbytes)
        else:
            out.append(arr)
    return out, largest


class ProcessPool:
    """Spawned workers of one loader and the arena they share with this process."""

    def __init__(self, loader: str, fmt: str, workers: int, prime: str | None):
        self.arena = Arena()
        try:
            self.workers = SpawnedWorkers(workers, _init_worker, (loader, fmt, prime, self.arena))
        except BaseException:
            self.arena.close()
            raise
        self.slot = aligned(max(self.workers.ready))  # bytes per file a chunk's region allows
        self.spilled = 0  # arrays that went back pickled because their region was full
        if self.slot:
            self.arena.reserve(max(RESERVE_SLOTS * self.slot, RESERVE_BYTES))
            self.workers.call_each(_map_arena, self.arena.capacity)

    @property
    def closed(self) -> bool:
        return self.workers.closed

    def run_pickled(self, chunks: list[list[str]]) -> list[np.ndarray]:
        out = []
        for part in self.workers.map(_decode_pickled, [(c,) for c in chunks]):
            out.extend(part)
        return out

    def run_shared(self, chunks: list[list[str]]) -> list[np.ndarray]:
        if not self.slot:  # nothing seen yet (no priming file): this call learns the size
            parts = [
                (arrays, max((a.nbytes for a in arrays), default=0))
                for arrays in self.workers.map(_decode_pickled, [(c,) for c in chunks])
            ]
            lease = None
        else:
            lease = self.arena.lease(self.slot * sum(map(len, chunks)))
            tasks, at = [], lease.start
            for c in chunks:
                tasks.append((c, at, at + self.slot * len(c), self.arena.capacity))
                at += self.slot * len(c)
            parts = self.workers.map(_decode_shared, tasks)
        out = []
        for entries, largest in parts:
            self.slot = max(self.slot, aligned(largest))
            out.extend(self._arrays(entries, lease))
        return out

    def _arrays(self, entries: list, lease: Lease | None):
        for e in entries:
            if isinstance(e, tuple):
                yield lease.array(*e)
            else:
                if lease is not None:
                    self.spilled += 1
                yield e

    def close(self) -> None:
        self.workers.close()
        self.arena.close()


_pools: dict[tuple, ProcessPool] = {}


def get(loader: str, fmt: str, workers: int, prime: str | None) -> ProcessPool:
    """The process's pool for these arguments, spawned and primed on first use."""
    key = (loader, fmt, workers, prime)
    pool = _pools.get(key)
    if pool is None or pool.closed:  # a pool whose worker died was closed: start afresh
        pool = _pools[key] = ProcessPool(loader, fmt, workers, prime)
    return pool


def shutdown() -> None:
    while _pools:
        _pools.popitem()[1].close()
