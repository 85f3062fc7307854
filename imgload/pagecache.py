"""Control and observe whether files sit in the OS page cache.

evict() asks the kernel to drop a file's cached pages (posix_fadvise DONTNEED: no root
needed, but only clean pages go, which is why prepared data is synced to disk);
resident_fraction() measures, so cold and warm are verified, not assumed: with the
cachestat() system call where the kernel has it (Linux 6.5+; one call per file, about
4x faster than mapping it, and this runs before every timed call), else with mincore()
over a read-only mapping.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import sys
from collections.abc import Iterable

from .files import libc

_PAGE = mmap.PAGESIZE
_libc = libc()
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p,
    ctypes.c_size_t,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_int,
    ctypes.c_long,
]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
_libc.syscall.restype = ctypes.c_long
_MAP_FAILED = ctypes.c_void_p(-1).value
_SYS_CACHESTAT = 451  # the same number on every architecture (a post-5.x generic syscall)


class _CachestatRange(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Cachestat(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_uint64)
        for n in ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")
    ]


class PageCacheError(RuntimeError):
    """Cold or warm could not be made or verified: a signal inside a benchmark, not a user error
    (errors.UserError). `data prepare` turns the one a user can act on (a data dir on tmpfs)
    into a DatasetError."""


def evict(files: Iterable[str]) -> None:
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm(files: Iterable[str], chunk: int = 1 << 20) -> None:
    buf = bytearray(chunk)
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


def _cachestat(fd: int) -> int | None:
    """Cached pages of the whole file, or None where the kernel has no cachestat."""
    whole, stat = _CachestatRange(0, 0), _Cachestat()
    if _libc.syscall(_SYS_CACHESTAT, fd, ctypes.byref(whole), ctypes.byref(stat), 0) == 0:
        return stat.nr_cache
    err = ctypes.get_errno()
    if err == errno.ENOSYS:
        return None
    raise PageCacheError(f"cachestat: {os.strerror(err)}")


_HAVE_CACHESTAT = sys.platform == "linux"


def resident_pages(path: str, method: str = "auto") -> tuple[int, int]:
    """(pages in the page cache, pages in the file); method "auto", "cachestat" or "mincore"."""
    global _HAVE_CACHESTAT
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return 0, 0
        pages = (size + _PAGE - 1) // _PAGE
        if method != "mincore" and _HAVE_CACHESTAT:
            cached = _cachestat(fd)
            if cached is not None:
                return min(cached, pages), pages
            _HAVE_CACHESTAT = False
        if method == "cachestat":
            raise PageCacheError("this kernel has no cachestat()")
        return _mincore(fd, size, path), pages
    finally:
        os.close(fd)


def _mincore(fd: int, size: int, path: str) -> int:
    """Cached pages of a file of `size` bytes, from mincore() over a read-only mapping."""
    addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if addr == _MAP_FAILED:
        raise PageCacheError(f"mmap {path}: {os.strerror(ctypes.get_errno())}")
    try:
        vec = (ctypes.c_ubyte * ((size + _PAGE - 1) // _PAGE))()
        if _libc.mincore(addr, size, vec) != 0:
            raise PageCacheError(f"mincore {path}: {os.strerror(ctypes.get_errno())}")
        return sum(v & 1 for v in vec)
    finally:
        _libc.munmap(addr, size)


def resident_fraction(files: Iterable[str]) -> float:
    """Fraction of all the files' pages that are cached (1.0 for no pages at all)."""
    cached = total = 0
    for path in files:
        c, t = resident_pages(path)
        cached += c
        total += t
    return cached / total if total else 1.0


def make_cold(files: list[str]) -> None:
    evict(files)
    frac = resident_fraction(files)
    if frac != 0.0:
        raise PageCacheError(
            f"cold cache not reached: {frac:.1%} of {len(files)} files still cached after "
            f"eviction (first: {files[0]}); data on tmpfs, or written and not yet synced?"
        )


def make_warm(files: list[str], attempts: int = 3) -> None:
    # Page cache can shrink under us (seen here: a VM whose host reclaims guest cache),
    # so files that lost pages are read again, a bounded number of times.
    missing = files
    for _ in range(attempts):
        warm(missing)
        missing = [f for f in missing if _not_fully_cached(f)]
        if not missing:
            return
    raise PageCacheError(
        f"warm cache not reached: {len(missing)} of {len(files)} files not fully cached after "
        f"{attempts} reads (first: {missing[0]})"
    )


def _not_fully_cached(path: str) -> bool:
    cached, total = resident_pages(path)
    return cached < total
