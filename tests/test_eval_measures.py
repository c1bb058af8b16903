"""The measurement parts of evaluate: bootstrap intervals, the per-family table, real parts, and
render-and-compare selection (stage, `cadvlm predict --samples`), with fake generations.

The stage test renders the fixture's pictures for real (128 px views), so that render-and-compare
has something to compare: the fake model's greedy answer is another part's code, and one of its
sampled answers is the right one, which the selection must find from the pictures alone.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from cadvlm.cad.deepcad_json import read_model
from cadvlm.codec.format import CodeFormat
from cadvlm.eval.families import (curve_types_kind, curves_group, extrudes_group, families_metrics, family_table,
                                  operations_kind)
from cadvlm.eval.intervals import bootstrap_interval
from cadvlm.eval.report import summarise
from cadvlm.model.manifest import ModelManifest
from cadvlm.render_compare import PAPER_LEVEL, silhouette_iou, target_masks, compare_job
from cadvlm.synth import model_json_text
from conftest import MISSING, SHARED
from test_evaluate_stage import N_TEST, make_project

VIEW_PX = 128
REAL_IDS = ("00000007", "00000069", "00000175", "00003877", "00000144")  # 00000175: nothing to build


# ------------------------------------------------------------------------------ intervals

def test_bootstrap_interval_is_seeded_and_brackets_the_statistic():
    x = np.random.default_rng(1).lognormal(0.0, 1.0, 200)
    a = bootstrap_interval(x, "median", seed=0)
    assert a == bootstrap_interval(list(x), "median", seed=0)  # same values, same seed: same numbers
    assert a != bootstrap_interval(x, "median", seed=1)
    assert a[0] < float(np.median(x)) < a[1]
    lo, hi = bootstrap_interval(x, "mean", seed=0)
    assert lo < x.mean() < hi
    wide = bootstrap_interval(x[:20], "mean", seed=0)
    assert wide[1] - wide[0] > hi - lo  # fewer samples, wider interval
    assert bootstrap_interval([], "mean") is None and bootstrap_interval([3.0], "median") == (3.0, 3.0)
    with pytest.raises(ValueError):
        bootstrap_interval(x, "mode")


def _row(i, status="ok", chamfer=1.0, iou=0.9, method="model", extrudes=1, curves=4, ops="single", kinds="line"):
    return {"id": f"m{i}", "method": method, "status": status, "chamfer": chamfer if status == "ok" else None,
            "iou": iou if status == "ok" else None, "iou_exact": True, "command": 1.0, "curve_count": 1.0,
            "curve_type": 1.0, "extrude_count": 1.0, "operation": 1.0, "extent_type": 1.0,
            "truth_extrudes": extrudes, "truth_curves": curves, "truth_ops": ops, "truth_curve_types": kinds}


def test_summary_intervals_and_how_invalid_samples_count():
    rows = [_row(i, chamfer=float(i), iou=0.5 + i / 40) for i in range(16)]
    rows += [_row(16 + i, status="parse_error") for i in range(4)] + [_row(99, status="truth_error")]
    s = summarise(rows, seed=3)
    assert s["n"] == 20 and s["n_valid"] == 16
    lo, hi = s["chamfer_median_ci95"]
    assert lo <= s["chamfer_median"] <= hi and lo >= 0.0 and hi <= 15.0  # valid samples only
    assert s["iou_mean_ci95"][0] <= s["iou_mean"] <= s["iou_mean_ci95"][1]
    # the all-samples IoU counts the 4 invalid as 0: its interval sits below the valid-only one
    assert s["iou_mean_all_ci95"][1] < s["iou_mean_ci95"][1]
    assert s["invalid_ratio_ci95"][0] <= 0.2 <= s["invalid_ratio_ci95"][1]
    assert summarise(rows, seed=3) == s
    assert "chamfer_median_ci95" not in summarise(rows, resamples=0)
    empty = summarise([_row(0, status="no_code")])
    assert empty["chamfer_median_ci95"] is None and empty["invalid_ratio_ci95"] == [1.0, 1.0]


# ------------------------------------------------------------------------------ families

def test_part_kinds_from_the_construction_sequence():
    kinds = set()
    for i in range(40):
        m = read_model(json.loads(model_json_text(i, 0)), f"s{i}")
        ops, curves = operations_kind(m), curve_types_kind(m)
        assert (ops == "single") == (len(m.extrudes) == 1)
        assert set(curves.split("+")) <= {"line", "arc", "circle"}
        kinds.add(ops)
    assert "cut" in " ".join(kinds) and "single" in kinds
    assert [extrudes_group(n) for n in (1, 2, 3, 4, 9)] == ["1", "2", "3", "4+", "4+"]
    assert [curves_group(n) for n in (1, 4, 5, 16, 17, 33, 60)] == ["1-4", "1-4", "5-8", "9-16", "17-32", "33+", "33+"]


def test_family_table_groups_every_method():
    rows = [_row(0, extrudes=1, curves=4, chamfer=1.0), _row(1, extrudes=1, curves=12, chamfer=3.0, ops="single"),
            _row(2, extrudes=5, curves=40, status="build_error", ops="cut+join", kinds="arc+line"),
            _row(3, extrudes=5, curves=40, chamfer=9.0, ops="cut+join", kinds="arc+line"),
            _row(0, method="nearest", chamfer=2.0), _row(9, status="truth_error")]
    m = families_metrics(family_table(rows))
    assert set(m) == {"extrudes", "curves", "operations", "curve_types"}
    assert m["extrudes"]["1"]["model"] == {"n": 2, "n_valid": 2, "invalid_ratio": 0.0, "chamfer_median": 2.0,
                                          "iou_mean": 0.9}
    assert m["extrudes"]["4+"]["model"]["invalid_ratio"] == 0.5 and m["extrudes"]["4+"]["model"]["n_valid"] == 1
    assert m["curves"]["33+"]["model"]["chamfer_median"] == 9.0 and m["operations"]["cut+join"]["model"]["n"] == 2
    assert m["extrudes"]["1"]["nearest"]["n"] == 1 and "truth_error" not in json.dumps(m)


# ------------------------------------------------------------------------------ render-and-compare pieces

def test_silhouettes_of_a_sheet():
    job = compare_job({"size": 64})
    blank = np.full((256, 256), 255, np.uint8)
    blank[128, :] = blank[:, 128] = 200  # the grid's dividers are not ink
    masks = target_masks(blank, job)
    assert set(masks) == {"top", "iso", "front", "right"} and not any(m.any() for m in masks.values())
    drawn = blank.copy()
    drawn[20:60, 20:100] = 120  # a part in the top view only
    got = target_masks(drawn, job)
    assert got["top"].mean() == pytest.approx(40 * 80 / 128 ** 2, rel=0.1) and not got["right"].any()
    assert silhouette_iou(got, got) == 1.0
    assert silhouette_iou(got, masks) == pytest.approx(0.75)  # top view 0, the three empty views agree
    assert PAPER_LEVEL < 255


# ------------------------------------------------------------------------------ the stage

def _render_pictures(root: Path) -> None:
    """Replace the fixture's blank pictures with the render stage's, at VIEW_PX a view."""
    from cadvlm.render.pipeline import RenderJob, pictures_of_json
    from cadvlm.render.sheet import encode_png

    job = RenderJob.from_params({"size": VIEW_PX})
    for path in sorted((root / "extracted" / "json").glob("*.json")):
        pictures, _ = pictures_of_json(str(path), path.stem, job, nthreads=1)
        (root / "rendered" / "images" / f"{path.stem}.png").write_bytes(encode_png(next(iter(pictures.values()))))
    ModelManifest("full", None, render={"size": VIEW_PX}).write(root / "models")


def fake_generate(records):
    """Greedy: the next test part's code (valid, wrong); real parts: no code at all."""
    return [records[(k + 1) % len(records)].answer if r.answer else "I am a tiny model."
            for k, r in enumerate(records)]


def make_fake_sample(real_dir: Path | None):
    code = CodeFormat()

    def sample(records, n):
        assert n == 2
        out = []
        for r in records:
            right = r.answer or code.answer(read_model(real_dir / f"{r.model_id}.json", r.model_id))
            out.append(["Of course, here are the codes:\n```python\nLoops0 = [\n", right])  # garbage, then right
        return out

    return sample


@pytest.fixture(scope="module")
def stage_run(tmp_path_factory):
    from cadvlm.eval.stage import EvalConfig, ScoreConfig, run_stage

    root = make_project(tmp_path_factory.mktemp("measures"))
    _render_pictures(root)
    real_dir = None
    if (SHARED / "json").is_dir():
        real_dir = root / "real"
        real_dir.mkdir()
        for i in REAL_IDS:
            shutil.copy(SHARED / "json" / f"{i}.json", real_dir)
    cfg = EvalConfig(converted_dir=root / "converted", rendered_dir=root / "rendered", model_dir=root / "models",
                     extracted_dir=root / "extracted", out_dir=root / "eval",
                     metrics_path=root / "metrics" / "eval.json",
                     baseline_candidates=2, sheet_samples=0, rac_samples=2, rac_nearest=2, real_dir=real_dir, train_parts=3,
                     score=ScoreConfig(workers=2, timeout_s=60, progress=False))
    out = run_stage(cfg, generate=fake_generate, sample=make_fake_sample(real_dir))
    return cfg, out


def test_every_method_has_intervals(stage_run):
    cfg, _ = stage_run
    m = json.loads(cfg.metrics_path.read_text())
    methods = {"model": m, "rac": m["rac"], "rac_nearest": m["rac_nearest"], **m["baselines"]}
    assert set(methods) == {"model", "rac", "rac_nearest", "oracle", "constant", "nearest"}
    for name, s in methods.items():
        lo, hi = s["chamfer_median_ci95"]
        assert lo <= s["chamfer_median"] <= hi, name
        lo, hi = s["iou_mean_ci95"]
        assert lo <= s["iou_mean"] <= hi, name
        assert s["invalid_ratio_ci95"] is not None and s["iou_mean_all_ci95"] is not None


def test_render_and_compare_finds_the_right_answer(stage_run):
    cfg, out = stage_run
    m = json.loads(cfg.metrics_path.read_text())
    rac, oracle = m["rac"], m["baselines"]["oracle"]
    assert rac["samples"] == 2 and rac["n"] == N_TEST and rac["changed_from_greedy"] == N_TEST
    assert rac["invalid_ratio"] == 0.0 and rac["iou_mean"] > 0.99
    assert rac["chamfer_median"] < 2 * oracle["chamfer_median"]
    assert m["iou_mean"] < 0.9  # greedy, the wrong parts, stays as it was
    lines = [json.loads(x) for x in (cfg.out_dir / "generations.jsonl").read_text().splitlines()]
    assert all(x["rac"]["index"] == 2 and x["rac"]["scores"][1] is None and x["rac"]["built"] == 2 for x in lines)
    timing = json.loads(cfg.beside("eval_timing.json").read_text())
    assert timing["test"]["rac_seconds_per_part"] >= timing["test"]["model_seconds_per_part"] >= 0
    with open(cfg.out_dir / "samples.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == {"model", "rac", "rac_nearest", "oracle", "constant", "nearest"}
    assert all(r["truth_ops"] and r["truth_curve_types"] for r in rows)


def test_answers_checked_against_retrieval(stage_run):
    """rac_nearest: the greedy, the sampled and the 2 nearest training answers; the right one (sampled) wins."""
    cfg, _ = stage_run
    m = json.loads(cfg.metrics_path.read_text())
    near = m["rac_nearest"]
    assert near["nearest"] == 2 and near["n"] == N_TEST and near["invalid_ratio"] == 0.0
    assert near["iou_mean"] >= m["rac"]["iou_mean"] - 1e-9 and near["iou_mean"] > 0.99
    assert 0 <= near["chose_a_training_answer"] <= N_TEST
    lines = [json.loads(x) for x in (cfg.out_dir / "generations.jsonl").read_text().splitlines()]
    assert all(len(x["rac_nearest"]["scores"]) == 1 + 2 + 2 for x in lines)
    timing = json.loads(cfg.beside("eval_timing.json").read_text())
    assert timing["test"]["rac_nearest_seconds_per_part"] >= timing["test"]["model_seconds_per_part"]


def test_families_metric_and_plot(stage_run):
    cfg, _ = stage_run
    fam = json.loads(cfg.beside("eval_families.json").read_text())
    assert set(fam) == {"extrudes", "curves", "operations", "curve_types"}
    for family, groups in fam.items():
        assert sum(g["model"]["n"] for g in groups.values()) == N_TEST, family
        assert sum(g["rac"]["n"] for g in groups.values()) == N_TEST, family
    with open(cfg.out_dir / "families.csv") as f:
        rows = list(csv.DictReader(f))
    assert {"label", "n", "model_chamfer_median", "rac_chamfer_median", "nearest_iou_mean"} <= set(rows[0])
    assert rows[0]["family"] == "extrudes" and len(rows) == sum(len(g) for g in fam.values())


def test_training_parts_are_scored_by_the_model_and_the_oracle(stage_run):
    """eval.train_parts: the first N training pictures, answered greedily (here: the next training
    part's code, valid and wrong) and scored against their own truths beside the oracle."""
    cfg, _ = stage_run
    fit = json.loads(cfg.beside("eval_train.json").read_text())
    assert fit["train_parts"] == 3 and fit["n"] == 3 and fit["invalid_ratio"] == 0.0
    assert set(fit["baselines"]) == {"oracle"} and "rac" not in fit
    oracle = fit["baselines"]["oracle"]
    assert oracle["n"] == 3 and oracle["iou_mean"] > 0.99 and fit["iou_mean"] < 0.9
    assert oracle["chamfer_median"] < fit["chamfer_median"]
    timing = json.loads(cfg.beside("eval_timing.json").read_text())
    assert timing["train"]["model_seconds_per_part"] >= 0 and set(timing["train"]) == {"model_seconds_per_part"}


@pytest.mark.samples
def test_real_parts_are_scored_beside_the_test_split(stage_run):
    cfg, out = stage_run
    real = json.loads(cfg.beside("eval_real.json").read_text())
    if cfg.real_dir is None:
        assert real == {"n": 0, "real_dir": None}
        pytest.skip(MISSING)
    assert real["n_files"] == len(REAL_IDS) and real["skipped"] == {"no_extrude": 1}
    n = len(REAL_IDS) - 1
    assert real["n"] == n and real["invalid_ratio"] == 1.0 and real["invalid_by_reason"]["no_code"] == n
    oracle = real["baselines"]["oracle"]
    assert oracle["invalid_ratio"] == 0.0 and oracle["iou_mean"] > 0.99
    assert real["rac"]["invalid_ratio"] == 0.0 and real["rac"]["iou_mean"] > 0.99 and real["rac"]["chamfer_median_ci95"]
    assert set(real["baselines"]) == {"oracle", "constant", "nearest"}
    with open(cfg.out_dir / "real_samples.csv") as f:
        ids = {r["id"] for r in csv.DictReader(f)}
    assert ids == set(REAL_IDS) - {"00000175"}


# ------------------------------------------------------------------------------ predict --samples

def test_predict_keeps_the_sample_that_looks_like_the_picture(tmp_path):
    from cadvlm.predict import add_arguments_predict, cmd_predict

    models = tmp_path / "models"
    ModelManifest("full", None, render={"size": VIEW_PX}).write(models)
    code = CodeFormat()
    parts = [tmp_path / f"p{i}.json" for i in range(3)]
    for i, p in enumerate(parts):
        p.write_text(model_json_text(i, 0))
    right = code.answer(read_model(parts[0], "p0"))
    wrong = code.answer(read_model(parts[1], "p1"))
    p = argparse.ArgumentParser()
    add_arguments_predict(p)
    args = p.parse_args(["--json", str(parts[0]), "--model", str(models), "-o", str(tmp_path / "out"),
                         "--samples", "2"])
    calls = []

    def sample(image, prompt, n):
        calls.append((image.size, prompt, n))
        return ["no code here", right]

    assert cmd_predict(args, generate=lambda im, pr, k: wrong, sample=sample) == 0
    assert calls == [((2 * VIEW_PX, 2 * VIEW_PX), ModelManifest.read(models).prompt(), 2)]
    cands = json.loads((tmp_path / "out" / "candidates.json").read_text())
    assert cands["chosen"] == 2 and cands["candidates"][1]["silhouette_iou"] is None
    assert cands["candidates"][2]["silhouette_iou"] > cands["candidates"][0]["silhouette_iou"]
    assert (tmp_path / "out" / "answer.txt").read_text() == right and (tmp_path / "out" / "part.step").is_file()


def test_render_and_compare_needs_pictures_drawn_by_the_renderer(tmp_path, capsys):
    """A model trained on a dataset's own pictures has no renderer to copy: --samples is refused."""
    from PIL import Image

    from cadvlm.predict import add_arguments_predict, cmd_predict

    ModelManifest("full", None, pictures="imported").write(tmp_path / "models")
    Image.new("L", (64, 64), 255).save(tmp_path / "p.png")
    p = argparse.ArgumentParser()
    add_arguments_predict(p)
    args = p.parse_args([str(tmp_path / "p.png"), "--model", str(tmp_path / "models"), "-o", str(tmp_path / "o"),
                         "--samples", "2"])
    assert cmd_predict(args, generate=lambda *a: "x", sample=lambda *a: ["y"]) == 2
    assert "no renderer to copy" in capsys.readouterr().err
