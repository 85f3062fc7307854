"""`asv find` over a built release ladder, then a verdict on the step it names.

`asv find` bisects to the commit with the largest change and always names one, even on a
flat ladder. The verdict reads what `asv find` measured (it saves its results) for the
release it named and the release before, or, with `repeat`, measures those two again
with that many samples each, and says whether the step is real: the two
measurements must differ beyond the noise between repeated samples (asv's own test:
Mann-Whitney U when raw samples are stored, else non-overlapping 99% confidence
intervals) and by at least `factor`, the threshold `asv compare` uses too.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import envcheck
from . import ladder as ladders
from .files import write_atomic

FACTOR = 1.1  # asv compare's default: smaller ratios are not called a step
_FOUND = re.compile(r"Greatest (regression|improvement) found: ([0-9a-f]{8,40})")


@dataclass(frozen=True)
class Measurement:
    version: str
    commit: str
    value: float
    stats: dict | None
    samples: list | None


@dataclass(frozen=True)
class Step:
    name: str  # benchmark name with its parameters
    unit: str
    before: Measurement
    after: Measurement
    ratio: float  # after / before
    beyond_noise: bool
    significant: bool


def rung_versions(repo: Path) -> list[tuple[str, str]]:
    """(commit, version) of every rung, oldest first, read back from the repository's tags."""
    out = []
    for commit in ladders.git(repo, "rev-list", "--first-parent", "--reverse", ladders.BRANCH).split()[1:]:
        tag = ladders.git(repo, "tag", "--points-at", commit).split()
        out.append((commit, tag[0] if tag else commit[:8]))
    return out


def pins_at(repo: Path, commit: str) -> dict[str, str]:
    return envcheck.parse_pins(ladders.git(repo, "show", f"{commit}:{ladders.REQUIREMENTS}"), f"{commit[:8]}:{ladders.REQUIREMENTS}")


def run_asv_find(conf: Path, root: str, bench: str, invert: bool, asv_args: list[str]) -> str:
    """Run asv find over every rung, echoing its output; returns the commit it names."""
    cmd = [sys.executable, "-m", "asv", "find", "--config", str(conf), *(["--invert"] if invert else []),
           *asv_args, f"{root}..{ladders.BRANCH}", bench]
    found = None
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            sys.stdout.write(line)
            m = _FOUND.search(line)
            found = m.group(2) if m else found
    if proc.returncode != 0 or found is None:
        raise ladders.LadderError(f"asv find failed (exit {proc.returncode}); its output is above")
    return found


def find_config(conf: Path) -> Path:
    """A copy of the ladder's config whose results go to results-find/. asv find saves what
    it measures, and --repeat measures with other settings: neither replaces what
    `make ladder` stored and the ladder's site draws."""
    data = json.loads(conf.read_text())
    data["results_dir"] = "results-find"
    path = conf.with_name("asv.find.conf.json")
    write_atomic(path, json.dumps(data, indent=4) + "\n")
    return path


def remeasure(conf: Path, machine: str, bench: str, commits: list[str], repeat: int) -> None:
    """Measure the two rungs again, `repeat` samples each, keeping the raw samples for the rank test.

    Two rounds, interleaved across the rungs (A B, then B A), so that a machine getting
    busier or quieter during the measurement does not show up as a step.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=conf.parent, delete=False) as f:
        f.write("\n".join(commits) + "\n")
    try:
        cmd = [sys.executable, "-m", "asv", "run", "--config", str(conf), "--machine", machine, "--record-samples",
               "--interleave-rounds", "-a", "rounds=2", "-a", f"repeat={math.ceil(repeat / 2)}",
               "-b", bench, f"HASHFILE:{f.name}"]
        print(f"\nimgload: measuring both releases again, {2 * math.ceil(repeat / 2)} samples each", flush=True)
        if subprocess.run(cmd).returncode != 0:
            raise ladders.LadderError("asv run failed while measuring the two releases again; its output is above")
    finally:
        os.unlink(f.name)


def _measurement(conf, machine: str, commit: str, version: str, name: str, params, index: int) -> Measurement | None:
    from asv.results import iter_results_for_machine_and_hash

    for result in iter_results_for_machine_and_hash(conf.results_dir, machine, commit):
        if name not in result.get_all_result_keys():
            continue
        value = result.get_result_value(name, params)[index]
        if value is None or value != value:
            continue
        stats = result.get_result_stats(name, params)[index]
        samples = result.get_result_samples(name, params)[index]
        return Measurement(version, commit, value, stats, samples)
    return None


def steps(conf_path: Path, machine: str, bench: str, before: tuple[str, str], after: tuple[str, str],
          factor: float = FACTOR) -> list[Step]:
    """The step between two rungs for every parameter combination `bench` selects."""
    from asv.benchmarks import Benchmarks
    from asv.config import Config

    conf = Config.load(str(conf_path))
    conf.results_dir = str(Path(conf_path).parent / conf.results_dir)  # asv reads it relative to the config
    selected = Benchmarks.load(conf, regex=bench)
    out = []
    for name in selected:
        bm = selected[name]
        params = bm["params"]
        combos = list(itertools.product(*params)) if params else [()]
        for index in selected.benchmark_selection[name] or [0]:
            label = f"{name}({', '.join(combos[index])})" if params else name
            a = _measurement(conf, machine, before[0], before[1], name, params, index)
            b = _measurement(conf, machine, after[0], after[1], name, params, index)
            if a is None or b is None:
                missing = before[1] if a is None else after[1]
                raise ladders.LadderError(f"no result of {label} for {missing} on machine {machine}")
            out.append(Step(label, bm.get("unit", "seconds"), a, b, *judge(a, b, factor)))
    return out


def judge(a: Measurement, b: Measurement, factor: float = FACTOR) -> tuple[float, bool, bool]:
    """(ratio b / a, beyond the noise, significant): asv's own test of two measurements
    (a rank test on raw samples where both have them, else their 99% intervals), and a
    significant step must also be at least `factor` either way, as in `asv compare`."""
    from asv import _stats

    ratio = b.value / a.value if a.value else math.inf
    has_intervals = bool(a.stats and b.stats and "ci_99_a" in a.stats and "ci_99_a" in b.stats)
    beyond = has_intervals and bool(_stats.is_different(a.samples, b.samples, a.stats, b.stats))
    return ratio, beyond, beyond and max(ratio, 1 / ratio) >= factor


def _human(value: float, unit: str) -> str:
    from asv.util import human_value

    return "-" + human_value(-value, unit) if value < 0 else human_value(value, unit)


def _fmt(m: Measurement, unit: str) -> str:
    spread = ""
    if m.stats and "ci_99_a" in m.stats:
        n = len(m.samples) if m.samples else m.stats.get("repeat", "?")
        spread = f"  99% CI {_human(m.stats['ci_99_a'], unit)} .. {_human(m.stats['ci_99_b'], unit)}, {n} samples"
    return f"{m.version:>12}  {m.commit[:8]}  {_human(m.value, unit):>10}{spread}"


def report(library: str, step: Step, factor: float, also_changed: dict[str, tuple[str, str]],
           invert: bool = False) -> str:
    lines = [
        f"{step.name}",
        f"  before {_fmt(step.before, step.unit)}",
        f"  after  {_fmt(step.after, step.unit)}",
        f"  ratio  {step.ratio:.3f} (after / before)",
    ]
    how = "slower" if step.ratio > 1 else "faster"
    size = step.ratio if step.ratio > 1 else 1 / step.ratio
    sought = "faster" if invert else "slower"
    if step.significant and how == sought:
        verdict = (f"step at {library} {step.after.version}: {size:.2f}x {how} than {step.before.version},"
                   f" beyond the noise between repeated samples")
    elif step.significant:
        verdict = (f"no significant {'speedup' if invert else 'slowdown'}: {step.after.version} is {size:.2f}x"
                   f" {how} than {step.before.version}, the other way (search with{'out' if invert else ''} --invert)")
    elif step.beyond_noise:
        verdict = f"no significant step (the samples differ, but by less than the {factor:g}x threshold)"
    else:
        verdict = "no significant step (the difference is within the noise between repeated samples)"
    lines.append(f"  verdict: {verdict}")
    if also_changed and step.significant and how == sought:
        changed = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in sorted(also_changed.items()))
        lines.append(f"  note: these pins changed too between the two rungs: {changed}")
    return "\n".join(lines)


def find(name_or_path: str, bench: str, invert: bool = False, machine: str | None = None,
         factor: float = FACTOR, show_stderr: bool = False, root: str | None = None, repeat: int = 0) -> int:
    ladder = ladders.load(name_or_path)
    out = ladders.ladder_dir(root) / ladder.name
    conf = out / "asv.conf.json"
    if not conf.is_file():
        raise ladders.LadderError(f"ladder {ladder.name} is not built in {out.parent}; run: python -m imgload ladder build {name_or_path}")
    repo = out / "repo"
    rungs = rung_versions(repo)
    if len(rungs) < 2:
        raise ladders.LadderError(f"ladder {ladder.name} has {len(rungs)} release(s); a step needs two")
    if machine is None:
        from asv.machine import Machine

        machine = Machine.get_unique_machine_name()
    root_commit = ladders.git(repo, "rev-parse", f"{rungs[0][0]}^")
    conf = find_config(conf)
    asv_args = ["--machine", machine] + (["--show-stderr"] if show_stderr else [])
    found = run_asv_find(conf, root_commit, bench, invert, asv_args)
    at = [i for i, (commit, _) in enumerate(rungs) if commit.startswith(found)]
    if len(at) != 1 or at[0] == 0:
        raise ladders.LadderError(f"asv find named {found}, which is not a rung after the first of ladder {ladder.name}")
    before, after = rungs[at[0] - 1], rungs[at[0]]
    pins_a, pins_b = pins_at(repo, before[0]), pins_at(repo, after[0])
    also = {k: (pins_a.get(k, "-"), pins_b.get(k, "-")) for k in set(pins_a) | set(pins_b)
            if k != ladder.library and pins_a.get(k) != pins_b.get(k)}
    if repeat:
        remeasure(conf, machine, bench, [before[0], after[0]], repeat)
    print(f"\n{ladder.library} ladder: asv find names {after[1]} ({after[0][:8]}); the release before is {before[1]}")
    for step in steps(conf, machine, bench, before, after, factor):
        print(report(ladder.library, step, factor, also, invert))
    return 0
