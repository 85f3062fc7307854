"""The PyTorch DataLoader execution (imgload.dataloader) and its opt-in stack.

Where torch is not installed (the host .venv, CI) the DataLoader's own tests are skipped with
the reason; what needs no torch (the n/a reasons, the asv config) runs everywhere, and so does
the real asv run of asv.torch.conf.json wherever pip can install torch==2.13.0+cpu.
"""

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from imgload import dataloader, datasets, decoders, envcheck, report, suite

from .helpers import (
    REPO,
    alive,
    arrays_equal,
    asv_quick_in_venv,
    dataset_env,
    git,
    local_asv_config,
    md_tables,
    one_stack_results,
    reaped,
    sequential_arrays,
)

# pytest resets warning filters per test; imgload.dataloader silences these two for the
# benchmarks (its comments say why), and so do the tests
pytestmark = [
    pytest.mark.filterwarnings("ignore:The given NumPy array is not writable"),
    pytest.mark.filterwarnings("ignore:This DataLoader will create"),
]
TORCH_CONF = REPO / "asv.torch.conf.json"
NO_TORCH = (
    "torch is not installed in this Python: the DataLoader execution is tested only where it"
    " is (a venv with torch==2.13.0, the CPU build; README: the opt-in PyTorch stack)"
)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason=NO_TORCH)


def _decoders_of(fmt):
    """Every image decoder of the suite that reads `fmt` here (the others are n/a)."""
    out = []
    for name in decoders.ALL_IMAGE_DECODERS:
        try:
            decoders.get(name, fmt)
        except decoders.Unavailable:
            continue
        out.append(name)
    return out


# ------------------------------------------------------------------ without torch


def test_without_torch_every_call_is_na_with_the_reason(monkeypatch, tiny):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    with pytest.raises(decoders.Unavailable, match="opt-in PyTorch stack"):
        dataloader.require()
    with pytest.raises(NotImplementedError, match="make bench-torch"):
        dataloader.EpochLoad(str(tiny), "jpeg", "cv2", 2, "warm")
    with pytest.raises(NotImplementedError, match="make bench-torch"):
        dataloader.FirstBatchLoad(str(tiny), "jpeg", "cv2", 0, "cold")


def test_images_of_different_sizes_are_na():
    with pytest.raises(decoders.Unavailable, match="different sizes"):
        dataloader.batchable({"name": "folder", "shape": None, "shapes": [[3, 4, 3], [5, 6, 3]]})
    dataloader.batchable({"name": "cifar", "shape": [32, 32, 3]})


def test_batches_cover_the_files_in_order():
    assert dataloader.batches_of(7, 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert dataloader.batches_of(0, 32) == []


def test_the_epochs_are_per_image_in_the_report_and_the_first_batch_per_call(tiny, tiny_large):
    """The report divides a call by the images bench_sample records for its class (suite.LOADS):
    an epoch loads epoch_indices' images; a first batch is timed per call, and its caption names
    the batch's images, as many as the epoch has up to one batch."""
    assert suite.LOADS["SmallDataLoader"] == ("small", "epoch")
    assert suite.LOADS["LargeDataLoader"] == ("large", "epoch")
    assert suite.LOADS["SmallFirstBatch"] == ("small", "first-batch")
    assert suite.LOADS["LargeFirstBatch"] == ("large", "first-batch")
    for root in (tiny, tiny_large):
        epoch = suite.images_per_call(str(root), "epoch")
        assert suite.images_per_call(str(root), "first-batch") == min(dataloader.BATCH_SIZE, epoch)


def test_the_report_times_a_first_batch_per_batch_and_names_its_images(tmp_path):
    """Hand-made results of one stack: the first batch's table is in seconds per first batch,
    its caption names the images bench_sample recorded, and the epoch's stays per image."""
    first, epoch = (
        "bench_dataloader.SmallFirstBatch.time_first_batch",
        ("bench_dataloader.SmallDataLoader.time_epoch"),
    )
    images = "bench_sample.Sample.track_images_per_call"
    grid = [["'cv2'"], ["'jpeg'"], ["0", "2"], ["'warm'"]]
    names = ["decoder", "format", "num_workers", "cache"]
    folder = one_stack_results(
        tmp_path,
        "s",
        {
            first: (names, grid, [0.0017, 0.085]),
            epoch: (names, grid, [0.032, 0.040]),
            images: (["benchmark"], [["'SmallFirstBatch'", "'SmallDataLoader'"]], [32, 1000]),
        },
    )
    text = report.render(folder, tmp_path / "out").read_text()
    assert (
        "Seconds per first batch (median of asv's samples ± spread, marks as in the table at a"
        " glance; one call starts a fresh loader and takes its first batch of 32 images)" in text
    )
    first_rows = md_tables(text[text.index(f"### {first}") :])[0]
    assert first_rows[1][-1].startswith("1.70ms") and first_rows[2][-1].startswith("85.0ms")
    epoch_rows = md_tables(text[text.index(f"### {epoch}") :])[0]
    assert epoch_rows[1][-1].startswith("32.0μs")  # 32 ms over 1,000 images


@pytest.mark.parametrize(
    ("profile", "small", "large"),
    [
        ("default", 100, 5),  # samples of 16 and 4: under 8 batches, so every training image
        ("smoke", 16, 5),
        ("full", 100, 5),
    ],
)
def test_an_epoch_is_several_batches_where_the_sample_is_not(
    monkeypatch, tiny, tiny_large, profile, small, large
):
    monkeypatch.setenv("IMGLOAD_PROFILE", profile)
    for root, n in ((tiny, small), (tiny_large, large)):
        index = datasets.load_index(root)
        got = dataloader.epoch_indices(index)
        assert len(got) == n == suite.images_per_call(str(root), "epoch")
        assert list(got) == sorted(got) and index["count"] - 1 not in got  # the priming image


def test_a_sample_of_several_batches_is_the_epoch(monkeypatch):
    """The default small set's sample (1,000 images, 32 batches) is its epoch, as it is
    SmallImages' call."""
    monkeypatch.delenv("IMGLOAD_PROFILE", raising=False)
    index = {"train": 50000, "count": 60000, "sample": 1000}
    assert list(dataloader.epoch_indices(index)) == list(datasets.sample_indices(index))
    index["sample"] = dataloader.MIN_EPOCH_BATCHES * dataloader.BATCH_SIZE - 1
    assert len(dataloader.epoch_indices(index)) == 50000


def test_the_opt_in_stack_pins_torch_and_the_newest_stack_s_libraries():
    """One stack, named, its pins exact (envcheck's rule), pooch as in every stack, the CPU
    build of torch (a bare `torch` pulls a CUDA build of gigabytes), and numpy, Pillow and
    OpenCV at the newest default stack's versions, so its figures sit beside that stack's."""
    conf = json.loads(TORCH_CONF.read_text())
    default = json.loads((REPO / "asv.conf.json").read_text())
    [stack] = conf["include"]
    name = stack["env"]["IMGLOAD_STACK"]
    pins = envcheck.stack_pins(conf, name)
    assert pins["torch"].endswith("+cpu")
    newest = default["include"][-1]["req"]
    for lib in ("numpy", "pillow", "opencv-python-headless", "asv_runner", "pooch"):
        assert pins[lib] == newest[lib], lib
    assert envcheck.fetch_pin(conf) == envcheck.fetch_pin(default)
    assert name not in {e["env"]["IMGLOAD_STACK"] for e in default["include"]}
    # the same folders as asv.conf.json, so the report and the site show the stack beside them
    for key in ("results_dir", "html_dir", "env_dir", "benchmark_dir", "repo", "pythons"):
        assert conf[key] == default[key], key
    assert conf["install_command"] == [
        "in-dir={conf_dir} python -m imgload.envcheck asv.torch.conf.json"
    ]


# ------------------------------------------------------------------ the loader itself


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("fmt", ["jpeg", "png"])
@pytest.mark.parametrize("size", ["small", "large"])
def test_every_image_in_file_order_equal_to_the_sequential_decode(
    torch, tiny, tiny_large, size, fmt, workers
):
    """Every decoder of the suite that reads the format here, through one loader each, in
    batches that do not divide the files (the last one is shorter)."""
    root = tiny if size == "small" else tiny_large
    files = datasets.sample_files(root, fmt, "full")
    batch = 32 if size == "small" else 2  # 100 small files: 4 batches; 5 large: 3
    names = _decoders_of(fmt)
    assert {"cv2", "pil"} <= set(names)
    for name in names:
        expected = sequential_arrays(name, fmt, files)
        with dataloader.Loader(
            files, name, fmt, workers, prime=datasets.priming_file(root, fmt), batch_size=batch
        ) as loader:
            batches = loader.run()
            assert [len(b) for b in batches] == [
                len(b) for b in dataloader.batches_of(len(files), batch)
            ], name
            for b in batches:
                assert b.dtype == np.uint8 and b.ndim == 4 and b.shape[3] == 3, name
            assert arrays_equal(dataloader.images(batches), expected), name
            # a persistent loader serves the next epoch the same
            assert arrays_equal(dataloader.images(loader.run()), expected), name


def test_four_workers_and_the_batches_come_from_shared_memory(torch, tiny):
    files = datasets.sample_files(tiny, "jpeg", "full")
    expected = sequential_arrays("cv2", "jpeg", files)
    with dataloader.Loader(
        files, "cv2", "jpeg", 4, prime=datasets.priming_file(tiny, "jpeg")
    ) as loader:
        batches = loader.run()
        assert arrays_equal(dataloader.images(batches), expected)
        # each batch is a view of the tensor the worker collated into shared memory: no copy
        assert all(isinstance(b.base, torch.Tensor) and b.base.is_shared() for b in batches)
        assert len(loader.loader._iterator._workers) == 4


def test_workers_are_started_and_primed_before_the_first_epoch(torch, tiny):
    files = datasets.sample_files(tiny, "png")
    with dataloader.Loader(
        files, "pil", "png", 2, prime=datasets.priming_file(tiny, "png")
    ) as loader:
        workers = loader.loader._iterator._workers
        assert len(workers) == 2 and all(w.is_alive() for w in workers)
        pids = [w.pid for w in workers]
        loader.run()
        assert [w.pid for w in loader.loader._iterator._workers] == pids  # persistent
    time.sleep(0.1)
    assert not any(alive(p) for p in pids)


@pytest.mark.parametrize("workers", [0, 2])
def test_the_first_batch_of_a_fresh_loader(torch, tiny_large, workers):
    index = datasets.load_index(tiny_large)
    files = datasets.file_paths(tiny_large, index, "jpeg", dataloader.epoch_indices(index))
    expected = sequential_arrays("cv2", "jpeg", files)
    load = dataloader.FirstBatchLoad(str(tiny_large), "jpeg", "cv2", workers, "cold")
    try:
        for _ in range(2):  # asv's samples: a new loader each call, closed by teardown
            first = load()
            assert arrays_equal(list(first), expected[: dataloader.BATCH_SIZE])
            load.close()
    finally:
        load.close()


def test_the_epoch_call_loads_the_epoch_s_images(torch, tiny):
    load = dataloader.EpochLoad(str(tiny), "jpeg", "pil", 2, "cold")
    try:
        got = dataloader.images(load())
    finally:
        load.close()
    index = datasets.load_index(tiny)
    files = datasets.file_paths(tiny, index, "jpeg", dataloader.epoch_indices(index))
    assert len(got) == suite.images_per_call(str(tiny), "epoch") == len(files)
    assert arrays_equal(got, sequential_arrays("pil", "jpeg", files))


# ------------------------------------------------------------------ nothing left behind

# A benchmark process as asv runs one: a loader with workers, two epochs, then as told: close
# (asv's teardown) and os._exit (asv's way out, which runs no finalizer) or a normal return;
# or 'wait': keep loading until it is killed. It reports its workers, the fork server and the
# resource tracker.
_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from multiprocessing import forkserver, resource_tracker
    from imgload import dataloader, datasets
    if __name__ == "__main__":
        root, how = sys.argv[1], sys.argv[2]
        files = datasets.sample_files(root, "jpeg", "full")
        loader = dataloader.Loader(files, "cv2", "jpeg", 2, prime=datasets.priming_file(root, "jpeg"))
        loader.run()
        loader.run()
        pids = [w.pid for w in loader.loader._iterator._workers]
        pids += [forkserver._forkserver._forkserver_pid, resource_tracker._resource_tracker._pid]
        print(json.dumps(pids), flush=True)
        while how == "wait":
            loader.run()
        loader.close()
        if how == "_exit":
            os._exit(0)
""")  # noqa: E501 (the script's text stays as it is)


def _shm() -> set[str]:
    """What multiprocessing (sem.*) and torch (torch_*) name in /dev/shm."""
    return {n for n in os.listdir("/dev/shm") if n.startswith(("torch_", "sem.", "psm_"))}


def _all_gone(pids, seconds=15) -> list[int]:
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def _start(root, how):
    return subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(root), how],
        cwd=REPO,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.parametrize(("how", "runs"), [("exit", 1), ("_exit", 3)])
def test_nothing_leaked_after_a_run(torch, tiny_large, how, runs):
    """`_exit` three times: a semaphore that outlived close() (a queue's feeder thread still
    holding it) was reported in about every other run before close() joined the feeders."""
    before = _shm()
    for _ in range(runs):
        proc = _start(tiny_large, how)
        out, err = proc.communicate(timeout=120)  # EOF: every process sharing its pipes is gone
        assert proc.returncode == 0, err
        assert "leaked" not in err and "resource_tracker" not in err and "Warning" not in err, err
        assert not _all_gone(json.loads(out))
    assert not _shm() - before


def test_a_killed_run_leaves_no_process_and_nothing_in_dev_shm(torch, tiny_large):
    """SIGKILL mid-epoch: the workers see the process go (dataloader._exit_with), so the fork
    server and the resource tracker end too, and the tracker unlinks the loader's semaphores
    (saying so: a killed process cannot close its loader)."""
    before = _shm()
    with reaped([]) as procs:
        proc = _start(tiny_large, "wait")
        procs.append(proc)
        pids = json.loads(proc.stdout.readline() or "null")
        assert pids, proc.communicate(timeout=60)[1]
        time.sleep(0.5)
        proc.kill()
        proc.communicate(timeout=60)
    assert not _all_gone(pids), "a worker, the fork server or the tracker outlived the kill"
    assert not _shm() - before


# ------------------------------------------------------------------ the benchmarks under asv

# the benchmarks a real run measures in a Python with torch: both kinds, both dataset sizes,
# with and without workers, cold and warm (the whole grid would take minutes)
_SOME = (
    r"bench_dataloader\.(SmallDataLoader\.time_epoch\('cv2', 'jpeg', (0|2), 'cold'\)"
    r"|LargeDataLoader\.time_epoch\('pil', 'png', 2, 'warm'\)"
    r"|LargeFirstBatch\.time_first_batch\('cv2', 'jpeg', (0|4), 'cold'\))"
)


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.asv
def test_asv_runs_the_dataloader_benchmarks_in_this_python(tmp_path, manifests):
    """A real `asv run --quick` in the Python running the tests: with torch, a few combinations
    of each class measured; without it, every combination of every class n/a (asv records
    NaN), which is what the stacks of asv.conf.json show."""
    torch_here = _has_torch()
    rows = asv_quick_in_venv(
        tmp_path, manifests, "imgload-dataloader", _SOME if torch_here else r"^bench_dataloader\."
    )
    if not torch_here:
        assert set(rows) == {
            f"bench_dataloader.{c}"
            for c in (
                "SmallDataLoader.time_epoch",
                "LargeDataLoader.time_epoch",
                "SmallFirstBatch.time_first_batch",
                "LargeFirstBatch.time_first_batch",
            )
        }
        for name, row in rows.items():
            assert row["result"] and all(math.isnan(v) for v in row["result"]), name
        return
    measured = [
        (name, combo)
        for name, row in rows.items()
        for combo, value in zip(itertools.product(*row["params"]), row["result"])
        if value is not None and not math.isnan(value) and value > 0
    ]
    assert len(measured) == 5, rows


def _torch_installable() -> str | None:
    """Why pip cannot install the opt-in stack's torch here (None: it can)."""
    pin = json.loads(TORCH_CONF.read_text())["include"][0]["req"]["torch"]
    try:
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--no-deps",
                "--ignore-installed",
                "--quiet",
                f"torch=={pin}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        return f"pip took over 2 minutes to find torch=={pin}"
    if out.returncode:
        return f"pip cannot install torch=={pin} here: {out.stderr.strip().splitlines()[-1:]}"
    return None


@pytest.mark.asv
def test_the_opt_in_stack_builds_verifies_and_measures(tmp_path, manifests, tiny, tiny_large):
    """asv.torch.conf.json for real: asv builds its environment (torch's CPU build from the
    package index), envcheck verifies the pins, and an epoch and a first batch are measured
    with workers. Skipped where pip cannot install that torch (no CPU wheel reachable)."""
    reason = _torch_installable()
    if reason:
        pytest.skip(reason)
    config = local_asv_config(tmp_path, TORCH_CONF.name, branches=["HEAD"])
    (tmp_path / "imgload").symlink_to(REPO / "imgload")
    # the tiny sets as the fixtures prepared them: the stack has no container writers (lmdb,
    # h5py, pyarrow), so its setup_cache must find them complete, as `make data` leaves them
    env = dataset_env(manifests, tiny.parent)
    asv = [sys.executable, "-m", "asv"]
    machine = ["--machine", "imgload-torch", "--config", str(config)]
    subprocess.run([*asv, "machine", "--yes", *machine], env=env, check=True, capture_output=True)
    bench = (
        r"bench_dataloader\.(SmallDataLoader\.time_epoch\('cv2', 'jpeg', 2, 'warm'\)"
        r"|LargeFirstBatch\.time_first_batch\('pil', 'jpeg', 2, 'cold'\))"
    )
    out = subprocess.run(
        [*asv, "run", "--quick", "--show-stderr", *machine, "-b", bench, "HEAD^!"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "leaked" not in out.stdout + out.stderr
    [results] = [
        p
        for p in (tmp_path / "results" / "imgload-torch").glob("*.json")
        if p.name != "machine.json"
    ]
    data = json.loads(results.read_text())
    assert data["commit_hash"] == git(REPO, "rev-parse", "HEAD")
    rows = {n: dict(zip(data["result_columns"], r)) for n, r in data["results"].items()}
    values = [v for row in rows.values() for v in row["result"] if v is not None]
    assert len([v for v in values if not math.isnan(v) and v > 0]) == 2, rows
    [record] = (tmp_path / "envinfo").glob("*.json")
    record = json.loads(record.read_text())
    stack = json.loads(TORCH_CONF.read_text())["include"][0]
    assert record["stack"] == stack["env"]["IMGLOAD_STACK"]
    assert record["pins"] == stack["req"] == record["installed"]
