"""Every base family a user would pick, through the whole model path: train -> rl -> evaluate -> predict.

Each base is a tiny random-weight model of the real class with the family's tokenizer class, image
processor and real chat template (tests/tiny_bases.py), used as `model.base` (a local folder), plus
the converted TinyLLaVA/OpenECAD layout (`cadvlm import-model` of a tiny TinyLLaVA checkpoint). The
train stage runs a few LoRA steps (adapters on the language model and the vision tower, the projector
trained fully under the family's own name), the evaluate stage generates and scores a small test
split, and `cadvlm predict` turns a picture into an answer. The weights are random, so the answers
are noise: what is checked is that each step runs, with a finite loss and a correct model folder.

The fast tests at the end check that a base the pipeline cannot feed is refused when it is loaded.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest
import yaml
from PIL import Image

from test_train import make_project, run_train
from tiny_bases import BUILDERS, build_base, build_llava15

ARCHES = {
    "llava15": "LlavaForConditionalGeneration",
    "onevision": "LlavaOnevisionForConditionalGeneration",
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "smolvlm": "SmolVLMForConditionalGeneration",
    "idefics3": "Idefics3ForConditionalGeneration",
    "tinyllava": "LlavaForConditionalGeneration",  # OpenECAD's TinyLLaVA (Gemma + SigLIP) after import-model
}
TIMES: dict[str, dict[str, float]] = {}


def _import_tinyllava(dst: Path) -> Path:
    """A tiny TinyLLaVA checkpoint (OpenECAD's Gemma + SigLIP layout) through `cadvlm import-model`."""
    from tinyllava_fixture import write_checkpoint

    from cadvlm.cli import main

    src = write_checkpoint(dst.parent / "tinyllava_src", "gemma", "siglip")
    assert main(["import-model", str(src), "-o", str(dst), "--system", "openecad"]) == 0
    return dst


@pytest.fixture(scope="module")
def eval_project(tmp_path_factory) -> Path:
    """The evaluate stage's synthetic fixture (truth JSON, pictures, conversations), test split cut to 2."""
    from test_evaluate_stage import make_project as make_eval_project

    root = make_eval_project(tmp_path_factory.mktemp("evalproj"))
    test = json.loads((root / "converted" / "test.json").read_text())
    (root / "converted" / "test.json").write_text(json.dumps(test[:2]))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("family", list(ARCHES))
def test_base_trains_evaluates_and_predicts(family, tmp_path, eval_project):
    from cadvlm.cli import main
    from cadvlm.eval.stage import EvalConfig, ScoreConfig, run_stage

    t = {"start": time.perf_counter()}
    root = make_project(tmp_path / "proj", n_train=8, n_val=2, method="lora", epochs=1, batch_size=4,
                        eval_batch_size=2, eval_on_start=False, max_length=2048)
    texts = [c["conversations"][1]["value"] for c in json.loads((root / "data/converted/train.json").read_text())]
    base = _import_tinyllava(tmp_path / "base") if family == "tinyllava" else build_base(family, tmp_path / "base", texts)
    t["build"] = time.perf_counter()
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["model"]["base"] = str(base)
    params["lora"].update(target_modules=["q_proj", "k_proj", "v_proj", "o_proj"], vision_tower=True,
                          vision_target_modules=["q_proj", "v_proj", "fc1", "qkv"],  # SigLIP/CLIP; Qwen's towers
                          modules_to_save=["multi_modal_projector"])  # each family's projector, by its own name
    (root / "params.yaml").write_text(yaml.safe_dump(params))

    metrics = run_train(root)
    t["train"] = time.perf_counter()
    assert metrics["n_train"] == 8 and 0 < metrics["n_trainable_params"] < metrics["n_params"]
    assert math.isfinite(metrics["train_loss_first_epoch"]) and math.isfinite(metrics["val_loss_last"])
    manifest = json.loads((root / "models" / "cadvlm_model.json").read_text())
    assert (manifest["weights"], manifest["base"]) == ("lora", str(base))
    adapter = json.loads((root / "models" / "adapter_config.json").read_text())
    assert adapter["modules_to_save"] and adapter["modules_to_save"][0] in ("multi_modal_projector", "merger",
                                                                            "connector")
    assert json.loads((base / "config.json").read_text())["architectures"] == [ARCHES[family]]
    from safetensors import safe_open

    with safe_open(str(root / "models" / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any("lora_" in k and any(v in k.split(".") for v in ("vision_tower", "visual", "vision_model"))
               for k in keys), "no adapter on the vision tower"

    # The rl stage: one GRPO step on the LoRA adapter (the fake answers never build: every reward is the
    # penalty, so what is checked is that sampling, rewarding and saving run for this family).
    from cadvlm.rl.grpo import run_rl

    params["rl"] = {"steps": 1, "reward": "iou", "invalid_penalty": -1.0, "group_size": 2, "prompts_per_step": 2,
                    "temperature": 1.0, "kl": 0.0, "lr": 1e-4, "max_new_tokens": 8, "prompts": "train",
                    "workers": 1, "timeout_s": 60, "cpu_threads": 1, "seed": None, "progress": False}
    rl = run_rl(params, root / "models", root / "data/converted", root / "data/rendered", root / "models_rl",
                tmp_path / "rl_ckpt")
    t["rl"] = time.perf_counter()
    assert rl["answers"] == 4 and rl["prompts"] == 8
    assert json.loads((root / "models_rl" / "cadvlm_model.json").read_text()) == manifest
    assert (root / "models_rl" / "adapter_model.safetensors").is_file()

    cfg = EvalConfig(converted_dir=eval_project / "converted", rendered_dir=eval_project / "rendered",
                     extracted_dir=eval_project / "extracted", model_dir=root / "models_rl",
                     out_dir=tmp_path / "eval", metrics_path=tmp_path / "metrics" / "eval.json", max_new_tokens=8,
                     batch_size=2, baseline_candidates=0, nearest_baseline=False, sheet_samples=0, bootstrap=0,
                     score=ScoreConfig(workers=1, timeout_s=60, progress=False, n_points=512))
    run_stage(cfg)
    t["evaluate"] = time.perf_counter()
    m = json.loads(cfg.metrics_path.read_text())
    assert m["n"] == 2 and sum(m["invalid_by_reason"].values()) == round(m["invalid_ratio"] * 2)
    assert len((cfg.out_dir / "generations.jsonl").read_text().splitlines()) == 2

    pic = tmp_path / "grid.png"
    Image.new("RGB", (96, 96), "white").save(pic)
    code = main(["predict", str(pic), "--model", str(root / "models_rl"), "-o", str(tmp_path / "pred"),
                 "--max-new-tokens", "8", "--device", "cpu"])
    t["predict"] = time.perf_counter()
    assert code in (0, 1)  # 0: the noise built a part (unlikely); 1: it did not, the answer is still written
    assert (tmp_path / "pred" / "answer.txt").is_file()
    steps = ("build", "train", "rl", "evaluate", "predict")
    TIMES[family] = {s: round(t[s] - t[prev], 1) for prev, s in zip(("start",) + steps, steps)}
    print(f"{family}: {TIMES[family]}")


# ----------------------------------------------------------------------------- prompts and labels
@pytest.mark.parametrize("family", list(BUILDERS))
def test_training_text_is_the_generation_prompt_then_the_answer(family, tmp_path):
    """Per family: the loss covers exactly the answer and the token that ends the turn, after the very
    prompt generation starts from (OneVision's template renders a turn differently from its generation
    prompt; LLaVA-1.5's ends the answer with no EOS and relies on the tokenizer for <s>)."""
    from fake_data import write_fake_dataset

    from cadvlm.data.conversations import ConversationDataset, chat_format, load_conversations
    from cadvlm.model.load import load_base

    data = write_fake_dataset(tmp_path / "data", 2, 0, image_size=64)
    model, processor = load_base(build_base(family, tmp_path / "base"))
    recs = load_conversations(data / "converted" / "train.json", data / "rendered")
    item = ConversationDataset(recs[:1], processor)[0]
    tok, chat = processor.tokenizer, chat_format(processor)
    ids, labels = item["input_ids"].tolist(), item["labels"].tolist()
    answer_ids = [i for i, lab in zip(ids, labels) if lab != -100]
    assert labels[-len(answer_ids):] == answer_ids  # one block, at the end
    stop = [i for i in answer_ids if i in chat.stop_ids]
    assert stop and answer_ids.index(stop[0]) >= len(answer_ids) - 2, "the answer must end with a stop token"
    assert tok.decode(answer_ids, skip_special_tokens=True).strip() == recs[0].answer.strip()
    prompt_ids = processor(text=[chat.prompt(recs[0].prompt)], images=[[Image.new("RGB", (64, 64))]],
                           add_special_tokens=chat.add_special_tokens)["input_ids"][0]
    assert ids[:len(prompt_ids)] == list(prompt_ids) and len(prompt_ids) == len(ids) - len(answer_ids)
    with torch_no_grad():
        assert math.isfinite(model(**{k: v.unsqueeze(0) if k in ("input_ids", "attention_mask", "labels") or
                                      (v.dim() == 1 and len(v) == len(ids)) else v
                                      for k, v in item.items()}).loss.item())


def torch_no_grad():
    import torch

    return torch.no_grad()


# ----------------------------------------------------------------------------- refused at load
@pytest.fixture(scope="module")
def llava_base(tmp_path_factory) -> Path:
    return build_llava15(tmp_path_factory.mktemp("llava15"), [])


def _variant(base: Path, dst: Path, **changes) -> Path:
    """A copy of a saved base with its chat template replaced (None: removed)."""
    import shutil

    shutil.copytree(base, dst)
    for f in ("chat_template.jinja", "chat_template.json"):
        (dst / f).unlink(missing_ok=True)
    cfg = dst / "processor_config.json"
    if cfg.is_file():
        info = json.loads(cfg.read_text())
        info.pop("chat_template", None)
        cfg.write_text(json.dumps(info))
    tok = json.loads((dst / "tokenizer_config.json").read_text())
    tok.pop("chat_template", None)
    (dst / "tokenizer_config.json").write_text(json.dumps(tok))
    if changes.get("template"):
        (dst / "chat_template.jinja").write_text(changes["template"])
    return dst


def test_a_base_without_chat_template_is_refused_before_training(llava_base, tmp_path):
    from cadvlm.model.load import ModelLoadError

    base = _variant(llava_base, tmp_path / "notemplate")
    root = make_project(tmp_path / "proj", n_train=4, n_val=2, method="lora", epochs=1)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["model"]["base"] = str(base)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ModelLoadError, match="has no chat template"):
        run_train(root)
    assert not (root / "models").exists() and not (root / "checkpoints").exists()


def test_a_template_that_drops_the_picture_is_refused(llava_base, tmp_path):
    from cadvlm.model.load import ModelLoadError, load_base

    text_only = ("{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}{% if c['type'] == 'text' %}"
                 "{{ c['text'] }}{% endif %}{% endfor %}\n{% endfor %}{% if add_generation_prompt %}assistant: "
                 "{% endif %}")
    base = _variant(llava_base, tmp_path / "noimage", template=text_only)
    with pytest.raises(ModelLoadError, match="writes no <image> for a picture"):
        load_base(base)


def test_a_text_only_model_is_refused(llava_base, tmp_path):
    from cadvlm.model.base_check import BaseCheckError, check_model
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    with pytest.raises(BaseCheckError, match="has no vision part"):
        check_model(model, "a-text-llm")


def test_every_family_builds_a_base_that_passes_the_load_checks():
    assert set(BUILDERS) | {"tinyllava"} == set(ARCHES)
