"""The synthetic generator: deterministic, always buildable, DeepCAD-like, round-trips through JSON."""

import json
import runpy
import time
from pathlib import Path

import numpy as np
import pytest

from cadvlm.cad.deepcad_json import dumps, model_to_json, read_model
from cadvlm.cad.limits import check_limits
from cadvlm.cad.model import Arc, CADError, Circle, Line
from cadvlm.geometry.solid import build_solid, count, is_valid
from cadvlm.synth import SynthConfig, generate, model_id, model_json_text, write_dataset
from cadvlm.synth import dataset
from cadvlm.synth import shapes as sh
from cadvlm.synth.frames import CANON_X
from cadvlm.synth.generate import FEATURE_ADDERS, FEATURES, round_floats
from cadvlm.synth.stats import StatsAccumulator
from conftest import map_on_cores

ROOT = Path(__file__).resolve().parents[1]


def _buildable(args: tuple) -> None:
    from OCP.TopAbs import TopAbs_SOLID

    i, seed = args
    text = model_json_text(i, seed)
    model = read_model(json.loads(text), model_id(i))
    check_limits(model)
    shape = build_solid(model)
    assert is_valid(shape), i
    assert count(shape, TopAbs_SOLID) == 1, i


def _check_buildable(indices, seed=0):
    map_on_cores(_buildable, [(i, seed) for i in indices])


# ------------------------------------------------------------------ determinism


def test_same_index_same_bytes_and_seed_matters():
    a, b = model_json_text(7, seed=0), model_json_text(7, seed=0)
    assert a == b
    assert model_json_text(7, seed=1) != a
    assert json.loads(a)["properties"]["bounding_box"]["type"] == "BoundingBox3D"


def test_growing_the_set_keeps_earlier_files(tmp_path):
    write_dataset(tmp_path / "small", 4, seed=3, workers=1, progress=False)
    write_dataset(tmp_path / "big", 7, seed=3, workers=1, progress=False)
    small = sorted(p.name for p in (tmp_path / "small").glob("*.json"))
    assert small == [f"s000000{i}.json" for i in range(4)]
    for name in small:
        assert (tmp_path / "small" / name).read_bytes() == (tmp_path / "big" / name).read_bytes()
    # shrinking removes the files that are no longer in the set
    write_dataset(tmp_path / "big", 2, seed=3, workers=1, progress=False)
    assert sorted(p.name for p in (tmp_path / "big").glob("*.json")) == small[:2]
    assert not list((tmp_path / "big").glob("*.tmp"))


def test_parallel_workers_write_the_same_bytes(tmp_path):
    m1 = write_dataset(tmp_path / "one", 6, seed=1, workers=1, progress=False)
    m = write_dataset(tmp_path / "two", 6, seed=1, workers=2, progress=False)
    for p in (tmp_path / "one").glob("*.json"):
        assert p.read_bytes() == (tmp_path / "two" / p.name).read_bytes()
    assert m["models"] == 6
    assert m == m1  # the statistics too: results are counted in index order, whoever finishes first


def _never_finishes_model_2(args):
    """A synthesize task whose model 2 never comes back (stands for a boolean that runs for hours)."""
    if args[0] == 2:
        time.sleep(3600)
    return dataset._generate_one(args)


@pytest.mark.timeout(180)
def test_a_model_past_the_time_limit_is_killed_and_counted(tmp_path, monkeypatch):
    (tmp_path / "s0000002.json").write_text("{}")  # model 2's file from an earlier run must not survive
    monkeypatch.setattr(dataset, "_generate_one", _never_finishes_model_2)  # sent to the workers by name
    t = time.perf_counter()
    m = write_dataset(tmp_path, 4, seed=0, workers=2, progress=False, timeout_s=8)
    assert time.perf_counter() - t < 120  # the stage goes on: the stuck worker is killed at the limit
    assert m["models"] == 3 and m["skipped"] == {"timeout": 1}
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == [model_id(i) for i in (0, 1, 3)]
    for i in (0, 1, 3):
        assert (tmp_path / f"{model_id(i)}.json").read_text() == model_json_text(i, seed=0)


def test_a_limit_no_model_can_meet_skips_them_all(tmp_path):
    m = write_dataset(tmp_path, 3, seed=0, workers=1, progress=False, timeout_s=0.001)
    assert m["models"] == 0 and m["skipped"] == {"timeout": 3}
    assert not list(tmp_path.glob("*.json"))


# ------------------------------------------------------------------ validity


def test_fifty_models_build_one_valid_solid_each():
    _check_buildable(range(50))


@pytest.mark.slow
def test_thousand_models_build_one_valid_solid_each():
    _check_buildable(range(1000), seed=11)


def test_every_extrude_changes_the_solid():
    from cadvlm.cad.model import CADModel
    from cadvlm.geometry.solid import volume

    for i in range(40):
        m = generate(i).model
        vols = [volume(build_solid(CADModel(m.extrudes[:k]), unify=False)) for k in range(1, len(m.extrudes) + 1)]
        assert all(abs(b - a) > 1e-6 * max(a, b) for a, b in zip(vols, vols[1:])), i


def test_no_valid_draw_is_a_cad_error_and_the_stage_counts_it(tmp_path):
    cfg = SynthConfig(max_attempts=0)
    with pytest.raises(CADError) as err:
        generate(0, config=cfg)
    assert err.value.reason == "synth_failed" and err.value.model_id == "s0000000"
    m = write_dataset(tmp_path, 3, config=cfg, workers=1, progress=False)
    assert m["models"] == 0 and m["skipped"] == {"synth_failed": 3}
    assert not list(tmp_path.glob("*.json"))


# ------------------------------------------------------------------ what the parts look like


@pytest.fixture(scope="module")
def sample():
    return [generate(i, seed=5) for i in range(150)]


def test_statistics_are_deepcad_like(sample):
    acc = StatsAccumulator()
    for g in sample:
        acc.add(g)
    m = acc.metrics()
    n = m["models"]
    ex = {int(k): v for k, v in m["extrudes_per_model"].items()}
    assert 0.35 <= ex.get(1, 0) / n <= 0.65  # about half are a single extrude
    assert max(ex) >= 5  # with a long tail
    curves = m["curve_share"]
    assert curves["Line"] > max(curves["Arc"], curves["Circle"]) and curves["Arc"] > 0.05 and curves["Circle"] > 0.08
    ops = m["operation_share"]
    assert ops["NEW_BODY"] > 0.3 and ops["JOIN"] > 0.08 and ops["CUT"] > 0.15 and ops.get("INTERSECT", 0) < 0.05
    ext = m["extent_share"]
    assert ext["ONE_SIDE"] > 0.75 and ext["SYMMETRIC"] > 0.03 and ext["TWO_SIDES"] > 0.01
    assert m["loops_per_profile"]["1"] > 0.6 * sum(m["loops_per_profile"].values())
    assert 5.0 <= m["size_mm"]["min"] and m["size_mm"]["max"] <= 1000.0  # millimetre-scale parts in metres
    assert set(m["units"]) == {"mm", "inch"}


def test_sketch_planes_follow_deepcad_conventions(sample):
    normals = set()
    for g in sample:
        for ex in g.model.extrudes:
            n, x = ex.plane.normal, ex.plane.x_axis
            assert abs(n @ x) < 1e-9 and abs(np.linalg.norm(n) - 1) < 1e-9
            key = tuple(int(round(v)) for v in n)
            if np.allclose(n, key) and sum(map(abs, key)) == 1:
                normals.add(key)
                assert tuple(int(round(v)) for v in x) == CANON_X[key]
    # principal planes incl. the -Y front plane, and sketches on faces off the origin
    assert {(0, 0, 1), (0, -1, 0), (1, 0, 0)} <= normals
    offsets = [ex.plane.origin for g in sample for ex in g.model.extrudes[1:]]
    assert any(np.linalg.norm(o) > 0 for o in offsets)


def test_values_are_rounded_like_designed_parts(sample):
    """Plates and extents come out as nice millimetre or inch numbers."""
    nice = 0
    total = 0
    for g in sample:
        for ex in g.model.extrudes:
            for v in (ex.extent_one, ex.extent_two):
                if v:
                    mm = abs(v) * 1000
                    total += 1
                    nice += min(abs(mm - round(mm * 10) / 10), abs(mm / 25.4 * 64 - round(mm / 25.4 * 64))) < 1e-6
    assert nice / total > 0.95


def test_json_round_trip_through_the_reader(sample):
    for g in sample[:40]:
        again = round_floats(model_to_json(g.model))
        again["properties"] = g.data["properties"]
        back = read_model(again, g.model_id)
        assert len(back.extrudes) == len(g.model.extrudes)
        for a, b in zip(back.extrudes, g.model.extrudes):
            assert (a.operation, a.extent_type) == (b.operation, b.extent_type)
            assert a.extent_one == pytest.approx(b.extent_one, abs=1e-9)
            assert np.allclose(a.plane.origin, b.plane.origin, atol=1e-9)
            for la, lb in zip(a.profile.loops, b.profile.loops):
                assert [type(c) for c in la.curves] == [type(c) for c in lb.curves]
                assert np.allclose(la.points(), lb.points(), atol=1e-7)
        # the file written is the reader's input: writing what was read gives the same file
        # up to the last digits of arc angles recomputed from points
        assert json.loads(dumps(again)).keys() == g.data.keys()


# ------------------------------------------------------------------ the stage


def test_stage_writes_files_and_metrics(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text(
        "base:\n  seed: 0\nsynthesize:\n  n_models: 5\n  workers: 1\n  imperial_fraction: 0.5\n")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(ROOT / "stages" / "synthesize.py"), run_name="__main__")
    files = sorted((tmp_path / "data" / "raw" / "synthetic").glob("*.json"))
    assert [p.stem for p in files] == [model_id(i) for i in range(5)]
    m = json.loads((tmp_path / "metrics" / "synthesize.json").read_text())
    assert m["models"] == 5 and sum(m["extrudes_per_model"].values()) == 5
    assert files[0].read_text() == model_json_text(0, 0, SynthConfig(imperial_fraction=0.5))


def test_every_feature_has_its_adder():
    assert list(FEATURE_ADDERS) == list(FEATURES)


def test_config_from_params_ignores_stage_keys():
    cfg = SynthConfig.from_params({"n_models": 3, "workers": 2, "extrude_weights": [1, 1], "check_effect": False})
    assert cfg.extrude_weights == (1.0, 1.0) and cfg.check_effect is False


# ------------------------------------------------------------------ shapes


def test_polygon_loop_fillets_and_chamfers_close():
    loop = sh.polygon_loop([(0, 0), (20, 0), (20, 10), (0, 10)], [("fillet", 3), None, ("chamfer", 2), ("fillet", 4)])
    assert sum(isinstance(c, Arc) for c in loop) == 2 and len(loop) == 7
    for a, b in zip(loop, loop[1:] + loop[:1]):
        assert np.allclose(a.end, b.start)
    radii = sorted(c.circle()[1] for c in loop if isinstance(c, Arc))
    assert radii == pytest.approx([3.0, 4.0])
    # a fillet that would need more than about half an edge leaves the corner sharp
    too_big = sh.polygon_loop([(0, 0), (20, 0), (20, 10), (0, 10)], [("fillet", 6)] * 4)
    assert all(isinstance(c, Line) for c in too_big) and len(too_big) == 4
    # repeated and collinear vertices are dropped
    assert len(sh.polygon_loop([(0, 0), (5, 0), (10, 0), (10, 10), (10, 10), (0, 10)])) == 4


def test_obround_and_normalized_loops():
    ob = sh.normalize_loop(sh.obround(30, 10, 5, 5))
    assert [type(c) for c in ob].count(Arc) == 2 and [type(c) for c in ob].count(Line) == 2
    assert sh.signed_area(sh.loop_polygon(ob)) > 0
    starts = [tuple(c.start) for c in ob]
    assert starts[0] == min(starts)
    cw = [c.reversed() for c in reversed(sh.rect(4, 2))]
    assert sh.signed_area(sh.loop_polygon(sh.normalize_loop(cw))) > 0
    assert isinstance(sh.circle(2)[0], Circle)


def test_fits_inside_respects_margin_and_taken_areas():
    outer = sh.loop_polygon(sh.rect(40, 20))
    hole = sh.loop_polygon(sh.circle(3, 0, 0))
    assert sh.fits_inside(hole, outer, [], 1.0)
    assert not sh.fits_inside(sh.loop_polygon(sh.circle(3, 19, 0)), outer, [], 1.0)  # crosses the edge
    assert not sh.fits_inside(sh.loop_polygon(sh.circle(3, 2, 0)), outer, [hole], 1.0)  # overlaps a hole
    assert sh.fits_inside(sh.loop_polygon(sh.circle(3, 10, 0)), outer, [hole], 1.0)


def test_units_give_nice_numbers():
    mm, inch = sh.Units("mm"), sh.Units("inch")
    rng = np.random.default_rng(0)
    for _ in range(50):
        v = mm.length(rng, 10, 200)
        assert v == pytest.approx(round(v))
        w = inch.length(rng, 10, 200) / 25.4
        assert w * 16 == pytest.approx(round(w * 16))
    assert mm.hole_diameter(rng, 5.1, 5.9) == 5.5 and mm.hole_diameter(rng, 0.1, 0.2) is None
