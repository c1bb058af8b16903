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


SMALL_MODEL_PARAMS = 100_000_000


def set_cpu_threads(model, threads: int = 0) -> int:
    """Torch's intra-op threads for generating on a CPU; returns the number set (0 = left as is).

    threads = 0 picks: one thread for a small model, torch's default for a large one. Decoding a
    small model is a long series of tiny matrix products, where waking and joining OpenMP
    threads costs more than the work: measured on the 2-core default machine, the tiny model
    decodes ~9x faster on one thread than on two (6.8 vs 60 ms a step, batch 16).
    """
    if next(model.parameters()).device.type != "cpu":
        return 0
    if threads <= 0:
        n_params = sum(p.numel() for p in model.parameters())
        if n_params >= SMALL_MODEL_PARAMS:
            return 0
        threads = 1
    torch.set_num_threads(int(threads))
    return int(threads)


def generate_for_records(model, processor, records: list, max_new_tokens: int, batch_size: int,
                         progress: bool = True) -> list[str]:
    """Answers for conversation records (.image, .prompt): greedy, batched, grouped by prompt."""
    import sys

    from tqdm import tqdm

    from cadvlm.data.conversations import load_image

    by_prompt: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_prompt.setdefault(r.prompt, []).append(i)
    answers: list[str] = [""] * len(records)
    with tqdm(total=len(records), desc="generating", disable=not progress, file=sys.stderr, leave=False) as bar:
        for prompt, idx in by_prompt.items():
            for start in range(0, len(idx), batch_size):
                chunk = idx[start:start + batch_size]
                images = [load_image(records[i].image) for i in chunk]
                for i, a in zip(chunk, generate_code(model, processor, images, prompt, max_new_tokens, batch_size)):
                    answers[i] = a
                bar.update(len(chunk))
    return answers
