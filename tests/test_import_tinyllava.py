"""`cadvlm import-model`: TinyLLaVA checkpoints -> native LLaVA folders that behave exactly as TinyLLaVA.

Per decoder family, a tiny random checkpoint in TinyLLaVA's file layout (tests/tinyllava_fixture.py)
is converted; the converted model's logits over the answer tokens must equal TinyLLaVA's forward
(re-implemented in the fixture from its sources) within 1e-4 in fp32, on the same token ids, and
greedy generation must give the same tokens. Then: the folder loads through `load_base`; Phi's and
OpenELM's folders (classes of our own) also load with plain transformers and `trust_remote_code=True`
in a fresh interpreter that cannot import cadvlm, with the same logits; and (slow) the folder trains
LoRA steps through the train stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tinyllava_fixture import SYSTEM_TINYLLAVA, Reference, write_checkpoint

from cadvlm.data.conversations import to_messages
from cadvlm.model.import_tinyllava import REPORT, import_tinyllava
from cadvlm.model.load import load_base
from cadvlm.model.tinyllava_format import OPENECAD_SYSTEM, TinyLlavaFormatError

CASES = [("phi", "siglip"), ("gemma", "siglip"), ("qwen2", "siglip"), ("llama", "siglip"), ("llama", "clip"),
         ("openelm", "siglip"), ("openelm", "clip")]  # OpenECAD: OpenELM + SigLIP 0.89B, OpenELM + CLIP 0.55B
QUESTION = "Write OpenECAD-style CAD code that produces the solid drawn in four views."
ANSWER = ("Of course, here are the codes:\n```python\nSketchPlane0 = add_sketchplane(\n\torigin= [0., 0., 0.], "
          "normal= [0., 0., 1.], x_axis= [1., 0., 0.])\nLoops0 = []\n```")
PARITY: dict[str, dict] = {}  # figures per case, printed at the end of the module (pytest -s)


def _picture(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)  # non-square: `square` means a plain resize, no padding
    return Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(src, dst, report) per case, converted with TinyLLaVA's system prompt (the one the fixture uses)."""
    out = {}
    for family, vision in CASES:
        root = tmp_path_factory.mktemp(f"{family}_{vision}")
        src = write_checkpoint(root / "src", family, vision)
        report = import_tinyllava(src, root / "dst", system="tinyllava", log=lambda *_: None)
        out[(family, vision)] = (src, root / "dst", report)
    return out


@pytest.mark.parametrize("case", CASES, ids=[f"{f}-{v}" for f, v in CASES])
def test_logits_and_greedy_tokens_match_tinyllava(converted, case):
    src, dst, report = converted[case]
    ref = Reference(src)
    model, processor = load_base(dst, dtype=torch.float32, device="cpu")
    model.eval()
    image = _picture()

    # Same token ids: the processor's (image run collapsed to -200) and TinyLLaVA's chunked ones.
    full_text = processor.apply_chat_template(to_messages(QUESTION, ANSWER), tokenize=False)
    inputs = processor(text=[full_text], images=[image], add_special_tokens=False, return_tensors="pt")
    ids = inputs["input_ids"][0].tolist()
    image_id = model.config.image_token_id
    collapsed = [t for i, t in enumerate(ids) if t != image_id or i == 0 or ids[i - 1] != image_id]
    collapsed = [-200 if t == image_id else t for t in collapsed]
    ref_ids = ref.input_ids(ref.prompt(SYSTEM_TINYLLAVA, "<image>\n" + QUESTION, ANSWER))
    assert collapsed == ref_ids

    # Same pixels as TinyLLaVA's preprocessing, then the same logits over the answer tokens.
    ref_pixels = ref.pixels(image)
    assert torch.allclose(inputs["pixel_values"], ref_pixels, atol=1e-5)
    with torch.no_grad():
        got = model(**inputs).logits[0]
    want = ref.logits(ref.embeds(ref_ids, ref_pixels))
    prompt_text = processor.apply_chat_template(to_messages(QUESTION), tokenize=False, add_generation_prompt=True)
    n_answer = len(ids) - len(processor.tokenizer(prompt_text, add_special_tokens=False).input_ids)
    answer_rows = slice(len(ids) - n_answer - 1, len(ids) - 1)  # the positions that predict the answer tokens
    v = ref.vocab
    diff_answer = (got[answer_rows, :v] - want[answer_rows]).abs().max().item()
    diff_all = (got[:, :v] - want).abs().max().item()
    assert got.shape[0] == want.shape[0] and n_answer > 10
    assert diff_answer < 1e-4 and diff_all < 1e-4
    assert want[answer_rows].std() > 0.5  # logits spread: the comparison is not between near-constants
    if got.shape[1] > v:  # an appended <image> row: its logit is the mean, never the argmax
        assert (got[:, v:] < got[:, :v].max(dim=1, keepdim=True).values).all()

    # Greedy generation: the same tokens.
    gen_inputs = processor(text=[prompt_text], images=[image], add_special_tokens=False, return_tensors="pt")
    out = model.generate(**gen_inputs, do_sample=False, max_new_tokens=12)[0, gen_inputs["input_ids"].shape[1]:]
    ref_prompt_ids = ref.input_ids(ref.prompt(SYSTEM_TINYLLAVA, "<image>\n" + QUESTION, None))
    eos_id = processor.tokenizer.convert_tokens_to_ids(report.eos)
    want_tokens = ref.greedy(ref_prompt_ids, ref_pixels, 12, eos_id)
    assert out.tolist() == want_tokens
    PARITY["-".join(case)] = {"max_abs_logit_diff_answer": diff_answer, "max_abs_logit_diff_all": diff_all,
                             "greedy_equal": out.tolist() == want_tokens, "greedy_tokens": len(want_tokens),
                             "answer_tokens": n_answer}


def test_report_and_layout(converted):
    """What each family needed: bias subclass (Phi), tying (Gemma, Qwen2), a new row only without a free one,
    Gemma's embedding scale folded into the projector, shards in and out, the SigLIP head dropped."""
    by = {k: r for k, (_, _, r) in converted.items()}
    phi, gemma, qwen2, llama = (by[(f, "siglip")] for f in ("phi", "gemma", "qwen2", "llama"))
    assert phi.architecture == "LlavaLMBiasForConditionalGeneration" and phi.lm_head_bias
    assert {gemma.architecture, qwen2.architecture, llama.architecture} == {"LlavaForConditionalGeneration"}
    assert gemma.tied_embeddings and qwen2.tied_embeddings and not llama.tied_embeddings
    assert phi.vocab_rows[0] == phi.vocab_rows[1] and qwen2.vocab_rows[0] == qwen2.vocab_rows[1]  # free rows used
    assert gemma.vocab_rows[1] == gemma.vocab_rows[0] + 1 and llama.vocab_rows[1] == llama.vocab_rows[0] + 1
    assert gemma.projector_scale == pytest.approx(72 ** 0.5) and phi.projector_scale == 1.0
    assert len(phi.files) == 3 and len(qwen2.files) == 2 and llama.files == ["model.safetensors"]
    assert all(any("pooling head" in k for k in r.dropped) for r in (phi, gemma, qwen2, llama))
    assert not any("pooling head" in k for k in by[("llama", "clip")].dropped)  # CLIP has no head
    assert llama.spacing == {"after_bos": " ", "after_image": " \n"}  # Metaspace "first" needs the spaces back
    assert phi.spacing == {"after_bos": "", "after_image": "\n"}
    _, dst, _ = converted[("phi", "siglip")]
    saved = json.loads((dst / REPORT).read_text())
    assert saved["template"] == "phi" and saved["eos"] == "<|endoftext|>" and saved["system"] == "tinyllava"
    index = json.loads((dst / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == set(phi.files)
    cfg = json.loads((dst / "config.json").read_text())
    assert cfg["vision_feature_layer"] == -2 and cfg["vision_feature_select_strategy"] == "default"
    assert "model_name_or_path" not in cfg["vision_config"]  # hub ids are not carried over
    assert not any(dst.parent.glob("*.importing"))


def test_system_prompt_option_and_template(converted, tmp_path):
    src, _, _ = converted[("gemma", "siglip")]
    report = import_tinyllava(src, tmp_path / "dst", log=lambda *_: None)  # default: OpenECAD's
    assert report.system == "openecad"
    _, processor = load_base(tmp_path / "dst", dtype=torch.float32, device="cpu")
    text = processor.apply_chat_template(to_messages("Draw it.", "ok"), tokenize=False)
    assert text == "<bos>" + OPENECAD_SYSTEM + " USER: <image>\nDraw it. ASSISTANT: ok<eos>"
    prompt = processor.apply_chat_template(to_messages("Draw it."), tokenize=False, add_generation_prompt=True)
    assert prompt.endswith(" USER: <image>\nDraw it. ASSISTANT:")


def test_refusals(converted, tmp_path):
    src, _, _ = converted[("phi", "siglip")]
    cfg = json.loads((src / "config.json").read_text())

    def variant(name: str, **changes) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        for f in src.iterdir():
            (folder / f.name).symlink_to(f)
        (folder / "config.json").unlink()
        (folder / "config.json").write_text(json.dumps({**cfg, **changes}))
        return folder

    stablelm = variant("stablelm", text_config={**cfg["text_config"], "model_type": "stablelm"})
    with pytest.raises(TinyLlavaFormatError, match="decoder 'stablelm' is not supported"):
        import_tinyllava(stablelm, tmp_path / "o1")
    src_elm, _, _ = converted[("openelm", "siglip")]
    elm_cfg = json.loads((src_elm / "config.json").read_text())
    no_qk = tmp_path / "no_qk"
    no_qk.mkdir()
    for f in src_elm.iterdir():
        if f.name != "config.json":
            (no_qk / f.name).symlink_to(f)
    (no_qk / "config.json").write_text(json.dumps(
        {**elm_cfg, "text_config": {**elm_cfg["text_config"], "normalize_qk_projections": False}}))
    with pytest.raises(TinyLlavaFormatError, match="OpenELM variant not supported"):
        import_tinyllava(no_qk, tmp_path / "o1b")
    with pytest.raises(TinyLlavaFormatError, match="connector_type 'mof_mlp'"):
        import_tinyllava(variant("mof", connector_type="mof_mlp"), tmp_path / "o2")
    with pytest.raises(TinyLlavaFormatError, match="not 'tinyllava'"):
        import_tinyllava(variant("llava", model_type="llava"), tmp_path / "o3")
    with pytest.raises(TinyLlavaFormatError, match="does not have as one token"):
        import_tinyllava(src, tmp_path / "o4", template="qwen2_instruct")
    no_tok = tmp_path / "no_tok"
    no_tok.mkdir()
    for f in src.iterdir():
        if not f.name.startswith("tokenizer"):
            (no_tok / f.name).symlink_to(f)
    with pytest.raises(TinyLlavaFormatError, match="no tokenizer files.*microsoft/phi-2.*--tokenizer"):
        import_tinyllava(no_tok, tmp_path / "o5")
    import_tinyllava(no_tok, tmp_path / "o6", tokenizer_dir=src, log=lambda *_: None)  # the way out works
    with pytest.raises(TinyLlavaFormatError, match="exists and is not empty"):
        import_tinyllava(src, tmp_path / "o6")


def test_cli_help_and_run(converted, tmp_path, capsys):
    from cadvlm.cli import main

    with pytest.raises(SystemExit):
        main(["import-model", "--help"])
    help_text = capsys.readouterr().out
    assert "--system" in help_text and "default: openecad" in help_text
    src, _, _ = converted[("qwen2", "siglip")]
    assert main(["import-model", str(src), "-o", str(tmp_path / "q"), "--system", "tinyllava"]) == 0
    assert (tmp_path / "q" / REPORT).is_file()
    assert main(["import-model", str(tmp_path / "missing"), "-o", str(tmp_path / "x")]) == 2


# Run in a fresh interpreter: plain transformers, cadvlm blocked from being imported at all.
PLAIN_TRANSFORMERS = r"""
import importlib.abc, json, sys

class NoCadvlm(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "cadvlm":
            raise ImportError("cadvlm must not be needed to load this folder")

sys.meta_path.insert(0, NoCadvlm())
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

job = json.loads(sys.argv[1])
image = Image.open(job["image"])
classes = {}
for name, (folder, text, inputs_file) in job["folders"].items():
    model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(folder)
    inputs = processor(text=[text], images=[image], add_special_tokens=False, return_tensors="pt")
    want = torch.load(inputs_file)
    assert all(torch.equal(inputs[k], want[k]) for k in want), f"{name}: the processor's inputs differ"
    with torch.no_grad():
        torch.save(model.eval()(**inputs).logits[0], f"{job['out']}/{name}.pt")
    classes[name] = [type(model).__module__, type(model).__name__, type(model.model.language_model).__name__]
assert "cadvlm" not in sys.modules
print(json.dumps(classes))
"""


def _as_converted_before(dst: Path, folder: Path) -> Path:
    """`dst` as the converter wrote it before folders carried their code: no auto_map, no .py file, and
    OpenELM under model_type `llava` (weights linked, not copied)."""
    folder.mkdir()
    for f in dst.iterdir():
        if f.suffix != ".py" and f.name != "config.json":
            (folder / f.name).symlink_to(f)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.pop("auto_map")
    if cfg["model_type"] == "llava_openelm":
        cfg.update(model_type="llava", architectures=["LlavaForConditionalGeneration"])
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def test_phi_and_openelm_folders_load_with_plain_transformers(converted, tmp_path):
    """Phi (lm_head bias) and OpenELM folders carry their module and auto_map: a fresh interpreter that cannot
    import cadvlm loads them (and a full-weight save of them by cadvlm) with trust_remote_code=True, with
    cadvlm's logits and TinyLLaVA's; cadvlm still loads them, and folders converted before, without remote code."""
    import ast
    import os
    import subprocess
    import sys

    import cadvlm.model

    image, folders, expected = _picture(), {}, {}
    image.save(tmp_path / "picture.png")
    for family in ("phi", "openelm"):
        src, dst, report = converted[(family, "siglip")]
        cfg = json.loads((dst / "config.json").read_text())
        assert set(cfg["auto_map"]) == {"AutoConfig", "AutoModelForImageTextToText"}
        assert cfg["architectures"] == [cfg["auto_map"]["AutoModelForImageTextToText"].split(".")[1]]
        for ref in cfg["auto_map"].values():  # each names a file of the folder that defines the class
            module, cls = ref.split(".")
            code = (dst / f"{module}.py").read_text()
            assert any(isinstance(n, ast.ClassDef) and n.name == cls for n in ast.parse(code).body)
            assert code == (Path(cadvlm.model.__file__).parent / f"{module}.py").read_text()  # verbatim: one source
        assert report.remote_code == [f"{module}.py"]

        model, processor = load_base(dst, dtype=torch.float32, device="cpu")
        assert type(model).__module__.startswith("cadvlm.model.")
        text = processor.apply_chat_template(to_messages(QUESTION, ANSWER), tokenize=False)
        inputs = processor(text=[text], images=[image], add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            expected[family] = model.eval()(**inputs).logits[0]
        before, _ = load_base(_as_converted_before(dst, tmp_path / f"before_{family}"), dtype=torch.float32,
                              device="cpu")
        with torch.no_grad():
            assert torch.equal(before.eval()(**inputs).logits[0], expected[family])
        saved = tmp_path / f"saved_{family}"  # what the train stage's full-weight save writes
        model.save_pretrained(saved)
        processor.save_pretrained(saved)
        assert json.loads((saved / "config.json").read_text())["auto_map"] == cfg["auto_map"]
        torch.save(dict(inputs), tmp_path / f"inputs_{family}.pt")
        for name, folder in ((family, dst), (f"saved_{family}", saved)):
            folders[name] = (str(folder), text, str(tmp_path / f"inputs_{family}.pt"))
        expected[f"saved_{family}"] = expected[family]
        ref = Reference(src)
        ref_ids = ref.input_ids(ref.prompt(SYSTEM_TINYLLAVA, "<image>\n" + QUESTION, ANSWER))
        expected[f"tinyllava_{family}"] = ref.logits(ref.embeds(ref_ids, ref.pixels(image)))

    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf_home"),
           "HF_MODULES_CACHE": str(tmp_path / "hf_modules"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           **{k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k in os.environ}}
    job = {"folders": folders, "image": str(tmp_path / "picture.png"), "out": str(tmp_path)}
    run = subprocess.run([sys.executable, "-c", PLAIN_TRANSFORMERS, json.dumps(job)], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    classes = json.loads(run.stdout.strip().splitlines()[-1])
    assert any((tmp_path / "hf_modules").rglob("llava_bias.py")) and any((tmp_path / "hf_modules").rglob("openelm.py"))
    for name, (folder, _, _) in folders.items():
        module, cls, decoder = classes[name]
        assert module.startswith("transformers_modules.") and cls == json.loads(
            (Path(folder) / "config.json").read_text())["architectures"][0]
        assert decoder == ("PhiModel" if "phi" in name else "OpenELMModel")
        got = torch.load(tmp_path / f"{name}.pt")
        diff = (got - expected[name]).abs().max().item()
        family = name.removeprefix("saved_")
        want = expected[f"tinyllava_{family}"]
        diff_ref = (got[:, :want.shape[1]] - want).abs().max().item()
        assert got.shape == expected[name].shape and diff < 1e-4 and diff_ref < 1e-4 and want.std() > 0.5
        PARITY[f"plain-transformers-{name}"] = {"max_abs_logit_diff_vs_cadvlm": diff,
                                                "max_abs_logit_diff_vs_tinyllava": diff_ref}


def test_parity_summary():
    """Prints the parity figures gathered above (run with -s to see them)."""
    for case, figures in PARITY.items():
        print(f"parity {case}: {figures}")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["phi", "gemma", "openelm"])
def test_converted_model_trains_with_lora_and_generates(converted, tmp_path, family):
    """model.base = the converted folder: the train stage runs LoRA steps, the result loads and generates."""
    import yaml
    from test_train import make_project, run_train

    from cadvlm.decode.generate import generate_code
    from cadvlm.model.load import load_trained

    _, dst, _ = converted[(family, "siglip")]
    root = make_project(tmp_path, n_train=8, n_val=2, method="lora", epochs=1, eval_on_start=False, batch_size=4)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["model"]["base"] = str(dst)
    params["lora"]["target_modules"] = ["q_proj", "v_proj"]  # in every family's attention
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    metrics = run_train(root)
    assert metrics["n_train"] == 8 and 0 < metrics["n_trainable_params"] < metrics["n_params"]
    assert np.isfinite(metrics["train_loss_first_epoch"]) and np.isfinite(metrics["val_loss_last"])
    manifest = json.loads((root / "models" / "cadvlm_model.json").read_text())
    assert (manifest["weights"], manifest["base"]) == ("lora", str(dst))
    model, processor = load_trained(root / "models", device="cpu")
    out = generate_code(model, processor, [_picture(1), _picture(2)], "Write the code.", max_new_tokens=6, batch_size=2)
    assert len(out) == 2 and all(isinstance(s, str) for s in out)


def test_streamed_safetensors_read_back_by_the_reference_library(tmp_path, monkeypatch):
    """StreamWriter's files are what safetensors itself reads; copy_from works with and without the kernel copy."""
    import os

    from safetensors.torch import load_file, save_file

    from cadvlm.model import safetensors_stream as ss

    src = {"a": torch.randn(3, 5).to(torch.bfloat16), "b": torch.arange(7, dtype=torch.int64),
           "c": torch.randn(2, 2, 2, dtype=torch.float16), "d": torch.zeros(0, 4)}
    save_file(src, str(tmp_path / "src.safetensors"))
    infos, _ = ss.read_header(tmp_path / "src.safetensors")
    assert {k: torch.equal(ss.read_tensor(tmp_path / "src.safetensors", v), src[k]) for k, v in infos.items()} == \
        dict.fromkeys(src, True)
    for kernel in (True, False):
        if not kernel:
            monkeypatch.setattr(os, "copy_file_range", lambda *a: (_ for _ in ()).throw(OSError("EXDEV")))
        out = tmp_path / f"out{kernel}.safetensors"
        w = ss.StreamWriter(out, [("x", torch.bfloat16, (3, 5)), ("y", torch.float32, (2, 2)),
                                  ("z", torch.float16, (2, 2, 2)), ("e", torch.float32, (0, 4))])
        w.copy_from("x", tmp_path / "src.safetensors", infos["a"])
        w.write("y", torch.ones(2, 2))
        w.copy_from("z", tmp_path / "src.safetensors", infos["c"])
        w.write("e", torch.zeros(0, 4))
        w.close()
        back = load_file(str(out))
        assert torch.equal(back["x"], src["a"]) and torch.equal(back["z"], src["c"])
        assert torch.equal(back["y"], torch.ones(2, 2)) and back["e"].shape == (0, 4)
    w = ss.StreamWriter(tmp_path / "bad.safetensors", [("x", torch.float32, (2,))])
    with pytest.raises(ss.SafetensorsError, match="expected tensor x"):
        w.write("y", torch.ones(2))
    w.abort()
    assert not list(tmp_path.glob("bad*"))
