"""Where the per-model work of the data stages runs: this machine's sandbox pool, or a Ray cluster.

Why one factory: synthesize, extract, render, convert and evaluate's scoring all drive their
per-model work through the same small interface, `with pool: for outcome in pool.run(fn, args)`
(`cadvlm.sandbox.TimeLimitedPool`: outcomes ok / error / timeout / crash, args taken lazily).
`make_pool` returns that pool, or with `parallel.backend: ray` a `RayPool` keeping the same
contract on a cluster, so a stage changes by the one line that makes its pool.

What a cluster changes for the stages: a task may run on a machine that does not hold the stage's
files. So a task carries its input (`file_payload`: the file's bytes) instead of a path, and
returns its output instead of writing it: the stage, on this machine, writes every file itself,
the same bytes whichever backend computed them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

BACKENDS = ("local", "ray")


@dataclass(frozen=True)
class ParallelConfig:
    backend: str = "local"  # local: TimeLimitedPool on this machine | ray: RayPool on a cluster
    address: str | None = None  # ray: the cluster to join ("host:port"); None = start one on this machine
    memory_mb: int = 0  # address-space cap of each worker process (0 = none)

    def __post_init__(self):
        if self.backend not in BACKENDS:
            raise ValueError(f"parallel.backend must be one of {BACKENDS}, not {self.backend!r}")
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise ValueError(f"parallel.address must be a 'host:port' string or null, not {self.address!r}")
        if not isinstance(self.memory_mb, int) or self.memory_mb < 0:
            raise ValueError(f"parallel.memory_mb must be a whole number of megabytes >= 0, not {self.memory_mb!r}")

    @classmethod
    def from_params(cls, params: dict) -> "ParallelConfig":
        """From params.yaml's `parallel` section (absent: the local pool, as before the section existed)."""
        p = params.get("parallel") or {}
        unknown = set(p) - {"backend", "address", "memory_mb"}
        if unknown:
            raise ValueError(f"unknown parallel params: {sorted(unknown)}")
        return cls(backend=str(p.get("backend") or "local"), address=p.get("address") or None,
                   memory_mb=int(p.get("memory_mb") or 0))


def make_pool(workers: int, timeout: float, warmup: Iterable[str] = (), config: ParallelConfig | None = None):
    """The pool a stage runs its per-model tasks in: `workers` processes here, or the Ray cluster.

    `workers` (0 = all cores) sizes the local pool, and the Ray instance a stage starts when no
    address is given; on a cluster every CPU it has gets a worker.
    """
    from cadvlm.sandbox import TimeLimitedPool

    config = config or ParallelConfig()
    workers = int(workers) or os.cpu_count() or 1
    if config.backend == "ray":
        from cadvlm.parallel.ray_pool import RayPool

        return RayPool(workers, timeout, warmup, memory_mb=config.memory_mb, address=config.address)
    return TimeLimitedPool(workers, timeout, warmup, memory_mb=config.memory_mb)


def file_payload(path) -> bytes | str:
    """What a task carries for an input file: its bytes, read here, so a worker on another machine
    needs no copy of the stage's folders. When this machine cannot read the file the path goes
    instead, and the worker's own read of it fails with the reason it always gave."""
    try:
        return Path(path).read_bytes()
    except OSError:
        return str(path)
