"""Control and observe whether files sit in the OS page cache.

evict() asks the kernel to drop a file's cached pages (posix_fadvise DONTNEED: no root
needed, but only clean pages go, which is why prepared data is synced to disk);
resident_fraction() measures with mincore() over a read-only mapping, so cold and warm
are verified, not assumed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
from collections.abc import Iterable

_PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_ubyte)]
_MAP_FAILED = ctypes.c_void_p(-1).value


class PageCacheError(RuntimeError):
    pass


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


def resident_pages(path: str) -> tuple[int, int]:
    """(pages in the page cache, pages in the file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return 0, 0
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr == _MAP_FAILED:
            err = ctypes.get_errno()
            raise PageCacheError(f"mmap {path}: {os.strerror(err)}")
        try:
            pages = (size + _PAGE - 1) // _PAGE
            vec = (ctypes.c_ubyte * pages)()
            if _libc.mincore(addr, size, vec) != 0:
                err = ctypes.get_errno()
                raise PageCacheError(f"mincore {path}: {os.strerror(err)}")
            return sum(v & 1 for v in vec), pages
        finally:
            _libc.munmap(addr, size)
    finally:
        os.close(fd)


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
            f"cold cache not reached: {frac:.1%} of {len(files)} files still cached after eviction "
            f"(first: {files[0]}); data on tmpfs, or written and not yet synced?"
        )


def make_warm(files: list[str]) -> None:
    warm(files)
    frac = resident_fraction(files)
    if frac != 1.0:
        raise PageCacheError(
            f"warm cache not reached: {frac:.1%} of {len(files)} files cached after reading (first: {files[0]})"
        )
