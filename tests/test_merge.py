"""`python -m imgload results merge`: other machines' .asv folders into ours, on fake asv trees
shaped like real ones (results files with asv's keys and names, envcheck's records)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from asv import results as asv_results
from asv.machine import Machine

from imgload import cli, results
from imgload.envcheck import record_name

from .helpers import snapshot

COMMIT = "79539b12c499f5ae892f716e249adf4373a0bf1c"
# one short name and one of the long ones asv (and envcheck) hash into env-<md5>
SHORT = "virtualenv-py3.11-numpy1.26.2-pillow10.1.0-IMGLOAD_STACK2023-11"
LONG = "virtualenv-py3.11-" + "-".join(f"package{i}1.{i}.0" for i in range(12)) + "-IMGLOAD_STACK"
HOST = "publisher"  # this host's machine name in every test (asv's default, the host name)


@pytest.fixture(autouse=True)
def host(tmp_path, monkeypatch):
    """This host is `publisher`, and asv here was set up as no other machine: a home of its own,
    so the real ~/.asv-machine.json never decides a test."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)  # under no folder merged: paths are shown whole
    monkeypatch.setattr(Machine, "hardcoded_machine_name", HOST)
    return home


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=1))


def machine_info(name: str) -> dict:
    return {
        "arch": "x86_64",
        "cpu": "AMD EPYC",
        "machine": name,
        "num_cpu": "2",
        "os": "Linux 6.18",
        "ram": "25276510208",
        "version": 1,
    }


def run(machine: str, env_name: str, value: float = 0.01, commit: str = COMMIT) -> dict:
    """A results file as asv writes it (the keys of a real one, one benchmark)."""
    return {
        "commit_hash": commit,
        "env_name": env_name,
        "date": 1795636885000,
        "params": {**machine_info(machine), "python": "3.11"},
        "python": "3.11",
        "requirements": {"numpy": "1.26.2"},
        "env_vars": {"IMGLOAD_STACK": "2023-11"},
        "result_columns": ["result", "params", "version", "started_at", "duration"],
        "results": {"bench_decode.SmallImages.time_decode": [[value], [], "abc", 1, 0.5]},
        "durations": {},
        "version": 2,
    }


def record(env_name: str, verified_at: str = "2026-11-25T20:04:48+00:00") -> dict:
    """A build record as envcheck writes it."""
    return {
        "stack": "2023-11",
        "env_name": env_name,
        "verified_at": verified_at,
        "python": "3.11.7",
        "pins": {"numpy": "1.26.2"},
        "installed": {"numpy": "1.26.2"},
        "build": {},
    }


def result_path(results_dir: Path, machine: str, env_name: str, commit: str = COMMIT) -> Path:
    return results_dir / asv_results.get_filename(machine, commit, env_name)


def add_machine(asv_dir: Path, machine: str, envs=(SHORT, LONG), records: str | None = "") -> None:
    """results/<machine>/ with one run per environment; records="": their build records in
    envinfo/ (the machine's own), "nested": in envinfo/<machine>/ (merged there), None: none."""
    write_json(asv_dir / "results" / machine / "machine.json", machine_info(machine))
    for env in envs:
        write_json(result_path(asv_dir / "results", machine, env), run(machine, env))
        if records is not None:
            folder = asv_dir / "envinfo" / (machine if records == "nested" else "")
            write_json(folder / f"{record_name(env)}.json", record(env))


def benchmarks(asv_dir: Path, version: str = "abc") -> None:
    write_json(
        asv_dir / "results" / "benchmarks.json",
        {"bench_decode.SmallImages.time_decode": {"version": version, "params": []}, "version": 2},
    )


def other_machine(root: Path, machine: str = "runner-a") -> Path:
    """Another machine's .asv folder: its runs, benchmarks.json and its own records."""
    asv_dir = root / machine / ".asv"
    add_machine(asv_dir, machine)
    benchmarks(asv_dir)
    return asv_dir


def merge(capsys, *args) -> tuple[int, list[str], list[str]]:
    code = cli.main(["results", "merge", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def refused(capsys, into: Path, *args) -> str:
    """The one error line of a merge that must write nothing."""
    before = snapshot(into)
    code, out, err = merge(capsys, *args, "--into", into)
    assert (code, out, len(err)) == (2, [], 1), (code, out, err)
    assert err[0].startswith("imgload: error: ")
    assert snapshot(into) == before
    return err[0]


@pytest.fixture
def ours(tmp_path) -> Path:
    """This repository's .asv: this host's own run, records and benchmarks.json."""
    asv_dir = tmp_path / "here" / ".asv"
    add_machine(asv_dir, HOST, envs=(SHORT,))
    benchmarks(asv_dir)
    return asv_dir


def test_new_files_go_where_asv_and_the_report_read_them(tmp_path, capsys):
    theirs, into = other_machine(tmp_path), tmp_path / "empty" / ".asv"
    code, out, err = merge(capsys, theirs, "--into", into)
    assert (code, err) == (0, [])
    assert out == [
        f"imgload: copied {theirs / 'results' / 'benchmarks.json'} (there was none)",
        "imgload: merged runner-a: 2 results new, 0 identical; build records 2 new, 0 identical",
        "imgload: next: make publish report",
    ]
    assert snapshot(into / "results") == snapshot(theirs / "results")
    assert snapshot(into / "envinfo" / "runner-a") == snapshot(theirs / "envinfo")
    for env in (SHORT, LONG):  # the report finds them as runner-a's records
        assert results.build_record(into / "envinfo", "runner-a", env) == record(env)


def test_identical_files_are_skipped_and_a_second_merge_changes_nothing(tmp_path, ours, capsys):
    theirs = other_machine(tmp_path)
    assert merge(capsys, theirs, "--into", ours)[0] == 0
    before = snapshot(ours)
    code, out, err = merge(capsys, theirs, "--into", ours)
    assert (code, err) == (0, [])
    assert out == [
        "imgload: merged runner-a: 0 results new, 2 identical; build records 0 new, 2 identical",
        "imgload: next: make publish report",
    ]
    assert snapshot(ours) == before


def test_a_result_that_differs_is_kept_and_named(tmp_path, ours, capsys):
    theirs = other_machine(tmp_path)
    mine = result_path(ours / "results", "runner-a", SHORT)
    write_json(mine, run("runner-a", SHORT, value=0.5))
    before = snapshot(ours / "results")
    code, out, err = merge(capsys, theirs, "--into", ours)
    assert (code, err) == (0, [])
    assert out[0] == (
        f"imgload: kept {mine}: {result_path(theirs / 'results', 'runner-a', SHORT)} differs"
        " (--force overwrites)"
    )
    assert out[1] == (
        "imgload: merged runner-a: 1 results new, 0 identical, 1 kept (differs; --force"
        " overwrites); build records 2 new, 0 identical"
    )
    assert json.loads(mine.read_text()) == run("runner-a", SHORT, value=0.5)
    new = result_path(ours / "results", "runner-a", LONG)
    after = snapshot(ours / "results")
    assert after.pop(str(new.relative_to(ours / "results"))) == new.read_bytes()
    assert after.pop("runner-a/machine.json")
    assert after == before


def test_force_overwrites_what_differs(tmp_path, ours, capsys):
    theirs = other_machine(tmp_path)
    mine = result_path(ours / "results", "runner-a", SHORT)
    write_json(mine, run("runner-a", SHORT, value=0.5))
    rec = ours / "envinfo" / "runner-a" / f"{record_name(LONG)}.json"
    write_json(rec, record(LONG, verified_at="2020-01-01T00:00:00+00:00"))
    code, out, err = merge(capsys, theirs, "--into", ours, "--force")
    assert (code, err) == (0, [])
    assert out == [
        "imgload: merged runner-a: 1 results new, 0 identical, 1 overwritten; build records"
        " 1 new, 0 identical, 1 overwritten",
        "imgload: next: make publish report",
    ]
    assert mine.read_bytes() == result_path(theirs / "results", "runner-a", SHORT).read_bytes()
    assert json.loads(rec.read_text()) == record(LONG)


def test_machine_json_and_benchmarks_json_that_differ_stay_ours_even_with_force(
    tmp_path, ours, capsys
):
    theirs = other_machine(tmp_path)
    benchmarks(theirs, version="changed")
    mine = ours / "results" / "runner-a" / "machine.json"
    write_json(mine, {**machine_info("runner-a"), "os": "Linux 5.0"})
    before = (mine.read_bytes(), (ours / "results" / "benchmarks.json").read_bytes())
    code, out, err = merge(capsys, theirs, "--into", ours, "--force")
    assert (code, err) == (0, [])
    assert out[0] == (
        f"imgload: kept {mine}: {theirs / 'results' / 'runner-a' / 'machine.json'} differs"
        " (ours stays: asv's record of the machine)"
    )
    assert out[1].startswith(
        f"imgload: kept {ours / 'results' / 'benchmarks.json'}:"
        f" {theirs / 'results' / 'benchmarks.json'} differs; ours lacks 1 of its benchmarks at"
        " their version"
    )
    assert before == (mine.read_bytes(), (ours / "results" / "benchmarks.json").read_bytes())


def _results_dir(d: Path) -> None:
    (d / "results").mkdir(parents=True)


@pytest.mark.parametrize(
    "make, names",
    [
        (lambda d: None, "no such folder"),
        (lambda d: write_json(d / "notes.json", {}), "not asv results"),
        (_results_dir, "no <machine>/machine.json in it"),
        (
            lambda d: write_json(d / "results" / "runner-b" / "x.json", {}),
            "runner-b: results without a machine.json",
        ),
        (
            lambda d: write_json(d / "results" / "runner-b" / "machine.json", {"machine": "x"}),
            "machine.json: not an asv machine.json",
        ),
    ],
    ids=["missing", "other-files", "empty-results", "no-machine-json", "bad-machine-json"],
)
def test_a_folder_that_is_not_asv_results_is_refused_and_nothing_is_written(
    tmp_path, ours, capsys, make, names
):
    bad = tmp_path / "bad"
    make(bad)
    # a good DIR first: nothing of it is written either
    line = refused(capsys, ours, other_machine(tmp_path), bad)
    assert str(bad) in line and names in line, line


@pytest.mark.parametrize(
    "damage, names",
    [
        (lambda t: result_path(t / "results", "runner-a", SHORT).write_text("{"), "not readable"),
        (
            lambda t: (t / "envinfo" / f"{record_name(LONG)}.json").write_text("[1,"),
            "not readable JSON",
        ),
        (
            lambda t: write_json(result_path(t / "results", "runner-a", SHORT), {"version": 2}),
            "not an asv results file (no commit_hash, env_name, params, results)",
        ),
        (
            lambda t: result_path(t / "results", "runner-a", SHORT).rename(
                t / "results" / "runner-a" / "copy.json"
            ),
            f"asv names these results {result_path(Path(), 'runner-a', SHORT).name}",
        ),
        (
            lambda t: write_json(t / "envinfo" / "x.json", record(SHORT)),
            f"the build record of its env_name is {SHORT}.json",
        ),
        (
            lambda t: write_json(t / "results" / "benchmarks.json", {"version": 1}),
            "not an asv benchmarks.json",
        ),
    ],
    ids=["result", "record", "result-keys", "renamed-result", "renamed-record", "benchmarks"],
)
def test_a_bad_file_is_named_and_nothing_is_written(tmp_path, ours, capsys, damage, names):
    theirs = other_machine(tmp_path)
    damage(theirs)
    line = refused(capsys, ours, theirs)
    assert str(theirs) in line and names in line, line


def test_this_hosts_machine_name_is_refused_unless_the_files_are_ours(tmp_path, ours, capsys):
    # a copy of our own .asv merges as nothing new
    copy = tmp_path / "copy" / ".asv"
    add_machine(copy, HOST, envs=(SHORT,))
    code, out, err = merge(capsys, copy, "--into", ours)
    assert (code, err) == (0, [])
    assert out[0] == (
        f"imgload: merged {HOST}: 0 results new, 1 identical; build records 0 new, 1 identical"
    )
    assert not (ours / "envinfo" / HOST).exists()  # our records stay in envinfo/ itself
    # another host that ran under our name
    other = tmp_path / "other" / ".asv"
    add_machine(other, HOST, envs=(SHORT, LONG))
    line = refused(capsys, ours, other)
    assert f"{HOST} is this host's machine name" in line
    assert str(result_path(ours / "results", HOST, LONG)) in line


def test_a_name_asv_here_was_set_up_as_is_this_hosts_too(tmp_path, ours, host, capsys):
    write_json(host / ".asv-machine.json", {"runner-a": machine_info("runner-a"), "version": 1})
    line = refused(capsys, ours, other_machine(tmp_path))
    assert "runner-a is this host's machine name" in line


def test_flat_records_go_to_their_machine_and_nested_ones_keep_theirs(tmp_path, ours, capsys):
    theirs = other_machine(tmp_path)
    add_machine(theirs, "runner-c", envs=(LONG,), records="nested")  # merged into runner-a
    code, out, err = merge(capsys, theirs, "--into", ours)
    assert (code, err) == (0, [])
    assert out[-3:] == [
        "imgload: merged runner-a: 2 results new, 0 identical; build records 2 new, 0 identical",
        "imgload: merged runner-c: 1 results new, 0 identical; build records 1 new, 0 identical",
        "imgload: next: make publish report",
    ]
    assert sorted(p.name for p in (ours / "envinfo" / "runner-a").iterdir()) == sorted(
        f"{record_name(e)}.json" for e in (SHORT, LONG)
    )
    assert [p.name for p in (ours / "envinfo" / "runner-c").iterdir()] == [
        f"{record_name(LONG)}.json"
    ]
    assert (ours / "envinfo" / f"{record_name(SHORT)}.json").is_file()  # ours, untouched


def test_flat_records_of_several_machines_need_machine(tmp_path, ours, capsys):
    theirs = other_machine(tmp_path)
    add_machine(theirs, "runner-b", envs=(LONG,))  # one host, two names, one envinfo/
    line = refused(capsys, ours, theirs)
    assert f"{theirs / 'envinfo'}: whose build records" in line and "--machine NAME" in line
    assert "not-there" in refused(capsys, ours, theirs, "--machine", "not-there")
    code, out, err = merge(capsys, theirs, "--into", ours, "--machine", "runner-b")
    assert (code, err) == (0, [])
    assert out[-2] == (
        "imgload: merged runner-b: 1 results new, 0 identical; build records 2 new, 0 identical"
    )
    assert out[-3].startswith("imgload: merged runner-a: 2 results new, 0 identical; no build")
    assert (ours / "envinfo" / "runner-a").is_dir()  # empty: the report never takes ours for its


def test_a_results_folder_is_read_with_the_envinfo_beside_it(tmp_path, ours, capsys):
    theirs = other_machine(tmp_path)
    code, out, err = merge(capsys, theirs / "results", "--into", ours)
    assert (code, err) == (0, [])
    assert out[-2] == (
        "imgload: merged runner-a: 2 results new, 0 identical; build records 2 new, 0 identical"
    )


def test_two_dirs_with_different_copies_of_one_file_keep_the_first(tmp_path, ours, capsys):
    first, second = other_machine(tmp_path / "1"), other_machine(tmp_path / "2")
    write_json(result_path(second / "results", "runner-a", SHORT), run("runner-a", SHORT, 0.5))
    code, out, err = merge(capsys, first, second, "--into", ours)
    assert (code, err) == (0, [])
    assert out[0].startswith(f"imgload: kept {result_path(ours / 'results', 'runner-a', SHORT)}")
    assert out[1] == (
        "imgload: merged runner-a: 2 results new, 1 identical, 1 kept (differs; --force"
        " overwrites); build records 2 new, 2 identical"
    )
    assert (
        result_path(ours / "results", "runner-a", SHORT).read_bytes()
        == result_path(first / "results", "runner-a", SHORT).read_bytes()
    )
