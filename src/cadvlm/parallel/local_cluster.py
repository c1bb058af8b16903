"""A real multi-node Ray cluster on this one machine: a head and worker nodes, each a `ray start`.

Why: the Ray backend's promises (the same bytes as the local pool, tasks crossing node boundaries,
nothing lost when a node dies) can only be checked on more than one node, and CI has one machine.
Each node is its own `ray start --block` process tree, so one can be killed as a machine that
loses power would be, while the others go on. Used by tests/test_parallel_ray.py and
benchmarks/bench_ray.py; it binds to 127.0.0.1 and protects the cluster with a fresh random token.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NODE_ENV = "CADVLM_RAY_NODE"  # set on each node's processes: "head", "worker1", ...


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """`ray start --head` plus `workers` worker nodes, `cpus` CPUs each; close() ends them all.

    `env` is added to every node's environment (e.g. PYTHONPATH for task functions of a test).
    A driver in this process must share the cluster's token: `os.environ.update(cluster.client_env)`
    before Ray is first imported (Ray reads its authentication settings then).
    """

    def __init__(self, workers: int = 1, cpus: int = 1, env: dict | None = None, object_store_mb: int = 100):
        self.temp = tempfile.mkdtemp(prefix="cadvlm-ray-")  # short: Ray's socket paths must fit 107 bytes
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.cpus, self.object_store_mb = int(cpus), int(object_store_mb)
        self.client_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                           "RAY_USAGE_STATS_ENABLED": "0"}
        self.env = dict(os.environ, **self.client_env, **(env or {}),
                        # a killed node is declared dead in ~2 s instead of ~30 s
                        RAY_health_check_initial_delay_ms="1000", RAY_health_check_period_ms="500",
                        RAY_health_check_timeout_ms="1000", RAY_health_check_failure_threshold="4")
        self.nodes: dict[str, subprocess.Popen] = {}
        try:
            self.start_node("head", ["--head", "--port", str(self.port), "--include-dashboard", "false"])
            self._wait_for_head()
            for k in range(1, workers + 1):
                self.start_node(f"worker{k}")
        except BaseException:
            self.close()
            raise

    def start_node(self, name: str, args: list[str] | None = None) -> subprocess.Popen:
        """Start (or restart) node `name`; a worker node joins the head at `address`."""
        args = args if args is not None else ["--address", self.address]
        cmd = [str(Path(sys.executable).with_name("ray")), "start", "--block", "--num-cpus", str(self.cpus),
               "--node-ip-address", "127.0.0.1", "--temp-dir", self.temp, "--disable-usage-stats",
               "--object-store-memory", str(self.object_store_mb * 2**20), *args]
        with open(Path(self.temp) / f"{name}.log", "ab") as log:
            self.nodes[name] = subprocess.Popen(cmd, env=dict(self.env, **{NODE_ENV: name}), stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True)
        return self.nodes[name]

    def _wait_for_head(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline or self.nodes["head"].poll() is not None:
                    raise RuntimeError(f"the Ray head did not start:\n{self.log('head')}") from None
                time.sleep(0.2)

    def log(self, name: str) -> str:
        return (Path(self.temp) / f"{name}.log").read_text(errors="replace")[-3000:]

    def wait_for_cpus(self, n: float, seconds: float = 120) -> None:
        """Until n CPUs are free on the cluster (this process must be connected: ray.init(address))."""
        import ray

        deadline = time.monotonic() + seconds
        while ray.available_resources().get("CPU", 0) < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ray cluster never had {n} CPUs free:\n"
                                   + "\n".join(self.log(k) for k in self.nodes))
            time.sleep(0.5)

    def stop_node(self, name: str, grace: float = 0) -> None:
        """End node `name`: `ray start` and every process under it (Ray's workers run in sessions
        of their own, out of its process group). grace 0 kills them at once, as when a machine
        loses power: a task running there never reports back; otherwise they are asked first."""
        import psutil  # a dependency of accelerate, so always installed with cadvlm

        proc = self.nodes[name]
        try:
            top = psutil.Process(proc.pid)
            tree = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for signal_all in ([psutil.Process.terminate] if grace > 0 else []) + [psutil.Process.kill]:
            for p in tree:
                try:
                    signal_all(p)
                except psutil.NoSuchProcess:
                    pass
            tree = psutil.wait_procs(tree, timeout=grace if signal_all is psutil.Process.terminate else 30)[1]
        proc.wait(30)

    def close(self) -> None:
        for name in reversed(list(self.nodes)):
            self.stop_node(name)
        shutil.rmtree(self.temp, ignore_errors=True)
