"""`python -m imgload report`: asv results -> Markdown tables and PNG plots across environments.

asv's site and `asv compare` compare commits; this compares library stacks at one commit,
per machine: seconds per image and megapixels per second, the speedup of each pool over
`sequential`, cold / warm, the harness overhead, and what each environment was built with.
A missing, failed or skipped result is "n/a", never an error.
"""

from __future__ import annotations

import datetime
import functools
import html
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from asv.util import human_value

from . import datasets, suite, verdict
from .cifar import TRAIN_BATCHES
from .execution import parse as parse_execution
from .files import write_atomic
from .results import (
    SAMPLE_KEYS,
    Benchmark,
    Column,
    Machine,
    ResultsError,
    Spread,
    load,
    spreads,
    values,
)

NA = "n/a"
OVERHEAD_GROUP = "Overhead"
SAMPLE_GROUP = "Sample"


# ------------------------------------------------------------------ per-image scaling


def _default_loads(group: str) -> tuple[int, int] | None:
    """(images per call, pixels per image) of the default profile, from the dataset
    manifests; only for results that predate the bench_sample record."""
    try:
        role, what = suite.LOADS[group]
        m = datasets.manifest(suite.ROLES[role][1])
        train, height, width = m.source["train"], *m.source["shape"][:2]
        total = train + m.source.get("test", 0)
        if what == "batch":
            return train // len(TRAIN_BATCHES), height * width
        return min(m.sample, train, total - 1), height * width
    except (KeyError, ValueError, TypeError, datasets.DatasetError):
        return None


@dataclass
class Loads:
    images: int | None
    pixels: int | None
    recorded: bool  # False: taken from the manifests' default profile


def loads(column: Column, group: str, benchmarks: dict[str, Benchmark]) -> Loads:
    """What one timed call of `group` loads in `column`, as bench_sample recorded it."""
    found = []
    for key in SAMPLE_KEYS:
        bench = benchmarks.get(key)
        got = values(column, bench)[0].get((group,)) if bench else None
        found.append(int(got) if got else None)
    if found[0]:
        return Loads(found[0], found[1], True)
    fallback = _default_loads(group)
    return Loads(*fallback, False) if fallback else Loads(None, None, False)


# ------------------------------------------------------------------ formatting


def seconds(value: float | None) -> str:
    return NA if value is None else human_value(value, "seconds")


def ratio(value: float | None, suffix: str = "×") -> str:
    return NA if value is None else f"{value:.2f}{suffix}"


def plus_minus(noise: float | None) -> str:
    """The ± after a median: half the interquartile range as a share of it ("" if unknown)."""
    if noise is None:
        return ""
    return f" ±{noise:.0%}" if noise >= 0.005 else " ±<1%"


def timing(t: Table, i: int, combo: tuple, per_image: bool, mps: bool = False) -> str:
    """One timing cell: the median (per image or per call), its spread, megapixels per second,
    and a mark where this stack differs from the one to its left beyond the noise."""
    value = t.per_image(i, combo) if per_image else t.cells[i].get(combo)
    if value is None:
        return NA
    text = seconds(value)
    text += plus_minus(t.noise(i, combo))
    rate = t.megapixels_per_s(i, combo) if mps else None
    if rate:
        text += f" ({rate:.1f} MP/s)"
    c = t.versus_left(i, combo)
    if c is not None and c.outcome == verdict.STEP:
        text += f" **{c.size:.2f}× {'slower' if c.slower else 'faster'}**"
    return text


SPREAD_NOTE = (
    "±: half the interquartile range of the samples, as a share of the median. **1.25× slower** / "
    "**2.00× faster**: than the stack to its left, marked only where the difference is beyond the "
    "noise: asv's rank test (p < 0.002) on the raw samples, the Hodges-Lehmann ratio of the "
    "samples with its 99% interval, and the ratio of the fastest samples agree on at least 1.1× "
    "and every pairing of the two stacks' processes shows it beyond the run's process-to-process "
    "noise (`imgload/verdict.py`). An unmarked difference may be noise."
)


def md_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


# ------------------------------------------------------------------ derived numbers


@dataclass
class Table:
    """combo -> value per column, for one benchmark on one machine, per image where known."""

    bench: Benchmark
    columns: list[Column]
    cells: list[dict[tuple, float | None]]  # per column
    loads: list[Loads]
    commits: list[str | None]
    spreads: list[dict[tuple, Spread]]  # per column
    # how far two processes of one stack differ in this machine's run (verdict.process_floor):
    # a marked difference must pass it in every pairing of processes; set by machine_tables
    floor: float = 1.0

    @property
    def names(self) -> list[str]:
        return self.bench.param_names

    def index(self, name: str) -> int | None:
        return self.names.index(name) if name in self.names else None

    def per_image(self, i: int, combo: tuple) -> float | None:
        value = self.cells[i].get(combo)
        images = self.loads[i].images
        return None if value is None or not images else value / images

    def megapixels_per_s(self, i: int, combo: tuple) -> float | None:
        t, px = self.per_image(i, combo), self.loads[i].pixels
        return None if t is None or not px else px / t / 1e6

    def noise(self, i: int, combo: tuple) -> float | None:
        """Half the interquartile range of the samples, as a share of the median."""
        sp, value = self.spreads[i].get(combo), self.cells[i].get(combo)
        if sp is None or sp.q25 is None or sp.q75 is None or not value:
            return None
        return (sp.q75 - sp.q25) / 2 / value

    def versus_left(self, i: int, combo: tuple) -> verdict.Comparison | None:
        """This stack against the stack to its left, where both kept enough raw samples."""
        if i == 0:
            return None
        a, b = (self.spreads[k].get(combo) for k in (i - 1, i))
        if a is None or b is None or not a.samples or not b.samples:
            return None
        return verdict.compare(
            a.samples, b.samples, process_size=self.process_size, floor=self.floor
        )

    @property
    def empty(self) -> bool:
        """No result in any stack."""
        return not any(v is not None for column in self.cells for v in column.values())

    @property
    def process_size(self) -> int | None:
        """Samples per process: asv's repeat, where it ran more than one round of a fixed count."""
        return process_size(self.bench)

    @functools.cached_property
    def process_spreads(self) -> list[float]:
        """How far the processes of one stack differ (slowest median / fastest), for every
        result of this table whose samples came in processes: computed once, read by the
        table's floor and the report's note."""
        out = []
        for column in self.spreads:
            for sp in column.values():
                groups = sp.samples and verdict.per_process(sp.samples, self.process_size)
                if groups:
                    out.append(verdict.process_spread(groups))
        return out

    def levels(self, name: str) -> list:
        """The values parameter `name` takes, in the benchmark's order ([] if it has none)."""
        k = self.index(name)
        return [] if k is None else list(dict.fromkeys(c[k] for c in self.bench.combos))

    def combo(self, **fixed) -> tuple | None:
        """The parameter combination with these values, or None where `fixed` does not name
        exactly this benchmark's parameters."""
        if set(self.names) != set(fixed):
            return None
        return tuple(fixed[n] for n in self.names)

    def replace(self, combo: tuple, name: str, value) -> tuple:
        k = self.index(name)
        return combo[:k] + (value,) + combo[k + 1 :]


def process_size(bench: Benchmark) -> int | None:
    """Samples each process of `bench` took: its repeat, where it is a fixed count and asv ran
    more than one round (one process each); None otherwise."""
    repeat, rounds = bench.info.get("repeat"), bench.info.get("rounds")
    ok = isinstance(repeat, int) and isinstance(rounds, int) and repeat > 0 and rounds > 1
    return repeat if ok else None


def process_spreads(tables) -> list[float]:
    """Every table's process spreads together: the machine's process-to-process noise."""
    return [s for t in tables for s in t.process_spreads]


def has_own_floor(t: Table) -> bool:
    """Enough results for a floor of the table's own (verdict.FLOOR_MIN_RESULTS)."""
    return len(t.process_spreads) >= verdict.FLOOR_MIN_RESULTS


def table(machine: Machine, bench: Benchmark, benchmarks: dict[str, Benchmark]) -> Table:
    cells, commits = [], []
    for column in machine.columns:
        got, commit = values(column, bench)
        cells.append(got)
        commits.append(commit)
    return Table(
        bench,
        machine.columns,
        cells,
        [loads(c, bench.group, benchmarks) for c in machine.columns],
        commits,
        [spreads(c, bench) for c in machine.columns],
    )


def speedup(t: Table, i: int, combo: tuple) -> float | None:
    """sequential time / this execution's time, other parameters equal."""
    return _div(t.cells[i].get(t.replace(combo, "execution", "sequential")), t.cells[i].get(combo))


def cost_over_ideal(t: Table, i: int, combo: tuple) -> float | None:
    """This pool's time / (sequential time / workers): 1.0 is perfect scaling."""
    workers = parse_execution(combo[t.index("execution")])[1]
    ideal = _div(t.cells[i].get(t.replace(combo, "execution", "sequential")), workers)
    return _div(t.cells[i].get(combo), ideal)


def cold_over_warm(t: Table, i: int, combo: tuple) -> float | None:
    return _div(
        t.cells[i].get(t.replace(combo, "cache", "cold")),
        t.cells[i].get(t.replace(combo, "cache", "warm")),
    )


# ------------------------------------------------------------------ sections


# suite.LOADS' what -> (the unit a call is timed in, the caption's account of one call)
PER_CALL = {
    "open": ("open", "opens the container once"),
    "first-batch": ("first batch", "starts a fresh loader and takes its first batch of {loaded}"),
}


def _header(t: Table, first: list[str]) -> list[str]:
    return first + [c.stack for c in t.columns]


def _rows(
    t: Table, combos, cell: Callable[[int, tuple], str], drop: str | None = None
) -> list[list[str]]:
    keep = [k for k, n in enumerate(t.names) if n != drop]
    return [
        [str(combo[k]) for k in keep] + [cell(i, combo) for i in range(len(t.columns))]
        for combo in combos
    ]


def _floor_clause(t: Table) -> str:
    """The bar this table's marks passed in every pairing of processes, where they had one."""
    if not t.process_size:
        return ""
    return f" here each beyond {max(verdict.FACTOR, t.floor):.2f}× in every pairing of processes;"


def group_section(t: Table) -> list[str]:
    names, combos = t.names, t.bench.combos
    title = t.bench.key
    out = [f"### {title}", ""]
    if (
        t.empty
    ):  # e.g. bench_dataloader outside its opt-in torch stack: a table of n/a says nothing
        return out + [f"{NA} in every stack on this machine (not run, failed or skipped).", ""]
    if t.bench.info.get("type") != "time":
        unit = t.bench.info.get("unit", "")
        out += [
            f"{t.bench.info.get('type', 'value')} per call ({unit})",
            "",
            md_table(
                _header(t, names),
                _rows(
                    t,
                    combos,
                    lambda i, c: (
                        NA if t.cells[i].get(c) is None else human_value(t.cells[i][c], unit)
                    ),
                ),
            ),
            "",
        ]
        return out
    # timed per call whatever a call loads: ContainerOpen (one open), the first batch of a fresh
    # DataLoader (its start dominates; per image it would read as a decode rate)
    per_call = PER_CALL.get(suite.LOADS.get(t.bench.group, ("", ""))[1])
    per = per_call[0] if per_call else "image" if all(ld.images for ld in t.loads) else "call"

    def cell(i, c):
        return timing(t, i, c, per_image=per == "image")

    counts = {ld.images for ld in t.loads}
    loaded = (
        f"{counts.pop() or '?'} images"
        if len(counts) == 1
        else ", ".join(
            f"{ld.images or '?'} images in {c.stack}" for ld, c in zip(t.loads, t.columns)
        )
    )
    loaded = per_call[1].format(loaded=loaded) if per_call else f"loads {loaded}"
    out += [
        f"Seconds per {per} (median of asv's samples ± spread, marks as in the table at a glance;"
        f"{_floor_clause(t)} one call {loaded})",
        "",
        md_table(_header(t, names), _rows(t, combos, cell)),
        "",
    ]
    if "decoder" in names and all(ld.pixels for ld in t.loads) and per == "image":
        out += [
            "Megapixels per second",
            "",
            md_table(
                _header(t, names),
                _rows(
                    t,
                    combos,
                    lambda i, c: (
                        NA
                        if t.megapixels_per_s(i, c) is None
                        else f"{t.megapixels_per_s(i, c):.1f}"
                    ),
                ),
            ),
            "",
        ]
    if "execution" in names:
        pools = [c for c in combos if c[t.index("execution")] != "sequential"]
        out += [
            "Speedup over `sequential` (ideal: the number of workers)",
            "",
            md_table(_header(t, names), _rows(t, pools, lambda i, c: ratio(speedup(t, i, c)))),
            "",
        ]
    if "cache" in names:
        base = [c for c in combos if c[t.index("cache")] == "warm"]
        out += [
            "Cold / warm page cache (time ratio)",
            "",
            md_table(
                _header(t, [n for n in names if n != "cache"]),
                _rows(t, base, lambda i, c: ratio(cold_over_warm(t, i, c)), drop="cache"),
            ),
            "",
        ]
    return out


# the main table's rows: per image size, the pooled grid's decoders, then the decoders only
# bench_codecs times (the same sample's files, every CODECS_STRIDE-th), from a file, warm,
# sequential
# the image sizes, smallest first: the benchmark classes that time each (the table at a glance
# and the plot of decode rate against size)
SIZE_GROUPS = (
    ("SmallImages", "SmallCodecs"),
    ("LargeImages", "LargeCodecs"),
    ("MediumCodecs",),
    ("CameraCodecs",),
)
SIZE_CLASSES = frozenset(g for groups in SIZE_GROUPS for g in groups)
# what a timing is read at, in the table at a glance and the plots of sizes: sequential, warm,
# from a file (each only where the benchmark has that parameter)
AT_A_GLANCE = {"execution": "sequential", "cache": "warm", "source": "file"}
SUMMARY_GROUPS = (
    *SIZE_GROUPS[:2],  # 32x32, 500x375
    ("JpegVariants", "NewFormats"),  # bench_formats: the large size's other formats
    *SIZE_GROUPS[2:],  # 1024x768, 12 MP
)


def summary_section(tables: dict[str, Table]) -> list[str]:
    """The main table: every decoder, warm cache, sequential, from a file, per image and MP/s."""
    rows, header = [], None
    for groups in SUMMARY_GROUPS:
        seen, size_rows = set(), []
        for group in groups:
            t = tables.get(group)
            if t is None or not {"decoder", "format"} <= set(t.names):
                continue
            header = header or ["images", "decoder", "format"] + [c.stack for c in t.columns]
            for combo in t.bench.combos:
                if any(n in t.names and combo[t.index(n)] != v for n, v in AT_A_GLANCE.items()):
                    continue
                decoder, fmt = combo[t.index("decoder")], combo[t.index("format")]
                cells = [
                    timing(t, i, combo, per_image=True, mps=True) for i in range(len(t.columns))
                ]
                if (decoder, fmt) not in seen and any(
                    c != NA for c in cells
                ):  # n/a everywhere: cannot read it
                    seen.add((decoder, fmt))
                    size_rows.append([group, decoder, fmt, *cells])
        rows += sorted(size_rows, key=lambda r: r[2])  # png, then jpeg... by format; stable within
    if not rows:
        return []
    return [
        "### Decoders at a glance: time per image, warm cache, sequential, from a file",
        "",
        SPREAD_NOTE,
        "`SmallCodecs` / `LargeCodecs`: decoders timed only by `bench_codecs` (every 4th file of"
        " the same sample). `JpegVariants` / `NewFormats` (500x375), `MediumCodecs` (1024x768)"
        " and `CameraCodecs` (4000x3000): `bench_formats`, on sets of their own"
        " (datasets/synthetic-formats, -1024, -12mp).",
        "",
        md_table(header, rows),
        "",
    ]


def overhead_section(
    tables: dict[str, Table], benchmarks: dict[str, Benchmark], machine: Machine
) -> list[str]:
    out = []
    found = {
        name: next(
            (b for b in benchmarks.values() if b.group == OVERHEAD_GROUP and b.key.endswith(name)),
            None,
        )
        for name in ("time_bare_loop", "time_sequential", "track_sequential_over_bare")
    }
    if found["time_sequential"] and found["time_bare_loop"]:
        tb, ts = (
            table(machine, found["time_bare_loop"], benchmarks),
            table(machine, found["time_sequential"], benchmarks),
        )
        tr = (
            table(machine, found["track_sequential_over_bare"], benchmarks)
            if found["track_sequential_over_bare"]
            else None
        )

        def cell(i, c):
            paired = tr.cells[i].get(c) if tr else None
            if paired is not None:
                return f"{paired:.3f}"
            medians = _div(ts.cells[i].get(c), tb.cells[i].get(c))
            return NA if medians is None else f"{medians:.3f}*"

        out += [
            "### Harness overhead: the suite's `sequential` /"
            " a bare `for f in files: decode(f)` loop",
            "",
            "Same decoder, same warm files, median over interleaved pairs of calls; goal: within "
            "3% (at most 1.030). \\* : no paired measurement, ratio of the two benchmarks' "
            "medians (taken minutes apart, so noisier).",
            "",
            md_table(_header(ts, ts.names), _rows(ts, ts.bench.combos, cell)),
            "",
        ]
        out += elsewhere_note(tr if tr and any(tr.commits) else ts, machine)
    rows, header = [], None
    for group in ("SmallImages", "LargeImages"):
        t = tables.get(group)
        if t is None or not {"execution", "cache"} <= set(t.names):
            continue
        header = header or ["images", *[n for n in t.names if n != "cache"]] + [
            c.stack for c in t.columns
        ]
        for combo in t.bench.combos:
            if combo[t.index("execution")] == "sequential" or combo[t.index("cache")] != "warm":
                continue
            keep = [str(v) for n, v in zip(t.names, combo) if n != "cache"]
            rows.append(
                [
                    group,
                    *keep,
                    *[ratio(cost_over_ideal(t, i, combo)) for i in range(len(t.columns))],
                ]
            )
    if rows:
        cpus = machine.info.get("num_cpu", "?")
        out += [
            "### Cost per image of each pool over the ideal `sequential / workers` (warm cache;"
            " 1.00× is perfect scaling)",
            "",
            f"This machine has {cpus} CPUs: pools with more workers than CPUs cannot reach 1.00×.",
            "",
            md_table(header, rows),
            "",
        ]
    return out


def _date(ms: int | None) -> str:
    if not ms:
        return NA
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _lib(name: str, key: str):
    """Getter for one field of a library's build record: None if the library is absent."""

    def get(build: dict):
        lib = build.get(name)
        return None if lib is None else lib.get(key) or "-"

    return get


BUILD_ROWS = (
    ("Python", lambda b: b.get("python")),
    ("CPU", lambda b: b.get("cpu")),
    ("NumPy", lambda b: b.get("numpy")),
    ("Pillow", _lib("pillow", "version")),
    ("Pillow libjpeg-turbo", _lib("pillow", "libjpeg_turbo")),
    ("Pillow zlib", _lib("pillow", "zlib")),
    ("Pillow libwebp", _lib("pillow", "webp")),
    ("Pillow libavif", _lib("pillow", "avif")),
    ("pillow-heif libheif", _lib("pillow_plugins", "libheif")),
    ("pillow-jxl-plugin", _lib("pillow_plugins", "pillow_jxl")),
    ("OpenCV", _lib("opencv", "version")),
    ("OpenCV JPEG", _lib("opencv", "JPEG")),
    ("OpenCV JPEG SIMD", _lib("opencv", "SIMD Support")),
    ("OpenCV PNG", _lib("opencv", "PNG")),
    ("OpenCV zlib", _lib("opencv", "ZLib")),
    ("OpenCV WebP", _lib("opencv", "WEBP")),
    ("OpenCV AVIF", _lib("opencv", "AVIF")),
    ("OpenCV JPEG XL", _lib("opencv", "JPEG XL")),
    ("OpenCV baseline", _lib("opencv", "Baseline")),
    ("OpenCV dispatched", _lib("opencv", "Dispatched code generation")),
    ("OpenCV IPP", _lib("opencv", "Intel IPP")),
    ("simplejpeg libjpeg-turbo", _lib("simplejpeg", "libjpeg_turbo")),
    ("imagecodecs libjpeg-turbo", _lib("imagecodecs", "libjpeg_turbo")),
    ("imagecodecs libpng", _lib("imagecodecs", "libpng")),
    ("imagecodecs zlib-ng", _lib("imagecodecs", "zlib_ng")),
    ("imagecodecs libwebp", _lib("imagecodecs", "libwebp")),
    ("imagecodecs libavif", _lib("imagecodecs", "libavif")),
    ("imagecodecs libjxl", _lib("imagecodecs", "libjxl")),
    ("imagecodecs libheif", _lib("imagecodecs", "heif")),
    ("pyvips libvips", _lib("pyvips", "libvips")),
    ("pyvips JPEG", _lib("pyvips", "jpeg")),
    ("pyvips PNG", _lib("pyvips", "png")),
    ("pyvips AVIF (AV1 decoder)", _lib("pyvips", "avif")),
    ("PyTurboJPEG libturbojpeg", _lib("turbojpeg", "libturbojpeg")),
    ("kornia-rs JPEG", _lib("kornia_rs", "jpeg")),
    ("kornia-rs PNG", _lib("kornia_rs", "png")),
    ("pyspng zlib", _lib("pyspng", "zlib")),
    ("ajpegli jpegli", _lib("ajpegli", "jpegli_commit")),
    ("torchvision", _lib("torchvision", "version")),
    ("torchvision JPEG", _lib("torchvision", "jpeg")),
    ("torchvision PNG", _lib("torchvision", "png")),
    ("TensorFlow", _lib("tensorflow", "version")),
)


def _last_start(run) -> int | None:
    """When the run's last benchmark started; None where asv recorded no start (a results file
    written without the column)."""
    return max((t for t in run.started_at.values() if t is not None), default=None)


def environments_section(machine: Machine) -> list[str]:
    cols = machine.columns
    rows = [
        ["commit", *[c.runs[0].commit_hash[:8] for c in cols]],
        ["commit date", *[_date(c.runs[0].date) for c in cols]],
        ["measured", *[_date(_last_start(c.runs[0])) for c in cols]],
    ]
    libraries = sorted({name for c in cols for name in c.requirements})
    rows += [[name, *[c.requirements.get(name, "-") for c in cols]] for name in libraries]
    builds = [(c.build or {}).get("build") for c in cols]
    rows += [
        [label, *[NA if b is None else (get(b) or "not installed") for b in builds]]
        for label, get in BUILD_ROWS
    ]
    out = ["### Environments", "", md_table(["", *[c.stack for c in cols]], rows), ""]
    missing = [c.stack for c, b in zip(cols, builds) if b is None]
    if missing:
        out += [
            f"No build record for {', '.join(missing)} (envcheck writes one into envinfo/ when asv"
            " builds the environment).",
            "",
        ]
    out += ['"-": the library\'s build information does not list it.', ""]
    return out


def elsewhere_note(t: Table, machine: Machine) -> list[str]:
    """Which columns of `t` come from a run at another commit than the report's."""
    elsewhere = {
        c.stack: commit[:8]
        for c, commit in zip(t.columns, t.commits)
        if commit and commit != machine.commit
    }
    if not elsewhere:
        return []
    return [
        "Taken from another run: " + ", ".join(f"{s} at {c}" for s, c in elsewhere.items()) + ".",
        "",
    ]


def machine_tables(machine: Machine, benchmarks: dict[str, Benchmark]) -> dict[str, Table]:
    """benchmark key -> its table on this machine, report order, for every benchmark but the
    sample record and the overhead check (which have sections of their own). Every table gets
    its floor: the process-to-process noise of its own results, or of the machine's where it
    has too few to tell (verdict.process_floor)."""
    tables = {
        b.key: table(machine, b, benchmarks)
        for b in ordered(benchmarks)
        if b.group not in (SAMPLE_GROUP, OVERHEAD_GROUP)
    }
    machine_floor = verdict.process_floor(process_spreads(tables.values()))
    for t in tables.values():
        t.floor = verdict.process_floor(t.process_spreads) if has_own_floor(t) else machine_floor
    return tables


def floor_note(tables: dict[str, Table]) -> list[str]:
    """The run's process-to-process noise, the bar every mark had to pass, in one paragraph."""
    spreads = process_spreads(tables.values())
    if not spreads:
        return []
    own = [t for t in tables.values() if has_own_floor(t)]
    low = min(own, key=lambda t: t.floor, default=None)
    high = max(own, key=lambda t: t.floor, default=None)
    per_benchmark = (
        f" from {low.floor:.2f}× ({low.bench.group}) to {high.floor:.2f}× ({high.bench.group}),"
        f" each table's in its caption;"
        if low and high
        else ""
    )
    return [
        f"Process-to-process noise: asv takes each result's samples in rounds, one process each,"
        f" and on a shared machine a whole process can run slow. Two processes of the same stack"
        f" and combination differed by a median {verdict.quantile(spreads, 0.5):.2f}× in this"
        f" run. A difference between stacks is marked only where every pairing of their"
        f" processes shows it, by at least the {verdict.FLOOR_QUANTILE:.0%} quantile of how far"
        f" two processes of one stack differ:{per_benchmark} {verdict.process_floor(spreads):.2f}×"
        f" over all {len(spreads)} results, for benchmarks with fewer than"
        f" {verdict.FLOOR_MIN_RESULTS}. Smaller differences in these results cannot be told"
        f" from a process that met a busier machine.",
        "",
    ]


def timing_tables(tables: dict[str, Table]) -> dict[str, Table]:
    """group -> the table of its first timing benchmark (what the summary and the plots use)."""
    out: dict[str, Table] = {}
    for t in tables.values():
        if t.bench.info.get("type") == "time":
            out.setdefault(t.bench.group, t)
    return out


def machine_section(
    machine: Machine,
    benchmarks: dict[str, Benchmark],
    all_tables: dict[str, Table],
    plots: dict[str, str],
) -> list[str]:
    info = machine.info
    out = [
        f"## Machine `{machine.name}`",
        "",
        f"{info.get('cpu', '?')}, {info.get('num_cpu', '?')} CPUs, {info.get('os', '?')}; "
        f"report commit {machine.commit[:8]}.",
        "",
    ]
    out += environments_section(machine)
    tables = timing_tables(all_tables)
    out += floor_note(all_tables)
    out += summary_section(tables)
    for name, path in plots.items():
        out += [f"![{name}]({path})", ""]
    out += overhead_section(tables, benchmarks, machine)
    from .report_containers import containers_section, sizes_table  # it imports this module

    out += containers_section(all_tables, sizes_table(machine, benchmarks))
    for t in all_tables.values():
        out += group_section(t)
        if t.empty:
            continue
        out += elsewhere_note(t, machine)
        if not all(ld.recorded for ld in t.loads) and t.bench.info.get("type") == "time":
            out += [
                "Images per call from the dataset manifests' default profile (these results carry"
                " no bench_sample record).",
                "",
            ]
    return out


def ordered(benchmarks: dict[str, Benchmark]) -> list[Benchmark]:
    """Small images first, then large, then the rest by name: the order a reader asks in."""
    first = {
        g: k for k, g in enumerate(("SmallImages", "LargeImages", "SmallCodecs", "LargeCodecs"))
    }
    return sorted(benchmarks.values(), key=lambda b: (first.get(b.group, len(first)), b.key))


def render(
    results_dir: Path,
    out_dir: Path,
    envinfo_dir: Path | None = None,
    commit: str | None = None,
    partial: bool = False,
) -> Path:
    """report.md and its plots in `out_dir`, one section per machine of `results_dir`; returns
    report.md's path. `partial` leaves out results files that cannot be read (named in a banner)
    instead of stopping."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ResultsError(
            f"{out_dir}: not a folder (--out names the folder report.md and its plots go to)"
        )
    benchmarks, machines, broken = load(results_dir, envinfo_dir, commit, partial)
    from . import plots  # matplotlib only when a report is made

    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ResultsError(f"{out_dir}: cannot create the report folder ({e.strerror})") from None
    lines = ["# imgload-benchmarks: library stacks compared", ""]
    if broken:
        lines += [
            "> **Partial report**: these results files could not be read and are left out:",
            ">",
        ]
        lines += [f"> - `{b}`" for b in broken] + [""]
    lines += [
        f"From `{results_dir}`, {len(machines)} machine(s). Times are asv's median per timed call "
        "divided by the images that call loads. n/a: no result (not run, failed, or the decoder "
        "cannot read that format there).",
        "",
    ]
    for machine in machines:
        all_tables = machine_tables(machine, benchmarks)
        images = {
            g: t
            for g, t in timing_tables(all_tables).items()
            if g in SIZE_CLASSES  # the image benchmarks at every size
        }
        made = plots.write_all(machine, images, out_dir)
        lines += machine_section(machine, benchmarks, all_tables, made)
    path = out_dir / "report.md"
    write_atomic(path, "\n".join(lines))
    return path


# ------------------------------------------------------------------ report.md as HTML
# The published site shows this report as a page of its own (imgload/site.py). Its Markdown is
# the one rendering of the sections above, so the page converts it rather than building the
# tables a second time. Only the Markdown this module writes is understood: headings (#, ##,
# ###), paragraphs, md_table's pipe tables, one image per line, the `>` banner with its `- `
# list, and inline `code`, **bold** and backslash escapes. Anything else is kept as escaped
# text, never dropped, so a construct added above shows up as plain text until taught here.

_IMAGE = re.compile(r"!\[(?P<alt>[^\]]*)\]\((?P<src>[^)\s]+)\)")
_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ESCAPED = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|])")


def _inline(text: str) -> str:
    """One line's inline Markdown as HTML: code spans kept verbatim, then bold and escapes."""
    parts = _CODE.split(text)  # odd indexes: the inside of a code span
    out = []
    for k, part in enumerate(parts):
        if k % 2:
            out.append(f"<code>{html.escape(part)}</code>")
        else:
            part = _BOLD.sub(lambda m: f"<strong>{m[1]}</strong>", html.escape(part, quote=False))
            out.append(_ESCAPED.sub(r"\1", part))
    return "".join(out)


def _anchor(title: str) -> str:
    """An id for a heading, from its text: what a link to one section of the page uses."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "section"


def _cells(line: str) -> list[str]:
    """The cells of one md_table row (the inverse of its `| a | b |`)."""
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _html_table(lines: list[str]) -> str:
    """md_table's output (header row, separator row, body rows) as an HTML table."""
    head = "".join(f"<th>{_inline(c)}</th>" for c in _cells(lines[0]))
    body = "".join(
        "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in _cells(line)) + "</tr>"
        for line in lines[2:]
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>{body}</tbody>\n</table>"


def _kind(line: str) -> str:
    """What block a line of report.md belongs to; a heading or an image is a block by itself."""
    if not line.strip():
        return "blank"
    if line.startswith("|"):
        return "table"
    if line.startswith(">"):
        return "quote"
    if line.startswith("- "):
        return "list"
    if re.match(r"#{1,6} ", line) or _IMAGE.fullmatch(line.strip()):
        return "single"
    return "text"


def _html_block(kind: str, lines: list[str], seen: set[str]) -> str:
    if kind == "table" and len(lines) >= 2 and set(lines[1]) <= set("|-: "):
        return _html_table(lines)
    if kind == "quote":
        inner = [re.sub(r"^> ?", "", line) for line in lines]
        return f'<blockquote class="banner">\n{to_html(chr(10).join(inner))}\n</blockquote>'
    if kind == "list":
        return "<ul>" + "".join(f"<li>{_inline(line[2:])}</li>" for line in lines) + "</ul>"
    if kind == "single":
        return _html_single(lines[0].strip(), seen)
    return "<p>" + "\n".join(_inline(line) for line in lines) + "</p>"


def _html_single(line: str, seen: set[str]) -> str:
    """A heading (with a unique id) or an image, as a figure captioned by its alt text."""
    image = _IMAGE.fullmatch(line)
    if image:
        alt, src = html.escape(image["alt"]), html.escape(image["src"])
        return f'<figure><img src="{src}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'
    hashes, title = line.split(" ", 1)
    anchor, n = _anchor(title), 2
    while anchor in seen:  # the same benchmark under two machines: -2, -3, ...
        anchor, n = f"{_anchor(title)}-{n}", n + 1
    seen.add(anchor)
    level = len(hashes)
    return f'<h{level} id="{anchor}">{_inline(title)}</h{level}>'


def to_html(markdown: str) -> str:
    """report.md (what render() writes) as an HTML fragment: the same sections and tables,
    for the site's comparison page. Blocks are runs of lines of one kind (see _kind)."""
    seen: set[str] = set()
    out = []
    for kind, group in itertools.groupby(markdown.splitlines(), key=_kind):
        lines = list(group)
        if kind == "blank":
            continue
        if kind == "single":  # each line a block of its own
            out += [_html_block(kind, [line], seen) for line in lines]
        else:
            out.append(_html_block(kind, lines, seen))
    return "\n".join(out)
