"""DVC stage `evaluate`: the trained model on the test split -> metrics/eval.json + per-sample table.

Reads params.yaml (`base.seed`, `eval`), data/converted/{test,train}.json, data/rendered/,
data/extracted/ (ground-truth JSON and the split) and models/; writes metrics/eval.json (the
model's figures with the oracle and constant-answer baselines beside them), data/eval/samples.csv
(one row per sample and method), data/eval/generations.jsonl (the raw answers) and
data/eval/compare.png (truth views beside the prediction's, best and worst samples).
"""

from __future__ import annotations

from pathlib import Path

from cadvlm.evaluate import EvalConfig, ScoreConfig, run_stage
from cadvlm.params import load_params


def main() -> None:
    params = load_params()
    e = params["eval"]
    cfg = EvalConfig(
        max_new_tokens=int(e["max_new_tokens"]),
        batch_size=int(e["batch_size"]),
        baseline_candidates=int(e["baseline_candidates"]),
        nearest_baseline=bool(e.get("nearest_baseline", True)),
        sheet_samples=int(e["sheet_samples"]),
        cpu_threads=int(e.get("cpu_threads", 0)),
        out_dir=Path("data/eval"),
        metrics_path=Path("metrics/eval.json"),
        score=ScoreConfig(workers=int(e["workers"]), timeout_s=float(e["timeout_s"]),
                          seed=int(params["base"]["seed"]), n_points=int(e["n_points"])),
    )
    run_stage(cfg)


if __name__ == "__main__":
    main()
