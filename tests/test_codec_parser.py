"""The parser reads every real OpenECAD file, means what OpenECAD means, and refuses the rest."""

import math

import numpy as np
import pytest

from cadvlm.cad.model import CADError, CADModel
from cadvlm.codec.answer import CodeParseError, extract_code, wrap_answer
from cadvlm.codec.format import CodeFormat
from cadvlm.codec.openecad_parser import MAX_LINES, parse_code
from cadvlm.codec.openecad_writer import write_code
from conftest import SHARED

REFS = sorted((SHARED / "openecad_v2").glob("*.py")) if SHARED.is_dir() else []

SQUARE = """SketchPlane0 = add_sketchplane(
\torigin= [0., 0., 0.], normal= [0., 0., 1.], x_axis= [1., 0., 0.])
Loops0 = []
Curves0_0 = []
Line0_0_0 = add_line(start= [0., 0.], end= [10.,  0.])
Line0_0_1 = add_line(start= [10.,  0.], end= [10., 10.])
Line0_0_2 = add_line(start= [10., 10.], end= [ 0., 10.])
Line0_0_3 = add_line(start= [ 0., 10.], end= [0., 0.])
Loop0_0 = add_loop(Curves0_0)
Profile0 = add_profile(Loops0)
Sketch0 = add_sketch(sketch_plane= SketchPlane0, profile= Profile0)
Extrude0 = add_extrude(sketch= Sketch0,
\toperation= 0, type= 0, extent_one= 5., extent_two= 0.)
"""

SECOND = """Loops1 = []
Curves1_0 = []
Circle1_0_0 = add_circle(center= [0., 0.], radius= 1.)
Loop1_0 = add_loop(Curves1_0)
Profile1 = add_profile(Loops1)
Sketch1 = add_sketch(sketch_plane= SketchPlane1, profile= Profile1)
Extrude1 = add_extrude(sketch= Sketch1,
\toperation= 1, type= 0, extent_one= 2., extent_two= 0.)
"""


def _plane(code: str, index: int = 1):
    pl = parse_code(code).extrudes[index].plane
    return pl.origin * 1000, pl.x_axis, pl.normal


def _close(a, b):
    return np.allclose(a, b, atol=1e-9)


@pytest.mark.parametrize("path", REFS, ids=lambda p: p.stem)
def test_reads_every_reference(path):
    text = path.read_text()
    if not text:
        with pytest.raises(CADError) as e:
            parse_code(text)
        assert e.value.reason == "no_extrude"
        return
    fast, slow = parse_code(text, path.stem), parse_code(text, path.stem, fast=False)
    assert isinstance(fast, CADModel) and fast == slow
    assert write_code(fast) == text  # parse then write is the identity on OpenECAD's own text


def test_plane_references():
    ref = 'SketchPlane1 = add_sketchplane_ref(\n\tExtrude0, origin= [{u}, {v}], type= "{t}"{extra})\n'

    def plane(t, u=0.0, v=0.0, extra=""):
        return _plane(SQUARE + ref.format(u=u, v=v, t=t, extra=extra) + SECOND)

    o, x, n = plane("sameplane", 10, 5, ", angle= np.pi/2, reverse= True")
    assert _close(o, [10, 5, 0]) and _close(x, [0, 1, 0]) and _close(n, [0, 0, -1])
    o, x, n = plane("extent_one", 1, 2)
    assert _close(o, [1, 2, 5]) and _close(x, [1, 0, 0]) and _close(n, [0, 0, 1])
    o, x, n = plane("extent_two", 0, 0, ", angle= -3*np.pi/4")
    assert _close(o, [0, 0, 0]) and _close(x, [-math.sqrt(0.5), -math.sqrt(0.5), 0])
    # "line": x along the line, y = the referenced normal, normal = x cross y.
    o, x, n = plane("line", 2, 3, ", line= Line0_0_0")
    assert _close(o, [2, 0, 3]) and _close(x, [1, 0, 0]) and _close(n, [0, -1, 0])
    o, x, n = plane("line", 0, 0, ", line= Line0_0_1, angle= np.pi/2, reverse= True")
    assert _close(o, [10, 0, 0]) and _close(x, [0, 0, 1]) and _close(n, [-1, 0, 0])


def test_line_reference_follows_openecads_reorder():
    """A clockwise loop is turned counter-clockwise by OpenECAD's add_loop, reversing its lines."""
    cw = SQUARE.replace("Line0_0_0 = add_line(start= [0., 0.], end= [10.,  0.])\n"
                        "Line0_0_1 = add_line(start= [10.,  0.], end= [10., 10.])\n"
                        "Line0_0_2 = add_line(start= [10., 10.], end= [ 0., 10.])\n"
                        "Line0_0_3 = add_line(start= [ 0., 10.], end= [0., 0.])\n",
                        "Line0_0_0 = add_line(start= [0., 0.], end= [0., 10.])\n"
                        "Line0_0_1 = add_line(start= [0., 10.], end= [10., 10.])\n"
                        "Line0_0_2 = add_line(start= [10., 10.], end= [10., 0.])\n"
                        "Line0_0_3 = add_line(start= [10., 0.], end= [0., 0.])\n")
    code = cw + 'SketchPlane1 = add_sketchplane_ref(\n\tExtrude0, origin= [0., 0.], type= "line", line= Line0_0_0)\n' + SECOND
    o, x, n = _plane(code)
    assert _close(o, [0, 10, 0]) and _close(x, [0, -1, 0]) and _close(n, [-1, 0, 0])


def test_values_units_and_forms():
    m = parse_code(SQUARE)
    ex = m.extrudes[0]
    assert ex.extent_one == pytest.approx(0.005) and len(ex.profile.loops[0].curves) == 4
    # Positional arguments, other spacing, quotes and comments go through the ast front end.
    alt = SQUARE.replace("add_line(start= [0., 0.], end= [10.,  0.])", "add_line([0, 0], end=[1e1, -0.])  # first")
    assert parse_code(alt) == m
    angle = SQUARE + "SketchPlane1 = add_sketchplane_ref(Extrude0, origin=[0, 0], type='sameplane', angle=np.pi/4 + 0.5)\n" + SECOND
    o, x, n = _plane(angle)
    assert _close(x, [math.cos(math.pi / 4 + 0.5), math.sin(math.pi / 4 + 0.5), 0])


def test_holes_are_ordered_after_the_outer_loop():
    code = SQUARE.replace("Loop0_0 = add_loop(Curves0_0)\n", "Loop0_0 = add_loop(Curves0_0)\nCurves0_1 = []\n"
                          "Circle0_1_0 = add_circle(center= [5., 5.], radius= 1.)\nLoop0_1 = add_loop(Curves0_1)\n")
    hole_first = code.replace("Curves0_0 = []", "Curves0_9 = []").replace("add_loop(Curves0_0)", "add_loop(Curves0_9)")
    for text in (code, hole_first):
        loops = parse_code(text).extrudes[0].profile.loops
        assert len(loops) == 2 and len(loops[0].curves) == 4


BAD = {
    "import": ("import os\n" + SQUARE, 1),
    "attribute call": ("x = os.system('ls')\n" + SQUARE, 1),
    "dunder": ("__import__('os').system('ls')\n" + SQUARE, 1),
    "other call": (SQUARE.replace("end= [10.,  0.])", "end= foo())"), 5),
    "loop": ("for i in range(3):\n    pass\n" + SQUARE, 1),
    "semicolon": ("Loops9 = []; import os\n" + SQUARE, 1),
    "non-empty list": ("Loops0 = [1]\n" + SQUARE, 1),
    "lambda": ("Loops0 = (lambda: 0)()\n" + SQUARE, 1),
    "comprehension": ("Loops0 = [i for i in range(9)]\n" + SQUARE, 1),
    "np.pi outside angle": (SQUARE.replace("extent_one= 5.", "extent_one= np.pi"), 12),
    "np.e": (SQUARE + 'SketchPlane1 = add_sketchplane_ref(Extrude0, origin= [0., 0.], type= "sameplane", angle= np.e)\n' + SECOND, 14),
    "power": (SQUARE + 'SketchPlane1 = add_sketchplane_ref(Extrude0, origin= [0., 0.], type= "sameplane", angle= np.pi**2)\n' + SECOND, 14),
    "huge exponent": (SQUARE.replace("extent_one= 5.", "extent_one= 1e999"), 12),
    "huge integer": (SQUARE.replace("extent_one= 5.", "extent_one= 1" + "0" * 400), 12),
    "long line": (SQUARE.replace("extent_one= 5.", "extent_one= 5." + "0" * 3000), 13),
    "undefined name": (SQUARE.replace("add_loop(Curves0_0)", "add_loop(Curves9_9)"), 9),
    "wrong target": (SQUARE.replace("Line0_0_1 =", "Foo ="), 6),
    "kind mismatch": (SQUARE.replace("Line0_0_1 =", "Arc0_0_1 ="), 6),
    "repeated keyword": (SQUARE.replace("end= [10.,  0.])", "end= [10.,  0.], start= [1, 1])"), 5),
    "unknown keyword": (SQUARE.replace("end= [10.,  0.])", "end= [10.,  0.], color= 1)"), 5),
    "missing argument": (SQUARE.replace(", extent_two= 0.)", ")"), 12),
    "bad operation": (SQUARE.replace("operation= 0", "operation= 7"), 12),
    "float operation": (SQUARE.replace("operation= 0", "operation= 0."), 12),
    "bad plane type": (SQUARE + 'SketchPlane1 = add_sketchplane_ref(Extrude0, origin= [0., 0.], type= "side")\n' + SECOND, 14),
    "line type without line": (SQUARE + 'SketchPlane1 = add_sketchplane_ref(Extrude0, origin= [0., 0.], type= "line")\n' + SECOND, 14),
    "truncated": (SQUARE[:-20], 12),
    "no final extrude": (SQUARE + "SketchPlane1 = add_sketchplane_ref(Extrude0, origin= [0., 0.], type= \"sameplane\")\n", 14),
    "too many lines": ("\n" * (MAX_LINES + 1) + SQUARE, None),
    "not text": (b"Loops0 = []", None),
}


@pytest.mark.parametrize("name", list(BAD))
def test_refuses_with_line_number(name):
    text, line = BAD[name]
    with pytest.raises(CodeParseError) as e:
        parse_code(text)
    assert e.value.reason == "parse_error" and e.value.line == line, str(e.value)
    if line:
        assert f"line {line}:" in str(e.value)


@pytest.mark.parametrize("edit,reason", [
    (("end= [0., 0.])\nLoop0_0", "end= [0., 1.])\nLoop0_0"), "open_loop"),
    (("[10.,  0.], end= [10., 10.]", "[10.,  0.], end= [10.,  0.]"), "zero_length_curve"),
    (("extent_one= 5.", "extent_one= 0."), "zero_extent"),
    (("normal= [0., 0., 1.]", "normal= [1., 0., 0.]"), "bad_plane"),
])
def test_geometry_errors_are_cad_errors(edit, reason):
    with pytest.raises(CADError) as e:
        parse_code(SQUARE.replace(*edit))
    assert e.value.reason == reason and "line " in str(e.value)


def test_small_gaps_are_closed():
    code = SQUARE.replace("Line0_0_3 = add_line(start= [ 0., 10.], end= [0., 0.])",
                          "Line0_0_3 = add_line(start= [ 0., 10.], end= [0.0004, 0.])")
    loop = parse_code(code).extrudes[0].profile.loops[0]
    for a, b in zip(loop.curves, loop.curves[1:] + loop.curves[:1]):
        assert np.array_equal(a.end, b.start)


def test_answers():
    answer = wrap_answer(SQUARE)
    assert answer.startswith("Of course, here are the codes:\n```python\nSketchPlane0") and answer.endswith(")\n```")
    assert extract_code(answer) == SQUARE
    assert CodeFormat().parse_answer(answer) == parse_code(SQUARE)
    for bad in ("no code here", "```python\n" + SQUARE):
        with pytest.raises(CodeParseError):
            extract_code(bad)


def test_empty_program_is_no_extrude():
    with pytest.raises(CADError) as e:
        parse_code("\n\n")
    assert e.value.reason == "no_extrude"
