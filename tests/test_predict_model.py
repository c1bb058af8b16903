"""The real model path of `cadvlm predict` and of the evaluate stage, with a random tiny model.

The model is untrained, so its answers are noise: what is checked is the plumbing (load the
train stage's folder format, compose the picture, prompt, greedy generation, isolation of the
build) and that noise is handled as an invalid answer, not a crash.
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # builds and runs a (tiny) VLM: end to end


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    pytest.importorskip("torch")
    from fake_data import write_untrained_model

    return write_untrained_model(tmp_path_factory.mktemp("models"))


def test_predict_with_a_real_model_folder(tiny_model_dir, tmp_path):
    from cadvlm.cli import main

    pic = tmp_path / "grid.png"
    Image.new("L", (256, 256), 255).save(pic)
    out = tmp_path / "pred"
    code = main(["predict", str(pic), "--model", str(tiny_model_dir), "-o", str(out), "--max-new-tokens", "12",
                 "--device", "cpu"])
    assert code == 1  # noise does not build; the answer is kept
    assert (out / "answer.txt").is_file() and (out / "part.py").is_file() and (out / "input.png").is_file()
    assert not (out / "part.step").exists()


def test_stage_generates_with_the_trained_model(tiny_model_dir, tmp_path):
    from cadvlm.eval.stage import EvalConfig, ScoreConfig, run_stage
    from test_evaluate_stage import N_TEST, make_project

    root = make_project(tmp_path / "proj")
    cfg = EvalConfig(converted_dir=root / "converted", rendered_dir=root / "rendered",
                     extracted_dir=root / "extracted", model_dir=tiny_model_dir, out_dir=tmp_path / "eval",
                     metrics_path=tmp_path / "eval.json", max_new_tokens=8, batch_size=4, baseline_candidates=0,
                     sheet_samples=2, score=ScoreConfig(workers=2, timeout_s=60, progress=False))
    run_stage(cfg)
    m = json.loads(cfg.metrics_path.read_text())
    assert m["n"] == N_TEST and m["invalid_ratio"] == 1.0  # 8 tokens of noise: nothing builds
    assert sum(m["invalid_by_reason"].values()) == N_TEST
    assert m["baselines"]["oracle"]["invalid_ratio"] == 0.0
    assert len((cfg.out_dir / "generations.jsonl").read_text().splitlines()) == N_TEST
