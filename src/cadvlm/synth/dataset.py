"""The synthesize stage's work: models 0..n-1 written as DeepCAD JSON files, with their metrics.

The folder is exactly the requested set, each file written whole, and its bytes depend only on
(seed, index, config): never on the number of worker processes or the order they finish in.

Models are drawn and built in `cadvlm.sandbox.TimeLimitedPool` workers, as rendering and
evaluation build theirs: a draw whose boolean runs for minutes inside OpenCascade, or that kills
its worker, costs that one model (counted in the metrics' `skipped` as `timeout` or
`worker_crashed`), never the stage. Results are taken into the statistics in index order, so the
metrics too are the same whatever the worker count.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cadvlm.cad.deepcad_json import dumps
from cadvlm.cad.model import CADError
from cadvlm.synth.generate import SynthConfig, generate, model_id
from cadvlm.synth.stats import StatsAccumulator

# Imported by each worker before it takes a model, so the time limit counts drawing and building only.
WARMUP = ("cadvlm.synth.generate", "cadvlm.geometry.solid")
# What a task that did not come back is counted as, by the sandbox's outcome status.
LOST = {"timeout": "timeout", "crash": "worker_crashed"}


def _generate_one(args):
    """Worker entry: (index, seed, config) -> (JSON text, None, Generated), or (None, reason, None)."""
    index, seed, config = args
    try:
        g = generate(index, seed, config)
    except CADError as exc:
        return None, exc.reason, None
    return dumps(g.data), None, g


def write_dataset(out_dir, n_models: int, seed: int = 0, config: SynthConfig | None = None, workers: int = 1,
                  progress: bool = True, timeout_s: float = 120.0, parallel=None) -> dict:
    """Write models 0..n_models-1 as <out_dir>/<model_id>.json; return the statistics (metrics dict).

    Each model is drawn in a worker process (`workers`, 0 = all cores; or on a Ray cluster, by
    `parallel`: a cadvlm.parallel.ParallelConfig) and must come back within `timeout_s` seconds;
    one that does not, or whose worker dies, is skipped and counted by reason. The workers return
    the JSON text and this process writes it. Files are written whole (temp file, then rename);
    files of other ids in out_dir, and the old file of a model skipped this time, are removed, so
    the folder is exactly this run's set.
    """
    from tqdm import tqdm

    from cadvlm.parallel import make_pool

    config = config or SynthConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keep = {model_id(i) + ".json" for i in range(n_models)}
    for p in [*out.glob("*.json"), *out.glob("*.json.tmp")]:
        if p.name not in keep:
            p.unlink()
    stats = StatsAccumulator()
    done: dict[int, tuple] = {}  # finished out of order, waiting for their turn in the statistics
    turn = 0
    bar = tqdm(total=n_models, desc="synthesize", unit="model", disable=not progress)
    with make_pool(workers, timeout_s, WARMUP, parallel) as pool:
        jobs = ((i, seed, config) for i in range(n_models))
        for o in pool.run(_generate_one, jobs) if n_models > 0 else ():
            if o.status == "ok":
                text, reason, g = o.value
            else:  # the task turns CADError into a reason: any other exception is a bug, counted, not fatal
                reason = LOST.get(o.status) or "unexpected_" + o.error.split(":")[0].replace(" ", "_")
                text, g = None, None
            path = out / (model_id(o.index) + ".json")
            if text is None:
                path.unlink(missing_ok=True)
            else:
                tmp = path.with_suffix(".json.tmp")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, path)
            done[o.index] = (reason, g)
            while turn in done:
                reason, g = done.pop(turn)
                if g is None:
                    stats.skip(reason)
                else:
                    stats.add(g)
                turn += 1
            bar.update(1)
    bar.close()
    return stats.metrics()


def write_metrics(path, metrics: dict) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
