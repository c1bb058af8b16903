"""TinyLLaVA conversation JSON + image folder -> validated records -> a torch Dataset for training.

The convert stage writes `data/converted/{train,val,test}.json`: a JSON list of
`{"id", "image" (relative to the image folder), "conversations": [{"from": "human", "value":
"<image>\\n<prompt>"}, {"from": "gpt", "value": "<answer>"}]}`. This module is the one place that
reads that format for training, so it is also the place that refuses bad input: every problem
(missing or unreadable image, empty or malformed conversation, human turn without `<image>`) is
found *before* training starts and reported in one `ConversationError` naming the file and the
sample, instead of surfacing as a crash an hour into a GPU run.

Text handling is delegated to the model's own processor and chat template, so the same dataset
serves the tiny built-in model and any pretrained VLM (LLaVA, Qwen2-VL, SmolVLM...). The label
mask is computed by tokenising the prompt alone and the full conversation: everything up to the
end of the prompt (system text, user text, image placeholders) gets -100 and only the answer
tokens (plus the end-of-turn token the template appends) carry loss. `ChatFormat` is the one place
that turns a prompt (and answer) into text through a template, for training and generation alike,
and evens out what real templates do differently (see its docstring).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

IMAGE_TAG = "<image>"
IGNORE_INDEX = -100


class ConversationError(ValueError):
    """Bad conversation data; the message names the file and the offending samples."""


@dataclass(frozen=True)
class Record:
    """One training sample: the picture, the user's prompt (without the image tag), the answer."""

    id: str
    image: Path
    prompt: str
    answer: str
    image_size: tuple[int, int]  # (width, height) as read from the file header
    model_id: str = ""  # the CAD model the picture shows (convert writes it; else the sample id)
    view: str | None = None  # the view drawn, or "grid" for the 2x2 sheet; None when the data does not say


def _check_item(item: Any, index: int, image_root: Path) -> tuple[Record | None, str | None]:
    """Validate one JSON item; returns (record, None) or (None, reason)."""
    if not isinstance(item, dict):
        return None, f"item {index} is not an object"
    sid = str(item.get("id", f"#{index}"))
    conv = item.get("conversations")
    if not isinstance(conv, list) or not conv:
        return None, f"sample {sid}: empty or missing 'conversations'"
    if len(conv) != 2:
        return None, f"sample {sid}: expected one human and one gpt turn, got {len(conv)} turns"
    human, gpt = conv
    if not isinstance(human, dict) or human.get("from") != "human":
        return None, f"sample {sid}: first turn is not from 'human'"
    if not isinstance(gpt, dict) or gpt.get("from") != "gpt":
        return None, f"sample {sid}: second turn is not from 'gpt'"
    hval, gval = human.get("value"), gpt.get("value")
    if not isinstance(hval, str) or IMAGE_TAG not in hval:
        # TinyLLaVA silently drops the picture when the tag is missing; we refuse instead.
        return None, f"sample {sid}: human turn has no {IMAGE_TAG} token"
    if hval.count(IMAGE_TAG) != 1:
        return None, f"sample {sid}: human turn has {hval.count(IMAGE_TAG)} {IMAGE_TAG} tokens, expected 1"
    if not isinstance(gval, str) or not gval.strip():
        return None, f"sample {sid}: empty gpt answer"
    rel = item.get("image")
    if not isinstance(rel, str) or not rel:
        return None, f"sample {sid}: missing 'image'"
    path = image_root / rel
    if not path.is_file():
        return None, f"sample {sid}: image not found: {path}"
    try:
        with Image.open(path) as im:
            size = im.size
            im.verify()  # walks the chunks and checks CRCs without decoding the pixels
    except Exception as exc:  # PIL raises many types for bad files
        return None, f"sample {sid}: unreadable image {path}: {exc}"
    prompt = hval.replace(IMAGE_TAG, "").strip("\n").strip()
    model_id, view = item.get("model_id", sid), item.get("view")
    if not isinstance(model_id, str) or not model_id or not (view is None or isinstance(view, str)):
        return None, f"sample {sid}: 'model_id' must be a non-empty string and 'view' a string"
    return Record(id=sid, image=path, prompt=prompt, answer=gval, image_size=size, model_id=model_id,
                  view=view), None


def load_conversations(json_path: str | Path, image_root: str | Path) -> list[Record]:
    """Read and validate a conversation JSON file; raise ConversationError listing every problem.

    Images are opened and verified here (header + checksum, no decoding), so a broken file is
    caught before any model is loaded.
    """
    json_path, image_root = Path(json_path), Path(image_root)
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConversationError(f"{json_path}: file not found") from None
    except json.JSONDecodeError as exc:
        raise ConversationError(f"{json_path}: invalid JSON: {exc}") from None
    if not isinstance(data, list):
        raise ConversationError(f"{json_path}: expected a JSON list of samples, got {type(data).__name__}")
    if not data:
        raise ConversationError(f"{json_path}: no samples")
    records, problems = [], []
    for i, item in enumerate(data):
        rec, why = _check_item(item, i, image_root)
        if why:
            problems.append(why)
        else:
            records.append(rec)
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ConversationError(f"{json_path}: {len(problems)} bad sample(s):\n  {shown}{more}")
    return records


def fingerprint(records: list[Record]) -> str:
    """SHA-256 over ids, texts and image bytes: identifies the exact data a run was trained on."""
    h = hashlib.sha256()
    for r in records:
        for part in (r.id, r.prompt, r.answer):
            h.update(part.encode("utf-8"))
            h.update(b"\0")
        h.update(r.image.read_bytes())
    return h.hexdigest()


def to_messages(prompt: str, answer: str | None = None) -> list[dict]:
    """Hugging Face chat messages for one sample (image first, as TinyLLaVA places it)."""
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    if answer is not None:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return msgs


class ChatFormat:
    """A processor's chat template, applied the same way in training and in generation.

    - `prompt(p)`: the generation prompt (picture + instruction, then the assistant's turn opened);
    - `conversation(p, a)`: the training text, always that prompt + the answer + the end of the turn.
      Real templates do not always render an assistant turn as their generation prompt opens it
      (LLaVA-OneVision writes `<|im_start|>assistant \n` in a turn but `<|im_start|>assistant\n` to
      generate): then the generation prompt is used, so the model learns to answer what it will be
      given. A turn closed by no special token (LLaVA-1.5 ends the answer with a space) gets the
      tokenizer's EOS, so the model learns to stop;
    - `add_special_tokens`: True when the tokenizer puts the BOS itself and the template does not
      write it (LLaVA-1.5's Llama tokenizer), as the family's own processor call would;
    - `stop_ids`: the tokens that end an answer (the turn's closing token and the EOS), for generate.
    """

    def __init__(self, processor):
        self.processor = processor
        tok = processor.tokenizer
        self.eos = tok.eos_token
        probe = self.prompt("x")
        bos = tok.bos_token
        plain = tok("a b", add_special_tokens=False)["input_ids"]
        special = tok("a b", add_special_tokens=True)["input_ids"]
        adds_bos = bos is not None and special == [tok.bos_token_id] + plain
        self.add_special_tokens = adds_bos and not probe.startswith(bos)
        self.specials = sorted((t for t in tok.all_special_tokens + list(tok.get_added_vocab()) if t.strip()),
                               key=len, reverse=True)
        answer = "Of course, here are the codes:\n```python\nx = 1\n```"
        end = self._parts("x", answer)[1]
        closing = next((t for t in self.specials if end.lstrip().startswith(t)), None)
        ids = [tok.convert_tokens_to_ids(t) for t in (closing, self.eos) if t is not None]
        self.stop_ids = sorted({i for i in ids if isinstance(i, int) and i != tok.unk_token_id})

    def prompt(self, prompt: str) -> str:
        return self.processor.apply_chat_template(to_messages(prompt), tokenize=False, add_generation_prompt=True)

    def conversation(self, prompt: str, answer: str) -> str:
        before, after = self._parts(prompt, answer)
        return before + answer + after

    def _parts(self, prompt: str, answer: str) -> tuple[str, str]:
        """(text before the answer, text after it) of the training conversation."""
        head = self.prompt(prompt)
        full = self.processor.apply_chat_template(to_messages(prompt, answer), tokenize=False)
        i = full.rfind(answer)
        if i < 0:
            raise ConversationError("the chat template does not write the answer as given, so the answer "
                                    "cannot be isolated for the loss")
        before, after = full[:i], full[i + len(answer):]
        if not before.startswith(head):
            before = head
        if self.eos and not any(t in after for t in self.specials):
            after = (after if after.strip() else "") + self.eos
        return before, after


def chat_format(processor) -> ChatFormat:
    """The processor's ChatFormat, made once per processor object."""
    fmt = getattr(processor, "_cadvlm_chat_format", None)
    if fmt is None or fmt.processor is not processor:
        fmt = ChatFormat(processor)
        try:
            processor._cadvlm_chat_format = fmt
        except AttributeError:  # a processor that refuses new attributes: make it each time
            pass
    return fmt


def load_image(path: str | Path) -> Image.Image:
    """Open a picture as RGB (renders may be RGBA or greyscale)."""
    with Image.open(path) as im:
        return im.convert("RGB")


class ImageTokenCounter:
    """How many tokens the processor expands one image placeholder into, per image size.

    Processors differ (fixed grid for LLaVA/SigLIP, resolution-dependent for Qwen2-VL), so we ask
    the processor itself once per distinct size with a blank picture, and cache the answer.
    """

    def __init__(self, processor):
        self.processor = processor
        self._cache: dict[tuple[int, int], int] = {}

    def extra_tokens(self, text: str, size: tuple[int, int]) -> int:
        if size not in self._cache:
            n_text = len(self.processor.tokenizer(text, add_special_tokens=False)["input_ids"])
            blank = Image.new("RGB", size, "white")
            out = self.processor(text=[text], images=[blank], add_special_tokens=False)
            self._cache[size] = len(out["input_ids"][0]) - n_text
        return self._cache[size]


class ConversationDataset(torch.utils.data.Dataset):
    """Torch dataset of processed samples with answer-only labels.

    Samples whose full sequence (prompt + image tokens + answer) exceeds `max_length` are dropped
    and counted in `dropped_too_long` (ids in `dropped_ids`): truncating CAD code would teach the
    model to stop mid-statement. `lengths` (tokens per kept sample) feeds length-grouped sampling
    without decoding any image.
    """

    def __init__(self, records: list[Record], processor, max_length: int | None = None):
        self.processor = processor
        tok = processor.tokenizer
        fmt = self.chat = chat_format(processor)
        counter = ImageTokenCounter(processor)
        prompts = [fmt.prompt(r.prompt) for r in records]
        fulls = [fmt.conversation(r.prompt, r.answer) for r in records]
        p_ids = tok(prompts, add_special_tokens=fmt.add_special_tokens)["input_ids"]
        f_ids = tok(fulls, add_special_tokens=fmt.add_special_tokens)["input_ids"]
        self.items: list[tuple[Record, str, int]] = []  # (record, full text, answer token count)
        self.lengths: list[int] = []
        self.dropped_ids: list[str] = []
        for r, prompt, full, pi, fi in zip(records, prompts, fulls, p_ids, f_ids):
            if not full.startswith(prompt) or fi[: len(pi)] != pi:
                raise ConversationError(
                    f"sample {r.id}: the chat template's prompt does not tokenise as a prefix of the full "
                    "conversation, so the answer cannot be isolated for the loss")
            n = len(fi) + counter.extra_tokens(full, r.image_size)
            if max_length is not None and n > max_length:
                self.dropped_ids.append(r.id)
                continue
            self.items.append((r, full, len(fi) - len(pi)))
            self.lengths.append(n)

    @property
    def dropped_too_long(self) -> int:
        return len(self.dropped_ids)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        rec, full, n_answer = self.items[i]
        out = self.processor(text=[full], images=[load_image(rec.image)],
                             add_special_tokens=self.chat.add_special_tokens, return_tensors="pt")
        ids = out["input_ids"][0]
        labels = torch.full_like(ids, IGNORE_INDEX)
        labels[-n_answer:] = ids[-n_answer:]
        item = {"input_ids": ids, "attention_mask": out["attention_mask"][0], "labels": labels}
        for k, v in out.items():  # pixel_values, and e.g. image_grid_thw for Qwen2-VL
            if k not in item and isinstance(v, torch.Tensor):
                # One value per token (Qwen2-VL's mm_token_type_ids): kept 1-D, the collator pads it.
                item[k] = v[0] if v.dim() == 2 and v.shape == out["input_ids"].shape else v
        return item
