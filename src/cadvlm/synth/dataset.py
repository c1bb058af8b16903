"""The synthesize stage's work: models 0..n-1 written as DeepCAD JSON files, with their metrics.

The folder is exactly the requested set, each file written whole, and its bytes depend only on
(seed, index, config): never on the number of worker processes or the order they finish in.
"""

from __future__ import annotations

import json
import os

from cadvlm.cad.deepcad_json import dumps
from cadvlm.cad.model import CADError
from cadvlm.synth.generate import SynthConfig, generate, model_id
from cadvlm.synth.stats import StatsAccumulator


def _work(args):
    index, seed, config = args
    try:
        g = generate(index, seed, config)
    except CADError as exc:
        return index, None, exc.reason, None
    return index, dumps(g.data), None, g


def write_dataset(out_dir, n_models: int, seed: int = 0, config: SynthConfig | None = None, workers: int = 1,
                  progress: bool = True) -> dict:
    """Write models 0..n_models-1 as <out_dir>/<model_id>.json; return the statistics (metrics dict).

    Files are written whole (temp file, then rename); files of other ids in out_dir are removed,
    so the folder is exactly this set.
    """
    from pathlib import Path

    from tqdm import tqdm

    config = config or SynthConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keep = {model_id(i) + ".json" for i in range(n_models)}
    for p in [*out.glob("*.json"), *out.glob("*.json.tmp")]:
        if p.name not in keep:
            p.unlink()
    stats = StatsAccumulator()
    jobs = [(i, seed, config) for i in range(n_models)]
    workers = (os.cpu_count() or 1) if workers in (0, None) else int(workers)
    bar = tqdm(total=n_models, desc="synthesize", unit="model", disable=not progress)

    def consume(results):
        for index, text, reason, g in results:
            if text is None:
                stats.skip(reason)
            else:
                path = out / (model_id(index) + ".json")
                tmp = path.with_suffix(".json.tmp")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, path)
                stats.add(g)
            bar.update(1)

    if workers > 1 and n_models > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            consume(pool.imap(_work, jobs, chunksize=4))
    else:
        consume(map(_work, jobs))
    bar.close()
    return stats.metrics()


def write_metrics(path, metrics: dict) -> None:
    from pathlib import Path

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
