import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from imgload import cli, datasets, decoders, execution, process_pools

from .helpers import REPO, alive, reaped

# every execution any benchmark class times, each once
ALL_EXECUTIONS = list(
    dict.fromkeys(execution.EXECUTIONS + execution.THREAD_PATTERNS + execution.TRANSFERS)
)


@pytest.fixture(autouse=True, scope="module")
def _stop_process_pools():
    yield
    execution.shutdown_process_pools()


def test_chunked_covers_everything_in_order():
    items = list(range(103))
    for n in (1, 2, 8, 16, 103, 500):
        chunks = execution.chunked(items, n)
        assert [x for c in chunks for x in c] == items
        assert len(chunks) == min(n, 103) and all(chunks)
        assert max(map(len, chunks)) - min(map(len, chunks)) <= 1
    assert execution.chunked([], 4) == [[]]


def _check_every_execution(root, loader, fmt):
    """Every execution returns every array of the set, in file order, equal to sequential's."""
    try:
        decoders.get(loader, fmt)
    except decoders.Unavailable as e:
        pytest.skip(str(e))
    files = datasets.sample_files(root, fmt, "full")
    with execution.Runner("sequential", loader, fmt) as seq:
        expected = seq.run(files)
    try:
        for name in ALL_EXECUTIONS:
            with execution.Runner(
                name, loader, fmt, prime=datasets.priming_file(root, fmt)
            ) as runner:
                got = runner.run(files)
            assert len(got) == len(files), name
            bad = [
                i
                for i, (a, b) in enumerate(zip(got, expected))
                if a.shape != b.shape or not np.array_equal(a, b)
            ]
            assert not bad, f"{name}: arrays {bad[:5]} differ from sequential's"
    finally:
        execution.shutdown_process_pools()  # a pool per decoder would otherwise pile up


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
@pytest.mark.parametrize("decoder", decoders.IMAGE_DECODERS)
def test_every_execution_returns_every_small_image_in_order(tiny, decoder, fmt):
    _check_every_execution(tiny, decoder, fmt)


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
@pytest.mark.parametrize("decoder", decoders.IMAGE_DECODERS)
def test_every_execution_returns_every_large_image_in_order(tiny_large, decoder, fmt):
    _check_every_execution(tiny_large, decoder, fmt)


@pytest.mark.parametrize(
    "loader,fmt", [("pickle", "pickle-p2"), ("numpy", "pickle-p5"), ("numpy", "npy")]
)
def test_every_execution_returns_every_array_file_in_order(tiny, loader, fmt):
    _check_every_execution(tiny, loader, fmt)


def test_pools_receive_a_few_chunks_per_worker_not_a_future_per_file(tiny, monkeypatch):
    calls = []
    real = execution._load_chunk

    def counting(load, files):
        calls.append(len(files))
        return real(load, files)

    monkeypatch.setattr(execution, "_load_chunk", counting)
    files = datasets.sample_files(tiny, "npy", "full")
    with execution.Runner("threads-2", "numpy", "npy") as runner:
        assert len(runner.run(files)) == 100
    assert len(calls) == 2 * execution.CHUNKS_PER_WORKER and sum(calls) == 100


def test_queue_of_paths_hands_files_one_at_a_time_to_every_thread(tiny, monkeypatch):
    real = decoders.get("numpy", "npy")
    seen: list[tuple[int, str]] = []

    def slow(path):  # long enough that one thread cannot drain the queue alone
        seen.append((threading.get_ident(), path))
        time.sleep(0.002)
        return real(path)

    monkeypatch.setattr(decoders, "get", lambda name, fmt: slow)
    files = datasets.sample_files(tiny, "npy", "full")
    with execution.Runner("queue-3", "numpy", "npy") as runner:
        got = runner.run(files)
    assert len({ident for ident, _ in seen}) == 3
    assert sorted(path for _, path in seen) == sorted(files)  # each file once: one item per path
    assert all(np.array_equal(a, real(f)) for a, f in zip(got, files))


@pytest.mark.parametrize("name", ["queue-3", "threads-3", "processes-2", "processes-2-pickle"])
def test_a_failed_load_is_raised_and_the_runner_keeps_working(tiny, tmp_path, name):
    files = datasets.sample_files(tiny, "npy")
    broken = tmp_path / "broken.npy"
    broken.write_bytes(b"not an array")
    with execution.Runner(
        name, "numpy", "npy", prime=datasets.priming_file(tiny, "npy")
    ) as runner:
        with pytest.raises(ValueError):
            runner.run(files[:3] + [str(broken)] + files[3:])
        assert len(runner.run(files)) == len(files)


def test_process_pool_sets_opencv_to_one_thread(tiny):
    import cv2

    with execution.Runner("processes-2", "cv2", "png") as runner:
        threads = runner._pool.workers.call_each(cv2.getNumThreads)
    assert threads == [1, 1]


def test_process_workers_have_primed_their_decoder_before_the_runner_exists(tiny):
    prime = datasets.priming_file(tiny, "jpeg")
    with execution.Runner("processes-2", "pil", "jpeg", prime=prime) as runner:
        # the pool's first slot is the size of the array its workers decoded from the priming file
        assert runner._pool.slot >= decoders.get("pil", "jpeg")(prime).nbytes > 0
        assert "PIL.Image" in runner._pool.workers.call_each(_imported)[0]


def _imported():
    return sorted(sys.modules)


def test_process_pools_are_reused_and_a_closed_runner_refuses_work(tiny):
    files = datasets.sample_files(tiny, "npy")
    first = execution.Runner("processes-2", "numpy", "npy")
    first.close()
    with pytest.raises(RuntimeError, match="closed"):
        first.run(files)
    with execution.Runner("processes-2-pickle", "numpy", "npy") as again:
        assert again._pool is process_pools._pools[("numpy", "npy", 2, None)]
        assert len(again.run(files)) == len(files)


def test_pool_workers_die_with_a_killed_parent(tiny):
    script = (
        "import time\n"
        "from imgload import execution\n"
        "if __name__ == '__main__':\n"
        "    r = execution.Runner('processes-2', 'numpy', 'npy')\n"
        "    print(*r._pool.workers.pids, flush=True)\n"
        "    time.sleep(60)\n"
    )
    with reaped([]) as procs:
        parent = subprocess.Popen(
            [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
        )
        procs.append(parent)
        workers = [int(p) for p in parent.stdout.readline().split()]
        assert len(workers) == 2 and all(alive(p) for p in workers)
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(p) for p in workers)


def test_execution_names():
    assert execution.parse("sequential") == ("sequential", 1)
    assert execution.parse("threads-4") == ("threads", 4)
    assert execution.parse("queue-3") == (
        "threads",
        3,
    )  # the report and plots group by what does the work
    assert execution.parse("processes-2-pickle") == ("processes", 2)
    assert execution.describe("queue-3").form == "queue"
    assert execution.describe("processes-2").form == "shared"
    assert execution.describe("processes-2-pickle").form == "pickle"
    for bad in (
        "threads",
        "threads-0",
        "gpu-2",
        "processes-x",
        "queue-2-pickle",
        "threads-2-pickle",
        "processes-2-x",
    ):
        with pytest.raises(ValueError, match="unknown execution"):
            execution.parse(bad)


# -- the grid's executions: IMGLOAD_GRID -----------------------------------------------------


def _executions_under(grid: str | None) -> list[str]:
    """EXECUTIONS as a fresh interpreter (asv's discovery) reads it under IMGLOAD_GRID."""
    env = {k: v for k, v in os.environ.items() if k != "IMGLOAD_GRID"}
    if grid is not None:
        env["IMGLOAD_GRID"] = grid
    code = "from imgload import execution; print(','.join(execution.EXECUTIONS))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(",")


def test_threads_4_is_in_the_wide_grid_only():
    assert _executions_under(None) == ["sequential", "threads-2", "processes-2"]
    assert _executions_under("default") == _executions_under(None)
    assert _executions_under("wide") == ["sequential", "threads-2", "threads-4", "processes-2"]


def test_a_wrong_grid_stops_make_data_with_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("IMGLOAD_GRID", "huge")
    code = cli.main(["data", "prepare", "synthetic-large", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "imgload: error: IMGLOAD_GRID='huge': expected one of default, wide\n"
    assert list(tmp_path.iterdir()) == [], "stopped before anything was prepared"
