"""The CIFAR-10 "python version" layout: six pickled batches under cifar-10-batches-py/.

Each batch is a dict with `data` (uint8, N x 3072: the R plane, then G, then B, each 32x32
row-major), `labels` (list of int), `filenames` and `batch_label`; `batches.meta` names
the classes. The official files are Python 2 pickles, so their keys load as bytes; the
reader accepts bytes or str keys so the official set and the synthetic one share it.

Batches are read with an unpickler that resolves only the globals an ndarray needs:
a batch that names anything else (e.g. os.system via __reduce__) is refused before any
of it runs.
"""

from __future__ import annotations

import io
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
SIDE = 32
LABEL_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

# (module, name) pairs an ndarray pickle may use, from NumPy 1.x and 2.x writers
_ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 protocol-2 pickles spell bytes
    }
)


class UnsafePickleError(pickle.UnpicklingError):
    """A batch names a global the restricted unpickler refuses: nothing of it ran. Not itself a
    user error (errors.UserError): datasets reports it as one, "refusing <file>: ..."."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise UnsafePickleError(f"refused global {module}.{name}")
        return super().find_class(module, name)


def load_batch(path: Path) -> dict[str, object]:
    """A batch dict with str keys, read without running anything but ndarray reconstruction."""
    try:
        raw = _RestrictedUnpickler(io.BytesIO(Path(path).read_bytes()), encoding="bytes").load()
    except UnsafePickleError as e:
        raise UnsafePickleError(f"{path}: {e}") from None
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise ValueError(f"{path}: not a readable CIFAR batch ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a CIFAR batch (a {type(raw).__name__}, not a dict)")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}


def load_batch_images(path: str) -> np.ndarray:
    """A batch file -> (N, 32, 32, 3) uint8 view, as user code does it (the loading the
    batch benchmark times; use load_batch for files you do not trust)."""
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = batch[b"data"] if b"data" in batch else batch["data"]
    return data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)


def planes_to_images(data: np.ndarray) -> np.ndarray:
    """N x 3072 R,G,B planes -> contiguous (N, 32, 32, 3) uint8."""
    data = np.asarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        raise ValueError(f"CIFAR data must be N x 3072, got {data.shape}")
    return np.ascontiguousarray(data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1))


def images_to_planes(images: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


@dataclass
class Split:
    images: np.ndarray  # (N, 32, 32, 3) uint8
    labels: np.ndarray  # (N,) int64
    filenames: list[str]
    batch_sizes: list[int] = field(default_factory=list)  # images per source batch, in order


def read(root: Path) -> tuple[Split, Split]:
    """(train, test) from a cifar-10-batches-py folder, batches in their official order."""
    root = Path(root)

    def split(names):
        batches = [load_batch(root / n) for n in names]
        for n, b in zip(names, batches):
            missing = {"data", "labels", "filenames"} - b.keys()
            if missing:
                raise ValueError(f"{root / n}: CIFAR batch lacks {sorted(missing)}")
        return Split(
            images=np.concatenate([planes_to_images(b["data"]) for b in batches]),
            labels=np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in batches]),
            filenames=[
                f.decode() if isinstance(f, bytes) else str(f)
                for b in batches
                for f in b["filenames"]
            ],
            batch_sizes=[len(b["labels"]) for b in batches],
        )

    return split(TRAIN_BATCHES), split([TEST_BATCH])


class _Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote the official batches: str and bytes as raw
    BINSTRING (loaded as bytes with encoding="bytes"), numpy under its 1.x module name.
    Python 3's own protocol 2 spells bytes as _codecs.encode(str, "latin1"), which loads
    several times slower and would misstate the batch-load benchmark."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        data = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str

    def save_global(self, obj, name=None):
        if getattr(obj, "__name__", None) == "_reconstruct" and "multiarray" in getattr(
            obj, "__module__", ""
        ):
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def dump_python2(obj, path: Path) -> None:
    with open(path, "wb") as f:
        _Python2Pickler(f, protocol=2).dump(obj)


def batch_dict(label: str, images: np.ndarray, labels: np.ndarray, filenames: list[str]) -> dict:
    return {
        "batch_label": label,
        "labels": [int(x) for x in labels],
        "data": images_to_planes(images),
        "filenames": list(filenames),
    }


def write(root: Path, train: Split, test: Split) -> None:
    """Write the six batches and batches.meta, pickled as the official (Python 2) files."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    size = len(train.images) // len(TRAIN_BATCHES)
    if size * len(TRAIN_BATCHES) != len(train.images):
        raise ValueError(
            f"{len(train.images)} training images do not split into {len(TRAIN_BATCHES)} batches"
        )
    batches = []
    for i, name in enumerate(TRAIN_BATCHES):
        s = slice(i * size, (i + 1) * size)
        label = f"training batch {i + 1} of {len(TRAIN_BATCHES)}"
        batches.append(
            (name, batch_dict(label, train.images[s], train.labels[s], train.filenames[s]))
        )
    batches.append(
        (TEST_BATCH, batch_dict("testing batch 1 of 1", test.images, test.labels, test.filenames))
    )
    meta = {
        "num_cases_per_batch": size,
        "label_names": list(LABEL_NAMES),
        "num_vis": 3 * SIDE * SIDE,
    }
    for name, obj in [*batches, ("batches.meta", meta)]:
        dump_python2(obj, root / name)
