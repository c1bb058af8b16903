"""DVC stage `synthesize`: procedural DeepCAD-format parts -> data/raw/synthetic/<id>.json.

Model i depends only on (base.seed, i) and the generator settings, so growing n_models keeps
every earlier file byte-identical. Statistics go to metrics/synthesize.json; a model past the
per-model time limit is killed and counted there as skipped (timeout).
"""

from pathlib import Path

from cadvlm.parallel import ParallelConfig
from cadvlm.params import load_params
from cadvlm.synth import SynthConfig, format_stats, write_dataset, write_metrics

OUT_DIR = Path("data/raw/synthetic")
METRICS = Path("metrics/synthesize.json")


def main() -> None:
    params = load_params()
    p = params.get("synthesize", {})
    config = SynthConfig.from_params(p)
    metrics = write_dataset(OUT_DIR, int(p.get("n_models", 1400)), seed=int(params["base"]["seed"]),
                            config=config, workers=int(p.get("workers", 2)),
                            timeout_s=float(p.get("timeout_s", 120)), parallel=ParallelConfig.from_params(params))
    write_metrics(METRICS, metrics)
    print(format_stats(metrics))


if __name__ == "__main__":
    main()
