"""presets/*.yaml: every key exists in params.yaml with the same type, is read by the code, and the
`dvc exp run -S` command `cadvlm preset` writes sets exactly the preset's values. The OpenECAD preset
also trains (tiny base, fake data): rank 128, alpha 256, adapters on the tower, projector saved whole."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml

from cadvlm.presets import exp_run_args, flatten, load_preset

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted((REPO / "presets").glob("*.yaml"))
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
SRC = "\n".join(p.read_text() for p in (REPO / "src" / "cadvlm").rglob("*.py"))


def _same_type(current, value) -> bool:
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(current, bool) and isinstance(value, bool)
    if isinstance(current, float):
        return isinstance(value, (int, float))
    if isinstance(current, list):
        return isinstance(value, list) and all(type(v) is type(current[0]) for v in value)
    return type(current) is type(value)


def test_there_is_an_openecad_preset():
    assert REPO / "presets" / "openecad.yaml" in PRESETS


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_key_exists_in_params_with_the_same_type_and_is_read(preset):
    flat_params = flatten(PARAMS)
    for key, value in load_preset(preset).items():
        assert key in flat_params, f"{preset.name}: {key} is not a params.yaml key"
        assert _same_type(flat_params[key], value), f"{preset.name}: {key}={value!r} vs {flat_params[key]!r}"
        leaf = key.rsplit(".", 1)[-1]
        assert re.search(rf"""["']{leaf}["']""", SRC), f"{preset.name}: no code reads {key}"


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_the_dvc_command_sets_exactly_the_preset(preset):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = load_preset(preset)
    args = exp_run_args(PARAMS, overrides)
    values = [a for a in args if a != "-S"]
    parsed = OverridesParser.create().parse_overrides(values)  # the grammar `dvc exp run -S` reads
    assert {o.key_or_group: o.value() for o in parsed} == overrides


def test_openecad_preset_is_openecads_recipe():
    p = load_preset(REPO / "presets" / "openecad.yaml")
    assert (p["lora.r"], p["lora.alpha"], p["lora.vision_tower"]) == (128, 256, True)
    assert p["lora.modules_to_save"] == ["multi_modal_projector"] and p["train.method"] == "lora"
    assert (p["train.lr"], p["train.warmup_ratio"], p["train.weight_decay"]) == (1e-4, 0.03, 0.0)
    assert p["convert.format"] == "openecad"
    # the cosine schedule is not a param: train.py always uses it, and reads the warmup from params
    train_py = (REPO / "src" / "cadvlm" / "train.py").read_text()
    assert 'lr_scheduler_type="cosine"' in train_py and 'pt["warmup_ratio"]' in train_py
    # OpenECAD's system prompt comes with the imported base's template (import-model's default)
    from cadvlm.model.import_command import add_arguments_import_model
    import argparse

    ap = argparse.ArgumentParser()
    add_arguments_import_model(ap)
    assert ap.parse_args(["src", "-o", "dst"]).system == "openecad"


def test_cli_prints_the_command_and_refuses_unknown_keys(tmp_path, capsys):
    from cadvlm.cli import main

    assert main(["preset", str(REPO / "presets" / "openecad.yaml"), "--params", str(REPO / "params.yaml"),
                 "--set", "model.base=/models/openecad"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("dvc exp run -S ") and "lora.r=128" in out and "model.base=/models/openecad" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  learning_rate: 0.1\n")
    assert main(["preset", str(bad), "--params", str(REPO / "params.yaml")]) == 2
    assert "train.learning_rate" in capsys.readouterr().err
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("lora:\n  r: sixteen\n")
    assert main(["preset", str(wrong), "--params", str(REPO / "params.yaml")]) == 2


def _merge(tree: dict, flat: dict) -> dict:
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def test_openecad_preset_trains(tmp_path):
    """The preset on the tiny base: the adapter it writes has OpenECAD's rank, alpha, tower adapters and
    a whole projector (train.lr etc. are handed to the Trainer as they are)."""
    from safetensors import safe_open
    from test_train import make_project, run_train

    root = make_project(tmp_path, n_train=4, n_val=2, epochs=1, eval_on_start=False)
    params = yaml.safe_load((root / "params.yaml").read_text())
    preset = {k: v for k, v in load_preset(REPO / "presets" / "openecad.yaml").items() if k.split(".")[0] != "convert"}
    (root / "params.yaml").write_text(yaml.safe_dump(_merge(params, preset)))
    metrics = run_train(root)
    assert math.isfinite(metrics["train_loss_first_epoch"])
    adapter = json.loads((root / "models" / "adapter_config.json").read_text())
    assert (adapter["r"], adapter["lora_alpha"], adapter["modules_to_save"]) == (128, 256, ["multi_modal_projector"])
    with safe_open(str(root / "models" / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any("vision_tower" in k and "lora_A" in k for k in keys)
    assert any("multi_modal_projector" in k for k in keys)
