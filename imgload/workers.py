"""Process pools whose workers die with their parent.

A worker orphaned by a killed parent would keep running and keep the parent's open
files, including the flock that serializes dataset preparation, so the next prepare
would wait forever. PR_SET_PDEATHSIG has the kernel kill workers when the parent goes.

fork_pool is for the data preparation, which forks before starting any thread of its
own. Pools that decode use spawn_pool: a parent whose decoder has started threads
(OpenCV's pool does on first use) cannot fork safely, since children inherit locked
mutexes whose owners do not exist in them (seen here: cv2 workers hung in a futex).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int, initializer, initargs) -> None:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    if initializer is not None:
        initializer(*initargs)


def _pool(method: str, workers: int, initializer, initargs) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_die_with_parent,
        initargs=(os.getpid(), initializer, initargs),
    )


def fork_pool(workers: int, initializer=None, initargs=()) -> ProcessPoolExecutor:
    return _pool("fork", workers, initializer, initargs)


def spawn_pool(workers: int, initializer=None, initargs=()) -> ProcessPoolExecutor:
    return _pool("spawn", workers, initializer, initargs)


def spawn_barrier(parties: int):
    """A barrier that spawn_pool workers can receive through their initargs."""
    return multiprocessing.get_context("spawn").Barrier(parties)
