"""Remote archives -> verified files on disk -> safely unpacked folders.

Downloads go through pooch: into a scratch folder of their own beside the target
(.<archive>.partial-<pid><suffix>, files' one scratch name: pooch's own temporary files
stay inside it), hash-checked, then renamed into place; the scratch folder is removed
whatever happens, and a killed fetch's is removed by the next prepare (no other name is
ever cleaned up); failures are retried with back-off. A mirror
(IMGLOAD_MIRROR: a folder or a base URL) is tried first by archive file name, so an
offline site can drop the official archive into a folder. Unpacking extracts into a
scratch folder beside the target with tarfile's "data" filter (no absolute paths, no "..",
no links leading out, no device files; zip members checked the same way) and renames it
into place, so a refused or interrupted archive leaves nothing behind. Both go through
files.replacing, which deletes only the scratch names of the one target it is given.
A FetchError is a DatasetError: the one line prepare reports, as it is.

The same code runs in `make data` (.venv) and in asv's setup_cache inside every benchmark
environment: each stack in asv.conf.json pins pooch at the version constraints.txt gives .venv,
and ladder rungs install it too (envcheck.FETCHER, envcheck.fetch_requirements).
Progress is a tqdm bar on a terminal and plain lines elsewhere (see _Lines): asv captures
setup_cache's output and stops it after a stretch without any.
"""

from __future__ import annotations

import re
import shutil
import stat
import sys
import tarfile
import time
import zipfile
from pathlib import Path, PurePosixPath

from . import files, progress
from .datasets import DatasetError

RETRIES = 3  # further attempts after a failed download (pooch waits 1 s, 2 s, 3 s)
TIMEOUT = (
    60  # seconds requests waits to connect, and for each read: what bounds a stalled download
)
# Off a terminal, a progress line at least this often while bytes arrive. Under asv these lines
# are what keeps a long download going: asv stops a setup_cache after suite.SETUP_CACHE_TIMEOUT
# seconds *without output*, not after that long in all.
PROGRESS_SECONDS = 10.0


class FetchError(DatasetError):
    """A one-line reason a dataset's archive cannot be fetched, verified or unpacked."""


def _pooch():
    try:
        import pooch
    except ImportError:
        raise FetchError(
            f"fetching datasets needs pooch, which {sys.executable} lacks: pin it in this"
            " environment as every stack in asv.conf.json does, or run `make data` first"
        ) from None
    return pooch


def fetch(
    url: str,
    known_hash: str,
    dest: Path,
    mirror: str | None = None,
    retries: int | None = None,
    log=None,
) -> Path:
    """dest (from the mirror if it has it, else from url), its hash verified; reused if present.

    `log` (a callable taking one line) gets the progress lines where stderr is not a terminal."""
    retries = RETRIES if retries is None else retries
    _pooch()  # fail early, with the one-line reason, where pooch is missing
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file() and _hash_of(dest, known_hash) == known_hash.partition(":")[2]:
        return dest
    with files.replacing(
        dest, inside=True
    ) as part:  # pooch's temporary files go in the scratch folder too
        _fetch_into(part, url, known_hash, mirror, retries, log)
    return dest


def _fetch_into(
    dest: Path, url: str, known_hash: str, mirror: str | None, retries: int, log=None
) -> Path:
    """dest, verified, from the mirror if it has the file, else from url."""
    if mirror and "://" not in mirror:
        if (Path(mirror) / dest.name).is_file():  # a wrong copy there is an error, not a miss
            return _copy_verified(Path(mirror) / dest.name, known_hash, dest)
    elif mirror:
        try:
            return _download(
                mirror.rstrip("/") + "/" + dest.name, known_hash, dest, retries=0, log=log
            )
        except FetchError:
            pass  # not on the mirror: the source itself
    return _download(url, known_hash, dest, retries, log)


def _download(url: str, known_hash: str, dest: Path, retries: int, log=None) -> Path:
    pooch = _pooch()
    fetcher = pooch.create(
        path=dest.parent,
        base_url="",
        registry={dest.name: known_hash},
        urls={dest.name: url},
        retry_if_failed=retries,
    )
    progress = _progress(dest.name, log)
    try:
        fetcher.fetch(
            dest.name, downloader=pooch.HTTPDownloader(progressbar=progress, timeout=TIMEOUT)
        )
    except ValueError as e:  # pooch's hash mismatch: says expected and got
        progress.drop()
        raise FetchError(f"{url}: {e}") from None
    except Exception as e:  # requests' connection and HTTP errors, after the retries
        progress.drop()
        raise FetchError(
            f"{url}: download failed after {retries + 1} attempts: {_reason(e)}"
        ) from None
    progress.close()
    return dest


def _reason(e: Exception) -> str:
    """The root cause of a requests error, without the layers of reprs around it."""
    text = str(e)
    for pattern in (
        r"\[Errno -?\d+\] [^'\")]+",
        r"IncompleteRead\(\d+ bytes read, \d+ more expected\)",
        r"\d{3} (Client|Server) Error: .*",
    ):
        found = re.search(pattern, text)
        if found:
            return found.group(0)
    return text


def _progress(name: str, log):
    """A tqdm bar on a terminal (`make data`); plain lines through `log` anywhere else: asv
    captures setup_cache's output (a pipe, where a bar would be one endless line of carriage
    returns), and the benchmark environments have no tqdm."""
    if progress.on_terminal():
        return _Progress()
    return _Lines(name, log)


class _Lines:
    """pooch's progress-bar protocol as lines: how far, of how much, and the rate, once every
    PROGRESS_SECONDS while bytes arrive, and one when the download is complete. A failed attempt
    says nothing here (pooch logs the retry, and the error is the caller's one line)."""

    def __init__(self, name: str, log):
        self._name, self._log = name, log or (lambda msg: None)
        self._total = self._done = 0
        self._started = self._last = time.monotonic()
        self._running = False  # an attempt has started and not yet been closed

    @property
    def total(self) -> int:
        return self._total

    @total.setter
    def total(self, total: int) -> None:  # pooch sets it as each attempt starts
        self._total, self._done, self._running = total or 0, 0, True
        self._started = self._last = time.monotonic()

    def update(self, n: int) -> None:
        self._done = min(self._done + n, self._total) if self._total else self._done + n
        now = time.monotonic()
        if now - self._last >= PROGRESS_SECONDS:
            self._last = now
            self._log(self._line(now))

    def reset(self) -> None:  # pooch then reports the whole size with update(total)
        self._done = 0

    def close(
        self,
    ) -> None:  # pooch closes a complete download, and so does _download: say it once
        if self._running:
            self._running = False
            self._log(
                f"{self._name}: {_mb(self._done)} downloaded in"
                f" {time.monotonic() - self._started:.0f} s"
            )

    def drop(self) -> None:
        self._running = False

    def _line(self, now: float) -> str:
        rate = self._done / max(now - self._started, 1e-9)
        of = f" of {_mb(self._total)} ({100 * self._done // self._total}%)" if self._total else ""
        return f"{self._name}: {_mb(self._done)}{of}, {_mb(rate)}/s"


def _mb(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


class _Progress:
    """pooch's progress-bar protocol over tqdm. A bar appears only once an attempt has run
    for a second, is erased when the attempt fails, and its rate is the real one."""

    def __init__(self):
        self._bar = None

    @property
    def total(self):
        return self._bar.total if self._bar else None

    @total.setter
    def total(self, total: int) -> None:  # pooch sets it as each attempt starts
        from tqdm import tqdm

        self.drop()
        self._bar = tqdm(total=total or None, unit="B", unit_scale=True, ncols=79, delay=1.0)

    def update(self, n: int) -> None:
        self._bar.update(min(n, self._bar.total - self._bar.n) if self._bar.total else n)

    def reset(self) -> None:  # pooch then fills the bar with update(total)
        self._bar.update(
            -self._bar.n
        )  # unlike tqdm's reset(), keeps the start time: the rate stays true

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def drop(self) -> None:
        """Close and erase the bar (a failed attempt's)."""
        if self._bar is not None:
            self._bar.leave = False  # a failed attempt's bar is erased
            self.close()


def _hash_of(path: Path, known_hash: str) -> str:
    """Hex digest of path with the algorithm named in known_hash ("alg:hex")."""
    return _pooch().file_hash(str(path), alg=known_hash.partition(":")[0])


def _copy_verified(source: Path, known_hash: str, dest: Path) -> Path:
    """A mirror's copy at dest (in fetch's scratch folder, which fetch removes if it is wrong)."""
    if not source.is_file():
        raise FetchError(f"IMGLOAD_MIRROR: no {source.name} in {source.parent}")
    shutil.copyfile(source, dest)
    alg, _, expected = known_hash.partition(":")
    got = _hash_of(dest, known_hash)
    if got != expected:
        raise FetchError(f"{source}: {alg} is {got}, expected {expected}")
    return dest


def unpack(archive: Path, target: Path) -> Path:
    """Extract archive into target (which must not exist yet) all at once, or not at all."""
    archive, target = Path(archive), Path(target)
    with files.replacing(target) as partial:
        partial.mkdir()
        if tarfile.is_tarfile(archive):
            _untar(archive, partial)
        elif zipfile.is_zipfile(archive):
            _unzip(archive, partial)
        else:
            raise FetchError(f"{archive}: neither a tar nor a zip archive")
    return target


def _untar(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as tar:
        try:
            for member in tar:  # the data filter would strip a leading "/"; refuse it outright
                if member.name.startswith("/") or PurePosixPath(member.name).is_absolute():
                    raise FetchError(f"{archive}: refused member {member.name!r}: absolute path")
            tar.extractall(into, filter="data")
        except tarfile.FilterError as e:
            raise FetchError(f"{archive}: refused member {e.tarinfo.name!r}: {e}") from None
        except (tarfile.TarError, EOFError, OSError) as e:
            raise FetchError(f"{archive}: unreadable archive ({e})") from None


def _unzip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = PurePosixPath(info.filename)
            mode = info.external_attr >> 16
            if name.is_absolute() or ".." in name.parts or "\\" in info.filename:
                raise FetchError(
                    f"{archive}: refused member {info.filename!r}: path leads outside the target"
                )
            kind = stat.S_IFMT(mode)  # 0 when the writer recorded no Unix file type
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise FetchError(
                    f"{archive}: refused member {info.filename!r}: not a regular file or folder"
                )
        try:
            zf.extractall(into)
        except (zipfile.BadZipFile, OSError) as e:
            raise FetchError(f"{archive}: unreadable archive ({e})") from None
