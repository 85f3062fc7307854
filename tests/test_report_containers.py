"""The report's containers section (imgload/report_containers.py) on hand-made asv results of two
stacks, and the bytes-on-disk record it reads (bench_sample), on real prepared sets."""

import json
import math
import os
from pathlib import Path

from benchmarks.bench_sample import Sample
from imgload import containers, report, report_containers
from imgload.results import load

from .helpers import md_tables, write_stack_results

SMALL = "bench_containers.SmallContainers.time_read"
LARGE = "bench_containers.LargeContainers.time_read"
OPEN = "bench_containers.ContainerOpen.time_open"
FILES = "bench_decode.SmallImages.time_decode"
IMAGES = "bench_sample.Sample.track_images_per_call"
SIZES = report_containers.SIZES
MACHINE = {
    "machine": "box",
    "cpu": "Test CPU",
    "num_cpu": "2",
    "os": "Linux",
    "arch": "x86_64",
    "ram": "1",
    "version": 1,
}
COLUMNS = ["result", "params", "version", "started_at", "duration", "stats_q_25", "stats_q_75"]

# benchmark -> (param names, params as asv writes them)
GRID = {
    SMALL: (
        ["container", "order", "cache"],
        [["'zip'", "'wds'", "'memmap'"], ["'sequential'", "'shuffled'"], ["'warm'", "'cold'"]],
    ),
    LARGE: (
        ["container", "order", "cache"],
        [["'zip'", "'memmap'"], ["'sequential'"], ["'warm'", "'cold'"]],
    ),
    OPEN: (["container", "cache"], [["'zip'"], ["'warm'", "'cold'"]]),
    FILES: (
        ["decoder", "format", "execution", "cache"],
        [["'cv2'", "'pil'"], ["'jpeg'"], ["'sequential'"], ["'warm'", "'cold'"]],
    ),
    IMAGES: (
        ["benchmark"],
        [["'SmallImages'", "'SmallContainers'", "'LargeContainers'", "'ContainerOpen'"]],
    ),
    SIZES: (
        ["benchmark", "container"],
        [["'SmallContainers'", "'LargeContainers'"], ["'zip'", "'wds'", "'memmap'"]],
    ),
}
# fmt: off
# seconds per call (images per call: 1000 small, 32 large, 1 open), in asv's result order
RESULTS = {
    "a": {
        SMALL: [0.040, 0.120, 0.041, 0.300,      # zip: sequential warm, cold; shuffled warm, cold
                0.090, 0.150, 0.095, 0.160,      # wds
                0.004, 0.0123, 0.0045, 0.200],   # memmap
        LARGE: [0.048, 0.0608, 0.0032, 0.0512],  # zip warm, cold; memmap warm, cold
        OPEN: [0.0002, 0.0005],
        FILES: [0.0586, 0.250, 0.070, 0.300],    # cv2 warm, cold; pil warm, cold
        IMAGES: [1000, 1000, 32, 1],
        SIZES: [1093.4, 2560.0, 3200.128, 84123.0, None, 562500.5],  # small zip wds memmap; large
    },
    "b": {
        SMALL: [0.050, 0.130, 0.051, 0.310, float("nan"), float("nan"), float("nan"), float("nan"),
                0.005, 0.013, 0.0055, 0.210],    # wds skipped (n/a): not installed in this stack
        LARGE: [0.050, 0.070, 0.0033, 0.0520],
        OPEN: [0.0003, 0.0006],
        FILES: [0.0842, 0.260, 0.071, 0.310],
        IMAGES: [1000, 1000, 32, 1],
        # no SIZES record: results of a run before the record existed
    },
}
# fmt: on


def _results(tmp: Path, results: dict = RESULTS, grid: dict = GRID) -> Path:
    """asv results of stacks 'a' and 'b' on machine 'box': quartiles 5% either side of each
    median (the spread reads ±5%), but none for small memmap's sequential warm (no spread shown)
    and 0.4% for its shuffled warm (±<1%); none for the records, one value each."""
    folder = tmp / "results"
    (folder / "box").mkdir(parents=True)
    benchmarks = {"version": 2}
    for key, (names, params) in grid.items():
        kind = "track" if key.startswith("bench_sample") else "time"
        unit = {"time": "seconds", "track": "bytes" if key == SIZES else "images"}[kind]
        benchmarks[key] = dict(
            name=key, type=kind, unit=unit, version="1", params=params, param_names=names
        )
    (folder / "benchmarks.json").write_text(json.dumps(benchmarks))
    (folder / "box" / "machine.json").write_text(json.dumps(MACHINE))
    for stack, values in results.items():
        rows = {}
        for key, got in values.items():
            timed = benchmarks[key]["type"] == "time"
            spread = [0.05] * len(got)
            if key == SMALL:
                spread[8], spread[10] = None, 0.004
            q25 = [v * (1 - s) if timed and s else None for v, s in zip(got, spread)]
            q75 = [v * (1 + s) if timed and s else None for v, s in zip(got, spread)]
            rows[key] = [got, grid[key][1], "1", 0, 1.0, q25, q75]
        write_stack_results(folder / "box", MACHINE, stack, COLUMNS, rows)
    return folder


def _table_after(text: str, caption: str) -> list[list[str]]:
    """The rows (header first) of the first table after the line starting with `caption`."""
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(caption))
    return md_tables("\n".join(lines[at:]))[0]


def test_containers_section_shows_each_stack_against_one_file_per_image(tmp_path):
    text = report.render(_results(tmp_path), tmp_path / "out").read_text()
    heading = "### Containers: time per image and size on disk, against one file per image"
    # after the summaries, before the per-benchmark tables
    assert text.index("### Environments") < text.index(heading) < text.index(f"### {SMALL}")
    assert "half the interquartile range" in text and "`cv2`" in text
    # the site's comparison page shows the same section (report.to_html): heading, every table
    page = report.to_html(text)
    assert (
        '<h3 id="containers-time-per-image-and-size-on-disk-against-one-file-per-image">' in page
    )
    assert page.count("<table>") == len(md_tables(text))
    assert "<code>SmallContainers</code>, stack <code>a</code>: seconds per image" in page

    head = [
        "stored as",
        "sequential, warm",
        "shuffled, warm",
        "sequential, cold",
        "shuffled, cold",
    ]
    small_a = _table_after(text, "`SmallContainers`, stack `a`: seconds per image")
    assert small_a == [
        [*head, "on disk per image", "MB for 1000 images"],
        ["one file per image", "58.6μs ±5%", "-", "250μs ±5%", "-", "-", "-"],
        ["zip", "40.0μs ±5%", "41.0μs ±5%", "120μs ±5%", "300μs ±5%", "1.1 KB", "1.09"],
        ["wds", "90.0μs ±5%", "95.0μs ±5%", "150μs ±5%", "160μs ±5%", "2.6 KB", "2.56"],
        ["memmap", "4.00μs", "4.50μs ±<1%", "12.3μs ±5%", "200μs ±5%", "3.2 KB", "3.20"],
    ]
    assert "one call reads 1000 images" in text
    # stack b: wds skipped there; no size record in its results
    small_b = _table_after(text, "`SmallContainers`, stack `b`: seconds per image")
    assert small_b[1][:2] == ["one file per image", "84.2μs ±5%"]
    assert small_b[3] == ["wds", "n/a", "n/a", "n/a", "n/a", "n/a", "n/a"]
    assert small_b[2][-2:] == ["n/a", "n/a"]

    # large images: storage order only, and no per-file benchmark in these results
    large_a = _table_after(text, "`LargeContainers`, stack `a`: seconds per image")
    assert large_a == [
        [
            "stored as",
            "sequential, warm",
            "sequential, cold",
            "on disk per image",
            "MB for 32 images",
        ],
        ["one file per image", "n/a", "n/a", "-", "-"],
        ["zip", "1.50ms ±5%", "1.90ms ±5%", "84.1 KB", "2.69"],
        ["memmap", "100μs ±5%", "1.60ms ±5%", "562.5 KB", "18.0"],
    ]
    # the order: small then large, each stack in the report's column order
    captions = [line for line in text.splitlines() if ", stack `" in line]
    assert [c.split(":")[0] for c in captions] == [
        "`SmallContainers`, stack `a`",
        "`SmallContainers`, stack `b`",
        "`LargeContainers`, stack `a`",
        "`LargeContainers`, stack `b`",
    ]


def test_the_size_record_has_no_table_of_its_own_and_an_open_is_timed_per_open(tmp_path):
    text = report.render(_results(tmp_path), tmp_path / "out").read_text()
    assert "### bench_sample" not in text  # shown in the containers section only
    caption = f"### {OPEN}"
    lines = text.splitlines()
    assert lines[lines.index(caption) + 2] == (
        "Seconds per open (median of asv's samples ± spread, marks as in the table at a glance;"
        " one call opens the container once)"
    )
    rows = _table_after(text, "Seconds per open")
    assert rows[0] == ["container", "cache", "a", "b"]
    assert rows[1][:3] == ["zip", "warm", "200μs ±5%"]
    assert "1 images" not in text
    # every other timing keeps its per-image caption
    assert (
        "Seconds per image (median of asv's samples ± spread, marks as in the table at a glance;"
        " one call loads 1000 images)" in text
    )


def test_no_container_benchmark_no_section(tmp_path):
    grid = {FILES: GRID[FILES], IMAGES: GRID[IMAGES]}
    results = {s: {k: v for k, v in r.items() if k in grid} for s, r in RESULTS.items()}
    benchmarks, [machine], _ = load(_results(tmp_path, results, grid))
    tables = report.machine_tables(machine, benchmarks)
    assert report_containers.sizes_table(machine, benchmarks) is None
    assert report_containers.containers_section(tables, None) == []


def test_bytes_per_image_record_is_the_containers_files_on_disk_over_their_images(
    tiny, tiny_large, tmp_path
):
    roots = {"small": str(tiny), "large": str(tiny_large)}
    sample = Sample()
    for benchmark, root in (("SmallContainers", tiny), ("LargeContainers", tiny_large)):
        held = len(json.loads((root / "index.json").read_text())["containers"]["indices"])
        for name in containers.CONTAINERS:
            folder = root / containers.FOLDER / name
            on_disk = sum(os.path.getsize(folder / f) for f in os.listdir(folder))
            got = sample.track_container_bytes_per_image(roots, benchmark, name)
            assert got == on_disk / held, (benchmark, name)
    # a set whose manifest leaves a container out, or packs none: n/a (NaN), not a failure (two
    # folders: datasets.load_index caches by modification time, which one tick may not change)
    index = json.loads((tiny / "index.json").read_text())
    del index["containers"]["packed"]["memmap"]
    without_memmap = {"small": str(_index_folder(tmp_path / "some", index))}
    del index["containers"]
    without_any = {"small": str(_index_folder(tmp_path / "none", index))}
    assert math.isnan(
        sample.track_container_bytes_per_image(without_memmap, "SmallContainers", "memmap")
    )
    assert sample.track_container_bytes_per_image(without_memmap, "SmallContainers", "zip") > 0
    assert math.isnan(
        sample.track_container_bytes_per_image(without_any, "SmallContainers", "zip")
    )


def _index_folder(folder: Path, index: dict) -> Path:
    """A folder holding only this index.json: all the record reads of a prepared set."""
    folder.mkdir()
    (folder / "index.json").write_text(json.dumps(index))
    return folder
