"""`RayPool`: the sandbox's `run(fn, args)` contract, with the tasks spread over a Ray cluster.

Why long-lived actors, one per cluster CPU, each owning a one-worker `TimeLimitedPool`: a task
needs OpenCascade and open3d imported (seconds), so a process per task would cost more than the
task; and the sandbox's guarantees then hold unchanged on every node, because the sandbox itself
runs there. The actor's child process is the one that builds: it is killed past the time limit
(`timeout`), replaced when native code kills it (`crash`), capped in memory (`memory_mb`), and
the actor, which only relays, survives all three. Tasks are fed lazily, at most DEPTH queued per
actor, so a CPU never idles through a round trip and a generator of args can stop early.

Nothing is lost: when an actor dies (its node went away, or Ray's memory monitor killed it), the
tasks it held fail with a Ray error and are sent again to the actors left, up to MAX_TRIES times
each, and a replacement actor is requested (it starts when the cluster has a CPU free again).

Same bytes as the local pool: every actor reports a fingerprint of the cadvlm sources and of the
libraries that shape the outputs; a node whose fingerprint differs from this machine's stops the
stage with an error naming it, rather than writing outputs that depend on where a task ran.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from cadvlm.sandbox import Outcome, TimeLimitedPool

DEPTH = 2  # tasks queued per actor: one running, one waiting, so the CPU never waits for the driver
MAX_TRIES = 3  # a task whose actor died this many times is counted as a crash, not sent again
START_TIMEOUT_S = 600.0  # with no actor alive, how long to wait for one to start before giving up
# Libraries whose version can change an output's bytes (solids, meshes, pictures, JSON numbers).
SHAPING_LIBRARIES = ("cadquery-ocp-novtk", "open3d", "numpy", "scipy", "pillow", "trimesh")


def code_fingerprint() -> str:
    """A hash of the cadvlm sources and of the shaping libraries' versions installed here."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    for name in SHAPING_LIBRARIES:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            version = "absent"
        h.update(f"{name}=={version}\0".encode())
    return h.hexdigest()[:16]


_RUNNER = []  # the Runner class made a Ray actor class, once per process


def _remote_runner():
    import ray

    if not _RUNNER:
        _RUNNER.append(ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(Runner)
                       .options(scheduling_strategy="SPREAD"))
    return _RUNNER[0]


def _ping(_=None) -> int:
    """The task an actor runs first: it makes the sandbox start and warm its worker."""
    return os.getpid()


class Runner:
    """One cluster CPU: relays tasks to its own one-worker sandbox pool (made a Ray actor lazily)."""

    def __init__(self, timeout: float, warmup: tuple, memory_mb: int, cwd: str):
        if cwd and os.path.isdir(cwd):  # relative paths mean what they mean to the stage (shared folders)
            os.chdir(cwd)
        self.pool = TimeLimitedPool(1, timeout, warmup, memory_mb=memory_mb)

    def ready(self) -> dict:
        import ray

        out = next(iter(self.pool.run(_ping, [None])))
        if out.status != "ok":
            raise RuntimeError(f"the sandbox worker did not come up: {out.status} {out.error}")
        return {"node": ray.get_runtime_context().get_node_id(), "fingerprint": code_fingerprint()}

    def run(self, fn: Callable, arg, limit: float) -> tuple[Outcome, int]:
        return next(iter(self.pool.run(fn, [arg], timeout=limit))), self.pool.restarts


@dataclass(eq=False)  # compared by identity: one record per actor asked for
class _Actor:
    handle: Any
    ready_ref: Any  # None once the actor reported ready
    queued: int = 0  # tasks sent and not yet back
    restarts: int = 0  # its sandbox's worker restarts, as last reported
    node: str = ""


class RayPool:
    """Drop-in for `TimeLimitedPool` on Ray (see the module docstring); use as a context manager.

    `address` None starts a Ray instance on this machine with `workers` CPUs (stopped on close);
    otherwise the pool joins that cluster and runs one actor per CPU it has. `restarts` counts
    sandbox workers replaced (timeouts, crashes) and actors lost, as the local pool counts its own.
    """

    def __init__(self, workers: int = 2, timeout: float = 30.0, warmup: Iterable[str] = (), memory_mb: int = 0,
                 address: str | None = None):
        try:
            import ray  # noqa: F401 - fail here, with the fix, not deep inside a stage
        except ImportError:
            raise ImportError("parallel.backend is `ray` but Ray is not installed: pip install -e '.[ray]'") from None
        self.workers = max(1, int(workers))
        self.timeout = float(timeout)
        self.warmup = tuple(warmup)
        self.memory_mb = int(memory_mb or 0)
        self.address = address
        self.restarts = 0
        self._start_failures = 0  # actors that died before reporting ready
        self._actors: list[_Actor] = []
        self._started_ray = False
        self._fingerprint = code_fingerprint()

    def __enter__(self) -> "RayPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        import ray

        for a in self._actors:
            self._kill(a)
        self._actors = []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    # ------------------------------------------------------------------ actors
    def _start(self) -> None:
        """Join (or start) Ray and ask for the actors, once; they report ready as they warm up."""
        import ray

        if self._actors:
            return
        if not ray.is_initialized():
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # offline: Ray reports usage by default
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.workers, include_dashboard=False, log_to_driver=False)
            self._started_ray = True
        n = self.workers if self._started_ray and not self.address else int(ray.cluster_resources().get("CPU", 0))
        if n < 1:
            raise RuntimeError(f"the Ray cluster at {self.address or 'this machine'} has no CPU to run tasks on")
        self._actors = [self._new_actor() for _ in range(n)]

    def _new_actor(self) -> _Actor:
        handle = _remote_runner().remote(self.timeout, self.warmup, self.memory_mb, os.getcwd())
        return _Actor(handle, handle.ready.remote())

    def _kill(self, actor: _Actor) -> None:
        import ray

        try:
            ray.kill(actor.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone with its node: nothing left to stop
            pass

    def _replace(self, actor: _Actor) -> None:
        """An actor is gone (or abandoned busy): stop it and ask for another in its place."""
        if actor in self._actors:
            self._kill(actor)
            self._actors[self._actors.index(actor)] = self._new_actor()
            self.restarts += 1

    def _on_ready(self, actor: _Actor) -> None:
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        try:
            info = ray.get(actor.ready_ref)
        except RayTaskError as exc:  # the node's sandbox cannot start: configuration, not bad luck
            raise RuntimeError(f"a Ray worker could not start its sandbox: {str(exc)[-2000:]}") from None
        except RayActorError as exc:  # died while starting: its node went away, or it cannot start there
            self._start_failures += 1
            if self._start_failures > 2 * len(self._actors) + 2:  # not bad luck: every try fails
                raise RuntimeError(f"Ray workers keep dying as they start (is cadvlm installed on every "
                                   f"node?): {str(exc)[-2000:]}") from None
            self._replace(actor)
            return
        if info["fingerprint"] != self._fingerprint:
            raise RuntimeError(f"Ray node {info['node']} runs other cadvlm code or library versions "
                               f"({', '.join(SHAPING_LIBRARIES)}) than this machine, so outputs would depend on "
                               "where a task ran: install the same commit and constraints.txt on every node")
        actor.ready_ref, actor.node = None, info["node"]

    # ------------------------------------------------------------------ tasks
    def run(self, fn: Callable, args: Iterable, timeout: float | None = None) -> Iterator[Outcome]:
        """Outcomes of fn(arg) for each arg as they finish, as `TimeLimitedPool.run` yields them.

        `fn` must be importable on every node (a module-level cadvlm function) and its args and
        results serialisable. Abandoning the run stops the actors still busy on its tasks.
        """
        import ray
        from ray.exceptions import ObjectLostError, RayActorError, RayTaskError

        limit = self.timeout if timeout is None else float(timeout)
        self._start()
        source = enumerate(args)
        retry: list = []  # (index, arg, tries) whose actor died: sent again first
        flight: dict = {}  # object ref -> (index, arg, tries, actor)
        exhausted = False

        def next_item():
            nonlocal exhausted
            if retry:
                return retry.pop(0)
            if exhausted:
                return None
            try:
                index, arg = next(source)
            except StopIteration:
                exhausted = True
                return None
            return index, arg, 0

        try:
            while True:
                sent = True
                while sent:  # one task per ready actor per pass: work spreads over the cluster
                    sent = False
                    for actor in [a for a in self._actors if a.ready_ref is None and a.queued < DEPTH]:
                        item = next_item()
                        if item is None:
                            break
                        flight[actor.handle.run.remote(fn, item[1], limit)] = (*item, actor)
                        actor.queued += 1
                        sent = True
                if exhausted and not retry and not flight:
                    return
                starting = {a.ready_ref: a for a in self._actors if a.ready_ref is not None}
                waiting = list(flight) + list(starting)
                # Everything already back in one call (a large cluster returns many per pass), else the next.
                done, _ = ray.wait(waiting, num_returns=len(waiting), timeout=0)
                if not done:
                    done, _ = ray.wait(waiting, num_returns=1, timeout=None if flight else START_TIMEOUT_S)
                if not done:
                    raise RuntimeError(f"no Ray worker is left to run the remaining tasks, and none started "
                                       f"within {START_TIMEOUT_S:g} s: has the cluster lost its nodes?")
                for ref in done:
                    if ref in starting:
                        self._on_ready(starting[ref])
                        continue
                    index, arg, tries, actor = flight.pop(ref)
                    actor.queued -= 1
                    try:
                        outcome, restarts = ray.get(ref)
                    except (RayActorError, ObjectLostError) as exc:  # its node or actor is gone, not the task
                        self._replace(actor)
                        if tries + 1 < MAX_TRIES:
                            retry.append((index, arg, tries + 1))
                        else:
                            yield Outcome(index, "crash", error=f"its Ray worker was lost {tries + 1} times: "
                                                                f"{type(exc).__name__}")
                        continue
                    except RayTaskError as exc:  # the relay itself failed (its sandbox cannot restart): as
                        # the local pool does, stop rather than count every later model as failed
                        raise RuntimeError(f"a Ray worker failed: {str(exc)[-2000:]}") from None
                    self.restarts += max(0, restarts - actor.restarts)
                    actor.restarts = restarts
                    outcome.index = index
                    yield outcome
        finally:
            # Abandoned with tasks in flight: their actors are busy on work nobody will read.
            for actor in {id(a): a for *_, a in flight.values()}.values():
                self._replace(actor)
