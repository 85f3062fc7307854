"""Dataset manifests -> prepared, verified folders that every environment reads.

    <data dir>/<name>/           prepared set: <fmt>/ folders, batches/, containers/ (the
                                 sample packed, imgload.containers), index.json,
                                 SHA256SUMS, and COMPLETE (written last)
    <data dir>/sources/<name>/   source batches (generated, or unpacked downloads)
    <data dir>/downloads/<archive>   fetched archives (url sources)
    <data dir>/.locks/<name>.lock, .locks/downloads/<archive>.lock
    .<name>.partial-<pid>        scratch beside a set, its sources or a download (files'
                                 one scratch name; a download's ends in the archive's suffix
                                 again): what a killed prepare left is removed by the next
                                 prepare of the same set, and nothing else is

A set is used only when COMPLETE holds the digest of its manifest and every file has the
size index.json records; anything else is rebuilt in a partial folder beside it and moved
into place with one rename (files.replacing), under an exclusive lock, so concurrent
prepares (asv runs setup_cache once per environment) and interrupted ones never expose a
half-written set.
The same code prepares a set in `make data` and in asv's setup_cache, in every stack: a
remote archive is fetched once, by whichever prepare takes the lock first.

A manifest is validated whole (manifest_check) before anything is written or deleted, and
every deletion goes through remove_owned, which refuses any path outside what the
operation owns, or through files' scratch handling, which deletes only the scratch names
of the one target it is given: a wrong name or archive in a manifest cannot delete another
set, the data dir's shared folders, or anything outside the data dir.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import (
    cifar,
    containers,
    files,
    imagefolder,
    manifest_check,
    materialize,
    progress,
    synthetic,
)
from .errors import UserError

REPO = files.REPO
MANIFESTS = REPO / "datasets"
SMALL_DEFAULT = "synthetic-cifar10"
LARGE_DEFAULT = "synthetic-large"
MARKER = "COMPLETE"
LAYOUTS = manifest_check.KINDS  # source kind -> layouts read
DOWNLOADS, SOURCES, LOCKS = (
    "downloads",
    "sources",
    ".locks",
)  # the data dir's own folders: no dataset may take these names
SOURCE_MARKER = (
    ".imgload-source"  # in sources/<name>/: the digest of the [source] table they were made from
)
FORMAT_VERSION = 1  # bump when the prepared layout changes: old sets are then rebuilt
LOCK_POLL = 0.5  # seconds between tries at a lock another process holds
# While waiting for a lock, a line at least this often: under asv the wait is a setup_cache
# waiting for another environment's prepare, and asv stops a setup_cache after
# suite.SETUP_CACHE_TIMEOUT seconds without output.
LOCK_HEARTBEAT = 30.0


class DatasetError(UserError):
    """A one-line, user-facing reason a dataset cannot be prepared or used."""


@dataclass(frozen=True)
class Manifest:
    name: str
    description: str
    licence: str
    layout: str  # "cifar-python", "image-folder" or "arrays"
    formats: tuple[str, ...]
    source: dict
    sample: int  # images each timed call loads in the default profile
    batches: bool = False
    containers: tuple[str, ...] = ()  # packed copies of the sample's JPEGs (imgload.containers)
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def digest(self) -> str:
        blob = json.dumps({"v": FORMAT_VERSION, "manifest": self.raw}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def manifest(name_or_path: str | os.PathLike) -> Manifest:
    """A manifest by name (datasets/<name>.toml) or by path to a .toml file, validated whole
    (manifest_check) before anything uses it: a wrong value is one line naming the file, the
    key, what was found and what is expected."""
    path = files.toml_path(name_or_path, MANIFESTS)
    raw = _read_manifest(path)
    problem = manifest_check.problem(raw, reserved=(DOWNLOADS, SOURCES, LOCKS))
    if problem:
        raise DatasetError(f"{path}: {problem}")
    return Manifest(
        name=raw["name"],
        description=raw.get("description", ""),
        licence=raw.get("licence", ""),
        layout=raw["layout"],
        formats=tuple(raw["formats"]),
        source=dict(raw["source"]),
        sample=raw["sample"]["default"],
        batches=raw.get("batches", False),
        containers=tuple(raw.get("containers", ())),
        raw=raw,
    )


def _read_manifest(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        known = ", ".join(files.known(MANIFESTS))
        raise DatasetError(f"no dataset manifest {path} (known datasets: {known})") from None
    except tomllib.TOMLDecodeError as e:
        raise DatasetError(f"{path}: invalid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise DatasetError(
            f"{path}: not UTF-8 text ({e.reason} at byte {e.start}), as TOML must be"
        ) from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read the manifest ({e.strerror})") from None


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data dir: `data_dir` (--data-dir), else $IMGLOAD_DATA_DIR,
    else .data/ in the repository.

    A relative path is taken relative to the repository root, not to the current folder, and
    resolved each time it is read (a leading ~ is expanded): asv runs setup_cache in a temporary
    folder, where a path relative to the current folder would name a fresh data dir that is
    regenerated there and thrown away, and `make data`'s prepared copy would never be read."""
    chosen = data_dir or os.environ.get("IMGLOAD_DATA_DIR") or ".data"
    return (REPO / Path(chosen).expanduser()).resolve()


def is_complete(target: Path, m: Manifest) -> bool:
    """Marked complete for this manifest, and the cheap checks find nothing wrong."""
    try:
        if (target / MARKER).read_text().strip() != m.digest:
            return False
    except (OSError, ValueError):  # no marker, or not text
        return False
    return first_problem(target, full=False) is None


class _Problem(Exception):
    """One thing wrong with a prepared set, as the line `data verify` prints."""


def first_problem(target: Path, full: bool = True) -> str | None:
    """The first thing wrong with a prepared set, as one line, or None.

    Cheap (full=False: what prepare checks before it reuses a set): index.json readable, and
    every file it lists, batch files included, present with the size it records. That is one
    stat per file (about 2.5 us each here: 0.75 s for the 300,000 files of synthetic-cifar10),
    so a file truncated or deleted anywhere forces a rebuild instead of failing a benchmark.
    Full (`data verify`): also no stray file in a format or batch folder, and every file
    against SHA256SUMS. A damaged index.json or SHA256SUMS is a problem like any other."""
    target = Path(target)
    try:
        files = _listed_files(target)
        _check_sizes(target, files)
        if full:
            _check_strays(files)
            _check_checksums(target, files)
    except _Problem as e:
        return str(e)
    return None


def _rebuild_hint(target: Path) -> str:
    """The next command for a problem the cheap check also sees: prepare then rebuilds the set."""
    return f"; run: python -m imgload data prepare {target.name} (it rebuilds the set)"


def _discard_hint(target: Path) -> str:
    """The next command for a problem only the full check sees:
    prepare would reuse the set as it is."""
    return (
        f"; to rebuild, delete {target / MARKER} and run: python -m imgload data prepare"
        f" {target.name}"
    )


def _listed_files(target: Path) -> dict[str, int]:
    """Every file index.json lists (format files, then batch files) -> the size it records."""
    path = target / "index.json"
    try:
        index = load_index(target)
    except FileNotFoundError:
        raise _Problem(f"{path}: missing{_rebuild_hint(target)}") from None
    except (OSError, ValueError) as e:  # ValueError: not JSON, or not UTF-8
        raise _Problem(f"{path}: unreadable ({e}){_rebuild_hint(target)}") from None
    try:
        return _recorded_sizes(target, index)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _Problem(
            f"{path}: malformed ({type(e).__name__}: {e}){_rebuild_hint(target)}"
        ) from None


def _recorded_sizes(target: Path, index: dict) -> dict[str, int]:
    files = {}
    for fmt, summary in index["formats"].items():
        if fmt not in materialize.FORMATS:
            raise ValueError(f"unknown format {fmt!r}")
        if "sizes" not in summary:
            raise _Problem(
                f"{target / 'index.json'}: records no file sizes (written by an older"
                f" imgload){_rebuild_hint(target)}"
            )
        sizes, count = summary["sizes"], int(index["count"])
        if len(sizes) != count:
            raise ValueError(f"{len(sizes)} {fmt} sizes for {count} images")
        files.update(zip(file_paths(target, index, fmt, range(count)), sizes))
    for name, info in index["batches"].items():
        for fmt in materialize.BATCH_SUFFIX:
            files[str(materialize.batch_path(target, fmt, name))] = info["bytes"][fmt]
    files.update((path, size) for path, size, _ in containers.recorded(target, index))
    return files


def _check_sizes(target: Path, files: dict[str, int]) -> None:
    """One stat per file: each present, with the size index.json records."""
    for path, size in files.items():
        try:
            actual = os.stat(path).st_size
        except FileNotFoundError:
            raise _Problem(f"{path}: missing{_rebuild_hint(target)}") from None
        except OSError as e:
            raise _Problem(f"{path}: unreadable ({e.strerror}){_rebuild_hint(target)}") from None
        if actual != size:
            what = (
                "zero bytes"
                if actual == 0
                else f"content differs from what was prepared ({actual:,} bytes, index.json"
                f" records {size:,})"
            )
            raise _Problem(f"{path}: {what}{_rebuild_hint(target)}")


def _check_strays(files: dict[str, int]) -> None:
    """Nothing but the listed files in the folders that hold them (a stray file is not in any
    checksum, and a loader globbing the folder would read it)."""
    for folder in sorted({os.path.dirname(p) for p in files}):
        try:
            names = sorted(os.listdir(folder))
        except OSError as e:
            raise _Problem(f"{folder}: unreadable ({e.strerror})") from None
        for name in names:
            path = os.path.join(folder, name)
            if path not in files:
                raise _Problem(f"{path}: stray file, not part of the prepared set (delete it)")


CHECKSUM_LINE = re.compile(
    r"([0-9a-f]{64})  (\S.*)"
)  # what sha256sum writes and `sha256sum -c` reads


def _check_line(sums: Path, target: Path, wanted: dict, seen: set, number: int, line: str):
    """One SHA256SUMS line: well formed, naming a file of the set once, whose digest is equal."""
    found = CHECKSUM_LINE.fullmatch(line)
    name = found and found.group(2)
    if not found or name not in wanted or name in seen:
        why = (
            "is not '<sha256>  <file>'"
            if not found
            else "names a file twice"
            if name in seen
            else "names no file of the set"
        )
        raise _Problem(f"{sums} line {number}: {line[:160]!r} {why}{_discard_hint(target)}")
    seen.add(name)
    if hashlib.sha256(Path(wanted[name]).read_bytes()).hexdigest() != found.group(1):
        raise _Problem(
            f"{wanted[name]}: content differs from what was prepared (truncated or"
            f" corrupt){_discard_hint(target)}"
        )


def _check_checksums(target: Path, files: dict[str, int]) -> None:
    """Every format file against SHA256SUMS: one well-formed line per file, digests equal."""
    sums = target / "SHA256SUMS"
    prefix = f"{target}/"
    # batches are checked by size only; containers against the digests index.json records
    apart = (f"{prefix}batches/", f"{prefix}{containers.FOLDER}/")
    wanted = {p[len(prefix) :]: p for p in files if not p.startswith(apart)}
    try:
        lines = sums.read_text().splitlines()
    except FileNotFoundError:
        raise _Problem(f"{sums}: missing{_discard_hint(target)}") from None
    except (OSError, ValueError) as e:
        raise _Problem(f"{sums}: unreadable ({e}){_discard_hint(target)}") from None
    if len(lines) != len(wanted):
        raise _Problem(
            f"{sums}: {len(lines)} entries, expected {len(wanted)}{_discard_hint(target)}"
        )
    seen = set()
    with progress.bar(len(lines), "verifying", unit="file") as shown:
        for number, line in enumerate(lines, 1):
            _check_line(sums, target, wanted, seen, number, line)
            shown.update()
    for path, _, digest in containers.recorded(target, load_index(target)):
        if containers.sha256(path) != digest:
            raise _Problem(
                f"{path}: content differs from what was prepared (truncated or corrupt; its"
                f" sha256 is not the one index.json records){_discard_hint(target)}"
            )


def load_index(target: Path) -> dict:
    """index.json of a prepared set (parsed once per version of the file: setup reads it
    before every timed call, and the 60,000-image index takes ~40 ms to parse)."""
    path = Path(target) / "index.json"
    return _parsed_index(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _parsed_index(path: str, mtime_ns: int) -> dict:
    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------- preparing


def prepare(
    dataset: str | os.PathLike,
    data_dir: str | os.PathLike | None = None,
    log=None,
    url: str | None = None,
) -> Path:
    """Path of the prepared dataset, building it first if needed (idempotent, locked).

    `url` replaces the manifest's download address; the manifest's hash must still match."""
    m = manifest(dataset)  # validated whole before anything is written or deleted
    root = data_root(data_dir)
    target = root / m.name
    if is_complete(target, m):
        return target
    try:  # a stack that cannot write a format stops here, before anything is made or removed
        materialize.check_encoders(m.formats)
    except materialize.EncoderMissing as e:
        raise DatasetError(f"dataset {m.name}: {e}") from None
    _ensure_writable(root)
    with _locked(root / LOCKS / f"{m.name}.lock", log, f"preparing {m.name}"):
        if is_complete(target, m):  # another process finished while we waited
            return target
        _discard(target, m.name)
        files.remove_stale(root, m.name, locked=True)  # what a killed prepare left
        files.remove_stale(root / SOURCES, m.name, locked=True)
        started = time.perf_counter()
        source = _source(m, root, log, url)
        try:
            with files.replacing(target) as partial:
                _build(m, partial, source, log)
                _seal(partial, m, started)
        except imagefolder.ImageFolderError as e:
            raise DatasetError(f"dataset {m.name}: {e}") from None
        _fsync_dir(root)
    return target


def _seal(partial: Path, m: Manifest, started: float) -> None:
    """Record how long the prepare took, then write COMPLETE, last."""
    index = json.loads((partial / "index.json").read_text())
    index["prepare_seconds"] = round(time.perf_counter() - started, 2)
    _write_synced(partial / "index.json", json.dumps(index, indent=1))
    _write_synced(partial / MARKER, m.digest + "\n")


def _ensure_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / LOCKS).mkdir(exist_ok=True)
        probe = root / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DatasetError(
            f"data dir {root} is not writable ({e.strerror}); set IMGLOAD_DATA_DIR"
        ) from None


@contextlib.contextmanager
def _locked(path: Path, log=None, doing: str = "holding it"):
    """An exclusive lock on `path`, released by the kernel if we are killed. `doing` says what
    the holder is doing, in the lines a wait prints (see _wait_for_lock)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        _wait_for_lock(f, path, log, doing)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _wait_for_lock(f, path: Path, log, doing: str) -> None:
    """Take the lock; while another process holds it, say so, then again every LOCK_HEARTBEAT
    seconds. Polled rather than blocking, so that the wait can speak: under asv it is one
    environment's setup_cache waiting for another's download, and those lines are the output
    that keeps asv from stopping a setup_cache that is only waiting its turn."""
    if _try_lock(f):
        return
    started = last = time.monotonic()
    _say(log, f"waiting for another process {doing} (lock {path})")
    while not _try_lock(f):
        time.sleep(LOCK_POLL)
        now = time.monotonic()
        if now - last >= LOCK_HEARTBEAT:
            last = now
            _say(log, f"still waiting for another process {doing} ({now - started:.0f} s)")


def _try_lock(f) -> bool:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


# ---------------------------------------------------------------- deleting, confined


def remove_owned(path: str | os.PathLike, folder: str | os.PathLike, own: str) -> None:
    """Delete `path` (a file, a link, or a folder and all it holds), but only if it is what an
    operation on `own` owns in `folder`: `folder/own` itself or anything inside it, or one of
    its scratch siblings, the names files.is_scratch recognizes (`.own.partial-<pid>`,
    `.own.partial-discard-<pid>`, `.own.part-<pid>`, ...). Absent is fine.

    Every deletion of prepare and fetch goes through here or through files' scratch handling
    (which deletes only scratch names of the one target it is given), so that no manifest,
    data dir or bug can make one reach another set, the data dir's shared folders or anything
    outside.
    Paths are compared resolved (is_relative_to), the path's folder resolved but not the path
    itself: `..` or a link on the way cannot carry a deletion elsewhere, and a link at the
    path is removed, never followed. A refusal is a DatasetError; manifest_check refuses every
    name that could lead here first, so one means a bug, not a user's slip."""
    path, home = Path(path), Path(folder).resolve()
    where = path.parent.resolve() / path.name
    inside = where != home and path.name not in ("", ".", "..") and where.is_relative_to(home)
    first = where.relative_to(home).parts[0] if inside else ""
    if not own or not (first == own or files.is_scratch(first, own)):
        raise DatasetError(
            f"refusing to delete {path}: it is neither {home / own} nor one of its partial folders"
        )
    if where.is_dir() and not where.is_symlink():
        shutil.rmtree(where)
    else:
        where.unlink(missing_ok=True)


def _discard(target: Path, own: str) -> None:
    """Remove an incomplete or outdated set: rename first,
    so no half-deleted set keeps its name."""
    if os.path.lexists(target):
        doomed = files.scratch_path(target, files.DISCARD)
        os.replace(target, doomed)
        remove_owned(doomed, target.parent, own)


# ---------------------------------------------------------------- reading sources


@dataclass
class Source:
    """What a layout yields: the images (train first) and what the index keeps about them."""

    images: object  # (N, H, W, 3) uint8 array, or imagefolder.Images (decoded on access)
    labels: list[int]
    filenames: list[str]
    n_train: int
    batches: dict = field(default_factory=dict)  # batch name -> (source file, its images)
    classes: list[str] = field(default_factory=list)


def _source(m: Manifest, root: Path, log, url: str | None = None) -> Source:
    if m.source["kind"] == "url":
        return _remote(m, root, log, url)
    seed, shape = m.source["seed"], tuple(m.source["shape"])
    n_train, n_test = m.source["train"], m.source.get("test", 0)
    _say(
        log, f"generating {n_train + n_test} synthetic {shape[0]}x{shape[1]} images (seed {seed})"
    )
    images = synthetic.images(seed, n_train + n_test, shape)
    labels = synthetic.labels(seed, n_train + n_test)
    names = [f"synthetic_{i:05d}.png" for i in range(n_train + n_test)]
    if m.layout == "arrays":
        return Source(images, labels.tolist(), names, n_train)
    train = cifar.Split(images[:n_train], labels[:n_train], names[:n_train])
    test = cifar.Split(images[n_train:], labels[n_train:], names[n_train:])
    # Write the batches exactly as the official archive lays them out, then read them back
    # through the same reader the real CIFAR-10 goes through.
    src = root / SOURCES / m.name
    if not _sources_current(src, m):
        with files.replacing(src) as partial:
            cifar.write(partial / cifar.FOLDER, train, test)
            _mark_sources(partial, m)
            remove_owned(
                src, src.parent, m.name
            )  # outdated sources: a folder is renamed only onto none
    try:
        return _read_cifar(src / cifar.FOLDER)
    except (OSError, ValueError) as e:
        raise DatasetError(
            f"dataset {m.name}: {e}; delete {src} and run the prepare again"
        ) from None


def _source_digest(m: Manifest) -> str:
    blob = json.dumps({"v": FORMAT_VERSION, "source": m.raw["source"]}, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def _sources_current(src: Path, m: Manifest) -> bool:
    """sources/<name> was made from this manifest's [source] table (a manifest changed under
    the same name, another seed or archive, must not be built from the old sources)."""
    try:
        return (src / SOURCE_MARKER).read_text().strip() == _source_digest(m)
    except (OSError, ValueError):
        return False


def _mark_sources(src: Path, m: Manifest) -> None:
    _write_synced(src / SOURCE_MARKER, _source_digest(m) + "\n")


def _remote(m: Manifest, root: Path, log, url: str | None) -> Source:
    from . import fetch

    src = root / SOURCES / m.name
    try:
        if not _sources_current(src, m):  # unpacked whole, or not at all (renamed into place)
            archive = _fetch_archive(m, root, log, url)
            remove_owned(src, src.parent, m.name)
            _say(log, f"unpacking {archive.name}")
            fetch.unpack(archive, src)
            _mark_sources(src, m)
        if m.layout == "image-folder":
            return _read_image_folder(
                src / m.source.get("folder", ""), m.source.get("train"), m.source.get("test")
            )
        return _read_cifar(src / m.source.get("folder", cifar.FOLDER))
    except cifar.UnsafePickleError as e:
        raise DatasetError(f"refusing {e}") from None
    except (
        OSError,
        ValueError,
        imagefolder.ImageFolderError,
    ) as e:  # a FetchError is a DatasetError already
        raise DatasetError(f"dataset {m.name}: {e}") from None


def _fetch_archive(m: Manifest, root: Path, log, url: str | None) -> Path:
    """downloads/<archive>, hash-verified, fetched under a lock of its own: sets that share an
    archive share the file, and one set's clean-up never deletes another's download under way."""
    from . import fetch

    archive = root / DOWNLOADS / m.source["archive"]
    with _locked(
        root / LOCKS / DOWNLOADS / f"{archive.name}.lock", log, f"fetching {archive.name}"
    ):
        files.remove_stale(archive.parent, archive.name, locked=True)  # what a killed fetch left
        size = m.source.get("size")
        _say(log, f"fetching {archive.name}" + (f" ({size:,} bytes)" if size else ""))
        return fetch.fetch(
            url or m.source["url"],
            m.source["hash"],
            archive,
            mirror=os.environ.get("IMGLOAD_MIRROR"),
            log=log,
        )


def _read_cifar(folder: Path) -> Source:
    train, test = cifar.read(folder)
    batches, start = {}, 0
    for name, size in zip(cifar.TRAIN_BATCHES, train.batch_sizes):
        batches[name] = (folder / name, train.images[start : start + size])
        start += size
    batches[cifar.TEST_BATCH] = (folder / cifar.TEST_BATCH, test.images)
    images = np.concatenate([train.images, test.images]) if len(test.images) else train.images
    labels = np.concatenate([train.labels, test.labels]).tolist()
    return Source(
        images,
        labels,
        train.filenames + test.filenames,
        len(train.images),
        batches,
        list(cifar.LABEL_NAMES),
    )


def _read_image_folder(folder: Path, train: str | None, test: str | None) -> Source:
    listing = imagefolder.list_images(folder, train, test)
    images = imagefolder.Images(listing.paths)
    return Source(
        images,
        list(listing.labels),
        list(listing.relative),
        listing.n_train,
        classes=list(listing.classes),
    )


def _build(m: Manifest, partial: Path, source: Source, log) -> None:
    partial.mkdir(parents=True)
    images = source.images
    shapes = (
        images.shapes()
        if isinstance(images, imagefolder.Images)
        else [tuple(images.shape[1:])] * len(images)
    )
    _say(log, f"writing {len(images)} images as {', '.join(m.formats)} into {partial.parent}")
    files = materialize.write_files(images, partial, m.formats)
    batches = materialize.write_batches(partial, source.batches) if m.batches else {}
    width = materialize.stem_width(len(images))
    _write_synced(
        partial / "SHA256SUMS", "\n".join(materialize.checksum_lines(files, width)) + "\n"
    )
    same = len(set(shapes)) == 1
    index = {
        "name": m.name,
        "description": m.description,
        "licence": m.licence,
        "layout": m.layout,
        "manifest_digest": m.digest,
        "count": len(images),
        "train": source.n_train,
        "test": len(images) - source.n_train,
        "shape": list(shapes[0]) if same else None,  # None: sizes vary, see "shapes"
        **({} if same else {"shapes": [list(s) for s in shapes]}),
        "stem_width": width,
        "sample": m.sample,
        "labels": [int(x) for x in source.labels],
        "classes": source.classes,
        "filenames": list(source.filenames),
        "formats": {fmt: _size_summary(fmt, info["sizes"]) for fmt, info in files.items()},
        "batches": batches,
        "encoding": {
            **materialize.encoding_record(m.formats),
            **({"originals": ORIGINALS_NOTE} if isinstance(images, imagefolder.Images) else {}),
        },
    }
    if m.containers:
        index["containers"] = _write_containers(m, partial, index, log)
    (partial / "index.json").write_text(json.dumps(index, indent=1))
    _sync_filesystem(partial)  # eviction drops only clean pages: everything must be on disk


def _write_containers(m: Manifest, partial: Path, index: dict, log) -> dict:
    """The manifest's containers, from the jpeg/ files just written: the default profile's
    sample only, in its order (imgload.containers says why)."""
    indices = sample_indices(index, "default")
    _say(log, f"packing the {len(indices)} sampled JPEGs as {', '.join(m.containers)}")
    try:
        return containers.write(
            partial,
            m.containers,
            indices,
            file_paths(partial, index, "jpeg", indices),
            [index["labels"][i] for i in indices],
            index["stem_width"],
        )
    except containers.ContainerError as e:
        raise DatasetError(f"dataset {m.name}: {e}") from None


ORIGINALS_NOTE = (
    "png and jpeg files are the archive's own bytes where it held 8-bit RGB files of that format"
    " without EXIF rotation; the rest are encoded as above"
)


def _size_summary(fmt: str, sizes: list[int]) -> dict:
    """What info and the report show, plus every file's size (in stem order), which the cheap
    check before reuse compares with one stat per file."""
    a = np.asarray(sizes, dtype=np.int64)
    return {
        "count": int(a.size),
        "suffix": materialize.SUFFIX[fmt],
        "total_bytes": int(a.sum()),
        "mean_bytes": round(float(a.mean()), 1),
        "min_bytes": int(a.min()),
        "max_bytes": int(a.max()),
        "sizes": [int(x) for x in sizes],
    }


def _say(log, msg: str) -> None:
    if log:
        log(msg)


def _write_synced(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_filesystem(path: Path) -> None:
    """One syncfs() for the filesystem holding `path` (os.sync() where syncfs is missing)."""
    libc = files.libc()
    fd = os.open(path, os.O_RDONLY)
    try:
        if not hasattr(libc, "syncfs") or libc.syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


# ---------------------------------------------------------------- choosing files


PROFILES = ("default", "full", "smoke")
SMOKE_FILES = 16  # per timed call under IMGLOAD_PROFILE=smoke: checks that all runs, not speed


def profile() -> str:
    value = os.environ.get("IMGLOAD_PROFILE", "default")
    if value not in PROFILES:
        raise DatasetError(f"IMGLOAD_PROFILE={value!r}: expected one of {', '.join(PROFILES)}")
    return value


def sample_indices(index: dict, which: str = "default") -> np.ndarray:
    """Fixed, evenly spread training-image indices a timed call loads ('full': all of them).

    The last image of the set is never sampled: it primes decoders outside the timing."""
    pool = min(index["train"], index["count"] - 1)
    if which == "full":
        return np.arange(pool)
    k = min(index["sample"] if which == "default" else SMOKE_FILES, pool)
    return np.unique(np.linspace(0, pool - 1, k).round().astype(np.int64))


def file_paths(root: Path, index: dict, fmt: str, indices) -> list[str]:
    if fmt not in index["formats"]:
        raise DatasetError(
            f"dataset {index['name']} has no {fmt!r} files (it has {', '.join(index['formats'])})"
        )
    folder, width, suffix = (
        os.path.join(root, fmt),
        index["stem_width"],
        index["formats"][fmt]["suffix"],
    )
    return [f"{folder}/{int(i):0{width}d}{suffix}" for i in indices]


def file_path(root: Path, index: dict, fmt: str, i: int) -> str:
    return file_paths(root, index, fmt, [i])[0]


def sample_files(root: Path, fmt: str, which: str | None = None) -> list[str]:
    index = load_index(root)
    return file_paths(root, index, fmt, sample_indices(index, which or profile()))


def priming_file(root: Path, fmt: str) -> str:
    index = load_index(root)
    return file_path(root, index, fmt, index["count"] - 1)


def batch_file(root: Path, fmt: str, name: str = cifar.TRAIN_BATCHES[0]) -> str:
    path = materialize.batch_path(root, fmt, name)
    if not path.is_file():
        raise DatasetError(f"{path}: no such batch file (does this dataset have batches?)")
    return str(path)
