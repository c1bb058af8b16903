"""The base body: the first extrude of every synthetic part, and the faces it offers.

About half of DeepCAD's models are this one extrude alone, so it carries much of the data set's
look: the outline (plates, discs, polygons, L/T/U/I sections, slots, lugs, D shafts, trapezoids,
triangles, with fillets or chamfers), where it sits relative to the origin, how thick it is and
with which extent, and the holes drawn in the same sketch. It also sets up the faces later
features are sketched on: top, bottom and the straight sides.
"""

from __future__ import annotations

import numpy as np

from cadvlm.cad.model import ExtentType, Line, Operation
from cadvlm.synth import shapes as sh
from cadvlm.synth.frames import Base, Face, make_plane, poly_to
from cadvlm.synth.placement import hole_loops

# Base sketch plane normals and how often designers start on them.
BASE_NORMALS = ((0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 1, 0), (0, 0, -1), (-1, 0, 0))
BASE_NORMAL_P = (0.50, 0.30, 0.12, 0.03, 0.03, 0.02)


def build_base(pb, inner_loops: int | None = None) -> None:
    rng, u = pb.rng, pb.u
    normal = np.array(pb.pick(BASE_NORMALS, BASE_NORMAL_P), dtype=np.float64)
    offset = u.length(rng, 2, 40) * pb.pick((1, -1)) if pb.chance(0.06) else 0.0
    plane = make_plane(normal * offset, normal)
    lo_s, hi_s = pb.size_range
    size = u.length(rng, lo_s, hi_s)
    kind = pb.pick(
        ("rect", "rrect", "chamfer", "circle", "obround", "polygon", "L", "T", "U", "I", "cross", "step",
         "lug", "D", "trapezoid", "triangle"),
        (0.19, 0.13, 0.04, 0.20, 0.05, 0.05, 0.07, 0.04, 0.04, 0.02, 0.02, 0.03, 0.05, 0.02, 0.02, 0.03))
    curves, rectish = _outline(pb, kind, size)
    # Where the outline sits: centred on the origin, a corner on it, or somewhere else.
    lo, hi = sh.loop_polygon(curves).min(axis=0), sh.loop_polygon(curves).max(axis=0)
    anchor = pb.pick(("center", "corner", "offset"), (0.5, 0.4, 0.1))
    if anchor == "center":
        shift = -np.array([u.snap(v) for v in (lo + hi) / 2])
    elif anchor == "corner":
        shift = -lo
    else:
        shift = -np.array([u.snap(v) for v in (lo + hi) / 2]) + np.array(
            [u.snap(pb.uniform(-0.5, 0.5) * size) for _ in range(2)])
    curves = sh.normalize_loop(sh.translate(curves, shift))
    outer = sh.loop_polygon(curves)

    # Thickness: plates, blocks and long extrusions (shafts, profiles).
    mode = pb.pick(("plate", "block", "long"), (0.55, 0.27, 0.18))
    ratio = {"plate": (0.03, 0.25), "block": (0.25, 0.8), "long": (0.8, 3.0)}[mode]
    t = u.length(rng, max(size * ratio[0], 0.8), min(size * ratio[1], 300.0))
    ext = pb.pick((ExtentType.ONE_SIDE, ExtentType.SYMMETRIC, ExtentType.TWO_SIDES), (0.80, 0.16, 0.04))
    if ext == ExtentType.ONE_SIDE:
        e1, e2 = (t, 0.0) if pb.chance(0.82) else (-t, 0.0)
        lo_d, hi_d = min(0.0, e1), max(0.0, e1)
    elif ext == ExtentType.SYMMETRIC:
        e1, e2 = u.nice(t / 2), 0.0
        lo_d, hi_d = -e1, e1
    else:
        e1 = u.nice(pb.uniform(0.2, 0.8) * t)
        e2 = u.nice(max(t - e1, u.step(t)))
        lo_d, hi_d = -e2, e1

    pb.base = Base(plane, kind, outer, [], lo_d, hi_d, size, rectish)
    top = Face(make_plane(plane.to_global(np.zeros(2)) + hi_d * plane.normal, plane.normal), None, hi_d - lo_d,
               "top")
    top.outer = poly_to(outer, plane, top.plane)
    # Holes drawn in the base profile itself (the most common single-extrude part).
    if inner_loops is None:
        inner_loops = int(pb.pick((0, 1, 2, 3, 4, 5), (0.5, 0.22, 0.11, 0.04, 0.1, 0.03)))
    inner = []
    if inner_loops:
        tmp = Face(plane, outer, hi_d - lo_d, "top")
        inner = hole_loops(pb, tmp, inner_loops, allow_shapes=True, concentric=kind in ("circle", "polygon"))
    for lp in inner:
        pb.base.holes.append(sh.loop_polygon(lp))
    pb.add(plane, [curves] + inner, Operation.NEW_BODY, ext, e1, e2)
    pb.features.append(f"base:{kind}")

    # Faces: top and bottom (same outline and holes), and the straight sides.
    bottom = Face(make_plane(plane.to_global(np.zeros(2)) + lo_d * plane.normal, -plane.normal), None,
                  hi_d - lo_d, "bottom")
    bottom.outer = poly_to(outer, plane, bottom.plane)
    for f in (top, bottom):
        f.forbidden = [poly_to(h, plane, f.plane) for h in pb.base.holes]
        f.edges = [(poly_to(np.array([c.start, c.end]), plane, f.plane)) for c in curves if isinstance(c, Line)]
    pb.faces += [top, bottom]
    for c in curves:
        if isinstance(c, Line) and np.linalg.norm(c.end - c.start) >= 4.0 and hi_d - lo_d >= 3.0:
            pb.faces.append(_side_face(pb, c))


def _side_face(pb, line: Line) -> Face:
    b = pb.base
    p0, p1 = line.start, line.end
    d = (p1 - p0) / np.linalg.norm(p1 - p0)
    out2 = np.array([d[1], -d[0]])  # outward for a counter-clockwise outline
    n3 = out2[0] * b.plane.x_axis + out2[1] * b.plane.y_axis
    g0, g1 = b.plane.to_global(p0), b.plane.to_global(p1)
    N = b.plane.normal
    plane = make_plane(g0 + N * b.lo, n3, up=N)
    quad = np.array([g0 + N * b.lo, g1 + N * b.lo, g1 + N * b.hi, g0 + N * b.hi])
    face = Face(plane, plane.to_local(quad), 0.0, "side")
    face.side = {"p0": p0, "p1": p1, "in": -out2}
    return face


def _outline(pb, kind: str, size: float):
    """An outline of the given kind whose larger side is about `size` (mm), CCW; rectish says
    whether the outline is box-like enough for grooves and intersections across it."""
    u, rng = pb.u, pb.rng
    w = size
    h = u.length(rng, max(size * 0.25, 3), size)
    if pb.chance(0.5):
        w, h = h, w
    small = min(w, h)

    def corners(n, p_any=0.3, chamfer=False):
        if not pb.chance(p_any):
            return None
        r = u.length(rng, max(small * 0.04, 0.5), small * 0.2)
        mode = "chamfer" if chamfer else "fillet"
        pick_all = pb.chance(0.6)
        return [(mode, r) if (pick_all or pb.chance(0.5)) else None for _ in range(n)]

    if kind == "rect":
        return sh.rect(w, h), True
    if kind == "rrect":
        r = u.length(rng, max(small * 0.05, 0.5), small * 0.45)
        if r >= small / 2 - 1e-9:
            r = u.nice(small * 0.3)
        mask = [True] * 4 if pb.chance(0.7) else [pb.chance(0.6) for _ in range(4)]
        return sh.rect(w, h, corners=[("fillet", r) if m else None for m in mask]), True
    if kind == "chamfer":
        c = u.length(rng, max(small * 0.05, 0.5), small * 0.3)
        mask = [True] * 4 if pb.chance(0.7) else [pb.chance(0.6) for _ in range(4)]
        return sh.rect(w, h, corners=[("chamfer", c) if m else None for m in mask]), True
    if kind == "circle":
        return sh.circle(u.nice(size / 2)), False
    if kind == "obround":
        w2, h2 = max(w, h), u.length(rng, max(size * 0.2, 2), size * 0.6)
        return (sh.obround(w2, h2) if pb.chance(0.6) else sh.obround(h2, w2)), True
    if kind == "polygon":
        n = int(pb.pick((3, 5, 6, 8), (0.1, 0.15, 0.6, 0.15)))
        return sh.regular_polygon(n, size), False
    if kind in ("L", "T", "U", "I", "cross", "step"):
        t1 = u.length(rng, max(small * 0.12, 1, 2 * u.fine), small * 0.4)
        t2 = u.length(rng, max(small * 0.12, 1, 2 * u.fine), small * 0.4)
        if kind == "L":
            verts = sh.l_verts(w, h, t1, t2)
        elif kind == "T":
            verts = sh.t_verts(w, h, t1, min(t2, w * 0.5))
        elif kind == "U":
            verts = sh.u_verts(w, h, min(t1, w * 0.3), min(t2, h * 0.6))
        elif kind == "I":
            verts = sh.i_verts(w, h, min(t1, h * 0.3), min(t2, w * 0.5))
        elif kind == "cross":
            verts = sh.cross_verts(w, h, min(t1, h * 0.5), min(t2, w * 0.5))
        else:
            steps = int(pb.pick((2, 3), (0.7, 0.3)))
            verts = sh.step_verts(u.nice(w / steps) * steps, u.nice(h / steps) * steps, steps)
        verts = [(u.snap(x), u.snap(y)) for x, y in verts]
        if len(sh.proper_vertices([np.array(v, dtype=np.float64) for v in verts])) < len(verts):
            raise ValueError(f"{kind} outline collapsed when snapped to the grid")
        corner = None
        if pb.chance(0.3) and len(verts) <= 8:
            edge_min = min(np.linalg.norm(np.subtract(verts[i], verts[i - 1])) for i in range(len(verts)))
            r = u.nice(pb.uniform(0.15, 0.4) * edge_min)
            if r > 0.2 and r < edge_min / 2:
                corner = [("fillet", r) if pb.chance(0.5) else None for _ in verts]
        return sh.polygon_loop(verts, corner), kind in ("U", "step")
    if kind == "lug":
        ww = u.nice(min(w, h))
        hh = u.nice(max(max(w, h), ww * 0.75))
        return sh.lug(ww, hh), False
    if kind == "D":
        r = u.nice(size / 2)
        return sh.d_shape(r, u.nice(r * pb.uniform(0.5, 0.85))), False
    if kind == "trapezoid":
        wt = u.nice(w * pb.uniform(0.3, 0.8))
        verts = [(u.snap(x), u.snap(y)) for x, y in sh.trapezoid_verts(w, wt, h)]
        return sh.polygon_loop(verts, corners(4)), False
    # right triangle (gusset plates)
    verts = [(0.0, 0.0), (w, 0.0), (0.0, h)]
    return sh.polygon_loop(verts, corners(3, p_any=0.2)), False
