"""Shared memory through which spawned workers hand decoded arrays to their parent.

One Arena per process pool: an anonymous shared-memory file that the parent and every
worker map. A worker decodes a file, copies the array into the region of the arena the
parent gave its chunk of files, and sends back only (offset, shape, dtype); the parent
makes an ndarray *view* of the arena there. No pixel crosses a pipe and the parent copies
nothing, which is what a PyTorch DataLoader gives its user (its workers write batches into
shared memory, the parent maps them).

Why no name: `multiprocessing.shared_memory` names each segment in /dev/shm and registers
it with the resource tracker (in Python 3.11 the attaching workers register it too, so a
segment gets unlinked or reported as "leaked shared_memory" by whichever process exits
first). A name is exactly what a SIGKILLed parent leaves behind. The arena is a memfd
(`os.memfd_create`): it never has a name, its pages are freed by the kernel when the last
process that maps it or holds its descriptor is gone, and there is nothing to track.
The workers receive the descriptor itself when they are spawned (multiprocessing passes it
like a pipe's). Where memfd_create is missing, a /dev/shm file is created and unlinked at
once (as multiprocessing's own heap does): its name exists for two system calls.

Why views rather than one copy out: a copy would keep lifetimes trivial, but it is a
serial memcpy in the parent of every byte the workers decoded (18 MB per call of 32
500x375 images), on cores the workers need. Views make lifetime the arena's job, and
leases keep it simple: each call leases one region for all its arrays; the lease ends
when the last of those arrays is garbage (a weakref finalizer on the region's block, the
base of every array in it). A caller that drops its results, as a benchmark does, gets
the same region, already in memory, on the next call; one that keeps them gets a fresh
region, and the arena grows. It never shrinks while the pool lives.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import threading
import weakref
from multiprocessing import context, reduction

import numpy as np

NAME = (
    "imgload-arena"  # the memfd's name in /proc/PID/maps, the fallback file's prefix in /dev/shm
)
ALIGN = 64  # bytes: every array starts on a cache line
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)


def aligned(nbytes: int) -> int:
    return -(-nbytes // ALIGN) * ALIGN


def _anonymous_file() -> int:
    try:
        return os.memfd_create(NAME)  # close-on-exec; spawning passes it on explicitly
    except (AttributeError, OSError):
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        fd, path = tempfile.mkstemp(prefix=NAME + "-", dir=shm)
        os.unlink(path)
        return fd


def _map(fd: int, size: int, populate: bool) -> mmap.mmap:
    return mmap.mmap(fd, size, flags=mmap.MAP_SHARED | (_POPULATE if populate else 0))


class Lease:
    """One call's region of the arena: [start, start + size). Arrays made here keep it leased."""

    def __init__(self, start: int, block: np.ndarray):
        self.start, self.block = start, block

    def array(self, offset: int, shape: tuple, dtype: str) -> np.ndarray:
        """The array a worker wrote at arena offset `offset` (a view: its base is the block)."""
        return np.ndarray(shape, dtype, buffer=self.block, offset=offset - self.start)


class Arena:
    """The parent's side. Passed to spawned workers (in Process args),
    it arrives as a WorkerArena."""

    def __init__(self):
        self._fd = _anonymous_file()
        self._capacity = 0
        self._map: mmap.mmap | None = None
        self._leases: dict[int, int] = {}  # start -> stop of every live lease
        self._lock = threading.Lock()  # finalizers may release from any thread

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def leased(self) -> int:
        """Bytes held by arrays still alive."""
        with self._lock:
            return sum(stop - start for start, stop in self._leases.items())

    def reserve(self, size: int) -> None:
        """Grow to at least `size` bytes now, pages allocated (before timing,
        not in the first call)."""
        with self._lock:
            if size > self._capacity:
                self._grow(size, populate=True)

    def lease(self, size: int) -> Lease:
        """A region of `size` bytes that no live array uses (the arena grows if there is none)."""
        if size <= 0:
            raise ValueError("a lease needs at least one byte")
        with self._lock:
            start = self._free_start(size)
            if start + size > self._capacity:
                self._grow(start + size, populate=False)  # the workers touch only what they write
            self._leases[start] = start + size
            block = np.frombuffer(self._map, np.uint8, count=size, offset=start)
        weakref.finalize(block, self._release, start).atexit = False
        return Lease(start, block)

    def _free_start(self, size: int) -> int:
        starts = [0, *sorted(self._leases.values())]
        for s in starts:
            if s + size <= self._capacity and all(
                s >= stop or s + size <= b for b, stop in self._leases.items()
            ):
                return s
        return max(starts)  # past every lease: the arena grows

    def _grow(self, size: int, populate: bool) -> None:
        size = -(-size // mmap.PAGESIZE) * mmap.PAGESIZE
        os.ftruncate(self._fd, size)
        # a new mapping, the old one left to the arrays that still use it (it cannot be
        # closed or resized while they do); both show the same pages
        self._map = _map(self._fd, size, populate)
        self._capacity = size

    def _release(self, start: int) -> None:
        with self._lock:
            self._leases.pop(start, None)

    def close(self) -> None:
        """Drop the descriptor; the pages go when the workers and the last array are gone."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._map = None

    def __reduce__(self):
        context.assert_spawning(
            self
        )  # only through a Process's arguments: the fd travels with the spawn
        return WorkerArena, (reduction.DupFd(self._fd),)


class WorkerArena:
    """A worker's side: maps the arena as far as the parent says it reaches,
    writes arrays into it."""

    def __init__(self, fd):
        self._fd = fd.detach()
        self._map: mmap.mmap | None = None
        self._size = 0

    def map(self, capacity: int, populate: bool = False) -> None:
        if capacity > self._size:
            self._map = None  # no view of the old mapping is alive here: dropping it unmaps it
            self._map = _map(self._fd, capacity, populate)
            self._size = capacity

    def write(self, offset: int, arr: np.ndarray) -> None:
        dst = np.ndarray(arr.shape, arr.dtype, buffer=self._map, offset=offset)
        np.copyto(dst, arr, casting="no")
