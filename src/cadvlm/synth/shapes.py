"""2-D building blocks of the synthetic generator: units, profile shapes, polygon tests.

Everything here works in millimetres in a sketch's 2-D frame; the generator converts to metres
(DeepCAD's unit) at the very end. Shapes are closed counter-clockwise loops of model curves
(Line / Arc / Circle), so they can go straight into a `Loop`. Containment and clearance tests
run on sampled polygons: exact enough for placing holes "inside the face with a margin", and
free of any geometry dependency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cadvlm.cad.model import Arc, Circle, Line

# Coordinates are rounded to this many decimals of a millimetre: removes float noise (so the
# JSON bytes are stable) while keeping arcs through irrational points (hexagons, fillets on
# slanted corners) exact to a micrometre.
MM_DECIMALS = 6

# Standard hole diameters (mm): metric clearance / tapping sizes and fractional inches.
METRIC_HOLES = (2.0, 2.5, 3.0, 3.2, 3.4, 4.0, 4.5, 5.0, 5.5, 6.0, 6.6, 8.0, 9.0, 10.0, 11.0, 12.0,
                13.5, 14.0, 16.0, 17.5, 20.0, 22.0, 25.0, 30.0, 32.0, 40.0, 50.0)
INCH_HOLES = tuple(x * 25.4 for x in (1 / 16, 3 / 32, 1 / 8, 5 / 32, 3 / 16, 1 / 4, 5 / 16, 3 / 8, 7 / 16,
                                      1 / 2, 5 / 8, 3 / 4, 7 / 8, 1.0, 1.25, 1.5, 2.0))


def rnd(x: float) -> float:
    return round(float(x), MM_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


@dataclass(frozen=True)
class Units:
    """A designer's unit system: what "nice" numbers look like (metric mm or fractional inch)."""

    name: str  # "mm" or "inch"

    @property
    def fine(self) -> float:
        """Grid for positions (mm)."""
        return 0.5 if self.name == "mm" else 25.4 / 32

    def step(self, value: float) -> float:
        """Rounding step for a length of about `value` mm: coarser for bigger lengths."""
        v = abs(value)
        if self.name == "mm":
            for limit, step in ((2.0, 0.1), (10.0, 0.5), (60.0, 1.0), (200.0, 5.0)):
                if v < limit:
                    return step
            return 10.0
        for limit, step in ((0.25, 1 / 32), (1.0, 1 / 16), (4.0, 1 / 4)):
            if v < limit * 25.4:
                return step * 25.4
        return 25.4 / 2

    def nice(self, value: float, minimum: float | None = None) -> float:
        """`value` snapped to a nice number (never below `minimum` or one step)."""
        s = self.step(value)
        out = max(round(value / s), 1) * s
        if minimum is not None and out < minimum:
            out = math.ceil(minimum / s - 1e-9) * s
        return rnd(out)

    def snap(self, value: float) -> float:
        """A position snapped to the fine grid."""
        return rnd(round(value / self.fine) * self.fine)

    def length(self, rng: np.random.Generator, lo: float, hi: float, minimum: float | None = None) -> float:
        """A nice length drawn log-uniformly from [lo, hi] mm."""
        lo = max(lo, 1e-3)
        hi = max(hi, lo)
        return self.nice(math.exp(rng.uniform(math.log(lo), math.log(hi))), minimum)

    def hole_diameter(self, rng: np.random.Generator, lo: float, hi: float) -> float | None:
        """A standard hole diameter in [lo, hi] mm, or None if no standard size fits."""
        table = METRIC_HOLES if self.name == "mm" else INCH_HOLES
        fits = [d for d in table if lo <= d <= hi]
        if not fits:
            return None
        return rnd(fits[int(rng.integers(len(fits)))])


# --------------------------------------------------------------------------- loops


def _pt(p) -> np.ndarray:
    return np.array([rnd(p[0]), rnd(p[1])])


def polygon_loop(verts, corners=None) -> list:
    """A closed loop through `verts` (CCW), with optional corner treatments.

    corners[i] is None, ("fillet", r) or ("chamfer", c) for vertex i. A fillet replaces the
    corner by a tangent arc (convex or concave alike), a chamfer by a straight cut; lines that
    shrink to nothing are dropped (two full fillets meeting).
    """
    verts = [np.asarray(v, dtype=np.float64) for v in verts]
    corners = list(corners) if corners else [None] * len(verts)
    # Drop repeated and collinear vertices (snapped dimensions can make an arm vanish).
    keep = proper_vertices(verts)
    verts, corners = [verts[i] for i in keep], [corners[i] for i in keep]
    n = len(verts)
    if n < 3:
        raise ValueError("a polygon needs three proper vertices")
    ins, outs, joins = [], [], []
    for i in range(n):
        p, prev, nxt = verts[i], verts[i - 1], verts[(i + 1) % n]
        a = (p - prev) / np.linalg.norm(p - prev)
        b = (nxt - p) / np.linalg.norm(nxt - p)
        spec = corners[i]
        cos_phi = float(np.clip(-a @ b, -1.0, 1.0))
        phi = math.acos(cos_phi)  # angle between the two edges at the vertex
        if spec is None or spec[1] <= 0 or abs(math.pi - phi) < 1e-6:
            ins.append(_pt(p))
            outs.append(ins[-1])
            joins.append(None)
            continue
        kind, size = spec
        # A corner treatment may use at most ~half of each adjacent edge, and a fillet on a
        # corner sharper than ~37 degrees would eat far more than its radius: such corners stay sharp.
        room = 0.45 * min(np.linalg.norm(p - prev), np.linalg.norm(nxt - p))
        reach = size if kind == "chamfer" else size / math.tan(phi / 2)
        if reach > room or reach > 3 * size:
            ins.append(_pt(p))
            outs.append(ins[-1])
            joins.append(None)
            continue
        if kind == "chamfer":
            t = size
            ins.append(_pt(p - a * t))
            outs.append(_pt(p + b * t))
            joins.append("line")
        else:
            r = size
            t = r / math.tan(phi / 2)
            bis = -a + b
            bis /= np.linalg.norm(bis)
            center = p + bis * (r / math.sin(phi / 2))
            ins.append(_pt(p - a * t))
            outs.append(_pt(p + b * t))
            joins.append(_pt(center - bis * r))
    curves = []
    for i in range(n):
        if joins[i] is not None:
            if isinstance(joins[i], str):
                curves.append(Line(ins[i], outs[i]))
            else:
                curves.append(Arc(ins[i], joins[i], outs[i]))
        j = (i + 1) % n
        if np.linalg.norm(ins[j] - outs[i]) > 1e-6:
            curves.append(Line(outs[i], ins[j]))
    return curves


def proper_vertices(verts) -> list[int]:
    """Indices of the vertices that are neither repeats of the previous one nor on a straight run."""
    idx = list(range(len(verts)))
    changed = True
    while changed and len(idx) >= 3:
        changed = False
        for k in range(len(idx)):
            a, b, c = verts[idx[k - 1]], verts[idx[k]], verts[idx[(k + 1) % len(idx)]]
            cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
            if np.linalg.norm(b - a) < 1e-9 or abs(cross) < 1e-9 * max(1.0, float(np.linalg.norm(c - a))):
                del idx[k]
                changed = True
                break
    return idx


def rect(w, h, cx=0.0, cy=0.0, corners=None):
    v = [(cx - w / 2, cy - h / 2), (cx + w / 2, cy - h / 2), (cx + w / 2, cy + h / 2), (cx - w / 2, cy + h / 2)]
    return polygon_loop(v, corners)


def circle(r, cx=0.0, cy=0.0):
    return [Circle(_pt((cx, cy)), rnd(r))]


def obround(w, h, cx=0.0, cy=0.0):
    """A stadium (slot): two straight sides and two half circles; long axis along the longer of w, h."""
    if abs(w - h) < 1e-9:
        return circle(w / 2, cx, cy)
    if w > h:
        r, a = h / 2, w / 2 - h / 2
        return [
            Line(_pt((cx - a, cy - r)), _pt((cx + a, cy - r))),
            Arc(_pt((cx + a, cy - r)), _pt((cx + a + r, cy)), _pt((cx + a, cy + r))),
            Line(_pt((cx + a, cy + r)), _pt((cx - a, cy + r))),
            Arc(_pt((cx - a, cy + r)), _pt((cx - a - r, cy)), _pt((cx - a, cy - r))),
        ]
    r, a = w / 2, h / 2 - w / 2
    return [
        Arc(_pt((cx - r, cy - a)), _pt((cx, cy - a - r)), _pt((cx + r, cy - a))),
        Line(_pt((cx + r, cy - a)), _pt((cx + r, cy + a))),
        Arc(_pt((cx + r, cy + a)), _pt((cx, cy + a + r)), _pt((cx - r, cy + a))),
        Line(_pt((cx - r, cy + a)), _pt((cx - r, cy - a))),
    ]


def regular_polygon(n, across_flats, cx=0.0, cy=0.0, corners=None):
    """A regular n-gon with a flat at the bottom (hex nuts, polygon plates)."""
    apothem = across_flats / 2
    radius = apothem / math.cos(math.pi / n)
    start = -math.pi / 2 - math.pi / n
    verts = [(cx + radius * math.cos(start + 2 * math.pi * k / n), cy + radius * math.sin(start + 2 * math.pi * k / n))
             for k in range(n)]
    return polygon_loop(verts, corners)


def lug(w, h, cx=0.0, cy=0.0):
    """A tab with a flat bottom and a half-round top (brackets, links). Bbox w x h centred."""
    r = w / 2
    y0, y1 = cy - h / 2, cy + h / 2 - r
    return [
        Line(_pt((cx - r, y0)), _pt((cx + r, y0))),
        Line(_pt((cx + r, y0)), _pt((cx + r, y1))),
        Arc(_pt((cx + r, y1)), _pt((cx, y1 + r)), _pt((cx - r, y1))),
        Line(_pt((cx - r, y1)), _pt((cx - r, y0))),
    ]


def d_shape(r, flat, cx=0.0, cy=0.0):
    """A circle of radius r with a flat cut at distance `flat` below the centre (D shafts)."""
    half = math.sqrt(r * r - flat * flat)
    return [
        Line(_pt((cx - half, cy - flat)), _pt((cx + half, cy - flat))),
        Arc(_pt((cx + half, cy - flat)), _pt((cx, cy + r)), _pt((cx - half, cy - flat))),
    ]


def l_verts(w, h, t1, t2):
    return [(0, 0), (w, 0), (w, t1), (t2, t1), (t2, h), (0, h)]


def t_verts(w, h, tf, tw):
    return [(-tw / 2, 0), (tw / 2, 0), (tw / 2, h - tf), (w / 2, h - tf), (w / 2, h), (-w / 2, h),
            (-w / 2, h - tf), (-tw / 2, h - tf)]


def u_verts(w, h, t, tb):
    return [(0, 0), (w, 0), (w, h), (w - t, h), (w - t, tb), (t, tb), (t, h), (0, h)]


def i_verts(w, h, tf, tw):
    return [(-w / 2, 0), (w / 2, 0), (w / 2, tf), (tw / 2, tf), (tw / 2, h - tf), (w / 2, h - tf), (w / 2, h),
            (-w / 2, h), (-w / 2, h - tf), (-tw / 2, h - tf), (-tw / 2, tf), (-w / 2, tf)]


def cross_verts(w, h, a, b):
    """A plus sign: arms of width a (horizontal bar) and b (vertical bar)."""
    return [(-b / 2, -h / 2), (b / 2, -h / 2), (b / 2, -a / 2), (w / 2, -a / 2), (w / 2, a / 2), (b / 2, a / 2),
            (b / 2, h / 2), (-b / 2, h / 2), (-b / 2, a / 2), (-w / 2, a / 2), (-w / 2, -a / 2), (-b / 2, -a / 2)]


def step_verts(w, h, steps):
    """A staircase: `steps` treads, the tallest on the left."""
    pts = [(0.0, 0.0), (w, 0.0)]
    for k in range(steps, 0, -1):
        x_right, x_left = w * k / steps, w * (k - 1) / steps
        y = h * (steps - k + 1) / steps
        pts += [(x_right, y), (x_left, y)]
    return _dedupe(pts)


def trapezoid_verts(wb, wt, h, shift=0.0):
    return [(-wb / 2, 0), (wb / 2, 0), (shift + wt / 2, h), (shift - wt / 2, h)]


def _dedupe(pts):
    out = []
    for p in pts:
        if not out or abs(out[-1][0] - p[0]) + abs(out[-1][1] - p[1]) > 1e-9:
            out.append(p)
    if len(out) > 1 and abs(out[0][0] - out[-1][0]) + abs(out[0][1] - out[-1][1]) < 1e-9:
        out.pop()
    # drop collinear middle points
    res = []
    n = len(out)
    for i in range(n):
        a, b, c = np.array(out[i - 1]), np.array(out[i]), np.array(out[(i + 1) % n])
        if abs((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])) > 1e-9:
            res.append(out[i])
    return res


# --------------------------------------------------------------------------- loop utilities


def loop_polygon(curves) -> np.ndarray:
    """The loop sampled as a polygon (N, 2) without the closing duplicate."""
    pts = [c.sample() if not isinstance(c, Line) else c.sample(2)[:1] for c in curves]
    poly = np.concatenate([p if isinstance(c, Line) else p[:-1] for p, c in zip(pts, curves)], axis=0)
    return poly


def signed_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def translate(curves, d) -> list:
    d = np.asarray(d, dtype=np.float64)
    out = []
    for c in curves:
        if isinstance(c, Line):
            out.append(Line(_pt(c.start + d), _pt(c.end + d)))
        elif isinstance(c, Arc):
            out.append(Arc(_pt(c.start + d), _pt(c.mid + d), _pt(c.end + d)))
        else:
            out.append(Circle(_pt(c.center + d), c.radius))
    return out


def normalize_loop(curves) -> list:
    """Counter-clockwise, starting at the lowest-left point: the order OpenECAD's converter writes."""
    if len(curves) == 1:
        return list(curves)
    if signed_area(loop_polygon(curves)) < 0:
        curves = [c.reversed() for c in reversed(curves)]
    keys = [(round(float(c.start[0]), 6), round(float(c.start[1]), 6)) for c in curves]
    k = min(range(len(curves)), key=lambda i: keys[i])
    return list(curves[k:]) + list(curves[:k])


# --------------------------------------------------------------------------- polygon tests


def points_in_polygon(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd test of points (P, 2) against a polygon (N, 2); boolean (P,)."""
    x, y = pts[:, 0:1], pts[:, 1:2]
    x0, y0 = poly[:, 0][None, :], poly[:, 1][None, :]
    x1, y1 = np.roll(poly[:, 0], -1)[None, :], np.roll(poly[:, 1], -1)[None, :]
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xint = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    hits = crosses & (x < xint)
    return (hits.sum(axis=1) % 2) == 1


def points_to_polygon_distance(pts: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Distance of each point (P, 2) to the boundary of a polygon (N, 2)."""
    a = poly[None, :, :]
    b = np.roll(poly, -1, axis=0)[None, :, :]
    p = pts[:, None, :]
    ab = b - a
    denom = np.maximum((ab * ab).sum(-1), 1e-300)
    t = np.clip(((p - a) * ab).sum(-1) / denom, 0.0, 1.0)
    d = p - (a + t[..., None] * ab)
    return np.sqrt((d * d).sum(-1)).min(axis=1)


def polygon_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Smallest distance between the boundaries of two polygons."""
    return float(min(points_to_polygon_distance(p, q).min(), points_to_polygon_distance(q, p).min()))


def fits_inside(poly: np.ndarray, outer: np.ndarray, forbidden, clearance: float) -> bool:
    """True when `poly` lies inside `outer` and away from every forbidden polygon, with a margin."""
    if not points_in_polygon(poly, outer).all():
        return False
    if points_to_polygon_distance(poly, outer).min() < clearance:
        return False
    lo, hi = poly.min(axis=0) - clearance, poly.max(axis=0) + clearance
    for f in forbidden:
        flo, fhi = f.min(axis=0), f.max(axis=0)
        if (fhi < lo).any() or (flo > hi).any():
            continue
        if points_in_polygon(poly, f).any() or points_in_polygon(f, poly).any():
            return False
        if polygon_distance(poly, f) < clearance:
            return False
    return True


def ray_depth(origin, direction, polys) -> float:
    """Distance from `origin` along `direction` to the nearest polygon edge (inf if none)."""
    best = math.inf
    o = np.asarray(origin, dtype=np.float64)
    d = np.asarray(direction, dtype=np.float64)
    for poly in polys:
        a = poly
        b = np.roll(poly, -1, axis=0)
        e = b - a
        den = d[0] * e[:, 1] - d[1] * e[:, 0]
        ok = np.abs(den) > 1e-12
        w = a - o
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (w[:, 0] * e[:, 1] - w[:, 1] * e[:, 0]) / den
            s = (w[:, 0] * d[1] - w[:, 1] * d[0]) / den
        hit = ok & (t > 1e-6) & (s >= -1e-9) & (s <= 1 + 1e-9)
        if hit.any():
            best = min(best, float(t[hit].min()))
    return best
