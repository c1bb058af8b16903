"""write_cadquery without CadQuery: the style, each curve / operation / extent / plane kind written
as intended, and the stated model (what the script says) building the model's solid.

tests/test_cadquery_real.py builds the same scripts with real CadQuery.
"""

import ast
import itertools
import re

import numpy as np
import pytest

from cadvlm.cad.model import (
    Arc,
    CADError,
    CADModel,
    Circle,
    ExtentType,
    Extrude,
    Line,
    Loop,
    Operation,
    Plane,
    Profile,
)
from cadvlm.codec.cadquery_writer import number_text, stated_model, write_cadquery
from cadvlm.geometry.solid import bounding_box, build_solid, volume

XY = Plane([0, 0, 0], [1, 0, 0], [0, 0, 1])
STATEMENT = re.compile(r"^(w\d+=cq\.Workplane\(.+\)|r=.+)$")
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")


def mm(*pts):
    """Points given in millimetres, as the model's metres."""
    return [np.asarray(p, float) / 1000 for p in pts]


def polygon(*pts) -> Loop:
    ps = mm(*pts)
    return Loop([Line(a, b) for a, b in zip(ps, ps[1:] + ps[:1])])


def circle(c, r) -> Loop:
    return Loop([Circle(mm(c)[0], r / 1000)])


def extrude(loops, plane=XY, op=Operation.NEW_BODY, kind=ExtentType.ONE_SIDE, e1=5.0, e2=0.0) -> Extrude:
    return Extrude(plane, Profile(loops), op, kind, e1 / 1000, e2 / 1000)


BOX = polygon((0, 0), (10, 0), (10, 10), (0, 10))


def body_statements(code: str) -> list[str]:
    return [line for line in code.splitlines() if line.startswith("r=")]


# ----------------------------------------------------------------------------- style


def _synthetic(n=20, seed=2):
    from cadvlm.synth import generate_model

    return [generate_model(i, seed=seed) for i in range(n)]


@pytest.fixture(scope="module")
def synthetic():
    return _synthetic()


def test_style_flat_statements_short_numbers(synthetic):
    for m in synthetic:
        code = write_cadquery(m)
        assert code == write_cadquery(m)  # same model, same bytes
        lines = code.splitlines()
        assert lines[0] == "import cadquery as cq" and code.endswith("\n")
        assert all(STATEMENT.match(line) for line in lines[1:]), code
        assert " " not in code.replace("import cadquery as cq", "")
        first_body = next(i for i, line in enumerate(lines) if line.startswith("r="))
        assert all(line.startswith("w") for line in lines[1:first_body])  # planes first, as CAD-Recode
        assert lines[first_body].startswith("r=w") and all(
            re.match(r"r=r\.(union|cut|intersect)\(w\d+\.", line) for line in lines[first_body + 1:])
        tree = ast.parse(code)  # a flat sequence of simple statements
        assert all(isinstance(s, (ast.Import, ast.Assign)) for s in tree.body)
        assert all(len(s.targets) == 1 and isinstance(s.targets[0], ast.Name) for s in tree.body[1:])
        for line in body_statements(code) + [x for x in lines if "('" in x]:  # lengths: <= 4 decimals
            for num in NUMBER.findall(line):
                assert not num.endswith(".0") and (("." not in num) or (
                    not num.endswith("0") and len(num.split(".")[1]) <= 4)), (num, line)
        assert len({x.split("=", 1)[1] for x in lines[1:first_body]}) == first_body - 1  # planes unique


def test_number_text():
    assert [number_text(v) for v in (3.0, -0.0, 12.7, -0.3969, 100.0, 0.0001)] == \
        ["3", "0", "12.7", "-0.3969", "100", "0.0001"]


def test_millimetres_rounded_to_four_decimals():
    # 1/32 inch = 0.79375 mm: numpy's half-to-even on the scaled value, as the OpenECAD writer rounds
    m = CADModel([extrude([polygon((0, 0), (0.79375, 0), (0.79375, 1.5875), (0, 1.5875))], e1=25.4)])
    assert "segment((0,0),(0.7938,0)).segment((0.7938,1.5875)).segment((0,1.5875)).close()" in write_cadquery(m)
    assert ".extrude(25.4)" in write_cadquery(m)


# ----------------------------------------------------------------------------- curves and loops


def test_lines_arcs_circles_and_holes():
    slot = Loop([Line(*mm((2, 1), (6, 1))), Arc(*mm((6, 1), (7, 2), (6, 3))), Line(*mm((6, 3), (2, 3))),
                 Arc(*mm((2, 3), (1, 2), (2, 1)))])
    outer = Loop([Line(*mm((0, 0), (20, 0))), Arc(*mm((20, 0), (25, 5), (20, 10))), Line(*mm((20, 10), (0, 10))),
                  Line(*mm((0, 10), (0, 0)))])
    m = CADModel([extrude([outer, circle((15, 5), 1.5), slot, polygon((10, 6), (12, 6), (11, 8))])])
    (body,) = body_statements(write_cadquery(m))
    assert body == (
        "r=w0.sketch().segment((0,0),(20,0)).arc((25,5),(20,10)).segment((0,10)).close().assemble()"
        ".push([(15,5)]).circle(1.5,mode='s')"
        ".reset().face(w0.sketch().segment((2,1),(6,1)).arc((7,2),(6,3)).segment((2,3)).arc((1,2),(2,1))"
        ".assemble(),mode='s')"
        ".reset().face(w0.sketch().segment((10,6),(12,6)).segment((11,8)).close().assemble(),mode='s')"
        ".finalize().extrude(5)")


def test_loop_starting_with_an_arc_and_circle_outer():
    m = CADModel([extrude([Loop([Arc(*mm((0, 0), (5, -5), (10, 0))), Line(*mm((10, 0), (0, 0)))])]),
                  extrude([circle((0, 0), 4), polygon((-1, -1), (1, -1), (0, 1))], op=Operation.JOIN)])
    first, second = body_statements(write_cadquery(m))
    assert ".sketch().arc((0,0),(5,-5),(10,0)).close().assemble().finalize()" in first
    assert second == ("r=r.union(w0.sketch().push([(0,0)]).circle(4)"
                      ".reset().face(w0.sketch().segment((-1,-1),(1,-1)).segment((0,1)).close().assemble(),mode='s')"
                      ".finalize().extrude(5))")


# ----------------------------------------------------------------------------- operations


def _methods(code: str) -> list[str]:
    """The boolean of each body statement, read off the syntax tree: 'new' for `r=w...`."""
    out = []
    for stmt in ast.parse(code).body[1:]:
        call = stmt.value
        if stmt.targets[0].id != "r":
            continue
        # r=r.<op>(...) is a call whose function is an attribute of the name r
        if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name) and call.func.value.id == "r":
            out.append(call.func.attr)
        else:
            out.append("new")
    return out


def test_each_operation_is_its_boolean():
    tool = polygon((2, 2), (8, 2), (8, 8), (2, 8))
    ops = [Operation.NEW_BODY, Operation.JOIN, Operation.CUT, Operation.INTERSECT, Operation.NEW_BODY]
    m = CADModel([extrude([BOX if k == 0 else tool], op=op, e1=5 + k) for k, op in enumerate(ops)])
    assert _methods(write_cadquery(m)) == ["new", "union", "cut", "intersect", "union"]
    assert [e.operation for e in stated_model(m).extrudes] == \
        [Operation.NEW_BODY, Operation.JOIN, Operation.CUT, Operation.INTERSECT, Operation.JOIN]


def test_a_cut_removes_material_and_a_join_adds_it():
    """The stated model, built by the project, is the model's solid: a box 10x10x10 with a hole of
    radius 2 through it is 1000 - 40 pi; a union there would leave 1000."""
    hole = extrude([circle((5, 5), 2)], op=Operation.CUT, e1=10)
    m = CADModel([extrude([BOX], e1=10), hole])
    assert volume(build_solid(stated_model(m))) * 1e9 == pytest.approx(1000 - 40 * np.pi, rel=1e-9)
    assert "r=r.cut(" in write_cadquery(m)
    boss = extrude([circle((5, 5), 2)], op=Operation.JOIN, e1=-3)
    assert volume(build_solid(stated_model(CADModel([extrude([BOX], e1=10), boss])))) * 1e9 == \
        pytest.approx(1000 + 12 * np.pi, rel=1e-9)


def test_leading_cut_is_left_out():
    m = CADModel([extrude([BOX], op=Operation.CUT), extrude([BOX], op=Operation.INTERSECT), extrude([BOX], e1=3)])
    assert _methods(write_cadquery(m)) == ["new"]
    assert len(stated_model(m).extrudes) == 1


# ----------------------------------------------------------------------------- extents


@pytest.mark.parametrize("kind,e1,e2,text", [
    (ExtentType.ONE_SIDE, 5, 0, "w0.sketch().{}.finalize().extrude(5)"),
    (ExtentType.ONE_SIDE, -5, 0, "w0.sketch().{}.finalize().extrude(-5)"),
    (ExtentType.SYMMETRIC, 5, 0, "w0.sketch().{}.finalize().extrude(5,both=True)"),
    (ExtentType.SYMMETRIC, -5, 0, "w0.sketch().{}.finalize().extrude(5,both=True)"),
    (ExtentType.TWO_SIDES, 5, 3, "w0.workplane(offset=-3).sketch().{}.finalize().extrude(8)"),
    (ExtentType.TWO_SIDES, -2, -6, "w0.workplane(offset=-2).sketch().{}.finalize().extrude(8)"),
    (ExtentType.TWO_SIDES, 5, -2, "w0.sketch().{}.finalize().extrude(5)"),  # both sides one way: the longer
    (ExtentType.TWO_SIDES, -2, 5, "w0.sketch().{}.finalize().extrude(-5)"),
])
def test_extents(kind, e1, e2, text):
    m = CADModel([extrude([BOX], kind=kind, e1=e1, e2=e2)])
    (body,) = body_statements(write_cadquery(m))
    assert body == "r=" + text.format("segment((0,0),(10,0)).segment((10,10)).segment((0,10)).close().assemble()")
    stated = stated_model(m).extrudes[0]
    assert np.allclose(stated.depth_range(), m.extrudes[0].depth_range(), atol=1e-12)


# ----------------------------------------------------------------------------- planes


L_SHAPE = polygon((0, 0), (30, 0), (30, 10), (10, 10), (10, 20), (0, 20))  # no symmetry: a wrong map shows


def _axis_frames():
    """All 24 axis-aligned right-handed frames (x axis, normal)."""
    axes = [np.eye(3)[i] * s for i in range(3) for s in (1, -1)]
    return [(x, n) for x, n in itertools.product(axes, axes) if abs(x @ n) == 0]


def test_every_axis_aligned_frame_is_a_named_plane_with_the_same_solid():
    frames = _axis_frames()
    assert len(frames) == 24
    for x, n in frames:
        plane = Plane(np.array([7.0, -3.0, 11.0]) / 1000, x, n)
        m = CADModel([extrude([L_SHAPE, circle((5, 5), 2)], plane=plane, kind=ExtentType.TWO_SIDES, e1=4, e2=1.5)])
        code = write_cadquery(m)
        name = {0: "YZ", 1: "ZX", 2: "XY"}[int(np.argmax(np.abs(n)))]
        offset = tuple(float(v) for v in np.abs(n) * (np.array([7.0, -3.0, 11.0]) @ n) * (np.abs(n) @ n))
        assert f"w0=cq.Workplane('{name}',origin=(" in code
        assert code.splitlines()[1].endswith(f"origin=({','.join(number_text(v) for v in offset)}))")
        ours, want = build_solid(stated_model(m)), build_solid(m)
        assert volume(ours) == pytest.approx(volume(want), rel=1e-9)
        for a, b in zip(bounding_box(ours), bounding_box(want)):
            assert np.allclose(a, b, atol=1e-9), (x, n, code)


def test_flipped_normal_negates_coordinates_and_depth():
    # x = +X, normal = -Z: y = normal x x = -Y, so (u, v) is (u, -v) on XY and depth runs down
    m = CADModel([extrude([BOX], plane=Plane([0, 0, 0.01], [1, 0, 0], [0, 0, -1]), e1=2)])
    code = write_cadquery(m)
    assert "w0=cq.Workplane('XY',origin=(0,0,10))" in code
    assert "segment((0,0),(10,0)).segment((10,-10)).segment((0,-10)).close()" in code
    assert code.endswith(".extrude(-2)\n")


def test_general_plane_written_in_full():
    c, s = np.cos(0.3), np.sin(0.3)
    plane = Plane([0.001, 0.002, 0.003], [c, s, 0], [-s, c, 0])
    m = CADModel([extrude([BOX], plane=plane)])
    code = write_cadquery(m)
    assert code.splitlines()[1] == (
        f"w0=cq.Workplane(cq.Plane(cq.Vector(1,2,3),cq.Vector({round(c, 6)},{round(s, 6)},0),"
        f"cq.Vector({round(-s, 6)},{round(c, 6)},0)))")
    assert volume(build_solid(stated_model(m))) == pytest.approx(volume(build_solid(m)), rel=1e-9)


def test_same_plane_shares_its_workplane():
    m = CADModel([extrude([BOX]), extrude([circle((5, 5), 1)], op=Operation.CUT),
                  extrude([circle((5, 5), 1)], plane=Plane([0, 0, 0.005], [1, 0, 0], [0, 0, 1]), op=Operation.JOIN)])
    lines = write_cadquery(m).splitlines()
    assert [x for x in lines if x.startswith("w")] == ["w0=cq.Workplane('XY',origin=(0,0,0))",
                                                        "w1=cq.Workplane('XY',origin=(0,0,5))"]
    assert lines[-2].startswith("r=r.cut(w0.") and lines[-1].startswith("r=r.union(w1.")


# ----------------------------------------------------------------------------- the solid as stated


def test_stated_model_builds_the_models_solid(synthetic):
    """The script states the model up to its 4-decimal rounding (measured: <= ~1e-4 relative volume)."""
    for m in synthetic:
        want, ours = volume(build_solid(m)), volume(build_solid(stated_model(m)))
        assert ours == pytest.approx(want, rel=1e-4), m.model_id


# ----------------------------------------------------------------------------- refused models


@pytest.mark.parametrize("model,reason", [
    (CADModel([extrude([BOX], e1=0)], model_id="m1"), "zero_extent"),
    (CADModel([extrude([BOX], e1=0.00004)], model_id="m1"), "zero_extent"),
    (CADModel([extrude([BOX], op=Operation.CUT)], model_id="m1"), "empty_solid"),
    (CADModel([extrude([polygon((0, 0), (0.00001, 0), (5, 5))])], model_id="m1"), "tiny_curve"),
    (CADModel([extrude([Loop([Line(*mm((0, 0), (10, 0))), Line(*mm((10, 0), (10, 10))),
                              Line(*mm((10, 10), (0, 9)))])])], model_id="m1"), "open_loop"),
    (CADModel([extrude([BOX], plane=Plane([0, 0, 0], [1, 0, 0.1], [0, 0, 1]))], model_id="m1"), "bad_frame"),
    (CADModel([extrude([Loop([Arc(*mm((0, 0), (5, 0.00001), (10, 0))), Line(*mm((10, 0), (0, 0)))])])],
              model_id="m1"), "degenerate_arc"),
])
def test_unwritable_models_name_the_reason(model, reason):
    with pytest.raises(CADError) as err:
        write_cadquery(model)
    assert err.value.reason == reason and err.value.model_id == "m1"
