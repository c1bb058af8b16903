"""Tiny random-weight bases of each VLM family a user would pick, built offline from configs.

Each builder writes a folder that `cadvlm.model.load.load_base` reads like a downloaded hub model
(`model.base: <folder>`): the family's model class with a few-kilobyte config, the family's
tokenizer class trained here on a small corpus (so any string round-trips), the family's image
processor with small sizes, and the family's real chat template (copied from the hub model named
in each `*_TEMPLATE` comment), all saved with `save_pretrained`.

| name | model class | vision | text | like |
|---|---|---|---|---|
| llava15 | LlavaForConditionalGeneration | CLIP | Llama | llava-hf/llava-1.5-7b-hf |
| onevision | LlavaOnevisionForConditionalGeneration | SigLIP | Qwen2 | llava-hf/llava-onevision-qwen2-0.5b-ov-hf |
| qwen2_vl | Qwen2VLForConditionalGeneration | Qwen2-VL ViT | Qwen2 | Qwen/Qwen2-VL-2B-Instruct |
| qwen2_5_vl | Qwen2_5_VLForConditionalGeneration | Qwen2.5-VL ViT | Qwen2 | Qwen/Qwen2.5-VL-3B-Instruct |
| smolvlm | SmolVLMForConditionalGeneration | SigLIP-like | Llama (SmolLM2) | HuggingFaceTB/SmolVLM-256M-Instruct |
| idefics3 | Idefics3ForConditionalGeneration | SigLIP-like | Llama 3 | HuggingFaceM4/Idefics3-8B-Llama3 |

The families differ exactly where the pipeline can go wrong: whether the tokenizer adds `<s>` itself
(Llama) or the template writes it (Idefics3) or neither (Qwen2), whether an answer ends with the
tokenizer's EOS (Qwen2 `<|im_end|>`, SmolVLM `<end_of_utterance>`) or with nothing (LLaVA-1.5),
whether the generation prompt is a prefix of the rendered conversation (not for OneVision:
`assistant\\n` vs `assistant \\n`), how many tokens a picture becomes, and what the projector is
called (`multi_modal_projector`, `merger`, `connector`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

CORPUS = [
    "SketchPlane0 = add_sketchplane(\n\torigin= [0., 0., 0.], normal= [0., 0., 1.], x_axis= [1., 0., 0.])\n",
    "Loops0 = []\nCurves0_0 = []\nLine0_0_0 = add_line(start= [0., 0.], end= [10.,  0.])\n",
    "Circle0_1_0 = add_circle(center= [5., 3.], radius= 1.5)\nLoop0_0 = add_loop(Curves0_0)\n",
    "Profile0 = add_profile(Loops0)\nSketch0 = add_sketch(sketch_plane= SketchPlane0, profile= Profile0)\n",
    "Extrude0 = add_extrude(sketch= Sketch0,\n\toperation= 0, type= 0, extent_one= 20., extent_two= 0.)\n",
    "Of course, here are the codes:\n```python\n", "```", "size 191 76 116\nend\n",
    "Generate the CAD code for this part. Write OpenECAD code that builds the object in the picture.",
    "Write OpenECAD-style CAD code that produces the solid drawn in four views (front, top, right and iso).",
    "You are a helpful assistant. USER: ASSISTANT: User: Assistant: system user assistant",
]

# llava-hf/llava-1.5-7b-hf chat_template.json. The answer ends with a space, not with `</s>`.
LLAVA15_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# llava-hf/llava-onevision-qwen2-0.5b-ov-hf chat_template.json. A rendered assistant turn starts with
# `<|im_start|>assistant \n`, the generation prompt with `<|im_start|>assistant\n`.
ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}{# Render all images first #}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}"
    "{{ '<video>' }}{% endfor %}{# Render all text next #}{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\n' + content['text'] }}"
    "{% endfor %}{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ '\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}{{'<|im_end|>'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Qwen/Qwen2-VL-7B-Instruct chat_template.json (Qwen2.5-VL's is the same).
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# HuggingFaceTB/SmolVLM-Instruct chat_template.json; Idefics3-8B-Llama3's starts with <|begin_of_text|>.
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
IDEFICS3_TEMPLATE = (
    "<|begin_of_text|>{% for message in messages %}{{message['role'].capitalize()}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)

VOCAB = 400  # learnt tokens besides the specials (and, for Llama, the 256 byte tokens)
QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]


# ----------------------------------------------------------------------------- tokenizers
def _train_bpe(texts: list[str], specials: list[str], byte_level: bool):
    """(vocab, merges) of a BPE trained on `texts`: byte-level (GPT-2/Qwen2/Llama 3) or sentencepiece-like
    with byte fallback (Llama 2), the specials first."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    if byte_level:
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
        # Pieces never cross a word start, as in sentencepiece vocabularies.
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
        specials = specials + [f"<0x{i:02X}>" for i in range(256)]
        alphabet = []
    trainer = trainers.BpeTrainer(vocab_size=len(specials) + VOCAB, special_tokens=specials,
                                  initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(list(texts) + CORPUS * 3, trainer)
    state = json.loads(tok.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]
    return state["vocab"], merges


def llama2_tokenizer(texts, extra_specials=()):
    """LlamaTokenizer (adds `<s>` itself, byte fallback), with llava-hf's `<image>` and `<pad>`."""
    from transformers import AddedToken, LlamaTokenizer

    vocab, merges = _train_bpe(texts, ["<unk>", "<s>", "</s>"], byte_level=False)
    tok = LlamaTokenizer(vocab=vocab, merges=merges, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                         add_bos_token=True, model_max_length=4096)
    tok.add_special_tokens({"pad_token": "<pad>"})
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in extra_specials])
    return tok


def qwen2_tokenizer(texts, eos="<|im_end|>", extra_specials=()):
    """Qwen2Tokenizer (byte-level, no BOS), with Qwen's chat and vision tokens."""
    from transformers import AddedToken, Qwen2Tokenizer

    vocab, merges = _train_bpe(texts, ["<|endoftext|>"], byte_level=True)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges, eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                         model_max_length=4096)
    tok.add_tokens([AddedToken(t, special=True, normalized=False)
                    for t in QWEN_SPECIALS[1:] + list(extra_specials)])
    tok.eos_token = eos
    return tok


def gpt2_tokenizer(texts, bos, eos, pad, extra_specials=()):
    """GPT2-class byte-level BPE (SmolLM2's tokenizer; Llama 3's is the same kind), no BOS added."""
    from transformers import AddedToken, GPT2Tokenizer

    vocab, merges = _train_bpe(texts, [bos, eos, pad], byte_level=True)
    tok = GPT2Tokenizer(vocab=vocab, merges=merges, bos_token=bos, eos_token=eos, pad_token=pad,
                        unk_token=eos, model_max_length=4096)
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in extra_specials])
    return tok


# ----------------------------------------------------------------------------- common pieces
def _llama_text(tok, **kw):
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                       pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       **kw)


def _qwen2_text(cls, tok, **kw):
    return cls(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
               num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
               pad_token_id=tok.pad_token_id, bos_token_id=None, eos_token_id=tok.eos_token_id, **kw)


def _image_processor(family: str, name: str):
    """The image processor class `name` of transformers.models.`family`, or its PIL twin when
    torchvision is absent (as on the CPU machines: the fast classes need it)."""
    import importlib
    import importlib.util

    if importlib.util.find_spec("torchvision") is None:
        return getattr(importlib.import_module(f"transformers.models.{family}.image_processing_pil_{family}"),
                       name + "Pil")
    return getattr(importlib.import_module(f"transformers.models.{family}.image_processing_{family}"), name)


def _video(name: str) -> dict:
    """The family's video processor `name` with torchvision; a placeholder without it
    (cadvlm.model.compat: transformers cannot build these processors otherwise). Pictures only here."""
    import transformers

    from cadvlm.model.compat import placeholder_video_processor, torchvision_usable

    if torchvision_usable():
        return {"video_processor": getattr(transformers, name)()}
    return {"video_processor": placeholder_video_processor()}


def _save(model, processor, tok, out_dir: Path, stop: list[str]) -> Path:
    """Generation stops on the family's end-of-turn token(s), as the hub models' generation_config does."""
    model.generation_config.eos_token_id = [tok.convert_tokens_to_ids(t) for t in stop]
    model.generation_config.pad_token_id = tok.pad_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


# ----------------------------------------------------------------------------- families
def build_llava15(out_dir: Path, texts: list[str]) -> Path:
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    tok = llama2_tokenizer(texts, ["<image>"])
    vision = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                              image_size=32, patch_size=16, projection_dim=32)
    config = LlavaConfig(vision_config=vision, text_config=_llama_text(tok),
                         image_token_index=tok.convert_tokens_to_ids("<image>"), image_seq_length=4,
                         vision_feature_select_strategy="default", vision_feature_layer=-2)
    ip = _image_processor("clip", "CLIPImageProcessor")(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(image_processor=ip, tokenizer=tok, patch_size=16, num_additional_image_tokens=1,
                               vision_feature_select_strategy="default", chat_template=LLAVA15_TEMPLATE)
    torch.manual_seed(0)
    return _save(LlavaForConditionalGeneration(config), processor, tok, out_dir, ["</s>"])


def build_onevision(out_dir: Path, texts: list[str]) -> Path:
    from transformers import (LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration, LlavaOnevisionProcessor,
                              Qwen2Config, SiglipVisionConfig)

    tok = qwen2_tokenizer(texts, extra_specials=["<image>", "<video>"])
    vision = SiglipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                image_size=32, patch_size=16, vision_use_head=False)
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    config = LlavaOnevisionConfig(vision_config=vision, text_config=_qwen2_text(Qwen2Config, tok),
                                  image_token_index=tok.convert_tokens_to_ids("<image>"),
                                  video_token_index=tok.convert_tokens_to_ids("<video>"),
                                  image_grid_pinpoints=pinpoints, vision_feature_layer=-1,
                                  vision_feature_select_strategy="full")
    ip = _image_processor("llava_onevision", "LlavaOnevisionImageProcessor")(size={"height": 32, "width": 32},
                                                              image_grid_pinpoints=pinpoints)
    processor = LlavaOnevisionProcessor(image_processor=ip, tokenizer=tok, num_image_tokens=4, **_video("LlavaOnevisionVideoProcessor"),
                                        vision_feature_select_strategy="full", chat_template=ONEVISION_TEMPLATE,
                                        vision_aspect_ratio="anyres_max_9")
    torch.manual_seed(0)
    return _save(LlavaOnevisionForConditionalGeneration(config), processor, tok, out_dir,
                 ["<|im_end|>", "<|endoftext|>"])


def _build_qwen_vl(out_dir: Path, texts: list[str], v25: bool) -> Path:
    import transformers

    prefix = "Qwen2_5_VL" if v25 else "Qwen2VL"
    tok = qwen2_tokenizer(texts)
    ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    if v25:
        vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=56,
                      fullatt_block_indexes=[1])
    else:
        vision = dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2)
    text_cls = getattr(transformers, f"{prefix}TextConfig")
    text = _qwen2_text(text_cls, tok, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                         "mrope_section": [4, 6, 6]})
    config = getattr(transformers, f"{prefix}Config")(
        text_config=text.to_dict(), vision_config=vision, image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"])
    # 56 x 56 px: 4 x 4 patches of 14 px, merged 2 x 2 -> 4 tokens per picture.
    ip = _image_processor("qwen2_vl", "Qwen2VLImageProcessor")(min_pixels=56 * 56, max_pixels=56 * 56, patch_size=14,
                                                      merge_size=2, temporal_patch_size=2)
    processor = getattr(transformers, f"{prefix}Processor")(image_processor=ip, tokenizer=tok,
                                                              chat_template=QWEN2_VL_TEMPLATE,
                                                              **_video("Qwen2VLVideoProcessor"))
    torch.manual_seed(0)
    model = getattr(transformers, f"{prefix}ForConditionalGeneration")(config)
    return _save(model, processor, tok, out_dir, ["<|im_end|>", "<|endoftext|>"])


def build_qwen2_vl(out_dir: Path, texts: list[str]) -> Path:
    return _build_qwen_vl(out_dir, texts, v25=False)


def build_qwen2_5_vl(out_dir: Path, texts: list[str]) -> Path:
    return _build_qwen_vl(out_dir, texts, v25=True)


def _build_idefics(out_dir: Path, texts: list[str], smol: bool) -> Path:
    import transformers

    prefix = "SmolVLM" if smol else "Idefics3"
    specials = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"] + \
        [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
    if smol:  # SmolLM2: <|im_start|> is BOS, <|im_end|> EOS; the chat ends turns with <end_of_utterance>
        tok = gpt2_tokenizer(texts, "<|im_start|>", "<|im_end|>", "<|im_end|>", specials)
        tok.eos_token = "<end_of_utterance>"
    else:  # Llama 3
        tok = gpt2_tokenizer(texts, "<|begin_of_text|>", "<|end_of_text|>", "<|end_of_text|>", specials)
    vision = getattr(transformers, f"{prefix}VisionConfig")(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32,
        patch_size=8)
    # 32 px / 8 px patches = 16 patches, pixel-shuffled by scale 2 -> 4 image tokens.
    config = getattr(transformers, f"{prefix}Config")(
        vision_config=vision.to_dict(), text_config=_llama_text(tok).to_dict(), scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"))
    ip = _image_processor(prefix.lower(), f"{prefix}ImageProcessor")(
        do_image_splitting=False, size={"longest_edge": 32}, max_image_size={"longest_edge": 32})
    kwargs = _video("SmolVLMVideoProcessor") if smol else {}
    processor = getattr(transformers, f"{prefix}Processor")(
        image_processor=ip, tokenizer=tok, image_seq_len=4, chat_template=SMOLVLM_TEMPLATE if smol else IDEFICS3_TEMPLATE,
        **kwargs)
    torch.manual_seed(0)
    model = getattr(transformers, f"{prefix}ForConditionalGeneration")(config)
    return _save(model, processor, tok, out_dir, ["<end_of_utterance>", tok.eos_token])


def build_smolvlm(out_dir: Path, texts: list[str]) -> Path:
    return _build_idefics(out_dir, texts, smol=True)


def build_idefics3(out_dir: Path, texts: list[str]) -> Path:
    return _build_idefics(out_dir, texts, smol=False)


BUILDERS = {"llava15": build_llava15, "onevision": build_onevision, "qwen2_vl": build_qwen2_vl,
            "qwen2_5_vl": build_qwen2_5_vl, "smolvlm": build_smolvlm, "idefics3": build_idefics3}


def build_base(family: str, out_dir: str | Path, texts: list[str] = ()) -> Path:
    """Write the tiny base of `family` (a key of BUILDERS) to `out_dir`; its tokenizer learns `texts` too."""
    return BUILDERS[family](Path(out_dir), list(texts))
