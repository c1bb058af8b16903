"""DeepCAD JSON reader semantics and its error handling, on real samples and mutated copies."""

import copy
import json
import math

import numpy as np
import pytest

from cadvlm.cad.deepcad_json import chain_loop, model_to_json, read_model
from cadvlm.cad.limits import Limits, check_limits, n_commands, normalize, quantize
from cadvlm.cad.model import Arc, CADError, Circle, ExtentType, Line, Operation


def load(deepcad_dir, mid):
    return json.loads((deepcad_dir / "json" / f"{mid}.json").read_text())


# Counts from ../shared/deepcad/README.md (extrudes after the one-per-profile split).
EXPECTED = {
    "00000007": (1, 1), "00001005": (7, 10), "00001010": (2, 9), "00001616": (9, 33),
    "00003763": (4, 5), "00003877": (2, 7), "00003999": (5, 32), "00004691": (32, 50),
    "00015361": (47, 176), "00529152": (3, 15),
}


@pytest.mark.parametrize("mid", sorted(EXPECTED))
def test_counts_match_the_dataset_readme(deepcad_dir, mid):
    m = read_model(deepcad_dir / "json" / f"{mid}.json")
    assert (len(m.extrudes), m.n_curves()) == EXPECTED[mid]
    assert m.model_id == mid


def test_loops_are_chained_end_to_start(deepcad_dir):
    for path in sorted((deepcad_dir / "json").glob("*.json")):
        try:
            m = read_model(path)
        except CADError:
            continue
        for ex in m.extrudes:
            for lp in ex.profile.loops:
                if isinstance(lp.curves[0], Circle):
                    continue
                for a, b in zip(lp.curves, lp.curves[1:] + lp.curves[:1]):
                    assert np.allclose(a.end, b.start, atol=1e-6), path.name


def test_outer_loop_first_contains_the_holes(deepcad_dir):
    m = read_model(deepcad_dir / "json" / "00001010.json")
    loops = m.extrudes[0].profile.loops
    assert len(loops) == 4
    lo0, hi0 = loops[0].bbox()
    for lp in loops[1:]:
        lo, hi = lp.bbox()
        assert np.all(lo >= lo0) and np.all(hi <= hi0)


def test_multi_profile_newbody_becomes_join(deepcad_dir):
    data = load(deepcad_dir, "00003877")
    ext = data["entities"]["Fz5ZkhSFew6soRB_0"]
    ext["profiles"].append({"profile": "JJC", "sketch": "FR6JugW7scIQZrM_1"})
    m = read_model(data, "x")
    assert [e.operation for e in m.extrudes] == [Operation.NEW_BODY, Operation.JOIN, Operation.CUT]


def test_unreferenced_sketch_is_ignored(deepcad_dir):
    m = read_model(deepcad_dir / "json" / "00809394.json")
    assert len(m.extrudes) == 1 and m.n_curves() == 2


def test_symmetric_and_two_sides_depths():
    from cadvlm.cad.model import Extrude, Loop, Plane, Profile

    prof = Profile([Loop([Circle([0, 0], 1.0)])])
    pl = Plane([0, 0, 0], [1, 0, 0], [0, 0, 1])
    assert Extrude(pl, prof, extent_type=ExtentType.SYMMETRIC, extent_one=-2.0).depth_range() == (-2.0, 2.0)
    assert Extrude(pl, prof, extent_type=ExtentType.TWO_SIDES, extent_one=3.0, extent_two=1.0).depth_range() == (-1.0, 3.0)
    # Both sides pointing the same way (real data does this): the longer prism wins.
    assert Extrude(pl, prof, extent_type=ExtentType.TWO_SIDES, extent_one=-2.0, extent_two=2.0).depth_range() == (-2.0, 0.0)
    assert Extrude(pl, prof, extent_one=-0.5).depth_range() == (-0.5, 0.0)


def test_arc_from_reference_vector_and_sweep():
    from cadvlm.cad.deepcad_json import read_curve

    c = {"type": "Arc3D", "start_point": {"x": 1.0, "y": 0.0}, "end_point": {"x": 0.0, "y": 1.0},
         "center_point": {"x": 0.0, "y": 0.0}, "radius": 1.0, "start_angle": 0.0, "end_angle": math.pi / 2,
         "reference_vector": {"x": 1.0, "y": 0.0}}
    arc = read_curve(c, "arc")
    assert isinstance(arc, Arc) and arc.ccw
    assert np.allclose(arc.mid, [math.sqrt(0.5), math.sqrt(0.5)])
    assert math.isclose(arc.sweep(), math.pi / 2)


def test_chain_reverses_and_reorders_curves():
    sq = [Line([0, 0], [1, 0]), Line([0, 1], [1, 1]), Line([1, 1], [1, 0]), Line([0, 1], [0, 0])]
    lp = chain_loop(sq)
    for a, b in zip(lp.curves, lp.curves[1:] + lp.curves[:1]):
        assert np.allclose(a.end, b.start)


def test_writer_round_trip(deepcad_dir):
    for path in sorted((deepcad_dir / "json").glob("*.json")):
        try:
            m = read_model(path)
        except CADError:
            continue
        again = read_model(json.loads(json.dumps(model_to_json(m))), m.model_id)
        assert len(again.extrudes) == len(m.extrudes)
        for a, b in zip(m.extrudes, again.extrudes):
            assert (a.operation, a.extent_type) == (b.operation, b.extent_type)
            assert math.isclose(a.extent_one, b.extent_one) and math.isclose(a.extent_two, b.extent_two)
            assert np.allclose(a.plane.origin, b.plane.origin) and np.allclose(a.plane.normal, b.plane.normal)
            for la, lb in zip(a.profile.loops, b.profile.loops):
                # A clockwise arc is written counter-clockwise (DeepCAD's convention), which can
                # flip the direction of its loop: compare the loops as point sets.
                pa, pb = (np.unique(lp.points().round(9), axis=0) for lp in (la, lb))
                assert np.allclose(pa, pb, atol=1e-9), path.name


def test_limits_match_the_dataset_readme(deepcad_dir):
    over = {"00000069", "00001011", "00004691", "00015361"}
    for path in sorted((deepcad_dir / "json").glob("*.json")):
        try:
            m = read_model(path)
        except CADError as exc:
            assert exc.reason == "no_extrude" and path.stem in {"00000175", "00000176"}
            continue
        if path.stem in over:
            with pytest.raises(CADError, match="over_limits"):
                check_limits(m)
        else:
            check_limits(m)
    m = read_model(deepcad_dir / "json" / "00003877.json")
    assert n_commands(m) == 7 + 2 + 2 + 1
    with pytest.raises(CADError):
        check_limits(m, Limits(max_curves=5))


def test_normalise_and_quantise(deepcad_dir):
    m = normalize(read_model(deepcad_dir / "json" / "00003999.json"))
    pts = np.concatenate([e.plane.to_global(lp.points()) for e in m.extrudes for lp in e.profile.loops])
    assert np.abs(pts).max() <= 0.75 + 1e-9
    q = quantize(m, bits=8)
    ends = [c.start for e in q.extrudes for lp in e.profile.loops for c in lp.curves if isinstance(c, Line)]
    grid = (np.array(ends) + 1) / 2 * 255
    assert np.allclose(grid, np.round(grid))


# ---- bad input: a corpus of broken files made by mutating a real sample --------------------


def _mutations(data):
    ent = data["entities"]
    sk = ent["FvqT0Llm0TkI5qe_0"]
    ex = ent["Fz5ZkhSFew6soRB_0"]
    curves = lambda d: d["entities"]["FvqT0Llm0TkI5qe_0"]["profiles"]["JGC"]["loops"][0]["profile_curves"]

    def m(f):
        d = copy.deepcopy(data)
        f(d)
        return d

    yield "missing_key", m(lambda d: d.pop("sequence"))
    yield "missing_key", m(lambda d: d["entities"]["FvqT0Llm0TkI5qe_0"].pop("transform"))
    yield "missing_key", m(lambda d: curves(d)[0].pop("end_point"))
    yield "unsupported_curve", m(lambda d: curves(d)[0].update(type="NurbsCurve3D"))
    yield "open_loop", m(lambda d: curves(d).pop(2))
    yield "zero_length_curve", m(lambda d: curves(d)[1].update(end_point=dict(curves(d)[1]["start_point"])))
    yield "zero_extent", m(lambda d: d["entities"]["Fz5ZkhSFew6soRB_0"]["extent_one"]["distance"].update(value=0.0))
    yield "no_extrude", m(lambda d: [d["entities"][k].update(profiles=[]) for k in
                                     ("Fz5ZkhSFew6soRB_0", "F8dMsQ0VNGp1h7Y_1")])
    yield "unsupported_feature", m(lambda d: d["entities"]["Fz5ZkhSFew6soRB_0"].update(operation="Foo"))
    yield "bad_value", m(lambda d: curves(d)[0]["start_point"].update(x="a"))
    yield "bad_plane", m(lambda d: d["entities"]["FvqT0Llm0TkI5qe_0"]["transform"]["x_axis"].update(x=2.0))

    def cross(d):  # swap two corners of the L: the outline crosses itself
        c = curves(d)
        c[3]["end_point"], c[4]["start_point"] = {"x": 0.003, "y": 0.012, "z": 0}, {"x": 0.003, "y": 0.012, "z": 0}
        c[4]["end_point"], c[5]["end_point"] = {"x": 0.006, "y": -0.002, "z": 0}, {"x": 0.006, "y": -0.002, "z": 0}

    yield "self_crossing_loop", m(cross)
    assert sk and ex


def test_broken_corpus_gives_typed_errors(deepcad_dir):
    data = load(deepcad_dir, "00003877")
    seen = set()
    for reason, broken in _mutations(data):
        with pytest.raises(CADError) as info:
            read_model(broken, "broken")
        assert info.value.reason == reason, (reason, str(info.value))
        assert "broken" in str(info.value)
        seen.add(reason)
    assert len(seen) == 10


def test_malformed_files(tmp_path):
    (tmp_path / "a.json").write_text('{"entities": {')
    (tmp_path / "b.json").write_bytes(b"\xff\xfe\x00")
    (tmp_path / "c.json").write_text("[1, 2]")
    for name in ("a", "b", "c"):
        with pytest.raises(CADError) as info:
            read_model(tmp_path / f"{name}.json")
        assert info.value.reason == "malformed_json" and info.value.model_id == name
    with pytest.raises(CADError, match="unreadable_file"):
        read_model(tmp_path / "missing.json")


# ---- references: every id a file names must resolve -----------------------------------------

SKETCH0, EXTRUDE0, SKETCH1, EXTRUDE1 = "FvqT0Llm0TkI5qe_0", "Fz5ZkhSFew6soRB_0", "FR6JugW7scIQZrM_1", "F8dMsQ0VNGp1h7Y_1"


def _dangling(data):
    """(what was changed, the id the message must name, broken copy) for each kind of reference."""

    def m(f):
        d = copy.deepcopy(data)
        f(d)
        return d

    # a sequence item naming no entity: an extrude step, and a sketch step (built anyway before)
    yield "sequence extrude", "Gone_9", m(lambda d: d["sequence"][3].update(entity="Gone_9"))
    yield "sequence sketch", "Gone_8", m(lambda d: d["sequence"][2].update(entity="Gone_8"))
    # a sequence item naming an entity of another type
    yield "sequence type", SKETCH1, m(lambda d: d["sequence"][3].update(entity=SKETCH1))
    yield "sequence non-string id", "[1, 2]", m(lambda d: d["sequence"][1].update(entity=[1, 2]))
    # an extrude profile naming a missing sketch, a non-sketch, or a profile its sketch lacks
    yield "extrude sketch", "NoSketch", m(lambda d: d["entities"][EXTRUDE0]["profiles"][0].update(sketch="NoSketch"))
    yield "extrude sketch type", EXTRUDE1, m(lambda d: d["entities"][EXTRUDE0]["profiles"][0].update(sketch=EXTRUDE1))
    yield "extrude profile", "JZZ", m(lambda d: d["entities"][EXTRUDE1]["profiles"][0].update(profile="JZZ"))
    # a profile that exists, but in another sketch
    yield "profile of another sketch", "JJC", m(lambda d: d["entities"][EXTRUDE0]["profiles"][0].update(profile="JJC"))
    yield "extrude profile id type", "None", m(lambda d: d["entities"][EXTRUDE0]["profiles"][0].update(profile=None))


def test_every_dangling_reference_is_a_typed_error_naming_model_and_id(deepcad_dir):
    data = load(deepcad_dir, "00003877")
    read_model(data, "ok")  # the unmodified file reads
    cases = list(_dangling(data))
    assert len(cases) == 9
    for what, missing, broken in cases:
        with pytest.raises(CADError) as info:
            read_model(broken, "m1")
        err = info.value
        assert err.reason == "bad_reference", (what, str(err))
        assert err.model_id == "m1" and str(err).startswith("m1: bad_reference: "), what
        assert missing in str(err), (what, str(err))


def test_dangling_reference_messages_say_who_refers(deepcad_dir):
    data = load(deepcad_dir, "00003877")
    broken = {what: b for what, _, b in _dangling(data)}
    with pytest.raises(CADError, match=r"sequence item 2 \(Sketch\) names entity 'Gone_8', which is not in 'entities'"):
        read_model(broken["sequence sketch"], "m")
    with pytest.raises(CADError, match=r"sequence item 3 \(ExtrudeFeature\) names entity 'FR6JugW7scIQZrM_1' "
                                       r"as a ExtrudeFeature, but it is a 'Sketch'"):
        read_model(broken["sequence type"], "m")
    with pytest.raises(CADError, match=rf"extrude {EXTRUDE0} profiles\[0\]\.sketch names entity 'NoSketch'"):
        read_model(broken["extrude sketch"], "m")
    with pytest.raises(CADError, match=rf"extrude {EXTRUDE1} profiles\[0\]\.profile names profile 'JZZ', "
                                       rf"which sketch '{SKETCH1}' does not have"):
        read_model(broken["extrude profile"], "m")


def test_a_dangling_reference_is_counted_by_extract(deepcad_dir, tmp_path):
    from cadvlm.extract import ExtractConfig, extract

    data = load(deepcad_dir, "00003877")
    raw = tmp_path / "raw" / "0000"
    raw.mkdir(parents=True)
    (raw / "00000001.json").write_text(json.dumps(data))
    for n, (_, _, broken) in enumerate(_dangling(data), start=2):
        (raw / f"{n:08d}.json").write_text(json.dumps(broken))
    m = extract(ExtractConfig(tmp_path / "raw", tmp_path / "out", {"train": 20, "validation": 20, "test": 20}, workers=1))
    assert m["skipped"] == {"bad_reference": 9} and sum(m["selected"].values()) == 1


def test_curve_ids_are_labels_shared_by_the_profiles_of_a_sketch(deepcad_dir):
    """What the format's `curve` ids are, on the real files: the id of the sketch curve a profile
    curve was taken from, with the curve written out in full each time (no curve table to resolve
    against). Shared ids carry the same geometry; the reader does not depend on them."""
    shared = 0
    for path in sorted((deepcad_dir / "json").glob("*.json")):
        d = json.loads(path.read_text())
        for ent in d["entities"].values():
            assert "curves" not in ent
            if ent["type"] != "Sketch":
                continue
            seen = {}
            for prof in ent["profiles"].values():
                for lp in prof["loops"]:
                    for c in lp["profile_curves"]:
                        assert isinstance(c["curve"], str)
                        shared += c["curve"] in seen
                        assert seen.setdefault(c["curve"], c) == c, path.name
    assert shared > 0
    data = load(deepcad_dir, "00003877")
    relabelled = copy.deepcopy(data)
    for c in relabelled["entities"][SKETCH0]["profiles"]["JGC"]["loops"][0]["profile_curves"]:
        c["curve"] = "anything"
    assert model_to_json(read_model(relabelled, "x")) == model_to_json(read_model(data, "x"))
