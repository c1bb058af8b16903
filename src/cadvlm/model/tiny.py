"""The `tiny` base: a small LLaVA-architecture VLM with random weights, built from params.

Why it exists: the pipeline must run end to end on a laptop CPU with nothing downloaded. So we
build a real `LlavaForConditionalGeneration` (SigLIP vision tower -> MLP projector -> Llama
decoder), only small, plus a byte-level BPE tokenizer trained on the train split's texts (the
CAD code dominates, so common statements like `add_line(start= [` become few tokens), wrap it in
a `LlavaProcessor`, and save both with `save_pretrained`. Training then loads it back through
`load_base`, the same code path as any Hugging Face VLM, so the tiny run exercises exactly what a
GPU run does.

The processor resizes the 512 px renders down to `image_size` (64-128 px): with a 16 px patch
that is 16-64 image tokens, cheap enough for a 2-core CPU.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

PAD, BOS, EOS, IMAGE = "<pad>", "<s>", "</s>", "<image>"

# A LLaVA-1.5-style template ("<s>USER: ...\n<image>\nASSISTANT:\n...</s>"). The generation
# prompt ends with a newline so that, with byte-level BPE, the prompt tokenises as an exact prefix
# of the full conversation (a trailing space would merge with the answer's first word). Content
# may be a plain string or a list of typed parts, as Hugging Face processors pass either.
# Two choices measured on the embedded default (sweeps of 10-20 epochs, test Chamfer median):
# - `<s>` first gives the decoder a fixed token to park attention on; without it the model made
#   the image tokens that sink (huge, identical for every picture) and never read them.
# - The picture goes after the instruction, next to the answer (12.2 -> 9.4 with the `size`
#   line): for a model trained from scratch the prompt is noise, and the answer's first tokens
#   then sit right after what they must read.
CHAT_TEMPLATE = (
    "{{- '<s>' -}}"
    "{%- for m in messages -%}"
    "{%- if m['role'] == 'system' -%}"
    "{{ m['content'] if m['content'] is string else m['content'] | map(attribute='text') | join('') }}{{ '\\n' }}"
    "{%- elif m['role'] == 'user' -%}"
    "{{ 'USER: ' }}"
    "{%- if m['content'] is string -%}{{ m['content'] }}"
    "{%- else -%}{%- for c in m['content'] -%}"
    "{%- if c['type'] == 'text' -%}{{ c['text'] }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- for c in m['content'] -%}"
    "{%- if c['type'] == 'image' -%}{{ '\\n<image>' }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}{{ '\\n' }}"
    "{%- else -%}"
    "{{ 'ASSISTANT:\\n' }}"
    "{%- if m['content'] is string -%}{{ m['content'] }}"
    "{%- else -%}{%- for c in m['content'] -%}{{ c['text'] }}{%- endfor -%}{%- endif -%}"
    "</s>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:\\n' }}{%- endif -%}"
)

# Defaults, overridden by params.yaml `model.tiny`.
TINY_DEFAULTS = {
    "vocab_size": 2048,
    "image_size": 64,
    "patch_size": 16,
    "vision_hidden_size": 64,
    "vision_layers": 2,
    "vision_heads": 2,
    "hidden_size": 128,
    "intermediate_size": 512,
    "layers": 4,
    "heads": 4,
    "max_position_embeddings": 4096,
    "image_std": 1.0,
    "vision_feature_layer": -1,
    "vision_tower": "siglip",
}


# Pre-tokenisation: a number with the one space before it (" 128", as GPT-2 writes words), and
# everything else in runs that end at a newline. BPE merges only inside these pieces, so it can learn
# whole boilerplate chunks such as " = add_line(start= [-" (GPT-2's word-level split cannot) while
# numbers stay apart from the syntax around them. On synthetic OpenECAD answers this is ~4.4
# characters per token against ~2.3 for GPT-2-style byte-level BPE. Taking the space into the number
# leaves no token that is a lone separator: the default's compact answers go from 124 to 89 tokens
# (-28%). Pieces end *at* a newline, so a prompt ending in "ASSISTANT:\n" tokenises as an exact
# prefix of prompt + answer.
PRETOKENIZE = r" ?\d+|[^\d\n]*\n|(?:[^\d\n ]| (?!\d))+"


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE trained on `texts`; any string round-trips (no unknown token)."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS, IMAGE],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, bos_token=BOS, eos_token=EOS,
        extra_special_tokens={"image_token": IMAGE}, model_max_length=1_000_000)


def _image_processor(image_size: int, std: float = 1.0):
    """SigLIP preprocessing (resize, rescale, normalise); the PIL backend when torchvision is absent.

    Normalised so that the white paper is 0 and black ink is -1 (SigLIP's 0.5/0.5 makes white 1).
    A render is ~90% background: at 1 every white patch adds the same large vector to every
    picture, which swamps the few patches that differ; at 0 they add nothing (with a frozen random
    tower this was the difference between 1 and 11 distinct answers on the test pictures).
    """
    try:
        import torchvision  # noqa: F401
        from transformers import SiglipImageProcessor as cls
    except ImportError:
        from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil as cls
    return cls(size={"height": image_size, "width": image_size}, image_mean=[1.0] * 3, image_std=[std] * 3)


def build_tiny_base(out_dir: str | Path, texts: list[str], cfg: dict | None = None, seed: int = 0) -> Path:
    """Train the tokenizer on `texts`, build a random-weight tiny LLaVA, save model + processor.

    Deterministic: same texts, cfg and seed give the same files.
    """
    from transformers import LlamaConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor, SiglipVisionConfig

    c = {**TINY_DEFAULTS, **(cfg or {})}
    out_dir = Path(out_dir)
    template_words = ["USER: ", "ASSISTANT:\n"]
    tokenizer = train_tokenizer(list(texts) + template_words, c["vocab_size"])
    processor = LlavaProcessor(
        image_processor=_image_processor(c["image_size"], float(c["image_std"])), tokenizer=tokenizer, patch_size=c["patch_size"],
        vision_feature_select_strategy="full", chat_template=CHAT_TEMPLATE, image_token=IMAGE)
    n_image_tokens = (c["image_size"] // c["patch_size"]) ** 2
    if c["vision_tower"] == "conv":
        from cadvlm.model.conv_tower import ConvTowerConfig
        vision = ConvTowerConfig(hidden_size=c["vision_hidden_size"], image_size=c["image_size"],
                                 patch_size=c["patch_size"])
    elif c["vision_tower"] == "siglip":
        vision = SiglipVisionConfig(
            hidden_size=c["vision_hidden_size"], intermediate_size=4 * c["vision_hidden_size"],
            num_hidden_layers=c["vision_layers"], num_attention_heads=c["vision_heads"],
            image_size=c["image_size"], patch_size=c["patch_size"],
            vision_use_head=False)  # LLaVA reads patch features; an unused pooling head would break DDP
    else:
        raise ValueError(f"model.tiny.vision_tower must be 'siglip' or 'conv', not {c['vision_tower']!r}")
    text = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=c["hidden_size"], intermediate_size=c["intermediate_size"],
        num_hidden_layers=c["layers"], num_attention_heads=c["heads"], num_key_value_heads=c["heads"],
        max_position_embeddings=c["max_position_embeddings"], tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids(IMAGE),
        image_seq_length=n_image_tokens, vision_feature_select_strategy="full",
        vision_feature_layer=c["vision_feature_layer"], tie_word_embeddings=True)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
