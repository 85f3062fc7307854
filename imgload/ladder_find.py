"""`make find`: `asv find` over a built release ladder,
then a verdict that survives a busy machine.

`asv find` stays the engine the user runs first, but it bisects on three samples per
release, not interleaved, and always names some release, even on a flat ladder; on a
busy machine it can name the wrong one. So it is not the last word:

1. the whole ladder: one value per rung (its fastest stored sample) from what `make ladder`
   stored, else from what `asv find` measured, measuring the rungs neither has; asv's own
   step detection (`verdict.ladder_steps`) names where the level changes;
2. every candidate (those level changes and the release `asv find` named, largest first)
   is measured again: the release and the one before it, interleaved (A B, B A, ...: each
   round reinstalls the other release), with raw samples kept; a lone rung is measured
   with the rung after it too, so a spike (one rung out of line with both neighbours) is
   never called a step;
3. `verdict.compare` judges each pair after every two batches (the releases in opposite
   orders); while it cannot decide, two more are added, up to `max_samples`; what it still
   cannot decide is reported as too noisy, with the figure.

Everything measured here goes to results-find/ (asv.find.conf.json), so what `make ladder`
stored and its site draws stays as measured.
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

from . import envcheck, verdict
from . import ladder as ladders
from .files import write_atomic

SAMPLES = 12  # per release and batch: 3 interleaved rounds of 4; batches come in pairs
# samples per release in one round (one process, and a reinstall of the release): rounds of 2
# met this VM's speed levels more evenly, but doubled the installs, and make test's probe
# searches under cpu-noise went past 20 minutes; the Hodges-Lehmann rule decides on rounds of 4
ROUND = 4
BATCHES = 6  # at most: SAMPLES * BATCHES samples per release
CANDIDATES = 4  # level changes measured again, largest first (asv find's pick comes on top)
_FOUND = re.compile(r"Greatest (regression|improvement) found: ([0-9a-f]{8,40})")


@dataclass(frozen=True)
class Selected:
    """One benchmark with one parameter combination."""

    name: str
    params: list
    index: int
    label: str
    unit: str


@dataclass
class Candidate:
    at: int  # index of the rung where the level changes
    source: str  # who proposed it
    lone: bool  # one rung out of line: measure the rung after it too


def rung_versions(repo: Path) -> list[tuple[str, str]]:
    """(commit, version) of every rung, oldest first, read back from the repository's tags."""
    out = []
    for commit in ladders.git(
        repo, "rev-list", "--first-parent", "--reverse", ladders.BRANCH
    ).split()[1:]:
        tag = ladders.git(repo, "tag", "--points-at", commit).split()
        out.append((commit, tag[0] if tag else commit[:8]))
    return out


def pins_at(repo: Path, commit: str) -> dict[str, str]:
    return envcheck.parse_pins(
        ladders.git(repo, "show", f"{commit}:{ladders.REQUIREMENTS}"),
        f"{commit[:8]}:{ladders.REQUIREMENTS}",
    )


def parse_samples(text: str | int | None) -> int:
    """REPEAT / --repeat: samples per release and batch,
    checked against what the rank test can reach."""
    if text is None or text == "":
        return SAMPLES
    need = verdict.min_samples()
    try:
        samples = int(text)
    except ValueError:
        samples = None
    if samples is None or samples < need:
        raise ladders.LadderError(
            f"REPEAT={text}: samples per release must be a whole number of at least {need} (with"
            f" fewer, asv's rank test cannot reach p < {verdict.P_THRESHOLD:g}, so no step could"
            f" ever be confirmed); the default is {SAMPLES}"
        )
    return samples


# -- running asv -------------------------------------------------------------------------


def _progress(line: str) -> bool:
    """asv find's lines worth echoing: its search ("· Testing <---O--->") and the commits it
    measures, not the table of every parameter combination it prints for each of them."""
    return line.startswith("· ") or line.startswith("·· For ")


def run_asv_find(
    conf: Path, root: str, bench: str, invert: bool, asv_args: list[str], verbose: bool = False
) -> str:
    """Run asv find over every rung, echoing its progress (all of its output when `verbose`,
    or when it fails); returns the commit it names."""
    cmd = [
        sys.executable,
        "-m",
        "asv",
        "find",
        "--config",
        str(conf),
        *(["--invert"] if invert else []),
        *asv_args,
        f"{root}..{ladders.BRANCH}",
        bench,
    ]
    found, held = None, []
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        for line in proc.stdout:
            if verbose or _progress(line):
                sys.stdout.write(line)
                sys.stdout.flush()
            else:
                held = (held + [line])[-200:]
            m = _FOUND.search(line)
            found = m.group(2) if m else found
    if proc.returncode != 0 or found is None:
        sys.stdout.write("".join(held))
        raise ladders.LadderError(f"asv find failed (exit {proc.returncode}); its output is above")
    return found


def find_config(conf: Path) -> Path:
    """A copy of the ladder's config whose results go to results-find/. asv find saves what
    it measures, and the verdict measures with other settings: neither replaces what
    `make ladder` stored and the ladder's site draws."""
    data = json.loads(conf.read_text())
    data["results_dir"] = "results-find"
    path = conf.with_name("asv.find.conf.json")
    write_atomic(path, json.dumps(data, indent=4) + "\n")
    return path


def rounds_of(samples: int) -> tuple[int, int]:
    """(rounds, samples per round) for `samples` per release: rounds of about ROUND, at least
    two. Each round is one process, so a release's samples come in processes of that size."""
    rounds = max(2, math.ceil(samples / ROUND))
    return rounds, math.ceil(samples / rounds)


def measure(
    conf: Path,
    machine: str,
    bench: str,
    commits: list[str],
    samples: int | None = None,
    append: bool = False,
    show_stderr: bool = False,
) -> None:
    """`asv run` of `bench` on `commits`, raw samples kept. With `samples`: that many per
    commit, in interleaved rounds of ROUND (A B, then B A, ...), so that a machine getting
    busier or quieter during the measurement hits every release alike; `append` adds them to
    the samples stored before. asv's own output is shown only when it fails."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", dir=conf.parent, delete=False) as f:
        f.write("\n".join(commits) + "\n")
    cmd = [
        sys.executable,
        "-m",
        "asv",
        "run",
        "--config",
        str(conf),
        "--machine",
        machine,
        "--record-samples",
        "-b",
        bench,
        f"HASHFILE:{f.name}",
    ]
    if samples:
        rounds, repeat = rounds_of(samples)
        cmd += ["--interleave-rounds", "-a", f"rounds={rounds}", "-a", f"repeat={repeat}"]
    cmd += ["--append-samples"] if append else []
    cmd += ["--show-stderr"] if show_stderr else []
    try:
        proc = subprocess.run(cmd, capture_output=not show_stderr, text=True)
    finally:
        os.unlink(f.name)
    if proc.returncode != 0:
        if not show_stderr:
            sys.stdout.write((proc.stdout or "")[-4000:] + (proc.stderr or "")[-2000:])
        raise ladders.LadderError(
            "asv run failed while measuring the ladder again; its output is above"
        )


# -- reading what asv stored -------------------------------------------------------------


def _config(conf_path: Path):
    from asv.config import Config

    conf = Config.load(str(conf_path))
    conf.results_dir = str(
        Path(conf_path).parent / conf.results_dir
    )  # asv reads it relative to the config
    return conf


def selection(conf_paths: list[Path], bench: str) -> list[Selected] | None:
    """Every benchmark and parameter combination `bench` selects, from the first results folder
    with a benchmark list; None where none has one yet."""
    from asv.benchmarks import Benchmarks

    for path in conf_paths:
        conf = _config(path)
        if not (Path(conf.results_dir) / "benchmarks.json").is_file():
            continue
        chosen = Benchmarks.load(conf, regex=bench)
        out = []
        for name in chosen:
            bm = chosen[name]
            params = bm["params"]
            combos = list(itertools.product(*params)) if params else [()]
            for index in chosen.benchmark_selection[name] or [0]:
                label = f"{name}({', '.join(combos[index])})" if params else name
                out.append(Selected(name, params, index, label, bm.get("unit", "seconds")))
        if not out:
            raise ladders.LadderError(
                f"no benchmark matches {bench!r} (the list in {conf.results_dir})"
            )
        return out
    return None


def samples_at(conf_path: Path, machine: str, commit: str, sel: Selected) -> list[float] | None:
    """The raw samples stored for one benchmark combination at `commit` (its value alone where
    asv kept no samples); None where there is no result, or a failed one."""
    from asv.results import iter_results_for_machine_and_hash

    for result in iter_results_for_machine_and_hash(
        _config(conf_path).results_dir, machine, commit
    ):
        if sel.name not in result.get_all_result_keys():
            continue
        value = result.get_result_value(sel.name, sel.params)[sel.index]
        if value is None or value != value:
            continue
        samples = result.get_result_samples(sel.name, sel.params)[sel.index]
        return list(samples) if samples else [value]
    return None


def ladder_values(
    conf_paths: list[Path], machine: str, rungs, sel: Selected
) -> list[float | None]:
    """One value per rung: its fastest stored sample,
    from the first results folder that has one."""
    out = []
    for commit, _ in rungs:
        found = next(
            (s for s in (samples_at(p, machine, commit, sel) for p in conf_paths) if s), None
        )
        out.append(min(found) if found else None)
    return out


# -- the verdict -------------------------------------------------------------------------


def _human(value: float, unit: str) -> str:
    from asv.util import human_value

    return human_value(value, unit)


def candidates(values: dict[str, list], named: int, invert: bool) -> list[Candidate]:
    """Where to measure again: the ladder's level changes in the sought direction, largest
    first, then the release asv find named, if not among them."""
    found: dict[int, Candidate] = {}
    changes = sorted(
        (c for series in values.values() for c in verdict.ladder_steps(series, invert)),
        key=lambda c: -abs(math.log(c.ratio)),
    )
    for change in changes:
        if change.at not in found and len(found) < CANDIDATES:
            found[change.at] = Candidate(
                change.at, f"level change {change.ratio:.2f}x", change.lone
            )
    if named in found:
        found[named].source += ", asv find"
    else:
        last = named == len(next(iter(values.values()))) - 1
        found[named] = Candidate(named, "asv find", not last)
    return list(found.values())


@dataclass
class Confirmation:
    candidate: Candidate
    label: str
    unit: str
    versions: list[str]  # before, at(, after)
    samples: list[list[float]]
    step: verdict.Comparison  # before -> at
    back: verdict.Comparison | None  # at -> after, for a lone rung

    @property
    def spike(self) -> bool:
        """The rung is out of line with both neighbours, the same way."""
        return (
            self.back is not None
            and self.step.outcome == verdict.STEP == self.back.outcome
            and self.step.slower != self.back.slower
        )

    @property
    def sought(self) -> bool:
        return self.step.outcome == verdict.STEP and not self.spike


def confirm(
    find_conf: Path,
    machine: str,
    bench: str,
    rungs,
    cand: Candidate,
    chosen: list[Selected],
    factor: float,
    samples: int,
    max_samples: int,
    show_stderr: bool,
) -> list[Confirmation]:
    """Measure the candidate's rungs again, interleaved, adding batches while undecided.

    Batches come in pairs, the releases in opposite orders (A B, B A, A B, then B A, A B, B A),
    and a decision is taken only after a pair: with one order only, the release measured second
    showed fastest samples up to 9% faster than the first on a version-independent loop here,
    an order effect no number of samples removes and a reversed batch cancels."""
    group = [cand.at - 1, cand.at] + (
        [cand.at + 1] if cand.lone and cand.at + 1 < len(rungs) else []
    )
    commits, versions = [rungs[i][0] for i in group], [rungs[i][1] for i in group]
    taken = 0
    while True:
        for order in (commits, commits[::-1]):
            print(
                f"imgload: measuring {', '.join(versions if order is commits else versions[::-1])}"
                f" again, interleaved: {samples} more samples each ({taken + samples} of at most"
                f" {max_samples})",
                flush=True,
            )
            measure(
                find_conf,
                machine,
                bench,
                order,
                samples,
                append=taken > 0,
                show_stderr=show_stderr,
            )
            taken += samples
        out = []
        size = rounds_of(samples)[1]  # every batch took its samples in processes of this size
        for sel in chosen:
            got = [samples_at(find_conf, machine, c, sel) for c in commits]
            if any(s is None for s in got):
                missing = versions[got.index(None)]
                raise ladders.LadderError(
                    f"{sel.label} has no result for {missing}: it failed there"
                    f" (FIND_ARGS=--show-stderr shows why)"
                )
            step = verdict.compare(got[0], got[1], factor, process_size=size)
            back = (
                verdict.compare(got[1], got[2], factor, process_size=size)
                if len(got) == 3
                else None
            )
            out.append(Confirmation(cand, sel.label, sel.unit, versions, got, step, back))
        undecided = any(
            c.step.outcome == verdict.NOISY or (c.back and c.back.outcome == verdict.NOISY)
            for c in out
        )
        if not undecided or taken + 2 * samples > max_samples:
            return out


def _line(c: Confirmation) -> str:
    lo, hi = (min(s) for s in c.samples[:2])
    what = f"{c.versions[0]} -> {c.versions[1]}"
    text = (
        f"  {what:<24} fastest {_human(lo, c.unit)} -> {_human(hi, c.unit)}, ratio"
        f" {c.step.ratio:.3f} ({c.step.interval()}{_processes(c.step)}), fastest"
        f" {c.step.fastest:.3f}: {c.step.reason()}"
    )
    if c.back is not None:
        text += (
            f"\n  {c.versions[1] + ' -> ' + c.versions[2]:<24} ratio {c.back.ratio:.3f}"
            f" ({c.back.interval()}): {c.back.reason()}"
        )
    return text


def _processes(c: verdict.Comparison) -> str:
    """The interval over processes, beside the samples' one: samples of one process share its
    speed level on a busy machine, so the samples' interval, which takes them as independent,
    can be too narrow; each process as one observation, the interval is what it is."""
    return f"; {c.process_interval()}" if c.process_ratio else ""


def _size(ratio: float) -> str:
    return f"{ratio:.2f}x slower" if ratio >= 1 else f"{1 / ratio:.2f}x faster"


def _steps(confirmations: list[Confirmation], invert: bool) -> list[tuple]:
    """(confirmation, comparison, before, at, rung index) for every confirmed step in the
    sought direction, each pair once: a candidate's own step, and the step from a lone rung to
    the rung after it where the rung is no spike (on a busy machine the stored ladder can put
    the level change one rung early; the re-measurement of the next pair then finds it)."""
    out, seen = [], set()
    for c in confirmations:
        pairs = [(c.step, 0)] if c.sought else []
        if c.back is not None and c.back.outcome == verdict.STEP and not c.spike:
            pairs.append((c.back, 1))
        for step, k in pairs:
            key = (c.label, c.versions[k], c.versions[k + 1])
            if step.slower != invert and key not in seen:
                seen.add(key)
                out.append((c, step, c.versions[k], c.versions[k + 1], c.candidate.at + k))
    return out


def verdict_lines(
    library: str, confirmations: list[Confirmation], invert: bool, also: dict
) -> list[str]:
    """One line per confirmed step in the sought direction, largest first, and the spikes;
    else one line saying why there is none. Each names its benchmark where there are several."""
    sought_way = _steps(confirmations, invert)
    several = len({c.label for c in confirmations}) > 1

    def which(c: Confirmation) -> str:
        return f" [{c.label}]" if several else ""

    lines = []
    for c, step, before, at, index in sorted(sought_way, key=lambda s: -s[1].size):
        lines.append(
            f"verdict: step at {library} {at}: {step.size:.2f}x"
            f" {'slower' if step.slower else 'faster'} than {before} (ratio"
            f" {step.ratio:.3f}, {step.interval()}{_processes(step)}), beyond the noise;"
            f" fastest samples"
            f" {_size(step.fastest)}{which(c)}"
        )
        changed = also.get(index)
        if changed:
            lines.append(
                "  note: these pins changed too between the two rungs: "
                + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in sorted(changed.items()))
            )
    for c in confirmations:
        if c.spike:
            lines.append(
                f"verdict: spike at {library} {c.versions[1]}, not a step: {c.step.size:.2f}x"
                f" {'slower' if c.step.slower else 'faster'} than both {c.versions[0]} and"
                f" {c.versions[2]}{which(c)}"
            )
    if not sought_way:
        # a pair left undecided in one group may have been decided in another (a lone rung's
        # group measures the rung after it too): only a pair nothing decided is undecided
        decided = {
            (c.label, *c.versions[:2]) for c in confirmations if c.step.outcome != verdict.NOISY
        }
        decided |= {
            (c.label, *c.versions[1:])
            for c in confirmations
            if c.back and c.back.outcome != verdict.NOISY
        }
        noisy = [
            c
            for c in confirmations
            if c.step.outcome == verdict.NOISY and (c.label, *c.versions[:2]) not in decided
        ]
        if noisy:
            worst = max(noisy, key=lambda c: c.step.noise)
            lines.append(
                f"verdict: no step confirmed; {worst.versions[0]} -> {worst.versions[1]} is"
                f" {worst.step.reason()}"
            )
        else:
            lines.append(
                f"verdict: no significant step ({'speedup' if invert else 'slowdown'}) on this"
                " ladder: every candidate was measured again and refused"
            )
    return lines


def _changed_pins(repo: Path, library: str, rungs, at: int) -> dict[str, tuple[str, str]]:
    a, b = pins_at(repo, rungs[at - 1][0]), pins_at(repo, rungs[at][0])
    return {
        k: (a.get(k, "-"), b.get(k, "-"))
        for k in set(a) | set(b)
        if k != library and a.get(k) != b.get(k)
    }


def find(
    name_or_path: str,
    bench: str,
    invert: bool = False,
    machine: str | None = None,
    factor: float = verdict.FACTOR,
    show_stderr: bool = False,
    root: str | None = None,
    samples: int = SAMPLES,
    max_samples: int | None = None,
) -> int:
    parse_samples(samples)
    max_samples = max(max_samples or samples * BATCHES, samples)
    ladder = ladders.load(name_or_path)
    out = ladders.built_folder(ladder, root)
    conf = out / "asv.conf.json"
    if not conf.is_file():
        raise ladders.LadderError(
            f"ladder {ladder.name} is not built in {out.parent}; run: make ladder"
            f" NAME={name_or_path}"
        )
    ladders.check_built_here(conf)
    repo = out / "repo"
    rungs = rung_versions(repo)
    if len(rungs) < 2:
        raise ladders.LadderError(
            f"ladder {ladder.name} has {len(rungs)} release(s); a step needs two"
        )
    if machine is None:
        from asv.machine import Machine

        machine = Machine.get_unique_machine_name()
    root_commit = ladders.git(repo, "rev-parse", f"{rungs[0][0]}^")
    find_conf = find_config(conf)
    asv_args = ["--machine", machine] + (["--show-stderr"] if show_stderr else [])
    found = run_asv_find(find_conf, root_commit, bench, invert, asv_args, verbose=show_stderr)
    at = [i for i, (commit, _) in enumerate(rungs) if commit.startswith(found)]
    if len(at) != 1 or at[0] == 0:
        raise ladders.LadderError(
            f"asv find named {found}, which is not a rung after the first of ladder {ladder.name}"
        )
    named = at[0]

    # the whole ladder: make ladder's results first, then asv find's; measure the rungs neither has
    stores = [conf, find_conf]
    chosen = selection(stores, bench)
    values = {s.label: ladder_values(stores, machine, rungs, s) for s in chosen} if chosen else {}
    missing = [
        c
        for i, (c, _) in enumerate(rungs)
        if not chosen or any(v[i] is None for v in values.values())
    ]
    if missing:
        print(
            f"\nimgload: measuring the {len(missing)} release(s) of the ladder"
            " with no stored result",
            flush=True,
        )
        measure(find_conf, machine, bench, missing, show_stderr=show_stderr)
        chosen = selection(stores, bench)
        values = {s.label: ladder_values(stores, machine, rungs, s) for s in chosen}

    cands = candidates(values, named, invert)
    print(
        f"\n{ladder.library} ladder, {len(rungs)} releases: asv find names {rungs[named][1]}; the"
        " ladder's level changes to check:"
        f" {', '.join(rungs[c.at][1] + ' (' + c.source + ')' for c in cands)}",
        flush=True,
    )
    confirmations = []
    for cand in cands:
        confirmations += confirm(
            find_conf,
            machine,
            bench,
            rungs,
            cand,
            chosen,
            factor,
            samples,
            max_samples,
            show_stderr,
        )

    also = {  # a candidate's rung, and the rung after it (a lone rung's group measures it too)
        i: _changed_pins(repo, ladder.library, rungs, i)
        for c in cands
        for i in (c.at, c.at + 1)
        if i < len(rungs)
    }
    print(
        f"\n{ladder.library} ladder: asv find names {rungs[named][1]} ({rungs[named][0][:8]});"
        " measured again, interleaved; statistic: the Hodges-Lehmann ratio of the samples (the"
        " rank test's own), checked against the fastest samples; its interval over the samples"
        " and over processes (a process's samples share its speed level)"
    )
    for label in dict.fromkeys(c.label for c in confirmations):
        print(label)
        for c in confirmations:
            if c.label == label:
                print(_line(c))
    for line in verdict_lines(ladder.library, confirmations, invert, also):
        print(line)
    return 0
