"""Two checks of benchmarks/gpu_check.py that no other benchmark runs, each in its own process:

    python benchmarks/gpu_check_steps.py train    --work DIR --json PATH [--cpu]
    python benchmarks/gpu_check_steps.py generate --work DIR --json PATH [--cpu]

`train`: the train stage itself (cadvlm.train.train, the Hugging Face Trainer loop with the stage's
bf16 autocast on a GPU) fully fine-tuning the tiny default of params.yaml (model.tiny, train.*) for
one epoch on fake conversations (tests/fake_data.py: real OpenECAD code when ../shared/deepcad is
there); the model folder goes to DIR/models. `generate`: evaluate's greedy batched generation
(cadvlm.decode.generate.generate_for_records, eval.batch_size, KV cache) with the model the train
check wrote, or a random tiny default when there is none. Figures go to PATH as JSON.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # fake_data: test scaffolding lives with the tests
DEEPCAD = ROOT.parent / "shared" / "deepcad" / "openecad_v2"
PROMPT = "Write OpenECAD-style CAD code that produces the solid drawn in four views."

# GPU sizes fit the check's time limit on one H100 with room to spare; CPU sizes are the dry run's.
SIZES = {
    "gpu": {"n_train": 512, "n_val": 32, "image_size": 512, "max_chars": 3000, "n_generate": 64,
            "max_new_tokens": 256},
    "cpu": {"n_train": 16, "n_val": 4, "image_size": 128, "max_chars": 700, "n_generate": 8, "max_new_tokens": 24},
}


def _peak_memory() -> tuple[float, str]:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30, "GPU memory allocated"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "process RSS"


def _fake_data(out: Path, n_train: int, n_val: int, n_test: int, size: dict, seed: int) -> Path:
    from fake_data import write_fake_dataset

    code_dir = DEEPCAD if DEEPCAD.is_dir() else None
    return write_fake_dataset(out, n_train, n_val, n_test, seed=seed, code_dir=code_dir,
                              max_chars=size["max_chars"], image_size=size["image_size"], prompts=(PROMPT,))


def check_train(work: Path, size: dict) -> dict:
    import torch

    from cadvlm.params import load_params
    from cadvlm.train import train

    params = load_params(ROOT / "params.yaml")
    data = _fake_data(work / "data", size["n_train"], size["n_val"], 0, size, seed=0)
    params["train"].update(method="full", epochs=1, eval_on_start=False, evals_per_epoch=1, save_steps=10**6,
                           logging_steps=1, progress=False, keep_checkpoints=False)
    if size is SIZES["cpu"]:
        params["train"]["cpu_threads"] = 1  # the dry run: one thread (gpu_check.py sets OMP_NUM_THREADS=1)
    t = time.perf_counter()
    m = train(params, data / "converted", data / "rendered", work / "models", work / "checkpoints",
              metrics_path=work / "train_metrics.json")
    seconds = time.perf_counter() - t
    mem, kind = _peak_memory()
    return {"device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "n_params": m["n_params"], "n_train": m["n_train"], "batch_size": params["train"]["batch_size"],
            "samples_per_s": m["samples_per_s"], "tokens_per_s": m["tokens_per_s"],
            "train_loss": m["train_loss_last_epoch"], "val_loss": m["val_loss_last"],
            "train_runtime_s": m["train_runtime_s"], "stage_s": seconds, "peak_mem_gib": mem, "peak_mem_kind": kind}


def check_generate(work: Path, size: dict) -> dict:
    import torch

    from cadvlm.data.conversations import load_conversations
    from cadvlm.decode.generate import generate_for_records, set_cpu_threads
    from cadvlm.model.load import load_trained
    from cadvlm.model.manifest import ModelManifest
    from cadvlm.params import load_params

    params = load_params(ROOT / "params.yaml")
    model_dir, source = work / "models", "trained by the train check"
    data = _fake_data(work / "generate", 0, 0, size["n_generate"], size, seed=1)
    recs = load_conversations(data / "converted" / "test.json", data / "rendered")
    if not (model_dir / "cadvlm_model.json").is_file():
        from cadvlm.model.tiny import build_tiny_base

        model_dir, source = work / "random_model", "random tiny default (no model from the train check)"
        build_tiny_base(model_dir, [r.answer for r in recs] + [PROMPT], params["model"].get("tiny"), seed=0)
        ModelManifest("full", None).write(model_dir)
    model, processor = load_trained(model_dir)
    set_cpu_threads(model, int(params["eval"].get("cpu_threads", 0)))  # as evaluate does
    manifest = ModelManifest.read(model_dir)
    constrain = manifest.code if params["eval"].get("constrained", True) else None
    batch = int(params["eval"]["batch_size"])
    tok = processor.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    count = {"tokens": 0, "steps": 0, "calls": 0}
    generate = model.generate

    def counting_generate(*args, **kwargs):  # new tokens per row, up to its end (the rest is padding)
        out = generate(*args, **kwargs)
        new = out[:, kwargs["input_ids"].shape[1]:]
        count["tokens"] += int((new != pad).sum())
        count["steps"] += new.shape[1]
        count["calls"] += 1
        return out

    model.generate = counting_generate
    generate_for_records(model, processor, recs[:batch], 4, batch, progress=False, constrain=constrain)  # warm-up
    count.update(tokens=0, steps=0, calls=0)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    answers = generate_for_records(model, processor, recs, size["max_new_tokens"], batch, progress=False,
                                   constrain=constrain)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall = time.perf_counter() - t
    mem, kind = _peak_memory()
    return {"model": source, "code_format": manifest.code.name, "answers": len(answers), "batch_size": batch,
            "max_new_tokens": size["max_new_tokens"], "seconds": wall, "answers_per_s": len(answers) / wall,
            "tokens": count["tokens"], "tokens_per_s": count["tokens"] / wall,
            "tokens_per_answer": count["tokens"] / max(1, len(answers)), "generate_calls": count["calls"],
            "ms_per_step": 1000 * wall / max(1, count["steps"]), "peak_mem_gib": mem, "peak_mem_kind": kind}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("check", choices=["train", "generate"])
    ap.add_argument("--work", type=Path, required=True, help="shared by the checks: generate reads train's model")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--cpu", action="store_true", help="the dry run's sizes (the caller hides the GPUs)")
    args = ap.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    size = SIZES["cpu" if args.cpu else "gpu"]
    out = check_train(args.work, size) if args.check == "train" else check_generate(args.work, size)
    args.json.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
