"""python -m imgload ...: prepare and inspect datasets; report on asv results; run the memo again.

The one place a user error is printed: a UserError from any command becomes the line
`imgload: error: <message>` on stderr and exit status 2, with no traceback."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import (
    datasets,
    execution,
    files,
    ladder,
    ladder_find,
    ladder_refresh,
    memo,
    merge,
    report,
    site,
    verdict,
)
from .errors import EXIT_STATUS, UserError

# Every command's parser and handler is here, and only here, as asv keeps its commands apart
# from what they run: the modules behind them (datasets, ladder, ladder_find, ladder_refresh,
# merge, report, site) take plain arguments, so tests and other modules call them without
# argparse, and ladder, which ladder_find and ladder_refresh import, imports neither of them.


# -- options several commands share, each defined once (asv's common_args) ----------------------


def _dataset_args(p: argparse.ArgumentParser) -> None:
    """The set a data command works on: its name (the small default) and the data dir it is in."""
    p.add_argument(
        "name", nargs="?", default=datasets.SMALL_DEFAULT, help="dataset name or manifest path"
    )
    p.add_argument("--data-dir", help="default: $IMGLOAD_DATA_DIR, else .data/ in the repository")


def _ladder_name(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="a ladder in ladders/ or a path to a ladder .toml")


def _ladder_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ladder-dir", help="default: $IMGLOAD_LADDER_DIR, else .asv/ladders in the repository"
    )


# -- python -m imgload data ... -----------------------------------------------------------------


def _prepare(args) -> int:
    # a wrong IMGLOAD_PROFILE or IMGLOAD_GRID stops `make data` / `make bench` here, not in
    # every benchmark
    datasets.profile()
    execution.grid()
    log = (lambda msg: print(f"imgload: {msg}", file=sys.stderr)) if not args.quiet else None
    path = datasets.prepare(args.name, args.data_dir, log=log, url=args.url)
    _check_evictable(path)
    print(path)
    return 0


def _check_evictable(root) -> None:
    """Cold-cache benchmarks evict the set's files before every sample: try it on one file now,
    so that a data dir on tmpfs (which cannot be evicted) is refused before asv starts."""
    from . import pagecache

    index = datasets.load_index(root)
    probe = datasets.priming_file(root, next(iter(index["formats"])))
    try:
        pagecache.make_cold([probe])
    except pagecache.PageCacheError:
        raise datasets.DatasetError(
            f"{root}: its files cannot be evicted from the page cache (tmpfs, or a filesystem that"
            " ignores posix_fadvise), so every cold-cache benchmark would fail; set"
            " IMGLOAD_DATA_DIR to a folder on a disk"
        ) from None


def _list(args) -> int:
    for name in files.known(datasets.MANIFESTS):
        m = datasets.manifest(name)
        print(f"{m.name:24} {m.description}")
    return 0


def _info(args) -> int:
    m = datasets.manifest(args.name)
    target = datasets.data_root(args.data_dir) / m.name
    if not datasets.is_complete(target, m):
        raise datasets.DatasetError(
            f"{m.name} is not prepared in {target.parent}; run: python -m imgload data prepare"
            f" {m.name}"
        )
    index = datasets.load_index(target)
    if index["shape"]:
        shape = "x".join(map(str, index["shape"]))
    else:  # sizes vary: the range of heights and widths
        hs, ws = zip(*((h, w) for h, w, _ in index["shapes"]))
        shape = f"{min(hs)}-{max(hs)} x {min(ws)}-{max(ws)} x 3"
    print(
        f"{m.name}: {index['count']} images ({index['train']} train, {index['test']} test),"
        f" {shape}, at {target}"
    )
    print(f"prepared in {index.get('prepare_seconds', '?')} s")
    print(f"{'format':10} {'files':>7} {'mean bytes':>11} {'total MB':>9}")
    for fmt, s in index["formats"].items():
        print(f"{fmt:10} {s['count']:7d} {s['mean_bytes']:11.1f} {s['total_bytes'] / 1e6:9.1f}")
    packed = index.get("containers")
    if packed:  # per image: the container's bytes over the images it holds (the default sample)
        n = len(packed["indices"])
        print(f"{'container':12} {'bytes/image':>16} {'total MB':>9}   (the {n} sampled images)")
        for name, c in packed["packed"].items():
            print(f"{name:12} {c['total_bytes'] / n:16.1f} {c['total_bytes'] / 1e6:9.1f}")
    return 0


def _verify(args) -> int:
    m = datasets.manifest(args.name)
    target = datasets.data_root(args.data_dir) / m.name
    if not (target / datasets.MARKER).is_file():
        raise datasets.DatasetError(
            f"{target} is not a prepared set; run: python -m imgload data prepare {args.name}"
        )
    problem = datasets.first_problem(target, full=True)
    if problem:  # a finding, not a refusal: exit 1, as a failed check does
        print(f"imgload: error: {problem}", file=sys.stderr)
        return 1
    index = datasets.load_index(target)
    packed = index.get("containers", {}).get("packed", {})
    print(
        f"{m.name}: ok, {sum(s['count'] for s in index['formats'].values())}"
        " files match SHA256SUMS"
        + (f", {len(packed)} containers match index.json" if packed else "")
    )
    return 0


# -- python -m imgload ladder ... ---------------------------------------------------------------


def _ladder_build(args) -> int:
    conf = ladder.build(args.name, args.ladder_dir)
    built = ladder.load(args.name)
    print(
        f"imgload: {built.library} ladder: {len(built.rungs)} releases ({built.rungs[0].version} "
        f".. {built.rungs[-1].version}) in {conf.parent / 'repo'}",
        file=sys.stderr,
    )
    print(conf)
    return 0


def _ladder_find(args) -> int:
    return ladder_find.find(
        args.name,
        args.bench,
        invert=args.invert,
        machine=args.machine,
        factor=args.factor,
        show_stderr=args.show_stderr,
        root=args.ladder_dir,
        samples=ladder_find.parse_samples(args.repeat),
        max_samples=args.max_samples,
    )


def _ladder_refresh(args) -> int:
    print(ladder_refresh.refresh(args.name, index_url=args.index_url, since=args.since))
    return 0


# -- python -m imgload report / site ------------------------------------------------------------


def _report(args) -> int:
    path = report.render(
        Path(args.results),
        Path(args.out),
        Path(args.envinfo) if args.envinfo else None,
        args.commit,
        args.partial,
    )
    print(path)
    return 0


def _site(args) -> int:
    for line in site.vendor(args.html, args.node_modules):
        print(f"imgload: vendored {line}")
    if args.results:
        print(f"imgload: stacks compared in {site.compare(args.html, args.results, args.envinfo)}")
    return 0


def _merge(args) -> int:
    into = Path(args.into) if args.into else files.REPO / ".asv"
    for line in merge.merge(args.dirs, into, force=args.force, machine=args.machine):
        print(f"imgload: {line}")
    print("imgload: next: make publish report")
    return 0


# -- python -m imgload memo ---------------------------------------------------------------------


def _memo(args) -> int:
    path, lines = memo.memo(
        args.name,
        args.data_dir,
        args.out,
        args.repeats,
        log=lambda msg: print(f"imgload: {msg}", file=sys.stderr, flush=True),
    )
    for line in lines:
        print(f"imgload: {line}", file=sys.stderr)
    print(path)
    return 0


# -- the parser ---------------------------------------------------------------------------------


def _data_commands(sub) -> None:
    data = sub.add_parser("data", help="prepare and inspect datasets").add_subparsers(
        dest="action", required=True
    )

    prep = data.add_parser(
        "prepare", help="fetch or generate, then materialize; prints the prepared path"
    )
    _dataset_args(prep)
    prep.add_argument(
        "--url",
        help="download from here instead of the manifest's URL (its hash must still match)",
    )
    prep.add_argument("-q", "--quiet", action="store_true")
    prep.set_defaults(func=_prepare)

    data.add_parser("list", help="datasets with a manifest in datasets/").set_defaults(func=_list)

    verify = data.add_parser(
        "verify", help="re-check a prepared set file by file; names the first bad file"
    )
    _dataset_args(verify)
    verify.set_defaults(func=_verify)

    info = data.add_parser("info", help="counts and mean file size per format of a prepared set")
    _dataset_args(info)
    info.set_defaults(func=_info)


def _ladder_commands(sub) -> None:
    cmds = sub.add_parser(
        "ladder", help="release ladders: one git commit per library release, for asv"
    ).add_subparsers(dest="action", required=True)
    b = cmds.add_parser(
        "build", help="write the ladder's git repo and asv config; prints the config path"
    )
    _ladder_name(b)
    _ladder_dir(b)
    b.set_defaults(func=_ladder_build)

    f = cmds.add_parser(
        "find",
        help="asv find over a built ladder, then a verdict: every step confirmed by interleaved"
        " re-measurement",
    )
    _ladder_name(f)
    f.add_argument(
        "bench", help="regex selecting one benchmark (and optionally parameters), as for asv find"
    )
    f.add_argument(
        "--invert", action="store_true", help="look for a speedup instead of a slowdown"
    )
    f.add_argument("--machine", help="asv machine name (default: this host's)")
    f.add_argument(
        "--factor",
        type=float,
        default=verdict.FACTOR,
        help=f"smallest ratio called a step (default {verdict.FACTOR:g})",
    )
    f.add_argument(
        "--repeat",
        default=None,
        metavar="N",
        help="samples per release in each interleaved batch of the verdict (default 12, at least"
        " 7: fewer can never reach the rank test's p < 0.002)",
    )
    f.add_argument(
        "--max-samples",
        type=int,
        default=None,
        metavar="N",
        help="stop adding batches at N samples per release (default: 4 batches)",
    )
    _ladder_dir(f)
    f.add_argument(
        "--show-stderr",
        action="store_true",
        help="show the benchmarks' stderr (asv find --show-stderr)",
    )
    f.set_defaults(func=_ladder_find)

    r = cmds.add_parser(
        "refresh", help="rewrite a ladder's versions and release dates from the package index"
    )
    _ladder_name(r)
    r.add_argument(
        "--index-url",
        help="default: the index pip installs from ($PIP_INDEX_URL, pip's index-url, else pip's"
        " default)",
    )
    r.add_argument("--since", help="oldest version to keep (default: the ladder's current oldest)")
    r.set_defaults(func=_ladder_refresh)


def _report_command(sub) -> None:
    p = sub.add_parser(
        "report", help="asv results -> Markdown tables and PNG plots across library stacks"
    )
    p.add_argument(
        "--results", default=".asv/results", help="asv results folder (default: .asv/results)"
    )
    p.add_argument(
        "--out",
        default=".asv/report",
        help="where report.md and the PNGs go (default: .asv/report)",
    )
    p.add_argument(
        "--envinfo", help="environment build records (default: envinfo/ beside the results folder)"
    )
    p.add_argument(
        "--commit",
        help="report this commit (hash prefix) instead of the one covering the most environments",
    )
    p.add_argument(
        "--partial",
        action="store_true",
        help="leave out results files that cannot be read (named in a banner) instead of stopping",
    )
    p.set_defaults(func=_report)


def _site_command(sub) -> None:
    p = sub.add_parser(
        "site",
        help="make the published asv site self-contained (no CDN requests); with --results, add"
        " the library stacks compared (compare/index.html) to it",
    )
    p.add_argument("--html", default=".asv/html", help="the published site (default: .asv/html)")
    p.add_argument(
        "--node-modules",
        default=str(site.NODE_MODULES),
        help="where npm ci installed site/package.json",
    )
    p.add_argument(
        "--results",
        help="asv results folder: write the report's tables and plots as <html>/compare/index.html"
        " and link it from asv's navbar and front page (default: no such page)",
    )
    p.add_argument(
        "--envinfo", help="environment build records (default: envinfo/ beside the results folder)"
    )
    p.set_defaults(func=_site)


def _results_commands(sub) -> None:
    cmds = sub.add_parser("results", help="asv results folders").add_subparsers(
        dest="action", required=True
    )
    m = cmds.add_parser(
        "merge",
        help="bring other machines' results and build records into .asv/ (README: More than one"
        " machine); a result that differs is kept and named",
    )
    m.add_argument(
        "dirs",
        nargs="+",
        metavar="DIR",
        help="another machine's .asv folder (results/, envinfo/), or its results/ folder",
    )
    m.add_argument(
        "--force", action="store_true", help="overwrite our results and build records that differ"
    )
    m.add_argument(
        "--machine",
        metavar="NAME",
        help="the machine whose build records DIR's envinfo/ holds, when DIR has results of"
        " several",
    )
    m.add_argument(
        "--into",
        metavar="ASV_DIR",
        help="the .asv folder merged into (default: .asv in the repository)",
    )
    m.set_defaults(func=_merge)


def _memo_command(sub) -> None:
    p = sub.add_parser(
        "memo",
        help="the memo behind this suite again, on the whole training set: OpenCV, Pillow and"
        " imageio from a cold cache; OpenCV's JPEGs and ndarray.dump pickles with 3 threads, cold"
        " and warm; writes memo.md, its figures beside today's",
    )
    p.add_argument(
        "name",
        nargs="?",
        default=None,
        help="dataset name or manifest path (default: $IMGLOAD_DATASET, else"
        f" {datasets.SMALL_DEFAULT}); IMGLOAD_PROFILE=smoke or default loads its sample instead"
        " of every training image",
    )
    p.add_argument("--data-dir", help="default: $IMGLOAD_DATA_DIR, else .data/ in the repository")
    p.add_argument(
        "--out",
        default=".asv/memo",
        help="where memo.md and memo.json go (default: .asv/memo)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        metavar="N",
        help=f"timed passes per figure (default: up to {memo.ROUNDS}, as many as fit in"
        f" {memo.BUDGET:.0f} s)",
    )
    p.set_defaults(func=_memo)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m imgload", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    _data_commands(sub)
    _ladder_commands(sub)
    _report_command(sub)
    _site_command(sub)
    _results_commands(sub)
    _memo_command(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        print(f"imgload: error: {e}", file=sys.stderr)
        return EXIT_STATUS
    except KeyboardInterrupt:
        print("imgload: interrupted; the next prepare starts over cleanly", file=sys.stderr)
        return 130
