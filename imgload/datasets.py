"""Dataset manifests -> prepared, verified folders that every environment reads.

    <data dir>/<name>/           prepared set: <fmt>/ folders, batches/, index.json,
                                 SHA256SUMS, and COMPLETE (written last)
    <data dir>/sources/<name>/   source batches (generated, or unpacked downloads)
    <data dir>/.locks/<name>.lock

A set is used only when COMPLETE holds the digest of its manifest; anything else is
rebuilt in a partial folder beside it and moved into place with one rename, under an
exclusive lock, so concurrent prepares (asv runs setup_cache once per environment)
and interrupted ones never expose a half-written set.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import functools
import hashlib
import json
import os
import shutil
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import cifar, imagefolder, materialize, synthetic

REPO = Path(__file__).resolve().parent.parent
MANIFESTS = REPO / "datasets"
SMALL_DEFAULT = "synthetic-cifar10"
LARGE_DEFAULT = "synthetic-large"
MARKER = "COMPLETE"
LAYOUTS = {"synthetic": ("cifar-python", "arrays"), "url": ("cifar-python", "image-folder")}  # source kind -> layouts read
FORMAT_VERSION = 1  # bump when the prepared layout changes: old sets are then rebuilt


class DatasetError(RuntimeError):
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
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def digest(self) -> str:
        blob = json.dumps({"v": FORMAT_VERSION, "manifest": self.raw}, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def manifest(name_or_path: str | os.PathLike) -> Manifest:
    """A manifest by name (datasets/<name>.toml) or by path to a .toml file."""
    text = str(name_or_path)
    path = Path(text) if text.endswith(".toml") else MANIFESTS / f"{text}.toml"
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        known = ", ".join(sorted(p.stem for p in MANIFESTS.glob("*.toml")))
        raise DatasetError(f"no dataset manifest {path} (known datasets: {known})") from None
    except tomllib.TOMLDecodeError as e:
        raise DatasetError(f"{path}: invalid TOML: {e}") from None
    try:
        formats = tuple(raw["formats"])
        unknown = set(formats) - set(materialize.FORMATS)
        if unknown:
            raise DatasetError(f"{path}: unknown formats {sorted(unknown)}")
        source = raw["source"]
        layouts = LAYOUTS.get(source.get("kind"))
        if layouts is None:
            raise DatasetError(f"{path}: source kind {source.get('kind')!r} is not one of {', '.join(LAYOUTS)}")
        if raw["layout"] not in layouts:
            raise DatasetError(f"{path}: layout {raw['layout']!r} is not supported for {source['kind']} sources ({', '.join(layouts)})")
        if source.get("kind") == "url":
            for key in ("url", "archive"):
                if not source.get(key):
                    raise DatasetError(f"{path}: a url source needs {key!r}")
            alg, _, hexdigest = str(source.get("hash", "")).partition(":")
            if alg not in ("md5", "sha1", "sha256") or not hexdigest:
                raise DatasetError(f"{path}: a remote file needs hash = \"alg:hex\" (md5, sha1 or sha256); refusing it without one")
        if raw["layout"] == "image-folder" and source.get("test") and not source.get("train"):
            raise DatasetError(f"{path}: an image-folder source with a test folder needs its train folder too")
        if raw.get("batches") and raw["layout"] != "cifar-python":
            raise DatasetError(f"{path}: batches = true needs the cifar-python layout (only it has source batches)")
        return Manifest(
            name=raw["name"],
            description=raw.get("description", ""),
            licence=raw.get("licence", ""),
            layout=raw["layout"],
            formats=formats,
            source=dict(raw["source"]),
            sample=int(raw["sample"]["default"]),
            batches=bool(raw.get("batches", False)),
            raw=raw,
        )
    except KeyError as e:
        raise DatasetError(f"{path}: missing key {e}") from None


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    return Path(data_dir or os.environ.get("IMGLOAD_DATA_DIR") or REPO / ".data").resolve()


def is_complete(target: Path, m: Manifest) -> bool:
    """Marked complete for this manifest, and the cheap checks find nothing missing."""
    try:
        if (target / MARKER).read_text().strip() != m.digest:
            return False
        return not first_problem(target, full=False)
    except (OSError, ValueError):
        return False


def first_problem(target: Path, full: bool = True) -> str | None:
    """The first thing wrong with a prepared set, or None.

    Cheap (full=False): index present, first and last file of every format and every batch
    file present and non-empty. Full: every file against SHA256SUMS."""
    target = Path(target)
    if not (target / "index.json").is_file():
        return f"{target / 'index.json'}: missing"
    index = load_index(target)
    files = [p for fmt in index["formats"] for p in file_paths(target, index, fmt, [0, index["count"] - 1])]
    files += [str(materialize.batch_path(target, fmt, name)) for name in index["batches"] for fmt in materialize.BATCH_SUFFIX]
    for path in files:
        problem = _file_problem(path)
        if problem:
            return problem
    if not full:
        return None
    sums = target / "SHA256SUMS"
    if not sums.is_file():
        return f"{sums}: missing"
    lines = sums.read_text().splitlines()
    expected = sum(s["count"] for s in index["formats"].values())
    if len(lines) != expected:
        return f"{sums}: {len(lines)} entries, expected {expected}"
    for line in lines:
        digest, name = line.split("  ", 1)
        path = target / name
        problem = _file_problem(str(path))
        if problem:
            return problem
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            return f"{path}: content differs from what was prepared (truncated or corrupt)"
    return None


def _file_problem(path: str) -> str | None:
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return f"{path}: missing"
    return f"{path}: zero bytes" if size == 0 else None


def load_index(target: Path) -> dict:
    """index.json of a prepared set (parsed once per version of the file: setup reads it
    before every timed call, and the 60,000-image index takes ~40 ms to parse)."""
    path = Path(target) / "index.json"
    return _parsed_index(str(path), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _parsed_index(path: str, mtime_ns: int) -> dict:
    return json.loads(Path(path).read_text())


# ---------------------------------------------------------------- preparing


def prepare(dataset: str | os.PathLike, data_dir: str | os.PathLike | None = None, log=None, url: str | None = None) -> Path:
    """Path of the prepared dataset, building it first if needed (idempotent, locked).

    `url` replaces the manifest's download address; the manifest's hash must still match."""
    m = manifest(dataset)
    root = data_root(data_dir)
    target = root / m.name
    if is_complete(target, m):
        return target
    _ensure_writable(root)
    with _locked(root / ".locks" / f"{m.name}.lock"):
        if is_complete(target, m):  # another process finished while we waited
            return target
        _discard(target)
        for stale in root.glob(f".{m.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)
        started = time.perf_counter()
        source = _source(m, root, log, url)
        partial = root / f".{m.name}.partial-{os.getpid()}"
        try:
            _build(m, partial, source, log)
        except imagefolder.ImageFolderError as e:
            shutil.rmtree(partial, ignore_errors=True)
            raise DatasetError(f"dataset {m.name}: {e}") from None
        index = json.loads((partial / "index.json").read_text())
        index["prepare_seconds"] = round(time.perf_counter() - started, 2)
        _write_synced(partial / "index.json", json.dumps(index, indent=1))
        _write_synced(partial / MARKER, m.digest + "\n")
        os.replace(partial, target)
        _fsync_dir(root)
    return target


def _ensure_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / ".locks").mkdir(exist_ok=True)
        probe = root / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise DatasetError(f"data dir {root} is not writable ({e.strerror}); set IMGLOAD_DATA_DIR") from None


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)  # released by the kernel if we are killed
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _discard(target: Path) -> None:
    """Remove an incomplete or outdated set: rename first, so no half-deleted set keeps its name."""
    if target.exists():
        doomed = target.with_name(f".{target.name}.partial-discard-{os.getpid()}")
        os.replace(target, doomed)
        shutil.rmtree(doomed)


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
    seed, shape = int(m.source["seed"]), tuple(m.source["shape"])
    n_train, n_test = int(m.source["train"]), int(m.source.get("test", 0))
    _say(log, f"generating {n_train + n_test} synthetic {shape[0]}x{shape[1]} images (seed {seed})")
    images = synthetic.images(seed, n_train + n_test, shape)
    labels = synthetic.labels(seed, n_train + n_test)
    names = [f"synthetic_{i:05d}.png" for i in range(n_train + n_test)]
    if m.layout == "arrays":
        return Source(images, labels.tolist(), names, n_train)
    train = cifar.Split(images[:n_train], labels[:n_train], names[:n_train])
    test = cifar.Split(images[n_train:], labels[n_train:], names[n_train:])
    # Write the batches exactly as the official archive lays them out, then read them back
    # through the same reader the real CIFAR-10 goes through.
    src = root / "sources" / m.name
    if not (src / cifar.FOLDER / cifar.TEST_BATCH).is_file():
        partial = root / "sources" / f".{m.name}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        cifar.write(partial / cifar.FOLDER, train, test)
        shutil.rmtree(src, ignore_errors=True)
        os.replace(partial, src)
    return _read_cifar(src / cifar.FOLDER)


def _remote(m: Manifest, root: Path, log, url: str | None) -> Source:
    from . import fetch

    archive = root / "downloads" / m.source["archive"]
    src = root / "sources" / m.name
    # what a killed fetch or unpack left (we hold the lock: nobody else is writing)
    for stale in [*archive.parent.glob("tmp*"), *archive.parent.glob(f".{archive.name}.part-*")]:
        stale.unlink(missing_ok=True)
    for stale in src.parent.glob(f".{m.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)
    try:
        if not src.is_dir():  # present only once unpacked whole (renamed into place)
            size = m.source.get("size")
            _say(log, f"fetching {archive.name}" + (f" ({size:,} bytes)" if size else ""))
            fetch.fetch(url or m.source["url"], m.source["hash"], archive, mirror=os.environ.get("IMGLOAD_MIRROR"))
            _say(log, f"unpacking {archive.name}")
            fetch.unpack(archive, src)
        if m.layout == "image-folder":
            return _read_image_folder(src / m.source.get("folder", ""), m.source.get("train"), m.source.get("test"))
        return _read_cifar(src / m.source.get("folder", cifar.FOLDER))
    except fetch.FetchError as e:
        raise DatasetError(str(e)) from None
    except cifar.UnsafePickleError as e:
        raise DatasetError(f"refusing {e}") from None
    except (OSError, ValueError) as e:  # ImageFolderError is a ValueError
        raise DatasetError(f"dataset {m.name}: {e}") from None


def _read_cifar(folder: Path) -> Source:
    train, test = cifar.read(folder)
    batches, start = {}, 0
    for name, size in zip(cifar.TRAIN_BATCHES, train.batch_sizes):
        batches[name] = (folder / name, train.images[start : start + size])
        start += size
    batches[cifar.TEST_BATCH] = (folder / cifar.TEST_BATCH, test.images)
    images = np.concatenate([train.images, test.images]) if len(test.images) else train.images
    labels = np.concatenate([train.labels, test.labels]).tolist()
    return Source(images, labels, train.filenames + test.filenames, len(train.images), batches, list(cifar.LABEL_NAMES))


def _read_image_folder(folder: Path, train: str | None, test: str | None) -> Source:
    listing = imagefolder.list_images(folder, train, test)
    images = imagefolder.Images(listing.paths)
    return Source(images, list(listing.labels), list(listing.relative), listing.n_train, classes=list(listing.classes))


def _build(m: Manifest, partial: Path, source: Source, log) -> None:
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    images = source.images
    shapes = images.shapes() if isinstance(images, imagefolder.Images) else [tuple(images.shape[1:])] * len(images)
    _say(log, f"writing {len(images)} images as {', '.join(m.formats)} into {partial.parent}")
    files = materialize.write_files(images, partial, m.formats)
    batches = materialize.write_batches(partial, source.batches) if m.batches else {}
    width = materialize.stem_width(len(images))
    _write_synced(partial / "SHA256SUMS", "\n".join(materialize.checksum_lines(files, width)) + "\n")
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
            "jpeg": {"quality": materialize.JPEG_QUALITY, "subsampling": materialize.JPEG_SUBSAMPLING},
            "png": {"compress_level": materialize.PNG_COMPRESS_LEVEL},
            "pickle-p2": "pickle protocol 2 of the ndarray (what ndarray.dump writes)",
            "pickle-p5": "pickle protocol 5, in-band, rebuilt by the public numpy.ndarray constructor",
            "npy": "numpy.save",
            "versions": materialize.encoder_versions(),
            **({"originals": ORIGINALS_NOTE} if isinstance(images, imagefolder.Images) else {}),
        },
    }
    (partial / "index.json").write_text(json.dumps(index, indent=1))
    _sync_filesystem(partial)  # eviction drops only clean pages: everything must be on disk


ORIGINALS_NOTE = "png and jpeg files are the archive's own bytes where it held 8-bit RGB files of that format without EXIF rotation; the rest are encoded as above"


def _size_summary(fmt: str, sizes: list[int]) -> dict:
    a = np.asarray(sizes, dtype=np.int64)
    return {
        "count": int(a.size),
        "suffix": materialize.SUFFIX[fmt],
        "total_bytes": int(a.sum()),
        "mean_bytes": round(float(a.mean()), 1),
        "min_bytes": int(a.min()),
        "max_bytes": int(a.max()),
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
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
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
        raise DatasetError(f"dataset {index['name']} has no {fmt!r} files (it has {', '.join(index['formats'])})")
    folder, width, suffix = os.path.join(root, fmt), index["stem_width"], index["formats"][fmt]["suffix"]
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
