"""python -m imgload ...: prepare and inspect datasets; report on asv results.

The one place a user error is printed: a UserError from any command becomes the line
`imgload: error: <message>` on stderr and exit status 2, with no traceback."""

from __future__ import annotations

import argparse
import sys

from . import datasets, files, ladder, report, site
from .errors import EXIT_STATUS, UserError


def _prepare(args) -> int:
    datasets.profile()  # a wrong IMGLOAD_PROFILE stops `make data` / `make bench` here, not in every benchmark
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
            f"{root}: its files cannot be evicted from the page cache (tmpfs, or a filesystem that ignores"
            f" posix_fadvise), so every cold-cache benchmark would fail; set IMGLOAD_DATA_DIR to a folder on a disk") from None


def _list(args) -> int:
    for name in files.known(datasets.MANIFESTS):
        m = datasets.manifest(name)
        print(f"{m.name:24} {m.description}")
    return 0


def _info(args) -> int:
    m = datasets.manifest(args.name)
    target = datasets.data_root(args.data_dir) / m.name
    if not datasets.is_complete(target, m):
        raise datasets.DatasetError(f"{m.name} is not prepared in {target.parent}; run: python -m imgload data prepare {m.name}")
    index = datasets.load_index(target)
    if index["shape"]:
        shape = "x".join(map(str, index["shape"]))
    else:  # sizes vary: the range of heights and widths
        hs, ws = zip(*((h, w) for h, w, _ in index["shapes"]))
        shape = f"{min(hs)}-{max(hs)} x {min(ws)}-{max(ws)} x 3"
    print(f"{m.name}: {index['count']} images ({index['train']} train, {index['test']} test), {shape}, at {target}")
    print(f"prepared in {index.get('prepare_seconds', '?')} s")
    print(f"{'format':10} {'files':>7} {'mean bytes':>11} {'total MB':>9}")
    for fmt, s in index["formats"].items():
        print(f"{fmt:10} {s['count']:7d} {s['mean_bytes']:11.1f} {s['total_bytes'] / 1e6:9.1f}")
    return 0


def _verify(args) -> int:
    m = datasets.manifest(args.name)
    target = datasets.data_root(args.data_dir) / m.name
    if not (target / datasets.MARKER).is_file():
        raise datasets.DatasetError(f"{target} is not a prepared set; run: python -m imgload data prepare {args.name}")
    problem = datasets.first_problem(target, full=True)
    if problem:  # a finding, not a refusal: exit 1, as a failed check does
        print(f"imgload: error: {problem}", file=sys.stderr)
        return 1
    index = datasets.load_index(target)
    print(f"{m.name}: ok, {sum(s['count'] for s in index['formats'].values())} files match SHA256SUMS")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m imgload", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    data = sub.add_parser("data", help="prepare and inspect datasets").add_subparsers(dest="action", required=True)

    prep = data.add_parser("prepare", help="fetch or generate, then materialize; prints the prepared path")
    prep.add_argument("name", nargs="?", default=datasets.SMALL_DEFAULT, help="dataset name or manifest path")
    prep.add_argument("--data-dir", help="default: $IMGLOAD_DATA_DIR, else .data/ in the repository")
    prep.add_argument("--url", help="download from here instead of the manifest's URL (its hash must still match)")
    prep.add_argument("-q", "--quiet", action="store_true")
    prep.set_defaults(func=_prepare)

    data.add_parser("list", help="datasets with a manifest in datasets/").set_defaults(func=_list)

    verify = data.add_parser("verify", help="re-check a prepared set file by file; names the first bad file")
    verify.add_argument("name", nargs="?", default=datasets.SMALL_DEFAULT)
    verify.add_argument("--data-dir")
    verify.set_defaults(func=_verify)

    info = data.add_parser("info", help="counts and mean file size per format of a prepared set")
    info.add_argument("name", nargs="?", default=datasets.SMALL_DEFAULT)
    info.add_argument("--data-dir")
    info.set_defaults(func=_info)

    ladder.add_commands(sub)
    report.add_parser(sub)
    site.add_parser(sub)
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
