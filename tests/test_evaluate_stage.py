"""The evaluate stage end to end on a small synthetic fixture, with fake generations.

The trained model is replaced by a callable, so the test covers everything after generation:
baselines, isolation, metrics file, per-sample table and comparison sheet.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from cadvlm.cad.deepcad_json import read_model
from cadvlm.synth import model_id, model_json_text
from cadvlm.codec.answer import wrap_answer
from cadvlm.codec.openecad_writer import write_code
from cadvlm.eval.stage import EvalConfig, ScoreConfig, run_stage
from cadvlm.model.manifest import ModelManifest
from cadvlm.rebuild import INVALID_REASONS

N_TRAIN, N_VAL, N_TEST = 4, 2, 5


def _item(mid: str, answer: str) -> dict:
    return {"id": mid, "model_id": mid, "view": "grid", "image": f"images/{mid}.png", "conversations": [
        {"from": "human", "value": "<image>\nWrite the CAD code of this part."},
        {"from": "gpt", "value": answer}]}


def make_project(root: Path) -> Path:
    """extracted/ (JSON + split), rendered/ (blank pictures) and converted/ for a few synthetic models."""
    ids = [model_id(i) for i in range(N_TRAIN + N_VAL + N_TEST)]
    split = {"train": ids[:N_TRAIN], "validation": ids[N_TRAIN:N_TRAIN + N_VAL], "test": ids[N_TRAIN + N_VAL:]}
    (root / "extracted" / "json").mkdir(parents=True)
    (root / "rendered" / "images").mkdir(parents=True)
    (root / "converted").mkdir()
    answers = {}
    for i, mid in enumerate(ids):
        path = root / "extracted" / "json" / f"{mid}.json"
        path.write_text(model_json_text(i, 0))
        answers[mid] = wrap_answer(write_code(read_model(path, mid)))
        Image.new("L", (32, 32), 255).save(root / "rendered" / "images" / f"{mid}.png")
    (root / "extracted" / "split.json").write_text(json.dumps(split))
    for name, key in (("train", "train"), ("val", "validation"), ("test", "test")):
        items = [_item(m, answers[m]) for m in split[key]]
        (root / "converted" / f"{name}.json").write_text(json.dumps(items))
    ModelManifest("full", None).write(root / "models")  # an OpenECAD v2 model
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return make_project(tmp_path_factory.mktemp("proj"))


def fake_generate(records):
    """Right for the first sample, wrong in every way a model can be for the others."""
    answers = []
    for n, r in enumerate(records):
        if n == 0:
            answers.append(r.answer)  # perfect
        elif n == 1:
            answers.append("Of course, here are the codes:\n```python\nLoops0 = [\n")  # garbage
        elif n == 2:
            answers.append(r.answer[: len(r.answer) // 2])  # cut off mid-answer
        elif n == 3:
            answers.append("I am a tiny model.")  # no code
        else:
            answers.append(records[0].answer)  # valid code, the wrong part
    return answers


def test_stage_writes_metrics_table_and_sheet(project, tmp_path):
    cfg = EvalConfig(converted_dir=project / "converted", rendered_dir=project / "rendered", model_dir=project / "models",
                     extracted_dir=project / "extracted", out_dir=tmp_path / "eval",
                     metrics_path=tmp_path / "metrics" / "eval.json", baseline_candidates=3, sheet_samples=4,
                     score=ScoreConfig(workers=2, timeout_s=60, progress=False))
    out = run_stage(cfg, generate=fake_generate)
    m = json.loads(cfg.metrics_path.read_text())

    assert m["n"] == N_TEST and m["n_valid"] == 2
    assert set(m["invalid_by_reason"]) == set(INVALID_REASONS)
    assert m["invalid_by_reason"]["parse_error"] == 2 and m["invalid_by_reason"]["no_code"] == 1
    assert m["invalid_ratio"] == pytest.approx(3 / 5)
    assert m["n_parsed"] == 2

    oracle = m["baselines"]["oracle"]
    assert oracle["n"] == N_TEST and oracle["invalid_ratio"] == 0.0
    assert oracle["iou_mean"] > 0.999 and 0 < oracle["chamfer_median"] < 1.0
    assert oracle["command_accuracy"]["command"] == 1.0

    const = m["baselines"]["constant"]
    assert const["n"] == N_TEST and const["invalid_ratio"] == 0.0
    assert const["chosen"]["n_candidates"] == 3 and const["chosen"]["n_val"] == N_VAL
    assert const["chosen"]["train_id"] in json.loads((project / "extracted" / "split.json").read_text())["train"]
    # the right answer scores like the truth itself; valid code of the wrong part scores far worse
    model_rows = [r for r in out["rows"] if r["method"] == "model"]
    right, wrong = model_rows[0], model_rows[4]
    assert right["status"] == "ok" and right["iou"] > 0.999 and right["chamfer"] < 1.0
    assert wrong["status"] == "ok" and wrong["chamfer"] > 5 * right["chamfer"] and wrong["iou"] < 0.9

    with open(cfg.out_dir / "samples.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * N_TEST
    assert {r["method"] for r in rows} == {"model", "oracle", "constant", "nearest"}
    near = m["baselines"]["nearest"]
    assert near["n"] == N_TEST and near["invalid_ratio"] == 0.0
    lines = (cfg.out_dir / "generations.jsonl").read_text().splitlines()
    assert len(lines) == N_TEST and json.loads(lines[3])["answer"] == "I am a tiny model."
    sheet = Image.open(cfg.out_dir / "compare.png")
    assert sheet.width > 400 and sheet.height > 200
    assert out["timing"]["worker_restarts"] == 0

    # same inputs, same bytes
    first = (cfg.metrics_path.read_bytes(), (cfg.out_dir / "samples.csv").read_bytes(),
             (cfg.out_dir / "compare.png").read_bytes())
    run_stage(cfg, generate=fake_generate)
    assert first == (cfg.metrics_path.read_bytes(), (cfg.out_dir / "samples.csv").read_bytes(),
                     (cfg.out_dir / "compare.png").read_bytes())


def test_stage_refuses_a_generator_that_loses_samples(project, tmp_path):
    cfg = EvalConfig(converted_dir=project / "converted", rendered_dir=project / "rendered", model_dir=project / "models",
                     extracted_dir=project / "extracted", out_dir=tmp_path / "eval",
                     metrics_path=tmp_path / "eval.json", score=ScoreConfig(progress=False))
    with pytest.raises(ValueError, match="answers for"):
        run_stage(cfg, generate=lambda recs: ["x"])


def test_nearest_picture_answers_by_lookup(tmp_path):
    """Each query gets the answer of the training picture it resembles, not of the others."""
    from types import SimpleNamespace

    from cadvlm.eval.baselines import nearest_answers

    def picture(name, box):
        im = Image.new("RGB", (256, 256), "white")
        im.paste((40, 40, 40), box)
        im.save(tmp_path / name)
        return tmp_path / name

    boxes = [(0, 0, 128, 128), (128, 128, 256, 256), (0, 100, 256, 156)]
    train = [SimpleNamespace(image=picture(f"t{i}.png", b), answer=f"answer {i}") for i, b in enumerate(boxes)]
    shifted = [(x0 + 6, y0 + 4, x1 + 6, y1 + 4) for x0, y0, x1, y1 in boxes]
    queries = [SimpleNamespace(image=picture(f"q{i}.png", b)) for i, b in reversed(list(enumerate(shifted)))]
    assert [n[0] for n in nearest_answers(train, queries)] == ["answer 2", "answer 1", "answer 0"]
