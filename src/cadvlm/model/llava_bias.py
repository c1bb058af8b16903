"""LLaVA whose output layer has a bias: what Phi-2 decoders need to keep their logits exact.

`LlavaForConditionalGeneration` builds `lm_head` without a bias (transformers
models/llava/modeling_llava.py), but Phi's `lm_head` has one (models/phi/modeling_phi.py:
`nn.Linear(hidden, vocab, bias=True)`), trained, so dropping it changes every logit of an
imported OpenECAD-3.1B / TinyLLaVA-Phi-2 checkpoint. A bias per vocabulary entry cannot be folded
into the weights (it would have to lie in the span of the 2,560 hidden directions for 51,200
tokens). So this module defines the smallest difference: the same LLaVA with `lm_head.bias`, its
own `model_type`, registered with the Auto classes when the module is imported (cadvlm.model.load
imports it). Everything else, including the processor, is stock LLaVA, and nothing runs remote
code. Only checkpoints with a biased output layer are written this way; the others are plain LLaVA.
"""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoConfig, AutoModelForImageTextToText, LlavaConfig, LlavaForConditionalGeneration

MODEL_TYPE = "llava_lm_bias"


@strict
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
    """Make AutoConfig / AutoModelForImageTextToText know the model type (idempotent)."""
    try:
        AutoConfig.register(MODEL_TYPE, LlavaLMBiasConfig)
    except ValueError:  # already registered
        pass
    try:
        AutoModelForImageTextToText.register(LlavaLMBiasConfig, LlavaLMBiasForConditionalGeneration)
    except ValueError:
        pass


register()
