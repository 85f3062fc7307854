"""`python -m imgload results merge DIR...`: other machines' asv results and build records,
brought into this repository's .asv/ so that `make publish report` shows every machine,
without anyone copying folders by hand (README: More than one machine).

DIR is another machine's `.asv` folder, or a copy of it (results/, and envinfo/ if it has
one), or that folder's results/ alone, whose envinfo/ is then looked for beside it, as the
report looks for it. Anything else is refused. What goes where:

    DIR results/<machine>/*.json    .asv/results/<machine>/   (its runs and machine.json)
    DIR results/benchmarks.json     .asv/results/benchmarks.json, only if we have none
    DIR envinfo/*.json              .asv/envinfo/<machine>/   (DIR's own host's records)
    DIR envinfo/<other>/*.json      .asv/envinfo/<other>/     (merged into DIR before)

The rules, each for a reason:
- Everything is read and checked before anything is written, and the bytes checked are the
  bytes written: a file that is not JSON, a results file without asv's keys or not named as
  asv names it, a machine folder without machine.json, is one error naming it, and .asv/ is
  left as it was. Each file is then written beside its target and renamed onto it
  (files.replacing), so a merge that is interrupted leaves whole files and runs again.
- A file we have byte for byte is skipped (so a second merge changes nothing); one we lack is
  copied; a result or record that differs stays ours and is named, unless --force.
- machine.json that differs stays ours: it is asv's description of the machine, and results
  are read under ours whatever the file says.
- benchmarks.json that differs stays ours: `asv run` rewrites it from the benchmark code it
  ran, and asv publish and the report show a result only for a benchmark it lists at the
  result's version, so ours, this checkout's, is the one that describes what we publish. A
  machine that ran another commit of the suite has results that go unshown; the line says how
  many benchmarks that concerns.
- This host's machine names (asv's default, the host name, which `make bench` uses, and every
  machine asv here was set up as in ~/.asv-machine.json) are refused unless DIR's files under
  them are the ones we have: another host's timings under our name would mix two machines in
  one column, and its records in envinfo/<our name>/ would hide our own from the report. Our
  own records are the ones in envinfo/ itself, so that is what theirs are compared with.
- DIR's flat envinfo/ holds its host's records: they belong to the one machine of DIR's
  results without an envinfo/<machine>/ folder there (those were merged into DIR). If that is
  not exactly one machine, --machine NAME says which.
- Every other machine merged gets a folder .asv/envinfo/<machine>/, even an empty one: without
  it the report (results.build_record) would take this host's records for that machine's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from asv import results as asv_results
from asv.benchmarks import Benchmarks
from asv.machine import Machine, MachineCollection

from . import files
from .envcheck import record_name
from .errors import UserError

EXPECTED = "another machine's .asv folder (results/, envinfo/) or its results/ folder"
RESULTS_KEYS = ("version", "commit_hash", "env_name", "params", "results")

# what a file is, and so where it goes and whether --force may replace ours
RESULT, RECORD, MACHINE, BENCHMARKS = "result", "record", "machine.json", "benchmarks.json"
# what became of it
NEW, IDENTICAL, KEPT, OVERWRITTEN = "new", "identical", "kept", "overwritten"


class MergeError(UserError):
    """A one-line reason nothing was merged: the file or folder at fault, and what was expected."""


@dataclass(frozen=True)
class Copy:
    """One file of a DIR, read and checked; `data` is what will be written."""

    source: Path
    data: bytes
    kind: str
    machine: str | None  # whose it is; None for benchmarks.json


@dataclass(frozen=True)
class Step:
    copy: Copy
    target: Path
    outcome: str


# ---------------------------------------------------------------- reading a DIR


def read(folder: Path, machine: str | None = None) -> list[Copy]:
    """Every file DIR brings, checked; `machine` names the owner of its flat envinfo/ records."""
    results_dir, envinfo_dir = layout(folder)
    machines = _machine_dirs(results_dir)
    copies = [c for info in machines.values() for c in _machine_files(info)]
    bench = results_dir / "benchmarks.json"
    if bench.is_file():
        _, data = _checked_benchmarks(bench)
        copies.append(Copy(bench, data, BENCHMARKS, None))
    return copies + _records(envinfo_dir, results_dir, sorted(machines), machine)


def layout(folder: Path) -> tuple[Path, Path]:
    """(results folder, envinfo folder) of DIR: results/ and envinfo/ in an .asv folder, or
    DIR itself and the envinfo/ beside it for a results folder."""
    if not folder.is_dir():
        raise MergeError(f"{folder}: no such folder; expected {EXPECTED}")
    if (folder / "results").is_dir():
        return folder / "results", folder / "envinfo"
    if (folder / "benchmarks.json").is_file() or any(
        (d / "machine.json").is_file() for d in _subdirs(folder)
    ):
        # the parent of `.` or `..` is not the folder above them
        above = (
            Path(os.path.abspath(folder)).parent if folder.name in ("", "..") else folder.parent
        )
        return folder, above / "envinfo"
    hint = f" (a checkout? pass {folder / '.asv'})" if (folder / ".asv").is_dir() else ""
    raise MergeError(f"{folder}: not asv results; expected {EXPECTED}{hint}")


def _subdirs(folder: Path) -> list[Path]:
    """The folders in `folder`, hidden ones left out (a scratch being written is not one)."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _json_files(folder: Path) -> list[Path]:
    """The .json files in `folder`, hidden ones left out, as asv itself reads only those."""
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix == ".json" and not p.name.startswith(".")
    )


def _load(path: Path) -> tuple[object, bytes]:
    """A JSON file's value and its bytes, or an error naming it."""
    try:
        data = path.read_bytes()
        return json.loads(data), data
    except (OSError, ValueError) as e:  # ValueError: JSONDecodeError, UnicodeDecodeError
        raise MergeError(f"{path}: not readable JSON ({str(e).splitlines()[0]})") from None


def _machine_dirs(results_dir: Path) -> dict[str, Copy]:
    """machine name -> its machine.json; a folder of .json files without one is refused, since
    asv itself would skip it and what machine it is cannot be known."""
    found = {}
    for folder in _subdirs(results_dir):
        if (folder / "machine.json").is_file():
            info = _machine_info(folder / "machine.json")
            found[info.machine] = info
        elif _json_files(folder):
            raise MergeError(
                f"{folder}: results without a machine.json; not an asv machine folder"
            )
    if not found:
        raise MergeError(f"{results_dir}: no <machine>/machine.json in it; expected {EXPECTED}")
    return found


def _machine_info(path: Path) -> Copy:
    """A machine.json, which must name its folder: asv writes a machine's results to
    results/<machine>/, and they are merged to the same place."""
    info, data = _load(path)
    name = info.get("machine") if isinstance(info, dict) else None
    if not isinstance(name, str) or info.get("version") != Machine.api_version:
        raise MergeError(
            f"{path}: not an asv machine.json (a 'machine' name, version {Machine.api_version})"
        )
    if name != path.parent.name:
        raise MergeError(f"{path}: describes machine {name!r}, but is in {path.parent.name}/")
    return Copy(path, data, MACHINE, name)


def _machine_files(info: Copy) -> list[Copy]:
    """machine.json first, then the machine's results files, each checked."""
    folder = info.source.parent
    return [info] + [
        Copy(p, _checked_result(p, info.machine), RESULT, info.machine)
        for p in _json_files(folder)
        if p.name != "machine.json"
    ]


def _checked_result(path: Path, machine: str) -> bytes:
    """A results file's bytes, if it is one asv wrote for `machine`: asv's keys, its format
    version, and the name asv gives it (commit and environment), so a renamed or hand-moved
    copy is not merged as a run of its own."""
    run, data = _load(path)
    missing = [k for k in RESULTS_KEYS if not isinstance(run, dict) or k not in run]
    if missing:
        raise MergeError(f"{path}: not an asv results file (no {', '.join(missing)})")
    if run["version"] != asv_results.Results.api_version:
        raise MergeError(
            f"{path}: asv results format version {run['version']!r}, expected"
            f" {asv_results.Results.api_version}"
        )
    if not isinstance(run["commit_hash"], str) or not isinstance(run["env_name"], str):
        raise MergeError(f"{path}: not an asv results file (commit_hash, env_name not strings)")
    named = Path(asv_results.get_filename(machine, run["commit_hash"], run["env_name"])).name
    if path.name != named:
        raise MergeError(f"{path}: asv names these results {named}")
    ran_on = run["params"].get("machine") if isinstance(run["params"], dict) else None
    if ran_on not in (None, machine):
        raise MergeError(f"{path}: results of machine {ran_on!r} in the folder of {machine!r}")
    return data


def _checked_benchmarks(path: Path) -> tuple[dict, bytes]:
    bench, data = _load(path)
    if not isinstance(bench, dict) or bench.get("version") != Benchmarks.api_version:
        raise MergeError(
            f"{path}: not an asv benchmarks.json (format version {Benchmarks.api_version})"
        )
    return bench, data


def _records(
    envinfo_dir: Path, results_dir: Path, machines: list[str], chosen: str | None
) -> list[Copy]:
    """DIR's build records: the flat ones are its host's (_owner), each envinfo/<other>/ holds
    the records of machine <other>."""
    if not envinfo_dir.is_dir():
        return []
    flat = [_record(p) for p in _json_files(envinfo_dir)]
    nested = [
        replace(_record(p), machine=d.name) for d in _subdirs(envinfo_dir) for p in _json_files(d)
    ]
    if flat:
        owner = _owner(envinfo_dir, results_dir, machines, chosen)
        flat = [replace(c, machine=owner) for c in flat]
    return flat + nested


def _record(path: Path) -> Copy:
    """A build record as envcheck writes it: an object naming its env_name, in the file named
    after it (envcheck.record_name, asv's rule for long names)."""
    rec, data = _load(path)
    env = rec.get("env_name") if isinstance(rec, dict) else None
    if not isinstance(env, str):
        raise MergeError(f"{path}: not a build record (no env_name)")
    if path.name != f"{record_name(env)}.json":
        raise MergeError(f"{path}: the build record of its env_name is {record_name(env)}.json")
    return Copy(path, data, RECORD, None)


def _owner(envinfo_dir: Path, results_dir: Path, machines: list[str], chosen: str | None) -> str:
    """The machine whose records DIR's flat envinfo/ holds: `chosen`, else the one machine
    of DIR without an envinfo/<machine>/ of its own there (the others were merged in)."""
    if chosen is not None:
        if chosen not in machines:
            raise MergeError(
                f"--machine {chosen}: {results_dir} has no results of it ({', '.join(machines)})"
            )
        return chosen
    own = [m for m in machines if not (envinfo_dir / m).is_dir()]
    if len(own) == 1:
        return own[0]
    raise MergeError(
        f"{envinfo_dir}: whose build records these are cannot be told from"
        f" {', '.join(own or machines)}; name the machine that wrote them: --machine NAME"
    )


# ---------------------------------------------------------------- deciding, then writing


def host_machines() -> set[str]:
    """The names this host's results go under: asv's default (the host name, which `make
    machine` and `make bench` use) and every machine asv here was set up as
    (~/.asv-machine.json, written by `asv machine --machine NAME`)."""
    names = {Machine.get_unique_machine_name()}
    try:
        known = json.loads(Path(MachineCollection.get_machine_file_path()).read_bytes())
    except (OSError, ValueError):
        return names  # none set up: asv uses the host name
    if isinstance(known, dict):
        names |= {k for k, v in known.items() if isinstance(v, dict)}
    return names


def target(into: Path, copy: Copy, host: set[str]) -> Path:
    """Where `copy` goes in the .asv folder `into`; this host's records live in envinfo/."""
    if copy.kind == BENCHMARKS:
        return into / "results" / "benchmarks.json"
    if copy.kind == RECORD:
        folder = into / "envinfo"
        return (folder if copy.machine in host else folder / copy.machine) / copy.source.name
    return into / "results" / copy.machine / copy.source.name


def _ours(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise MergeError(f"{path}: cannot be read ({e.strerror})") from None


def _outcome(copy: Copy, ours: bytes | None, force: bool) -> str:
    if ours is None:
        return NEW
    if ours == copy.data:
        return IDENTICAL
    return OVERWRITTEN if force and copy.kind in (RESULT, RECORD) else KEPT


def plan(copies: Iterable[Copy], into: Path, host: set[str], force: bool) -> list[Step]:
    """What becomes of each file, decided before anything is written. A file an earlier DIR
    brings counts as ours for a later one, so two DIRs never overwrite each other silently."""
    pending: dict[Path, bytes] = {}
    steps = []
    for copy in copies:
        to = target(into, copy, host)
        outcome = _outcome(copy, pending[to] if to in pending else _ours(to), force)
        if copy.machine in host and outcome != IDENTICAL:
            raise MergeError(
                f"{copy.source}: {copy.machine} is this host's machine name (the host name, or"
                f" in ~/.asv-machine.json), and {_shown(to)} "
                + ("is missing" if outcome == NEW else "differs")
                + "; another host's results under it would mix two machines: give that machine"
                " a name of its own there (asv machine --machine NAME) and run it again"
            )
        if outcome in (NEW, OVERWRITTEN):
            pending[to] = copy.data
        steps.append(Step(copy, to, outcome))
    return steps


def _write(path: Path, data: bytes) -> None:
    """The bytes checked, byte for byte, appearing whole or not at all."""
    with files.replacing(path) as scratch:
        scratch.write_bytes(data)


def merge(
    dirs: Iterable[str | os.PathLike],
    into: str | os.PathLike,
    *,
    force: bool = False,
    machine: str | None = None,
) -> list[str]:
    """Merge every DIR into the .asv folder `into`; returns the lines to show (without the
    `imgload: ` prefix): one per file kept, then one per machine."""
    into = Path(into)
    copies = [c for d in dirs for c in read(Path(d), machine)]
    host = host_machines()
    steps = plan(copies, into, host, force)
    for step in steps:
        if step.outcome in (NEW, OVERWRITTEN):
            _write(step.target, step.copy.data)
    for name in _machines(steps):
        if name not in host and any(s.copy.kind == RESULT for s in _of(steps, name)):
            (into / "envinfo" / name).mkdir(parents=True, exist_ok=True)
    copied = [f"copied {s.copy.source} (there was none)" for s in steps if _new_benchmarks(s)]
    return _kept_lines(steps) + copied + [_summary(name, steps) for name in _machines(steps)]


# ---------------------------------------------------------------- what is shown


def _shown(path: Path) -> str:
    """`path` relative to the current folder when it is under it (.asv/results/...)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _machines(steps: list[Step]) -> list[str]:
    return list(dict.fromkeys(s.copy.machine for s in steps if s.copy.machine is not None))


def _of(steps: list[Step], machine: str, kind: str | None = None) -> list[Step]:
    return [s for s in steps if s.copy.machine == machine and kind in (None, s.copy.kind)]


def _new_benchmarks(step: Step) -> bool:
    return step.copy.kind == BENCHMARKS and step.outcome == NEW


def _kept_lines(steps: list[Step]) -> list[str]:
    lines = []
    for s in steps:
        if s.outcome != KEPT:
            continue
        if s.copy.kind == BENCHMARKS:
            lines.append(_benchmarks_kept(s))
        elif s.copy.kind == MACHINE:
            lines.append(
                f"kept {_shown(s.target)}: {s.copy.source} differs (ours stays: asv's record"
                " of the machine)"
            )
        else:
            lines.append(f"kept {_shown(s.target)}: {s.copy.source} differs (--force overwrites)")
    return lines


def _benchmarks_kept(step: Step) -> str:
    """Ours stays (see the module's docstring); how many of theirs it does not describe."""
    try:
        ours = json.loads(step.target.read_bytes())
    except (OSError, ValueError):
        ours = None
    if not isinstance(ours, dict):  # ours is broken, which is for asv to rewrite, not a merge
        return (
            f"kept {_shown(step.target)}: it is not readable JSON; asv run --bench just-discover"
            " writes it again"
        )
    theirs = json.loads(step.copy.data)
    unshown = [
        k
        for k, v in theirs.items()
        if isinstance(v, dict)
        and (not isinstance(ours.get(k), dict) or ours[k].get("version") != v.get("version"))
    ]
    why = (
        f"ours lacks {len(unshown)} of its benchmarks at their version, so asv publish and the"
        " report leave out their results from there (run every machine at one commit)"
        if unshown
        else "asv publish and the report read ours, which lists every benchmark of it"
    )
    return f"kept {_shown(step.target)}: {step.copy.source} differs; {why}"


def _counts(steps: list[Step], new: str) -> str:
    """`new` with the count of new files filled in, then the other outcomes that occurred."""
    n = {o: sum(s.outcome == o for s in steps) for o in (NEW, IDENTICAL, KEPT, OVERWRITTEN)}
    text = f"{new.format(n[NEW])}, {n[IDENTICAL]} identical"
    if n[KEPT]:
        text += f", {n[KEPT]} kept (differs; --force overwrites)"
    if n[OVERWRITTEN]:
        text += f", {n[OVERWRITTEN]} overwritten"
    return text


def _summary(machine: str, steps: list[Step]) -> str:
    results, records = _of(steps, machine, RESULT), _of(steps, machine, RECORD)
    parts = [_counts(results, "{} results new") if results else "no results"]
    parts.append(_counts(records, "build records {} new") if records else "no build records")
    return f"merged {machine}: {'; '.join(parts)}"
