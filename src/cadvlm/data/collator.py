"""Batching for `ConversationDataset` items: dynamic right padding, image tensors concatenated.

Padding goes only to the longest sample of the batch (optionally rounded up to a multiple of 8
for tensor cores), never to a global maximum: with answers from 150 to 1,200 tokens a fixed pad
would waste most of the compute. Padded positions get attention 0 and label -100. A 1-D tensor with
one value per token (Qwen2-VL's `mm_token_type_ids`) is padded the same way with 0. Any other
tensor the processor produced (`pixel_values`, Qwen2-VL's `image_grid_thw`, ...) is concatenated
along its first axis, which is how every HF VLM expects a batch of single-image samples.
"""

from __future__ import annotations

import torch

from cadvlm.data.conversations import IGNORE_INDEX


class VisionTextCollator:
    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None):
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, features: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        n = max(len(f["input_ids"]) for f in features)
        m = self.pad_to_multiple_of
        if m:
            n = -(-n // m) * m
        fill = {"input_ids": self.pad_token_id, "attention_mask": 0, "labels": IGNORE_INDEX}
        batch = {}
        for key, value in fill.items():
            out = torch.full((len(features), n), value, dtype=torch.long)
            for i, f in enumerate(features):
                out[i, : len(f[key])] = f[key]
            batch[key] = out
        for key in features[0]:
            if key in fill:
                continue
            if all(f[key].dim() == 1 and len(f[key]) == len(f["input_ids"]) for f in features):
                # one value per token (Qwen2-VL's mm_token_type_ids): padded like input_ids, with 0
                out = torch.zeros((len(features), n), dtype=features[0][key].dtype)
                for i, f in enumerate(features):
                    out[i, : len(f[key])] = f[key]
                batch[key] = out
            else:
                batch[key] = torch.cat([f[key] for f in features], dim=0)
        return batch
