"""The Ray backend against the local pool on the same cores: synthesize and render. Prints figures only.

    python benchmarks/bench_ray.py [--models 5000] [--size 512] [--overhead-tasks 2000] [--ray-first]
                                   [--workdir DIR]

Local: the stages' own pool (`cadvlm.sandbox.TimeLimitedPool`, 2 workers). Ray: a 2-node cluster on
this machine (`cadvlm.parallel.local_cluster`: a head and a worker node, 1 CPU each), which each
stage joins by its address and leaves, as `parallel.backend: ray` + `parallel.address` make it do
under `dvc repro`. Same models, same settings (params.yaml's render section, `--size` aside), one
after the other in this process: local then Ray (`--ray-first`: the other way) for synthesize, then
for render. Outputs are compared byte for byte.

Figures:
1. Per stage: wall seconds and models/s of each backend, and Ray's throughput as a share of the
   local pool's (the target is >= 0.85). Ray's time includes joining the cluster and warming its
   workers, as a stage's does.
2. Per-task overhead: `--overhead-tasks` trivial tasks through each (warm) pool: ms per task.
3. CPU seconds per model (the local run's workers and this process, from getrusage), and the Ray
   driver's own CPU seconds per model (this process: sending inputs, writing outputs). From them,
   the projection for 1M models: cores x hours = models x CPU s/model on dedicated cores, and the
   floor one driver sets whatever the cluster's size (models x driver CPU s/model).
The machine may be shared with other work: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def cpu_seconds() -> tuple[float, float]:
    """CPU time of this process, and of its reaped children (the local pool's workers once closed;
    the Ray nodes, children too, are reaped only at the end)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def as_extracted(raw: Path, ext: Path) -> None:
    """The synthetic folder as the render stage reads a subset: json/<id>.json + split.json."""
    ids = sorted(p.stem for p in raw.glob("*.json"))
    (ext / "json").mkdir(parents=True)
    for i in ids:
        shutil.copyfile(raw / f"{i}.json", ext / "json" / f"{i}.json")
    (ext / "split.json").write_text(json.dumps({"train": ids, "validation": [], "test": []}))


def run_stage(name: str, backend: str, fn) -> dict:
    t, (own, kids) = time.perf_counter(), cpu_seconds()
    fn()
    own2, kids2 = cpu_seconds()
    out = {"stage": name, "backend": backend, "seconds": time.perf_counter() - t, "driver_cpu": own2 - own,
           "cpu": own2 - own + kids2 - kids}
    print(f"  {name:10s} {backend:5s} {out['seconds']:8.1f} s", flush=True)
    return out


def overhead(pool, n: int) -> float:
    """Wall ms per trivial task through a warm pool."""
    from cadvlm.parallel.ray_pool import _ping

    list(pool.run(_ping, range(8)))  # warm: workers started and ready
    t = time.perf_counter()
    done = sum(1 for o in pool.run(_ping, range(n)) if o.status == "ok")
    assert done == n
    return (time.perf_counter() - t) / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", type=int, default=5000)
    ap.add_argument("--size", type=int, default=None, help="pixels per view (default: params.yaml)")
    ap.add_argument("--overhead-tasks", type=int, default=2000)
    ap.add_argument("--ray-first", action="store_true", help="run Ray before the local pool in each stage")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from cadvlm.parallel.local_cluster import LocalCluster

    cluster = LocalCluster(workers=1, cpus=1)
    os.environ.update(cluster.client_env)  # before Ray is imported: this process joins with the token
    from cadvlm.parallel import ParallelConfig, make_pool
    from cadvlm.render.pipeline import RenderJob
    from cadvlm.render.stage import run_render
    from cadvlm.synth import SynthConfig, write_dataset

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    synth = SynthConfig.from_params(params["synthesize"])
    render = {k: v for k, v in params["render"].items() if k not in ("workers", "timeout_s")}
    if args.size:
        render["size"] = args.size
    job = RenderJob.from_params(render)
    backends = {"local": ParallelConfig(), "ray": ParallelConfig("ray", cluster.address)}
    if args.ray_first:
        backends = dict(reversed(backends.items()))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-ray-"))
    n = args.models
    print(f"{n} models; render {job.settings.size} px, {job.layout}; {os.cpu_count()} cores; {load()}")
    rows = []
    try:
        import ray

        ray.init(address=cluster.address, log_to_driver=False)
        cluster.wait_for_cpus(2)
        ray.shutdown()  # each stage joins on its own
        for b, par in backends.items():
            rows.append(run_stage("synthesize", b, lambda: write_dataset(
                work / b / "raw", n, seed=0, config=synth, workers=2, progress=False, parallel=par)))
        same_raw = digest(work / "local" / "raw") == digest(work / "ray" / "raw")
        as_extracted(work / "local" / "raw", work / "extracted")
        for b, par in backends.items():
            rows.append(run_stage("render", b, lambda: run_render(
                work / "extracted", work / b / "rendered", job, workers=2, progress=False, parallel=par)))
        same_png = digest(work / "local" / "rendered") == digest(work / "ray" / "rendered")
        ms = {}
        for b, par in backends.items():
            with make_pool(2, 30, (), par) as pool:
                ms[b] = overhead(pool, args.overhead_tasks)
    finally:
        cluster.close()
    print(f"after: {load()}\n")

    secs = {(r["stage"], r["backend"]): r["seconds"] for r in rows}
    print(f"{'stage':10s} {'local s':>8s} {'ray s':>8s} {'local/s':>8s} {'ray/s':>8s} {'ray/local':>9s} same bytes")
    ratios = {}
    for stage, same in (("synthesize", same_raw), ("render", same_png)):
        lo, ra = secs[(stage, "local")], secs[(stage, "ray")]
        ratios[stage] = lo / ra
        print(f"{stage:10s} {lo:8.1f} {ra:8.1f} {n / lo:8.1f} {n / ra:8.1f} {lo / ra:9.3f} {same}")
    both = sum(secs[(s, 'local')] for s in ratios) / sum(secs[(s, 'ray')] for s in ratios)
    print(f"synthesize + render: Ray at {both:.3f}x the local pool's throughput")
    print(f"per-task overhead, warm pool, trivial task: local {ms['local']:.2f} ms, Ray {ms['ray']:.2f} ms "
          f"(wall per task with 2 workers); wall per model in the runs above, Ray minus local: "
          f"{(sum(secs[(s, 'ray')] - secs[(s, 'local')] for s in ratios)) / n * 1000:+.1f} ms")

    cpu = {r["stage"]: r["cpu"] / n for r in rows if r["backend"] == "local"}
    driver = {r["stage"]: r["driver_cpu"] / n for r in rows if r["backend"] == "ray"}
    local_driver = {r["stage"]: r["driver_cpu"] / n for r in rows if r["backend"] == "local"}
    per_model, per_driver = sum(cpu.values()), sum(driver.values())
    print(f"CPU seconds per model (local run, workers + driver): synthesize {cpu['synthesize']:.4f}, "
          f"render {cpu['render']:.4f}, both {per_model:.4f}")
    print(f"Ray driver CPU seconds per model (the stage process): synthesize {driver['synthesize']:.4f}, "
          f"render {driver['render']:.4f}, both {per_driver:.4f} (the local pool's driver: "
          f"{sum(local_driver.values()):.4f})")
    print(f"projection, 1M models through synthesize + render: {1e6 * per_model / 3600:.0f} core-hours; "
          f"one driver's floor {1e6 * per_driver / 3600:.2f} h")
    for nodes, cores in ((1, 2), (4, 16), (16, 16), (64, 32)):
        hours = max(1e6 * per_model / (nodes * cores), 1e6 * per_driver) / 3600
        print(f"  {nodes:3d} nodes x {cores:2d} dedicated cores: {hours:7.2f} h")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
