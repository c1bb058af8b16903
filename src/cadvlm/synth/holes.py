"""Hole patterns cut into a face: through or blind, round or shaped, optionally counterbored.

Holes are the commonest feature after the base in DeepCAD. A pattern (one to six holes) goes on
a top, bottom, boss, wall or pocket face; a through hole in a part extruded both ways is often
sketched on the base's own middle plane with the base's Symmetric or TwoSides extent, as
designers do, and that variant lives here too.
"""

from __future__ import annotations

from cadvlm.cad.model import ExtentType, Operation
from cadvlm.synth import shapes as sh
from cadvlm.synth.frames import Face, make_plane, poly_to, reproject
from cadvlm.synth.placement import hole_kind, hole_size, place, shape_at


def add_holes(pb, budget: int) -> int:
    """A pattern of holes (through or blind, optionally counterbored) on a face."""
    weights = {"top": 5.0, "bottom": 1.2, "boss": 2.0, "wall": 3.0, "pocket": 1.5}
    faces = pb.faces_of(*weights, min_depth=0.5)
    if not faces:
        return 0
    face = pb.pick(faces, [weights[f.kind] for f in faces])
    counts = [k for k in (1, 2, 3, 4, 6) if k <= budget]
    n = int(pb.pick(counts, [(0.46, 0.26, 0.07, 0.17, 0.04)[(1, 2, 3, 4, 6).index(k)] for k in counts]))
    cbore = n * 2 <= budget and face.kind in ("top", "boss", "bottom") and pb.chance(0.15)
    kind = "circle" if cbore else hole_kind(pb, True)
    d = hole_size(pb, face, n, kind)
    if d is None:
        return 0
    big = pb.u.nice(d * pb.uniform(1.6, 2.0)) if cbore else d
    extent = big * (3.0 if kind == "obround" else 2.0 if kind in ("rect", "rrect") else 1.0)
    long_x = bool(face.size[0] >= face.size[1])
    placed = place(pb, face, n, lambda c: shape_at(pb, kind, big, c, long_x), extent, max(0.8, 0.2 * big))
    if not placed:
        return 0
    through = cbore or pb.chance(0.75)
    depth = face.depth if (through and pb.chance(0.6)) else (
        pb.u.nice(face.depth * pb.uniform(1.0, 1.5), face.depth) if through else
        pb.u.nice(face.depth * pb.uniform(0.25, 0.75)))
    if cbore:
        depth_big = pb.u.nice(face.depth * pb.uniform(0.2, 0.45))
        for loops in placed:
            c = loops[0].center
            pb.cut(face, [loops], depth_big, through=False)
            pb.cut(face, [sh.circle(d / 2, *c)], depth, through=True)
        pb.features.append(f"cbore_holes:{n}")
        return 2 * n
    b = pb.base
    mid = through and face.kind in ("top", "bottom") and b.lo < 0 < b.hi and pb.chance(0.5)
    for loops in placed:
        if mid:
            _cut_through_middle(pb, face, loops)
        else:
            pb.cut(face, [loops], depth, through=through)
    pb.features.append(f"holes:{kind}:{n}")
    return n


def _cut_through_middle(pb, face: Face, loops):
    """A through cut sketched on the base's own (middle) plane with the base's Symmetric or
    TwoSides extent, as designers do for parts extruded both ways."""
    b = pb.base
    on_point = pb.chance(0.3)
    point = face.plane.to_global(sh.loop_polygon(loops).mean(axis=0))
    point = point - float((point - b.plane.origin) @ b.plane.normal) * b.plane.normal
    plane = make_plane(point, b.plane.normal, origin_at_point=on_point)
    if abs(b.lo + b.hi) < 1e-9:
        pb.add(plane, [reproject(loops, face.plane, plane)], Operation.CUT, ExtentType.SYMMETRIC, b.hi)
    else:
        pb.add(plane, [reproject(loops, face.plane, plane)], Operation.CUT, ExtentType.TWO_SIDES, b.hi, -b.lo)
    pb.register(plane, poly_to(sh.loop_polygon(loops), face.plane, plane), b.lo, b.hi)
