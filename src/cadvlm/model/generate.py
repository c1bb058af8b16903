"""Greedy, batched generation of CAD code from pictures, shared by evaluate and predict.

Batched decoding needs left padding: every row's prompt must end at the same position so the
first generated token of each row follows its own prompt. The KV cache is on (`use_cache=True`),
so each new token costs one decoder step over one position.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from PIL import Image

from cadvlm.data.conversations import to_messages


@contextmanager
def _left_padding(tokenizer):
    old = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield
    finally:
        tokenizer.padding_side = old


@torch.inference_mode()
def generate_code(model, processor, images: list[Image.Image], prompt: str, max_new_tokens: int = 1024,
                  batch_size: int = 8) -> list[str]:
    """Generate one answer per picture (greedy). Returns the decoded answers, special tokens removed.

    The answer is the model's raw text (for our models `Of course, here are the codes:` + a fenced
    python block); extracting and parsing the code is the caller's job. Order follows `images`.
    """
    tokenizer = processor.tokenizer
    text = processor.apply_chat_template(to_messages(prompt), tokenize=False, add_generation_prompt=True)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    was_training = model.training
    model.eval()
    answers: list[str] = []
    try:
        with _left_padding(tokenizer):
            for start in range(0, len(images), batch_size):
                batch = [im.convert("RGB") for im in images[start:start + batch_size]]
                inputs = processor(text=[text] * len(batch), images=batch, padding=True, add_special_tokens=False,
                                   return_tensors="pt").to(device)
                if "pixel_values" in inputs:
                    inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
                out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                     use_cache=True, pad_token_id=pad_id)
                new = out[:, inputs["input_ids"].shape[1]:]
                answers.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        model.train(was_training)
    return answers
