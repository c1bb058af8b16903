"""Run untrusted work (building CAD from model output) in worker processes with a time limit.

Why not multiprocessing.Pool / concurrent.futures: neither can stop one task. A boolean in
OpenCascade can run for minutes on a nasty generated shape, and a crash in native code kills
the process; either must cost one sample, not the stage. Here each worker is a separate process
fed one task at a time over a pipe; when a task runs past its limit the worker is killed and a
fresh one started, and a worker that dies is replaced the same way. The task comes back as an
`Outcome` with status "ok", "error" (the function raised), "timeout" or "crash".

Workers are started with "spawn" (a clean interpreter: no inherited torch threads or OpenMP
state from the parent, which can deadlock after fork) and import `warmup` modules before they
report ready, so the time limit counts the task only, not interpreter start-up.

`memory_mb` caps each worker's address space (RLIMIT_AS, set once the warm-up imports are in, so
the cap is what a task may add to ~1.7 GB of libraries): a model that would eat the machine's
memory fails alone (MemoryError, counted as an error, or its worker dies: a crash) instead of
bringing the OOM killer onto every process of the stage.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import resource
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable, Iterator

_READY = "__ready__"


@dataclass
class Outcome:
    index: int  # position of the task in the input
    status: str  # ok | error | timeout | crash
    value: Any = None  # the function's return value when ok
    error: str = ""  # "Type: message" when status is error; a description otherwise
    seconds: float = 0.0


def _worker_main(conn, warmup: tuple[str, ...], env: dict[str, str], memory_mb: int = 0) -> None:
    os.environ.update(env)
    for name in warmup:
        importlib.import_module(name)
    if memory_mb > 0:
        cap = int(memory_mb) * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    conn.send(_READY)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        if msg is None:
            return
        index, fn, arg = msg
        t = time.perf_counter()
        try:
            out = (index, "ok", fn(arg), "")
        except Exception as exc:  # report, keep serving: one bad task is one bad sample
            out = (index, "error", None, f"{type(exc).__name__}: {exc}")
        try:
            conn.send(out + (time.perf_counter() - t,))
        except Exception as exc:  # an unpicklable result is the function's bug: say so
            conn.send((index, "error", None, f"result not picklable: {exc}", time.perf_counter() - t))


class _Slot:
    """One worker process and the task it is running (None while idle or starting)."""

    def __init__(self, ctx, warmup, env, memory_mb: int = 0):
        parent, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, warmup, env, memory_mb), daemon=True)
        self.proc.start()
        child.close()
        self.conn = parent
        self.ready = False
        self.task: int | None = None
        self.started = 0.0

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.proc.kill()
        else:
            try:
                self.conn.send(None)
            except (OSError, BrokenPipeError):
                self.proc.kill()
        self.proc.join(timeout=5)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


class TimeLimitedPool:
    """`workers` processes; every task must finish within `timeout` seconds or its worker dies.

    Use as a context manager; `run(fn, args)` yields Outcomes as tasks finish (any order), taking
    args lazily (a generator can stop feeding once it has what it needs). `fn` must be a
    module-level function (it is sent by reference) and its results picklable.
    Workers run with one thread each for BLAS/OpenMP/Embree (set through the environment):
    the parallelism is across tasks. `memory_mb` > 0 caps each worker's address space.
    """

    def __init__(self, workers: int = 2, timeout: float = 30.0, warmup: Iterable[str] = (),
                 threads_per_worker: int = 1, memory_mb: int = 0):
        self.workers = max(1, int(workers or os.cpu_count() or 1))
        self.timeout = float(timeout)
        self.warmup = tuple(warmup)
        self.memory_mb = int(memory_mb or 0)
        n = str(threads_per_worker)
        self.env = {k: n for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        self._ctx = mp.get_context("spawn")
        self._slots: list[_Slot] = []
        self.restarts = 0

    def __enter__(self) -> "TimeLimitedPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for s in self._slots:
            s.stop(kill=s.task is not None)
        self._slots = []

    def _replace(self, slot: _Slot) -> None:
        slot.stop(kill=True)
        self._slots[self._slots.index(slot)] = _Slot(self._ctx, self.warmup, self.env, self.memory_mb)
        self.restarts += 1

    def run(self, fn: Callable, args: Iterable, timeout: float | None = None) -> Iterator[Outcome]:
        """Outcomes of fn(arg) for each arg, as they finish; `timeout` overrides the pool's limit.

        `args` may be any iterable, and is read lazily: the next arg is taken only when a worker
        can take it (at most `workers` tasks are taken and not yet finished), so a generator can
        decide, from the outcomes seen so far, to stop (return) instead of yielding more work.
        Abandoning the run (closing this generator or breaking out of a loop over it) kills the
        workers busy on its tasks; the idle ones stay for the next run.
        """
        limit = self.timeout if timeout is None else float(timeout)
        source = enumerate(args)
        held: list = []  # taken from `args`, waiting for a worker that is still starting
        exhausted = False
        running = 0
        try:
            while True:
                # Take work only for workers that exist or will be started for it right now.
                while not exhausted and running + len(held) < self.workers:
                    try:
                        held.append(next(source))
                    except StopIteration:
                        exhausted = True
                while len(self._slots) < min(self.workers, running + len(held)):
                    self._slots.append(_Slot(self._ctx, self.warmup, self.env, self.memory_mb))
                for slot in self._slots:
                    if slot.ready and slot.task is None and held:
                        index, arg = held.pop(0)
                        slot.conn.send((index, fn, arg))
                        slot.task, slot.started = index, time.perf_counter()
                        running += 1
                if exhausted and not held and not running:
                    return
                now = time.perf_counter()
                deadlines = [s.started + limit - now for s in self._slots if s.task is not None]
                ready = wait([s.conn for s in self._slots], timeout=max(0.0, min(deadlines)) if deadlines else None)
                for slot in list(self._slots):
                    if slot.conn in ready:
                        try:
                            msg = slot.conn.recv()
                        except (EOFError, OSError):
                            msg = None
                        if msg == _READY:
                            slot.ready = True
                            continue
                        if msg is None:  # the worker died (native crash, OOM kill)
                            slot.proc.join(timeout=5)  # the pipe closes before the process is reaped
                            code = slot.proc.exitcode
                            task, slot.task = slot.task, None
                            if task is None and not slot.ready:
                                raise RuntimeError(f"a worker failed to start (exit code {code})")
                            self._replace(slot)
                            if task is not None:
                                running -= 1
                                yield Outcome(task, "crash", error=f"worker died (exit code {code})",
                                              seconds=time.perf_counter() - slot.started)
                            continue
                        index, status, value, error, seconds = msg
                        slot.task = None
                        running -= 1
                        yield Outcome(index, status, value, error, seconds)
                    elif slot.task is not None and time.perf_counter() - slot.started >= limit:
                        index, slot.task = slot.task, None
                        running -= 1
                        self._replace(slot)
                        yield Outcome(index, "timeout", error=f"over the {limit:g} s limit", seconds=limit)
        finally:
            # Abandoned (or failed) with tasks still running: their results would be read as the
            # answers of the next run's tasks, so those workers go; idle ones stay for reuse.
            if running:
                for slot in [s for s in self._slots if s.task is not None]:
                    slot.stop(kill=True)
                    self._slots.remove(slot)
