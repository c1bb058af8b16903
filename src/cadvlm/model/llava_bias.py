"""LLaVA whose output layer has a bias: what Phi-2 decoders need to keep their logits exact.

`LlavaForConditionalGeneration` builds `lm_head` without a bias (transformers
models/llava/modeling_llava.py), but Phi's `lm_head` has one (models/phi/modeling_phi.py:
`nn.Linear(hidden, vocab, bias=True)`), trained, so dropping it changes every logit of an
imported OpenECAD-3.1B / TinyLLaVA-Phi-2 checkpoint. A bias per vocabulary entry cannot be folded
into the weights (it would have to lie in the span of the 2,560 hidden directions for 51,200
tokens), and no native transformers LLaVA-family class has a biased output layer. So this module
defines the smallest difference: the same LLaVA with `lm_head.bias`, under its own `model_type`.
Everything else, including the processor, is stock LLaVA.

This file is also the folder's remote code (one source of truth): it imports only torch and
transformers, and `cadvlm import-model` copies it verbatim into every folder it writes with these
classes, with `auto_map` in config.json naming them (cadvlm.model.remote_code), so plain transformers
loads the folder with `trust_remote_code=True` and never needs cadvlm. Importing it registers the
classes with AutoConfig / AutoModelForImageTextToText (cadvlm.model.load imports it; transformers'
own import of the copy does the same), and `register_for_auto_class` makes every `save_pretrained`
of them (a fully trained model, a config) write this file and the `auto_map` again. Without
`trust_remote_code`, a process that imported cadvlm uses cadvlm's registered classes (transformers
prefers registered local classes over remote code), so cadvlm itself never runs remote code.
"""

from __future__ import annotations

from torch import nn
from transformers import AutoConfig, AutoModelForImageTextToText, LlavaConfig, LlavaForConditionalGeneration

MODEL_TYPE = "llava_lm_bias"


class LlavaLMBiasConfig(LlavaConfig):
    """LlavaConfig; the model it names has a bias on its output layer."""

    model_type = MODEL_TYPE


class LlavaLMBiasForConditionalGeneration(LlavaForConditionalGeneration):
    """LlavaForConditionalGeneration with `lm_head = Linear(hidden, vocab, bias=True)`."""

    config_class = LlavaLMBiasConfig

    def __init__(self, config: LlavaLMBiasConfig):
        super().__init__(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=True)
        self.post_init()

    def resize_token_embeddings(self, *args, **kwargs):
        # The base class resizes lm_head.weight only; a stale bias would then break the logits' shape.
        raise NotImplementedError("resize an LlavaLMBias model by re-importing it (cadvlm import-model)")


def register() -> None:
    """Make AutoConfig / AutoModelForImageTextToText know the model type, and saves carry this file (idempotent)."""
    AutoConfig.register(MODEL_TYPE, LlavaLMBiasConfig, exist_ok=True)
    AutoModelForImageTextToText.register(LlavaLMBiasConfig, LlavaLMBiasForConditionalGeneration, exist_ok=True)
    LlavaLMBiasConfig.register_for_auto_class("AutoConfig")
    LlavaLMBiasForConditionalGeneration.register_for_auto_class("AutoModelForImageTextToText")


register()
