"""DVC stage `train`: fine-tune the VLM on the converted conversations (see cadvlm.train).

Launch: `python stages/train.py` (CPU or one GPU), `accelerate launch --num_processes 4 stages/train.py`
or `torchrun --nproc_per_node 4 stages/train.py`; under DVC the launcher is `train.launcher`.
"""

import argparse
import sys
from pathlib import Path

from cadvlm.params import load_params
from cadvlm.train import train

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT, help="project folder with params.yaml and data/")
    root = ap.parse_args(argv).root
    params = load_params(root / "params.yaml")
    train(params, data_dir=root / "data/converted", image_root=root / "data/rendered", model_dir=root / "models_sft",
          checkpoint_dir=root / params["train"]["checkpoint_dir"], live_dir=root / "metrics/train",
          metrics_path=root / "metrics/train.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
