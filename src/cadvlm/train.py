"""Fine-tune a vision-language model to write OpenECAD v2 CAD code from rendered pictures.

The whole story, top to bottom (`train`): check the data, seed, build or load the base model,
wrap it in LoRA (or train it fully), make the datasets, hand everything to the Hugging Face
`Trainer`, train (resuming from the last checkpoint of an interrupted identical run), save the
model with its processor, write the metrics. Parameters come from params.yaml sections `model`,
`lora`, `train` and `base.seed`; see the comments there.

Reads data/converted/{train,val}.json and the pictures under data/rendered/; writes models/
(weights or adapter, processor, the manifest of everything inference needs:
`cadvlm.model.manifest`, and the training pictures' thumbnails and answers for lookup:
`cadvlm.model.retrieval`), metrics/train.json and the DVCLive folder metrics/train/. Several GPUs:
`accelerate launch --num_processes 4 stages/train.py` (or torchrun); `train.batch_size` is per
device, so the effective batch is batch_size x grad_accum x GPUs. An interrupted run (killed,
preempted) resumes from its last checkpoint when rerun with the same params and data.

Checkpoints live outside the stage's DVC outputs (DVC deletes outputs before rerunning a stage,
which would defeat resuming). A fingerprint of the params and the data is stored beside them, so
a checkpoint is only resumed by the very run that wrote it; any change starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from pathlib import Path

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments, enable_full_determinism, set_seed

from cadvlm.data.collator import VisionTextCollator
from cadvlm.data.conversations import ConversationDataset, fingerprint, load_conversations
from cadvlm.model.load import load_base
from cadvlm.model.manifest import ModelManifest
from cadvlm.model.retrieval import RetrievalBank
from cadvlm.model.lora import apply_lora, count_parameters, is_vision_tower_param
from cadvlm.model.tiny import build_tiny_base

FINGERPRINT = "fingerprint.txt"


def train(params: dict, data_dir: str | Path, image_root: str | Path, model_dir: str | Path,
          checkpoint_dir: str | Path, live_dir: str | Path | None = None,
          metrics_path: str | Path | None = None) -> dict:
    """Run the train stage. Returns the metrics dict (also written to `metrics_path`).

    data_dir holds train.json and val.json (convert's output); image_root is what their `image`
    paths are relative to; model_dir receives the trained model (see cadvlm.model.load.load_trained).
    """
    t_stage = time.time()
    pm, pl, pt = params["model"], params.get("lora", {}), params["train"]
    seed = params["base"]["seed"] if pt.get("seed") is None else int(pt["seed"])  # train.seed: vary training alone
    data_dir, model_dir, checkpoint_dir = Path(data_dir), Path(model_dir), Path(checkpoint_dir)
    state = _dist_state()

    # 1. Data: validate everything (files, images, turns) before any model is built.
    train_recs = load_conversations(data_dir / "train.json", image_root)
    val_recs = load_conversations(data_dir / "val.json", image_root)
    run_id = _run_fingerprint(params, train_recs, val_recs)

    # 2. Seed (and fix what else decides the bytes), then the base model and its processor.
    on_gpu = torch.cuda.is_available()
    threads = make_deterministic(seed, pt, on_gpu)
    base = pm["base"]
    if base == "tiny":
        # Built on the train split's texts, saved, then loaded through the same path as any hub model.
        base = model_dir / "base"
        with state.main_process_first():
            if state.is_main_process:
                build_tiny_base(base, [r.answer for r in train_recs] + [r.prompt for r in train_recs],
                                pm.get("tiny"), seed)
    # Full fine-tuning keeps float32 master weights (bf16 autocast on GPU); LoRA freezes the base in bf16.
    dtype = torch.bfloat16 if on_gpu and pt["method"] == "lora" else torch.float32
    model, processor = load_base(base, dtype=dtype, attn_implementation=pm.get("attn_implementation"))

    # 3. What to train: LoRA adapters (+ projector) or every weight.
    if pt["method"] == "lora":
        model = apply_lora(model, pl)
    elif pt["method"] == "full":
        if pt.get("freeze_vision_tower"):
            for name, p in model.named_parameters():
                if is_vision_tower_param(name):  # the projector stays trainable (Qwen2-VL's is inside `visual`)
                    p.requires_grad_(False)
    else:
        raise ValueError(f"train.method must be 'lora' or 'full', not {pt['method']!r}")
    n_params, n_trainable = count_parameters(model)
    if pt.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()

    # 4. Datasets: answer-only labels; over-long samples dropped and counted, never truncated.
    train_ds = ConversationDataset(train_recs, processor, pt["max_length"])
    val_ds = ConversationDataset(val_recs, processor, pt["max_length"])
    if len(train_ds) == 0 or len(val_ds) == 0:
        raise ValueError(f"no sample fits train.max_length={pt['max_length']} "
                         f"(train kept {len(train_ds)}, val kept {len(val_ds)})")
    tok = processor.tokenizer
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id  # some bases have no pad
    collator = VisionTextCollator(pad_id, 8 if on_gpu else None)

    # 5. Trainer.
    with state.main_process_first():  # rank 0 decides (resume or clear), the others then read its decision
        resume = _prepare_checkpoints(checkpoint_dir, run_id, state.is_main_process)
    world = max(1, state.num_processes)
    steps_per_epoch = math.ceil(len(train_ds) / (pt["batch_size"] * pt["grad_accum"] * world))
    evals_per_epoch = float(pt.get("evals_per_epoch", 1))
    if evals_per_epoch <= 0:
        raise ValueError(f"train.evals_per_epoch must be > 0, not {evals_per_epoch}")
    eval_steps = max(1, math.ceil(steps_per_epoch / evals_per_epoch))  # 0.5 = every other epoch
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        num_train_epochs=pt["epochs"],
        per_device_train_batch_size=pt["batch_size"],
        per_device_eval_batch_size=pt.get("eval_batch_size", pt["batch_size"]),
        gradient_accumulation_steps=pt["grad_accum"],
        learning_rate=pt["lr"],
        lr_scheduler_type="cosine",
        warmup_steps=pt["warmup_ratio"],  # a float < 1 is a ratio of the total steps
        weight_decay=pt["weight_decay"],
        max_grad_norm=pt["max_grad_norm"],
        seed=seed,
        use_cpu=not on_gpu,  # several CPU processes then train together over gloo (accelerate launch / torchrun)
        bf16=on_gpu and torch.cuda.is_bf16_supported(),
        eval_strategy="steps",
        eval_steps=eval_steps,
        eval_on_start=pt.get("eval_on_start", True) and resume is None,  # step-0 baseline, once per run
        save_strategy="steps",
        save_steps=pt["save_steps"],
        save_total_limit=pt["save_total_limit"],
        logging_steps=pt["logging_steps"],
        prediction_loss_only=True,
        train_sampling_strategy="group_by_length" if pt.get("group_by_length") else "random",
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=pt.get("num_workers", 0),
        dataloader_pin_memory=on_gpu,
        ddp_find_unused_parameters=pt.get("ddp_find_unused_parameters"),
        report_to="none",  # transformers v5 default; DVCLive is attached explicitly below
        disable_tqdm=not pt.get("progress", True),
    )
    speed = ThroughputCallback()
    resume_step = int(Path(resume).name.split("-")[-1]) if resume else None
    callbacks = [speed] + ([LiveCallback(live_dir, resume is not None)] if live_dir and state.is_main_process else [])
    trainer = LengthGroupedTrainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                                   data_collator=collator, processing_class=processor, callbacks=callbacks,
                                   vision_lr_scale=float(pt.get("vision_lr_scale", 1.0)))

    if trainer.is_fsdp_enabled and pt["method"] == "lora" and pl.get("merge_on_export"):
        raise ValueError("lora.merge_on_export cannot merge FSDP-sharded weights: train with merge_on_export "
                         "false (the adapter is saved), or with the DDP / ZeRO-2 launcher")

    # 6. Train (resuming when an identical interrupted run left a checkpoint).
    result = trainer.train(resume_from_checkpoint=resume)

    # 7. Save: full weights, a LoRA adapter, or the adapter merged into the base. Under FSDP each rank
    # holds a shard: all of them gather the full weights (a collective), then rank 0 alone writes.
    weights = trainer.accelerator.get_state_dict(trainer.model_wrapped) if trainer.is_fsdp_enabled else None
    if state.is_main_process:
        _save(trainer.model, processor, model_dir, pt["method"], pl.get("merge_on_export", False), pm["base"],
              data_dir, Path(image_root), weights)
        # The training pictures' thumbnails and answers, for `--candidates nearest` (cadvlm.model.retrieval).
        RetrievalBank.from_records(train_recs).save(model_dir)
        print(f"[train] wrote {model_dir} (process 0 of {world})")
        if not pt.get("keep_checkpoints", False):
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
    state.wait_for_everyone()

    metrics = _metrics(trainer.state.log_history, result.metrics, speed, train_ds, val_ds, n_params,
                       n_trainable, resume_step, time.time() - t_stage)
    metrics["cpu_threads"] = threads
    if metrics_path and state.is_main_process:
        Path(metrics_path).parent.mkdir(parents=True, exist_ok=True)
        Path(metrics_path).write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


# ----------------------------------------------------------------------------------------------
# Helpers (kept below so that `train` reads as the recipe).
# ----------------------------------------------------------------------------------------------

def make_deterministic(seed: int, pt: dict, on_gpu: bool) -> int | None:
    """Seed everything and fix what else decides the weights' bytes; returns the CPU thread count
    (None on a GPU).

    Same machine, same params, same data -> the same weights, byte for byte. Seeds: Python,
    numpy and torch (the data order of the length-grouped sampler and dropout draw from torch's
    generator; DataLoader workers are seeded by the Trainer from it). On a CPU the float sums of
    a matrix product depend on how many threads split them, so the count is fixed
    (`train.cpu_threads`: 1 and 2 threads give different weights). `train.deterministic` turns
    on deterministic kernels (`transformers.enable_full_determinism`): free on a CPU; on a GPU it
    costs speed, and an op without a deterministic kernel warns instead of failing there.
    """
    threads = None
    if not on_gpu:
        if int(pt.get("cpu_threads", 0)) > 0:
            torch.set_num_threads(int(pt["cpu_threads"]))
        threads = torch.get_num_threads()
    if pt.get("deterministic", True):
        enable_full_determinism(seed, warn_only=on_gpu)
    else:
        set_seed(seed)
    return threads


class LengthGroupedTrainer(Trainer):
    """Trainer whose length-grouped sampler uses the dataset's precomputed token counts, and whose
    vision tower may learn at its own rate.

    The stock sampler infers lengths by fetching every item, i.e. decoding every picture once per
    run; our dataset already knows them from tokenising the text. `vision_lr_scale` multiplies the
    learning rate of the vision tower's trained weights (the same schedule): a tower trained from
    scratch at the decoder's rate collapses before the decoder learns to read it.
    """

    def __init__(self, *args, vision_lr_scale: float = 1.0, **kwargs):
        self.vision_lr_scale = vision_lr_scale
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model=None):
        optimizer = super().create_optimizer(model)
        if self.vision_lr_scale == 1.0:
            return optimizer
        model = self.model if model is None else model
        tower = {id(p) for n, p in model.named_parameters() if is_vision_tower_param(n)}
        groups = []
        for group in optimizer.param_groups:  # Trainer's groups (decay / no decay), each split in two
            for in_tower in (False, True):
                params = [p for p in group["params"] if (id(p) in tower) == in_tower]
                if params:
                    lr = group["lr"] * (self.vision_lr_scale if in_tower else 1.0)
                    groups.append({**group, "params": params, "lr": lr})
        optimizer.param_groups[:] = groups  # before the first step: no state to move
        return optimizer

    def _get_train_sampler(self, train_dataset=None):
        ds = train_dataset if train_dataset is not None else self.train_dataset
        if self.args.train_sampling_strategy == "group_by_length" and hasattr(ds, "lengths"):
            from transformers.trainer_pt_utils import LengthGroupedSampler

            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=list(ds.lengths))
        return super()._get_train_sampler(train_dataset)

    def _get_eval_sampler(self, eval_dataset):
        if self.args.world_size <= 1:
            return torch.utils.data.SequentialSampler(eval_dataset)
        return None


class ThroughputCallback(TrainerCallback):
    """Tokens trained and time spent evaluating in this call (a resumed run counts only its own part)."""

    def __init__(self):
        self.start_tokens = 0
        self.tokens = 0
        self.eval_s = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.start_tokens = state.num_input_tokens_seen

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.eval_s += (metrics or {}).get("eval_runtime", 0.0)

    def on_train_end(self, args, state, control, **kwargs):
        self.tokens = state.num_input_tokens_seen - self.start_tokens


class LiveCallback(TrainerCallback):
    """Log Trainer metrics with DVCLive at the Trainer's global step.

    dvclive's own HF callback advances its step on every log call, so train and eval points of the
    same optimiser step land on different x values; here x is always the global step, and the
    summary (metrics.json) holds the latest value of each metric. `dvcyaml=False`: dvc.yaml declares
    the metrics and plots itself (DESIGN pitfall).
    """

    # Trainer log key -> DVCLive metric name. Only curves worth plotting; run totals and speeds go
    # to metrics/train.json.
    NAMES = {"loss": "train/loss", "learning_rate": "train/learning_rate", "grad_norm": "train/grad_norm",
             "eval_loss": "eval/loss"}

    def __init__(self, live_dir, resume: bool):
        from dvclive import Live

        self.live = Live(str(live_dir), resume=resume, dvcyaml=False, save_dvc_exp=False, report=None)

    def _points(self, logs: dict) -> dict[str, float]:
        if "train_loss" in logs:  # the end-of-run summary repeats the mean loss
            return {}
        return {self.NAMES[k]: float(v) for k, v in logs.items() if k in self.NAMES}

    def on_log(self, args, state, control, logs=None, **kwargs):
        points = self._points(logs or {})
        if points:
            self.live.step = state.global_step
            for name, value in points.items():
                self.live.log_metric(name, value)
            self.live.make_summary()

    def on_train_end(self, args, state, control, **kwargs):
        self.live.end()
        # Rewrite every curve from the Trainer's own history, which a resumed run restores from its
        # checkpoint: complete and without repeats even when DVC removed this folder before the rerun
        # or the killed run had logged past its last checkpoint.
        curves: dict[str, dict[int, float]] = {}
        for entry in state.log_history:
            for name, value in self._points(entry).items():
                curves.setdefault(name, {})[int(entry["step"])] = value
        root = Path(self.live.plots_dir) / "metrics"
        for name, points in curves.items():
            path = root / f"{name}.tsv"
            path.parent.mkdir(parents=True, exist_ok=True)
            rows = [f"step\t{name.rsplit('/', 1)[-1]}"] + [f"{k}\t{v}" for k, v in sorted(points.items())]
            path.write_text("\n".join(rows) + "\n")


def _dist_state():
    from accelerate import PartialState

    # Without a GPU, processes started by `accelerate launch` or torchrun join over gloo only when the
    # state is told it is on the CPU; otherwise each would train alone and all would write models/.
    return PartialState(cpu=not torch.cuda.is_available())


def _run_fingerprint(params: dict, train_recs, val_recs) -> str:
    """Hash of everything a checkpoint depends on: model/lora/train params, seed, the exact data."""
    relevant = {k: params.get(k) for k in ("base", "model", "lora", "train")}
    for k in ("keep_checkpoints", "num_workers", "progress", "launcher"):
        relevant["train"] = {kk: v for kk, v in relevant["train"].items() if kk != k}
    h = hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode())
    h.update(fingerprint(train_recs).encode())
    h.update(fingerprint(val_recs).encode())
    return h.hexdigest()


def last_complete_checkpoint(checkpoint_dir: str | Path) -> Path | None:
    """Newest `checkpoint-N` folder that was fully written (trainer_state.json is written last)."""
    best = None
    for d in Path(checkpoint_dir).glob("checkpoint-*"):
        if d.is_dir() and d.name.split("-")[-1].isdigit() and (d / "trainer_state.json").is_file():
            if best is None or int(d.name.split("-")[-1]) > int(best.name.split("-")[-1]):
                best = d
    return best


def _prepare_checkpoints(checkpoint_dir: Path, run_id: str, is_main: bool) -> str | None:
    """Return the checkpoint to resume from, or None after clearing leftovers of a different run."""
    stamp = checkpoint_dir / FINGERPRINT
    if stamp.is_file() and stamp.read_text().strip() == run_id:
        last = last_complete_checkpoint(checkpoint_dir)
        if last is not None:
            print(f"[train] resuming from {last}")
            return str(last)
    elif checkpoint_dir.exists() and is_main:
        print(f"[train] {checkpoint_dir} holds checkpoints of a different run (params or data changed): clearing")
        shutil.rmtree(checkpoint_dir)
    if is_main:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(run_id + "\n")
        (checkpoint_dir / ".gitignore").write_text("*\n")  # never committed by accident
    return None


def _save(model, processor, model_dir: Path, method: str, merge: bool, base_name: str, data_dir: Path,
          image_root: Path, state_dict: dict | None = None) -> None:
    """Weights (or adapter), processor, and the manifest of everything inference needs.

    `state_dict`: the full weights when the model's own are shards (FSDP), else None.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    if method == "lora" and merge:
        model = model.merge_and_unload()
        method = "full"
    model.save_pretrained(model_dir, state_dict=state_dict)
    processor.save_pretrained(model_dir)
    if method == "full":
        shutil.rmtree(model_dir / "base", ignore_errors=True)  # the tiny base is inside the weights now
    base = None if method == "full" else ("base" if base_name == "tiny" else str(base_name))
    ModelManifest.from_training_data(method, base, data_dir, image_root).write(model_dir)


def _epoch_means(history: list[dict]) -> list[float]:
    """Mean logged training loss per epoch (log entries assigned by the epoch they end in)."""
    buckets: dict[int, list[float]] = {}
    for e in history:
        if "loss" in e and "epoch" in e:
            buckets.setdefault(max(0, math.ceil(e["epoch"] - 1e-9) - 1), []).append(e["loss"])
    return [sum(v) / len(v) for _, v in sorted(buckets.items())]


def _pct(first: float | None, last: float | None) -> float | None:
    return None if not first or last is None else round(100.0 * (first - last) / first, 2)


def _metrics(history, train_metrics, speed, train_ds, val_ds, n_params, n_trainable, resume_step,
             stage_s) -> dict:
    epochs = _epoch_means(history)
    evals = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]
    trained_evals = [v for s, v in evals if s > 0]
    runtime = train_metrics.get("train_runtime", 0.0)
    pure = max(runtime - speed.eval_s, 1e-9)  # training time of this call without the evaluations
    return {
        "train_loss_first_epoch": _r(epochs[0] if epochs else None),
        "train_loss_last_epoch": _r(epochs[-1] if epochs else None),
        "train_loss_reduction_pct": _pct(epochs[0], epochs[-1]) if epochs else None,
        "val_loss_first": _r(evals[0][1] if evals else None),
        "val_loss_first_step": evals[0][0] if evals else None,
        "val_loss_first_trained": _r(trained_evals[0] if trained_evals else None),
        "val_loss_last": _r(evals[-1][1] if evals else None),
        "val_loss_reduction_pct": _pct(evals[0][1], evals[-1][1]) if evals else None,
        "val_loss_reduction_from_first_trained_pct":
            _pct(trained_evals[0], trained_evals[-1]) if trained_evals else None,
        "samples_per_s": _r(train_metrics.get("train_samples_per_second", 0.0) * runtime / pure),
        "tokens_per_s": _r(speed.tokens / pure),
        "train_runtime_s": _r(runtime),
        "eval_runtime_s": _r(speed.eval_s),
        "stage_runtime_s": _r(stage_s),
        "train_tokens": int(speed.tokens),
        "epochs": _r(max((e.get("epoch", 0) for e in history), default=0), 3),
        "n_train": len(train_ds),
        "n_val": len(val_ds),
        "dropped_too_long_train": train_ds.dropped_too_long,
        "dropped_too_long_val": val_ds.dropped_too_long,
        "n_params": n_params,
        "n_trainable_params": n_trainable,
        "resumed_from_step": resume_step,
    }


def _r(x, nd: int = 4):
    return None if x is None else round(float(x), nd)
