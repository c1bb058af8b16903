"""A cadrille checkpoint as model.base (cadvlm.model.cadrille), on a tiny random one written in cadrille's layout.

The fixture writes what cadrille's training leaves on the hub, at toy sizes: config.json as transformers 4.50
saves the `Cadrille` class (Qwen2-VL's flat keys, `architectures: ["Cadrille"]`), safetensors with Qwen2-VL's
pre-4.52 tensor names (`model.*`, `visual.*`, no `lm_head`: tied) in bf16 plus the point encoder's two float32
tensors, Qwen2-VL-2B-Instruct's processor files (its own pixel bounds, chat template) and generation config.

Checked: it loads through load_base as a plain Qwen2VLForConditionalGeneration without the point encoder
(noted once); a stray or missing tensor fails; the processor turns cadrille's sheet into its 256 tokens; the
logits equal a forward written from cadrille's `Cadrille.forward` in image mode (the picture as a two-frame
video, as cadrille's collate hands it over), on a Qwen2VLForConditionalGeneration filled from the file's
tensors by hand, and that forward's point path, taken, would change them; one LoRA step and generate() run.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from tiny_bases import QWEN2_VL_TEMPLATE, _image_processor, _video, qwen2_tokenizer

from cadvlm.model.cadrille import MAX_PIXELS, MIN_PIXELS, POINT_ENCODER, PROMPT

REPO = Path(__file__).resolve().parents[1]
HIDDEN = 64
POINTS = 16  # cadrille uses 256; a few do to show the point path


# ----------------------------------------------------------------------------- the checkpoint
def _config(tok) -> dict:
    """config.json as transformers 4.50 writes it for cadrille (Qwen2-VL-2B-Instruct's keys, toy sizes)."""
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_end|>", "<|vision_start|>",
                                                      "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>",
                                                      "<|video_pad|>")}
    return {
        "_name_or_path": "Qwen/Qwen2-VL-2B-Instruct", "architectures": ["Cadrille"], "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "hidden_act": "silu",
        "hidden_size": HIDDEN, "image_token_id": ids["<|image_pad|>"], "initializer_range": 0.02,
        "intermediate_size": 128, "max_position_embeddings": 32768, "max_window_layers": 28, "model_type": "qwen2_vl",
        "num_attention_heads": 4, "num_hidden_layers": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
        "rope_scaling": {"mrope_section": [2, 3, 3], "rope_type": "default", "type": "default"},
        "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
        "transformers_version": "4.50.3", "use_cache": True, "use_sliding_window": False,
        "video_token_id": ids["<|video_pad|>"], "vision_start_token_id": ids["<|vision_start|>"],
        "vision_end_token_id": ids["<|vision_end|>"], "vision_token_id": ids["<|vision_pad|>"],
        "vision_config": {"depth": 2, "embed_dim": 32, "hidden_act": "quick_gelu", "hidden_size": HIDDEN,
                          "in_channels": 3, "in_chans": 3, "mlp_ratio": 2, "model_type": "qwen2_vl", "num_heads": 2,
                          "patch_size": 14, "spatial_merge_size": 2, "spatial_patch_size": 14,
                          "temporal_patch_size": 2, "torch_dtype": "bfloat16"},
        "vocab_size": len(tok),
    }


def _legacy_name(name: str) -> str:
    """transformers 5's Qwen2-VL tensor name -> the name 4.50 saved it under."""
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model."):]
    if name.startswith("model.visual."):
        return name[len("model."):]
    return name


def write_cadrille(out_dir: Path) -> Path:
    from safetensors.torch import save_file
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLProcessor

    out_dir.mkdir(parents=True)
    tok = qwen2_tokenizer([PROMPT], extra_specials=["<|vision_pad|>"])
    config = _config(tok)
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    torch.manual_seed(0)
    model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(**config))
    tensors = {_legacy_name(k): v.detach().to(torch.bfloat16).contiguous()
               for k, v in model.state_dict().items() if k != "lm_head.weight"}
    g = torch.Generator().manual_seed(1)
    tensors[POINT_ENCODER + "projection.weight"] = torch.randn(HIDDEN, 51, generator=g) * 0.1
    tensors[POINT_ENCODER + "projection.bias"] = torch.randn(HIDDEN, generator=g) * 0.1
    save_file(tensors, str(out_dir / "model.safetensors"), metadata={"format": "pt"})
    (out_dir / "generation_config.json").write_text(json.dumps({
        "bos_token_id": config["bos_token_id"], "pad_token_id": config["bos_token_id"],
        "eos_token_id": [config["eos_token_id"], config["bos_token_id"]], "do_sample": True, "top_k": 1,
        "top_p": 0.001, "temperature": 0.1, "repetition_penalty": 1.05, "transformers_version": "4.50.3"}))
    # Qwen2-VL-2B-Instruct's processor, as saved on the hub: its own pixel bounds, not cadrille's.
    ip = _image_processor("qwen2_vl", "Qwen2VLImageProcessor")(min_pixels=56 * 56, max_pixels=28 * 28 * 16384,
                                                                 patch_size=14, merge_size=2, temporal_patch_size=2)
    Qwen2VLProcessor(image_processor=ip, tokenizer=tok, chat_template=QWEN2_VL_TEMPLATE,
                     **_video("Qwen2VLVideoProcessor")).save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="module")
def cadrille_dir(tmp_path_factory) -> Path:
    return write_cadrille(tmp_path_factory.mktemp("cadrille") / "cadrille")


def _copy(src: Path, dst: Path, edit=None) -> Path:
    """A copy of the checkpoint, its tensors passed through `edit` (a dict -> dict function)."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    if edit:
        tensors = edit(load_file(str(dst / "model.safetensors")))
        save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def _picture(size: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8))


# ----------------------------------------------------------------------------- loading
def test_loads_as_plain_qwen2vl_without_the_point_encoder_noted_once(cadrille_dir, tmp_path, caplog):
    from transformers import Qwen2VLForConditionalGeneration

    from cadvlm.model.load import load_base

    folder = _copy(cadrille_dir, tmp_path / "c")  # a path no other test loaded: its note is still to come
    with caplog.at_level(logging.WARNING):
        model, processor = load_base(folder, dtype=torch.float32)
        load_base(folder, dtype=torch.float32)
    assert type(model) is Qwen2VLForConditionalGeneration
    assert model.config.architectures == ["Qwen2VLForConditionalGeneration"]
    assert not any("point_encoder" in k for k in model.state_dict()) and not hasattr(model, "point_encoder")
    notes = [r.getMessage() for r in caplog.records if "point-cloud encoder" in r.getMessage()]
    assert len(notes) == 1 and "point_encoder.projection.weight" in notes[0] and "pictures only" in notes[0]
    assert not [r for r in caplog.records if "LOAD REPORT" in r.getMessage()]
    # cadrille's 268 px sheet becomes 448 px: 32 x 32 patches, 256 tokens, as in cadrille's image mode
    out = processor(text=["<|vision_start|><|image_pad|><|vision_end|>"], images=[_picture(268)], return_tensors="pt")
    assert out["image_grid_thw"].tolist() == [[1, 32, 32]]
    assert (processor.image_processor.size.shortest_edge, processor.image_processor.size.longest_edge) == \
        (MIN_PIXELS, MAX_PIXELS)


@pytest.mark.parametrize("change, words", [
    ("stray", ["does not have", "model.layers.7.mlp.up_proj.weight"]),
    ("missing", ["lacks", "visual.merger.mlp.0.weight"]),
])
def test_tensors_other_than_the_point_encoders_fail_loudly(cadrille_dir, tmp_path, change, words):
    from cadvlm.model.load import ModelLoadError, load_base

    def edit(tensors):
        if change == "stray":
            tensors["model.layers.7.mlp.up_proj.weight"] = torch.zeros(128, HIDDEN, dtype=torch.bfloat16)
        else:
            del tensors["visual.merger.mlp.0.weight"]
        return tensors

    with pytest.raises(ModelLoadError) as err:
        load_base(_copy(cadrille_dir, tmp_path / change, edit), dtype=torch.float32)
    assert all(w in str(err.value) for w in words) and "point_encoder" not in str(err.value)


def test_a_folder_without_processor_says_how_to_add_it(cadrille_dir, tmp_path):
    from cadvlm.model.load import ModelLoadError, load_base

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(cadrille_dir / name, bare / name)
    with pytest.raises(ModelLoadError, match="hf download Qwen/Qwen2-VL-2B-Instruct"):
        load_base(bare)


# ----------------------------------------------------------------------------- cadrille's forward
def _reference_model(folder: Path):
    """transformers' Qwen2VLForConditionalGeneration filled from the file's tensors by hand (not by from_pretrained),
    and cadrille's point-encoder projection from the same file."""
    from safetensors.torch import load_file
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    tensors = {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}
    config = Qwen2VLConfig(**json.loads((folder / "config.json").read_text()))
    ref = Qwen2VLForConditionalGeneration(config).float()  # built in the config's bf16: compute as the test's float32
    names = {_legacy_name(k): k for k in ref.state_dict()}
    own = {names[k]: v for k, v in tensors.items() if not k.startswith(POINT_ENCODER)}
    result = ref.load_state_dict(own, strict=False)
    assert list(result.missing_keys) == ["lm_head.weight"] and not result.unexpected_keys  # tied, as in cadrille
    assert ref.lm_head.weight.data_ptr() == ref.get_input_embeddings().weight.data_ptr()
    projection = torch.nn.Linear(51, HIDDEN)
    projection.load_state_dict({"weight": tensors[POINT_ENCODER + "projection.weight"],
                                "bias": tensors[POINT_ENCODER + "projection.bias"]})
    return ref.eval(), projection


def _video_patches(frames: list[Image.Image], mean, std, patch=14, merge=2, temporal=2):
    """Qwen2-VL's patches of a video (T, C, H, W frames): rescaled, normalised, cut into temporal x patch x patch
    cubes ordered by merge window; -> (patches, grid_thw)."""
    x = torch.stack([torch.from_numpy(np.asarray(f, dtype=np.float32) / 255.0).permute(2, 0, 1) for f in frames])
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    t, c, h, w = x.shape
    gt, gh, gw = t // temporal, h // patch, w // patch
    x = x.reshape(gt, temporal, c, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.permute(0, 3, 6, 4, 7, 2, 1, 5, 8)
    return x.reshape(gt * gh * gw, c * temporal * patch * patch), torch.tensor([[gt, gh, gw]])


def _rope_positions(ids: torch.Tensor, vision_id: int, grid, merge: int = 2) -> torch.Tensor:
    """Qwen2-VL's 3-D rotary positions (transformers 4.50's get_rope_index) for one unpadded row with one vision
    block: text counts up, the block is (t, row, column) from there, text resumes after its largest index."""
    row = ids[0].tolist()
    start, n = row.index(vision_id), row.count(vision_id)
    t, h, w = (int(grid[0]), int(grid[1]) // merge, int(grid[2]) // merge)
    tt, hh, ww = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), indexing="ij")
    block = torch.stack([tt.flatten(), hh.flatten(), ww.flatten()]) + start
    after = torch.arange(len(row) - start - n).expand(3, -1) + block.max() + 1
    return torch.cat([torch.arange(start).expand(3, -1), block, after], dim=1)[:, None, :]


def _cadrille_forward(ref, projection, ids, mask, pixel_values_videos, video_grid_thw, points, is_pc):
    """`Cadrille.forward` (col14m/cadrille cadrille.py) as it runs a batch: token embeddings; the picture's video
    features into the video placeholders; for the rows with a point cloud, the point encoder's embeddings (Fourier
    features [x, sin 2^k x, cos 2^k x], k < 8, then the projection) over the first tokens after the left padding;
    Qwen2-VL's rotary positions; the decoder; the tied head."""
    embeds = ref.get_input_embeddings()(ids)
    video = ref.model.visual(pixel_values_videos, grid_thw=video_grid_thw).pooler_output
    embeds = embeds.masked_scatter((ids == ref.config.video_token_id).unsqueeze(-1).expand_as(embeds), video)
    if is_pc.sum() > 0:
        scaled = points[..., None] * 2.0 ** torch.arange(8, dtype=torch.float32)
        point_embeds = projection(torch.cat([points, scaled.flatten(-2).sin(), scaled.flatten(-2).cos()], dim=-1))
        starts = mask.shape[1] - mask.sum(dim=1)
        for i, start in enumerate(starts.tolist()):
            if is_pc[i]:
                embeds[i, start:start + point_embeds.shape[1]] = point_embeds[i]
    positions = _rope_positions(ids, ref.config.video_token_id, video_grid_thw[0])
    hidden = ref.model.language_model(inputs_embeds=embeds, attention_mask=mask, position_ids=positions)
    return ref.lm_head(hidden.last_hidden_state)


def test_logits_match_cadrilles_image_mode_and_its_point_path_stays_unused(cadrille_dir):
    from cadvlm.data.conversations import chat_format
    from cadvlm.model.load import load_base

    model, processor = load_base(cadrille_dir, dtype=torch.float32)
    model.eval()
    picture = _picture(448)  # 448 px: neither cadrille's resizing nor ours changes it
    chat = chat_format(processor)
    ours = processor(text=[chat.prompt(PROMPT)], images=[[picture]], add_special_tokens=chat.add_special_tokens,
                     return_tensors="pt")
    with torch.no_grad():
        logits = model(**ours).logits

    # cadrille's image-mode input: the sheet as a two-frame video, the video placeholder expanded per merge window
    ip = processor.image_processor
    patches, grid = _video_patches([picture, picture], ip.image_mean, ip.image_std)
    assert torch.allclose(patches, ours["pixel_values"], atol=1e-5)  # two equal frames = one picture's patches
    message = [{"role": "user", "content": [{"type": "video", "video": [picture]}, {"type": "text", "text": PROMPT}]}]
    text = processor.apply_chat_template(message, tokenize=False, add_generation_prompt=True)
    text = text.replace("<|video_pad|>", "<|video_pad|>" * (int(grid.prod()) // 4))
    ids = processor.tokenizer([text], return_tensors="pt")["input_ids"]
    assert ids.shape == ours["input_ids"].shape
    ref, projection = _reference_model(cadrille_dir)
    points = torch.rand(1, POINTS, 3, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.no_grad():
        image_mode = _cadrille_forward(ref, projection, ids, torch.ones_like(ids), patches, grid, points,
                                       torch.tensor([False]))
        point_mode = _cadrille_forward(ref, projection, ids, torch.ones_like(ids), patches, grid, points,
                                       torch.tensor([True]))
    assert torch.allclose(logits, image_mode, atol=1e-5, rtol=1e-4), (logits - image_mode).abs().max()
    assert (logits - point_mode).abs().max() > 1e-3  # the point path, had it been taken, shows


# ----------------------------------------------------------------------------- training and generation
def test_one_lora_step_then_generate(cadrille_dir, tmp_path):
    from peft import PeftModel
    from test_train import make_project, run_train
    from transformers import Qwen2VLForConditionalGeneration

    from cadvlm.decode.generate import generate_code
    from cadvlm.model.load import load_trained

    root = make_project(tmp_path / "proj", n_train=4, n_val=1, method="lora", epochs=1, batch_size=4,
                        eval_batch_size=1, eval_on_start=False, max_length=2048)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["model"]["base"] = str(cadrille_dir)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    metrics = run_train(root)
    assert metrics["n_train"] == 4 and math.isfinite(metrics["train_loss_first_epoch"])
    assert 0 < metrics["n_trainable_params"] < metrics["n_params"]
    manifest = json.loads((root / "models" / "cadvlm_model.json").read_text())
    assert (manifest["weights"], manifest["base"]) == ("lora", str(cadrille_dir))
    assert json.loads((root / "models" / "adapter_config.json").read_text())["modules_to_save"] == ["merger"]

    model, processor = load_trained(root / "models", device="cpu")
    assert isinstance(model, PeftModel) and type(model.get_base_model()) is Qwen2VLForConditionalGeneration
    answers = generate_code(model, processor, [_picture(280)], PROMPT, max_new_tokens=4, batch_size=1)
    assert len(answers) == 1 and isinstance(answers[0], str)


# ----------------------------------------------------------------------------- the preset
def test_preset_asks_for_cadrilles_pictures_prompt_and_code(cadrille_dir):
    from cadvlm.model.load import load_processor
    from cadvlm.presets import load_preset

    p = load_preset(REPO / "presets" / "cadrille.yaml")
    assert p["convert.format"] == "cadquery" and p["convert.prompts"] == [PROMPT]
    assert (p["render.layout"], p["render.views"]) == ("grid", ["front", "top", "right", "iso"])
    assert Path(p["model.base"]).is_absolute() and p["train.method"] == "lora"
    # the preset's sheet is the 280 px frame cadrille's processor was handed: the same 256 tokens
    sheet = _picture(2 * p["render.size"])
    out = load_processor(cadrille_dir)(text=["<|vision_start|><|image_pad|><|vision_end|>"], images=[sheet],
                                       return_tensors="pt")
    assert 2 * p["render.size"] == 280 and out["image_grid_thw"].tolist() == [[1, 32, 32]]
