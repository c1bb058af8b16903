"""The rl stage (cadvlm.rl.grpo): GRPO steps from an SFT folder write a folder under the same contract,
with its curves; rl.steps 0 passes the SFT folder through; bad settings are named before any step."""

from __future__ import annotations

import json

import pytest
import yaml

from cadvlm.eval.stage import same_files
from cadvlm.model.load import load_trained
from cadvlm.model.manifest import ModelManifest
from cadvlm.rl.grpo import run_rl
from test_train import make_project, run_train

RL = {"steps": 2, "reward": "iou", "invalid_penalty": -1.0, "group_size": 2, "prompts_per_step": 2,
      "temperature": 1.0, "kl": 0.04, "lr": 1e-4, "max_new_tokens": 32, "prompts": "train", "fresh_parts": 4,
      "unlabeled_dir": None, "max_prompts": 0, "workers": 1, "timeout_s": 30, "cpu_threads": 1, "seed": None,
      "deterministic": True, "progress": False}


@pytest.fixture(scope="module")
def sft(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("rl"), n_train=8, n_val=2, epochs=1, eval_on_start=False)
    run_train(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["rl"] = dict(RL)
    return root, params


def _run(root, params, out="final", **overrides):
    params = {**params, "rl": {**params["rl"], **overrides}}
    return run_rl(params, root / "models", root / "data" / "converted", root / "data" / "rendered", root / out,
                  root / "checkpoints" / "rl", live_dir=root / "metrics" / f"rl_{out}",
                  metrics_path=root / "metrics" / f"rl_{out}.json")


def test_steps_write_a_folder_under_the_same_contract(sft):
    root, params = sft
    metrics = _run(root, params)
    out = root / "final"
    assert ModelManifest.read(out) == ModelManifest.read(root / "models")
    assert not same_files(out, root / "models")  # the weights moved
    model, processor = load_trained(out, device="cpu")
    assert model is not None and processor is not None
    assert metrics["steps"] == 2 and metrics["answers"] == 2 * 2 * 2 and metrics["prompts"] == 8
    assert metrics["reward_first5"] is not None and -1.0 <= metrics["reward_first5"] <= 1.0
    assert 0.0 <= metrics["invalid_first5"] <= 1.0
    assert json.loads((root / "metrics" / "rl_final.json").read_text()) == metrics
    curves = root / "metrics" / "rl_final" / "plots" / "metrics"
    for name in ("reward/mean", "reward/sd", "invalid", "kl", "length"):
        rows = (curves / f"{name}.tsv").read_text().splitlines()
        assert rows[0].startswith("step") and len(rows) == 3, name  # a point per step
    assert not (root / "checkpoints" / "rl").exists()
    assert (out / "retrieval.npz").read_bytes() == (root / "models" / "retrieval.npz").read_bytes()  # carried over


def test_zero_steps_pass_the_sft_model_through(sft):
    root, params = sft
    metrics = _run(root, params, out="same", steps=0)
    assert metrics["passed_through"] and same_files(root / "same", root / "models")


def test_bad_settings_are_named_before_training(sft, tmp_path):
    root, params = sft
    with pytest.raises(ValueError, match="rl.prompts"):
        _run(root, params, out="bad1", prompts="web")
    with pytest.raises(ValueError, match="unlabeled_dir"):
        _run(root, params, out="bad2", prompts="unlabeled")
    (tmp_path / "pics").mkdir()
    with pytest.raises(ValueError, match="no PNG"):
        _run(root, params, out="bad3", prompts="unlabeled", unlabeled_dir=str(tmp_path / "pics"))
    from PIL import Image

    Image.new("RGB", (32, 32), "white").save(tmp_path / "pics" / "a.png")
    with pytest.raises(ValueError, match="rl.reward=views"):
        _run(root, params, out="bad4", prompts="unlabeled", unlabeled_dir=str(tmp_path / "pics"))
    with pytest.raises(ValueError, match="rl.reward"):
        _run(root, params, out="bad5", reward="likelihood")
