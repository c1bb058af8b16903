"""The CadQuery reader: hand-written scripts in both styles build the volumes worked out by hand,
the hostile corpus is refused with nothing run, and the format is wired where formats are named."""

import math
from pathlib import Path

import pytest

from cadvlm.cad.model import CADError, ExtentType, Operation
from cadvlm.codec.answer import CodeParseError
from cadvlm.codec.cadquery_reader import parse_cadquery
from cadvlm.codec.format import CodeFormat
from cadvlm.geometry.solid import build_solid, volume
from cadquery_scripts import MARKER, SCRIPTS, hostile


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_hand_written_scripts_build_the_volume_worked_out_by_hand(name):
    script, expected_mm3 = SCRIPTS[name]
    model = parse_cadquery(script, name)
    got_mm3 = volume(build_solid(model)) * 1e9
    assert got_mm3 == pytest.approx(expected_mm3, rel=1e-6), name


def test_booleans_become_the_sequence_cadquery_means():
    model = parse_cadquery(SCRIPTS["offset_workplane_cut"][0])
    assert [e.operation for e in model.extrudes] == [Operation.NEW_BODY, Operation.CUT]
    cut = model.extrudes[1]
    assert cut.plane.origin == pytest.approx([0.010, 0.010, 0.010])  # offset 10 mm, centre (10, 10), in metres
    assert cut.extent_one == pytest.approx(-0.004)
    model = parse_cadquery(SCRIPTS["intersect_two_sides"][0])
    assert [e.operation for e in model.extrudes] == [Operation.NEW_BODY, Operation.JOIN, Operation.INTERSECT]
    assert model.extrudes[2].extent_type == ExtentType.SYMMETRIC
    assert list(model.extrudes[2].plane.normal) == [1.0, 0.0, 0.0]  # 'YZ'


def test_a_hole_is_a_loop_of_the_profile_not_an_extra_body():
    model = parse_cadquery(SCRIPTS["sketch_segments_and_hole"][0])
    assert len(model.extrudes) == 1 and len(model.extrudes[0].profile.loops) == 2
    model = parse_cadquery(SCRIPTS["plate_with_hole"][0])
    assert len(model.extrudes) == 1 and len(model.extrudes[0].profile.loops) == 2


@pytest.mark.parametrize("name", sorted(hostile("x")))
def test_hostile_programs_are_refused_and_nothing_runs(name, tmp_path):
    marker = tmp_path / MARKER
    with pytest.raises(CADError) as info:
        parse_cadquery(hostile(str(marker))[name], name)
    assert info.value.reason in ("parse_error", "no_extrude"), info.value
    assert not marker.exists()
    assert not Path("x.step").exists()


@pytest.mark.parametrize("script, words", [
    ("import cadquery as cq\nr = cq.Workplane('XY').moveTo(0, 0).lineTo(1, 0).lineTo(1, 1).extrude(1)\n", "open wire"),
    ("import cadquery as cq\nr = cq.Workplane('XY').rect(10, 10).extrude(0)\n", "zero depth"),
    ("import cadquery as cq\na = cq.Workplane('XY').rect(10, 10).extrude(1)\n"
     "b = cq.Workplane('XY').rect(4, 4).extrude(3).cut(cq.Workplane('XY').circle(1).extrude(3))\nr = a.union(b)\n",
     "itself cut"),
    ("import cadquery as cq\nr = cq.Workplane('XY').sketch().rect(10, 10).push([(5, 0)]).circle(2, mode='s')"
     ".finalize().extrude(1)\n", "exactly one face"),
    ("import cadquery as cq\nr = cq.Workplane('XY').circle(3)\n", "no solid"),
    ("import cadquery as cq\nr = cq.Workplane('QQ').circle(3).extrude(1)\n", "unknown plane"),
    ("import cadquery as cq\nr = cq.Workplane('XY').rect(10, 10).extrude(1).workplane().circle(1).extrude(2)\n",
     "face selection"),
])
def test_what_has_no_sketch_and_extrude_meaning_is_refused_saying_why(script, words):
    with pytest.raises(CADError, match=words):
        parse_cadquery(script)


def test_the_cadquery_format_reads_answers_and_bare_files():
    code = SCRIPTS["plate_with_hole"][0]
    fmt = CodeFormat("cadquery")
    assert fmt.describe() == "CadQuery"
    bare = fmt.parse_answer(code, "bare")
    fenced = fmt.parse_answer(f"Here is the part:\n```python\n{code}```", "fenced")
    assert len(bare.extrudes) == len(fenced.extrudes) == 1
    with pytest.raises(CADError, match="no_code"):
        fmt.parse_answer("I cannot draw that.")
    assert CodeFormat.from_json(fmt.to_json()) == fmt


def test_numbers_are_millimetres_and_models_are_metres():
    model = parse_cadquery("import cadquery as cq\nr = cq.Workplane('XY').circle(5).extrude(2)\n")
    (circle,) = model.extrudes[0].profile.loops[0].curves
    assert circle.radius == pytest.approx(0.005) and model.extrudes[0].extent_one == pytest.approx(0.002)
    assert math.isclose(volume(build_solid(model)) * 1e9, math.pi * 25 * 2, rel_tol=1e-9)


def test_cadvlm_score_reads_cadquery_and_counts_the_conventions(tmp_path):
    """Peers' CadQuery folders are scored without running them: two shapes with two samples each,
    one of which never builds; per prediction 3 of 4 are invalid-free, per shape none is invalid,
    best of N keeps the exact answer, DeepCAD's scale charges an offset that the unit cube forgives."""
    import json

    from cadvlm.cad.deepcad_json import model_to_json
    from cadvlm.cli import main

    truth = tmp_path / "truth"
    truth.mkdir()
    plate = SCRIPTS["plate_with_hole"][0]
    block = "import cadquery as cq\nr = cq.Workplane('XY').box(10, 20, 30)\n"
    for sid, script in (("a", plate), ("b", block)):
        (truth / f"{sid}.json").write_text(json.dumps(model_to_json(parse_cadquery(script, sid))))
    pred = tmp_path / "pred"
    pred.mkdir()
    (pred / "a_0.py").write_text(plate)
    (pred / "a_1.py").write_text(plate.replace("rect(40, 20)", "rect(40, 24)"))
    (pred / "b_0.py").write_text("import cadquery as cq\nimport os\n")  # refused: counted invalid
    (pred / "b_1.py").write_text(f"```python\n{block.replace('box(10, 20, 30)', 'box(10, 20, 30).translate((5, 0, 0))')}```")
    (pred / "b_2.txt").write_text(block.replace("cq.Workplane('XY')", "cq.Workplane('XY', origin=(5, 0, 0))"))
    out = tmp_path / "m.json"
    assert main(["score", "--pred", str(pred), "--truth", str(truth), "--json", str(out), "--format", "cadquery",
                 "--workers", "1", "--deepcad-scale"]) == 0
    m = json.loads(out.read_text())
    assert m["n"] == 5 and m["invalid_ratio"] == 0.4 and m["invalid_by_reason"]["parse_error"] == 2
    conv = m["conventions"]
    assert conv["per_shape"] == {"n_shapes": 2, "predictions_per_shape_max": 3, "invalid_ratio": 0.0}
    assert conv["best_of_n"]["n_valid"] == 2 and conv["best_of_n"]["iou_mean"] > 0.9999
    # b_2 is the block moved by 5 mm: the unit-cube protocol normalises that away, DeepCAD's does not
    assert m["chamfer_median"] < 0.5 and conv["deepcad_scale"]["chamfer_mean"] > 10 * m["chamfer_mean"]
