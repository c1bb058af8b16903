"""The convert stage: conversation files in TinyLLaVA format, validated, deterministic."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from cadvlm.codec.format import CodeFormat
from cadvlm.data.convert import ConvertConfig, convert, count_tokens, validate_folder
from cadvlm.data.prompts import DEFAULT_PROMPTS, choose_template
from convert_fixture import VIEWS, make_dataset


def _sources(n: int = 8) -> dict:
    from cadvlm.synth import model_json_text

    return {f"{i:04d}/{i:08d}": model_json_text(i, seed=5) for i in range(n)}  # ids with '/' like DeepCAD


@pytest.fixture(scope="module")
def sources():
    return _sources()


@pytest.mark.parametrize("layout", ["grid", "separate"])
def test_convert_writes_valid_conversations(tmp_path, sources, layout):
    extracted, rendered = make_dataset(tmp_path, sources, layout)
    out = tmp_path / "converted"
    m = convert(extracted, rendered, out, ConvertConfig(workers=1), metrics_path=tmp_path / "convert.json")
    per_model = 1 if layout == "grid" else len(VIEWS)
    assert m["samples"] == {"train": 6 * per_model, "val": per_model, "test": per_model} and m["skipped"] == {}
    assert m["models"] == {"train": 6, "val": 1, "test": 1}
    assert sum(m["templates"].values()) == 8 * per_model
    assert 0 < m["answer_tokens"]["min"] <= m["answer_tokens"]["mean"] <= m["answer_tokens"]["max"]
    assert json.loads((tmp_path / "convert.json").read_text()) == m
    train = json.loads((out / "train.json").read_text())
    s = train[0]
    assert set(s) == {"id", "model_id", "view", "image", "conversations"} and (rendered / s["image"]).is_file()
    assert all(x["model_id"] in sources for x in train)  # every sample names the model it shows
    human, gpt = s["conversations"]
    assert human["from"] == "human" and human["value"].startswith("<image>\n") and "{views}" not in human["value"]
    assert gpt["from"] == "gpt" and gpt["value"].startswith("Of course, here are the codes:\n```python\nSketchPlane0")
    assert gpt["value"].endswith("\n```")
    CodeFormat().parse_answer(gpt["value"])
    if layout == "separate":
        assert s["id"].endswith("_front") and "the front view" in human["value"] and s["view"] == "front"
        assert s["id"] == s["model_id"] + "_front"
    else:
        assert s["view"] == "grid" and s["id"] == s["model_id"]
        assert "four views (front, top, right and iso)" in human["value"]
    report = validate_folder(out)
    assert all(r["ok"] == r["samples"] and not r["problems"] for r in report["files"].values())


def test_deterministic_and_independent_of_workers(tmp_path, sources, monkeypatch):
    extracted, rendered = make_dataset(tmp_path, sources)
    a, b = tmp_path / "a", tmp_path / "b"
    convert(extracted, rendered, a, ConvertConfig(workers=1))
    monkeypatch.setattr("cadvlm.data.convert.POOL_MIN", 1)  # use the process pool even for 8 models
    convert(extracted, rendered, b, ConvertConfig(workers=2))
    for f in ("train.json", "val.json", "test.json", "convert_info.json"):
        assert (a / f).read_bytes() == (b / f).read_bytes()


def test_skips_and_counts_bad_inputs(tmp_path, sources):
    src = dict(sources)
    src["bad/broken"] = "{not json"
    extracted, rendered = make_dataset(tmp_path, src, splits={"train": sorted(src), "validation": [], "test": []})
    ids = sorted(sources)
    (rendered / f"images/{ids[0]}.png").unlink()  # missing picture
    Image.new("L", (7, 7), 255).save(rendered / f"images/{ids[1]}.png")  # wrong size
    (rendered / f"images/{ids[3]}.png").write_bytes(b"GIF89a not a png")  # unreadable
    index = json.loads((rendered / "index.json").read_text())
    del index[ids[2]]  # not rendered
    (rendered / "index.json").write_text(json.dumps(index))
    m = convert(extracted, rendered, tmp_path / "out", ConvertConfig(workers=1))
    assert m["skipped"] == {"image_missing": 1, "image_size": 1, "image_unreadable": 1, "malformed_json": 1,
                            "not_rendered": 1}
    assert m["samples"]["train"] == len(sources) - 4


def test_validate_data_finds_problems(tmp_path, sources):
    extracted, rendered = make_dataset(tmp_path, sources)
    out = tmp_path / "converted"
    convert(extracted, rendered, out, ConvertConfig(workers=1))
    data = json.loads((out / "train.json").read_text())
    data[0]["conversations"][0]["value"] = data[0]["conversations"][0]["value"].replace("<image>\n", "")
    data[1]["conversations"][1]["value"] = data[1]["conversations"][1]["value"][:-200] + "\n```"
    data[2]["image"] = "images/nowhere.png"
    data.append(dict(data[3]))
    (out / "train.json").write_text(json.dumps(data))
    report = validate_folder(out)["files"]["train.json"]
    assert report["problems"] == {"no_image_tag": 1, "answer_parse_error": 1, "image_missing": 1, "duplicate_id": 1}
    cli = subprocess.run([sys.executable, "-m", "cadvlm.cli", "validate-data", str(out)], capture_output=True, text=True)
    assert cli.returncode == 1 and "no_image_tag 1" in cli.stdout


def test_templates_and_tokens():
    picks = [choose_template(f"id{i}", 0, 4) for i in range(4000)]
    assert picks == [choose_template(f"id{i}", 0, 4) for i in range(4000)]
    assert min(picks.count(k) for k in range(4)) > 900  # balanced
    assert picks != [choose_template(f"id{i}", 1, 4) for i in range(4000)]  # the seed matters
    assert count_tokens("Line0_0_1 = add_line(start= [10.,  0.])") == 20
    with pytest.raises(ValueError):
        ConvertConfig(prompts=("<image> draw it",))
    assert ConvertConfig.from_params({"base": {"seed": 3}}).prompts == DEFAULT_PROMPTS


def test_cli_code_and_parse(tmp_path, sources):
    """Run away from the checkout: without --format, `code` takes the format of a models/ folder in the cwd."""
    src = tmp_path / "m.json"
    src.write_text(next(iter(sources.values())))
    code = subprocess.run([sys.executable, "-m", "cadvlm.cli", "code", str(src)], capture_output=True, text=True, cwd=tmp_path)
    assert code.returncode == 0 and code.stdout.startswith("SketchPlane0 = add_sketchplane")
    (tmp_path / "m.py").write_text(code.stdout)
    parsed = subprocess.run([sys.executable, "-m", "cadvlm.cli", "parse", str(tmp_path / "m.py"), "-o",
                             str(tmp_path / "back.json")], capture_output=True, text=True, cwd=tmp_path)
    assert parsed.returncode == 0, parsed.stderr
    built = subprocess.run([sys.executable, "-m", "cadvlm.cli", "build", str(tmp_path / "back.json"), "-o",
                            str(tmp_path / "back.stl")], capture_output=True, text=True, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    (tmp_path / "bad.py").write_text(code.stdout + "import os\n")
    bad = subprocess.run([sys.executable, "-m", "cadvlm.cli", "parse", str(tmp_path / "bad.py"), "-o",
                          str(tmp_path / "bad.json")], capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 1 and "parse_error" in bad.stderr and not (tmp_path / "bad.json").exists()
