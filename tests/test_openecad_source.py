"""`data.source: openecad` end to end on a small set in OpenECAD's layout (tests/openecad_fixture.py):
extract (parse the true answers, limits, build, pictures), render (import, not draw), convert (the
dataset's prompts, JPEG pictures), evaluate (a fake model), and predict --json's refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openecad_fixture import BAD, GOOD, PROMPTS, REFUSED, write_set

from cadvlm.cad.limits import Limits
from cadvlm.codec.format import CodeFormat
from cadvlm.data.convert import ConvertConfig, convert
from cadvlm.extract import ExtractConfig, extract
from cadvlm.model.manifest import ModelManifest
from cadvlm.render.pipeline import RenderJob
from cadvlm.render.stage import run_render
from cadvlm.subset import order_pools

ALL = {"train": 50, "validation": 50, "test": 50}  # more than there are: every record is decided


def _config(raw: Path, out: Path, sizes=ALL, split_file=True, workers=2) -> ExtractConfig:
    return ExtractConfig(raw_dir=raw, out_dir=out, sizes=sizes, seed=3, workers=workers, timeout_s=60,
                         split_file=raw / "split.json" if split_file else None, limits=Limits(), source="openecad")


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The set, and extract + render + convert run on it once."""
    root = tmp_path_factory.mktemp("openecad")
    raw = write_set(root / "set")
    out = {"root": root, "raw": raw, "metrics": {}}
    out["metrics"]["extract"] = extract(_config(raw, root / "extracted"))
    out["metrics"]["render"] = run_render(root / "extracted", root / "rendered", RenderJob(), workers=1,
                                          metrics_path=root / "metrics" / "render.json")
    out["metrics"]["convert"] = convert(root / "extracted", root / "rendered", root / "converted",
                                        ConvertConfig(format="openecad", workers=1),
                                        metrics_path=root / "metrics" / "convert.json")
    return out


def test_extract_parses_the_answers_and_counts_every_skip_by_reason(project):
    m, ext = project["metrics"]["extract"], project["root"] / "extracted"
    assert m["source"] == "openecad"
    assert m["skipped"] == {reason: 1 for reason in BAD.values()}
    assert m["refused_records"] == REFUSED
    split = json.loads((ext / "split.json").read_text())
    # DeepCAD-style split ids ("0000/00000011") name the OpenECAD record of the same stem
    assert sorted(i for ids in split.values() for i in ids) == sorted(GOOD)
    assert set(split["test"]) == {"00000016", "00000017"} and split["validation"] == ["00000015"]
    pictures = json.loads((ext / "pictures.json").read_text())
    assert {i: p["kind"] for i, p in pictures.items()} == {i: kind for i, (_, kind) in GOOD.items()}
    for i, p in pictures.items():
        assert p["prompt"] == PROMPTS[p["kind"]] and p["format"] == "JPEG"
        assert p["size"] == ([1280, 960] if p["kind"] == "grid" else [640, 480])
        assert (ext / p["file"]).read_bytes() == (project["raw"] / "images" / f"{i}.jpg").read_bytes()
        # the truth is the parsed answer, written as DeepCAD JSON: it reads back to the same code
        record = next(r for r in json.loads((project["raw"] / "data.json").read_text()) if r["id"] == i)
        code = CodeFormat()
        from cadvlm.cad.deepcad_json import read_model

        assert code.answer(read_model(ext / "json" / f"{i}.json", i)) == record["conversations"][1]["value"]


def test_extract_is_deterministic_and_follows_the_hash_rule(project, tmp_path):
    raw, ext = project["raw"], project["root"] / "extracted"
    extract(_config(raw, tmp_path / "again", workers=1))
    for name in ("split.json", "pictures.json"):
        assert (tmp_path / "again" / name).read_bytes() == (ext / name).read_bytes()
    for i in GOOD:
        assert (tmp_path / "again" / "json" / f"{i}.json").read_bytes() == (ext / "json" / f"{i}.json").read_bytes()
    # without a split file: each id's split and place in line are the hash of (seed, id), as for DeepCAD
    sizes = {"train": 3, "validation": 1, "test": 1}
    m = extract(_config(raw, tmp_path / "hashed", sizes=sizes, split_file=False))
    records = [r["id"] for r in json.loads((raw / "data.json").read_text()) if r.get("conversations")]
    pools = order_pools(dict.fromkeys(records), 3)
    want = {s: [i for i in pools[s] if i in GOOD][: sizes[s]] for s in pools}
    assert json.loads((tmp_path / "hashed" / "split.json").read_text()) == want
    assert m["selected"] == {s: len(v) for s, v in want.items()}


def test_render_imports_the_pictures_and_reuses_them(project):
    root = project["root"]
    m = project["metrics"]["render"]
    assert m["rendered"] == m["models"] == len(GOOD) and m["failed"] == 0
    assert m["kinds"] == {"grid": 2, "iso": 4, "transparent": 1}
    index = json.loads((root / "rendered" / "index.json").read_text())
    assert index == {i: [f"images/{i}.jpg"] for i in GOOD}
    for i in GOOD:
        shipped = (root / "set" / "images" / f"{i}.jpg").read_bytes()
        assert (root / "rendered" / "images" / f"{i}.jpg").read_bytes() == shipped
    meta = json.loads((root / "rendered" / "rendering_metadata.json").read_text())
    assert meta["layout"] == "single" and meta["settings"] == {} and meta["views"] == ["iso", "transparent", "grid"]
    assert meta["image"]["sizes"] == {"1280x960": 2, "640x480": 5} and meta["image"]["view_size"] is None
    again = run_render(root / "extracted", root / "rendered", RenderJob(), workers=1)
    assert again["this_run"]["rendered"] == 0 and again["this_run"]["reused"] == len(GOOD)


def test_convert_keeps_the_dataset_prompts_and_pictures(project):
    root = project["root"]
    m = project["metrics"]["convert"]
    assert m["skipped"] == {} and m["layout"] == "single"
    assert m["samples"] == {"train": 4, "val": 1, "test": 2} and m["templates"]["dataset"] == 7
    samples = [s for f in ("train", "val", "test") for s in json.loads((root / "converted" / f"{f}.json").read_text())]
    data = {r["id"]: r for r in json.loads((project["raw"] / "data.json").read_text())}
    for s in samples:
        assert s["model_id"] == s["id"] and s["view"] == GOOD[s["id"]][1] and s["image"] == f"images/{s['id']}.jpg"
        # their picture, their prompt, their answer (the writer gives back the code they wrote)
        assert s["conversations"] == data[s["id"]]["conversations"]
    info = json.loads((root / "converted" / "convert_info.json").read_text())
    assert info["layout"] == "single" and info["image_size"] is None
    assert info["prompts"][0] == PROMPTS["iso"] and set(info["prompts"]) == set(PROMPTS.values())
    manifest = ModelManifest.from_training_data("full", None, root / "converted", root / "rendered")
    assert manifest.layout == "single" and manifest.render == {} and manifest.prompt() == PROMPTS["iso"]
    assert manifest.pictures == "imported"


def test_evaluate_scores_against_the_parsed_truth(project, tmp_path):
    from cadvlm.eval.stage import EvalConfig, ScoreConfig, run_stage

    root = project["root"]
    ModelManifest.from_training_data("full", None, root / "converted", root / "rendered").write(tmp_path / "models")
    cfg = EvalConfig(converted_dir=root / "converted", rendered_dir=root / "rendered", model_dir=tmp_path / "models",
                     extracted_dir=root / "extracted", out_dir=tmp_path / "eval",
                     metrics_path=tmp_path / "metrics" / "eval.json", baseline_candidates=2, sheet_samples=2,
                     score=ScoreConfig(workers=2, timeout_s=60, progress=False, n_points=1024))
    first = []

    def generate(records):  # right for the first test picture, another part's code for the second
        first.extend(r.model_id for r in records)
        return [records[0].answer, records[0].answer]

    out = run_stage(cfg, generate=generate)
    rows = {(r["id"], r["method"]): r for r in out["rows"]}
    assert len(first) == 2
    right, wrong = rows[(first[0], "model")], rows[(first[1], "model")]
    assert right["status"] == "ok" and right["iou"] > 0.999 and right["chamfer"] < 1.0
    assert wrong["status"] == "ok" and wrong["iou"] < 0.9
    for i in first:
        assert rows[(i, "oracle")]["status"] == "ok" and rows[(i, "oracle")]["iou"] > 0.999
    metrics = json.loads((tmp_path / "metrics" / "eval.json").read_text())
    assert metrics["n"] == 2 and metrics["invalid_ratio"] == 0 and metrics["baselines"]["oracle"]["invalid_ratio"] == 0


def test_predict_json_refuses_a_model_trained_on_imported_pictures(project, tmp_path, capsys):
    from cadvlm.cli import main

    root = project["root"]
    ModelManifest.from_training_data("full", None, root / "converted", root / "rendered").write(tmp_path / "models")
    part = root / "extracted" / "json" / "00000011.json"
    assert main(["predict", "--json", str(part), "--model", str(tmp_path / "models"), "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "imported from a dataset" in err and "give a picture" in err
