"""OpenELM as a native transformers decoder, so OpenECAD's 0.89B and 0.55B models run without remote code.

Transformers has no OpenELM class; TinyLLaVA (and the hub) run Apple's `modeling_openelm.py` with
`trust_remote_code`, which cadvlm never does. Read in TinyLLaVA_Factory's copy
(tinyllava/model/llm/openelm.py), OpenELM is, layer for layer, Qwen3's decoder with per-layer sizes:
- pre-norm blocks: x + attn(attn_norm(x)), then x + ffn(ffn_norm(x)); RMSNorm computed in float32,
  eps 1e-6 everywhere (OpenELMRMSNorm's default; the config's eps is never passed);
- attention: one fused `qkv_proj` (query heads, then key heads, then value heads, `head_dim` each),
  RMSNorm over `head_dim` on queries and keys (`normalize_qk_projections`) *before* RoPE, RoPE with
  `rotate_half` on the whole head at absolute positions, grouped keys/values repeated per query group
  (`repeat_interleave`), softmax scale 1/sqrt(head_dim), `out_proj` without bias;
- FFN with GLU: `proj_1` gives [y1 | y2], out = proj_2(silu(y1) * y2) (`swish` = SiLU);
- embeddings shared with the output layer (`share_input_output_layers`).
Only the sizes vary per layer ("layer-wise scaling": query/KV heads and FFN width grow with depth).
Qwen3 has exactly these operations (q_norm/k_norm on the head dim before RoPE, SiLU-gated MLP), so
`OpenELMModel` is a Qwen3Model whose layers get their own widths; the converter splits `qkv_proj`
into q/k/v_proj and `proj_1` into gate/up_proj (row blocks, exact), which also gives LoRA the usual
module names. Its own model_type, so it can never be confused with Apple's config.

No transformers class fits without code of our own: none has per-layer head counts and FFN widths.
In the LLaVA, `LlavaOpenELMConfig` / `LlavaOpenELMForConditionalGeneration` (model_type
`llava_openelm`) are stock LLaVA under their own name, so that the folder's config.json can point
at this file. This file is the folder's remote code (one source of truth): it imports only torch and
transformers, `cadvlm import-model` copies it verbatim into the folder with an `auto_map` naming
these two classes (cadvlm.model.remote_code), and plain transformers loads the folder with
`trust_remote_code=True`. The nested text_config (model_type `cadvlm_openelm`) resolves because
importing this file registers the decoder with AutoConfig / AutoModel / AutoModelForCausalLM: in
transformers 5, LlavaConfig builds `text_config` through AutoConfig's registry (its SubConfigSpec)
and LlavaModel builds the decoder with `AutoModel.from_config`, and transformers imports this file
(for the AutoConfig entry of `auto_map`) before it reads the config. cadvlm.model.load imports it
too, so cadvlm uses the same classes without remote code (transformers prefers registered local
classes), and folders converted before (model_type `llava` over a `cadvlm_openelm` text_config)
still load there. `register_for_auto_class` makes every `save_pretrained` of the LLaVA classes (a
fully trained model) write this file and the `auto_map` again.
"""

from __future__ import annotations

from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForImageTextToText,
    LlavaConfig,
    LlavaForConditionalGeneration,
    Qwen3Config,
    Qwen3ForCausalLM,
    Qwen3Model,
)

MODEL_TYPE = "cadvlm_openelm"
LLAVA_MODEL_TYPE = "llava_openelm"


# No huggingface_hub `@strict` (type checks only): this file imports just torch and transformers, and
# PreTrainedConfig.__init_subclass__ makes every config subclass a dataclass all the same.
class OpenELMConfig(Qwen3Config):
    """Qwen3Config plus the per-layer sizes; the uniform fields hold the first layer's values."""

    model_type = MODEL_TYPE
    layer_num_attention_heads: list[int] | None = None
    layer_num_key_value_heads: list[int] | None = None
    layer_intermediate_sizes: list[int] | None = None

    def layer_sizes(self, i: int) -> tuple[int, int, int]:
        """(query heads, key/value heads, FFN width) of layer i."""
        pick = lambda values, default: int(values[i]) if values else int(default)
        return (pick(self.layer_num_attention_heads, self.num_attention_heads),
                pick(self.layer_num_key_value_heads, self.num_key_value_heads),
                pick(self.layer_intermediate_sizes, self.intermediate_size))


def _size_layer(layer, config: OpenELMConfig, i: int) -> None:
    """Give decoder layer i its own widths (new Linear modules; same attention code and config)."""
    q, kv, ffn = config.layer_sizes(i)
    d, hd = config.hidden_size, config.head_dim
    attn, mlp = layer.self_attn, layer.mlp
    attn.q_proj = nn.Linear(d, q * hd, bias=False)
    attn.k_proj = nn.Linear(d, kv * hd, bias=False)
    attn.v_proj = nn.Linear(d, kv * hd, bias=False)
    attn.o_proj = nn.Linear(q * hd, d, bias=False)
    attn.num_key_value_groups = q // kv  # read by the eager and sdpa attention functions (repeat_kv)
    mlp.gate_proj = nn.Linear(d, ffn, bias=False)
    mlp.up_proj = nn.Linear(d, ffn, bias=False)
    mlp.down_proj = nn.Linear(ffn, d, bias=False)
    mlp.intermediate_size = ffn


class OpenELMModel(Qwen3Model):
    config_class = OpenELMConfig

    def __init__(self, config: OpenELMConfig):
        super().__init__(config)
        for i, layer in enumerate(self.layers):
            _size_layer(layer, config, i)
        self.post_init()


class OpenELMForCausalLM(Qwen3ForCausalLM):
    config_class = OpenELMConfig

    def __init__(self, config: OpenELMConfig):
        super().__init__(config)
        self.model = OpenELMModel(config)
        self.post_init()


class LlavaOpenELMConfig(LlavaConfig):
    """LlavaConfig whose text_config is an OpenELMConfig. Its own model_type ("llava" is transformers')
    lets cadvlm register it, so cadvlm loads and saves these classes, with the auto_map."""

    model_type = LLAVA_MODEL_TYPE


class LlavaOpenELMForConditionalGeneration(LlavaForConditionalGeneration):
    """Stock LlavaForConditionalGeneration (its decoder comes from AutoModel: OpenELMModel)."""

    config_class = LlavaOpenELMConfig


def register() -> None:
    """Make the Auto classes know both model types, and saves of the LLaVA carry this file (idempotent)."""
    AutoConfig.register(MODEL_TYPE, OpenELMConfig, exist_ok=True)
    AutoModel.register(OpenELMConfig, OpenELMModel, exist_ok=True)
    AutoModelForCausalLM.register(OpenELMConfig, OpenELMForCausalLM, exist_ok=True)
    AutoConfig.register(LLAVA_MODEL_TYPE, LlavaOpenELMConfig, exist_ok=True)
    AutoModelForImageTextToText.register(LlavaOpenELMConfig, LlavaOpenELMForConditionalGeneration, exist_ok=True)
    LlavaOpenELMConfig.register_for_auto_class("AutoConfig")
    LlavaOpenELMForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")


register()
