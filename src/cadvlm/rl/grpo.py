"""Reinforce what builds and matches: GRPO (TRL's GRPOTrainer) from the SFT model, on a geometric reward.

Why RL after SFT: token likelihood on a thousand pictures teaches the tiny model the language but
not to read a drawing; the leading image-to-CAD systems (cadrille, CADEvolve) gain most of their
last step from RL on a reward computed on the rebuilt solid. GRPO needs no value model: for each
picture it samples `rl.group_size` answers, scores each (`cadvlm.rl.reward`: built in the
sandbox, never executed), and pushes up the answers that beat their group's mean, with a KL term
(`rl.kl`) that keeps the policy near the SFT model. RLOO would do the same with a leave-one-out
baseline; GRPOTrainer is TRL's maintained path for vision-language models, so it is used.

The recipe (`run_rl`): read the SFT folder's manifest, seed, load the SFT weights as trainable
(full weights, or the LoRA adapter over its base), build the prompts (`cadvlm.rl.prompts`), run
GRPOTrainer, save the final folder under the same contract as the train stage's (weights or
adapter, processor, the SFT folder's manifest and its bank of training pictures), write
metrics/rl.json and DVCLive curves.
`rl.steps: 0` passes the SFT folder through unchanged (hard links where the disk allows).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from cadvlm.model.manifest import ModelManifest
from cadvlm.model.retrieval import carry_bank
from cadvlm.rl.reward import GeometricReward, RewardConfig


def _copy_folder(src: Path, dst: Path) -> None:
    """dst = a copy of src, by hard links where the file system allows (a large base costs no space)."""
    def link(a, b):
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, copy_function=link)


def _inside(folder: Path, base: str | None) -> bool:
    """True when a LoRA folder's base is a folder inside it (the tiny base, `base`), not a hub id or a
    path elsewhere: only then does the final folder need its own copy (never touch a user's base)."""
    if not base or Path(base).is_absolute():
        return False
    inner = (folder / base).resolve()
    return inner.is_dir() and folder.resolve() in inner.parents


def _load_policy(sft_dir: Path, info: ModelManifest, on_gpu: bool):
    """The SFT model, trainable, and its processor."""
    from cadvlm.model.load import load_base

    if info.weights == "full":
        return load_base(sft_dir, dtype=torch.float32)
    from peft import PeftModel

    base = sft_dir / info.base if _inside(sft_dir, info.base) else info.base
    model, processor = load_base(base, dtype=torch.bfloat16 if on_gpu else torch.float32)
    model = PeftModel.from_pretrained(model, str(sft_dir), is_trainable=True)
    from cadvlm.model.load import load_processor

    return model, load_processor(sft_dir)


def _save(model, processor, sft_dir: Path, info: ModelManifest, out_dir: Path) -> None:
    """The final folder under the train stage's contract: weights or adapter, processor, manifest, bank."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    if info.weights == "lora" and _inside(sft_dir, info.base):
        _copy_folder(sft_dir / info.base, out_dir / info.base)  # the tiny base rides inside the folder
    info.write(out_dir)
    carry_bank(sft_dir, out_dir)  # the training pictures for `--candidates nearest`, when the SFT folder has them


class RLLiveCallback(TrainerCallback):
    """DVCLive curves of the RL run at the optimiser step: reward mean and sd, invalid share, KL, length."""

    def __init__(self, live_dir, reward):
        from dvclive import Live

        self.live = Live(str(live_dir), dvcyaml=False, save_dvc_exp=False, report=None)
        self.reward = reward
        self.history: list[dict] = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "reward" not in logs:
            return
        points = {"reward/mean": logs["reward"], "reward/sd": logs.get("reward_std"),
                  "invalid": self.reward.step_invalid(), "kl": logs.get("kl"),
                  "length": logs.get("completions/mean_length"), "loss": logs.get("loss")}
        points = {k: float(v) for k, v in points.items() if v is not None}
        self.live.step = state.global_step
        for name, value in points.items():
            self.live.log_metric(name, value)
        self.live.make_summary()
        self.history.append({"step": state.global_step, **points})

    def on_train_end(self, args, state, control, **kwargs):
        self.live.end()


def rl_config(pr: dict, seed: int, out: Path, on_gpu: bool):
    """TRL's GRPOConfig from params.yaml's `rl` section."""
    from trl import GRPOConfig

    group = int(pr["group_size"])
    prompts = int(pr["prompts_per_step"])
    return GRPOConfig(
        output_dir=str(out), max_steps=int(pr["steps"]), learning_rate=float(pr["lr"]),
        per_device_train_batch_size=prompts * group, num_generations=group,
        gradient_accumulation_steps=1, steps_per_generation=1,
        temperature=float(pr["temperature"]), top_p=1.0, top_k=0,
        max_completion_length=int(pr["max_new_tokens"]), beta=float(pr["kl"]),
        loss_type=pr.get("loss_type", "grpo"), scale_rewards=pr.get("scale_rewards", "group"),
        lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        logging_steps=1, save_strategy="no", report_to="none", seed=seed, data_seed=seed,
        use_cpu=not on_gpu, bf16=on_gpu and torch.cuda.is_bf16_supported(),
        remove_unused_columns=False, dataloader_num_workers=0, disable_tqdm=not pr.get("progress", True),
        shuffle_dataset=True, log_completions=False, gradient_checkpointing=False,
    )


def run_rl(params: dict, sft_dir, converted_dir, image_root, out_dir, checkpoint_dir,
           live_dir=None, metrics_path=None) -> dict:
    """Run the rl stage; returns the metrics (also written to `metrics_path`)."""
    from trl import GRPOTrainer

    from cadvlm.rl.prompts import fresh_rows, to_dataset, training_rows, unlabeled_rows
    from cadvlm.train import make_deterministic

    t0 = time.time()
    pr = params["rl"]
    seed = params["base"]["seed"] if pr.get("seed") is None else int(pr["seed"])
    sft_dir, out_dir = Path(sft_dir), Path(out_dir)
    info = ModelManifest.read(sft_dir)
    steps = int(pr["steps"])
    metrics: dict = {"steps": steps, "reward": pr["reward"], "seed": seed}
    if steps <= 0:
        _copy_folder(sft_dir, out_dir)
        if live_dir:  # DVC wants the declared folder: a summary that says no step ran
            Path(live_dir).mkdir(parents=True, exist_ok=True)
            (Path(live_dir) / "metrics.json").write_text(json.dumps({"steps": 0}) + "\n")
        metrics.update(passed_through=True, seconds=round(time.time() - t0, 1))
        return _write(metrics, metrics_path)

    on_gpu = torch.cuda.is_available()
    threads = make_deterministic(seed, pr, on_gpu)
    reward = StepReward(RewardConfig(pr["reward"], float(pr["invalid_penalty"]), int(pr.get("workers", 2)),
                                     float(pr.get("timeout_s", 20)), seed=seed),
                        info.code, info.render_params())
    try:
        source = pr.get("prompts", "train")
        if source == "train":
            rows = training_rows(Path(converted_dir), Path(image_root), int(pr.get("max_prompts", 0)))
        elif source == "unlabeled":
            if not pr.get("unlabeled_dir"):
                raise ValueError("rl.prompts=unlabeled needs rl.unlabeled_dir (a folder of pictures)")
            rows = unlabeled_rows(Path(pr["unlabeled_dir"]), info)
        elif source == "fresh":
            rows = fresh_rows(int(pr["fresh_parts"]), seed, info, reward.pool, Path(checkpoint_dir) / "fresh")
        else:
            raise ValueError(f"rl.prompts must be train, unlabeled or fresh, not {source!r}")
        if pr["reward"] != "views" and any(r["truth"] is None for r in rows):
            raise ValueError(f"rl.reward={pr['reward']} needs a truth for every picture; use rl.reward=views")
        model, processor = _load_policy(sft_dir, info, on_gpu)
        config = rl_config(pr, seed, Path(checkpoint_dir), on_gpu)
        live = RLLiveCallback(live_dir, reward) if live_dir else None
        trainer = GRPOTrainer(model=model, reward_funcs=[reward], args=config, train_dataset=to_dataset(rows),
                              processing_class=processor, callbacks=[live] if live else None)
        t_train = time.time()
        result = trainer.train()
        _save(trainer.model, processor, sft_dir, info, out_dir)
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    finally:
        reward.close()
    history = live.history if live else []
    first, last = history[:5], history[-5:]
    mean = lambda rows, k: round(sum(r[k] for r in rows) / len(rows), 4) if rows and all(k in r for r in rows) else None
    metrics.update(prompts=len(rows), prompt_source=source, group_size=int(pr["group_size"]),
                   prompts_per_step=int(pr["prompts_per_step"]), answers=steps * int(pr["group_size"]) *
                   int(pr["prompts_per_step"]), reward_first5=mean(first, "reward/mean"),
                   reward_last5=mean(last, "reward/mean"), invalid_first5=mean(first, "invalid"),
                   invalid_last5=mean(last, "invalid"), kl_last5=mean(last, "kl"), cpu_threads=threads,
                   train_seconds=round(time.time() - t_train, 1), seconds=round(time.time() - t0, 1),
                   train_loss=round(float(result.training_loss), 5))
    return _write(metrics, metrics_path)


class StepReward(GeometricReward):
    """GeometricReward that also remembers the share of invalid answers of every call since the last log."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._seen: list[float] = []

    def score(self, answers, truths=None, pictures=None, views=None):
        values = super().score(answers, truths, pictures, views)
        self._seen.append(self.last_invalid)
        return values

    def step_invalid(self) -> float | None:
        seen, self._seen = self._seen, []
        return sum(seen) / len(seen) if seen else None


def _write(metrics: dict, path) -> dict:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics
