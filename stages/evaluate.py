"""DVC stage `evaluate`: the trained model on the test split -> metrics/eval.json (see cadvlm.eval.stage).

Writes metrics/eval.json (the model's figures with the oracle, constant-answer and nearest-picture
baselines beside them), data/eval/samples.csv (one row per sample and method),
data/eval/generations.jsonl (the raw answers) and data/eval/compare.png (truth beside prediction).
"""

from cadvlm.eval.stage import EvalConfig, run_stage
from cadvlm.parallel import ParallelConfig
from cadvlm.params import load_params


def main() -> None:
    params = load_params()
    cfg = EvalConfig.from_params(params)
    cfg.score.parallel = ParallelConfig.from_params(params)  # where the scoring runs (local pool or Ray)
    run_stage(cfg)


if __name__ == "__main__":
    main()
