"""Training throughput of the train stage's model: samples/s, tokens/s and (on GPU) MFU.

    python benchmarks/bench_train.py                         # tiny model from params.yaml, CPU
    python benchmarks/bench_train.py --arch qwen2-0.5b       # LLaVA with a Qwen2-0.5B decoder, random bf16, GPU

`tiny`: the real path (fake conversations with real OpenECAD code when ../shared/deepcad is there,
the tokenizer trained on them, ConversationDataset, VisionTextCollator, AdamW steps), so the
figure is what the train stage gets per optimiser step, evaluation excluded. CPU time is printed
beside wall time: on a shared machine wall time is inflated by other processes, CPU time much less.

Real-size archs: random weights (nothing is downloaded), random token ids with the image
placeholders first, fp32 master weights under bf16 autocast for `full` (as the train stage does)
or a bf16 base with LoRA adapters for `--method lora`. MFU counts 6 x parameters x tokens plus the
attention term (12 x layers x width x sequence per token) for the decoder and the vision tower,
against the card's dense bf16 peak.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
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


def bench_arch(args) -> None:
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
    model.config.use_cache = False
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if lora:
        from cadvlm.model.lora import apply_lora

        params = yaml.safe_load((ROOT / "params.yaml").read_text())
        model = apply_lora(model, params["lora"])
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)
    bs, seq = args.batch_size or 8, args.seq_len
    g = torch.Generator(device=dev).manual_seed(0)

    def batch():
        ids = torch.randint(0, text.vocab_size - 2, (bs, seq), device=dev, generator=g)
        ids[:, :n_img] = image_token
        labels = ids.clone()
        labels[:, :n_img + 32] = -100  # image and prompt masked, as in training
        pix = torch.randn(bs, 3, vision.image_size, vision.image_size, device=dev, generator=g)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels,
                "pixel_values": pix.to(torch.bfloat16 if lora else torch.float32)}

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(**batch()).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / args.steps
    tok_s = bs * seq / dt
    flops = _flops_per_sample(text, vision, seq, n_img) * bs / dt
    name = torch.cuda.get_device_name(dev)
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    n_params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{args.arch} ({n_params / 1e9:.2f} B params, {trainable / 1e6:.1f} M trainable, {args.method}, "
          f"{'fp32 master + bf16 autocast' if not lora else 'bf16 base + LoRA'}) on {name}")
    print(f"  batch {bs} x {seq} tokens ({n_img} image tokens): {dt * 1000:.0f} ms/step, "
          f"{bs / dt:.1f} samples/s, {tok_s:,.0f} tokens/s, {flops / 1e12:.1f} TFLOP/s model flops"
          + (f", MFU {100 * flops / (peak * 1e12):.1f}% of {peak} TFLOP/s bf16 dense" if peak else ""))
    print(f"  peak memory {torch.cuda.max_memory_allocated(dev) / 2**30:.1f} GiB")


def _flops_per_sample(text, vision, seq: int, n_img: int) -> float:
    """Training flops (forward + backward = 3 x forward) of one sample, matmuls only."""
    d, L, ff = text.hidden_size, text.num_hidden_layers, text.intermediate_size
    kv = d // text.num_attention_heads * text.num_key_value_heads
    per_tok = L * (2 * d * d + 2 * d * kv + 3 * d * ff) + d * text.vocab_size  # weights (mult-adds)
    dec = 6 * per_tok * seq + 12 * L * d * seq * seq / 2  # causal attention: half the score matrix
    dv, Lv, ffv = vision.hidden_size, vision.num_hidden_layers, vision.intermediate_size
    vis = 6 * Lv * (4 * dv * dv + 2 * dv * ffv) * n_img + 12 * Lv * dv * n_img * n_img
    proj = 6 * (dv * d + d * d) * n_img
    return dec + vis + proj


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="tiny", choices=["tiny", *ARCHS])
    ap.add_argument("--method", default="full", choices=["full", "lora"], help="real-size archs only")
    ap.add_argument("--batch-size", type=int, default=None, help="default: train.batch_size (tiny), 8 (archs)")
    ap.add_argument("--seq-len", type=int, default=1024, help="tokens per sample, image tokens included (archs)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--gradient-checkpointing", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=None, help="override the card's bf16 dense peak")
    ap.add_argument("--cpu", action="store_true", help="tiny on CPU even when a GPU is present")
    args = ap.parse_args(argv)
    bench_tiny(args) if args.arch == "tiny" else bench_arch(args)


if __name__ == "__main__":
    main()
