"""What a TinyLLaVA_Factory checkpoint folder is, and how TinyLLaVA turns a conversation into tokens.

OpenECAD's released models (Phi-2 + SigLIP 3.1B, Gemma + SigLIP 2.4B, OpenELM + SigLIP/CLIP
0.89B/0.55B) and TinyLLaVA's own bases are TinyLLaVA_Factory checkpoints: a `config.json` with
`model_type: "tinyllava"`, safetensors weights named after TinyLLaVA's modules, and the tokenizer
files. Transformers has no class for them, so `cadvlm import-model` rewrites them as a native
LLaVA folder (`cadvlm.model.import_tinyllava`). This module holds the facts that rewrite must
keep, each with where it was read, and TinyLLaVA's own tokenisation, rewritten here so that the
converter can check the converted processor gives the very same token ids.

Sources read (TinyLLaVA/TinyLLaVA_Factory at 53f12c7; Yuki-Kokomi/OpenECAD_Project at a65d661):
- tinyllava/model/configuration_tinyllava.py: the config fields and their defaults.
- tinyllava/model/modeling_tinyllava.py: module names `language_model`, `vision_tower`,
  `connector`; the -200 splice of image features into the embedded text.
- tinyllava/model/vision_tower/base.py: `hidden_states[vision_feature_layer]`, then `[:, 1:]`
  for the `patch` strategy (also for SigLIP, which has no CLS token: its first patch is dropped).
- tinyllava/model/connector/mlp.py: `mlp2x_gelu` = Linear, GELU, Linear (`_connector.0`, `.2`).
- tinyllava/data/template/*.py: the prompt layout, the system prompt and the EOS of each family.
- tinyllava/data/template/base.py: `tokenizer_image_token` (chunks around `<image>`, BOS once).
- tinyllava/model/llm/*.py: the tokenizer post-load (pad = unk; Qwen2: unk = pad); llm/openelm.py: Apple's
  OpenELM config (per-layer sizes from make_divisible) and weights (cadvlm.model.openelm says what it is).
- tinyllava/utils/constants.py: IMAGE_TOKEN_INDEX = -200.
- OpenECAD_Project/OpenECAD_TinyLLaVA.patch: OpenECAD's system prompt (same text in the llama,
  gemma and phi templates) and which template each model used (llama for OpenELM, gemma, phi).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

IMAGE_TOKEN_INDEX = -200  # tinyllava/utils/constants.py
IMAGE_TAG = "<image>"  # DEFAULT_IMAGE_TOKEN, same file

# tinyllava/data/template/{llama,gemma,phi,qwen2_base,qwen2_instruct}_template.py: `system = ...`
TINYLLAVA_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
                    "The assistant gives helpful, detailed, and polite answers to the user's questions.")
# OpenECAD_Project/OpenECAD_TinyLLaVA.patch replaces that line in the llama, gemma and phi templates.
OPENECAD_SYSTEM = ("A conversation between a curious user and an artificial intelligence assistant. The user wants "
                   "to create a 3D CAD project but only has a picture of the desired 3D geometry. The assistant, an "
                   "expert mechanical part designer, provides detailed answers to the user's questions. The CAD "
                   "project should be represented using OpenECAD style code in Python 3. Additionally, note that "
                   "Curve (including Arc, Line, Circle) and Loop will automatically append to the Curves and Loops "
                   "lists, respectively.")
SYSTEM_PROMPTS = {"openecad": OPENECAD_SYSTEM, "tinyllava": TINYLLAVA_SYSTEM}

# The `separator` slot's second element of each template: the text that ends an answer.
TEMPLATE_EOS = {"llama": "</s>", "gemma": "<eos>", "phi": "<|endoftext|>", "qwen2_base": "<|endoftext|>",
                "qwen2_instruct": "<|im_end|>"}
# Decoder model_type -> the template TinyLLaVA's scripts train it with (scripts/train/*, OpenECAD's patch).
DEFAULT_TEMPLATE = {"llama": "llama", "gemma": "gemma", "phi": "phi", "qwen2": "qwen2_base",
                    "openelm": "llama"}  # OpenECAD's eval.py: "for OpenECAD 0.55B & 0.89B, use llama"
# tinyllava/model/llm/__init__.py picks the decoder by a substring of llm_model_name_or_path.
LLM_NAME_HINTS = (("tinyllama", "llama"), ("openelm", "openelm"), ("gemma", "gemma"), ("qwen2", "qwen2"),
                  ("phi", "phi"), ("stablelm", "stablelm"))
VISION_TYPES = {"siglip_vision_model": "siglip", "clip_vision_model": "clip"}


class TinyLlavaFormatError(ValueError):
    """The folder is not a TinyLLaVA checkpoint we can convert; the message says why and what works."""


@dataclass(frozen=True)
class TinyLlavaCheckpoint:
    """The parts of a TinyLLaVA config.json that the conversion needs, checked."""

    root: Path
    raw: dict
    text_config: dict
    vision_config: dict
    family: str  # decoder model_type: llama | gemma | phi | qwen2 | openelm
    vision: str  # siglip | clip
    connector_type: str
    vision_feature_layer: int
    select_strategy: str  # TinyLLaVA's: patch (drop token 0) | cls_patch (keep all)
    image_aspect_ratio: str
    model_max_length: int
    weight_files: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def llava_select_strategy(self) -> str:
        # LLaVA's "default" is `[:, 1:]`, exactly TinyLLaVA's "patch" (transformers llava get_image_features).
        return "default" if self.select_strategy == "patch" else "full"


def _family(text_config: dict, llm_name: str) -> str:
    mt = str(text_config.get("model_type") or "").lower()
    if mt:
        return mt
    name = llm_name.lower()
    for hint, fam in LLM_NAME_HINTS:
        if hint in name:
            return fam
    return ""


def openelm_text_config(text: dict, shapes: dict[str, tuple[int, ...]]) -> dict:
    """Apple's OpenELM config, as TinyLLaVA saves it, -> the config of cadvlm.model.openelm (Qwen3-style).

    Per-layer head counts and FFN widths are read from the weight shapes (qkv_proj rows = (q + 2 kv) x
    head_dim, proj_1 rows = 2 x FFN) and checked against the config's `num_query_heads` / `num_kv_heads`
    lists when present; the variants cadvlm.model.openelm does not implement are refused.
    """
    unsupported = [f"{k}={text.get(k)!r}" for k, ok in (
        ("normalize_qk_projections", text.get("normalize_qk_projections") is True),
        ("ffn_with_glu", text.get("ffn_with_glu", True) is True),
        ("activation_fn_name", text.get("activation_fn_name", "swish") in ("swish", "silu")),
        ("normalization_layer_name", text.get("normalization_layer_name", "rms_norm") == "rms_norm")) if not ok]
    if unsupported:
        raise TinyLlavaFormatError(f"OpenELM variant not supported ({', '.join(unsupported)}); every released "
                                   "OpenELM has q/k norms, a SiLU GLU FFN and RMSNorm")
    n, hd = int(text["num_transformer_layers"]), int(text["head_dim"])
    q_list, kv_list = text.get("num_query_heads"), text.get("num_kv_heads")
    q, kv, ffn = [], [], []
    for i in range(n):
        qkv = shapes.get(f"language_model.transformer.layers.{i}.attn.qkv_proj.weight")
        p1 = shapes.get(f"language_model.transformer.layers.{i}.ffn.proj_1.weight")
        if qkv is None or p1 is None:
            raise TinyLlavaFormatError(f"OpenELM layer {i}: qkv_proj or proj_1 missing from the weights")
        heads = qkv[0] // hd
        if isinstance(kv_list, list) and isinstance(q_list, list):
            qi, kvi = int(q_list[i]), int(kv_list[i])
        else:  # num_kv_heads = num_query_heads // num_gqa_groups (OpenELMConfig.__post_init__)
            kvi = heads // (int(text.get("num_gqa_groups") or 1) + 2)
            qi = heads - 2 * kvi
        if (qi + 2 * kvi) * hd != qkv[0] or qi % kvi:
            raise TinyLlavaFormatError(f"OpenELM layer {i}: qkv_proj has {qkv[0]} rows, not ({qi} + 2 x {kvi}) x {hd}")
        q.append(qi)
        kv.append(kvi)
        ffn.append(p1[0] // 2)
    return {
        "model_type": "cadvlm_openelm", "vocab_size": int(text["vocab_size"]), "hidden_size": int(text["model_dim"]),
        "intermediate_size": ffn[0], "num_hidden_layers": n, "num_attention_heads": q[0],
        "num_key_value_heads": kv[0], "head_dim": hd, "hidden_act": "silu",
        "rms_norm_eps": 1e-6,  # OpenELMRMSNorm's default; OpenELM never passes another
        "rope_parameters": {"rope_type": "default", "rope_theta": float(text.get("rope_freq_constant", 10000))},
        "max_position_embeddings": int(text.get("max_context_length", 2048)), "attention_bias": False,
        "tie_word_embeddings": bool(text.get("share_input_output_layers", False)), "use_sliding_window": False,
        "layer_num_attention_heads": q, "layer_num_key_value_heads": kv, "layer_intermediate_sizes": ffn,
        "bos_token_id": text.get("bos_token_id"), "eos_token_id": text.get("eos_token_id"),
    }


def read_checkpoint(src: str | Path) -> TinyLlavaCheckpoint:
    """Read and check SRC/config.json and list the weight files; raise TinyLlavaFormatError on anything we
    cannot convert exactly. Nothing named in the config (hub ids) is fetched."""
    root = Path(src)
    path = root / "config.json"
    if not path.is_file():
        raise TinyLlavaFormatError(f"{root}: no config.json; not a model folder")
    raw = json.loads(path.read_text(encoding="utf-8"))
    if raw.get("model_type") != "tinyllava":
        raise TinyLlavaFormatError(f"{path}: model_type is {raw.get('model_type')!r}, not 'tinyllava'. A native "
                                   "transformers model needs no import: use it as model.base directly")
    text, vision = raw.get("text_config"), raw.get("vision_config")
    if not isinstance(text, dict) or not isinstance(vision, dict):
        raise TinyLlavaFormatError(f"{path}: text_config and vision_config must be full dicts (TinyLLaVA would "
                                   "fetch them from the hub ids, which we never do)")
    family = _family(text, str(raw.get("llm_model_name_or_path") or ""))
    if family not in DEFAULT_TEMPLATE:
        raise TinyLlavaFormatError(f"{root}: decoder {family or 'unknown'!r} is not supported; supported: "
                                   f"{', '.join(sorted(DEFAULT_TEMPLATE))}")
    vision_kind = VISION_TYPES.get(str(vision.get("model_type")))
    if vision_kind is None or raw.get("vision_model_name_or_path2"):
        raise TinyLlavaFormatError(f"{root}: vision tower {vision.get('model_type')!r} "
                                   f"{'with a second tower ' if raw.get('vision_model_name_or_path2') else ''}"
                                   "is not supported; supported: SigLIP or CLIP, one tower")
    connector = str(raw.get("connector_type") or "")
    if connector != "mlp2x_gelu":
        raise TinyLlavaFormatError(f"{root}: connector_type {connector!r} has no LLaVA equivalent; only "
                                   "mlp2x_gelu (Linear, GELU, Linear) maps onto LLaVA's projector")
    strategy = str(raw.get("vision_feature_select_strategy", "patch"))
    layer = raw.get("vision_feature_layer", -2)
    if strategy not in ("patch", "cls_patch") or not isinstance(layer, int):
        raise TinyLlavaFormatError(f"{root}: vision_feature_select_strategy {strategy!r} / vision_feature_layer "
                                   f"{layer!r} not supported (patch or cls_patch, one layer)")
    aspect = str(raw.get("image_aspect_ratio", "square"))
    if aspect not in ("square", "pad"):
        raise TinyLlavaFormatError(f"{root}: image_aspect_ratio {aspect!r} not supported (square or pad)")
    return TinyLlavaCheckpoint(
        root=root, raw=raw, text_config=dict(text), vision_config=dict(vision), family=family, vision=vision_kind,
        connector_type=connector, vision_feature_layer=layer, select_strategy=strategy, image_aspect_ratio=aspect,
        model_max_length=int(raw.get("tokenizer_model_max_length") or 2048), weight_files=weight_files(root))


def weight_files(root: Path) -> tuple[Path, ...]:
    """The safetensors files: `model.safetensors`, or the shards named by `model.safetensors.index.json`."""
    index = root / "model.safetensors.index.json"
    if index.is_file():
        names = sorted(set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()))
        missing = [n for n in names if not (root / n).is_file()]
        if missing:
            raise TinyLlavaFormatError(f"{root}: shards named in the index are missing: {', '.join(missing)}")
        return tuple(root / n for n in names)
    single = root / "model.safetensors"
    if single.is_file():
        return (single,)
    if any(root.glob("*.bin")):
        raise TinyLlavaFormatError(f"{root}: weights are pickled .bin files; only safetensors are read (a pickle "
                                   "can run code). Convert them where you trust the file, e.g. "
                                   "`model.save_pretrained(dst, safe_serialization=True)` in TinyLLaVA_Factory")
    raise TinyLlavaFormatError(f"{root}: no model.safetensors or model.safetensors.index.json")


# ----------------------------------------------------------------------------- prompts, TinyLLaVA's way
def tinyllava_prompt(system: str, question: str, answer: str | None, eos: str) -> str:
    """One round as Template._prompt builds it (data/template/base.py + the family's formatters).

    system + " " + "USER: " + "<image>\\n" + question + " " + "ASSISTANT: " + answer + eos; the image tag is
    moved to the front of the question (`replace` then `strip`). Without an answer (eval mode),
    StringFormatter.apply returns the slot up to its ':' so the prompt ends in "ASSISTANT:".
    """
    msg = system + " "
    if IMAGE_TAG in question:
        question = (IMAGE_TAG + "\n" + question.replace(IMAGE_TAG, "").strip()).strip()
    msg += "USER: " + question + " "
    msg += "ASSISTANT:" if answer is None else "ASSISTANT: " + answer + eos
    return msg


def tinyllava_input_ids(tokenizer, prompt: str) -> list[int]:
    """Template.tokenizer_image_token: each chunk between `<image>` tags tokenised on its own (special
    tokens on), the chunks joined by -200; when the first chunk starts with BOS, BOS is kept once and the
    first token of every other chunk (its BOS) is dropped."""
    chunks = [tokenizer(c).input_ids for c in prompt.split(IMAGE_TAG)]
    ids: list[int] = []
    offset = 0
    if chunks and chunks[0] and chunks[0][0] == tokenizer.bos_token_id:
        offset = 1
        ids.append(chunks[0][0])
    for i, chunk in enumerate(chunks):
        if i:
            ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(chunk[offset:])
    return ids


def adds_bos(tokenizer) -> bool:
    """Whether tokenising a chunk starts with BOS (Llama, Gemma: yes; Phi, Qwen2: no)."""
    ids = tokenizer("a").input_ids
    return bool(ids) and tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id


# ----------------------------------------------------------------------------- the chat template
@dataclass(frozen=True)
class TemplateSpacing:
    """Whitespace the chat template writes where TinyLLaVA starts a new chunk.

    TinyLLaVA tokenises the text after BOS and after `<image>` as the start of a string; a processor
    tokenises the whole conversation at once, where the same text follows a special token. Tokenizers
    that prepend a word-start marker only at the very start of the input (sentencepiece Llama in
    transformers 5: Metaspace, prepend_scheme "first") then lose a '▁' at both places; writing a space
    there gives it back. The converter tries the variants and keeps the first that reproduces
    TinyLLaVA's ids exactly on probe conversations (`import_tinyllava.choose_spacing`).
    """

    after_bos: str = ""
    after_image: str = "\n"


SPACINGS = (TemplateSpacing(), TemplateSpacing(" ", "\n"), TemplateSpacing("", " \n"), TemplateSpacing(" ", " \n"))


def _q(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid Jinja string literal


def chat_template(system: str, eos: str, bos: str | None, spacing: TemplateSpacing = TemplateSpacing()) -> str:
    """A Jinja chat template that writes TinyLLaVA's prompt (`tinyllava_prompt`) for Hugging Face messages.

    Content may be a string (with or without `<image>`) or typed parts ({"type": "image"} / "text"); an
    image part or tag puts `<image>` first in the question, as TinyLLaVA does. A leading system message
    replaces the baked-in system prompt. Rounds follow one another with nothing between them (the EOS
    ends a round), as Template._prompt concatenates them; the generation prompt ends in "ASSISTANT:".
    """
    text_of = ("{%- if m['content'] is string -%}{%- set ns.text = m['content'] -%}"
               "{%- else -%}{%- set ns.text = '' -%}{%- for c in m['content'] -%}"
               "{%- if c['type'] == 'text' -%}{%- set ns.text = ns.text + c['text'] -%}"
               "{%- elif c['type'] == 'image' -%}{%- set ns.image = true -%}{%- endif -%}"
               "{%- endfor -%}{%- endif -%}")
    return (
        "{%- set ns = namespace(system=" + _q(system) + ", text='', image=false) -%}"
        "{%- set loop_messages = messages -%}"
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{%- set m = messages[0] -%}" + text_of + "{%- set ns.system = ns.text -%}"
        "{%- set loop_messages = messages[1:] -%}{%- endif -%}"
        + ("{{- " + _q(bos) + " -}}" if bos else "")
        + "{{- " + _q(spacing.after_bos) + " + ns.system + ' ' -}}"
        "{%- for m in loop_messages -%}"
        "{%- set ns.image = false -%}" + text_of +
        "{%- if m['role'] == 'user' -%}"
        "{%- if ns.image or " + _q(IMAGE_TAG) + " in ns.text -%}"
        "{{- 'USER: ' + " + _q(IMAGE_TAG + spacing.after_image) + " + (ns.text | replace(" + _q(IMAGE_TAG)
        + ", '') | trim) + ' ' -}}"
        "{%- else -%}{{- 'USER: ' + ns.text + ' ' -}}{%- endif -%}"
        "{%- else -%}{{- 'ASSISTANT: ' + ns.text + " + _q(eos) + " -}}{%- endif -%}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}"
    )
