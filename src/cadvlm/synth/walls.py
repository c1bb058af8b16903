"""Walls standing on a straight edge of the base, and the gussets that brace them.

L brackets, U channels and open boxes are a plate with walls on its edges; a gusset is a
triangular rib between a wall and the plate, extruded Symmetric on a cross plane. The builder
keeps each wall's frame (`PartBuilder.walls`) so gussets can find it later.
"""

from __future__ import annotations

import math

import numpy as np

from cadvlm.cad.model import ExtentType, Operation
from cadvlm.synth import shapes as sh
from cadvlm.synth.frames import Face, make_plane, poly_to


def add_wall(pb, budget: int) -> int:
    """A wall standing on a straight edge of the base (L brackets, U channels, boxes)."""
    b, top = pb.base, pb.top()
    if top is None or not top.edges:
        return 0
    edges = sorted(top.edges, key=lambda e: -float(np.linalg.norm(e[1] - e[0])))
    e = edges[0] if pb.chance(0.6) or len(edges) == 1 else edges[int(pb.rng.integers(len(edges)))]
    length = float(np.linalg.norm(e[1] - e[0]))
    if length < 8.0:
        return 0
    p0, p1, d2, inward, mid, depth_in = pb.edge_inward(e, top)
    if not math.isfinite(depth_in) or depth_in < 4.0:
        return 0
    # Walls about as thick as the plate they stand on (bent or welded sheet), not fins.
    t = b.hi - b.lo
    tw = pb.u.length(pb.rng, max(0.8, min(t * 0.6, depth_in * 0.2)), max(0.8, min(t * 1.5, depth_in * 0.35)))
    if tw >= depth_in * 0.5:
        return 0
    H = pb.u.length(pb.rng, max(b.size * 0.2, 3.0, 2 * tw), b.size * 0.8)
    if pb.chance(0.3):  # a wall over part of the edge, centred
        part = pb.u.nice(length * pb.uniform(0.4, 0.8))
        t0 = (length - part) / 2
        q0, q1 = p0 + d2 * t0, p0 + d2 * (t0 + part)
    else:
        q0, q1 = p0, p1
    strip = np.array([q0, q1, q1 + inward * tw, q0 + inward * tw])
    strip_top = poly_to(strip, b.plane, top.plane)
    for f in top.forbidden:
        if sh.points_in_polygon(f, strip_top).any() or sh.points_in_polygon(strip_top, f).any() or \
                sh.polygon_distance(f, strip_top) < 0.5:
            return 0
    N = b.plane.normal
    g0, g1 = b.plane.to_global(q0), b.plane.to_global(q1)
    n3 = -(inward[0] * b.plane.x_axis + inward[1] * b.plane.y_axis)
    quad = np.array([g0 + N * b.lo, g1 + N * b.lo, g1 + N * (b.hi + H), g0 + N * (b.hi + H)])
    on_point = pb.chance(0.35)
    plane = make_plane(g0 + N * b.lo, n3, up=N, origin_at_point=on_point)
    flip = pb.chance(0.25)
    if flip:
        plane = make_plane(g0 + N * b.lo, -n3, up=N, origin_at_point=on_point)
    rect = plane.to_local(quad)
    loop = sh.polygon_loop([[sh.rnd(v) for v in p] for p in rect])
    pb.add(plane, [loop], Operation.JOIN, ExtentType.ONE_SIDE, tw if flip else -tw)
    pb.register(b.plane, strip, b.lo - 1e-6, b.hi + H)  # the strip is taken on top and bottom
    top.edges = [ed for ed in top.edges if ed is not e]
    # the side face under the wall is gone
    pb.faces = [f for f in pb.faces if not (f.kind == "side" and abs(float(f.plane.normal @ n3) - 1) < 1e-9
                                                and abs(float((f.plane.origin - g0) @ n3)) < 1e-6)]
    above = np.array([g0 + N * b.hi, g1 + N * b.hi, g1 + N * (b.hi + H), g0 + N * (b.hi + H)])
    outer_plane = make_plane(g0, n3, up=N)
    inner_plane = make_plane(g0 - n3 * tw, -n3, up=N)
    for fp in (outer_plane, inner_plane):
        pb.faces.append(Face(fp, fp.to_local(above), tw, "wall"))
    pb.walls.append({"g0": g0, "g1": g1, "n3": n3, "tw": tw, "H": H, "in_depth": depth_in,
                       "faces": pb.faces[-2:]})
    pb.features.append("wall")
    return 1


def add_gussets(pb, budget: int) -> int:
    """Triangular ribs between a wall and the base (Symmetric extrudes on a cross plane)."""
    if not pb.walls:
        return 0
    b, top = pb.base, pb.top()
    w = pb.walls[int(pb.rng.integers(len(pb.walls)))]
    N, n3, tw, H = b.plane.normal, w["n3"], w["tw"], w["H"]
    g0, g1 = w["g0"], w["g1"]
    length = float(np.linalg.norm(g1 - g0))
    e3 = (g1 - g0) / length
    gt = pb.u.length(pb.rng, max(0.8, tw * 0.5), tw * 1.2)
    leg_in = pb.u.length(pb.rng, max(2.0, (w["in_depth"] - tw) * 0.25), (w["in_depth"] - tw) * 0.8)
    leg_up = pb.u.length(pb.rng, max(2.0, H * 0.3), H * 0.95)
    if leg_in + tw >= w["in_depth"] or leg_up > H:
        return 0
    n = 2 if (budget >= 2 and length > 8 * gt and pb.chance(0.5)) else 1
    margin = gt / 2 + max(1.0, gt)
    if length < 2 * margin + gt:
        return 0
    pos = [length / 2] if n == 1 else [pb.u.snap(margin + gt), pb.u.snap(length - margin - gt)]
    added = 0
    for s in pos:
        c = g0 + e3 * s + N * b.hi - n3 * (tw / 2)
        tri3 = np.array([c, c - n3 * (tw / 2 + leg_in), c + N * leg_up])
        foot = np.array([c - e3 * gt / 2, c + e3 * gt / 2, c + e3 * gt / 2 - n3 * (tw / 2 + leg_in),
                         c - e3 * gt / 2 - n3 * (tw / 2 + leg_in)])
        foot_top = top.plane.to_local(foot) if top else None
        if top is not None and any(sh.points_in_polygon(f, foot_top).any() or
                                   sh.points_in_polygon(foot_top, f).any() or
                                   sh.polygon_distance(f, foot_top) < 0.5
                                   for f in top.forbidden if f is not None):
            continue
        plane = make_plane(c, e3 if pb.chance(0.5) else -e3, up=N, origin_at_point=pb.chance(0.3))
        tri = plane.to_local(tri3)
        pb.add(plane, [sh.polygon_loop([[sh.rnd(v) for v in p] for p in tri])], Operation.JOIN,
                 ExtentType.SYMMETRIC, pb.u.nice(gt / 2))
        if top is not None:
            top.forbidden.append(foot_top)
        for wf in w["faces"]:
            wf.forbidden.append(wf.plane.to_local(np.array(
                [c - e3 * gt / 2, c + e3 * gt / 2, c + e3 * gt / 2 + N * leg_up, c - e3 * gt / 2 + N * leg_up])))
        added += 1
    if added:
        pb.features.append(f"gusset:{added}")
    return added
