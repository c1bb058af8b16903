"""Can the pipeline feed this base? Checked when it is loaded, before any training.

The pipeline talks to a VLM only through its processor and chat template (cadvlm.data.conversations
.ChatFormat) and batches what the processor returns (cadvlm.data.collator). A base that breaks
either would otherwise fail minutes into a run, or worse, train on prompts without the picture. So
`check_processor` (before the weights are read) and `check_model` (after) refuse, naming the base
and the reason:

- no chat template (the prompt is written by the base's own template, never guessed);
- no image token, or a template that writes no image placeholder for a picture (the model would
  never see the picture);
- a template that does not write the answer as given, or whose prompt does not tokenise as the
  start of the conversation (the answer's tokens could not be told apart for the loss);
- a processor output with one row per token and more than one value per token (Mllama's
  `cross_attention_mask`): the collator pads only per-token vectors;
- a model without a vision part (a text-only model behind an image-text-to-text class).
"""

from __future__ import annotations

from PIL import Image

PROBE_PROMPT = "Write the CAD code of this part."
PROBE_ANSWER = "Of course, here are the codes:\n```python\nSketchPlane0 = add_sketchplane(origin= [0., 0., 0.])\n```"


class BaseCheckError(ValueError):
    """The base cannot be trained or used by this pipeline; the message says why."""


def check_processor(processor, name) -> None:
    """Raise BaseCheckError when the processor cannot frame a picture + prompt + answer for training."""
    from cadvlm.data.conversations import ConversationError, chat_format

    what = f"base '{name}'"
    tok = getattr(processor, "tokenizer", None)
    if tok is None or getattr(processor, "image_processor", None) is None:
        raise BaseCheckError(f"{what}: its processor ({type(processor).__name__}) has no tokenizer and image "
                             "processor; cadvlm needs a vision-language processor (AutoProcessor of an "
                             "image-text-to-text model)")
    if not (getattr(processor, "chat_template", None) or getattr(tok, "chat_template", None)):
        raise BaseCheckError(f"{what} has no chat template: cadvlm writes every prompt with the base's own "
                             "template (never a guessed one). Use the chat/instruct variant of the model, or "
                             "add the family's template as chat_template.jinja in the folder")
    image_token = getattr(processor, "image_token", None)
    if not image_token:
        raise BaseCheckError(f"{what}: its processor ({type(processor).__name__}) names no image token, so "
                             "cadvlm cannot tell where the picture goes in the prompt")
    try:
        chat = chat_format(processor)
        prompt = chat.prompt(PROBE_PROMPT)
        full = chat.conversation(PROBE_PROMPT, PROBE_ANSWER)
    except ConversationError as exc:
        raise BaseCheckError(f"{what}: {exc}") from None
    except Exception as exc:  # a template that cannot render typed image/text parts raises many types
        raise BaseCheckError(f"{what}: its chat template cannot render a picture + text message "
                             f"({type(exc).__name__}: {exc})") from None
    if image_token not in prompt:
        raise BaseCheckError(f"{what}: its chat template writes no {image_token} for a picture, so the model "
                             f"would never see it (prompt: {prompt[:200]!r})")
    special = chat.add_special_tokens
    p_ids = tok(prompt, add_special_tokens=special)["input_ids"]
    f_ids = tok(full, add_special_tokens=special)["input_ids"]
    if f_ids[:len(p_ids)] != p_ids:
        raise BaseCheckError(f"{what}: its prompt does not tokenise as the start of the conversation, so the "
                             "answer's tokens cannot be told apart for the loss")
    out = processor(text=[full], images=[Image.new("RGB", (64, 64), "white")], add_special_tokens=special,
                    return_tensors="pt")
    n = out["input_ids"].shape[1]
    for key, value in out.items():
        if key not in ("input_ids", "attention_mask") and hasattr(value, "dim") and value.dim() > 2 \
                and value.shape[:2] == (1, n):
            raise BaseCheckError(f"{what}: its processor returns '{key}' with shape {tuple(value.shape)}, several "
                                 "values per token; cadvlm's collator pads only one value per token")


def check_model(model, name) -> None:
    """Raise BaseCheckError for a model without a vision part."""
    config = model.config
    if getattr(config, "vision_config", None) is None:
        raise BaseCheckError(f"base '{name}' ({type(model).__name__}) has no vision part (no vision_config): "
                             "cadvlm trains vision-language models that read a picture")
