"""Where a hole or boss goes on a face: its shape, the pattern of centres, and the fit test.

Holes in the base's own sketch, hole patterns, pockets, bosses, hubs and side holes all place
shapes on a face the same way: a shape of a given kind and size (circle, slot, rectangle,
rounded rectangle, polygon), a pattern a designer would use (centred, on a bolt circle, in a
row or a grid), and a check that every shape lies inside the face with a margin and clear of
what is already there. Those shared steps live here so each feature family keeps to its own
decisions. Functions take the part's `PartBuilder` first, for its random draws and units.
"""

from __future__ import annotations

import math

import numpy as np

from cadvlm.synth import shapes as sh
from cadvlm.synth.frames import Face


def shape_at(pb, kind: str, size: float, c, angle_long: bool):
    """A hole / boss shape of characteristic size `size` centred at c (face-local)."""
    u = pb.u
    cx, cy = c
    if kind == "circle":
        return sh.circle(size / 2, cx, cy)
    if kind == "obround":
        ln = u.nice(size * pb.uniform(1.6, 3.0))
        return sh.obround(ln, size, cx, cy) if angle_long else sh.obround(size, ln, cx, cy)
    if kind == "rect":
        w2 = u.nice(size * pb.uniform(1.0, 1.8))
        return sh.rect(w2, size, cx, cy) if angle_long else sh.rect(size, w2, cx, cy)
    if kind == "rrect":
        w2 = u.nice(size * pb.uniform(1.0, 2.0))
        r = u.nice(size * pb.uniform(0.1, 0.35))
        dims = (w2, size) if angle_long else (size, w2)
        return sh.rect(*dims, cx, cy, corners=[("fillet", r)] * 4)
    if kind == "hexagon":
        return sh.regular_polygon(6, size, cx, cy)
    if kind == "octagon":
        return sh.regular_polygon(8, size, cx, cy)
    raise ValueError(kind)


def pattern_centres(pb, face: Face, n: int, extent: float):
    """Candidate centres for n features of bounding size `extent` on the face (face-local)."""
    u = pb.u
    lo, hi = face.outer.min(axis=0), face.outer.max(axis=0)
    size = hi - lo
    c = np.array([u.snap(v) for v in (lo + hi) / 2])
    long_x = size[0] >= size[1]
    inset = extent / 2 + max(1.0, 0.15 * extent)

    def lin(i_axis, a):
        v = np.zeros(2)
        v[i_axis] = a
        return v

    def span(i_axis):
        room = size[i_axis] / 2 - inset
        if room <= 0:
            return None
        return u.snap(room * pb.uniform(0.45, 1.0))

    ax = 0 if long_x else 1
    style = pb.rng.random()
    if n == 1:
        if style < 0.55:
            return [c]
        return [np.array([u.snap(pb.uniform(lo[0], hi[0])), u.snap(pb.uniform(lo[1], hi[1]))])]
    round_face = abs(size[0] - size[1]) < 1e-6 and face.kind in ("top", "bottom", "boss") and n >= 3
    if round_face or (n >= 3 and style < 0.25):
        rad = u.snap(min(size) / 2 * pb.uniform(0.4, 0.75))
        a0 = pb.pick((0.0, math.pi / n, math.pi / 2))
        return [c + rad * np.array([math.cos(a0 + 2 * math.pi * k / n), math.sin(a0 + 2 * math.pi * k / n)])
                for k in range(n)]
    if n == 2:
        a = span(ax)
        return None if a is None else [c - lin(ax, a), c + lin(ax, a)]
    if n == 3:
        a = span(ax)
        return None if a is None else [c - lin(ax, a), c, c + lin(ax, a)]
    if n == 4:
        a, b = span(0), span(1)
        if a is None or b is None:
            return None
        return [c + np.array([sx * a, sy * b]) for sy in (-1, 1) for sx in (-1, 1)]
    if n == 6:
        a, b = span(ax), span(1 - ax)
        if a is None or b is None:
            return None
        return [c + lin(ax, i * a) + lin(1 - ax, j * b) for j in (-1, 1) for i in (-1, 0, 1)]
    return None


def place(pb, face: Face, n: int, make, extent: float, clearance: float, extra_forbidden=()):
    """Shapes (curve lists) for a pattern of n, all fitting the face; None if it does not fit."""
    for _ in range(4):
        centers = pattern_centres(pb, face, n, extent)
        if centers is None:
            continue
        placed, polys = [], []
        for cen in centers:
            curves = make(cen)
            poly = sh.loop_polygon(curves)
            if not sh.fits_inside(poly, face.outer, list(face.forbidden) + list(extra_forbidden) + polys,
                                  clearance):
                break
            placed.append(curves)
            polys.append(poly)
        else:
            return placed
    return None


def hole_kind(pb, allow_shapes: bool):
    if not allow_shapes:
        return "circle"
    return pb.pick(("circle", "obround", "rect", "rrect", "hexagon"), (0.74, 0.1, 0.06, 0.06, 0.04))


def hole_loops(pb, face: Face, count: int, allow_shapes: bool, concentric: bool = False):
    """Loops for holes inside `face` drawn in the same sketch (inner loops of a profile)."""
    u = pb.u
    loops = []
    m = float(min(face.size))
    if concentric and pb.chance(0.6):
        d = u.hole_diameter(pb.rng, m * 0.15, m * 0.7) or u.nice(m * 0.4)
        c = face.center
        hole = sh.circle(d / 2, u.snap(c[0]), u.snap(c[1]))
        if sh.fits_inside(sh.loop_polygon(hole), face.outer, face.forbidden, max(0.8, 0.08 * m)):
            loops.append(hole)
            face = Face(face.plane, face.outer, face.depth, face.kind,
                        forbidden=list(face.forbidden) + [sh.loop_polygon(hole)])
            count -= 1
    if count <= 0:
        return loops
    for n in ([count] + [k for k in (4, 2, 1) if k < count]):
        for _ in range(3):
            kind = hole_kind(pb, allow_shapes)
            d = hole_size(pb, face, n, kind)
            if d is None:
                continue
            extent = d * (3.0 if kind == "obround" else 2.0 if kind in ("rect", "rrect") else 1.0)
            long_x = bool(face.size[0] >= face.size[1])
            placed = place(pb, face, n, lambda c: shape_at(pb, kind, d, c, long_x), extent,
                                 max(0.8, 0.2 * d))
            if placed:
                return loops + placed
    return loops


def hole_size(pb, face: Face, n: int, kind: str):
    u = pb.u
    m = float(min(face.size))
    hi = m * (0.45 if n == 1 else 0.3 / math.sqrt(n / 2))
    lo = max(m * 0.04, 1.0)
    if hi <= lo:
        return None
    if kind == "circle":
        return u.hole_diameter(pb.rng, lo, hi) or u.length(pb.rng, lo, hi)
    return u.length(pb.rng, lo, hi)
