"""Intersect: trimming a box-like base with a cross-section extruded across it.

The rarest operation in DeepCAD, used to round, chamfer or arch the edges of a block in one go.
Only tried right after the base, on box-like outlines, because it reshapes the whole body.
"""

from __future__ import annotations

import numpy as np

from cadvlm.cad.model import Arc, ExtentType, Line, Operation
from cadvlm.synth import shapes as sh
from cadvlm.synth.frames import make_plane


def add_intersect(pb, budget: int) -> int:
    """Trim the base with a cross-section extruded across it: rounded, chamfered or arched edges."""
    b, top = pb.base, pb.top()
    if top is None or not b.rectish or len(pb.extrudes) != 1 or b.hi - b.lo < 2.0:
        return 0
    lo, hi, X, Y = pb.rect_axes()
    ax = int(pb.rng.integers(2))
    A3, B3 = (X, Y) if ax == 0 else (Y, X)
    a_lo, a_hi, b_lo, b_hi = lo[ax], hi[ax], lo[1 - ax], hi[1 - ax]
    N = b.plane.normal
    base_pt = b.plane.to_global(np.zeros(2))
    t = b.hi - b.lo
    width = b_hi - b_lo
    style = pb.pick(("fillet", "chamfer", "arch"), (0.5, 0.3, 0.2))
    m = pb.u.nice(max(1.0, 0.1 * t))
    ca = pb.u.snap((a_lo + a_hi) / 2)
    half = pb.u.nice((a_hi - a_lo) / 2 + m)

    def P(bb, o):
        return base_pt + A3 * ca + B3 * bb + N * o

    if style == "arch":
        if width / 2 > t * 1.5:
            return 0
        plane = make_plane(P((b_lo + b_hi) / 2, b.lo), A3 if pb.chance(0.5) else -A3, up=N,
                           origin_at_point=pb.chance(0.4))
        yb = b.lo - m
        r = width / 2
        pts = plane.to_local(np.array([P(b_lo, yb), P(b_hi, yb), P(b_hi, b.hi - r), P(b_lo, b.hi - r),
                                       P((b_lo + b_hi) / 2, b.hi)]))
        q = [np.array([sh.rnd(v) for v in p]) for p in pts]
        loop = [Line(q[0], q[1]), Line(q[1], q[2]), Arc(q[2], q[4], q[3]), Line(q[3], q[0])]
        if b.hi - r <= b.lo + 0.5:
            return 0
    else:
        r = pb.u.length(pb.rng, max(0.5, min(t, width / 2) * 0.2), min(t, width / 2) * 0.9)
        if r >= min(t, width / 2):
            return 0
        verts3 = np.array([P(b_lo, b.lo - m), P(b_hi, b.lo - m), P(b_hi, b.hi), P(b_lo, b.hi)])
        plane = make_plane(P((b_lo + b_hi) / 2, b.lo), A3 if pb.chance(0.5) else -A3, up=N,
                           origin_at_point=pb.chance(0.4))
        v2 = [[sh.rnd(v) for v in p] for p in plane.to_local(verts3)]
        loop = sh.polygon_loop(v2, [None, None, (style, r), (style, r)])
    if pb.chance(0.8):
        pb.add(plane, [loop], Operation.INTERSECT, ExtentType.SYMMETRIC, half)
    else:
        pb.add(plane, [loop], Operation.INTERSECT, ExtentType.TWO_SIDES, half, half)
    if style == "arch":
        pb.faces = [f for f in pb.faces if f.kind not in ("top", "side")]
    else:
        for sgn, edge in ((1, b_lo), (-1, b_hi)):
            strip = np.array([P(edge - sgn * 50 * m, b.hi), P(edge + sgn * r, b.hi)])
            a0, a1 = A3 * (a_lo - ca - m), A3 * (a_hi - ca + m)
            quad = np.array([strip[0] + a0, strip[1] + a0, strip[1] + a1, strip[0] + a1])
            top.forbidden.append(top.plane.to_local(quad))
        pb.faces = [f for f in pb.faces if not (f.kind == "side" and abs(float(f.plane.normal @ A3)) < 1e-6)]
    pb.features.append(f"intersect:{style}")
    return 1
