"""Peak memory and time of `cadvlm import-model` on a real-size synthetic TinyLLaVA checkpoint.

    python benchmarks/bench_import.py                      # Phi-2 2.7B + SigLIP-so400m, bf16, ~6 GB in /tmp
    python benchmarks/bench_import.py --scale 0.25         # a quarter of the layers, when disk is short
    python benchmarks/bench_import.py --compare-safe-open  # also: what safe_open + save_file per shard peaks at

The checkpoint is written by this script, shard by shard (never the whole model in memory), in
TinyLLaVA's layout: OpenECAD-3.1B's shapes (Phi-2: 32 layers, width 2560, FFN 10240, vocabulary
51200, lm_head with bias; SigLIP so400m-patch14-384: 27 layers, width 1152, FFN 4304, pooling head;
mlp2x_gelu connector), bf16, split like transformers 4.40's `save_pretrained` (shards of at most
5 GB). The values are cheap deterministic fills: memory and time do not depend on them. The
tokenizer is a small byte-level one (the real Phi-2 tokenizer cannot be downloaded here); the
embedding keeps its 51,200 rows, so `<image>` takes a free one, as with the real checkpoint.

The conversion runs in a child process; its peak resident memory (ru_maxrss) is compared with the
target: the largest shard + 1 GiB. The figure includes Python, torch and transformers themselves,
printed separately as the baseline after imports.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

PHI2 = {"model_type": "phi", "vocab_size": 51200, "hidden_size": 2560, "intermediate_size": 10240,
        "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "partial_rotary_factor": 0.4,
        "max_position_embeddings": 2048, "layer_norm_eps": 1e-5, "hidden_act": "gelu_new", "rope_theta": 10000.0,
        "tie_word_embeddings": False, "bos_token_id": 50256, "eos_token_id": 50256}
SIGLIP = {"model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
          "num_hidden_layers": 27, "num_attention_heads": 16, "image_size": 384, "patch_size": 14,
          "num_channels": 3, "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh"}
SHARD_LIMIT = 5_000_000_000  # transformers 4.40 save_pretrained's default max_shard_size ("5GB")


def tensors(scale: float):
    """(TinyLLaVA name, shape) of every tensor, in module order."""
    h, f, v = PHI2["hidden_size"], PHI2["intermediate_size"], PHI2["vocab_size"]
    out = [("language_model.model.embed_tokens.weight", (v, h))]
    for i in range(max(1, round(PHI2["num_hidden_layers"] * scale))):
        p = f"language_model.model.layers.{i}."
        for m in ("q_proj", "k_proj", "v_proj", "dense"):
            out += [(p + f"self_attn.{m}.weight", (h, h)), (p + f"self_attn.{m}.bias", (h,))]
        out += [(p + "mlp.fc1.weight", (f, h)), (p + "mlp.fc1.bias", (f,)), (p + "mlp.fc2.weight", (h, f)),
                (p + "mlp.fc2.bias", (h,)), (p + "input_layernorm.weight", (h,)), (p + "input_layernorm.bias", (h,))]
    out += [("language_model.model.final_layernorm.weight", (h,)), ("language_model.model.final_layernorm.bias", (h,)),
            ("language_model.lm_head.weight", (v, h)), ("language_model.lm_head.bias", (v,))]
    vh, vf, n = SIGLIP["hidden_size"], SIGLIP["intermediate_size"], (384 // 14) ** 2
    vp = "vision_tower._vision_tower.vision_model."
    out += [(vp + "embeddings.patch_embedding.weight", (vh, 3, 14, 14)), (vp + "embeddings.patch_embedding.bias", (vh,)),
            (vp + "embeddings.position_embedding.weight", (n, vh))]
    for i in range(max(2, round(SIGLIP["num_hidden_layers"] * scale))):
        p = vp + f"encoder.layers.{i}."
        for m in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out += [(p + f"self_attn.{m}.weight", (vh, vh)), (p + f"self_attn.{m}.bias", (vh,))]
        out += [(p + "mlp.fc1.weight", (vf, vh)), (p + "mlp.fc1.bias", (vf,)), (p + "mlp.fc2.weight", (vh, vf)),
                (p + "mlp.fc2.bias", (vh,))]
        for ln in ("layer_norm1", "layer_norm2"):
            out += [(p + f"{ln}.weight", (vh,)), (p + f"{ln}.bias", (vh,))]
    out += [(vp + "post_layernorm.weight", (vh,)), (vp + "post_layernorm.bias", (vh,)),
            (vp + "head.probe", (1, 1, vh)), (vp + "head.attention.in_proj_weight", (3 * vh, vh)),
            (vp + "head.attention.in_proj_bias", (3 * vh,)), (vp + "head.attention.out_proj.weight", (vh, vh)),
            (vp + "head.attention.out_proj.bias", (vh,)), (vp + "head.layernorm.weight", (vh,)),
            (vp + "head.layernorm.bias", (vh,)), (vp + "head.mlp.fc1.weight", (vf, vh)), (vp + "head.mlp.fc1.bias", (vf,)),
            (vp + "head.mlp.fc2.weight", (vh, vf)), (vp + "head.mlp.fc2.bias", (vh,))]
    out += [("connector._connector.0.weight", (h, vh)), ("connector._connector.0.bias", (h,)),
            ("connector._connector.2.weight", (h, h)), ("connector._connector.2.bias", (h,))]
    return out


def write_checkpoint(root: Path, scale: float) -> list[int]:
    """Write the synthetic checkpoint; returns the shard sizes in bytes."""
    import torch

    from cadvlm.model.safetensors_stream import StreamWriter
    from tinyllava_fixture import write_tokenizer

    specs = tensors(scale)
    shards, cur, size = [], [], 0
    for name, shape in specs:
        nbytes = torch.Size(shape).numel() * 2
        if cur and size + nbytes > SHARD_LIMIT:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape))
        size += nbytes
    shards.append(cur)
    weight_map, sizes = {}, []
    for i, part in enumerate(shards, 1):
        fname = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        w = StreamWriter(root / fname, [(n, torch.bfloat16, s) for n, s in part])
        for j, (n, s) in enumerate(part):
            t = torch.empty(s, dtype=torch.bfloat16)
            t.fill_(0.01 * ((j % 7) + 1))  # cheap, deterministic; values do not matter here
            w.write(n, t)
            del t
        w.close()
        sizes.append((root / fname).stat().st_size)
        weight_map.update({n: fname for n, _ in part})
    (root / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": sum(sizes)}, "weight_map": weight_map}))
    text = dict(PHI2, num_hidden_layers=max(1, round(PHI2["num_hidden_layers"] * scale)))
    vision = dict(SIGLIP, num_hidden_layers=max(2, round(SIGLIP["num_hidden_layers"] * scale)),
                  model_name_or_path="google/siglip-so400m-patch14-384")
    tok = write_tokenizer(root, "phi")
    (root / "config.json").write_text(json.dumps({
        "architectures": ["TinyLlavaForConditionalGeneration"], "model_type": "tinyllava",
        "llm_model_name_or_path": "microsoft/phi-2", "vision_model_name_or_path": "google/siglip-so400m-patch14-384",
        "connector_type": "mlp2x_gelu", "text_config": text, "vision_config": vision, "hidden_size": 2560,
        "vocab_size": 51200, "image_token_index": -200, "pad_token": tok.pad_token, "tokenizer_model_max_length": 3072,
        "vision_feature_layer": -2, "vision_feature_select_strategy": "patch", "image_aspect_ratio": "square",
        "torch_dtype": "bfloat16"}))
    return sizes


CHILD = r"""
import json, resource, sys, time
t0 = time.time()
import torch, transformers  # noqa: F401  the baseline: what any conversion imports
from cadvlm.model.import_tinyllava import import_tinyllava
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
mode, src, dst = sys.argv[1:4]
t1 = time.time()
if mode == "stream":
    report = import_tinyllava(src, dst, log=lambda *_: None)
    extra = {"files": report.files, "bytes": report.bytes_written}
else:  # what safetensors' own API gives: each shard loaded whole, then saved whole
    import glob, os
    from safetensors import safe_open
    from safetensors.torch import save_file
    os.makedirs(dst, exist_ok=True)
    for path in sorted(glob.glob(src + "/*.safetensors")):
        with safe_open(path, "pt") as f:
            d = {k: f.get_tensor(k) for k in f.keys()}
        save_file(d, os.path.join(dst, os.path.basename(path)))
        del d
    extra = {}
print(json.dumps({"baseline_rss": base, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "seconds": time.time() - t1, "import_seconds": t1 - t0, **extra}))
"""


def run_child(mode: str, src: Path, dst: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(src), str(dst)], check=True, capture_output=True,
                         text=True, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin",
                                         "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the layers (1 = the real size)")
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary folder in /tmp, removed)")
    ap.add_argument("--compare-safe-open", action="store_true", help="also measure safe_open + save_file per shard")
    args = ap.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="bench_import_", dir="/tmp"))
    work.mkdir(parents=True, exist_ok=True)
    need = sum(__import__("math").prod(s) * 2 for _, s in tensors(args.scale)) * (3 if args.compare_safe_open else 2)
    free = shutil.disk_usage(work).free
    if free < need * 1.05:
        print(f"not enough disk in {work}: {free / 2**30:.1f} GiB free, {need / 2**30:.1f} GiB needed; "
              f"try --scale {max(0.05, round(free / need * 0.8, 2))}", file=sys.stderr)
        return 1
    try:
        src = work / "src"
        src.mkdir(parents=True, exist_ok=True)
        t = time.time()
        sizes = write_checkpoint(src, args.scale)
        gib = 2 ** 30
        print(f"checkpoint: {len(sizes)} shards, {sum(sizes) / gib:.2f} GiB (largest {max(sizes) / gib:.2f} GiB), "
              f"written in {time.time() - t:.1f} s (scale {args.scale})")
        r = run_child("stream", src, work / "dst")
        target = max(sizes) + gib
        print(f"import-model: {r['seconds']:.1f} s, {r['bytes'] / gib:.2f} GiB written in {len(r['files'])} files; "
              f"peak RSS {r['peak_rss'] / gib:.2f} GiB (baseline after imports {r['baseline_rss'] / gib:.2f} GiB, "
              f"conversion adds {(r['peak_rss'] - r['baseline_rss']) / gib:.2f} GiB); target <= largest shard + 1 GiB "
              f"= {target / gib:.2f} GiB: {'met' if r['peak_rss'] <= target else 'NOT met'}")
        shutil.rmtree(work / "dst", ignore_errors=True)
        if args.compare_safe_open:
            r2 = run_child("safe_open", src, work / "dst2")
            print(f"safe_open + save_file per shard (for comparison): {r2['seconds']:.1f} s, peak RSS "
                  f"{r2['peak_rss'] / gib:.2f} GiB")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
