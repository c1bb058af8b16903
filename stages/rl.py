"""DVC stage `rl`: GRPO on a geometric reward from the SFT model -> the final models/ (see cadvlm.rl.grpo)."""

import sys
from pathlib import Path

from cadvlm.params import load_params
from cadvlm.rl.grpo import run_rl

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    params = load_params(ROOT / "params.yaml")
    run_rl(params, sft_dir=ROOT / "models_sft", converted_dir=ROOT / "data/converted",
           image_root=ROOT / "data/rendered", out_dir=ROOT / "models", checkpoint_dir=ROOT / "checkpoints/rl",
           live_dir=ROOT / "metrics/rl", metrics_path=ROOT / "metrics/rl.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
