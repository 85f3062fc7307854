import numpy as np
import pytest

from imgload import datasets, execution


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


def test_unknown_execution_is_rejected():
    for bad in ("threads", "threads-0", "gpu-2", "processes-x"):
        with pytest.raises(ValueError, match="unknown execution"):
            execution.parse(bad)
