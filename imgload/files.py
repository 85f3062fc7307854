"""Files, paths and the C library: what modules on both sides share (standard library only,
so the asv environments can import it).

    REPO                the repository root
    toml_path, known    a name in a folder (datasets/, ladders/) or a path to a .toml file
    libc                the C library, loaded once (syncfs, mmap and mincore, prctl)
    replacing           write beside, then rename: a file or folder appears whole or not at all
    write_atomic        replacing() for a text file
    is_scratch          the scratch names, recognized
    remove_stale        what killed processes left beside a target, removed

One name for everything written beside its target first:

    .<name>.partial-<pid><suffix>

<name> is the target's own file or folder name, <pid> the writing process, and <suffix>
the target's suffix again (".toml", ".png"; nothing for a name without a dot), so that a
check or a tool that goes by the suffix sees the real one (ladder.load telling a path from
a name, matplotlib choosing the format). datasets renames a set it discards to
`.<name>.partial-discard-<pid><suffix>` before deleting it. is_scratch() recognizes exactly
these names for one target name, plus `.<name>.part-<pid>` (a download's scratch folder as
fetch named it before this scheme) and `.<name>.partial-<pid>` without the suffix (a scratch
of a dotted name, as prepare named it before), so that what older versions left is cleaned
up too. Every clean-up here deletes only names is_scratch recognizes for the target it is
given, in the target's own folder, and never follows a link: a user's file, another
target's scratch or anything elsewhere is never touched (issue 10).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRATCH = "partial"  # the word in every scratch name: .<name>.partial-<pid><suffix>
DISCARD = (
    "discard"  # .<name>.partial-discard-<pid><suffix>: a set renamed away before it is deleted
)


# ---------------------------------------------------------------- paths


def toml_path(name_or_path: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """`name_or_path` itself if it names a .toml file, else <folder>/<name>.toml."""
    text = str(name_or_path)
    return Path(text) if text.endswith(".toml") else Path(folder) / f"{text}.toml"


def known(folder: str | os.PathLike) -> list[str]:
    """The names toml_path() finds in `folder`, sorted (hidden files left out: a scratch copy
    being written is not a name)."""
    return sorted(p.stem for p in Path(folder).glob("*.toml") if not p.name.startswith("."))


@functools.cache
def libc() -> ctypes.CDLL:
    """The C library, loaded once per process, with errno kept for ctypes.get_errno().
    Its functions are shared by every caller: set argtypes and restype only to the C prototypes."""
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


# ---------------------------------------------------------------- write beside, then rename


def scratch_path(target: str | os.PathLike, kind: str = "") -> Path:
    """This process's scratch name for `target`, in the same folder: .<name>.partial-<pid><suffix>
    (kind=DISCARD: .<name>.partial-discard-<pid><suffix>)."""
    if kind not in ("", DISCARD):
        raise ValueError(f"scratch kind {kind!r}: expected '' or {DISCARD!r}")
    target = Path(target)
    return target.with_name(
        f".{target.name}.{SCRATCH}-{kind + '-' if kind else ''}{os.getpid()}{target.suffix}"
    )


def _pattern(own: str) -> re.Pattern | None:
    if not own or own in (".", "..") or "/" in own or "\0" in own:
        return None
    suffix = re.escape(Path(own).suffix)
    return re.compile(
        rf"\.{re.escape(own)}\.(?:{SCRATCH}-(?:{DISCARD}-)?(?P<pid>[0-9]+)(?:{suffix})?|part-(?P<old>[0-9]+))"
    )


def is_scratch(name: str, own: str) -> bool:
    """Whether `name` (a file name, no folder) is one this code gives the scratch of `own`:
    .own.partial-<pid><suffix>, .own.partial-discard-<pid><suffix>, or the older
    .own.partial-<pid> and .own.part-<pid>."""
    pattern = _pattern(own)
    return pattern is not None and pattern.fullmatch(name) is not None


def _remove(path: Path, own: str) -> None:
    """Delete `path`, a scratch of `own` (a folder and all it holds, or a file, or a link itself,
    never what it points to); absent is fine. Any other name is refused: that would be a bug."""
    if not is_scratch(path.name, own):
        raise ValueError(f"refusing to delete {path}: not a scratch name of {own!r}")
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def replacing(target: str | os.PathLike, *, inside: bool = False) -> Iterator[Path]:
    """Write beside, then rename. Yields a scratch path beside `target` (scratch_path(), absent:
    the block makes the file or folder there); when the block succeeds it is renamed onto
    `target` in one os.replace, and when the block fails it is removed, file or folder. So
    `target` is never seen half-written, and a killed process leaves only a name that
    remove_stale() recognizes. The folder is created if missing.

    inside=True: the scratch is a folder, made here, and the path yielded is scratch/<name>,
    which is what is renamed onto `target`; the folder then goes. For a tool that writes
    temporary files of its own beside its output (pooch's download): they stay in the scratch
    folder, and go with it even when the process is killed.

    os.replace puts a folder over an existing one only if that one is empty: a caller that
    replaces a folder removes the old one first, at the end of the block."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = scratch_path(target)
    _remove(scratch, target.name)  # this process's own, from an attempt before
    made = scratch / target.name if inside else scratch
    try:
        if inside:
            scratch.mkdir()
        yield made
        os.replace(made, target)
    finally:
        _remove(scratch, target.name)  # gone already once renamed into place (or, inside, emptied)


def write_atomic(
    path: str | os.PathLike, text: str, check: Callable[[Path], object] | None = None
) -> None:
    """Replace `path` with `text` in one rename; `check(scratch path)` may refuse it by raising,
    and then the old file stays. The scratch name ends in the target's suffix, for checks that
    look at it."""
    with replacing(path) as scratch:
        scratch.write_text(text)
        if check is not None:
            check(scratch)


def remove_stale(folder: str | os.PathLike, own: str, *, locked: bool = False) -> None:
    """Remove the scratch of `own` that killed processes left in `folder`: every name is_scratch()
    recognizes whose process is no longer running, or, with `locked` (the caller holds the lock
    every writer of `own` takes, so nobody else is writing one), all of them. Names of other
    targets' scratch never match; a link is removed, never followed."""
    pattern = _pattern(own)
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return
    for name in names:
        found = pattern and pattern.fullmatch(name)
        if found and (locked or not _running(int(found["pid"] or found["old"]))):
            _remove(Path(folder) / name, own)


def _running(pid: int) -> bool:
    """Whether a process `pid` exists (one of another user counts; pid 0 is never one we wrote)."""
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: more digits than any pid has
        return False
    except PermissionError:
        return True
    return True
