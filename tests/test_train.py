"""The train stage end to end on a tiny model and a fake dataset: outputs, metrics, LoRA, resume."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from cadvlm.decode.generate import generate_code
from cadvlm.model.load import load_trained
from fake_data import write_fake_dataset
from cadvlm.train import last_complete_checkpoint, train

REPO = Path(__file__).resolve().parents[1]


def tiny_params(**train_overrides) -> dict:
    """params.yaml-shaped dict: the repo's own sections, shrunk to seconds of CPU."""
    tr = {"method": "full", "epochs": 2, "batch_size": 4, "eval_batch_size": 4, "grad_accum": 1, "lr": 3e-3,
          "warmup_ratio": 0.1, "weight_decay": 0.01, "max_grad_norm": 1.0, "max_length": 1024,
          "group_by_length": True, "evals_per_epoch": 1, "eval_on_start": True, "save_steps": 2,
          "save_total_limit": 2, "logging_steps": 1, "num_workers": 0, "checkpoint_dir": "checkpoints/train",
          "keep_checkpoints": False, "progress": False}
    tr.update(train_overrides)
    return {
        "base": {"seed": 0},
        "model": {"base": "tiny", "attn_implementation": "sdpa",
                  "tiny": {"vocab_size": 400, "image_size": 32, "patch_size": 16, "vision_hidden_size": 16,
                           "vision_layers": 1, "vision_heads": 2, "hidden_size": 32, "intermediate_size": 64,
                           "layers": 1, "heads": 2}},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
                 "vision_tower": False, "vision_target_modules": ["q_proj", "v_proj"],
                 "modules_to_save": ["multi_modal_projector"], "merge_on_export": False},
        "train": tr,
    }


def make_project(root: Path, n_train: int = 16, n_val: int = 4, **train_overrides) -> Path:
    """A folder shaped like the repo (params.yaml, data/converted, data/rendered) for the stage script."""
    write_fake_dataset(root / "data", n_train, n_val, seed=0, max_chars=700, image_size=96)
    (root / "params.yaml").write_text(yaml.safe_dump(tiny_params(**train_overrides)))
    return root


def run_train(root: Path, **kw) -> dict:
    params = yaml.safe_load((root / "params.yaml").read_text())
    return train(params, root / "data" / "converted", root / "data" / "rendered", root / "models",
                 root / params["train"]["checkpoint_dir"], live_dir=root / "metrics" / "train",
                 metrics_path=root / "metrics" / "train.json", **kw)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    root = make_project(tmp_path_factory.mktemp("full"))
    return root, run_train(root)


def test_full_run_outputs(full_run):
    root, metrics = full_run
    saved = json.loads((root / "metrics" / "train.json").read_text())
    assert saved == metrics
    for key in ("train_loss_first_epoch", "train_loss_last_epoch", "train_loss_reduction_pct", "val_loss_first",
                "val_loss_last", "val_loss_reduction_pct", "samples_per_s", "tokens_per_s", "train_runtime_s",
                "dropped_too_long_train", "n_params"):
        assert metrics[key] is not None, key
    assert metrics["val_loss_first_step"] == 0  # evaluated before training: the random-init baseline
    assert metrics["val_loss_last"] < metrics["val_loss_first"]
    assert metrics["epochs"] == 2 and metrics["n_train"] == 16 and metrics["resumed_from_step"] is None
    assert metrics["n_trainable_params"] == metrics["n_params"]
    assert not (root / "checkpoints" / "train").exists()  # removed after a finished run
    assert json.loads((root / "models" / "cadvlm_model.json").read_text())["weights"] == "full"
    assert not (root / "models" / "base").exists()
    from cadvlm.model.retrieval import RetrievalBank

    bank = RetrievalBank.load(root / "models")  # the training pictures and answers, for --candidates nearest
    items = json.loads((root / "data" / "converted" / "train.json").read_text())
    assert bank.ids == [x["id"] for x in items] and len(bank) == metrics["n_train"]
    assert [bank.answer(i) for i in range(len(bank))] == [x["conversations"][1]["value"] for x in items]


def test_full_run_dvclive_files(full_run):
    root, _ = full_run
    live = root / "metrics" / "train"
    summary = json.loads((live / "metrics.json").read_text())
    assert "loss" in summary["eval"] and "loss" in summary["train"]
    rows = (live / "plots" / "metrics" / "eval" / "loss.tsv").read_text().splitlines()
    assert rows[0] == "step\tloss" and [r.split("\t")[0] for r in rows[1:]] == ["0", "4", "8"]
    assert (live / "plots" / "metrics" / "train" / "loss.tsv").is_file()
    assert not (live / "dvc.yaml").exists() and not (root / "dvc.yaml").exists()


def test_trained_model_loads_and_generates(full_run):
    root, _ = full_run
    model, processor = load_trained(root / "models", device="cpu")
    assert not model.training
    out = generate_code(model, processor, [Image.new("RGB", (96, 96), "white")] * 2,
                        "Generate the CAD code for this part.", max_new_tokens=8, batch_size=2)
    assert len(out) == 2 and all(isinstance(s, str) for s in out)


@pytest.mark.parametrize("merge", [False, True])
def test_lora_run(tmp_path, merge):
    root = make_project(tmp_path, n_train=8, n_val=2, method="lora", epochs=1, eval_on_start=False)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["lora"]["merge_on_export"] = merge
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    metrics = run_train(root)
    assert 0 < metrics["n_trainable_params"] < metrics["n_params"]
    manifest = json.loads((root / "models" / "cadvlm_model.json").read_text())
    assert manifest["code_format"] == "openecad" and manifest["layout"] == "grid"  # what the data was
    if merge:
        assert (manifest["weights"], manifest["base"]) == ("full", None)
        assert not (root / "models" / "adapter_config.json").exists()
    else:
        assert (manifest["weights"], manifest["base"]) == ("lora", "base")
        assert (root / "models" / "adapter_config.json").is_file() and (root / "models" / "base").is_dir()
    model, processor = load_trained(root / "models")
    out = generate_code(model, processor, [Image.new("RGB", (96, 96), "white")], "Generate the CAD code.",
                        max_new_tokens=4)
    assert len(out) == 1 and isinstance(out[0], str)
    # the same picture and prompt through the loaded folder give the same tokens (nothing random at inference)
    assert generate_code(model, processor, [Image.new("RGB", (96, 96), "white")], "Generate the CAD code.",
                         max_new_tokens=4) == out


def test_too_long_samples_dropped_and_counted(tmp_path):
    root = make_project(tmp_path, n_train=8, n_val=2, epochs=1, eval_on_start=False, max_length=300)
    metrics = run_train(root)
    assert metrics["dropped_too_long_train"] > 0
    assert metrics["n_train"] + metrics["dropped_too_long_train"] == 8


def test_bad_input_fails_before_training(tmp_path):
    root = make_project(tmp_path, n_train=4, n_val=2)
    (root / "data" / "rendered" / "000001.png").unlink()
    with pytest.raises(ValueError, match=r"(?s)train\.json.*000001\.png"):
        run_train(root)
    assert not (root / "models").exists()


def test_changed_params_clear_stale_checkpoints(tmp_path):
    root = make_project(tmp_path, n_train=4, n_val=2)
    stale = root / "checkpoints" / "train" / "checkpoint-2"
    stale.mkdir(parents=True)
    (stale / "trainer_state.json").write_text("{}")
    (root / "checkpoints" / "train" / "fingerprint.txt").write_text("another run\n")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"].update(epochs=1, eval_on_start=False, keep_checkpoints=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    metrics = run_train(root)
    assert metrics["resumed_from_step"] is None
    assert last_complete_checkpoint(root / "checkpoints" / "train").name == "checkpoint-1"


@pytest.mark.slow
def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    """Start the real stage script, kill it once a checkpoint exists, rerun: it continues from there."""
    root = make_project(tmp_path, n_train=48, n_val=4, epochs=3, batch_size=2, save_steps=5, save_total_limit=3)
    cmd = [sys.executable, str(REPO / "stages" / "train.py"), "--root", str(root)]
    ckpts = root / "checkpoints" / "train"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            last = last_complete_checkpoint(ckpts) if ckpts.exists() else None
            if last is not None and int(last.name.split("-")[1]) >= 5:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "training ended before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    step = int(last_complete_checkpoint(ckpts).name.split("-")[1])
    assert not (root / "metrics" / "train.json").exists()
    shutil.rmtree(root / "metrics" / "train", ignore_errors=True)  # as `dvc repro` removes outputs first
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((root / "metrics" / "train.json").read_text())
    assert metrics["resumed_from_step"] == step >= 5
    assert f"resuming from {ckpts / f'checkpoint-{step}'}" in done.stdout
    curves = root / "metrics" / "train" / "plots" / "metrics"
    steps = [int(r.split("\t")[0]) for r in (curves / "train" / "loss.tsv").read_text().splitlines()[1:]]
    assert steps == list(range(1, 73))  # 48/2 x 3 steps, each logged once, from before and after the kill
    assert (curves / "eval" / "loss.tsv").read_text().splitlines()[1].startswith("0\t")  # step-0 baseline kept
    assert metrics["epochs"] == 3


@pytest.mark.slow
def test_the_trained_model_reads_the_pictures(tmp_path):
    """After training, the validation loss with each sample's own picture is clearly lower than
    with the pictures shuffled between samples. Guards the whole image path (processor, template,
    projector, frozen tower): the tiny model once learnt to ignore the picture entirely, and then
    the two losses were equal to 4 decimals."""
    import torch

    from cadvlm.data.collator import VisionTextCollator
    from cadvlm.data.conversations import ConversationDataset, load_conversations

    root = make_project(tmp_path, n_train=128, n_val=16, epochs=40, freeze_vision_tower=True, save_steps=10000,
                        eval_on_start=False, evals_per_epoch=0.25)
    run_train(root)
    model, processor = load_trained(root / "models")
    val = load_conversations(root / "data" / "converted" / "val.json", root / "data" / "rendered")
    items = [dict(x) for x in ConversationDataset(val, processor, 4096)]
    collate = VisionTextCollator(processor.tokenizer.pad_token_id)

    def loss(pictures) -> float:
        batch = collate([{**it, "pixel_values": p} for it, p in zip(items, pictures)])
        with torch.no_grad():
            return model(**batch).loss.item()

    own = [it["pixel_values"] for it in items]
    assert loss(own[1:] + own[:1]) - loss(own) > 0.01


def test_the_vision_tower_learns_at_its_own_rate(tmp_path):
    """vision_lr_scale splits the Trainer's parameter groups: the tower's weights get lr x scale on
    the same schedule, everything else lr; weight decay groups are kept apart."""
    from transformers import TrainingArguments

    from cadvlm.model.lora import is_vision_tower_param
    from cadvlm.train import LengthGroupedTrainer
    from fake_data import write_untrained_model

    model, _ = load_trained(write_untrained_model(tmp_path / "m"))
    args = TrainingArguments(output_dir=str(tmp_path / "out"), learning_rate=2e-3, weight_decay=0.01,
                             use_cpu=True, report_to="none", lr_scheduler_type="cosine", warmup_steps=2)
    trainer = LengthGroupedTrainer(model=model, args=args, vision_lr_scale=0.1)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    opt = trainer.optimizer
    tower = {id(p) for n, p in model.named_parameters() if is_vision_tower_param(n)}
    by_lr = {}
    for g in opt.param_groups:
        kinds = {id(p) in tower for p in g["params"]}
        assert len(kinds) == 1  # a group is all tower or all not
        by_lr.setdefault((kinds.pop(), g["weight_decay"]), g["initial_lr"])
    assert by_lr[(True, 0.01)] == pytest.approx(2e-4) and by_lr[(False, 0.01)] == pytest.approx(2e-3)
    assert by_lr[(True, 0.0)] == pytest.approx(2e-4) and by_lr[(False, 0.0)] == pytest.approx(2e-3)
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(1 for p in model.parameters() if p.requires_grad)
    for _ in range(4):
        opt.step()
        trainer.lr_scheduler.step()
    lrs = {(id(g["params"][0]) in tower): g["lr"] for g in opt.param_groups}
    assert lrs[True] == pytest.approx(0.1 * lrs[False]) and 0 < lrs[False] < 2e-3
