"""setup_cache under asv: a plain `asv run` fetches, verifies and prepares a remote dataset inside
a real stack (same code as `make data`), downloads it once for concurrent environments, fails with
one line on a wrong hash; and a machine without the stacks' Python is told so in one line."""

import dataclasses
import json
import math
import os
import stat
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

from imgload import envcheck, ladder, suite

from .helpers import (
    REPO,
    Lines,
    asv_config,
    cifar_tree,
    gated,
    reaped,
    remote_manifest,
    serve,
    tar_gz,
)

ASV = [sys.executable, "-m", "asv"]
MACHINE = "imgload-fetch"
CONF = json.loads((REPO / "asv.conf.json").read_text())
ARCHIVE = "cifar-10-python.tar.gz"
# one combination of two classes that read the small set (one setup_cache, inherited from
# benchmarks/common) plus the per-call counts (bench_sample's own): two setup_caches in the stack,
# of which only the first may fetch
SELECTION = [
    r"SmallImages.time_decode\('pil', 'png', 'sequential', 'warm'\)",
    r"CifarBatch.time_load\('pickle', 'warm'\)",
    r"^bench_sample",
]
ONE = [r"SmallImages.time_decode\('pil', 'png', 'sequential', 'warm'\)"]


# ------------------------------------------------------------------ without asv environments


def test_asv_stops_a_command_only_after_its_timeout_without_output():
    """What SETUP_CACHE_TIMEOUT relies on: asv (util.check_output, which runs every setup_cache)
    times out a process that says nothing for `timeout` seconds, not one that runs longer while it
    speaks. An asv that changed this would cut long downloads short: this test would say so."""
    from asv.util import TIMEOUT_RETCODE, check_output

    def run(code: str) -> int:
        _, _, errcode = check_output(
            [sys.executable, "-c", code],
            timeout=1.0,
            dots=False,
            display_error=False,
            return_stderr=True,
            valid_return_codes=None,
            redirect_stderr=True,
        )
        return errcode

    speaking = (
        "import sys, time\nfor _ in range(8):\n"
        "    print('.', file=sys.stderr, flush=True); time.sleep(0.3)"
    )
    assert run(speaking) == 0, "2.4 s in all, never 1 s silent: not stopped"
    assert run("import time; time.sleep(2)") == TIMEOUT_RETCODE


def test_setup_cache_prepare_stops_with_the_reason_in_one_line(tmp_path):
    """setup_cache's process ends with the one-line reason, which asv prints, and no traceback."""
    with pytest.raises(SystemExit) as e:
        suite.prepare(str(tmp_path / "no-such-set.toml"))
    assert str(e.value.code).startswith(
        f"imgload: no dataset manifest {tmp_path / 'no-such-set.toml'} (known datasets: "
    )
    assert "\n" not in str(e.value.code)


def test_ladder_rungs_install_the_fetch_beside_their_own_pins():
    """A rung installs with --no-deps: pooch as the stacks pin it,
    and all it imports as .venv has it."""
    conf = ladder.asv_config(ladder.load("pillow"), Path("/ladder/repo"), CONF)
    install = conf["install_command"][0].split()
    fetch = install[install.index("--no-deps") + 1 : -2]
    assert fetch[0] == f"pooch=={envcheck.fetch_pin(CONF)}" and install[-2] == "-r"
    assert [pin.split("==")[0] for pin in fetch[1:]] == list(envcheck.FETCH_DEPENDENCIES)
    assert all(
        metadata.version(name) == version for name, version in (pin.split("==") for pin in fetch)
    ), ".venv's versions"


def test_a_find_links_ladder_installs_from_its_folder_alone():
    """Its folder holds its own wheels, not pooch's: its rungs read sets prepared first."""
    own = dataclasses.replace(ladder.load("pillow"), find_links=Path("/wheels"))
    install = ladder.asv_config(own, Path("/ladder/repo"), CONF)["install_command"][0].split()
    assert install[install.index("--no-deps") + 1 :] == [
        "--no-index",
        "--find-links",
        "/wheels",
        "-r",
        "{build_dir}/requirements.txt",
    ]


def _fake_python(tmp_path, version: str) -> Path:
    """An 'interpreter' that answers any question with `version`."""
    path = tmp_path / "bin" / "python3.11"
    path.parent.mkdir()
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize("goal", ["bench", "test", "bench-torch", "ladder", "find"])
@pytest.mark.parametrize("python", ["missing", "3.12"])
def test_make_without_the_stacks_python_says_so_in_one_line_and_builds_nothing(
    tmp_path, goal, python
):
    interpreter = (
        tmp_path / "nowhere" / "python3.11"
        if python == "missing"
        else _fake_python(tmp_path, python)
    )
    work = tmp_path / "work"  # make's folder: everything it would build lands here, relative to it
    work.mkdir()
    # not the variables of a `make test` this runs under
    # (its VENV or PYTHON would be this make's too)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    }
    out = subprocess.run(
        ["make", "-f", str(REPO / "Makefile"), goal, f"PYTHON={interpreter}"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and out.stdout == ""
    assert out.stderr.count("\n") == 1, out.stderr
    what = f"{interpreter} not found" if python == "missing" else f"{interpreter} is Python 3.12"
    assert (
        what in out.stderr
        and "CPython 3.11" in out.stderr
        and f"make {goal} PYTHON=/path/to/python3.11" in out.stderr
    )
    assert list(work.iterdir()) == []


# ------------------------------------------------------------------ a real stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """The oldest stack (NumPy 1.26, Pillow 10.1: the furthest from .venv) as a real virtualenv,
    built once for this module by `asv setup`, which prepares nothing."""
    tmp = tmp_path_factory.mktemp("asv-fetch")
    config = asv_config(tmp, [CONF["include"][0]])
    subprocess.run(
        [*ASV, "machine", "--yes", "--machine", MACHINE, "--config", str(config)],
        check=True,
        capture_output=True,
    )
    # asv 0.6.6's `setup` exits 1 after a success too (it returns the environments):
    # judge by what it built
    out = subprocess.run(
        [*ASV, "setup", "--config", str(config)], capture_output=True, text=True, timeout=900
    )
    pythons = list((tmp / "env").glob("*/bin/python"))
    built = (
        len(pythons) == 1
        and subprocess.run([pythons[0], "-c", "import numpy, pooch"]).returncode == 0
    )
    assert built, out.stdout[-3000:] + out.stderr[-3000:]
    return SimpleNamespace(tmp=tmp, config=config)


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """A tiny archive in the official CIFAR-10 layout (25 training images in 5 batches, 5 test)
    and its md5."""
    d = tmp_path_factory.mktemp("remote")
    cifar_tree(d / "src")
    return SimpleNamespace(md5=tar_gz(d / "src", d / ARCHIVE), path=d / ARCHIVE)


def _env(small: Path, large: Path, data: Path) -> dict:
    env = dict(
        os.environ,
        IMGLOAD_DATASET=str(small),
        IMGLOAD_LARGE_DATASET=str(large),
        IMGLOAD_DATA_DIR=str(data),
    )
    for name in ("IMGLOAD_MIRROR", "IMGLOAD_PROFILE"):
        env.pop(name, None)
    return env


def _asv_run(config: Path, selection: list[str], *extra: str) -> list[str]:
    return [
        *ASV,
        "run",
        "--quick",
        "--show-stderr",
        "--machine",
        MACHINE,
        "--config",
        str(config),
        *[arg for regex in selection for arg in ("-b", regex)],
        *extra,
    ]


def _results(results_dir: Path) -> dict:
    files = [p for p in (results_dir / MACHINE).glob("*.json") if p.name != "machine.json"]
    assert len(files) == 1, files
    data = json.loads(files[0].read_text())
    return {name: dict(zip(data["result_columns"], row)) for name, row in data["results"].items()}


def _measured(row: dict) -> list[float]:
    return [v for v in row["result"] if v is not None and not math.isnan(v)]


@pytest.mark.asv
def test_plain_asv_run_fetches_the_remote_set_once_inside_the_stack(
    stack, remote, manifests, tmp_path
):
    data = tmp_path / "data"
    with serve(remote.path.read_bytes(), ARCHIVE) as server:
        env = _env(remote_manifest(tmp_path, server.url, remote.md5), manifests["large"], data)
        out = subprocess.run(
            [*_asv_run(stack.config, SELECTION, "--verbose"), "HEAD^!"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert out.returncode == 0, out.stdout[-5000:] + out.stderr[-3000:]
    assert server.requests == 1, "two setup_caches in the stack, one download"
    results = _results(stack.tmp / "results")
    assert _measured(results["bench_decode.SmallImages.time_decode"]) and _measured(
        results["bench_pickle.CifarBatch.time_load"]
    )
    counts = dict(
        zip(
            results["bench_sample.Sample.track_images_per_call"]["params"][0],
            results["bench_sample.Sample.track_images_per_call"]["result"],
        )
    )
    assert counts["'SmallImages'"] == 8 and counts["'CifarBatch'"] == 5, (
        "the served set's sample and batch were measured"
    )
    assert (
        f"imgload: fetching {ARCHIVE}" in out.stdout and f"imgload: {ARCHIVE}: " in out.stdout
    ), "asv -v shows the fetch"
    assert (data / "remote-cifar" / "COMPLETE").is_file() and (
        data / "downloads" / ARCHIVE
    ).is_file()


@pytest.mark.asv
def test_a_wrong_hash_fails_setup_cache_with_the_reason_in_one_line(
    stack, remote, manifests, tmp_path
):
    data = tmp_path / "data"
    wrong = "0" * 32
    with serve(remote.path.read_bytes(), ARCHIVE) as server:
        env = _env(remote_manifest(tmp_path, server.url, wrong), manifests["large"], data)
        out = subprocess.run(
            [*_asv_run(stack.config, ONE, "--dry-run"), "HEAD^!"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    lines = out.stdout.splitlines()
    reason = [
        line
        for line in lines
        if line.strip().startswith(f"imgload: {server.url}: MD5 hash of downloaded file")
    ]
    assert len(reason) == 1, out.stdout[-5000:]
    assert f"expected md5:{wrong} but got {remote.md5}" in reason[0]
    after = [line.strip() for line in lines[lines.index(reason[0]) + 1 :] if line.strip()]
    assert after[0] == "asv: setup_cache failed (exit status 1)", (
        "the reason is the last thing setup_cache said"
    )
    assert "Traceback" not in out.stdout
    assert not (data / "remote-cifar").exists()
    assert not (data / "downloads").exists() or list((data / "downloads").iterdir()) == [], (
        "nothing is kept"
    )


@pytest.mark.asv
def test_concurrent_setup_caches_of_two_environments_download_once(
    stack, remote, manifests, tmp_path
):
    """Two asv runs at once, the stack's virtualenv and .venv's own Python (-E existing), one data
    dir: the second environment's setup_cache waits for the first one's download, says so in asv's
    output, and then finds the set prepared."""
    data, second = tmp_path / "data", tmp_path / "second"
    second.mkdir()
    waiting = "imgload: waiting for another process preparing remote-cifar"
    with gated(remote.path.read_bytes(), ARCHIVE) as server:
        env = _env(remote_manifest(tmp_path, server.url, remote.md5), manifests["large"], data)
        with reaped(
            [
                subprocess.Popen(
                    [*_asv_run(stack.config, ONE, "--dry-run"), "HEAD^!"],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            ]
        ) as runs:
            outs = [Lines(runs[0].stdout)]
            assert (
                _wait_until(lambda: server.requests or runs[0].poll() is not None, 300)
                and server.requests == 1
            ), outs[0].text()[-5000:]
            runs.append(
                subprocess.Popen(
                    _asv_run(
                        asv_config(second, [CONF["include"][0]]),
                        ONE,
                        "--dry-run",
                        "--verbose",
                        "-E",
                        f"existing:{sys.executable}",
                    ),
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
            )
            outs.append(Lines(runs[1].stdout))
            assert _wait_until(
                lambda: outs[1].has(waiting) or runs[1].poll() is not None, 300
            ) and outs[1].has(waiting), outs[1].text()[-5000:]
            server.gate.set()
            assert [run.wait(timeout=300) for run in runs] == [0, 0], (
                outs[0].text()[-3000:] + outs[1].text()[-3000:]
            )
    assert server.requests == 1
    assert (data / "remote-cifar" / "COMPLETE").is_file()


def _wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
