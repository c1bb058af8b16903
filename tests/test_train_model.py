"""Tiny base building, offline loading, LoRA targeting and batched generation."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
from PIL import Image

from cadvlm.decode.generate import generate_code
from cadvlm.model.load import ModelLoadError, default_dtype, load_base, pick_device
from cadvlm.model.lora import apply_lora, count_parameters, target_regex
from cadvlm.model.tiny import build_tiny_base

TINY = {"vocab_size": 400, "image_size": 32, "patch_size": 16, "vision_hidden_size": 16, "vision_layers": 1,
        "vision_heads": 2, "hidden_size": 32, "intermediate_size": 64, "layers": 2, "heads": 2}
TEXTS = ["Line0_0_0 = add_line(start= [0., 0.], end= [10.,  0.])\n", "Circle1_0_0 = add_circle(center= [ 6.5, 10. ], radius= 1.7526)\n",
         "Of course, here are the codes:\n```python\n", "Generate the CAD code for this part."] * 5
LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"], "vision_tower": False,
        "vision_target_modules": ["q_proj", "v_proj"], "modules_to_save": ["multi_modal_projector"]}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_base(tmp_path_factory.mktemp("tiny"), TEXTS, TINY, seed=0)


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_tiny_build_is_deterministic(tiny_dir, tmp_path):
    again = build_tiny_base(tmp_path / "again", TEXTS, TINY, seed=0)
    assert _digest(tiny_dir) == _digest(again)


def test_tiny_loads_through_auto_classes(tiny_dir):
    model, processor = load_base(tiny_dir)
    assert type(model).__name__ == "LlavaForConditionalGeneration"
    assert type(processor).__name__ == "LlavaProcessor"
    assert next(model.parameters()).dtype == default_dtype(pick_device())  # float32 on CPU, bf16 on GPU
    tok = processor.tokenizer
    code = "SketchPlane0 = add_sketchplane(\n\torigin= [0., 0., 0.], normal= [0., 0., 1.])\n\u00b5"
    assert tok.decode(tok(code, add_special_tokens=False)["input_ids"]) == code  # byte-level: lossless
    assert tok.pad_token == "<pad>" and tok.eos_token == "</s>"


def test_tiny_tokenizer_gives_a_number_its_space_and_keeps_prompts_a_prefix():
    """Compact answers: a number takes the space before it (" 216"), so no token is a lone separator;
    a prompt ending in a newline still tokenises as an exact prefix of prompt + answer."""
    from cadvlm.model.tiny import train_tokenizer

    answer = "size 178 157 191\nplane 128 158 128 127 0 127 254 127 127\nloop\nline 216 31\nline 38 223\nend\n"
    tok = train_tokenizer([answer] * 20 + ["USER: Draw it.\nASSISTANT:\n"] * 5, 400)
    pieces = tok.convert_ids_to_tokens(tok("line 216 31\nline 38 223\n", add_special_tokens=False)["input_ids"])
    assert pieces == ["line", "\u0120216", "\u012031", "\u010a", "line", "\u012038", "\u0120223", "\u010a"]
    ids = tok(answer, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == answer and not {"\u0120", "\u0120\u0120"} & set(tok.convert_ids_to_tokens(ids))
    prompt = tok("USER: Draw it.\nASSISTANT:\n", add_special_tokens=False)["input_ids"]
    assert tok("USER: Draw it.\nASSISTANT:\n" + answer, add_special_tokens=False)["input_ids"][:len(prompt)] == prompt


def test_tiny_prompt_layout_and_paper_white_is_zero(tiny_dir):
    """The tiny template starts with <s> and puts the picture after the instruction, right before
    the answer; the processor maps white paper to 0 and black ink to -1."""
    import numpy as np

    from cadvlm.data.conversations import to_messages

    _, processor = load_base(tiny_dir)
    text = processor.apply_chat_template(to_messages("Draw it."), tokenize=False, add_generation_prompt=True)
    assert text == "<s>USER: Draw it.\n<image>\nASSISTANT:\n"
    tok = processor.tokenizer
    ids = processor(text=[text], images=[Image.new("RGB", (64, 64), "white")], add_special_tokens=False)["input_ids"][0]
    assert ids[0] == tok.bos_token_id and ids.count(tok.convert_tokens_to_ids("<image>")) == (32 // 16) ** 2
    pic = Image.new("RGB", (64, 64), "white")
    pic.paste((0, 0, 0), (0, 0, 32, 64))
    px = np.asarray(processor.image_processor(pic, return_tensors="np")["pixel_values"][0])
    assert px[:, :, -4:].max() == pytest.approx(0.0, abs=1e-6) and px[:, :, :4].min() == pytest.approx(-1.0, abs=1e-6)


def test_tiny_projector_can_read_the_raw_patches_too(tmp_path):
    """`vision_feature_layer: [0, -1]` hands the projector each patch's embedding (hidden state 0)
    beside the tower's output, so the decoder sees the pixels even while the tower is still random."""
    import torch

    folder = build_tiny_base(tmp_path / "both", TEXTS, {**TINY, "vision_feature_layer": [0, -1]}, seed=0)
    model, processor = load_base(folder)
    assert list(model.config.vision_feature_layer) == [0, -1]
    width = TINY["vision_hidden_size"]
    assert model.model.multi_modal_projector.linear_1.in_features == 2 * width
    pixels = processor.image_processor(Image.new("RGB", (64, 64), "white"), return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states
        want = model.model.multi_modal_projector(torch.cat([hidden[0], hidden[-1]], dim=-1))
        got = model.model.get_image_features(pixel_values=pixels)
    got = got.pooler_output if hasattr(got, "pooler_output") else got
    got = torch.cat(list(got), 0) if isinstance(got, (list, tuple)) else got
    assert torch.allclose(got.reshape(want.shape), want, atol=1e-5)


def test_tiny_conv_tower_gives_one_token_per_patch_and_loads_back(tmp_path):
    """`vision_tower: conv` swaps SigLIP for stride-2 convolutions ending on the same 16 px grid, so
    the processor's token count holds; it is saved and loaded like any Auto model (no remote code)."""
    import torch

    from cadvlm.model.conv_tower import ConvTowerModel

    cfg = {**TINY, "vision_tower": "conv", "vision_feature_layer": [0, -1]}
    folder = build_tiny_base(tmp_path / "conv", TEXTS, cfg, seed=0)
    model, processor = load_base(folder)
    assert isinstance(model.model.vision_tower, ConvTowerModel)
    pictures = [Image.new("RGB", (64, 64), "white"), Image.new("RGB", (64, 64), "black")]
    pixels = processor.image_processor(pictures, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        hidden = model.model.vision_tower(pixels, output_hidden_states=True).hidden_states
    n = (TINY["image_size"] // TINY["patch_size"]) ** 2
    assert [h.shape for h in hidden] == [(2, n, TINY["vision_hidden_size"])] * 2
    assert not torch.allclose(hidden[-1][0], hidden[-1][1])  # the features see the picture
    again, _ = load_base(folder)
    with torch.no_grad():
        assert torch.equal(again.model.vision_tower(pixels).last_hidden_state, hidden[-1])
    with pytest.raises(ValueError, match="vision_tower must be 'siglip' or 'conv'"):
        build_tiny_base(tmp_path / "bad", TEXTS, {**TINY, "vision_tower": "resnet"}, seed=0)


def test_missing_model_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelLoadError, match=r"'nobody/no-such-vlm' offline.*hf download nobody/no-such-vlm"):
        load_base("nobody/no-such-vlm")


def test_lora_targets_language_model_and_projector(tiny_dir):
    model, _ = load_base(tiny_dir)
    total, _ = count_parameters(model)
    peft_model = apply_lora(model, LORA)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "multi_modal_projector" in n for n in trainable)
    assert not any("vision_tower" in n for n in trainable)
    assert any("language_model" in n and "q_proj.lora_A" in n for n in trainable)
    assert count_parameters(peft_model)[1] < total


def test_lora_vision_tower_optional(tiny_dir):
    model, _ = load_base(tiny_dir)
    peft_model = apply_lora(model, {**LORA, "vision_tower": True, "modules_to_save": []})
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert any("vision_tower" in n and "lora_A" in n for n in trainable)
    assert not any("multi_modal_projector" in n for n in trainable)


def test_target_regex():
    rx = target_regex(["q_proj"], vision_tower=False)
    assert re.fullmatch(rx, "model.language_model.layers.0.self_attn.q_proj")
    assert not re.fullmatch(rx, "model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj")
    assert not re.fullmatch(rx, "model.visual.blocks.0.attn.q_proj")
    rx = target_regex(["q_proj"], vision_tower=True, vision_target_modules=["qkv"])
    assert re.fullmatch(rx, "model.visual.blocks.0.attn.qkv")
    assert not re.fullmatch(rx, "model.visual.blocks.0.attn.q_proj")


def test_bad_lora_target_is_reported(tiny_dir):
    model, _ = load_base(tiny_dir)
    with pytest.raises(ValueError, match="match no layer"):
        apply_lora(model, {**LORA, "target_modules": ["no_such_proj"]})


def test_generate_batched_equals_one_by_one(tiny_dir):
    model, processor = load_base(tiny_dir)
    images = [Image.new("RGB", (64, 64), c) for c in ("white", "black", "gray")]
    batched = generate_code(model, processor, images, "Generate the CAD code for this part.", max_new_tokens=12,
                            batch_size=3)
    single = [generate_code(model, processor, [im], "Generate the CAD code for this part.", max_new_tokens=12,
                            batch_size=1)[0] for im in images]
    assert len(batched) == 3 and all(isinstance(s, str) and s for s in batched)
    assert batched == single  # left padding keeps every row's continuation its own
    assert processor.tokenizer.padding_side == "right"  # restored after generation
