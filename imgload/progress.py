"""Progress bars for what a person waits on at a terminal: generating, writing, verifying a set.

A bar is shown only where someone can see it: on a terminal, with tqdm installed (`make data`).
Anywhere else it is silent: asv captures setup_cache's output through a pipe (where a bar would be
one endless line of carriage returns) and the benchmark environments have no tqdm; the step's one
log line (datasets._say) already says what is being done. Bars are erased when done (leave=False)
and appear only after a second (delay), so a fast step prints nothing extra.
"""

from __future__ import annotations

import importlib.util
import sys


def on_terminal() -> bool:
    """True where a tqdm bar can be drawn: stderr is a terminal and tqdm is importable."""
    return sys.stderr.isatty() and importlib.util.find_spec("tqdm") is not None


class _Silent:
    """tqdm's update/close protocol, doing nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def bar(total: int, desc: str, unit: str = "img"):
    """A context manager with update(n): a tqdm bar on a terminal, nothing elsewhere."""
    if not on_terminal():
        return _Silent()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, ncols=79, leave=False, delay=1.0)
