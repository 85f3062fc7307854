"""processes-N hands arrays back through shared memory: views, leases, sizes,
and nothing left behind."""

import gc
import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from imgload import datasets, execution, shared_arrays

from .helpers import REPO, alive, arrays_equal, reaped, sequential_arrays


@pytest.fixture
def fresh_pools():
    """Pools started by this test only:
    the slot and spill counts below depend on a pool's history."""
    execution.shutdown_process_pools()
    yield
    execution.shutdown_process_pools()


# ------------------------------------------------------------------ the arena alone


def test_a_lease_is_reused_once_its_arrays_are_gone_and_never_while_one_lives():
    arena = shared_arrays.Arena()
    try:
        first = arena.lease(1000)
        a = first.array(first.start, (10, 10), "|u1")
        a[:] = 7
        del first
        second = arena.lease(1000)  # `a` still uses the first region: a different one
        assert second.start >= 1000 and arena.leased == 2000
        second.array(second.start, (1000,), "|u1")[:] = 9
        assert (a == 7).all()
        del a
        gc.collect()
        assert arena.leased == 1000
        del second
        third = arena.lease(500)
        assert third.start == 0  # the first region is free again
    finally:
        arena.close()


def test_the_arena_grows_for_a_lease_larger_than_it_is():
    arena = shared_arrays.Arena()
    try:
        arena.reserve(4096)
        assert arena.capacity == 4096
        big = arena.lease(3 * 4096 + 1)
        assert arena.capacity >= 3 * 4096 + 1
        big.array(big.start, (3 * 4096 + 1,), "|u1")[:] = 1  # every byte is mapped
    finally:
        arena.close()


def test_the_arena_travels_only_with_a_spawned_process():
    arena = shared_arrays.Arena()
    try:
        with pytest.raises(RuntimeError):
            pickle.dumps(arena)
    finally:
        arena.close()


# ------------------------------------------------------------------ through the workers


def test_processes_return_views_of_one_shared_region_and_pickle_nothing(tiny_large, fresh_pools):
    files = datasets.sample_files(tiny_large, "jpeg", "full")
    expected = sequential_arrays("cv2", "jpeg", files)
    with execution.Runner(
        "processes-2", "cv2", "jpeg", prime=datasets.priming_file(tiny_large, "jpeg")
    ) as runner:
        pool = runner._pool
        got = runner.run(files)
        assert arrays_equal(got, expected)
        assert pool.spilled == 0
        blocks = {id(a.base) for a in got}
        assert len(blocks) == 1 and isinstance(got[0].base, np.ndarray)  # one lease holds them all
        assert pool.arena.leased > 0
        del got
        gc.collect()
        assert pool.arena.leased == 0


def test_results_kept_by_the_caller_survive_later_calls(tiny, fresh_pools):
    files = datasets.sample_files(tiny, "png", "full")
    expected = sequential_arrays("pil", "png", files)
    with execution.Runner(
        "processes-2", "pil", "png", prime=datasets.priming_file(tiny, "png")
    ) as runner:
        kept = runner.run(files)
        for _ in range(3):  # each call needs a region of its own while `kept` lives
            again = runner.run(files[::-1])
            assert arrays_equal(again, expected[::-1])
        assert arrays_equal(kept, expected)
    # workers gone, arena's descriptor closed: the views stay valid
    execution.shutdown_process_pools()
    assert arrays_equal(kept, expected)


def test_images_of_different_sizes_in_one_call(tiny, tiny_large, fresh_pools):
    """Slots are sized by the priming file (32x32 here): larger arrays go back pickled once,
    then the slot has grown and they fit."""
    small = datasets.sample_files(tiny, "png", "full")[:20]
    large = datasets.sample_files(tiny_large, "png", "full")
    files = [f for pair in zip(small, large) for f in pair] + small[
        len(large) :
    ]  # mixed, the large ones spread
    expected = sequential_arrays("cv2", "png", files)
    with execution.Runner(
        "processes-2", "cv2", "png", prime=datasets.priming_file(tiny, "png")
    ) as runner:
        pool = runner._pool
        assert pool.slot == shared_arrays.aligned(32 * 32 * 3)
        assert arrays_equal(runner.run(files), expected)
        assert pool.spilled > 0
        spilled = pool.spilled
        assert pool.slot == shared_arrays.aligned(75 * 100 * 3)
        assert arrays_equal(runner.run(files), expected)
        assert pool.spilled == spilled


def test_without_a_priming_file_the_first_call_learns_the_size(tiny, fresh_pools):
    files = datasets.sample_files(tiny, "jpeg", "full")
    expected = sequential_arrays("cv2", "jpeg", files)
    with execution.Runner("processes-2", "cv2", "jpeg") as runner:
        assert runner._pool.slot == 0
        assert arrays_equal(runner.run(files), expected)
        assert runner._pool.slot == shared_arrays.aligned(32 * 32 * 3)
        got = runner.run(files)
        assert arrays_equal(got, expected) and isinstance(got[0].base, np.ndarray)


def test_a_killed_worker_is_reported_and_the_next_runner_gets_a_new_pool(tiny, fresh_pools):
    files = datasets.sample_files(tiny, "npy")
    prime = datasets.priming_file(tiny, "npy")
    with execution.Runner("processes-2", "numpy", "npy", prime=prime) as runner:
        os.kill(runner._pool.workers.pids[0], signal.SIGKILL)
        with pytest.raises(RuntimeError, match="died|closed"):
            runner.run(files)
    with execution.Runner("processes-2", "numpy", "npy", prime=prime) as runner:
        assert len(runner.run(files)) == len(files)


# ------------------------------------------------------------------ nothing left behind

# A benchmark process: starts the shared-memory pool and loads once, reports its pids, then ends
# as told (once a line arrives on stdin): 'exit' returns normally, '_exit' ends with os._exit as
# asv's forkserver children do, 'wait' keeps loading until it is killed.
_SCRIPT = textwrap.dedent("""
    import json, os, sys
    from imgload import datasets, execution
    if __name__ == "__main__":
        root, how = sys.argv[1], sys.argv[2]
        files = datasets.sample_files(root, "jpeg", "full")
        runner = execution.Runner("processes-2", "cv2", "jpeg", prime=datasets.priming_file(root, "jpeg"))
        runner.run(files)
        print(json.dumps({"parent": os.getpid(), "workers": runner._pool.workers.pids}), flush=True)
        if how != "wait":
            sys.stdin.readline()  # the test looks at what it holds, then lets it end
        if how == "_exit":
            os._exit(0)
        while how == "wait":
            runner.run(files)
""")  # noqa: E501 (the script's text stays as it is)


def _holders(pids: list[int]) -> dict[int, list[str]]:
    """Per live process: the shared files it maps or holds open (named ones and our memfd)."""
    out = {}
    for pid in pids:
        held = []
        try:
            with open(f"/proc/{pid}/maps") as f:
                held += [
                    line.split(None, 5)[-1].strip()
                    for line in f
                    if "/dev/shm/" in line or "memfd:" in line
                ]
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("/dev/shm/") or target.startswith("/memfd:"):
                    held.append(target)
        except (FileNotFoundError, ProcessLookupError):
            continue
        if held:
            out[pid] = sorted(set(held))
    return out


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def _wait_dead(pids, seconds=10) -> list[int]:
    deadline = time.monotonic() + seconds
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [p for p in pids if alive(p)]


def _our_shm_names() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith(shared_arrays.NAME)}


def _start(root, how: str, procs: list) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(root), how],
        cwd=REPO,
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    procs.append(proc)
    line = proc.stdout.readline()
    assert line, proc.communicate(timeout=60)[1]
    return proc, json.loads(line)


def _check_holdings_while_running(info: dict) -> list[int]:
    """What the running benchmark process and its workers hold: the arena (a memfd, no name),
    and no named file in /dev/shm (no semaphore, no segment). Returns every pid of its tree."""
    tree = [info["parent"], *_children(info["parent"])]
    assert set(info["workers"]) <= set(tree)
    held = _holders(tree)
    for pid in [info["parent"], *info["workers"]]:
        assert any(f"memfd:{shared_arrays.NAME}" in h for h in held.get(pid, [])), (pid, held)
    named = [h for hs in held.values() for h in hs if h.startswith("/dev/shm/")]
    assert not named, named
    return tree


@pytest.mark.parametrize("how", ["exit", "_exit"])
def test_nothing_survives_a_normal_exit_or_an_os_exit(tiny_large, how):
    before = _our_shm_names()
    with reaped([]) as procs:
        proc, info = _start(tiny_large, how, procs)
        tree = _check_holdings_while_running(info)
        _, err = proc.communicate(
            "end\n", timeout=60
        )  # EOF once every process that shares its stderr is gone
    assert proc.returncode == 0, err
    assert "leaked" not in err and "resource_tracker" not in err and "Traceback" not in err, err
    assert not _wait_dead(tree)
    assert _our_shm_names() <= before


def test_nothing_survives_a_sigkill_of_the_benchmark_process(tiny_large):
    before = _our_shm_names()
    with reaped([]) as procs:
        proc, info = _start(tiny_large, "wait", procs)
        tree = _check_holdings_while_running(info)
        time.sleep(0.3)  # mid-run: it loads in a loop
        proc.kill()
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not _wait_dead(tree), "a worker outlived its killed parent"
    assert not _holders(tree)  # nobody holds the arena: the kernel has freed it
    assert "leaked" not in err, err
    assert _our_shm_names() <= before
