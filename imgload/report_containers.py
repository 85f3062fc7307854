"""The report's containers section: which way of storing the same images loads fastest, in order
and shuffled, cold and warm, against one file per image, and what each costs on disk.

The report's per-benchmark tables put the stacks side by side, one parameter combination a row,
and mark what changed between stacks. The question here is asked inside one stack, across the
ways of storing the images, so each stack gets a table of its own: a row per container under the
per-file row of the same images, the access orders and cache states as columns, then the size on
disk. Pure: the report's Tables in, Markdown lines out; report.machine_section calls it.
"""

from __future__ import annotations

from .containers import DECODER
from .report import NA, Table, md_table, plus_minus, seconds, table, timing_tables
from .results import Benchmark, Machine

# bench_sample's record of each container's bytes on disk per image. It is in bench_sample's
# Sample group, so report.machine_tables leaves it out of the per-benchmark tables, and this
# section builds its table itself.
SIZES = "bench_sample.Sample.track_container_bytes_per_image"
# container benchmark -> the per-file benchmark of the same dataset, whose call reads the same
# images (the containers hold the default profile's sample, in its order)
FILES = {"SmallContainers": "SmallImages", "LargeContainers": "LargeImages"}
# the per-file row: the same JPEG bytes, decoded by the containers' decoder, files in sample order
FILE_PARAMS = {"decoder": DECODER, "format": "jpeg", "execution": "sequential"}
NOT_MEASURED = "-"

NOTE = (
    "The same images in every row: the default sample, one JPEG file each (`{small}` /"
    " `{large}`, files read in sample order) or packed in a container. Encoded containers decode"
    " with `{decoder}`, as the files do; `hdf5-decoded` and `memmap` hold decoded pixels."
    " `shuffled`: a fixed random order; `parquet` shuffles its row groups and the rows within"
    " each, `wds` its shards, then passes the images through a one-shard buffer, as WebDataset"
    " does. Median per image ± half the interquartile range; {dash}: not measured. On disk: the"
    " container's bytes per image, and for the images one call reads (under the default"
    " profile, the whole container), the same files in every stack."
)


def sizes_table(machine: Machine, benchmarks: dict[str, Benchmark]) -> Table | None:
    """The bytes-per-image record as a Table of this machine, or None in results without it."""
    bench = benchmarks.get(SIZES)
    return None if bench is None else table(machine, bench, benchmarks)


def containers_section(tables: dict[str, Table], sizes: Table | None) -> list[str]:
    """Markdown lines: per container benchmark and stack, a table of time per image and size on
    disk; nothing where the results hold no container benchmark."""
    timed = timing_tables(tables)
    found = [(timed[g], timed.get(files)) for g, files in FILES.items() if g in timed]
    if not found:
        return []
    small, large = FILES.values()
    note = NOTE.format(small=small, large=large, decoder=DECODER, dash=NOT_MEASURED)
    out = ["### Containers: time per image and size on disk, against one file per image", ""]
    out += [note, ""]
    for t, files in found:
        for i, column in enumerate(t.columns):
            out += _stack_table(t, files, sizes, i, column.stack)
    return out


def _stack_table(
    t: Table, files: Table | None, sizes: Table | None, i: int, stack: str
) -> list[str]:
    """Stack i's table: the per-file row, then a row per container, as captioned lines."""
    images = t.loads[i].images
    columns = [(o, c) for c in t.levels("cache") for o in t.levels("order")]
    header = [
        "stored as",
        *[f"{order}, {cache}" for order, cache in columns],
        "on disk per image",
        f"MB for {images or '?'} images",
    ]
    rows = [
        [
            "one file per image",
            *[_file_time(files, i, order, cache) for order, cache in columns],
            NOT_MEASURED,
            NOT_MEASURED,
        ]
    ]
    for name in t.levels("container"):
        per_image = None if sizes is None else sizes.cells[i].get((t.bench.group, name))
        rows.append(
            [
                name,
                *[_time(t, i, t.combo(container=name, order=o, cache=c)) for o, c in columns],
                NA if per_image is None else f"{per_image / 1e3:.1f} KB",
                NA if per_image is None or not images else _mb(per_image * images),
            ]
        )
    loads = f"one call reads {images} images" if images else "images per call unknown"
    caption = f"`{t.bench.group}`, stack `{stack}`: seconds per image ({loads})"
    return [caption, "", md_table(header, rows), ""]


def _file_time(files: Table | None, i: int, order: str, cache: str) -> str:
    if order != "sequential":
        return NOT_MEASURED  # the per-file benchmarks read the files in sample order only
    if files is None:
        return NA
    return _time(files, i, files.combo(**FILE_PARAMS, cache=cache))


def _time(t: Table, i: int, combo: tuple | None) -> str:
    """The median per image and its spread, as report.timing writes them; no mark, which
    compares stacks, and this table is one stack's."""
    value = None if combo is None else t.per_image(i, combo)
    if value is None:
        return NA
    return seconds(value) + plus_minus(t.noise(i, combo))


def _mb(size: float) -> str:
    mb = size / 1e6
    return f"{mb:.2f}" if mb < 10 else f"{mb:.1f}"
