"""A small convolutional vision tower for the tiny base, registered with the Auto classes.

Why: the tiny base's SigLIP tower is a ViT trained from random weights on ~1,000 pictures, and it
learns slowly (at the decoder's rate it collapsed). A stack of stride-2 3x3 convolutions carries
the prior that a picture is made of local strokes (edges, corners, arcs), which small data cannot
teach a ViT quickly. It ends on the same grid as a 16 px-patch ViT (one token per patch), so the
processor, the token count and LLaVA's projector are unchanged.

What LLaVA reads: `hidden_states[0]` is each patch's pixels projected linearly (as SigLIP's patch
embedding), `hidden_states[-1]` the convolutional features, both with a learnt position per token.
So `vision_feature_layer: [0, -1]` means the same for either tower.
"""

from __future__ import annotations

import math

import torch
from huggingface_hub.dataclasses import strict
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling

MODEL_TYPE = "cadvlm_conv_tower"


@strict
class ConvTowerConfig(PretrainedConfig):
    """image_size / patch_size (a power of two >= 2): the output grid; width: channels of the first
    convolution, doubled at each stride-2 step up to hidden_size."""

    model_type = MODEL_TYPE
    base_config_key = "vision_config"

    image_size: int = 64
    patch_size: int = 16
    num_channels: int = 3
    hidden_size: int = 256
    width: int = 32
    initializer_range: float = 0.02


class ConvTowerModel(PreTrainedModel):
    config_class = ConvTowerConfig
    main_input_name = "pixel_values"
    _no_split_modules: list[str] = []
    # No attention inside, so whatever attention the decoder is loaded with suits the tower too.
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(self, config: ConvTowerConfig):
        super().__init__(config)
        steps = int(math.log2(config.patch_size))
        if 2 ** steps != config.patch_size or steps < 1:
            raise ValueError(f"conv tower: patch_size must be a power of two >= 2, not {config.patch_size}")
        layers, c_in = [], config.num_channels
        for i in range(steps):
            c_out = config.hidden_size if i == steps - 1 else min(config.hidden_size, config.width * 2 ** i)
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.GELU()]
            c_in = c_out
        self.convs = nn.Sequential(*layers[:-1])  # no activation after the last: a linear read-out
        self.patch_embedding = nn.Conv2d(config.num_channels, config.hidden_size, config.patch_size, config.patch_size)
        n = (config.image_size // config.patch_size) ** 2
        self.position_embedding = nn.Parameter(torch.zeros(1, n, config.hidden_size))
        self.post_init()

    def _init_weights(self, module):
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif module is self:
            nn.init.normal_(self.position_embedding, std=self.config.initializer_range)

    def forward(self, pixel_values: torch.Tensor, output_hidden_states: bool | None = None,
                return_dict: bool | None = None, **kwargs) -> BaseModelOutputWithPooling:
        x = pixel_values.to(self.patch_embedding.weight.dtype)
        patches = self.patch_embedding(x).flatten(2).transpose(1, 2) + self.position_embedding
        features = self.convs(x).flatten(2).transpose(1, 2) + self.position_embedding
        return BaseModelOutputWithPooling(last_hidden_state=features, pooler_output=features.mean(dim=1),
                                          hidden_states=(patches, features))


def register() -> None:
    """Make AutoConfig / AutoModel know the tower (idempotent)."""
    try:
        AutoConfig.register(MODEL_TYPE, ConvTowerConfig)
    except ValueError:
        pass
    try:
        AutoModel.register(ConvTowerConfig, ConvTowerModel)
    except ValueError:
        pass


register()
