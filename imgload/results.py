"""asv results folders -> per machine, one column of results per environment (library stack).

asv compares commits; this compares environments at one commit. For each machine the
report commit is the one whose results cover the most environments, then the most
benchmarks (newest on a tie). A benchmark an environment has no result for at that commit
(say, one run separately with `-b`) is taken from that environment's newest result that
has it, and the table says so.
Loading goes through asv's own reader (asv.results), so every results format asv
writes is read the way asv reads it.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from asv import results as asv_results

from .envcheck import record_name
from .errors import UserError

SAMPLE_KEYS = (
    "bench_sample.Sample.track_images_per_call",
    "bench_sample.Sample.track_pixels_per_image",
)


class ResultsError(UserError):
    """A one-line reason a results folder cannot be reported on."""


@dataclass
class Column:
    """One environment's results on one machine, newest first after the report commit."""

    machine: str
    env_name: str
    stack: str
    runs: list  # asv Results objects
    build: dict | None = None

    @property
    def requirements(self) -> dict:
        return dict(getattr(self.runs[0], "_requirements", None) or {})

    def run_for(self, key: str):
        """The first run (report commit first) holding any result for benchmark `key`."""
        return next((run for run in self.runs if _has_result(run, key)), None)


@dataclass
class Machine:
    name: str
    info: dict
    commit: str
    columns: list[Column] = field(default_factory=list)


@dataclass
class Benchmark:
    key: str
    info: dict  # its entry in benchmarks.json

    @property
    def param_names(self) -> list[str]:
        return list(self.info.get("param_names") or [])

    @property
    def combos(self) -> list[tuple]:
        """Every parameter combination, as plain Python values, in asv's result order."""
        params = self.info.get("params") or []
        return list(itertools.product(*[[_literal(p) for p in values] for values in params]))

    @property
    def group(self) -> str:
        """The benchmark class: bench_decode.SmallImages.time_decode -> SmallImages."""
        parts = self.key.split(".")
        return parts[-2] if len(parts) >= 3 else parts[0]


def _literal(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def number(value) -> float | None:
    """A result value, or None when asv recorded a failure (None) or a skip (NaN)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) or math.isinf(value) else value


def values(column: Column, bench: Benchmark) -> tuple[dict[tuple, float | None], str | None]:
    """combo -> value for `bench` in `column`, and the commit the values come from."""
    run = column.run_for(bench.key)
    if run is None:
        return {}, None
    params = bench.info.get("params") or []
    raw = run.get_result_value(bench.key, params)
    if not params:
        raw = [raw]
    return {combo: number(v) for combo, v in zip(bench.combos, raw)}, run.commit_hash


@dataclass(frozen=True)
class Spread:
    """What asv kept of one result besides its median: quartiles and raw samples (per call)."""

    q25: float | None
    q75: float | None
    samples: tuple[float, ...] | None


def spreads(column: Column, bench: Benchmark) -> dict[tuple, Spread]:
    """combo -> the spread of `bench`'s samples in `column` (from the same run as `values`)."""
    run = column.run_for(bench.key)
    if run is None:
        return {}
    params = bench.info.get("params") or []
    stats, samples = (
        run.get_result_stats(bench.key, params),
        run.get_result_samples(bench.key, params),
    )
    if not params:
        stats, samples = [stats], [samples]
    out = {}
    for combo, st, sa in zip(bench.combos, stats, samples):
        st = st or {}
        kept = tuple(x for x in (sa or []) if number(x) is not None) or None
        out[combo] = Spread(number(st.get("q_25")), number(st.get("q_75")), kept)
    return out


def load_benchmarks(results_dir: Path) -> dict[str, Benchmark]:
    path = results_dir / "benchmarks.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file; run asv first (make bench)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: unreadable benchmarks list ({e})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: not an asv benchmarks.json")
    return {
        k: Benchmark(k, v)
        for k, v in sorted(data.items())
        if k != "version" and isinstance(v, dict)
    }


def _machine_info(results_dir: Path, name: str) -> dict:
    try:
        return json.loads((results_dir / name / "machine.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {"machine": name}


def build_record(envinfo_dir: Path, machine: str, env_name: str) -> dict | None:
    """envcheck's record for env_name: envinfo/<machine>/ when that folder exists (records
    merged from another machine), else envinfo/ itself, where this host's envcheck writes."""
    folder = envinfo_dir / machine
    path = (folder if folder.is_dir() else envinfo_dir) / f"{record_name(env_name)}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _has_result(run, key: str) -> bool:
    """`run` holds a value for `key` (not only a failed build, nor only failures)."""
    if key not in run.get_all_result_keys():
        return False
    got = run.get_result_value(key, run.get_result_params(key))
    return any(v is not None for v in (got if isinstance(got, list) else [got]))


def _kept(run) -> int:
    """How many benchmarks a run holds results for
    (a run of a few benchmarks with -b holds few)."""
    return sum(_has_result(run, key) for key in run.get_all_result_keys())


def read_runs(results_dir: Path) -> tuple[list, list[str]]:
    """Every asv results file under `results_dir`, read by asv's own reader, and a one-line
    reason for each file it could not read (asv itself would only warn and skip it, or fail
    with a traceback on a foreign format version)."""
    runs, broken = [], []
    for root, filename, machine in asv_results.iter_results_paths(str(results_dir)):
        path = Path(root) / filename
        try:
            data = json.loads(path.read_text())
            version = data.get("version") if isinstance(data, dict) else None
            if version != asv_results.Results.api_version:
                raise ValueError(
                    f"not an asv results file of format version {asv_results.Results.api_version}"
                    f" (found {version!r})"
                )
            runs.append(asv_results.Results.load(str(path), machine_name=machine))
        except Exception as e:  # noqa: BLE001 - any unreadable file is named, never a traceback
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            broken.append(f"{path}: {reason}")
    return runs, broken


def load(
    results_dir: str | Path,
    envinfo_dir: str | Path | None = None,
    commit: str | None = None,
    partial: bool = False,
) -> tuple[dict[str, Benchmark], list[Machine], list[str]]:
    """Benchmarks, machines and, with `partial`, the results files left out because they
    are broken; without it a broken file is an error naming it."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ResultsError(f"{results_dir}: no such results folder; run asv first (make bench)")
    benchmarks = load_benchmarks(results_dir)
    envinfo_dir = Path(envinfo_dir) if envinfo_dir else results_dir.parent / "envinfo"
    runs, broken = read_runs(results_dir)
    if broken and not partial:
        more = f" (and {len(broken) - 1} more)" if len(broken) > 1 else ""
        raise ResultsError(
            f"{broken[0]}{more}; remove or re-run it, or report without it: --partial"
        )
    by_machine: dict[str, list] = defaultdict(list)
    for run in runs:
        by_machine[run.params.get("machine", "?")].append(run)
    if not by_machine:
        raise ResultsError(f"{results_dir}: no asv results in it; run asv first (make bench)")
    machines = []
    for name in sorted(by_machine):
        runs = by_machine[name]
        envs_at: dict[str, dict[str, object]] = defaultdict(dict)
        for run in runs:
            envs_at[run.commit_hash].setdefault(run.env_name, run)
        if commit:
            matching = [c for c in envs_at if c.startswith(commit)]
            if len(matching) != 1:
                raise ResultsError(
                    f"machine {name}: no results at commit {commit}"
                    if not matching
                    else f"machine {name}: commit prefix {commit} matches {len(matching)} commits;"
                    " give more of it"
                )
            chosen = matching[0]
        else:
            chosen = max(
                envs_at,
                key=lambda c: (
                    len(envs_at[c]),
                    sum(_kept(r) for r in envs_at[c].values()),
                    max(r.date or 0 for r in envs_at[c].values()),
                ),
            )
        machine = Machine(name, _machine_info(results_dir, name), chosen)
        for env_name in sorted({r.env_name for r in runs}):
            mine = sorted(
                (r for r in runs if r.env_name == env_name),
                key=lambda r: (r.commit_hash != chosen, -(r.date or 0)),
            )
            stack = mine[0].env_vars.get("IMGLOAD_STACK") or env_name
            machine.columns.append(
                Column(name, env_name, stack, mine, build_record(envinfo_dir, name, env_name))
            )
        machine.columns.sort(key=lambda c: c.stack)
        machines.append(machine)
    return benchmarks, machines, broken
