"""Scoring generated answers: code extraction, failure reasons, aggregation, `cadvlm score`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cadvlm.cad.deepcad_json import model_to_json
from cadvlm.cad.model import CADError, CADModel, ExtentType, Extrude, Operation, Profile
from cadvlm.codec.answer import answer_code, wrap_answer
from cadvlm.codec.format import CodeFormat
from cadvlm.codec.openecad_writer import write_code
from cadvlm.eval.baselines import candidate_answers
from cadvlm.eval.report import pick_for_sheet, summarise
from cadvlm.eval.scoring import TRUTH_ERROR, ScoreConfig, score_answers, score_task
from cadvlm.rebuild import INVALID_REASONS
from test_metrics import XY, box, rect

HEAD = ("SketchPlane0 = add_sketchplane(\n\torigin= [0., 0., 0.], normal= [0., 0., 1.], x_axis= [1., 0., 0.])\n"
        "Loops0 = []\nCurves0_0 = []\n")
TAIL = ("Loop0_0 = add_loop(Curves0_0)\nProfile0 = add_profile(Loops0)\n"
        "Sketch0 = add_sketch(sketch_plane= SketchPlane0, profile= Profile0)\n"
        "Extrude0 = add_extrude(sketch= Sketch0,\n\toperation= 0, type= 0, extent_one= 10., extent_two= 0.)\n")
BOW_TIE = HEAD + ("Line0_0_0 = add_line(start= [0., 0.], end= [10., 10.])\n"
                  "Line0_0_1 = add_line(start= [10., 10.], end= [10., 0.])\n"
                  "Line0_0_2 = add_line(start= [10., 0.], end= [0., 10.])\n"
                  "Line0_0_3 = add_line(start= [0., 10.], end= [0., 0.])\n") + TAIL
TRUTH = CADModel([box(0, 0, 0.02, 0.01, 0.005),
                  Extrude(XY, Profile([rect(0.005, 0.002, 0.008, 0.006)]), Operation.CUT, ExtentType.ONE_SIDE, 0.005)])


@pytest.fixture(scope="module")
def truth_path(tmp_path_factory) -> str:
    p = tmp_path_factory.mktemp("truth") / "m1.json"
    p.write_text(json.dumps(model_to_json(TRUTH)))
    return str(p)


def task(answer, truth_path, method="model"):
    return {"id": "m1", "method": method, "answer": answer, "truth": truth_path}


def test_answer_code_takes_the_block_or_bare_code():
    code = write_code(TRUTH)
    assert answer_code(wrap_answer(code)).strip() == code.strip()
    assert answer_code(code) == code  # an OpenECAD .py file holds bare code
    for bad, reason in (("", "no_code"), ("   \n", "no_code"), (None, "no_code"),
                        ("I cannot see the part, sorry.", "no_code"),
                        ("Of course, here are the codes:\n```python\n" + code[:200], "parse_error")):
        with pytest.raises(CADError) as e:
            answer_code(bad)
        assert e.value.reason == reason


def test_the_truth_as_code_scores_as_the_oracle(truth_path):
    row = score_task(task(wrap_answer(write_code(TRUTH)), truth_path))
    assert row["status"] == "ok"
    assert row["iou"] == pytest.approx(1.0, abs=1e-6)
    assert 0 < row["chamfer"] < 1.0
    assert row["command"] == 1.0 and row["pred_extrudes"] == row["truth_extrudes"] == 2


@pytest.mark.parametrize("answer, reason", [
    ("", "no_code"),
    ("Here is a nice bracket.", "no_code"),
    ("```python\nimport os\nos.system('rm -rf /')\nadd_line()\n```", "parse_error"),
    ("```python\n" + HEAD + "Line0_0_0 = add_line(start= [0., 0.], end= [10.", "parse_error"),  # truncated
    (HEAD + "Line0_0_0 = add_line(start= [0., 0.], end= [10., 0.])\n" + TAIL, "build_error"),  # open loop
    (BOW_TIE, "empty_solid"),  # self-intersecting profile: no volume
    (wrap_answer(write_code(CADModel([box(0, 0, 0.01, 0.01, 0.01),
                                      box(-0.01, -0.01, 0.02, 0.02, 0.01, op=Operation.CUT)]))), "empty_solid"),
    ("\x00\xff" * 50 + "add_", "parse_error"),
])
def test_bad_answers_are_invalid_for_one_reason(answer, reason, truth_path):
    row = score_task(task(answer, truth_path))
    assert row["status"] == reason
    assert row["chamfer"] is None and row["iou"] is None
    assert row["detail"]


def test_parsed_but_unbuildable_code_still_gets_command_accuracy(truth_path):
    row = score_task(task(BOW_TIE, truth_path))
    assert row["status"] == "empty_solid"
    assert row["command"] is not None and row["pred_extrudes"] == 1


def test_unbuildable_truth_is_left_out_not_blamed(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"entities": {}, "sequence": []}')
    row = score_task({"id": "bad", "method": "model", "answer": "x", "truth": str(bad)})
    assert row["status"] == TRUTH_ERROR
    s = summarise([row, dict(row, status="ok", chamfer=1.0, iou=0.5, iou_exact=True, command=1.0,
                             **{k: 1.0 for k in ("curve_type", "extrude_count", "curve_count", "operation",
                                                 "extent_type")})])
    assert s["n"] == 1 and s["n_truth_errors"] == 1


def test_summary_counts_every_sample_and_every_reason():
    ok = {"status": "ok", "chamfer": 0.2, "iou": 0.9, "iou_exact": True}
    cmd = {k: 1.0 for k in ("command", "curve_type", "extrude_count", "curve_count", "operation", "extent_type")}
    rows = [dict(ok, **cmd), dict(ok, chamfer=0.4, iou=0.7, **cmd),
            dict(status="parse_error", chamfer=None, iou=None, iou_exact=None, **{k: None for k in cmd}),
            dict(status="timeout", chamfer=None, iou=None, iou_exact=None, **{k: None for k in cmd}),
            dict(status="empty_solid", chamfer=None, iou=None, iou_exact=None, **dict(cmd, command=0.5))]
    s = summarise(rows)
    assert s["n"] == 5 and s["n_valid"] == 2
    assert s["invalid_ratio"] == pytest.approx(0.6)
    assert set(s["invalid_by_reason"]) == set(INVALID_REASONS)
    assert s["invalid_by_reason"]["parse_error"] == s["invalid_by_reason"]["timeout"] == 1
    assert s["chamfer_median"] == pytest.approx(0.3) and s["iou_mean"] == pytest.approx(0.8)
    assert s["iou_mean_all"] == pytest.approx(1.6 / 5)
    assert s["n_parsed"] == 3 and s["command_accuracy"]["command"] == pytest.approx(2.5 / 3)


def test_candidates_are_the_most_frequent_distinct_codes():
    a, b, c = (wrap_answer(write_code(CADModel([box(0, 0, w, 0.01, 0.01)]))) for w in (0.01, 0.02, 0.03))
    pairs = [("t1", a), ("t2", b), ("t3", b), ("t4", "no code here"), ("t5", c), ("t6", b)]
    got = candidate_answers(pairs, 2, CodeFormat())
    assert got[0] == ("t2", b) and len(got) == 2 and got[1][1] in (a, c)
    assert candidate_answers(pairs, 2, CodeFormat()) == got  # deterministic


def test_sheet_shows_the_best_and_the_worst():
    rows = [{"id": f"m{i}", "status": "ok", "chamfer": float(i)} for i in range(10)]
    rows.append({"id": "bad", "status": "parse_error", "chamfer": None})
    picked = [r["id"] for r in pick_for_sheet(rows, 4)]
    assert picked == ["m0", "m1", "m8", "m9"]
    assert [r["id"] for r in pick_for_sheet(rows[:2] + rows[-1:], 4)] == ["m0", "m1", "bad"]


def test_scoring_in_workers_survives_timeouts(truth_path):
    """A per-sample limit too short for any build: every sample is a timeout, nothing hangs."""
    answer = wrap_answer(write_code(TRUTH))
    rows = score_answers([task(answer, truth_path), task("garbage", truth_path)],
                         ScoreConfig(workers=1, timeout_s=0.002, progress=False), CodeFormat())
    assert [r["status"] for r in rows] == ["timeout", "timeout"]
    rows = score_answers([task(answer, truth_path), task("garbage", truth_path)],
                         ScoreConfig(workers=2, timeout_s=60, progress=False), CodeFormat())
    assert [r["status"] for r in rows] == ["ok", "no_code"]


def test_cadvlm_score_on_openecad_outputs(deepcad_dir, tmp_path, monkeypatch):
    """OpenECAD's own code for the real samples scores like the oracle on the buildable ones
    (no model folder here: the default language is OpenECAD v2)."""
    from cadvlm.cli import main

    monkeypatch.chdir(tmp_path)
    pred = tmp_path / "pred"
    pred.mkdir()
    ids = ["00000007", "00003877", "00005081", "00000175"]  # 00000175 has no buildable truth
    for i in ids:
        text = (deepcad_dir / "openecad_v2" / f"{i}.py").read_text()
        # one wrapped like a model answer, the others bare
        (pred / f"{i}.py").write_text(wrap_answer(text) if i == "00003877" else text)
    (pred / "99999999.py").write_text("no truth for this one")
    out = tmp_path / "m.json"
    assert main(["score", "--pred", str(pred), "--truth", str(deepcad_dir / "json"), "--json", str(out),
                 "--samples", str(tmp_path / "s.csv"), "--workers", "1"]) == 0
    m = json.loads(out.read_text())
    assert m["n"] == 3 and m["invalid_ratio"] == 0.0 and m["n_truth_errors"] == 1
    assert m["iou_mean"] > 0.9999 and m["chamfer_median"] < 0.5
    assert m["command_accuracy"]["command"] == 1.0
    assert (tmp_path / "s.csv").read_text().count("\n") == 5  # header + 4 samples


def test_cadvlm_score_reads_compact_answers(deepcad_dir, tmp_path, monkeypatch):
    """--format compact: the truth written as compact code scores at the 8-bit floor; a
    garbled answer is invalid with its reason. Without --format, a compact model folder in the
    working directory makes compact the default."""
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.cli import main
    from cadvlm.codec.compact import write_compact

    pred = tmp_path / "pred"
    pred.mkdir()
    code = write_compact(read_model(deepcad_dir / "json" / "00000007.json", "00000007"))
    (pred / "00000007.txt").write_text(wrap_answer(code))
    (pred / "00003877.py").write_text(code.replace("loop", "lop"))
    out = tmp_path / "m.json"
    assert main(["score", "--pred", str(pred), "--truth", str(deepcad_dir / "json"), "--json", str(out),
                 "--format", "compact", "--oracle", "--workers", "1"]) == 0
    m = json.loads(out.read_text())
    assert m["n"] == 2 and m["invalid_ratio"] == 0.5 and m["invalid_by_reason"]["parse_error"] == 1
    assert m["iou_mean"] > 0.9 and m["chamfer_median"] < 1.0
    assert m["baselines"]["oracle"]["invalid_ratio"] == 0.0

    from cadvlm.model.manifest import ModelManifest

    monkeypatch.chdir(tmp_path)
    ModelManifest("full", None, code=CodeFormat("compact")).write("models")
    assert main(["score", "--pred", str(pred), "--truth", str(deepcad_dir / "json"), "--json", str(out),
                 "--workers", "1"]) == 0
    assert json.loads(out.read_text())["n_valid"] == 1
    assert main(["score", "--pred", str(pred), "--truth", str(deepcad_dir / "json"), "--json", str(out),
                 "--workers", "1", "--format", "openecad"]) == 0
    reasons = json.loads(out.read_text())["invalid_by_reason"]  # compact text read as OpenECAD
    assert reasons["parse_error"] == 1 and reasons["no_code"] == 1


def test_cadvlm_score_refuses_bad_folders(tmp_path, capsys):
    from cadvlm.cli import main

    assert main(["score", "--pred", str(tmp_path / "nope"), "--truth", str(tmp_path)]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "p").mkdir()
    assert main(["score", "--pred", str(tmp_path / "p"), "--truth", str(tmp_path)]) == 2


def test_flat_predictions_find_nested_truths(deepcad_dir, tmp_path):
    """OpenECAD outputs named <id>.py against DeepCAD's cad_json/<folder>/<id>.json layout."""
    import shutil

    from cadvlm.eval.command import match_truths

    (tmp_path / "cad_json" / "0000").mkdir(parents=True)
    for i in ("00000007", "00003877"):
        shutil.copy(deepcad_dir / "json" / f"{i}.json", tmp_path / "cad_json" / "0000" / f"{i}.json")
    preds = {"00000007": Path("a.py"), "0000/00003877": Path("b.py"), "12345678": Path("c.py")}
    preds["00000007_3"] = Path("d.py")  # the fourth sample for 00000007
    got, shapes = match_truths(preds, tmp_path / "cad_json")
    assert got == {"00000007": tmp_path / "cad_json" / "0000" / "00000007.json",
                   "0000/00003877": tmp_path / "cad_json" / "0000" / "00003877.json",
                   "00000007_3": tmp_path / "cad_json" / "0000" / "00000007.json"}
    assert shapes == {"00000007": "00000007", "0000/00003877": "0000/00003877", "00000007_3": "00000007"}
