"""The `image-folder` layout: an unpacked archive of ordinary image files.

    <folder>/[<split>/][<class>/]<name>.<ext>

Images are listed in sorted path order, training split first. A first-level subfolder of
a split names the image's class (labels number the sorted class names; -1 when an image
sits directly in the split folder). Sizes and colour modes may vary from file to file.

The prepared set keeps the archive's own bytes for a format wherever a user's decoders
would read them as they are (an 8-bit RGB JPEG or PNG with no EXIF rotation), so the
JPEG timings are those of the dataset's own JPEGs, not of a re-encoding; every other file
is encoded from the RGB pixels Pillow decodes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UserError

# what a user's pipeline would treat as an image; anything else in the archive is ignored
EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG"}
EXIF_ORIENTATION = 0x0112


class ImageFolderError(UserError):
    """A one-line reason naming the file or folder at fault
    (datasets puts the set's name in front)."""


@dataclass(frozen=True)
class Listing:
    paths: tuple[str, ...]  # absolute, training images first
    relative: tuple[str, ...]  # as in the archive, below `folder`
    labels: tuple[int, ...]
    classes: tuple[str, ...]
    n_train: int


def list_images(folder: Path, train: str | None = None, test: str | None = None) -> Listing:
    """Every image file under folder (or under its train/test subfolders), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageFolderError(f"{folder}: no such folder in the archive")
    splits = [(folder / train if train else folder), *([folder / test] if test else [])]
    found = []
    for split in splits:
        if not split.is_dir():
            raise ImageFolderError(f"{split}: no such split folder in the archive")
        found.append(sorted(_image_files(split)))
        if not found[-1]:
            raise ImageFolderError(
                f"{split}: holds no image files ({', '.join(sorted(EXTENSIONS))})"
            )
    classes = sorted(
        {
            p.relative_to(s).parts[0]
            for s, files in zip(splits, found)
            for p in files
            if len(p.relative_to(s).parts) > 1
        }
    )
    number = {name: i for i, name in enumerate(classes)}
    paths, relative, labels = [], [], []
    for split, files in zip(splits, found):
        for p in files:
            parts = p.relative_to(split).parts
            paths.append(str(p))
            relative.append(p.relative_to(folder).as_posix())
            labels.append(number[parts[0]] if len(parts) > 1 else -1)
    return Listing(tuple(paths), tuple(relative), tuple(labels), tuple(classes), len(found[0]))


def _image_files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in EXTENSIONS:
                yield Path(dirpath) / name


class Images:
    """A sequence of (H, W, 3) uint8 RGB arrays, decoded on access, plus the original bytes
    where they can stand for a format. Holds only paths, so a forked writer pool shares it
    for free and memory stays flat however large the set."""

    def __init__(self, paths: tuple[str, ...]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        with _opened(self.paths[i]) as im:
            return np.asarray(im if im.mode == "RGB" else im.convert("RGB"))

    def original(self, i: int, fmt: str) -> bytes | None:
        """The file's own bytes if decoders read them as RGB (H, W, 3) unchanged, else None."""
        path = self.paths[i]
        with _opened(path) as im:
            keep = (
                im.format == PIL_FORMAT.get(fmt)
                and im.mode == "RGB"  # 3 channels: no grey, CMYK or alpha channel
                and im.getexif().get(EXIF_ORIENTATION, 1) == 1  # cv2.imread would rotate
                and "transparency" not in im.info  # a tRNS chunk: imagecodecs decodes RGBA
            )
        if not keep:
            return None
        data = Path(path).read_bytes()
        # Pillow shows a 16-bit PNG as mode RGB, but cv2 and imagecodecs decode it to uint16:
        # keep only bit depth 8, colour type 2 (truecolour), as the IHDR chunk says
        return data if fmt != "png" or data[24:26] == b"\x08\x02" else None

    def shapes(self) -> list[tuple[int, int, int]]:
        """(H, W, 3) of every image, from the headers alone."""
        out = []
        for path in self.paths:
            with _opened(path) as im:
                out.append((im.height, im.width, 3))
        return out


@contextlib.contextmanager
def _opened(path: str):
    """Image.open, with whatever Pillow raises for a corrupt, truncated or oversized file
    turned into one line naming the file."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            yield im
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageFolderError(f"{path}: not a readable image ({e})") from None
