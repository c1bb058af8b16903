"""The data stages on a Ray cluster (`parallel.backend: ray`): the same bytes as the local pool, the
sandbox's guarantees kept (a hung build, a crash and a memory hog counted), nothing lost when a node
dies mid-run. First, without Ray: the `parallel` params and the memory cap of the local pool.

The cluster is real and local (`cadvlm.parallel.local_cluster`): a head and one worker node, one
CPU each, each its own `ray start`, so tasks really cross node boundaries and a node can be killed
outright. The stand-in task functions below are imported by the cluster's workers (this folder is
on their PYTHONPATH). The cluster tests are skipped when Ray is not installed (`pip install -e
'.[ray]'`) and slow (a cluster takes ~7 s to start and each pool warms its workers on it: ~25 s
for the shortest test).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from cadvlm.extract import ExtractConfig, _check_task, extract
from cadvlm.parallel import ParallelConfig, make_pool
from cadvlm.parallel.local_cluster import NODE_ENV

# Ray is not imported at module level: it reads its authentication settings when first imported,
# and this process joins the test cluster with that cluster's token (set by the `cluster` fixture).
needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="Ray is not installed: pip install -e '.[ray]'")

N_MODELS = 24
SIZES = {"train": 12, "validation": 2, "test": 4}
HANG, CRASH, GREEDY = "s0000003", "s0000005", "s0000007"  # the stand-in check's victims
WORKER = "worker1"  # the worker node's name


# ----------------------------------------------------------------------------- stand-in tasks
def _check_with_victims(args):
    """extract's check, except: HANG never finishes, CRASH dies like a segfault, GREEDY reserves
    3 GB (untouched: harmless without a cap) and is then checked normally."""
    if args[1] == HANG:
        time.sleep(600)
    if args[1] == CRASH:
        os._exit(11)
    if args[1] == GREEDY:
        import numpy as np

        np.empty(3 * 2**30, dtype=np.uint8)
    return _check_task(args)


def _check_slowly(args):
    """extract's check at 0.2 s a model, so that both nodes get work; on the worker node it first
    leaves a mark (the test kills the node when it sees it) and takes a second more."""
    time.sleep(0.2)
    if os.environ.get(NODE_ENV) == WORKER:
        Path(os.environ["CADVLM_TEST_MARK"]).touch()
        time.sleep(1.0)
    return _check_task(args)


def _square_where(x):
    """(x * x, the node that computed it)."""
    time.sleep(0.25)
    return x * x, os.environ.get(NODE_ENV)


def _reserve_3gb(_):
    import numpy as np

    np.empty(3 * 2**30, dtype=np.uint8)  # address space only: no page is touched
    return "reserved"


# ----------------------------------------------------------------------------- without Ray
def test_parallel_params_are_checked_and_default_to_the_local_pool():
    assert ParallelConfig.from_params({}) == ParallelConfig("local", None, 0)
    got = ParallelConfig.from_params({"parallel": {"backend": "ray", "address": "10.0.0.5:6379", "memory_mb": 4096}})
    assert got == ParallelConfig("ray", "10.0.0.5:6379", 4096)
    for bad, named in (({"backend": "spark"}, "parallel.backend"), ({"memory_mb": -1}, "parallel.memory_mb"),
                       ({"workers": 4}, "unknown parallel params")):
        with pytest.raises(ValueError, match=named):
            ParallelConfig.from_params({"parallel": bad})


def test_the_memory_cap_fails_one_task_and_the_pool_goes_on():
    with make_pool(1, 60, (), ParallelConfig(memory_mb=1024)) as pool:
        capped = list(pool.run(_reserve_3gb, [0]))
        after = list(pool.run(abs, [-3]))
    with make_pool(1, 60, (), ParallelConfig()) as pool:
        free = list(pool.run(_reserve_3gb, [0]))
    assert capped[0].status == "error" and capped[0].error.startswith("MemoryError")
    assert after[0].status == "ok" and after[0].value == 3
    assert free[0].status == "ok" and free[0].value == "reserved"


def test_without_ray_the_ray_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    with pytest.raises(ImportError, match=r"pip install -e '\.\[ray\]'"):
        make_pool(2, 30, (), ParallelConfig("ray"))


# ----------------------------------------------------------------------------- the cluster
def connect(c) -> None:
    """Make this process a driver of the cluster: the pools then use that connection."""
    import ray

    ray.init(address=c.address, log_to_driver=False)


def restart_worker(c) -> None:
    c.start_node(WORKER)
    c.wait_for_cpus(2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head and one worker node, one CPU each; this process is a driver of it."""
    from cadvlm.parallel.local_cluster import LocalCluster

    mark = tmp_path_factory.mktemp("mark") / "worker-busy"
    tests = str(Path(__file__).resolve().parent)
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH")) if p)
    c = LocalCluster(workers=1, cpus=1, env={"CADVLM_TEST_MARK": str(mark), "PYTHONPATH": path})
    c.mark = mark
    saved = {k: os.environ.get(k) for k in c.client_env}
    os.environ.update(c.client_env)
    try:
        connect(c)
        c.wait_for_cpus(2)
        yield c
    finally:
        import ray

        ray.shutdown()
        c.close()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _ray(c, memory_mb: int = 0) -> ParallelConfig:
    return ParallelConfig("ray", c.address, memory_mb)


def tree_digest(folder: Path) -> dict:
    """{relative path: sha256} of every file under folder."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ----------------------------------------------------------------------------- the stages
def _pipeline(root: Path, parallel: ParallelConfig | None) -> dict:
    """synthesize -> extract -> render -> convert -> oracle scoring of the test split, under root."""
    from cadvlm.data.convert import ConvertConfig, convert
    from cadvlm.eval.scoring import ScoreConfig, score_answers
    from cadvlm.render.pipeline import RenderJob
    from cadvlm.render.stage import run_render
    from cadvlm.render.views import RenderSettings
    from cadvlm.synth import write_dataset

    kw = {"parallel": parallel} if parallel else {}
    write_dataset(root / "raw", N_MODELS, seed=0, workers=2, progress=False, **kw)
    extract(ExtractConfig(root / "raw", root / "extracted", SIZES, workers=2, **kw))
    run_render(root / "extracted", root / "rendered", RenderJob(settings=RenderSettings(size=96, supersample=2)),
               workers=2, progress=False, **kw)
    conv = ConvertConfig(format="compact", **kw)
    convert(root / "extracted", root / "rendered", root / "converted", conv)
    test = json.loads((root / "converted" / "test.json").read_text())
    samples = [{"id": s["model_id"], "method": "oracle", "answer": s["conversations"][1]["value"],
                "truth": str(root / "extracted" / "json" / f"{s['model_id']}.json")} for s in test[:3]]
    rows = score_answers(samples, ScoreConfig(workers=2, n_points=512, progress=False, parallel=parallel), conv.code)
    folders = ("raw", "extracted", "rendered", "converted")
    return {"root": root, "rows": rows, **{d: tree_digest(root / d) for d in folders}}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The same small run on this machine's pool: what the cluster must reproduce byte for byte."""
    return _pipeline(tmp_path_factory.mktemp("local"), None)


@pytest.mark.slow
@needs_ray
def test_the_stages_on_a_two_node_cluster_write_the_same_bytes_as_the_local_pool(cluster, reference, tmp_path):
    got = _pipeline(tmp_path, _ray(cluster, memory_mb=4096))
    for folder in ("raw", "extracted", "rendered", "converted"):
        assert got[folder] == reference[folder], f"{folder} differs between Ray and the local pool"
    chosen = sum(f.startswith("json/") for f in reference["extracted"])
    assert len(reference["raw"]) == N_MODELS and chosen >= 12
    assert sum(f.endswith(".png") for f in reference["rendered"]) == chosen  # every chosen model drawn
    assert [r["status"] for r in got["rows"]] == ["ok"] * 3 and got["rows"] == reference["rows"]


@pytest.mark.slow
@needs_ray
def test_a_hung_build_a_crash_and_a_memory_hog_are_counted_and_the_stage_goes_on(cluster, tmp_path):
    """extract on the cluster with a check that hangs on one model, kills its worker on another and
    reserves more than the memory cap on a third: each is skipped under its reason, the rest chosen."""
    import ray

    from cadvlm.synth import write_dataset

    n = 12
    write_dataset(tmp_path / "raw", n, seed=0, workers=2, progress=False)
    sizes = {"train": n, "validation": n, "test": n}  # every model is needed
    ray.shutdown()  # as in `dvc repro`: the stage's pool joins the cluster by its address, and leaves it
    try:
        t0 = time.perf_counter()
        m = extract(ExtractConfig(tmp_path / "raw", tmp_path / "out", sizes, timeout_s=3,
                                  parallel=_ray(cluster, 2048)), check=_check_with_victims)
        assert time.perf_counter() - t0 < 120 and not ray.is_initialized()
    finally:
        if not ray.is_initialized():
            connect(cluster)
    assert m["skipped"] == {"timeout": 1, "worker_crashed": 1, "worker_error": 1}
    chosen = {i for ids in json.loads((tmp_path / "out" / "split.json").read_text()).values() for i in ids}
    assert len(chosen) == n - 3 and not chosen & {HANG, CRASH, GREEDY}


@pytest.mark.slow
@needs_ray
def test_killing_the_worker_node_mid_run_loses_nothing(cluster, reference, tmp_path):
    """The worker node dies in the middle of a task of extract: its tasks are retried on the head,
    and the subset is complete and the same bytes; then a bare pool run shows it task by task."""
    def kill_when_busy():
        deadline = time.monotonic() + 120
        while not cluster.mark.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        if cluster.mark.exists():
            cluster.stop_node(WORKER)

    cluster.mark.unlink(missing_ok=True)
    killer = threading.Thread(target=kill_when_busy, daemon=True)
    try:
        killer.start()
        extract(ExtractConfig(reference["root"] / "raw", tmp_path / "extracted", SIZES, parallel=_ray(cluster)),
                check=_check_slowly)
        killer.join(5)
        assert cluster.nodes[WORKER].poll() is not None, "the worker node never took a task"
        assert tree_digest(tmp_path / "extracted") == reference["extracted"]

        restart_worker(cluster)
        with make_pool(2, 30, (), _ray(cluster)) as pool:
            outcomes = []
            for o in pool.run(_square_where, range(16)):
                outcomes.append(o)
                if o.status == "ok" and o.value[1] == WORKER and cluster.nodes[WORKER].poll() is None:
                    cluster.stop_node(WORKER)  # while its actor runs the next task it was given
            assert sorted((o.index, o.status, o.value[0]) for o in outcomes) == [(i, "ok", i * i) for i in range(16)]
            assert pool.restarts >= 1  # the worker node's actor was lost, its tasks sent to the head
    finally:
        cluster.mark.unlink(missing_ok=True)
        if cluster.nodes[WORKER].poll() is not None:  # leave the cluster as the other tests found it
            restart_worker(cluster)
