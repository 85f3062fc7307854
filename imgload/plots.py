"""PNG plots for `imgload report` (matplotlib, Agg backend: no display needed).

Four pictures per machine, over the image benchmarks and the warm cache unless said:
time per image per decoder across stacks (sequential); thread scaling per decoder
(workers vs speedup, with the ideal line); cold vs warm (sequential); decode rate against
image size per decoder (sequential, the newest stack with bench_formats' sizes). A missing value
leaves a gap, never an error.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .execution import parse as parse_execution  # noqa: E402
from .files import replacing  # noqa: E402
from .report import AT_A_GLANCE, SIZE_GROUPS  # noqa: E402  (report imports this module lazily)

NEEDED = {"decoder", "format", "execution", "cache"}
DPI = 110


def _save(fig, path: Path) -> None:
    """The figure as `path`, whole or not at all (the scratch name ends in .png:
    savefig goes by it)."""
    try:
        with replacing(path) as scratch:
            fig.savefig(scratch, dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)


def _usable(tables: dict) -> list:
    return [t for t in tables.values() if NEEDED <= set(t.names)]


def _has_data(t, **fixed) -> bool:
    """Any stack has a value for a combination matching `fixed` (any other parameter)."""
    keys = [(t.index(n), v) for n, v in fixed.items()]
    return any(
        all(c[k] == v for k, v in keys) and cells.get(c) is not None
        for cells in t.cells
        for c in cells
    )


def _stack_legend(fig, t, extra=()) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=f"C{i}", lw=6) for i in range(len(t.columns))] + [
        h for h, _ in extra
    ]
    fig.legend(
        handles,
        [c.stack for c in t.columns] + [label for _, label in extra],
        loc="upper right",
        fontsize=8,
        title="stack",
        ncols=1,
    )


def _grouped_bars(ax, t, groups: list, value, band=None) -> None:
    """One bar per stack in each group, side by side; value(stack column, group) -> y or None
    (a gap); band(stack column, group) -> (low, high) or None: an error bar, the samples'
    interquartile range."""
    n = len(t.columns)
    width = 0.8 / max(n, 1)
    for i in range(n):
        points = [
            (g + (i - (n - 1) / 2) * width, value(i, group), band(i, group) if band else None)
            for g, group in enumerate(groups)
        ]
        points = [(x, y, b) for x, y, b in points if y is not None]
        if not points:
            continue
        ax.bar([x for x, _, _ in points], [y for _, y, _ in points], width, color=f"C{i}")
        bars = [(x, y, b) for x, y, b in points if b is not None]
        if bars:
            ax.errorbar(
                [x for x, _, _ in bars],
                [y for _, y, _ in bars],
                fmt="none",
                ecolor="black",
                elinewidth=0.8,
                capsize=2,
                yerr=[
                    [max(y - b[0], 0) for _, y, b in bars],
                    [max(b[1] - y, 0) for _, y, b in bars],
                ],
            )


def _quartiles(t, i, combo) -> tuple[float, float] | None:
    """The interquartile range of one result, per call."""
    sp = t.spreads[i].get(combo)
    return None if sp is None or sp.q25 is None or sp.q75 is None else (sp.q25, sp.q75)


def decoders_plot(tables: dict, path: Path) -> bool:
    usable = _usable(tables)
    if not usable:
        return False
    formats = usable[0].levels("format")
    fig, axes = plt.subplots(
        len(usable), len(formats), figsize=(5.2 * len(formats), 3.4 * len(usable)), squeeze=False
    )
    for row, t in enumerate(usable):
        for col, fmt in enumerate(formats):
            ax = axes[row][col]
            decoders = [d for d in t.levels("decoder") if _has_data(t, decoder=d, format=fmt)]

            def micros(i, decoder, t=t, fmt=fmt):
                v = t.per_image(
                    i, t.combo(decoder=decoder, format=fmt, execution="sequential", cache="warm")
                )
                return None if v is None else v * 1e6

            def iqr(i, decoder, t=t, fmt=fmt):
                q = _quartiles(
                    t,
                    i,
                    t.combo(decoder=decoder, format=fmt, execution="sequential", cache="warm"),
                )
                images = t.loads[i].images
                return (
                    None if q is None or not images else (q[0] / images * 1e6, q[1] / images * 1e6)
                )

            _grouped_bars(ax, t, decoders, micros, iqr)
            ax.set_xticks(range(len(decoders)), decoders, fontsize=8)
            ax.set_ylabel("µs per image")
            ax.set_title(f"{t.bench.group}, {fmt} (sequential, warm)", fontsize=10)
            ax.grid(axis="y", alpha=0.3)
    _stack_legend(fig, usable[0])
    fig.suptitle(
        "Time per image per decoder across stacks"
        " (lower is better; error bars: interquartile range)"
    )
    _save(fig, path)
    return True


def _size_points(tables: dict, fmt: str, column: str) -> dict[str, list[tuple[float, float, int]]]:
    """decoder -> [(megapixels per image, MP/s, index of the size in SIZE_GROUPS)] over the sizes,
    in stack `column`: each size's first class that timed the decoder there."""
    points: dict[str, list[tuple[float, float, int]]] = {}
    for size, groups in enumerate(SIZE_GROUPS):
        seen = set()
        for group in groups:
            t = tables.get(group)
            if t is None or column not in [c.stack for c in t.columns]:
                continue
            i = [c.stack for c in t.columns].index(column)
            for decoder in t.levels("decoder"):
                fixed = {n: v for n, v in AT_A_GLANCE.items() if n in t.names}
                combo = t.combo(decoder=decoder, format=fmt, **fixed)
                rate = None if combo is None else t.megapixels_per_s(i, combo)
                if decoder in seen or rate is None:
                    continue
                seen.add(decoder)
                points.setdefault(decoder, []).append((t.loads[i].pixels / 1e6, rate, size))
    return points


def sizes_plot(tables: dict, path: Path) -> bool:
    """MP/s against megapixels per image, one line per decoder, JPEG and PNG, in the newest stack
    where a decoder was timed at a size beyond the two of the pooled grid (bench_formats'
    MediumCodecs or CameraCodecs): a line needs more than the grid's sizes to say anything."""

    def draws(stack: str) -> bool:  # a point beyond the pooled grid's two sizes
        return any(
            size >= 2
            for f in ("jpeg", "png")
            for points in _size_points(tables, f, stack).values()
            for _, _, size in points
        )

    stacks = [c.stack for t in tables.values() for c in t.columns]
    column = next((s for s in reversed(list(dict.fromkeys(stacks))) if draws(s)), None)
    if column is None:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), squeeze=False)
    for ax, fmt in zip(axes[0], ("jpeg", "png")):
        for k, (decoder, points) in enumerate(sorted(_size_points(tables, fmt, column).items())):
            points.sort()
            ax.plot(
                [p for p, _, _ in points],
                [r for _, r, _ in points],
                marker="o",
                color=f"C{k % 10}",
                linestyle="-" if k < 10 else "--",
                label=decoder,
            )
        ax.set_xscale("log")
        ax.set_xlabel("megapixels per image")
        ax.set_ylabel("MP/s (higher is better)")
        ax.set_title(f"{fmt}, stack {column} (sequential, warm, from a file)", fontsize=10)
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7, ncols=2)
    fig.suptitle("Decode rate against image size, per decoder")
    _save(fig, path)
    return True


def threads_plot(tables: dict, path: Path) -> bool:
    usable = _usable(tables)
    if not usable:
        return False
    decoders = usable[0].levels("decoder")
    fig, axes = plt.subplots(
        len(usable),
        len(decoders),
        figsize=(3.2 * len(decoders), 3.2 * len(usable)),
        squeeze=False,
        sharey=True,
    )
    styles = {"jpeg": "-", "png": "--"}
    for row, t in enumerate(usable):
        executions = [(e, *parse_execution(e)) for e in t.levels("execution")]
        top = max([w for _, _, w in executions] + [1])
        for col, decoder in enumerate(decoders):
            ax = axes[row][col]
            ax.plot([1, top], [1, top], ":", color="grey")
            for i, _column in enumerate(t.columns):
                color = f"C{i}"
                for fmt in t.levels("format"):
                    seq_combo = t.combo(
                        decoder=decoder, format=fmt, execution="sequential", cache="warm"
                    )
                    seq, seq_q = t.cells[i].get(seq_combo), _quartiles(t, i, seq_combo)
                    points = {"threads": [], "processes": []}
                    for name, kind, workers in executions:
                        combo = t.combo(decoder=decoder, format=fmt, execution=name, cache="warm")
                        v, q = t.cells[i].get(combo), _quartiles(t, i, combo)
                        if seq is not None and v:
                            # error bar: the speedup from the quartiles, slowest sequential over
                            # fastest pool and back
                            band = (
                                (seq_q[0] / q[1], seq_q[1] / q[0])
                                if seq_q and q and q[0] and q[1]
                                else None
                            )
                            points["threads" if kind == "sequential" else kind].append(
                                (workers, seq / v, band)
                            )
                    if points["threads"]:
                        xs, ys, _ = zip(*sorted(points["threads"], key=lambda p: p[0]))
                        ax.plot(
                            xs, ys, styles.get(fmt, "-."), marker="o", color=color, markersize=4
                        )
                    for workers, s, _ in points["processes"]:
                        ax.plot([workers], [s], "x", color=color, markersize=7)
                    bars = [(w, s, b) for w, s, b in points["threads"] + points["processes"] if b]
                    if bars:
                        ax.errorbar(
                            [w for w, _, _ in bars],
                            [s for _, s, _ in bars],
                            fmt="none",
                            ecolor=color,
                            elinewidth=0.8,
                            capsize=2,
                            yerr=[
                                [max(s - b[0], 0) for _, s, b in bars],
                                [max(b[1] - s, 0) for _, s, b in bars],
                            ],
                        )
            ax.set_title(f"{t.bench.group}: {decoder}", fontsize=9)
            ax.set_xticks(range(1, top + 1))
            ax.grid(alpha=0.3)
            if row == len(usable) - 1:
                ax.set_xlabel("workers")
            if col == 0:
                ax.set_ylabel("speedup over sequential")
    from matplotlib.lines import Line2D

    _stack_legend(
        fig,
        usable[0],
        [
            (Line2D([], [], color="k", ls="-"), "jpeg"),
            (Line2D([], [], color="k", ls="--"), "png"),
            (Line2D([], [], color="k", marker="x", ls=""), "processes"),
            (Line2D([], [], color="grey", ls=":"), "ideal"),
        ],
    )
    fig.suptitle(
        "Thread scaling, warm cache (lines: threads, solid jpeg / dashed png; x: processes;"
        " dotted: ideal; bars: from the samples' quartiles)"
    )
    _save(fig, path)
    return True


def cold_warm_plot(tables: dict, path: Path) -> bool:
    usable = _usable(tables)
    if not usable:
        return False
    panels = [
        [
            (d, f)
            for d in t.levels("decoder")
            for f in t.levels("format")
            if _has_data(t, decoder=d, format=f)
        ]
        for t in usable
    ]
    fig, axes = plt.subplots(1, len(usable), figsize=(6.5 * len(usable), 4.2), squeeze=False)
    for k, (t, labels) in enumerate(zip(usable, panels)):
        ax = axes[0][k]

        def ratio(i, label, t=t):
            warm, cold = (
                t.cells[i].get(
                    t.combo(decoder=label[0], format=label[1], execution="sequential", cache=c)
                )
                for c in ("warm", "cold")
            )
            return cold / warm if warm and cold is not None else None

        def band(i, label, t=t):
            """From the fastest quarter of cold over the slowest of warm,
            to the other way round."""
            warm, cold = (
                _quartiles(
                    t,
                    i,
                    t.combo(decoder=label[0], format=label[1], execution="sequential", cache=c),
                )
                for c in ("warm", "cold")
            )
            return (
                None
                if warm is None or cold is None or not warm[0]
                else (cold[0] / warm[1], cold[1] / warm[0])
            )

        _grouped_bars(ax, t, labels, ratio, band)
        ax.axhline(1, color="grey", lw=0.8)
        # slanted: names as long as "imagecodecs" would run into each other side by side
        ax.set_xticks(
            range(len(labels)),
            [f"{d} {f}" for d, f in labels],
            fontsize=8,
            rotation=30,
            ha="right",
        )
        ax.set_ylabel("cold / warm time")
        ax.set_title(f"{t.bench.group} (sequential)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    _stack_legend(fig, usable[0])
    fig.suptitle(
        "What a cold page cache costs: cold time / warm time (bars: from the quartiles of both)"
    )
    _save(fig, path)
    return True


PLOTS = {
    "time per image per decoder": ("decoders", decoders_plot),
    "thread scaling": ("threads", threads_plot),
    "cold vs warm": ("cold-warm", cold_warm_plot),
    "decode rate against image size": ("sizes", sizes_plot),
}


def write_all(machine, tables: dict, out_dir: Path) -> dict[str, str]:
    """title -> file name (relative to out_dir) of each plot that had data to draw."""
    made = {}
    for title, (stem, draw) in PLOTS.items():
        name = f"{machine.name}-{stem}.png"
        if draw(tables, out_dir / name):
            made[title] = name
    return made
