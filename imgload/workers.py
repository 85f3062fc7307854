"""Worker processes that die with their parent.

A worker orphaned by a killed parent would keep running and keep the parent's open
files, including the flock that serializes dataset preparation, so the next prepare
would wait forever. PR_SET_PDEATHSIG has the kernel kill workers when the parent goes.
(The signal follows the *thread* that started the worker: start workers from a thread
that lives as long as they should, as the main thread does.)

fork_pool is for the data preparation, which forks before starting any thread of its
own. Decoding uses SpawnedWorkers: a parent whose decoder has started threads (OpenCV's
pool does on first use) cannot fork safely, since children inherit locked mutexes whose
owners do not exist in them (seen here: cv2 workers hung in a futex).

SpawnedWorkers is not a ProcessPoolExecutor on purpose. The executor's queues (and the
barrier that held its workers until all had primed) are named POSIX semaphores in
/dev/shm, registered with multiprocessing's resource tracker. asv ends every benchmark
process with os._exit, and a killed process runs no cleanup either, so the tracker
unlinked them afterwards with "There appear to be 9 leaked semaphore objects" (seen here,
one such warning per pool). SpawnedWorkers talks to each worker over a pipe of its own:
no name, nothing for a tracker, the kernel closes it with the processes.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import traceback
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import wait

from .files import libc

_PR_SET_PDEATHSIG = 1
STOP_SECONDS = 5  # a worker told to stop gets this long before it is killed


def _die_with_parent(parent: int) -> None:
    libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _pool_worker_start(parent: int, initializer, initargs) -> None:
    _die_with_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def fork_pool(workers: int, initializer=None, initargs=()) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_pool_worker_start,
        initargs=(os.getpid(), initializer, initargs),
    )


class WorkerError(RuntimeError):
    """A worker process died, or its pipe broke: the SpawnedWorkers are closed."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, as the cause of its re-raise here."""

    def __str__(self):
        return self.args[0]


def _reply_error(conn, exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc))
    try:
        conn.send((False, exc, text))
    except Exception:  # an exception that does not pickle still reports its traceback
        conn.send((False, None, text))


def _serve(conn, parent: int, initializer, initargs) -> None:
    """A worker's life: die with the parent, initialize, report, then run (func, args)
    until told to stop."""
    _die_with_parent(parent)
    try:
        conn.send((True, initializer(*initargs) if initializer is not None else None, None))
    except BaseException as e:
        _reply_error(conn, e)
        return
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent closed its end
            return
        if task is None:
            return
        func, args = task
        try:
            result = func(*args)
        except BaseException as e:
            _reply_error(conn, e)
        else:
            conn.send((True, result, None))


class SpawnedWorkers:
    """`n` spawned worker processes, each started with initializer(*initargs) and holding one
    duplex pipe to the parent. The constructor returns once every worker has finished its
    initializer; their return values are in `ready` (in worker order). One caller at a time:
    map and call_each are not thread-safe (a Runner is used from one thread)."""

    def __init__(self, n: int, initializer=None, initargs=()):
        ctx = multiprocessing.get_context("spawn")
        self._conns, self._procs = [], []
        try:
            for _ in range(n):
                here, there = ctx.Pipe(duplex=True)
                proc = ctx.Process(
                    target=_serve, args=(there, os.getpid(), initializer, initargs), daemon=True
                )
                proc.start()
                there.close()
                self._conns.append(here)
                self._procs.append(proc)
            # started all first, waited for all after: the workers import and prime side by side
            self.ready = [self._result(k) for k in range(n)]
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    @property
    def closed(self) -> bool:
        return not self._conns

    def _receive(self, k: int) -> tuple:
        try:
            return self._conns[k].recv()
        except (EOFError, OSError):
            proc = self._procs[k]
            proc.join(1)
            self.close()
            raise WorkerError(
                f"worker process {proc.pid} died (exit code {proc.exitcode})"
            ) from None

    def _result(self, k: int):
        ok, value, text = self._receive(k)
        if ok:
            return value
        if value is None:
            raise RuntimeError(f"a worker failed with an exception that does not pickle:\n{text}")
        raise value from RemoteTraceback(text)

    def map(self, func, arglists: list[tuple]) -> list:
        """[func(*args) for args in arglists], run by whichever worker is free, in order.
        An exception in a worker is raised here once the tasks already sent have returned."""
        if self.closed:
            raise RuntimeError("these SpawnedWorkers are closed")
        results: list = [None] * len(arglists)
        failure = None
        todo = iter(range(len(arglists)))
        busy: dict = {}  # connection -> (worker index, task index)
        idle = list(range(len(self._conns)))
        while True:
            while idle and failure is None:
                i = next(todo, None)
                if i is None:
                    break
                k = idle.pop()
                self._send(k, (func, arglists[i]))
                busy[self._conns[k]] = (k, i)
            if not busy:
                break
            for conn in wait(list(busy)):
                k, i = busy.pop(conn)
                ok, value, text = self._receive(k)
                idle.append(k)
                if ok:
                    results[i] = value
                elif failure is None:
                    failure = (value, text)
        if failure is not None:
            value, text = failure
            if value is None:
                raise RuntimeError(
                    f"a worker failed with an exception that does not pickle:\n{text}"
                )
            raise value from RemoteTraceback(text)
        return results

    def call_each(self, func, *args) -> list:
        """func(*args) once in every worker, in worker order."""
        if self.closed:
            raise RuntimeError("these SpawnedWorkers are closed")
        for k in range(len(self._conns)):
            self._send(k, (func, args))
        return [self._result(k) for k in range(len(self._conns))]

    def _send(self, k: int, task) -> None:
        try:
            self._conns[k].send(task)
        except OSError:  # a broken pipe: the worker is gone
            self._receive(k)  # raises WorkerError with its exit code
            raise

    def close(self) -> None:
        """Stop every worker (killed if it does not stop within STOP_SECONDS); idempotent."""
        conns, procs = self._conns, self._procs
        self._conns, self._procs = [], []
        for conn in conns:
            try:
                conn.send(None)
            except OSError:
                pass
        for proc in procs:
            proc.join(STOP_SECONDS)
            if proc.exitcode is None:
                proc.kill()
                proc.join()
        for conn in conns:
            conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
