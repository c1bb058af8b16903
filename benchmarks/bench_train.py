"""Training throughput of the train stage's model: samples/s, tokens/s and (on GPU) MFU.

    python benchmarks/bench_train.py                         # tiny model from params.yaml, CPU
    python benchmarks/bench_train.py --arch qwen2-0.5b       # LLaVA with a Qwen2-0.5B decoder, random bf16, GPU
    python benchmarks/bench_train.py --arch tinyllava-phi2-siglip --method lora   # OpenECAD-3.1B's shapes, converted

`tiny`: the real path (fake conversations with real OpenECAD code when ../shared/deepcad is there,
the tokenizer trained on them, ConversationDataset, VisionTextCollator, AdamW steps), so the
figure is what the train stage gets per optimiser step, evaluation excluded. CPU time is printed
beside wall time: on a shared machine wall time is inflated by other processes, CPU time much less.

Real-size archs: random weights (nothing is downloaded), random token ids with the image
placeholders first, fp32 master weights under bf16 autocast for `full` (as the train stage does)
or a bf16 base with LoRA adapters for `--method lora`. MFU counts 6 x parameters x tokens plus the
attention term (12 x layers x width x sequence per token) for the decoder and the vision tower,
against the card's dense bf16 peak (the 6 x convention for LoRA too, as in results/train_gpu_h200.txt,
although a frozen weight needs no weight gradient: LoRA's MFU is an upper bound of the useful work).

`tinyllava-phi2-siglip`: what fine-tuning an OpenECAD-3.1B checkpoint runs. A TinyLLaVA checkpoint with
OpenECAD-3.1B's shapes (Phi-2 2.7B + SigLIP-so400m at 384 px, mlp2x_gelu) is written to disk in
TinyLLaVA's file layout by bench_import.py (bf16, 6 GB), converted by the real converter
(cadvlm.model.import_tinyllava), loaded by the train stage's loader (cadvlm.model.load.load_base), its
weights then drawn at random on the device (the written values are cheap constant fills), and trained
with LoRA on Phi-2's layers (q/k/v/dense/fc1/fc2, the projector fully). Measured on the 2-core CPU
machine: writing takes ~19 s, converting ~19 s, loading 1-5 s (memory-mapped): ~40 s of disk, spent so
that the real-size converted folder is what loads and trains; building the model from the converted
config instead would skip the converter's weights and the loader (and on a CPU it is no faster: 48 s
with transformers' init). The random draw happens after the move to the GPU: 46 s on that CPU.
`--small` keeps the layout but 2 layers of width 64 and a 1,024-row vocabulary (the CPU dry run of
benchmarks/gpu_check.sh); `--cpu` runs it on the CPU in float32. `--json PATH` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEEPCAD = ROOT.parent / "shared" / "deepcad"

# Dense bf16 peak, TFLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_TFLOPS = {"H200": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0, "L40S": 362.0, "L4": 121.0,
               "A10": 125.0, "4090": 165.2, "3090": 71.0}

ARCHS = {
    # Qwen2-0.5B decoder + SigLIP-base/16 at 384 px (576 image tokens), like LLaVA-OneVision-0.5B's layout.
    "qwen2-0.5b": dict(text=dict(model_type="qwen2", hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                                 num_attention_heads=14, num_key_value_heads=2, vocab_size=151936,
                                 tie_word_embeddings=True),
                       vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                   num_attention_heads=12, image_size=384, patch_size=16)),
    "qwen2-1.5b": dict(text=dict(model_type="qwen2", hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                                 num_attention_heads=12, num_key_value_heads=2, vocab_size=151936,
                                 tie_word_embeddings=True),
                       vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                   num_attention_heads=12, image_size=384, patch_size=16)),
}
TINYLLAVA = "tinyllava-phi2-siglip"  # sizes: bench_import.PHI2 / SIGLIP (OpenECAD-3.1B's)
# --small: the same layout with 2 layers of width 64 (the CPU dry run); image 384 px, patch 14 kept.
SMALL_TEXT = dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=2, vocab_size=1024)
SMALL_VISION = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2)
PHI_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"]  # every linear layer of Phi-2's decoder


def bench_tiny(args) -> None:
    from cadvlm.data.collator import VisionTextCollator
    from cadvlm.data.conversations import ConversationDataset, load_conversations

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from fake_data import write_fake_dataset  # test scaffolding lives with the tests
    from cadvlm.model.load import load_base
    from cadvlm.model.tiny import build_tiny_base

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    pt = params["train"]
    bs = args.batch_size or pt["batch_size"]
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        code_dir = DEEPCAD / "openecad_v2" if DEEPCAD.is_dir() else None
        n = bs * (args.steps + args.warmup)
        data = write_fake_dataset(Path(tmp) / "data", n, 0, seed=0, code_dir=code_dir)
        recs = load_conversations(data / "converted" / "train.json", data / "rendered")
        base = build_tiny_base(Path(tmp) / "base", [r.answer for r in recs] + [r.prompt for r in recs],
                               params["model"].get("tiny"), seed=0)
        model, processor = load_base(base, dtype=torch.float32, attn_implementation=params["model"].get("attn_implementation"))
        model.to(device).train()
        ds = ConversationDataset(recs, processor, pt["max_length"])
        collate = VisionTextCollator(processor.tokenizer.pad_token_id)
        opt = torch.optim.AdamW(model.parameters(), lr=pt["lr"], weight_decay=pt["weight_decay"], fused=True)  # as Trainer
        # Sort by length as group_by_length would, then take evenly spread batches: realistic padding.
        order = sorted(range(len(ds)), key=lambda i: ds.lengths[i])
        batches = [order[i:i + bs] for i in range(0, len(order), bs)]
        batches = [batches[(k * 7) % len(batches)] for k in range(len(batches))]
        tokens = samples = 0
        for k, idx in enumerate(batches):
            if k == args.warmup:
                t0, c0, tokens, samples = time.perf_counter(), time.process_time(), 0, 0
            batch = {key: v.to(device) for key, v in collate([ds[i] for i in idx]).items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), pt["max_grad_norm"])
            opt.step()
            opt.zero_grad(set_to_none=True)
            tokens += int(batch["attention_mask"].sum())
            samples += len(idx)
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n_params = sum(p.numel() for p in model.parameters())
    threads = torch.get_num_threads()
    print(f"tiny model ({n_params / 1e6:.2f} M params, image {params['model']['tiny']['image_size']} px) on "
          f"{_device_name(device)}, batch {bs}, {args.steps} steps, {tokens / samples:.0f} tokens/sample")
    print(f"  wall: {samples / wall:.2f} samples/s, {tokens / wall:.0f} tokens/s")
    print(f"  cpu time: {samples / cpu * threads:.2f} samples/s, {tokens / cpu * threads:.0f} tokens/s "
          f"(process CPU seconds / {threads} threads: what an idle machine would give)")
    n_epoch_tokens = tokens / samples * 1000
    print(f"  -> one epoch of 1000 such samples: ~{n_epoch_tokens / (tokens / wall) / 60:.1f} min wall here, "
          f"~{n_epoch_tokens / (tokens / cpu * threads) / 60:.1f} min on an idle machine")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def bench_arch(args) -> dict:
    from transformers import AutoConfig, LlavaConfig, LlavaForConditionalGeneration, SiglipVisionConfig

    if not torch.cuda.is_available():
        sys.exit(f"--arch {args.arch} needs a GPU")
    spec = ARCHS[args.arch]
    dev = torch.device("cuda")
    text = AutoConfig.for_model(**spec["text"])
    vision = SiglipVisionConfig(**spec["vision"], vision_use_head=False)
    n_img = (vision.image_size // vision.patch_size) ** 2
    image_token = text.vocab_size - 1
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=image_token,
                         image_seq_length=n_img, vision_feature_select_strategy="full", vision_feature_layer=-1)
    lora = args.method == "lora"
    with dev:
        model = LlavaForConditionalGeneration(config).to(torch.bfloat16 if lora else torch.float32)
    if lora:
        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        model = _lora(model, params["lora"])
    return _measure(args, model, dev, text, vision, n_img, n_img, image_token, {})


@contextmanager
def _tinyllava_sizes(small: bool):
    """bench_import's module-level sizes, swapped for the small ones while writing (--small). The
    converter reads only the checkpoint's text_config / vision_config, which carry the swapped sizes."""
    import bench_import

    real = bench_import.PHI2, bench_import.SIGLIP
    if small:
        bench_import.PHI2, bench_import.SIGLIP = {**real[0], **SMALL_TEXT}, {**real[1], **SMALL_VISION}
    try:
        yield bench_import
    finally:
        bench_import.PHI2, bench_import.SIGLIP = real


def bench_tinyllava(args) -> dict:
    """Write a TinyLLaVA Phi-2 + SigLIP checkpoint, convert it, load it as the train stage does, train."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    sys.path.insert(0, str(ROOT / "tests"))  # bench_import writes the tokenizer with the tests' fixture
    from cadvlm.model.import_tinyllava import import_tinyllava
    from cadvlm.model.load import load_base

    dev = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    lora = args.method == "lora"
    # As the train stage: LoRA freezes a bf16 base on a GPU; full training keeps float32 master weights.
    dtype = torch.bfloat16 if dev.type == "cuda" and lora else torch.float32
    work = Path(tempfile.mkdtemp(prefix="bench_tinyllava_", dir=args.dir))
    extra: dict = {}
    try:
        with _tinyllava_sizes(args.small) as bi:
            need = 2 * sum(math.prod(shape) * 2 for _, shape in bi.tensors(1.0))  # source + converted, bf16
            free = shutil.disk_usage(work).free
            if free < need * 1.05:
                sys.exit(f"not enough disk in {work}: {free / 2**30:.1f} GiB free, {need / 2**30:.1f} GiB needed "
                         "(--dir elsewhere)")
            t = time.perf_counter()
            (work / "tinyllava").mkdir()
            sizes = bi.write_checkpoint(work / "tinyllava", 1.0)
            extra["write_s"] = time.perf_counter() - t
        extra["checkpoint_gib"] = sum(sizes) / 2**30
        t = time.perf_counter()
        import_tinyllava(work / "tinyllava", work / "llava", log=lambda *_: None)
        extra["convert_s"] = time.perf_counter() - t
        shutil.rmtree(work / "tinyllava")  # half the disk back before loading
        t = time.perf_counter()
        model, _ = load_base(work / "llava", dtype=dtype, attn_implementation="sdpa")
        model.to(dev)
        _randomise(model, seed=0)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        extra["load_s"] = time.perf_counter() - t
        cfg = model.config
        print(f"{TINYLLAVA}{' (--small)' if args.small else ''}: checkpoint {extra['checkpoint_gib']:.2f} GiB written "
              f"in {extra['write_s']:.1f} s, converted to {type(model).__name__} in {extra['convert_s']:.1f} s, "
              f"loaded on {dev.type} and randomised in {extra['load_s']:.1f} s", flush=True)
        if lora:
            params = yaml.safe_load((ROOT / "params.yaml").read_text())
            model = _lora(model, {**params["lora"], "target_modules": PHI_LORA_TARGETS})
        vision = cfg.vision_config
        n_patches = (vision.image_size // vision.patch_size) ** 2
        return _measure(args, model, dev, cfg.text_config, vision, cfg.image_seq_length, n_patches,
                        cfg.image_token_index, extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@torch.no_grad()
def _randomise(model, seed: int) -> None:
    """Random weights drawn on the model's device: matrices N(0, 1/fan_in), norms 1, biases 0."""
    dev = next(model.parameters()).device
    g = torch.Generator(device=dev).manual_seed(seed)
    for name, p in model.named_parameters():
        if p.ndim >= 2:
            fan_in = math.prod(p.shape[1:])
            p.copy_(torch.randn(p.shape, device=dev, generator=g, dtype=torch.float32).div_(math.sqrt(fan_in)))
        elif "norm" in name and name.endswith("weight"):
            p.fill_(1.0)
        else:
            p.zero_()


def _lora(model, cfg: dict):
    from cadvlm.model.lora import apply_lora

    return apply_lora(model, cfg)


def _measure(args, model, dev: torch.device, text, vision, n_img: int, n_patches: int, image_token: int,
             extra: dict) -> dict:
    """Warm-up steps, timed steps, then the figures (printed; returned for --json)."""
    model.config.use_cache = False
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    lora = args.method == "lora"
    fused = dev.type == "cuda"
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=fused)
    bs, seq = args.batch_size or 8, args.seq_len
    if seq <= n_img + 32:
        sys.exit(f"--seq-len {seq} leaves no text after the {n_img} image tokens and a 32-token prompt")
    g = torch.Generator(device=dev).manual_seed(0)
    pix_dtype = next(p.dtype for n, p in model.named_parameters() if "vision" in n)
    vocab = text.vocab_size

    def batch():
        ids = torch.randint(0, vocab, (bs, seq), device=dev, generator=g)
        ids[ids == image_token] = 0
        ids[:, :n_img] = image_token
        labels = ids.clone()
        labels[:, :n_img + 32] = -100  # image and prompt masked, as in training
        pix = torch.randn(bs, 3, vision.image_size, vision.image_size, device=dev, generator=g)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
                "pixel_values": pix.to(pix_dtype)}

    losses = []

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss = model(**batch()).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))

    for _ in range(args.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / args.steps
    tok_s = bs * seq / dt
    flops = _flops_per_sample(text, vision, seq, n_img, n_patches) * bs / dt
    name = _device_name(dev)
    peak = (args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)) \
        if dev.type == "cuda" else None
    n_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    dtype = str(next(p.dtype for p in model.parameters() if not p.requires_grad) if lora else torch.float32)
    mode = ("bf16 base + LoRA" if lora else "fp32 master + bf16 autocast") if dev.type == "cuda" \
        else f"{dtype.replace('torch.', '')}, no autocast"
    if dev.type == "cuda":
        mem, mem_kind = torch.cuda.max_memory_allocated(dev) / 2**30, "GPU memory allocated"
    else:
        mem, mem_kind = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "process RSS"
    mfu = 100 * flops / (peak * 1e12) if peak else None
    print(f"{args.arch} ({n_params / 1e9:.2f} B params, {trainable / 1e6:.1f} M trainable, {args.method}, {mode}) "
          f"on {name}")
    print(f"  batch {bs} x {seq} tokens ({n_img} image tokens): {dt * 1000:.0f} ms/step, "
          f"{bs / dt:.1f} samples/s, {tok_s:,.0f} tokens/s, {flops / 1e12:.1f} TFLOP/s model flops"
          + (f", MFU {mfu:.1f}% of {peak} TFLOP/s bf16 dense" if peak else ""))
    print(f"  peak {mem_kind} {mem:.1f} GiB; loss {losses[0]:.3f} -> {losses[-1]:.3f}")
    out = {"arch": args.arch, "method": args.method, "device": name, "mode": mode, "params_b": n_params / 1e9,
           "trainable_m": trainable / 1e6, "batch": bs, "seq_len": seq, "image_tokens": n_img,
           "ms_per_step": dt * 1000, "samples_per_s": bs / dt, "tokens_per_s": tok_s, "tflops": flops / 1e12,
           "mfu_pct": mfu, "peak_tflops": peak, "peak_mem_gib": mem, "peak_mem_kind": mem_kind,
           "losses": losses, "loss_finite": all(math.isfinite(v) for v in losses), **extra}
    if not out["loss_finite"]:
        print("  NON-FINITE LOSS", file=sys.stderr)
    return out


def _flops_per_sample(text, vision, seq: int, n_img: int, n_patches: int | None = None) -> float:
    """Training flops (forward + backward = 3 x forward) of one sample, matmuls only. `n_patches`: the
    tower's tokens when they differ from the decoder's image tokens (TinyLLaVA drops the first)."""
    d, L, ff = text.hidden_size, text.num_hidden_layers, text.intermediate_size
    kv = d // text.num_attention_heads * (getattr(text, "num_key_value_heads", None) or text.num_attention_heads)
    mlp = 2 if text.model_type == "phi" else 3  # Phi: fc1, fc2; Llama / Qwen2: gate, up, down
    per_tok = L * (2 * d * d + 2 * d * kv + mlp * d * ff) + d * text.vocab_size  # weights (mult-adds)
    dec = 6 * per_tok * seq + 12 * L * d * seq * seq / 2  # causal attention: half the score matrix
    dv, Lv, ffv = vision.hidden_size, vision.num_hidden_layers, vision.intermediate_size
    n_p = n_patches or n_img
    vis = 6 * Lv * (4 * dv * dv + 2 * dv * ffv) * n_p + 12 * Lv * dv * n_p * n_p
    proj = 6 * (dv * d + d * d) * n_img
    return dec + vis + proj


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="tiny", choices=["tiny", *ARCHS, TINYLLAVA])
    ap.add_argument("--method", default="full", choices=["full", "lora"], help="real-size archs only")
    ap.add_argument("--batch-size", type=int, default=None, help="default: train.batch_size (tiny), 8 (archs)")
    ap.add_argument("--seq-len", type=int, default=1024, help="tokens per sample, image tokens included (archs)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=None, help="override the card's bf16 dense peak")
    ap.add_argument("--cpu", action="store_true", help=f"tiny or {TINYLLAVA} on the CPU even when a GPU is present")
    ap.add_argument("--small", action="store_true", help=f"{TINYLLAVA}: 2 layers of width 64 (the CPU dry run)")
    ap.add_argument("--dir", default=None, help=f"{TINYLLAVA}: where the checkpoints are written (default: /tmp)")
    ap.add_argument("--json", type=Path, default=None, help="real-size archs: also write the figures here")
    args = ap.parse_args(argv)
    if args.arch == "tiny":
        bench_tiny(args)
        return
    out = bench_tinyllava(args) if args.arch == TINYLLAVA else bench_arch(args)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    if not out["loss_finite"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
