"""Cuts into the base's edges and sides: grooves across it, notches in an edge, side holes.

These features are sketched against the base's outline rather than inside a face: a groove or
slot runs from one side to the other (a Symmetric or TwoSides cut on a cross plane), a notch
bites a rectangle out of a straight edge, and a side hole is drilled into a side face, blind or
right through a convex part. Each removes or trims the side faces it breaks.
"""

from __future__ import annotations

import math

import numpy as np

from cadvlm.cad.model import ExtentType, Operation
from cadvlm.synth import shapes as sh
from cadvlm.synth.frames import make_plane, poly_to, reproject
from cadvlm.synth.placement import place


def add_groove(pb, budget: int) -> int:
    """A slot or groove straight across the top (Symmetric / TwoSides cut on a cross plane)."""
    b, top = pb.base, pb.top()
    if top is None or not b.rectish or b.hi - b.lo < 3.0:
        return 0
    lo, hi, X, Y = pb.rect_axes()
    ax = int(pb.rng.integers(2))  # groove runs along the other axis, cut plane normal = axis ax
    A3 = X if ax == 0 else Y
    B3 = Y if ax == 0 else X
    a_lo, a_hi = lo[ax], hi[ax]
    b_lo, b_hi = lo[1 - ax], hi[1 - ax]
    span_a = a_hi - a_lo
    wg = pb.u.length(pb.rng, max(1.0, span_a * 0.08), span_a * 0.35)
    t = b.hi - b.lo
    dg = pb.u.length(pb.rng, max(0.5, t * 0.2), t * 0.6)
    if dg >= t * 0.75:
        return 0
    ca = pb.u.snap((a_lo + a_hi) / 2 if pb.chance(0.6) else pb.uniform(a_lo + wg, a_hi - wg))
    if ca - wg / 2 < a_lo + 1.0 or ca + wg / 2 > a_hi - 1.0:
        return 0
    margin = pb.u.nice(max(1.0, (b_hi - b_lo) * 0.05))
    N = b.plane.normal
    base_pt = b.plane.to_global(np.zeros(2))

    def P(a, bb, o):
        return base_pt + A3 * a + B3 * bb + N * o

    strip = np.array([P(ca - wg / 2, b_lo - margin, b.hi), P(ca + wg / 2, b_lo - margin, b.hi),
                      P(ca + wg / 2, b_hi + margin, b.hi), P(ca - wg / 2, b_hi + margin, b.hi)])
    strip_top = top.plane.to_local(strip)
    for f in top.forbidden:
        if sh.points_in_polygon(f, strip_top).any() or sh.points_in_polygon(strip_top, f).any() or \
                sh.polygon_distance(f, strip_top) < 0.5:
            return 0
    normal = A3 if pb.chance(0.5) else -A3
    plane = make_plane(P(ca, (b_lo + b_hi) / 2, b.hi), normal, up=N, origin_at_point=pb.chance(0.3))
    quad = np.array([P(ca, b_lo - margin, b.hi - dg), P(ca, b_hi + margin, b.hi - dg),
                     P(ca, b_hi + margin, b.hi + margin), P(ca, b_lo - margin, b.hi + margin)])
    loop = sh.polygon_loop([[sh.rnd(v) for v in p] for p in plane.to_local(quad)])
    if pb.chance(0.75):
        pb.add(plane, [loop], Operation.CUT, ExtentType.SYMMETRIC, pb.u.nice(wg / 2))
    else:
        e1 = pb.u.nice(wg * pb.uniform(0.3, 0.7))
        e2 = pb.u.nice(max(wg - e1, 0.5))
        pb.add(plane, [loop], Operation.CUT, ExtentType.TWO_SIDES, e1, e2)
        wg = e1 + e2
    top.forbidden.append(strip_top)
    # sides crossed by the groove lose their top band: drop them
    pb.faces = [f for f in pb.faces if not (f.kind == "side" and abs(float(f.plane.normal @ A3)) < 1e-6)]
    pb.features.append("groove")
    return 1


def add_notch(pb, budget: int) -> int:
    """A rectangular notch cut into a straight edge of the top face."""
    b, top = pb.base, pb.top()
    if top is None or not top.edges:
        return 0
    e = top.edges[int(pb.rng.integers(len(top.edges)))]
    length = float(np.linalg.norm(e[1] - e[0]))
    if length < 10.0:
        return 0
    p0, p1, d2, inward, mid, depth_in = pb.edge_inward(e, top)
    if not math.isfinite(depth_in) or depth_in < 6.0:
        return 0
    wn = pb.u.length(pb.rng, max(2.0, length * 0.15), length * 0.5)
    dn = pb.u.length(pb.rng, max(1.0, depth_in * 0.1), depth_in * 0.35)
    s = pb.u.snap(length / 2 if pb.chance(0.6) else pb.uniform(wn / 2 + 2, length - wn / 2 - 2))
    if s - wn / 2 < 1.5 or s + wn / 2 > length - 1.5:
        return 0
    margin = pb.u.nice(max(1.0, dn * 0.5))
    c0 = p0 + d2 * (s - wn / 2)
    c1 = p0 + d2 * (s + wn / 2)
    quad = np.array([c0 - inward * margin, c1 - inward * margin, c1 + inward * dn, c0 + inward * dn])
    inner = np.array([c0, c1, c1 + inward * dn, c0 + inward * dn])
    inner_top = poly_to(inner, b.plane, top.plane)
    for f in top.forbidden:
        if sh.points_in_polygon(f, inner_top).any() or sh.points_in_polygon(inner_top, f).any() or \
                sh.polygon_distance(f, inner_top) < 0.8:
            return 0
    # the notch must not break into the outline elsewhere (concave outlines)
    if not sh.points_in_polygon(inner[2:] + 0.0, b.outer).all():
        return 0
    through = pb.chance(0.6)
    t = b.hi - b.lo
    depth = t if through else pb.u.nice(t * pb.uniform(0.3, 0.7))
    if not through and depth >= t:
        return 0
    quad_top = poly_to(quad, b.plane, top.plane)
    loop = sh.polygon_loop([[sh.rnd(v) for v in p] for p in quad_top])
    flip = pb.chance(0.3)
    plane = pb.sketch_plane(top, flip=flip)
    pb.add(plane, [reproject(loop, top.plane, plane)], Operation.CUT, ExtentType.ONE_SIDE,
             depth if flip else -depth)
    pb.register(top.plane, quad_top, -depth, 0.0)
    top.edges = [ed for ed in top.edges if ed is not e]
    g0 = b.plane.to_global(p0)
    n3 = -(inward[0] * b.plane.x_axis + inward[1] * b.plane.y_axis)
    pb.faces = [f for f in pb.faces if not (f.kind == "side" and abs(float(f.plane.normal @ n3) - 1) < 1e-9
                                                and abs(float((f.plane.origin - g0) @ n3)) < 1e-6)]
    pb.features.append("notch")
    return 1


def add_side_holes(pb, budget: int) -> int:
    """A hole drilled into a side face of the base (blind, or through a convex part)."""
    b = pb.base
    faces = [f for f in pb.faces if f.kind == "side" and min(f.size) >= 4.0]
    if not faces:
        return 0
    face = faces[int(pb.rng.integers(len(faces)))]
    t = b.hi - b.lo
    n = 2 if budget >= 2 and face.size[0] > 6 * t and pb.chance(0.4) else 1
    d = pb.u.hole_diameter(pb.rng, max(1.0, t * 0.15), t * 0.55)
    if d is None:
        return 0
    placed = place(pb, face, n, lambda c: sh.circle(d / 2, *c), d, max(0.6, t * 0.12))
    if not placed:
        return 0
    added = 0
    for curves in placed:
        c = curves[0].center
        base_c = b.plane.to_local(face.plane.to_global(c))
        inw = face.side["in"]
        along = np.array([-inw[1], inw[0]])
        rays = [sh.ray_depth(base_c + along * k * d / 2 * 0.9 + inw * 1e-6, inw, [b.outer] + b.holes)
                for k in (-1, 0, 1)]
        outer_rays = [sh.ray_depth(base_c + along * k * d / 2 * 0.9 + inw * 1e-6, inw, [b.outer])
                      for k in (-1, 0, 1)]
        if not all(math.isfinite(r) for r in rays) or min(rays) < 2.0:
            continue
        if max(outer_rays) - min(outer_rays) < 1e-6 and pb.chance(0.4):
            depth = sh.rnd(outer_rays[1])
        else:
            depth = pb.u.nice(min(rays) * pb.uniform(0.3, 0.8))
            if depth >= min(rays):
                continue
        flip = pb.chance(0.3)
        plane = pb.sketch_plane(face, flip=flip)
        pb.add(plane, [reproject(curves, face.plane, plane)], Operation.CUT, ExtentType.ONE_SIDE,
                 depth if flip else -depth)
        face.forbidden.append(sh.loop_polygon(curves))
        added += 1
    if added:
        pb.features.append(f"side_holes:{added}")
    return added
