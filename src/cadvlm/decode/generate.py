"""Generation of CAD code from pictures, shared by evaluate, predict and serve.

Greedy and batched (`generate_code`): batched decoding needs left padding, so that every row's
prompt ends at the same position and the first generated token of each row follows its own
prompt. The KV cache is on (`use_cache=True`), so each new token costs one decoder step over one
position.

Sampled (`sample_code`): n answers for one picture (temperature sampling), for render-and-compare
selection (`cadvlm.render_compare`). Seeded per picture (`sample_seed`), in a forked RNG so the
caller's random state is untouched: a part's samples do not depend on which other parts are
sampled, or in what order.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import torch
from PIL import Image

from cadvlm.data.conversations import chat_format


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
                  batch_size: int = 8, constrain=None) -> list[str]:
    """Generate one answer per picture (greedy). Returns the decoded answers, special tokens removed.

    The answer is the model's raw text (for our models `Of course, here are the codes:` + a fenced
    python block); extracting and parsing the code is the caller's job. Order follows `images`.
    `constrain`: the model's CodeFormat; when it is compact, decoding keeps to valid programs
    (`cadvlm.decode.constrain`). None (or OpenECAD) decodes freely.
    """
    answers: list[str] = []
    for start in range(0, len(images), batch_size):
        answers.extend(_generate(model, processor, images[start:start + batch_size], prompt,
                                 dict(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1), constrain))
    return answers


def _generate(model, processor, images: list, prompt: str, options: dict, constrain=None) -> list[str]:
    """One generate() call over a batch of pictures with the same prompt; decoded new tokens."""
    tokenizer = processor.tokenizer
    chat = chat_format(processor)  # the prompt exactly as in training (cadvlm.data.conversations.ChatFormat)
    text = chat.prompt(prompt)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    # Stop at the end of the turn as trained, and at whatever the model's own generation config stops on.
    stop = model.generation_config.eos_token_id
    stop = sorted(set(chat.stop_ids) | set(stop if isinstance(stop, list) else [] if stop is None else [stop]))
    device = next(model.parameters()).device
    dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
    was_training = model.training
    model.eval()
    try:
        with _left_padding(tokenizer):
            batch = [im.convert("RGB") for im in images]
            # one list of pictures per prompt: SmolVLM's processor refuses a flat list for a batch
            inputs = processor(text=[text] * len(batch), images=[[im] for im in batch], padding=True,
                               add_special_tokens=chat.add_special_tokens, return_tensors="pt").to(device)
            if "pixel_values" in inputs:
                inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
            if constrain is not None and constrain.compact:
                from transformers import LogitsProcessorList

                from cadvlm.decode.constrain import CompactConstraint

                options = {**options, "logits_processor": LogitsProcessorList([CompactConstraint(
                    tokenizer, inputs["input_ids"].shape[1], constrain.bits, stop, constrain.max_loop_curves)])}
            out = model.generate(**inputs, **options, use_cache=True, pad_token_id=pad_id,
                                 eos_token_id=stop or None)
            return tokenizer.batch_decode(out[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        model.train(was_training)


def sample_seed(seed: int, key: str) -> int:
    """The sampling seed of one picture: a hash of the run's seed and the picture's id."""
    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "little") >> 1


@torch.inference_mode()
def sample_code(model, processor, image: Image.Image, prompt: str, n: int, max_new_tokens: int = 1024,
                temperature: float = 0.7, seed: int = 0) -> list[str]:
    """n sampled answers for one picture (one generate() call, n sequences). Same inputs and seed,
    same answers; the global random state is left as it was."""
    if n <= 0:
        return []
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(int(seed))
        return _generate(model, processor, [image], prompt, dict(
            max_new_tokens=max_new_tokens, do_sample=True, temperature=float(temperature), top_k=0, top_p=1.0,
            num_beams=1, num_return_sequences=int(n)))


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
                         progress: bool = True, constrain=None) -> list[str]:
    """Answers for conversation records (.image, .prompt): greedy, batched, grouped by prompt;
    `constrain` as in `generate_code`."""
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
                for i, a in zip(chunk, generate_code(model, processor, images, prompt, max_new_tokens, batch_size,
                                                      constrain)):
                    answers[i] = a
                bar.update(len(chunk))
    return answers


def sample_for_records(model, processor, records: list, n: int, max_new_tokens: int, temperature: float,
                       seed: int, progress: bool = True) -> list[list[str]]:
    """n sampled answers for each record (.image, .prompt, .id), each picture seeded by its id."""
    import sys

    from tqdm import tqdm

    from cadvlm.data.conversations import load_image

    out = []
    for r in tqdm(records, desc=f"sampling x{n}", disable=not progress, file=sys.stderr, leave=False):
        out.append(sample_code(model, processor, load_image(r.image), r.prompt, n, max_new_tokens, temperature,
                               sample_seed(seed, r.id)))
    return out
