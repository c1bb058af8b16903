"""DVC stage `train`: fine-tune the VLM on the converted conversations.

Reads params.yaml (`base.seed`, `model`, `lora`, `train`), data/converted/{train,val}.json and
the pictures under data/rendered/; writes models/ (weights or adapter + processor, loadable with
`cadvlm.model.load.load_trained`), metrics/train.json and the DVCLive folder metrics/train/
(metrics.json + loss curves for `dvc plots`).

Launch:
    python stages/train.py                                  # one process (CPU or one GPU)
    accelerate launch --num_processes 4 stages/train.py     # 4 GPUs, DDP
    torchrun --nproc_per_node 4 stages/train.py             # same, with torchrun
Under DVC the launcher is the `train.launcher` param, interpolated into the stage command:
    dvc exp run -S 'train.launcher=accelerate launch --num_processes 4'
`train.batch_size` is per device: the effective batch is batch_size x grad_accum x GPUs.

An interrupted run (killed, preempted) resumes from its last checkpoint in `train.checkpoint_dir`
when rerun with the same params and data.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    import argparse

    from cadvlm.train import train

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=ROOT,
                    help="project folder holding params.yaml, data/, models/, metrics/ (default: this repo)")
    root = ap.parse_args(argv).root
    params = yaml.safe_load((root / "params.yaml").read_text())
    train(
        params,
        data_dir=root / "data" / "converted",
        image_root=root / "data" / "rendered",
        model_dir=root / "models",
        checkpoint_dir=root / params["train"]["checkpoint_dir"],
        live_dir=root / "metrics" / "train",
        metrics_path=root / "metrics" / "train.json",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
