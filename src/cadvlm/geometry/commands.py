"""`cadvlm build`: DeepCAD JSON (or parsed code) -> exact solid -> STEP / STL files."""

from __future__ import annotations

import sys
from pathlib import Path

from cadvlm.cad.model import CADError


def add_arguments_build(p) -> None:
    p.add_argument("model", help="DeepCAD-format JSON file")
    p.add_argument("-o", "--output", action="append", required=True,
                   help="output file, .step/.stp or .stl (repeat for several)")


def cmd_build(args) -> int:
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.geometry.mesh import export_step, export_stl
    from cadvlm.geometry.solid import bounding_box, build_solid, volume

    outputs = [Path(o) for o in args.output]
    bad = [o for o in outputs if o.suffix.lower() not in (".step", ".stp", ".stl")]
    if bad:
        print(f"cadvlm build: unknown output type {bad[0]} (use .step or .stl)", file=sys.stderr)
        return 2
    try:
        shape = build_solid(read_model(args.model))
        for out in outputs:
            (export_stl if out.suffix.lower() == ".stl" else export_step)(shape, out)
    except CADError as exc:
        print(f"cadvlm build: {exc}", file=sys.stderr)
        return 1
    lo, hi = bounding_box(shape)
    size = " x ".join(f"{v * 1000:.2f}" for v in hi - lo)
    print(f"{args.model}: volume {volume(shape) * 1e9:.1f} mm3, box {size} mm -> {', '.join(map(str, outputs))}")
    return 0
