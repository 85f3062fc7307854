"""One validation of a dataset manifest, before anything is written or deleted.

A manifest's values become folder names, file names, counts and shapes: `name` names the
folder in the data dir that prepare replaces wholesale, `archive` the file it downloads and
cleans up after, `train` the number of images it generates. Every key is checked here, in
one place, for its type and its range, and every name for being a plain name that cannot
lead anywhere but one level down, so that prepare can trust what it is given and a wrong
value never surfaces later as a traceback or as a set that fails its own checks.

A problem is reported as one line: the key, the value found and what is expected;
datasets.manifest puts the manifest's path in front. It needs nothing datasets does not
already import: it runs inside the asv environments too (setup_cache prepares datasets).
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from .containers import CONTAINERS
from .materialize import FORMATS

KINDS = {
    "synthetic": ("cifar-python", "arrays"),
    "url": ("cifar-python", "image-folder"),
}  # source kind -> layouts read
LAYOUTS = ("cifar-python", "image-folder", "arrays")
HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha256": 64}
CIFAR_TRAIN_BATCHES = 5  # the cifar-python layout splits training images into 5 equal batches
CIFAR_SIDE = 32
MAX_SIDE = 65535  # the largest JPEG and PNG side Pillow writes

# A dataset name becomes <data dir>/<name>, its scratch <data dir>/.<name>.partial-<pid>
# (files.scratch_path), sources/<name> and .locks/<name>.lock: no separator, no leading dot
# (hidden, and the prefix of every scratch name files.is_scratch recognizes: no set's name
# is another's scratch), no leading '-' (it would read as an option on the command line).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NAME_RULE = (
    "a plain name (the set's folder in the data dir): letters, digits, '.', '_' or '-', starting"
    " with a letter or digit, at most 100 characters"
)
# An archive name becomes downloads/<archive> and its scratch
# downloads/.<archive>.partial-<pid><suffix>.
ARCHIVE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]{0,199}")
ARCHIVE_RULE = (
    "a plain file name (letters, digits, '.', '_', '+' or '-', not starting with '.'; no folders)"
)

TOP_KEYS = (
    "name",
    "description",
    "licence",
    "layout",
    "formats",
    "containers",
    "batches",
    "source",
    "sample",
)
SOURCE_KEYS = {
    "synthetic": ("kind", "seed", "shape", "train", "test"),
    "url": ("kind", "url", "hash", "size", "archive", "folder", "train", "test"),
}
SAMPLE_KEYS = ("default",)


class _Refused(Exception):
    """The first problem found, as the line the user sees (without the file name)."""


def problem(raw: dict, reserved: tuple[str, ...] = ()) -> str | None:
    """The first thing wrong with a parsed manifest, as one line, or None.

    `reserved` are the names the data dir uses for its own folders (downloads, sources, ...):
    a dataset of that name would be prepared over them, and its clean-up would delete them."""
    try:
        _check(raw, reserved)
    except _Refused as e:
        return str(e)
    return None


def _check(raw: dict, reserved: tuple[str, ...]) -> None:
    _only(raw, "", TOP_KEYS)
    _name(raw, reserved)
    for key in ("description", "licence"):
        _get(raw, key, _is_str, "a string", optional=True)
    layout = _get(
        raw, "layout", lambda v: _is_str(v) and v in LAYOUTS, f"one of {', '.join(LAYOUTS)}"
    )
    _formats(raw)
    _containers(raw)
    source = _get(raw, "source", _is_table, 'a table: [source] with kind = "synthetic" or "url"')
    kind = _get(
        source,
        "kind",
        lambda v: _is_str(v) and v in KINDS,
        f"one of {', '.join(KINDS)}",
        prefix="source.",
    )
    if layout not in KINDS[kind]:
        raise _Refused(
            f"layout {layout!r} is not supported for {kind} sources (expected"
            f" {', '.join(KINDS[kind])})"
        )
    if _get(raw, "batches", _is_bool, "true or false", optional=True) and layout != "cifar-python":
        raise _Refused("batches = true needs the cifar-python layout (only it has source batches)")
    _only(source, "source.", SOURCE_KEYS[kind])
    if kind == "synthetic":
        _synthetic(source, layout)
    else:
        _remote(source, layout)
    sample = _get(
        raw, "sample", _is_table, "a table: [sample] with default = <images per timed call>"
    )
    _only(sample, "sample.", SAMPLE_KEYS)
    _get(
        sample,
        "default",
        _is_positive_int,
        "a positive integer (images each timed call loads)",
        prefix="sample.",
    )


def _name(raw: dict, reserved: tuple[str, ...]) -> None:
    name = _get(raw, "name", lambda v: _is_str(v) and NAME.fullmatch(v), NAME_RULE)
    if name.lower() in {r.lower() for r in reserved}:
        raise _Refused(
            f"name = {name!r}: expected a name of the dataset's own ({', '.join(reserved)} are"
            " folders the data dir keeps for itself)"
        )


def _formats(raw: dict) -> None:
    expected = f"a non-empty list of format names from {', '.join(FORMATS)}"
    formats = _get(
        raw,
        "formats",
        lambda v: isinstance(v, list) and v and all(_is_str(f) for f in v),
        expected,
    )
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise _Refused(
            f"formats = {formats!r}: expected {expected}"
            f" (unknown: {', '.join(map(repr, unknown))})"
        )
    if len(set(formats)) != len(formats):
        raise _Refused(f"formats = {formats!r}: expected each format once")


def _containers(raw: dict) -> None:
    """Optional: distinct known container names; they pack the jpeg/ files, so jpeg is a format."""
    expected = f"a list of container names from {', '.join(CONTAINERS)}"
    names = _get(
        raw,
        "containers",
        lambda v: isinstance(v, list) and all(_is_str(c) for c in v),
        expected,
        optional=True,
    )
    if not names:
        return
    unknown = [c for c in names if c not in CONTAINERS]
    if unknown:
        raise _Refused(
            f"containers = {names!r}: expected {expected}"
            f" (unknown: {', '.join(map(repr, unknown))})"
        )
    if len(set(names)) != len(names):
        raise _Refused(f"containers = {names!r}: expected each container once")
    if "jpeg" not in raw["formats"]:
        raise _Refused(
            f"containers = {names!r}: containers pack the set's JPEG files, so formats must"
            ' include "jpeg"'
        )


def _synthetic(source: dict, layout: str) -> None:
    _get(source, "seed", lambda v: _is_int(v) and v >= 0, "an integer >= 0", prefix="source.")
    shape = _get(
        source,
        "shape",
        _is_shape,
        f"[height, width], two integers from 1 to {MAX_SIDE}",
        prefix="source.",
    )
    train = _get(
        source, "train", _is_positive_int, "a positive integer (training images)", prefix="source."
    )
    test = (
        _get(
            source,
            "test",
            lambda v: _is_int(v) and v >= 0,
            "an integer >= 0 (test images)",
            prefix="source.",
            optional=True,
        )
        or 0
    )
    if train + test < 2:
        raise _Refused(
            f"source.train = {train}, source.test = {test}: expected at least 2 images in all (the"
            " last one primes the decoders and is never timed)"
        )
    if layout != "cifar-python":
        return
    if shape != [CIFAR_SIDE, CIFAR_SIDE]:
        raise _Refused(
            f"source.shape = {shape!r}: expected [{CIFAR_SIDE}, {CIFAR_SIDE}] (the cifar-python"
            " layout holds 32x32 images)"
        )
    if train % CIFAR_TRAIN_BATCHES:
        raise _Refused(
            f"source.train = {train}: expected a multiple of {CIFAR_TRAIN_BATCHES} (the"
            f" cifar-python layout splits the training images into {CIFAR_TRAIN_BATCHES} equal"
            " batches)"
        )
    if test < 1:
        raise _Refused(
            f"source.test = {test}: expected at least 1 (the cifar-python layout has a test batch)"
        )


def _remote(source: dict, layout: str) -> None:
    _get(
        source,
        "url",
        lambda v: _is_str(v) and v and not re.search(r"\s", v),
        "a URL without spaces",
        prefix="source.",
        missing='a url source needs url = "https://..."',
    )
    _get(
        source,
        "hash",
        _is_hash,
        '"alg:hex" with alg md5, sha1 or sha256 and a hex digest of its length',
        prefix="source.",
        missing='a url source needs hash = "alg:hex" (md5, sha1 or sha256); refusing a remote file'
        " without one",
    )
    _get(
        source,
        "archive",
        lambda v: _is_str(v) and ARCHIVE.fullmatch(v),
        ARCHIVE_RULE,
        prefix="source.",
        missing=f"a url source needs archive = <file name>, {ARCHIVE_RULE}",
    )
    _get(
        source,
        "size",
        _is_positive_int,
        "a positive integer (bytes)",
        prefix="source.",
        optional=True,
    )
    _get(
        source,
        "folder",
        lambda v: _is_inner_path(v, empty=True),
        "a relative path inside the archive (no '..', no leading '/')",
        prefix="source.",
        optional=True,
    )
    for key in ("train", "test"):
        value = _get(
            source,
            key,
            _is_inner_path,
            "a folder inside `folder` (relative, no '..')",
            prefix="source.",
            optional=True,
        )
        if value is not None and layout != "image-folder":
            raise _Refused(
                f"source.{key} = {value!r}: expected no {key} folder (only the image-folder layout"
                " reads train and test folders)"
            )
    if layout == "image-folder" and source.get("test") and not source.get("train"):
        raise _Refused(
            "source.test: an image-folder source with a test folder needs its train folder too"
        )


# ---------------------------------------------------------------- primitives


def _get(
    table: dict,
    key: str,
    ok,
    expected: str,
    prefix: str = "",
    optional: bool = False,
    missing: str | None = None,
):
    """table[key] if `ok` accepts it; None if absent and optional; else _Refused naming key,
    value and expectation."""
    if key not in table:
        if optional:
            return None
        raise _Refused(f"{prefix}{key} is missing: {missing or 'expected ' + expected}")
    value = table[key]
    if not ok(value):
        raise _Refused(f"{prefix}{key} = {_shown(value)}: expected {expected}")
    return value


def _only(table: dict, prefix: str, known: tuple[str, ...]) -> None:
    """Refuse keys nobody reads: a misspelt key would otherwise be silently ignored."""
    for key in table:
        if key not in known:
            raise _Refused(
                f"{prefix}{key} is not a manifest key here: expected one of"
                f" {', '.join(prefix + k for k in known)}"
            )


def _shown(value) -> str:
    """A value as the line shows it: a repr, cut short; a table as such."""
    if isinstance(value, dict):
        return "a table"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_str(v) -> bool:
    return isinstance(v, str)


def _is_bool(v) -> bool:
    return isinstance(v, bool)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)  # TOML's true is not a count


def _is_positive_int(v) -> bool:
    return _is_int(v) and v > 0


def _is_table(v) -> bool:
    return isinstance(v, dict)


def _is_shape(v) -> bool:
    return (
        isinstance(v, list) and len(v) == 2 and all(_is_int(s) and 1 <= s <= MAX_SIDE for s in v)
    )


def _is_hash(v) -> bool:
    alg, _, hexdigest = v.partition(":") if _is_str(v) else ("", "", "")
    return (
        alg in HASH_LENGTHS
        and len(hexdigest) == HASH_LENGTHS[alg]
        and re.fullmatch(r"[0-9a-fA-F]+", hexdigest) is not None
    )


def _is_inner_path(v, empty: bool = False) -> bool:
    """A relative POSIX path that stays inside the folder it is joined to."""
    if not _is_str(v) or "\\" in v or "\0" in v:
        return False
    if not v:
        return empty
    path = PurePosixPath(v)
    return not path.is_absolute() and ".." not in path.parts
