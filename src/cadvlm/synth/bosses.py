"""Material added on top of a face: bosses (pins, pads, rings) and hubs through the base.

A boss stands on a face (one to four of them, round, annular, rectangular, polygonal or slot
shaped) and its top becomes a face of its own; a hub is a cylinder sketched on the base's plane
that sticks out of both sides (a TwoSides extrude), optionally bored.
"""

from __future__ import annotations

from cadvlm.cad.model import ExtentType, Operation
from cadvlm.synth import shapes as sh
from cadvlm.synth.frames import Face, make_plane, poly_to, reproject
from cadvlm.synth.placement import place, shape_at


def add_bosses(pb, budget: int) -> int:
    weights = {"top": 5.0, "bottom": 1.2, "boss": 2.0}
    faces = pb.faces_of(*weights)
    if not faces:
        return 0
    face = pb.pick(faces, [weights[f.kind] for f in faces])
    counts = [k for k in (1, 2, 4) if k <= budget]
    n = int(pb.pick(counts, [(0.72, 0.13, 0.15)[(1, 2, 4).index(k)] for k in counts]))
    kind = pb.pick(("circle", "annulus", "rect", "rrect", "hexagon", "obround"),
                     (0.42, 0.18, 0.11, 0.13, 0.07, 0.09))
    m = float(min(face.size))
    hi = m * (0.8 if n == 1 else 0.35)
    size = pb.u.length(pb.rng, max(m * 0.15, 1.5), hi)
    shape = "circle" if kind == "annulus" else kind
    extent = size * (3.0 if kind == "obround" else 2.0 if kind in ("rect", "rrect") else 1.0)
    long_x = bool(face.size[0] >= face.size[1])
    placed = place(pb, face, n, lambda c: shape_at(pb, shape, size, c, long_x), extent, max(0.5, 0.06 * m))
    if not placed:
        return 0
    h = pb.u.length(pb.rng, max(size * 0.15, 0.8), size * 1.6)
    op = Operation.NEW_BODY if pb.chance(0.15) else Operation.JOIN
    for curves in placed:
        loops = [curves]
        top_forbidden = []
        if kind == "annulus":
            inner = sh.circle(pb.u.nice(size / 2 * pb.uniform(0.35, 0.7)), *curves[0].center)
            loops.append(inner)
            top_forbidden.append(sh.loop_polygon(inner))
        flip = pb.chance(0.2)
        plane = pb.sketch_plane(face, flip=flip)
        pb.add(plane, [reproject(lp, face.plane, plane) for lp in loops], op, ExtentType.ONE_SIDE,
                 -h if flip else h)
        poly = sh.loop_polygon(curves)
        pb.register(face.plane, poly, 0.0, h)
        top_plane = make_plane(face.plane.to_global(sh.loop_polygon(curves).mean(axis=0)) + h * face.plane.normal,
                               face.plane.normal, up=pb.sketch_up(face))
        pb.faces.append(Face(top_plane, poly_to(poly, face.plane, top_plane), h + face.depth, "boss",
                               forbidden=[poly_to(p, face.plane, top_plane) for p in top_forbidden]))
    pb.features.append(f"boss:{kind}:{n}")
    return n


def add_hub(pb, budget: int) -> int:
    """A cylinder through the base from its sketch plane, out both sides (TwoSides)."""
    b = pb.base
    top = next((f for f in pb.faces if f.kind == "top"), None)
    bottom = next((f for f in pb.faces if f.kind == "bottom"), None)
    if top is None or bottom is None:
        return 0
    m = float(min(top.size))
    d = pb.u.length(pb.rng, max(m * 0.15, 2), m * 0.6)
    placed = place(pb, top, 1, lambda c: sh.circle(d / 2, *c), d, max(0.8, 0.1 * m),
                         extra_forbidden=[poly_to(p, bottom.plane, top.plane) for p in bottom.forbidden])
    if not placed:
        return 0
    c = placed[0][0].center
    a = pb.u.length(pb.rng, max(d * 0.1, 0.8), d * 1.0)
    bb = pb.u.length(pb.rng, max(d * 0.1, 0.8), d * 1.0)
    plane = make_plane(top.plane.to_global(c) - b.hi * b.plane.normal, b.plane.normal,
                       origin_at_point=pb.chance(0.3))
    loops = [reproject(placed[0], top.plane, plane)]
    bore = pb.chance(0.5)
    if bore:
        loops.append(sh.circle(pb.u.nice(d / 2 * pb.uniform(0.3, 0.65)), *loops[0][0].center))
    pb.add(plane, loops, Operation.JOIN, ExtentType.TWO_SIDES, b.hi + a, -b.lo + bb)
    poly = sh.loop_polygon(placed[0])
    pb.register(top.plane, poly, -(b.hi - b.lo) - bb, a)
    for sign, off in ((1, b.hi + a), (-1, b.lo - bb)):
        fp = make_plane(plane.to_global(loops[0][0].center) + (off) * b.plane.normal, sign * b.plane.normal,
                        up=None)
        face = Face(fp, poly_to(sh.loop_polygon(loops[0]), plane, fp), b.hi - b.lo + a + bb, "boss")
        if bore:
            face.forbidden.append(poly_to(sh.loop_polygon(loops[1]), plane, fp))
        pb.faces.append(face)
    pb.features.append("hub")
    return 1
