"""`python -m imgload memo` (`make memo`): the memo behind this suite, run again today.

The memo (2011, a Core i5-2540M laptop with a hard disk) timed 50,000 CIFAR-10 training
JPEGs two ways, and drew its conclusions from the figures in PUBLISHED:

1. scipy.misc.imread, PIL and OpenCV, each reading every image in a plain loop, the page
   cache dropped before each library.
2. OpenCV on the JPEGs and pickle.load on `ndarray.dump` files of the same images, with 3
   threads taking paths off one queue.Queue, from a dropped and from a full page cache.

This runs both again on the training set of a prepared dataset (IMGLOAD_DATASET, else
synthetic-cifar10; all of it unless IMGLOAD_PROFILE asks for its smoke or default sample), in
the environment it is started in (`make memo`: .venv's own stack), with the suite's own pieces,
so a figure here means what the same cell of `make bench` means: decoders.get's loaders
(OpenCV, Pillow, imageio), the `pickle-p2` files (pickle protocol 2, byte for byte what
ndarray.dump writes), execution.Runner's `queue-3` (the memo's queue of paths) and
`sequential`, and pagecache's eviction and warming, verified before every timed pass.
scipy.misc.imread cannot be run: deprecated in SciPy 1.0, removed in 1.3 (2019); it opened
the file with PIL and returned it as an array, so its row would repeat Pillow's, and SciPy's
deprecation message named imageio.imread as its replacement, which is why imageio is timed.

It writes memo.md (the memo's figures beside today's, then which of its conclusions still
hold, each decided from the numbers) and memo.json (every timed pass) with files.write_atomic:
a failed or interrupted memo leaves no table, not a half-written one.
"""

from __future__ import annotations

import datetime
import gc
import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from statistics import median

import numpy as np

from . import buildinfo, datasets, decoders, pagecache, progress, suite, verdict
from .errors import UserError
from .execution import Runner
from .files import write_atomic
from .report import md_table, plus_minus
from .report import seconds as per_image_text

MEMO_IMAGES = 50_000
MEMO_MACHINE = "2011, Core i5-2540M, laptop hard disk"
THREADS = "queue-3"  # the memo's pattern: one queue.Queue of paths, 3 threads (execution.py)
PICKLES = "pickle-p2"  # what ndarray.dump writes (materialize.encode)

# A figure is the median of up to ROUNDS timed passes, each round timing every cell once in
# turn (interleaved, so a machine that slows down during the memo slows every cell alike). A
# set so large that one round takes more than BUDGET / ROUNDS seconds gets as many rounds as
# fit in BUDGET, down to one run, stated as one: the memo's laptop would have taken some 40
# minutes a round, this VM about a minute for the 50,000 images.
ROUNDS = 5
BUDGET = 600.0  # seconds, all rounds together
# Files per Runner.run call within a pass. The progress bar advances between calls, and the
# arrays of one call are dropped before the next, so memory stays flat over 50,000 images;
# the queue drains once per call (3 threads idle for at most one image each), under 0.1% of a
# pass of this many images.
CHUNK = 1000


@dataclass(frozen=True)
class Cell:
    """One timed pass: every file of `fmt` loaded with `loader` under `execution`, `cache`."""

    loader: str
    fmt: str
    execution: str
    cache: str

    @property
    def label(self) -> str:
        return f"{self.loader} {self.fmt} {self.execution} {self.cache}"


def _cell(loader: str, execution: str, cache: str) -> Cell:
    return Cell(loader, "jpeg" if loader != "pickle" else PICKLES, execution, cache)


# Experiment 1, in the memo's order (scipy, which cannot run, came first)
LIBRARIES = ("pil", "cv2", "imageio")
EXPERIMENT_1 = tuple(_cell(lib, "sequential", "cold") for lib in LIBRARIES)
# Experiment 2: the memo's 3 threads, and the plain loop they are a speedup over; OpenCV's cold
# loop is experiment 1's cell, timed once for both, as the memo's 1.33x took it from there
EXPERIMENT_2 = tuple(
    _cell(loader, execution, cache)
    for loader in ("cv2", "pickle")
    for cache in ("cold", "warm")
    for execution in ("sequential", THREADS)
)
CELLS = tuple(dict.fromkeys(EXPERIMENT_1 + EXPERIMENT_2))

# The memo's published figures, in seconds for its 50,000 images
PUBLISHED = {
    "scipy": 457.13,
    _cell("pil", "sequential", "cold"): 457.22,
    _cell("cv2", "sequential", "cold"): 441.20,
    _cell("cv2", THREADS, "cold"): 332.17,
    _cell("pickle", THREADS, "cold"): 358.31,
    _cell("cv2", THREADS, "warm"): 3.43,
    _cell("pickle", THREADS, "warm"): 21.45,
}
PUBLISHED_SPEEDUP = 1.33  # 441.20 s / 332.17 s: OpenCV, cold, 3 threads over the plain loop

SCIPY_GONE = (
    "n/a: deprecated in SciPy 1.0, removed in 1.3 (2019){here}; it opened the file with PIL and"
    " returned it as an array, so it cost what PIL did (the memo: 457.13 s against 457.22 s)"
    " and today would cost what Pillow does"
)
NAMES = {
    "pil": "PIL: `Image.open` + `np.asarray`",
    "cv2": "OpenCV: `cv2.imread` + `cvtColor` to RGB",
    "imageio": "imageio: `imageio.v3.imread` (not in the memo: SciPy's named successor)",
    "pickle": "`pickle.load` of `ndarray.dump` files",
}
FILES = {"jpeg": "JPEG", PICKLES: "pickle"}


class MemoError(UserError):
    """A one-line reason the memo cannot run: a dataset, data dir or environment at fault."""


@dataclass
class Run:
    """What a memo measured: every cell's timed passes, and what they ran on."""

    dataset: str
    root: str
    profile: str
    images: int
    shape: str
    rounds: int
    samples: dict[Cell, list[float]]  # seconds per pass, one per round
    versions: dict
    machine: dict
    started: str  # "2026-12-04 20:35 UTC"
    seconds: float  # the whole memo, setup included


# ------------------------------------------------------------------ running it


def run_profile() -> str:
    """The images the memo loads: all the training images (`full`) unless IMGLOAD_PROFILE says
    otherwise. Unlike the suite's default, since the memo's whole point is the whole set."""
    return datasets.profile() if os.environ.get("IMGLOAD_PROFILE") else "full"


def memo(
    dataset: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    out: str | os.PathLike = ".asv/memo",
    repeats: int | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Path, list[str]]:
    """Run both experiments; write memo.md and memo.json into `out`; return memo.md's path and
    the conclusions (as memo.md lists them). `repeats` fixes the number of rounds, passes per
    figure (default: up to ROUNDS, as BUDGET allows). Everything a user can get wrong is
    refused, one line, before the first timed pass, and nothing is written unless every pass
    ran."""
    say = log or (lambda msg: None)
    if repeats is not None and repeats < 1:
        raise MemoError(f"--repeats {repeats}: expected a positive number of passes per figure")
    which = run_profile()
    name = dataset or suite.small_dataset()
    m = datasets.manifest(name)  # an unknown name: a DatasetError naming the known ones
    root = datasets.data_root(data_dir) / m.name
    if not datasets.is_complete(root, m):
        raise MemoError(
            f"{m.name} is not prepared in {root.parent}; run: python -m imgload data prepare"
            f" {name} (make memo prepares it)"
        )
    index = datasets.load_index(root)
    indices = datasets.sample_indices(index, which)
    files = {fmt: datasets.file_paths(root, index, fmt, indices) for fmt in ("jpeg", PICKLES)}
    out = Path(out)
    _check_writable(out)
    _check_evictable(root, files["jpeg"][0])
    runners = _runners(root)
    try:
        # one thread per decode in every pass, the plain loop too: the queue's threads set
        # OpenCV's (process-wide) thread count to 1, and a loop timed after them would
        # otherwise run differently from one timed before them
        decoders.limit_library_threads()
        started = datetime.datetime.now(datetime.UTC)
        clock = time.perf_counter()
        ran_with = versions()
        say(
            f"memo on {len(indices):,} training images of {m.name} ({which}) in {root.parent},"
            f" {_versions_line(ran_with)}"
        )
        samples = _measure(runners, files, repeats, say)
        elapsed = time.perf_counter() - clock
    finally:
        _close(runners)
    shape = "x".join(map(str, index["shape"][:2])) if index["shape"] else "varying sizes"
    result = Run(
        dataset=m.name,
        root=str(root),
        profile=which,
        images=len(indices),
        shape=shape,
        rounds=len(next(iter(samples.values()))),
        samples=samples,
        versions=ran_with,
        machine=machine(),
        started=started.strftime("%Y-%m-%d %H:%M UTC"),
        seconds=round(elapsed, 1),
    )
    text, lines = render(result)
    write_atomic(out / "memo.json", json.dumps(to_json(result), indent=1) + "\n")
    write_atomic(out / "memo.md", text)
    return out / "memo.md", lines


def _check_writable(out: Path) -> None:
    """The output folder can be made and written: checked before minutes of timing, without
    creating anything (the nearest folder that exists must be a writable folder)."""
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise MemoError(
            f"{out}: cannot write the memo's table there ({existing} is not a writable folder);"
            " choose another with --out"
        )


def _check_evictable(root: Path, probe: str) -> None:
    """Every cold pass drops the set's files from the page cache and verifies it: tried on one
    file first, so a data dir on tmpfs is refused before anything is timed."""
    try:
        pagecache.make_cold([probe])
    except pagecache.PageCacheError:
        raise MemoError(
            f"{root}: its files cannot be evicted from the page cache (tmpfs, or a filesystem that"
            " ignores posix_fadvise), so no cold figure can be measured; set IMGLOAD_DATA_DIR to"
            " a folder on a disk"
        ) from None


def _runners(root: Path) -> dict[tuple[str, str, str], Runner]:
    """One Runner per loader, format and execution, made (and primed) before any timing; the
    queue's 3 threads live through every round, as the memo's did."""
    runners: dict[tuple[str, str, str], Runner] = {}
    try:
        for c in CELLS:
            key = (c.loader, c.fmt, c.execution)
            if key not in runners:
                runners[key] = Runner(
                    c.execution, c.loader, c.fmt, prime=datasets.priming_file(root, c.fmt)
                )
    except decoders.Unavailable as e:
        _close(runners)
        raise MemoError(f"{e}; the memo runs in .venv's stack: make memo") from None
    except decoders.DecodeError as e:
        _close(runners)
        raise MemoError(f"{e}; check the set: python -m imgload data verify") from None
    return runners


def _close(runners: dict) -> None:
    for runner in runners.values():
        runner.close()


def _measure(runners, files, rounds: int | None, say) -> dict[Cell, list[float]]:
    """Every cell once per round, in CELLS order; after the first round, as many more as
    `rounds` says, else as fit in BUDGET (up to ROUNDS)."""
    samples: dict[Cell, list[float]] = {c: [] for c in CELLS}
    planned, r = rounds or ROUNDS, 0
    while r < planned:
        began = time.perf_counter()
        for c in CELLS:
            runner = runners[(c.loader, c.fmt, c.execution)]
            samples[c].append(_timed_pass(runner, files[c.fmt], c, f"{r + 1}/{planned}"))
        took = time.perf_counter() - began
        if r == 0 and rounds is None:
            planned = max(1, min(ROUNDS, int(BUDGET // max(took, 1e-9))))
        r += 1
        say(f"memo round {r} of {planned}: {took:.2f} s")
    return samples


def _timed_pass(runner: Runner, files: list[str], c: Cell, which: str) -> float:
    """Seconds to load every file once, from the cache state `c` asks for, verified before the
    clock starts. The collector is off while timing, as timeit and asv keep it."""
    try:
        suite.set_cache(c.cache, files)
        with progress.bar(len(files), f"{c.loader} {c.fmt} {c.execution} {c.cache} {which}") as b:
            enabled = gc.isenabled()
            gc.disable()
            try:
                start = time.perf_counter()
                for i in range(0, len(files), CHUNK):
                    runner.run(files[i : i + CHUNK])
                    b.update(min(CHUNK, len(files) - i))
                return time.perf_counter() - start
            finally:
                if enabled:
                    gc.enable()
    except pagecache.PageCacheError as e:
        raise MemoError(f"{c.label}: {e}") from None
    except decoders.DecodeError as e:
        raise MemoError(f"{e}; check the set: python -m imgload data verify") from None


# ------------------------------------------------------------------ what it ran on


def versions() -> dict:
    """The libraries the memo ran with: the environment it was started in, as it is."""
    pil, cv2 = buildinfo.pillow() or {}, buildinfo.opencv() or {}
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.get("version"),
        "opencv_jpeg": cv2.get("JPEG"),
        "pillow": pil.get("version"),
        "pillow_libjpeg_turbo": pil.get("libjpeg_turbo"),
        "imageio": _dist("imageio"),
        "scipy": _dist("scipy"),
    }


def _dist(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    return {
        "cpu": buildinfo.cpu_model(),
        "cpus": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
    }


def _versions_line(v: dict) -> str:
    return (
        f"Python {v['python']}, NumPy {v['numpy']}, OpenCV {v['opencv']} (JPEG:"
        f" {v['opencv_jpeg']}), Pillow {v['pillow']} (libjpeg-turbo"
        f" {v['pillow_libjpeg_turbo']}), imageio {v['imageio']}"
    )


# ------------------------------------------------------------------ the table


def _whole(value: float) -> str:
    """Seconds for a whole set: two decimals as the memo gave them, three significant digits
    below 1 s (a tiny set's pass takes a millisecond), never in e-notation."""
    if value <= 0:
        return f"{value:.2f} s"
    return f"{value:.{max(2, 2 - math.floor(math.log10(value)))}f} s"


def _spread(xs: list[float]) -> str:
    """±: half the interquartile range of the runs as a share of the median, as the report."""
    return plus_minus(verdict.spread(xs) / 2) if len(xs) >= 2 else ""


def _today(r: Run, c: Cell) -> str:
    xs = r.samples[c]
    return _whole(median(xs)) + _spread(xs)


def _per_image(r: Run, c: Cell) -> str:
    return per_image_text(median(r.samples[c]) / r.images)


def _memo(c: Cell | str) -> str:
    value = PUBLISHED.get(c)
    return "not published" if value is None else f"{value:.2f} s"


def _memo_per_image(c: Cell | str) -> str:
    value = PUBLISHED.get(c)
    return "n/a" if value is None else per_image_text(value / MEMO_IMAGES)


def _faster(r: Run, c: Cell) -> str:
    """How many times faster than the memo today is, per image."""
    value = PUBLISHED.get(c)
    if value is None:
        return "n/a"
    return f"{value / MEMO_IMAGES / (median(r.samples[c]) / r.images):.0f}×"


def speedup(r: Run, loader: str, cache: str) -> float:
    """The memo's 3 threads over the plain loop, on the same files and cache state."""
    seq, threads = (
        r.samples[_cell(loader, "sequential", cache)],
        r.samples[_cell(loader, THREADS, cache)],
    )
    return median(seq) / median(threads)


def render(r: Run) -> tuple[str, list[str]]:
    """memo.md's text, and its conclusions, from the measured figures alone."""
    v = r.versions
    n = f"{r.images:,}"
    each = (
        "one pass over every image (one run)"
        if r.rounds == 1
        else f"the median of {r.rounds} passes over every image, ±: half the interquartile"
        " range of the passes as a share of the median"
    )
    runs = "one run" if r.rounds == 1 else f"median of {r.rounds}"
    scipy_here = f"; SciPy {v['scipy']} here has none" if v.get("scipy") else ""
    head = [
        "# The memo, reproduced",
        "",
        f"Memo: {MEMO_MACHINE}; {MEMO_IMAGES:,} CIFAR-10 training images (32x32).",
        "",
        f"Today: {r.started}, {r.machine['cpu']} ({r.machine['cpus']} CPUs),"
        f" {r.machine['system']}; {r.images:,} training images ({r.shape}) of `{r.dataset}`"
        f" (profile `{r.profile}`) in {r.root}; {_versions_line(v)}. Each of today's figures is"
        f" {each}; the page cache was dropped (cold) or filled (warm), and verified, before every"
        f" pass. The whole memo took {r.seconds:g} s.",
    ]
    if r.images != MEMO_IMAGES:
        head += [
            "",
            f"Today's whole-set figures are for {n} images, the memo's for {MEMO_IMAGES:,}:"
            " compare them per image.",
        ]
    one = [
        [
            "scipy.misc.imread",
            _memo("scipy"),
            _memo_per_image("scipy"),
            SCIPY_GONE.format(here=scipy_here),
            "n/a",
            "n/a",
        ]
    ]
    for c in EXPERIMENT_1:
        one.append(
            [
                NAMES[c.loader],
                _memo(c),
                _memo_per_image(c),
                _today(r, c),
                _per_image(r, c),
                _faster(r, c),
            ]
        )
    table_1 = md_table(
        [
            "library",
            f"memo, {MEMO_IMAGES:,} images",
            "memo per image",
            f"today, {n} images, {runs}",
            "today per image",
            "today faster by",
        ],
        one,
    )
    two = []
    for loader in ("cv2", "pickle"):
        for cache in ("cold", "warm"):
            seq, threads = _cell(loader, "sequential", cache), _cell(loader, THREADS, cache)
            memo_speedup = (
                f"{PUBLISHED_SPEEDUP:.2f}×"
                if (loader, cache) == ("cv2", "cold")
                else "not published"
            )
            two.append(
                [
                    f"{FILES[threads.fmt]}: {NAMES[loader].split(':')[0]}",
                    cache,
                    _memo(threads),
                    _memo_per_image(threads),
                    _today(r, threads),
                    _per_image(r, threads),
                    _today(r, seq),
                    memo_speedup,
                    f"{speedup(r, loader, cache):.2f}×",
                ]
            )
    table_2 = md_table(
        [
            "files: loader",
            "cache",
            "memo, 3 threads",
            "memo per image",
            f"today, 3 threads, {n} images, {runs}",
            "today per image",
            f"today, sequential, {runs}",
            "memo: 3 threads over sequential",
            "today: 3 threads over sequential",
        ],
        two,
    )
    lines = conclusions(r)
    text = "\n".join(
        head
        + [
            "",
            "## Experiment 1: one library at a time, sequential, the page cache dropped before"
            " each",
            "",
            table_1,
            "",
            f"## Experiment 2: 3 threads taking paths off one queue (`{THREADS}`), JPEGs and"
            " `ndarray.dump` pickles",
            "",
            "The memo's 1.33× is its OpenCV loop of experiment 1 (441.20 s) over its 3 threads"
            " (332.17 s); today's sequential cold JPEG figure is experiment 1's OpenCV row.",
            "",
            table_2,
            "",
            "## Which of the memo's conclusions still hold",
            "",
        ]
        + [f"- {line}" for line in lines]
    )
    return text + "\n", lines


# ------------------------------------------------------------------ its conclusions, today


def _overlap(a: list[float], b: list[float]) -> bool:
    """Two cells' runs overlap: neither is faster in every run, so the order of their medians
    may not survive another memo."""
    return len(a) > 1 and len(b) > 1 and min(a) <= max(b) and min(b) <= max(a)


def _holds(faster: list[float], slower: list[float], figures: str) -> str:
    """The verdict, "holds" where `faster` has the lower median, then the figures that decide
    it, and a warning where the runs overlap."""
    word = "holds" if median(faster) < median(slower) else "does not hold"
    if _overlap(faster, slower):
        figures += "; within the runs' spread"
    return f"{word} ({figures})"


def conclusions(r: Run) -> list[str]:
    """Each of the memo's conclusions, with whether today's figures bear it out and the figures
    that decide it: computed from the runs, never written down in advance."""
    s = r.samples

    def secs(c: Cell) -> str:
        return _whole(median(s[c]))

    pil, cv2 = _cell("pil", "sequential", "cold"), _cell("cv2", "sequential", "cold")
    out = [
        f"OpenCV reads JPEGs faster than PIL (sequential, cold; memo {_memo(cv2)} vs"
        f" {_memo(pil)}): " + _holds(s[cv2], s[pil], f"{secs(cv2)} vs {secs(pil)}"),
        f"scipy.misc.imread costs what PIL does (memo {_memo('scipy')} vs {_memo(pil)}; it"
        " wrapped PIL): cannot be checked, scipy.misc.imread no longer exists",
    ]
    seq, threads = cv2, _cell("cv2", THREADS, "cold")
    gain = speedup(r, "cv2", "cold")
    out.append(
        f"3 threads speed up OpenCV from a cold cache (memo {PUBLISHED_SPEEDUP:.2f}×): "
        + _holds(
            s[threads],
            s[seq],
            f"{gain:.2f}×: {secs(seq)} sequential, {secs(threads)} with 3 threads",
        )
    )
    for cache in ("cold", "warm"):
        jpeg, pickle = _cell("cv2", THREADS, cache), _cell("pickle", THREADS, cache)
        memo_jpeg, memo_pickle = PUBLISHED[jpeg], PUBLISHED[pickle]
        out.append(
            f"{cache.capitalize()}, OpenCV's JPEGs load faster than the `ndarray.dump` pickles"
            f" with 3 threads (memo {_memo(jpeg)} vs {_memo(pickle)},"
            f" {memo_pickle / memo_jpeg:.2f}×): "
            + _holds(
                s[jpeg],
                s[pickle],
                f"{secs(jpeg)} vs {secs(pickle)}, {median(s[pickle]) / median(s[jpeg]):.2f}×",
            )
        )
    for loader, what in (("cv2", "JPEGs"), ("pickle", "pickles")):
        cold, warm = _cell(loader, THREADS, "cold"), _cell(loader, THREADS, "warm")
        memo_share = 1 - PUBLISHED[warm] / PUBLISHED[cold]
        share = 1 - median(s[warm]) / median(s[cold])
        # more than half the cold time waiting on the disk: cold takes over twice warm
        doubled = [2 * x for x in s[warm]]
        out.append(
            f"Reading the {what} from disk, not decoding them, is most of the cold time with 3"
            f" threads (memo {memo_share:.0%}: {PUBLISHED[cold]:.2f} s cold,"
            f" {PUBLISHED[warm]:.2f} s warm): "
            + _holds(doubled, s[cold], f"{share:.0%}: {secs(cold)} cold, {secs(warm)} warm")
        )
    return out


def to_json(r: Run) -> dict:
    """memo.json: every timed pass of every cell, and what the memo ran on."""
    return {
        "dataset": r.dataset,
        "root": r.root,
        "profile": r.profile,
        "images": r.images,
        "shape": r.shape,
        "rounds": r.rounds,
        "started": r.started,
        "seconds": r.seconds,
        "versions": r.versions,
        "machine": r.machine,
        "passes": [
            {
                "loader": c.loader,
                "format": c.fmt,
                "execution": c.execution,
                "cache": c.cache,
                "seconds": xs,
                "memo_seconds": PUBLISHED.get(c),
            }
            for c, xs in r.samples.items()
        ],
    }
