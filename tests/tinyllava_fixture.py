"""Tiny random TinyLLaVA_Factory checkpoints in TinyLLaVA's exact file layout, and a reference forward.

The checkpoints are what TinyLLaVA's `save_pretrained` writes (read in TinyLLaVA_Factory:
tinyllava/model/modeling_tinyllava.py, training_recipe/base.py): config.json with `model_type:
"tinyllava"` and full text/vision config dicts, safetensors keyed `language_model.model.*`,
`language_model.lm_head.*` (absent when tied), `vision_tower._vision_tower.vision_model.*`,
`connector._connector.{0,2}.*` (one file, or shards with an index), and the tokenizer files. The
tokenizers are trained here, offline, shaped like each family's real one (sentencepiece-style BPE with
byte fallback and BOS for Llama/Gemma, byte-level BPE without BOS for Phi/Qwen2).

`Reference` re-implements TinyLLaVA's forward from its sources, independently of the converter:
prompt (data/template/*), chunked tokenisation with -200 (template/base.py tokenizer_image_token),
SigLIP/CLIP hidden state -2 without token 0 (vision_tower/base.py), the mlp2x_gelu connector
(connector/mlp.py), the splice (modeling_tinyllava.py prepare_inputs_labels_for_multimodal), and
Gemma's sqrt(hidden) scaling of all input embeddings (transformers 4.40 GemmaModel.forward).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import nn

SYSTEM_TINYLLAVA = ("A chat between a curious user and an artificial intelligence assistant. "
                    "The assistant gives helpful, detailed, and polite answers to the user's questions.")
EOS = {"llama": "</s>", "gemma": "<eos>", "phi": "<|endoftext|>", "qwen2": "<|endoftext|>", "openelm": "</s>"}
CORPUS = [
    SYSTEM_TINYLLAVA,
    ("A conversation between a curious user and an artificial intelligence assistant. The user wants to create a "
     "3D CAD project but only has a picture of the desired 3D geometry."),
    "USER: What is shown? ASSISTANT: Of course, here are the codes:\n```python\n",
    "SketchPlane0 = add_sketchplane(\n\torigin= [0., 0., 0.], normal= [0., 0., 1.], x_axis= [1., 0., 0.])\n",
    "Loops0 = []\nCurves0_0 = []\nLine0_0_0 = add_line(start= [0., 0.], end= [10.,  0.])\n",
    "Write OpenECAD-style CAD code that produces the solid drawn in four views.",
    "This picture shows four views of a mechanical part. size 191 76 116\nend",
]
VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3, "num_attention_heads": 2,
          "image_size": 56, "patch_size": 14}
TEXT = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "max_position_embeddings": 512}
# family -> (free embedding rows beyond the tokenizer, tied embeddings, number of shards)
LAYOUT = {"phi": (8, False, 3), "gemma": (0, True, 1), "qwen2": (5, True, 2), "llama": (0, False, 1),
          "openelm": (0, True, 2)}
# OpenELM with layer-wise scaling, sized down (the real 450M: 20 layers, width 1536, head_dim 64, 4 groups).
OPENELM = {"model_type": "openelm", "num_transformer_layers": 3, "model_dim": 64, "head_dim": 16, "num_gqa_groups": 2,
           "qkv_multipliers": [0.5, 1.0], "ffn_multipliers": [0.5, 4.0], "ffn_dim_divisor": 32,
           "ffn_with_glu": True, "activation_fn_name": "swish", "normalization_layer_name": "rms_norm",
           "normalize_qk_projections": True, "share_input_output_layers": True, "rope_freq_constant": 10000,
           "rope_max_length": 4096, "max_context_length": 2048, "initializer_range": 0.02, "use_cache": True,
           "bos_token_id": 1, "eos_token_id": 2}


# ----------------------------------------------------------------------------- tokenizers
def _spm_like(family: str):
    """Sentencepiece-style BPE (byte fallback, '▁' for spaces) as Llama/Gemma tokenizer.json files are."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["<unk>", "<s>", "</s>"] if family == "llama" else ["<pad>", "<eos>", "<bos>", "<unk>"]
    bos = "<s>" if family == "llama" else "<bos>"
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    norm = [normalizers.Replace(" ", "▁")]
    tok.normalizer = normalizers.Sequence(([normalizers.Prepend("▁")] if family == "llama" else []) + norm)
    # Pieces never cross a word start, as in sentencepiece's (split_by_whitespace) vocabularies.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=specials + [f"<0x{i:02X}>" for i in range(256)],
                                  show_progress=False)
    tok.train_from_iterator(CORPUS * 3, trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                       special_tokens=[(bos, tok.token_to_id(bos))])
    cfg = {"tokenizer_class": "LlamaTokenizer" if family == "llama" else "GemmaTokenizer", "bos_token": bos,
           "eos_token": "</s>" if family == "llama" else "<eos>", "unk_token": "<unk>", "add_bos_token": True,
           "add_eos_token": False, "legacy": False, "model_max_length": 2048}
    if family == "gemma":
        cfg["pad_token"] = "<pad>"
    return tok, cfg


def _byte_level(family: str):
    """GPT-2-style byte-level BPE as Phi-2's (CodeGen) and Qwen2's tokenizers are; no BOS is added."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<|endoftext|>"] + (["<|im_start|>", "<|im_end|>"] if family == "qwen2" else [])
    tok = Tokenizer(models.BPE())
    if family == "qwen2":  # Qwen2's split regex (tokenizer.json of Qwen/Qwen2-0.5B), then bytes
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+"
                                       r"[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS * 3, trainer)
    if family == "phi":
        cfg = {"tokenizer_class": "CodeGenTokenizer", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
               "unk_token": "<|endoftext|>", "add_bos_token": False, "model_max_length": 2048}
    else:
        cfg = {"tokenizer_class": "Qwen2Tokenizer", "bos_token": None, "eos_token": "<|endoftext|>",
               "pad_token": "<|endoftext|>", "unk_token": None, "model_max_length": 2048}
    return tok, cfg


def write_tokenizer(folder: Path, family: str):
    from transformers import AutoTokenizer

    tok, cfg = _spm_like(family) if family in ("llama", "gemma") else _byte_level(family)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    return AutoTokenizer.from_pretrained(str(folder))


# ----------------------------------------------------------------------------- weights
def _text_config(family: str, vocab: int, tied: bool):
    from transformers import GemmaConfig, LlamaConfig, PhiConfig, Qwen2Config

    common = dict(TEXT, vocab_size=vocab, tie_word_embeddings=tied)
    if family == "phi":
        return PhiConfig(**common)
    if family == "gemma":  # hidden 72: sqrt(72) is not a power of two, so folding it into the projector rounds
        return GemmaConfig(**{**common, "hidden_size": 72}, num_key_value_heads=2, head_dim=16)
    if family == "qwen2":
        return Qwen2Config(**common, num_key_value_heads=2)
    return LlamaConfig(**common, num_key_value_heads=2)


def _vision_config(vision: str):
    from transformers import CLIPVisionConfig, SiglipVisionConfig

    return SiglipVisionConfig(**VISION) if vision == "siglip" else CLIPVisionConfig(**VISION, projection_dim=16)


def _randomise(module: nn.Module, gen: torch.Generator) -> None:
    """Weights large enough that logits spread over several units (HF's 0.02 init makes near-ties)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p.shape[-1]) * 1.5)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def _make_divisible(v: float, divisor: int) -> int:
    """OpenELM's make_divisible (tinyllava/model/llm/openelm.py)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def openelm_config(vocab: int) -> dict:
    """OpenELMConfig.__post_init__'s per-layer sizes, as TinyLLaVA saves the config (lists filled in)."""
    c, n = dict(OPENELM, vocab_size=vocab), OPENELM["num_transformer_layers"]
    qm = [round(v, 2) for v in np.linspace(*c["qkv_multipliers"], num=n)]
    c["num_query_heads"] = [_make_divisible(c["model_dim"] * m, c["head_dim"] * c["num_gqa_groups"]) // c["head_dim"]
                            for m in qm]
    c["num_kv_heads"] = [q // c["num_gqa_groups"] for q in c["num_query_heads"]]
    c["ffn_multipliers"] = [round(v, 2) for v in np.linspace(*c["ffn_multipliers"], num=n)]
    return c


def _openelm_state(c: dict, gen: torch.Generator) -> dict:
    """Random weights under OpenELM's names and shapes (OpenELMModel / decoder layer / attention / FFN)."""
    d, hd = c["model_dim"], c["head_dim"]

    def w(*shape):
        return torch.randn(shape, generator=gen) / math.sqrt(shape[-1]) * 1.5

    def norm(n):
        return 1 + 0.1 * torch.randn(n, generator=gen)

    p = "language_model.transformer."
    state = {p + "token_embeddings.weight": torch.randn(c["vocab_size"], d, generator=gen), p + "norm.weight": norm(d)}
    for i in range(c["num_transformer_layers"]):
        q, kv = c["num_query_heads"][i], c["num_kv_heads"][i]
        f = _make_divisible(c["ffn_multipliers"][i] * d, c["ffn_dim_divisor"])
        li = f"{p}layers.{i}."
        state.update({li + "attn.qkv_proj.weight": w((q + 2 * kv) * hd, d), li + "attn.q_norm.weight": norm(hd),
                      li + "attn.k_norm.weight": norm(hd), li + "attn.out_proj.weight": w(d, q * hd),
                      li + "ffn.proj_1.weight": w(2 * f, d), li + "ffn.proj_2.weight": w(d, f),
                      li + "attn_norm.weight": norm(d), li + "ffn_norm.weight": norm(d)})
    return state


def write_checkpoint(root: Path, family: str, vision: str = "siglip", seed: int = 0) -> Path:
    """A TinyLLaVA checkpoint folder for `family` (llama | gemma | phi | qwen2); returns root."""
    from transformers import AutoModel, AutoModelForCausalLM

    root.mkdir(parents=True, exist_ok=True)
    tok = write_tokenizer(root, "llama" if family == "openelm" else family)  # OpenELM uses Llama-2's tokenizer
    free, tied, shards = LAYOUT[family]
    gen = torch.Generator().manual_seed(seed)
    vis_cfg = _vision_config(vision)
    if family == "openelm":  # no transformers class: config and weights written from OpenELM's own code
        text_dict = openelm_config(len(tok) + free)
        hidden = text_dict["model_dim"]
    else:
        text_cfg = _text_config(family, len(tok) + free, tied)
        text_dict, hidden = text_cfg.to_dict(), text_cfg.hidden_size
        lm = AutoModelForCausalLM.from_config(text_cfg)
    tower = AutoModel.from_config(vis_cfg)
    connector = nn.Sequential(nn.Linear(VISION["hidden_size"], hidden), nn.GELU(), nn.Linear(hidden, hidden))
    for m in (tower, connector) if family == "openelm" else (lm, tower, connector):
        _randomise(m, gen)
    if family == "openelm":
        state = _openelm_state(text_dict, gen)
    else:
        if tied:
            lm.tie_weights()
        state = {"language_model." + k: v for k, v in lm.state_dict().items() if not (tied and k == "lm_head.weight")}
    state.update({"vision_tower._vision_tower." + k: v for k, v in tower.state_dict().items()})
    state.update({"connector._connector." + k: v for k, v in connector.state_dict().items()})
    state = {k: v.contiguous().clone() for k, v in state.items()}
    _save_shards(root, state, shards)
    hub = {"phi": "microsoft/phi-2", "gemma": "google/gemma-2b-it", "qwen2": "Qwen/Qwen2-0.5B",
           "llama": "TinyLlama/TinyLlama-1.1B-Chat-v1.0", "openelm": "apple/OpenELM-450M-Instruct"}[family]
    vhub = "google/siglip-so400m-patch14-384" if vision == "siglip" else "openai/clip-vit-large-patch14-336"
    vdict = vis_cfg.to_dict()
    vdict.update(model_name_or_path=vhub, model_name_or_path2="")  # TinyLLaVA writes these into vision_config
    config = {
        "architectures": ["TinyLlavaForConditionalGeneration"], "model_type": "tinyllava",
        "llm_model_name_or_path": hub, "tokenizer_name_or_path": hub, "vision_model_name_or_path": vhub,
        "vision_model_name_or_path2": "", "connector_type": "mlp2x_gelu", "text_config": text_dict,
        "vision_config": vdict, "hidden_size": hidden, "vocab_size": len(tok) + free,
        "vision_hidden_size": VISION["hidden_size"], "ignore_index": -100, "image_token_index": -200,
        "pad_token": tok.pad_token, "pad_token_id": tok.pad_token_id, "tokenizer_padding_side": "right",
        "tokenizer_model_max_length": 2048, "tokenizer_use_fast": False, "vision_feature_layer": -2,
        "vision_feature_select_strategy": "patch", "image_aspect_ratio": "square", "use_cache": False,
        "tune_type_llm": "frozen", "tune_type_connector": "full", "tune_type_vision_tower": "frozen",
        "torch_dtype": "float32", "transformers_version": "4.40.1",
    }
    (root / "config.json").write_text(json.dumps(config, indent=2))
    return root


def _save_shards(root: Path, state: dict, shards: int) -> None:
    if shards == 1:
        save_file(state, str(root / "model.safetensors"), metadata={"format": "pt"})
        return
    names = sorted(state)
    parts = [names[i::shards] for i in range(shards)]
    weight_map = {}
    for i, part in enumerate(parts, 1):
        fname = f"model-{i:05d}-of-{shards:05d}.safetensors"
        save_file({k: state[k] for k in part}, str(root / fname), metadata={"format": "pt"})
        weight_map.update({k: fname for k in part})
    index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in state.values())},
             "weight_map": weight_map}
    (root / "model.safetensors.index.json").write_text(json.dumps(index))


# ----------------------------------------------------------------------------- TinyLLaVA's forward
class Reference:
    """TinyLLaVA's model and preprocessing for a checkpoint folder, built from its own files."""

    def __init__(self, root: Path):
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

        cfg = json.loads((root / "config.json").read_text())
        self.cfg = cfg
        self.family = cfg["text_config"]["model_type"]
        self.tokenizer = AutoTokenizer.from_pretrained(str(root))
        state = {}
        for f in sorted(root.glob("*.safetensors")):
            state.update(load_file(str(f)))
        vdict = {k: v for k, v in cfg["vision_config"].items() if not k.startswith("model_name_or_path")}
        vis_cfg = AutoConfig.for_model(**vdict)
        lm_sd = {k[len("language_model."):]: v for k, v in state.items() if k.startswith("language_model.")}
        if self.family == "openelm":  # no transformers class: OpenELM's forward is written out below
            self.lm, self.lm_state, hidden = None, lm_sd, cfg["text_config"]["model_dim"]
            self.table = lm_sd["transformer.token_embeddings.weight"]
            self.vocab = cfg["text_config"]["vocab_size"]
        else:
            text_cfg = AutoConfig.for_model(**cfg["text_config"])
            self.lm, hidden = AutoModelForCausalLM.from_config(text_cfg).eval(), text_cfg.hidden_size
            if "lm_head.weight" not in lm_sd:
                lm_sd["lm_head.weight"] = lm_sd["model.embed_tokens.weight"]
            self.lm.load_state_dict(lm_sd, strict=True)
            self.table = self.lm.get_input_embeddings().weight  # the raw rows (transformers 4.40's nn.Embedding)
            self.vocab = text_cfg.vocab_size
        self.tower = AutoModel.from_config(vis_cfg).eval()
        self.connector = nn.Sequential(nn.Linear(vis_cfg.hidden_size, hidden), nn.GELU(),
                                       nn.Linear(hidden, hidden)).eval()
        self.tower.load_state_dict({k[len("vision_tower._vision_tower."):]: v for k, v in state.items()
                                    if k.startswith("vision_tower.")}, strict=True)
        self.connector.load_state_dict({k[len("connector._connector."):]: v for k, v in state.items()
                                        if k.startswith("connector.")}, strict=True)

    # data/template/base.py + the family's formatters
    def prompt(self, system: str, question: str, answer: str | None) -> str:
        q = "<image>\n" + question.replace("<image>", "").strip()
        msg = system + " " + "USER: " + q.strip() + " "
        return msg + ("ASSISTANT:" if answer is None else "ASSISTANT: " + answer + EOS[self.family])

    # Template.tokenizer_image_token
    def input_ids(self, prompt: str) -> list[int]:
        tok = self.tokenizer
        chunks = [tok(c).input_ids for c in prompt.split("<image>")]
        offset = 1 if chunks[0] and chunks[0][0] == tok.bos_token_id else 0
        ids = [chunks[0][0]] if offset else []
        with_sep = [x for c in chunks for x in (c, [-200] * (offset + 1))][:-1]  # _insert_separator
        for x in with_sep:
            ids += x[offset:]
        return ids

    # ImagePreprocess with image_aspect_ratio "square": the tower's processor, plain resize
    def pixels(self, image: Image.Image) -> torch.Tensor:
        s = self.cfg["vision_config"]["image_size"]
        if self.cfg["vision_config"]["model_type"] == "siglip_vision_model":
            arr = np.asarray(image.convert("RGB").resize((s, s), Image.BICUBIC), dtype=np.float32) / 255.0
            arr = (arr - 0.5) / 0.5
        else:  # CLIP: shortest edge to s, centre crop s x s, OpenAI mean/std
            w, h = image.size
            k = s / min(w, h)
            im = image.convert("RGB").resize((max(s, round(w * k)), max(s, round(h * k))), Image.BICUBIC)
            left, top = (im.width - s) // 2, (im.height - s) // 2
            arr = np.asarray(im.crop((left, top, left + s, top + s)), dtype=np.float32) / 255.0
            arr = (arr - np.array([0.48145466, 0.4578275, 0.40821073], np.float32)) / \
                np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
        return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()

    @torch.no_grad()
    def embeds(self, ids: list[int], pixels: torch.Tensor) -> torch.Tensor:
        """prepare_inputs_labels_for_multimodal: raw text embeddings with the image features spliced in."""
        hs = self.tower(pixels, output_hidden_states=True).hidden_states[self.cfg["vision_feature_layer"]]
        feats = self.connector(hs[:, 1:])[0]  # strategy "patch": token 0 dropped
        table = self.table
        parts, text = [], []
        for t in ids:
            if t == -200:
                parts += [table[torch.tensor(text, dtype=torch.long)], feats]
                text = []
            else:
                text.append(t)
        parts.append(table[torch.tensor(text, dtype=torch.long)])
        return torch.cat(parts)

    @torch.no_grad()
    def logits(self, embeds: torch.Tensor) -> torch.Tensor:
        if self.family == "openelm":
            return openelm_logits(self.lm_state, self.cfg["text_config"], embeds)
        x = embeds[None]
        if self.family == "gemma":  # transformers 4.40 GemmaModel.forward: all inputs_embeds * sqrt(hidden)
            x = x * torch.tensor(self.lm.config.hidden_size ** 0.5, dtype=x.dtype)
        return self.lm(inputs_embeds=x).logits[0]

    @torch.no_grad()
    def greedy(self, ids: list[int], pixels: torch.Tensor, max_new_tokens: int, eos_id: int) -> list[int]:
        embeds, out = self.embeds(ids, pixels), []
        table = self.table
        for _ in range(max_new_tokens):
            nxt = int(self.logits(embeds)[-1].argmax())
            out.append(nxt)
            if nxt == eos_id:
                break
            embeds = torch.cat([embeds, table[nxt][None]])
        return out


def openelm_logits(sd: dict, c: dict, x: torch.Tensor) -> torch.Tensor:
    """OpenELMForCausalLM's forward on inputs_embeds [L, d], one sequence, no cache, written out from
    tinyllava/model/llm/openelm.py: RMSNorm in float32 with eps 1e-6; fused qkv split into query, key and
    value heads; q/k RMSNorm over head_dim; RoPE (rotate_half, float32) at positions 0..L-1; keys/values
    repeat_interleave'd per query group; causal SDPA; out_proj; GLU FFN silu(y1) * y2; final norm; logits
    against the shared token embeddings."""
    n_tok, hd = x.shape[0], c["head_dim"]
    inv = 1.0 / (c["rope_freq_constant"] ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    theta = torch.arange(n_tok, dtype=torch.float32)[:, None] * inv[None]
    cos, sin = torch.cat([theta, theta], -1).cos(), torch.cat([theta, theta], -1).sin()

    def rms(v, w):
        return (v.float() * torch.rsqrt(v.float().pow(2).mean(-1, keepdim=True) + 1e-6)).type_as(v) * w

    def rope(v):
        a, b = v.float().chunk(2, dim=-1)
        return (v.float() * cos + torch.cat([-b, a], -1) * sin).type_as(v)

    h = x
    for i in range(c["num_transformer_layers"]):
        p = f"transformer.layers.{i}."
        q_h, kv_h = c["num_query_heads"][i], c["num_kv_heads"][i]
        qkv = (rms(h, sd[p + "attn_norm.weight"]) @ sd[p + "attn.qkv_proj.weight"].T)
        qkv = qkv.reshape(n_tok, q_h + 2 * kv_h, hd).transpose(0, 1)
        q, k, v = qkv.split([q_h, kv_h, kv_h], dim=0)
        q, k = rope(rms(q, sd[p + "attn.q_norm.weight"])), rope(rms(k, sd[p + "attn.k_norm.weight"]))
        k, v = k.repeat_interleave(q_h // kv_h, dim=0), v.repeat_interleave(q_h // kv_h, dim=0)
        att = torch.nn.functional.scaled_dot_product_attention(q[None], k[None], v[None], is_causal=True)[0]
        h = h + att.transpose(0, 1).reshape(n_tok, q_h * hd) @ sd[p + "attn.out_proj.weight"].T
        y1, y2 = (rms(h, sd[p + "ffn_norm.weight"]) @ sd[p + "ffn.proj_1.weight"].T).chunk(2, dim=-1)
        h = h + (torch.nn.functional.silu(y1) * y2) @ sd[p + "ffn.proj_2.weight"].T
    return rms(h, sd["transformer.norm.weight"]) @ sd["transformer.token_embeddings.weight"].T
