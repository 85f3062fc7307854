import subprocess
import sys
import time

import numpy as np
import pytest

from imgload import datasets, execution

from .conftest import REPO


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


@pytest.mark.parametrize("name", execution.EXECUTIONS)
def test_every_execution_returns_every_array_in_order(tiny, name):
    files = datasets.sample_files(tiny, "png", "full")
    with execution.Runner("sequential", "pil", "png") as seq:
        expected = seq.run(files)
    with execution.Runner(name, "pil", "png", prime=datasets.priming_file(tiny, "png")) as runner:
        got = runner.run(files)
    assert len(got) == len(files) == 100
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))


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


def test_process_pool_sets_opencv_to_one_thread(tiny):
    import cv2

    with execution.Runner("processes-2", "cv2", "png") as runner:
        threads = runner._pool.submit(cv2.getNumThreads).result()
    assert threads == 1


def test_process_pools_are_reused_and_a_closed_runner_refuses_work(tiny):
    files = datasets.sample_files(tiny, "npy")
    first = execution.Runner("processes-2", "numpy", "npy")
    first.close()
    with pytest.raises(RuntimeError, match="closed"):
        first.run(files)
    with execution.Runner("processes-2", "numpy", "npy") as again:
        assert again._pool is execution._process_pools[("numpy", "npy", 2, None)]
        assert len(again.run(files)) == len(files)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_pool_workers_die_with_a_killed_parent(tiny):
    script = (
        "import time\n"
        "from imgload import execution\n"
        "if __name__ == '__main__':\n"
        "    r = execution.Runner('processes-2', 'numpy', 'npy')\n"
        "    print(*r._pool._processes, flush=True)\n"
        "    time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in workers)


def test_unknown_execution_is_rejected():
    for bad in ("threads", "threads-0", "gpu-2", "processes-x"):
        with pytest.raises(ValueError, match="unknown execution"):
            execution.parse(bad)
