"""`python -m imgload memo` (`make memo`): the memo's two experiments, run on the tiny set's smoke
profile, write a table with the memo's figures beside today's and conclusions decided by the
numbers; a dataset, data dir or cache that cannot serve is one line, exit 2, nothing written."""

import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from imgload import cli, datasets, memo

from .helpers import REPO, md_tables

SECONDS = re.compile(r"([0-9]+\.[0-9]+) s( ±(<1|[0-9]+)%)?")
RATIO = re.compile(r"([0-9.]+)×")


def _in_checkout(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """A memo command from the checkout, with the tests' environment, its output captured."""
    return subprocess.run(
        cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=timeout
    )


def _memo_cmd(manifest, data_dir, out, *extra) -> list[str]:
    return [
        sys.executable,
        "-m",
        "imgload",
        "memo",
        str(manifest),
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        *extra,
    ]


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGLOAD_")}
    return dict(env, IMGLOAD_PROFILE="smoke", **extra)


def _positive_seconds(cell: str) -> float:
    found = SECONDS.fullmatch(cell)
    assert found, f"not a time in seconds: {cell!r}"
    value = float(found.group(1))
    assert value > 0, cell
    return value


@pytest.fixture(scope="module")
def memo_run(tiny, manifests, data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("memo") / "out"
    done = _in_checkout(_memo_cmd(manifests["small"], data_dir, out, "--repeats", "3"), 300)
    assert done.returncode == 0, done.stderr
    return out, done


def test_make_memo_prepares_the_set_then_runs_the_memo():
    # not the variables of a `make test` this runs under
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    out = subprocess.run(
        ["make", "-n", "memo"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-2:] == [
        ".venv/bin/python -m imgload data prepare ${IMGLOAD_DATASET:-synthetic-cifar10}",
        ".venv/bin/python -m imgload memo",
    ]


def test_memo_writes_its_table_and_nothing_else(memo_run):
    out, done = memo_run
    assert done.stdout == f"{out / 'memo.md'}\n"
    assert sorted(p.name for p in out.iterdir()) == ["memo.json", "memo.md"], "no scratch left"
    assert "memo round 3 of 3" in done.stderr


def test_experiment_1_has_the_memo_figures_beside_today(memo_run):
    out, _ = memo_run
    table = md_tables((out / "memo.md").read_text())[0]
    header, rows = table[0], {row[0].split(":")[0]: row for row in table[1:]}
    assert header[1:4] == [
        "memo, 50,000 images",
        "memo per image",
        "today, 16 images, median of 3",
    ]
    assert list(rows) == ["scipy.misc.imread", "PIL", "OpenCV", "imageio"]
    scipy = rows["scipy.misc.imread"]
    assert scipy[1] == "457.13 s" and scipy[3].startswith("n/a: ")
    assert "removed" in scipy[3] and "PIL" in scipy[3]
    assert rows["PIL"][1] == "457.22 s" and rows["OpenCV"][1] == "441.20 s"
    assert rows["imageio"][1] == "not published"
    for lib in ("PIL", "OpenCV", "imageio"):
        _positive_seconds(rows[lib][3])
        assert rows[lib][3].split(" s")[1].startswith(" ±"), "3 runs carry their spread"
        assert re.fullmatch(r"[0-9.]+(ns|μs|ms|s)", rows[lib][4]), rows[lib][4]


def test_experiment_2_has_the_memo_threads_cold_and_warm_and_the_speedup(memo_run):
    out, _ = memo_run
    table = md_tables((out / "memo.md").read_text())[1]
    rows = [(row[0].split(":")[0], row[1], row) for row in table[1:]]
    assert [r[:2] for r in rows] == [
        ("JPEG", "cold"),
        ("JPEG", "warm"),
        ("pickle", "cold"),
        ("pickle", "warm"),
    ]
    assert [r[2][2] for r in rows] == ["332.17 s", "3.43 s", "358.31 s", "21.45 s"]
    assert [r[2][7] for r in rows] == ["1.33×"] + ["not published"] * 3
    for _, _, row in rows:
        threads, sequential = _positive_seconds(row[4]), _positive_seconds(row[6])
        ratio = float(RATIO.fullmatch(row[8]).group(1))
        assert ratio == pytest.approx(sequential / threads, rel=0.02)


def test_the_conclusions_are_listed_with_their_figures(memo_run):
    out, _ = memo_run
    text = (out / "memo.md").read_text()
    listed = text.split("## Which of the memo's conclusions still hold")[1].split("\n- ")[1:]
    assert len(listed) == 7
    for line in listed:
        if line.startswith("scipy.misc.imread"):
            assert "cannot be checked" in line
        else:
            assert re.search(r": (holds|does not hold) \(", line), line


def test_the_table_says_what_it_ran_on(memo_run):
    import cv2
    import PIL

    out, _ = memo_run
    text = (out / "memo.md").read_text()
    assert f"OpenCV {cv2.__version__}" in text and f"Pillow {PIL.__version__}" in text
    assert "imageio " in text and "16 training images" in text and "profile `smoke`" in text
    record = json.loads((out / "memo.json").read_text())
    assert record["images"] == 16 and record["rounds"] == 3
    assert len(record["passes"]) == len(memo.CELLS)
    for p in record["passes"]:
        assert len(p["seconds"]) == 3 and all(x > 0 for x in p["seconds"]), p


def _run(samples: dict) -> memo.Run:
    return memo.Run(
        dataset="x",
        root="/x",
        profile="full",
        images=50_000,
        shape="32x32",
        rounds=len(next(iter(samples.values()))),
        samples=samples,
        versions=memo.versions(),
        machine=memo.machine(),
        started="2026-12-04 20:00 UTC",
        seconds=1.0,
    )


def test_conclusions_follow_the_numbers_not_the_memo():
    # the memo's own figures, one run each: every conclusion it drew holds
    published = {c: [memo.PUBLISHED.get(c, 1.0)] for c in memo.CELLS}
    published[memo._cell("cv2", "sequential", "warm")] = [4.0]
    published[memo._cell("pickle", "sequential", "cold")] = [400.0]
    published[memo._cell("pickle", "sequential", "warm")] = [20.0]
    verdicts = [re.search(r"(does not hold|holds|cannot)", x)[1] for x in _conclusions(published)]
    assert verdicts == ["holds", "cannot"] + ["holds"] * 5
    # PIL faster than OpenCV, and threads no help: those two no longer hold
    turned = dict(published)
    pil, cv2 = memo._cell("pil", "sequential", "cold"), memo._cell("cv2", "sequential", "cold")
    turned[pil], turned[cv2] = [400.0], [500.0]
    lines = _conclusions(turned)
    assert lines[0].endswith(": does not hold (500.00 s vs 400.00 s)")
    assert lines[2].endswith(": holds (1.51×: 500.00 s sequential, 332.17 s with 3 threads)")
    turned[memo._cell("cv2", memo.THREADS, "cold")] = [600.0]
    assert _conclusions(turned)[2].endswith(
        ": does not hold (0.83×: 500.00 s sequential, 600.00 s with 3 threads)"
    )


def test_overlapping_runs_are_flagged():
    runs = {c: [1.0, 1.1, 1.2] for c in memo.CELLS}
    runs[memo._cell("cv2", "sequential", "cold")] = [0.9, 1.05, 1.15]
    assert "within the runs' spread" in _conclusions(runs)[0]


class _Idle:
    """A Runner that loads nothing: rounds cost only the loop around them."""

    def run(self, files):
        return files


@pytest.mark.parametrize("budget, rounds", [(0.0, 1), (1e6, memo.ROUNDS)])
def test_rounds_are_as_many_as_fit_in_the_budget(monkeypatch, budget, rounds):
    monkeypatch.setattr(memo, "BUDGET", budget)
    monkeypatch.setattr(memo.suite, "set_cache", lambda cache, files: None)
    runners = {(c.loader, c.fmt, c.execution): _Idle() for c in memo.CELLS}
    files = {"jpeg": ["a.jpg"], memo.PICKLES: ["a.pkl"]}
    said = []
    samples = memo._measure(runners, files, None, said.append)
    assert {len(xs) for xs in samples.values()} == {rounds}
    assert said[-1].startswith(f"memo round {rounds} of {rounds}: ")
    assert len(memo._measure(runners, files, 2, said.append)[memo.CELLS[0]]) == 2


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class _Slow:
    def run(self, files):
        time.sleep(0.4)
        return files


def test_a_pass_that_lasts_draws_its_bar_on_a_terminal(monkeypatch):
    screen = _Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    monkeypatch.setattr(memo, "CHUNK", 1)
    monkeypatch.setattr(memo.suite, "set_cache", lambda cache, files: None)
    cell = memo.CELLS[0]
    took = memo._timed_pass(_Slow(), ["a", "b", "c", "d"], cell, "1/5")
    assert took >= 1.6
    drawn = screen.getvalue()
    assert f"{cell.loader} {cell.fmt} {cell.execution} {cell.cache} 1/5" in drawn, drawn
    assert "/4" in drawn, drawn


def _conclusions(samples) -> list[str]:
    text, lines = memo.render(_run(samples))
    assert all(f"- {line}" in text for line in lines)
    return lines


# ------------------------------------------------------------------ what is refused


def _refused(capsys, argv, env: dict, monkeypatch) -> str:
    for var in [v for v in os.environ if v.startswith("IMGLOAD_")]:
        monkeypatch.delenv(var)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    code = cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("imgload: error: ") and err.count("\n") == 1, err
    return err


def test_an_unknown_dataset_is_one_line_naming_the_known_ones(capsys, monkeypatch, tmp_path):
    err = _refused(capsys, ["memo", "no-such-set", "--out", tmp_path / "out"], {}, monkeypatch)
    assert "no-such-set" in err and datasets.SMALL_DEFAULT in err
    assert not (tmp_path / "out").exists()


def test_a_set_not_prepared_is_one_line_with_the_command(capsys, monkeypatch, manifests, tmp_path):
    argv = ["memo", "--data-dir", tmp_path / "empty", "--out", tmp_path / "out"]
    err = _refused(capsys, argv, {"IMGLOAD_DATASET": str(manifests["small"])}, monkeypatch)
    assert "tiny-cifar is not prepared" in err and "python -m imgload data prepare" in err
    assert list(tmp_path.iterdir()) == [], "nothing written"


@pytest.mark.parametrize(
    "extra, env, expected",
    [
        (["--repeats", "0"], {}, "--repeats 0: expected a positive number"),
        ([], {"IMGLOAD_PROFILE": "bogus"}, "IMGLOAD_PROFILE='bogus': expected one of"),
    ],
)
def test_wrong_options_are_one_line(
    capsys, monkeypatch, tiny, manifests, data_dir, tmp_path, extra, env, expected
):
    argv = ["memo", manifests["small"], "--data-dir", data_dir, "--out", tmp_path / "out", *extra]
    assert expected in _refused(capsys, argv, env, monkeypatch)
    assert not (tmp_path / "out").exists()


def test_an_unwritable_out_folder_is_refused_before_timing(
    capsys, monkeypatch, tiny, manifests, data_dir, tmp_path
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # below a regular file no folder can be made, even by root
    argv = ["memo", manifests["small"], "--data-dir", data_dir, "--out", blocker / "out"]
    err = _refused(capsys, argv, {"IMGLOAD_PROFILE": "smoke"}, monkeypatch)
    assert f"{blocker / 'out'}: cannot write the memo's table there" in err


def test_a_data_dir_on_tmpfs_is_refused_before_timing(tiny, manifests, tmp_path):
    shm = Path("/dev/shm")
    if not shm.is_dir() or not os.access(shm, os.W_OK):
        pytest.skip("no writable /dev/shm (tmpfs) on this machine")
    target = Path(tempfile.mkdtemp(prefix="imgload-memo-tmpfs-", dir=shm))
    try:
        shutil.copytree(tiny, target / tiny.name)
        done = _in_checkout(_memo_cmd(manifests["small"], target, tmp_path / "out"), 120)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert f"{target / tiny.name}: its files cannot be evicted" in done.stderr
        assert "IMGLOAD_DATA_DIR" in done.stderr
        assert not (tmp_path / "out").exists()
    finally:
        shutil.rmtree(target)


FAIL_MID_RUN = """
import sys
from imgload import cli, pagecache, suite

calls, set_cache = [], suite.set_cache

def flaky(cache, files):
    calls.append(cache)
    if len(calls) == 4:
        raise pagecache.PageCacheError("cold cache not reached: 3.0% of 16 files still cached")
    set_cache(cache, files)

suite.set_cache = flaky
sys.exit(cli.main(sys.argv[1:]))
"""


def test_a_failure_mid_run_keeps_the_last_table(tiny, manifests, data_dir, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "memo.md").write_text("the last memo\n")
    cmd = _memo_cmd(manifests["small"], data_dir, out)[3:]  # memo's arguments
    done = _in_checkout([sys.executable, "-c", FAIL_MID_RUN, *cmd], 120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        f"imgload: error: {memo.CELLS[3].label}: cold cache not reached: 3.0% of 16 files"
        " still cached"
    ), done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["memo.md"]
    assert (out / "memo.md").read_text() == "the last memo\n"
