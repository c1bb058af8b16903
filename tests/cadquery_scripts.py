"""Hand-written CadQuery scripts (written for these tests) in both styles people and models use,
each with the volume worked out by hand (mm^3), and a hostile corpus the reader must refuse.

tests/test_cadquery_reader.py reads the scripts with cadvlm's reader and checks the volumes;
tests/test_cadquery_real.py also builds them with the real cadquery package and compares.
"""

import math

PI = math.pi

# name -> (script, volume in mm^3 worked out by hand)
SCRIPTS = {
    # Workplane chains
    "plate_with_hole": ("""import cadquery as cq
r = cq.Workplane("XY").rect(40, 20).moveTo(5, 0).circle(4).extrude(3)
""", (40 * 20 - PI * 16) * 3),
    "lineTo_profile_reversed": ("""import cadquery as cq
result = (cq.Workplane("XZ").moveTo(0, 0).lineTo(30, 0).lineTo(30, 10).lineTo(10, 10)
          .lineTo(10, 25).lineTo(0, 25).close().extrude(-8))
""", (30 * 10 + 10 * 15) * 8),
    "arc_slot_symmetric": ("""import cadquery as cq
w = cq.Workplane(cq.Plane(origin=(5, -2, 7), xDir=(0, 1, 0), normal=(1, 0, 0)))
result = w.moveTo(-10, -5).lineTo(10, -5).threePointArc((15, 0), (10, 5)).lineTo(-10, 5).threePointArc((-15, 0), (-10, -5)).close().extrude(6, both=True)
""", (20 * 10 + PI * 25) * 12),
    "offset_workplane_cut": ("""import cadquery as cq
base = cq.Workplane("XY").rect(50, 50).extrude(10)
pocket = cq.Workplane("XY").workplane(offset=10).center(10, 10).rect(10, 10).extrude(-4)
result = base.cut(pocket)
""", 50 * 50 * 10 - 10 * 10 * 4),
    "pushpoints_and_cutblind": ("""import cadquery as cq
r = cq.Workplane("XY").box(40, 40, 10, centered=(True, True, False))
r = r.union(cq.Workplane("XY").pushPoints([(-10, -10), (10, 10)]).circle(3).extrude(20))
holes = cq.Workplane("XY").workplane(offset=10).pushPoints([(10, -10)]).circle(5).extrude(-10)
r = r - holes
show_object(r)
""", 40 * 40 * 10 + 2 * PI * 9 * 10 - PI * 25 * 10),
    "intersect_two_sides": ("""import cadquery as cq
a = cq.Workplane("XY").rect(20, 20).extrude(10).union(cq.Workplane("XY").rect(20, 20).extrude(-5))
b = cq.Workplane("YZ").circle(4).extrude(15, both=True)
r = a.intersect(b)
""", PI * 16 * 20),
    # cq.Sketch chains (CAD-Recode / cadrille style)
    "sketch_segments_and_hole": ("""import cadquery as cq
w0 = cq.Workplane('XY', origin=(0, 0, -4))
r = w0.sketch().segment((-20, -10), (20, -10)).segment((20, 10)).segment((-20, 10)).close().assemble().push([(8, 0)]).circle(3, mode='s').finalize().extrude(8)
""", (40 * 20 - PI * 9) * 8),
    "sketch_arcs_union": ("""import cadquery as cq
w0 = cq.Workplane(cq.Plane(cq.Vector(0, 0, 0), cq.Vector(1, 0, 0), cq.Vector(0, 0, 1)))
w1 = cq.Workplane(cq.Plane(cq.Vector(0, 0, 5), cq.Vector(0, 1, 0), cq.Vector(0, 0, 1)))
r = w0.sketch().segment((-10, -10), (10, -10)).arc((20, 0), (10, 10)).segment((-10, 10)).arc((-20, 0), (-10, -10)).assemble().finalize().extrude(5).union(w1.sketch().push([(0, 0)]).circle(4).finalize().extrude(3))
""", (20 * 20 + PI * 100) * 5 + PI * 16 * 3),
    "sketch_rect_two_regions_cut": ("""import cadquery as cq
base = cq.Workplane('XY').sketch().rect(60, 30).finalize().extrude(6)
slots = cq.Workplane('XY', origin=(0, 0, 6)).sketch().push([(-15, 0), (15, 0)]).rect(8, 4, angle=90).finalize().extrude(-2)
r = base.cut(slots)
""", 60 * 30 * 6 - 2 * 8 * 4 * 2),
    "placed_sketch_centre_arc": ("""import cadquery as cq
s = cq.Sketch().arc((0, 0), 10, 0, 180).segment((-10, 0), (10, 0)).assemble()
r = cq.Workplane('front').placeSketch(s).extrude(2)
""", PI * 100 / 2 * 2),
}

# Programs that must be refused without anything running: each would touch MARKER if executed.
MARKER = "cadvlm_cq_hostile_marker"


def hostile(marker_path: str) -> dict:
    m = repr(marker_path)
    return {
        "import_os": f"import os\nos.system('touch ' + {m})\n",
        "from_os": f"from os import system\nsystem('touch ' + {m})\n",
        "dunder_import": f"__import__('os').system('touch ' + {m})\n",
        "import_in_show": f"import cadquery as cq\nshow_object(__import__('os').system('touch ' + {m}))\n",
        "open_file": f"open({m}, 'w').write('x')\n",
        "exec": f"exec(\"open({m}, 'w')\")\n",
        "eval_in_arg": f"import cadquery as cq\nr = cq.Workplane('XY').circle(eval('1')).extrude(1)\n",
        "lambda": "import cadquery as cq\nf = lambda: 1\n",
        "def": f"def f():\n    open({m}, 'w')\nf()\n",
        "class": "class A:\n    pass\n",
        "for_loop": "import cadquery as cq\nfor i in range(3):\n    r = cq.Workplane('XY').circle(1).extrude(1)\n",
        "while_loop": "while True:\n    pass\n",
        "comprehension": "import cadquery as cq\npts = [(i, i) for i in range(3)]\n",
        "if": "import cadquery as cq\nif 1:\n    r = cq.Workplane('XY').circle(1).extrude(1)\n",
        "with": f"with open({m}, 'w') as f:\n    pass\n",
        "try": "try:\n    pass\nexcept Exception:\n    pass\n",
        "dunder_attr": "import cadquery as cq\nx = cq.Workplane.__init__\n",
        "dunder_chain": "import cadquery as cq\nx = cq.Workplane('XY').__class__.__bases__\n",
        "private_name": "import cadquery as cq\n_x = cq.Workplane('XY')\n",
        "module_attr": "import cadquery as cq\ncq.exporters.export(cq.Workplane('XY').box(1, 1, 1), 'x.step')\n",
        "export_method": f"import cadquery as cq\nr = cq.Workplane('XY').box(1, 1, 1)\nr.val().exportStep({m})\n",
        "export_call": f"import cadquery as cq\nr = cq.Workplane('XY').box(1, 1, 1).exportStep({m})\n",
        "star_import": "from cadquery import *\n",
        "relative_import": "from . import cadquery\n",
        "importlib": "import importlib\n",
        "getattr": "import cadquery as cq\nr = getattr(cq, 'Workplane')('XY')\n",
        "subscript": "import cadquery as cq\nr = [cq.Workplane('XY')][0]\n",
        "fstring": "import cadquery as cq\nr = cq.Workplane(f'XY')\n",
        "walrus": "import cadquery as cq\nr = (w := cq.Workplane('XY'))\n",
        "power_bomb": "import cadquery as cq\nr = cq.Workplane('XY').circle(9 ** 9 ** 9).extrude(1)\n",
        "huge_literal": "import cadquery as cq\nr = cq.Workplane('XY').circle(" + "9" * 400 + ").extrude(1)\n",
        "huge_float": "import cadquery as cq\nr = cq.Workplane('XY').circle(1e308 * 10).extrude(1)\n",
        "nan": "import cadquery as cq\nr = cq.Workplane('XY').circle(float('nan')).extrude(1)\n",
        "deep_nesting": "import cadquery as cq\nr = cq.Workplane('XY').circle(" + "(" * 5000 + "1" + ")" * 5000 + ").extrude(1)\n",
        "deep_lists": "import cadquery as cq\nr = cq.Workplane('XY').pushPoints(" + "[" * 3000 + "]" * 3000 + ")\n",
        "deep_unary": "import cadquery as cq\nr = cq.Workplane('XY').circle(" + "-" * 3000 + "1).extrude(1)\n",
        "deep_sum": "import cadquery as cq\nr = cq.Workplane('XY').circle(" + "1+" * 5000 + "1).extrude(1)\n",
        "long_chain": "import cadquery as cq\nr = (cq.Workplane('XY')\n" + ".center(0, 0)\n" * 9000 + ".circle(1).extrude(1))\n",
        "long_line": "import cadquery as cq\nr = cq.Workplane('XY')" + ".center(0, 0)" * 5000 + ".circle(1).extrude(1)\n",
        "global": "global x\n",
        "delete": "import cadquery as cq\ndel cq\n",
        "augassign": "x = 1\nx += 1\n",
        "starred": "import cadquery as cq\np = (1, 2)\nr = cq.Workplane('XY').center(*p)\n",
        "kwargs": "import cadquery as cq\nr = cq.Workplane('XY').circle(**{'radius': 1})\n",
        "unknown_method": "import cadquery as cq\nr = cq.Workplane('XY').box(1, 1, 1).fillet(0.1)\n",
        "selector": "import cadquery as cq\nr = cq.Workplane('XY').box(1, 1, 1).faces('>Z').workplane().hole(0.2)\n",
        "nul_byte": "import cadquery as cq\x00\n",
        "bytes_literal": "import cadquery as cq\nr = cq.Workplane(b'XY')\n",
        "await": "async def f():\n    pass\n",
    }
