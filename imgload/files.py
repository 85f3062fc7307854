"""Writing a file whole or not at all: a temporary file beside it, then one rename."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | os.PathLike, text: str, check: Callable[[Path], object] | None = None) -> None:
    """Replace `path` with `text` in one rename; `check(temporary path)` may refuse it by raising,
    and then the old file stays. The temporary name keeps the suffix, for checks that look at it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        tmp.write_text(text)
        if check is not None:
            check(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
