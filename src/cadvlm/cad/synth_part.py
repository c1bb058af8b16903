"""Composing one synthetic part: a base extrude, then features placed on its faces.

A designer sketches a base profile on a principal plane and extrudes it, then sketches on the
faces of what exists: holes and pockets inside a face, bosses standing on it, walls and gussets
on its edges, grooves and notches across it. `PartBuilder` mimics that. It keeps a list of
planar `Face`s (top / bottom / sides of the base, tops of bosses, walls, pocket floors), each
with its region polygon and the polygons already taken on it (holes, boss footprints), so a new
feature is placed inside a face with a margin and away from what is there: the part reads as a
real part, and the booleans rarely degenerate.

Everything here is in millimetres; `synthetic.py` converts to metres and validates the solid.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from cadvlm.cad import synth_shapes as sh
from cadvlm.cad.model import Arc, Circle, ExtentType, Extrude, Line, Loop, Operation, Plane, Profile

# DeepCAD's x_axis for sketches on principal planes (from real samples: the front plane has
# normal -Y and x_axis +X, the right plane normal +X and x_axis +Y, ...): vertical planes keep
# their y_axis = +Z.
CANON_X = {
    (0, 0, 1): (1, 0, 0), (0, 0, -1): (1, 0, 0),
    (0, -1, 0): (1, 0, 0), (0, 1, 0): (-1, 0, 0),
    (1, 0, 0): (0, 1, 0), (-1, 0, 0): (0, -1, 0),
}
# Base sketch plane normals and how often designers start on them.
BASE_NORMALS = ((0, 0, 1), (0, -1, 0), (1, 0, 0), (0, 1, 0), (0, 0, -1), (-1, 0, 0))
BASE_NORMAL_P = (0.50, 0.30, 0.12, 0.03, 0.03, 0.02)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    v = v / np.linalg.norm(v)
    v[np.abs(v) < 1e-12] = 0.0
    return v + 0.0


def _axis_key(n: np.ndarray):
    r = np.round(n).astype(int)
    if np.allclose(n, r, atol=1e-9) and int(np.abs(r).sum()) == 1:
        return tuple(int(x) for x in r)
    return None


def make_plane(point, normal, up=None, origin_at_point: bool = False) -> Plane:
    """A sketch plane through `point` with DeepCAD's x_axis convention.

    The origin is either the projection of the world origin onto the plane (how a principal
    plane offset along its normal looks in DeepCAD) or `point` itself (how a sketch made on a
    face looks). Non-principal normals take x_axis = up x normal, so the sketch's v axis runs up.
    """
    n = _unit(normal)
    key = _axis_key(n)
    if key is not None:
        n = np.array(key, dtype=np.float64)
        x = np.array(CANON_X[key], dtype=np.float64)
    else:
        up = _unit(up if up is not None else (0, 0, 1))
        x = np.cross(up, n)
        if np.linalg.norm(x) < 1e-9:
            x = np.cross((1.0, 0.0, 0.0), n)
        x = _unit(x)
    p = np.asarray(point, dtype=np.float64)
    origin = p if origin_at_point else n * float(n @ p)
    origin = np.array([sh.rnd(v) for v in origin])
    return Plane(origin, x, n)


def reproject(curves, src: Plane, dst: Plane) -> list:
    """Curves drawn on `src` re-expressed on the parallel plane `dst` (normal may be flipped)."""
    out = []

    def m(p):
        q = dst.to_local(src.to_global(np.asarray(p)))
        return np.array([sh.rnd(q[0]), sh.rnd(q[1])])

    for c in curves:
        if isinstance(c, Circle):
            out.append(Circle(m(c.center), c.radius))
        elif isinstance(c, Line):
            out.append(Line(m(c.start), m(c.end)))
        else:
            out.append(type(c)(m(c.start), m(c.mid), m(c.end)))
    return out


def poly_to(poly: np.ndarray, src: Plane, dst: Plane) -> np.ndarray:
    return dst.to_local(src.to_global(poly))


@dataclass
class Face:
    """A planar face to sketch on: normal out of the material, region and taken polygons local."""

    plane: Plane
    outer: np.ndarray
    depth: float  # material under the face (along -normal), for cut depths
    kind: str  # top | bottom | side | boss | wall | pocket
    forbidden: list = field(default_factory=list)
    edges: list = field(default_factory=list)  # straight boundary segments (base top/bottom)
    side: dict | None = None  # for side faces: base-plane edge data, for ray depths

    @property
    def size(self) -> np.ndarray:
        return self.outer.max(axis=0) - self.outer.min(axis=0)

    @property
    def center(self) -> np.ndarray:
        return (self.outer.max(axis=0) + self.outer.min(axis=0)) / 2


@dataclass
class Base:
    """The first extrude: plane, outline polygons (base-local), depth range along the normal."""

    plane: Plane
    kind: str
    outer: np.ndarray
    holes: list
    lo: float
    hi: float
    size: float
    rectish: bool


class PartBuilder:
    """Builds one part's extrude list (mm) with an rng; features return how many extrudes they added."""

    def __init__(self, rng: np.random.Generator, units: sh.Units, size_range=(10.0, 200.0)):
        self.rng = rng
        self.u = units
        self.size_range = size_range
        self.extrudes: list[Extrude] = []
        self.faces: list[Face] = []
        self.walls: list[dict] = []
        self.base: Base | None = None
        self.features: list[str] = []

    # ------------------------------------------------------------------ helpers

    def pick(self, options, p=None):
        p = np.asarray(p if p is not None else [1.0] * len(options), dtype=np.float64)
        return options[int(self.rng.choice(len(options), p=p / p.sum()))]

    def uniform(self, a, b) -> float:
        return float(self.rng.uniform(a, b))

    def chance(self, p) -> bool:
        return bool(self.rng.random() < p)

    def add(self, plane: Plane, loops, op=Operation.JOIN, ext=ExtentType.ONE_SIDE, e1=0.0, e2=0.0):
        loops = [sh.normalize_loop(lp) for lp in loops]
        self.extrudes.append(Extrude(plane, Profile([Loop(list(lp)) for lp in loops]), Operation(op),
                                     ExtentType(ext), sh.rnd(e1), sh.rnd(e2)))

    def register(self, plane: Plane, poly: np.ndarray, a: float, b: float, skip=()):
        """Mark `poly` (on `plane`, spanning offsets [a, b] along its normal) taken on every parallel
        face whose plane it crosses, so later features keep away from it."""
        n = plane.normal
        for f in self.faces:
            if f in skip or abs(abs(float(f.plane.normal @ n)) - 1.0) > 1e-9:
                continue
            s = float((f.plane.origin - plane.origin) @ n)
            if a - 1e-6 <= s <= b + 1e-6:
                f.forbidden.append(poly_to(poly, plane, f.plane))

    def forbid_global(self, face: Face, pts3: np.ndarray):
        face.forbidden.append(face.plane.to_local(pts3))

    def sketch_plane(self, face: Face, flip: bool = False, at=None) -> Plane:
        """A sketch plane on `face` (normal out of the material, or into it when flip)."""
        n = -face.plane.normal if flip else face.plane.normal
        on_point = self.chance(0.35)
        point = face.plane.to_global(at if at is not None else face.center)
        if on_point:
            point = face.plane.to_global(np.array([self.u.snap(v) for v in face.plane.to_local(point)]))
        return make_plane(point, n, up=self._up(face), origin_at_point=on_point)

    def _up(self, face: Face):
        return self.base.plane.normal if self.base is not None else None

    # ------------------------------------------------------------------ base

    def build_base(self, inner_loops: int | None = None) -> None:
        rng, u = self.rng, self.u
        normal = np.array(self.pick(BASE_NORMALS, BASE_NORMAL_P), dtype=np.float64)
        offset = u.length(rng, 2, 40) * self.pick((1, -1)) if self.chance(0.06) else 0.0
        plane = make_plane(normal * offset, normal)
        lo_s, hi_s = self.size_range
        size = u.length(rng, lo_s, hi_s)
        kind = self.pick(
            ("rect", "rrect", "chamfer", "circle", "obround", "polygon", "L", "T", "U", "I", "cross", "step",
             "lug", "D", "trapezoid", "triangle"),
            (0.19, 0.13, 0.04, 0.20, 0.05, 0.05, 0.07, 0.04, 0.04, 0.02, 0.02, 0.03, 0.05, 0.02, 0.02, 0.03))
        curves, rectish = self._outline(kind, size)
        # Where the outline sits: centred on the origin, a corner on it, or somewhere else.
        lo, hi = sh.loop_polygon(curves).min(axis=0), sh.loop_polygon(curves).max(axis=0)
        anchor = self.pick(("center", "corner", "offset"), (0.5, 0.4, 0.1))
        if anchor == "center":
            shift = -np.array([u.snap(v) for v in (lo + hi) / 2])
        elif anchor == "corner":
            shift = -lo
        else:
            shift = -np.array([u.snap(v) for v in (lo + hi) / 2]) + np.array(
                [u.snap(self.uniform(-0.5, 0.5) * size) for _ in range(2)])
        curves = sh.normalize_loop(sh.translate(curves, shift))
        outer = sh.loop_polygon(curves)

        # Thickness: plates, blocks and long extrusions (shafts, profiles).
        mode = self.pick(("plate", "block", "long"), (0.55, 0.27, 0.18))
        ratio = {"plate": (0.03, 0.25), "block": (0.25, 0.8), "long": (0.8, 3.0)}[mode]
        t = u.length(rng, max(size * ratio[0], 0.8), min(size * ratio[1], 300.0))
        ext = self.pick((ExtentType.ONE_SIDE, ExtentType.SYMMETRIC, ExtentType.TWO_SIDES), (0.80, 0.16, 0.04))
        if ext == ExtentType.ONE_SIDE:
            e1, e2 = (t, 0.0) if self.chance(0.82) else (-t, 0.0)
            lo_d, hi_d = min(0.0, e1), max(0.0, e1)
        elif ext == ExtentType.SYMMETRIC:
            e1, e2 = u.nice(t / 2), 0.0
            lo_d, hi_d = -e1, e1
        else:
            e1 = u.nice(self.uniform(0.2, 0.8) * t)
            e2 = u.nice(max(t - e1, u.step(t)))
            lo_d, hi_d = -e2, e1

        self.base = Base(plane, kind, outer, [], lo_d, hi_d, size, rectish)
        top = Face(make_plane(plane.to_global(np.zeros(2)) + hi_d * plane.normal, plane.normal), None, hi_d - lo_d,
                   "top")
        top.outer = poly_to(outer, plane, top.plane)
        # Holes drawn in the base profile itself (the most common single-extrude part).
        if inner_loops is None:
            inner_loops = int(self.pick((0, 1, 2, 3, 4, 5), (0.5, 0.22, 0.11, 0.04, 0.1, 0.03)))
        inner = []
        if inner_loops:
            tmp = Face(plane, outer, hi_d - lo_d, "top")
            inner = self._hole_loops(tmp, inner_loops, allow_shapes=True, concentric=kind in ("circle", "polygon"))
        for lp in inner:
            self.base.holes.append(sh.loop_polygon(lp))
        self.add(plane, [curves] + inner, Operation.NEW_BODY, ext, e1, e2)
        self.features.append(f"base:{kind}")

        # Faces: top and bottom (same outline and holes), and the straight sides.
        bottom = Face(make_plane(plane.to_global(np.zeros(2)) + lo_d * plane.normal, -plane.normal), None,
                      hi_d - lo_d, "bottom")
        bottom.outer = poly_to(outer, plane, bottom.plane)
        for f in (top, bottom):
            f.forbidden = [poly_to(h, plane, f.plane) for h in self.base.holes]
            f.edges = [(poly_to(np.array([c.start, c.end]), plane, f.plane)) for c in curves if isinstance(c, Line)]
        self.faces += [top, bottom]
        for c in curves:
            if isinstance(c, Line) and np.linalg.norm(c.end - c.start) >= 4.0 and hi_d - lo_d >= 3.0:
                self.faces.append(self._side_face(c))

    def _side_face(self, line: Line) -> Face:
        b = self.base
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

    def _outline(self, kind: str, size: float):
        """An outline of the given kind whose larger side is about `size` (mm), CCW; rectish says
        whether the outline is box-like enough for grooves and intersections across it."""
        u, rng = self.u, self.rng
        w = size
        h = u.length(rng, max(size * 0.25, 3), size)
        if self.chance(0.5):
            w, h = h, w
        small = min(w, h)

        def corners(n, p_any=0.3, chamfer=False):
            if not self.chance(p_any):
                return None
            r = u.length(rng, max(small * 0.04, 0.5), small * 0.2)
            mode = "chamfer" if chamfer else "fillet"
            pick_all = self.chance(0.6)
            return [(mode, r) if (pick_all or self.chance(0.5)) else None for _ in range(n)]

        if kind == "rect":
            return sh.rect(w, h), True
        if kind == "rrect":
            r = u.length(rng, max(small * 0.05, 0.5), small * 0.45)
            if r >= small / 2 - 1e-9:
                r = u.nice(small * 0.3)
            mask = [True] * 4 if self.chance(0.7) else [self.chance(0.6) for _ in range(4)]
            return sh.rect(w, h, corners=[("fillet", r) if m else None for m in mask]), True
        if kind == "chamfer":
            c = u.length(rng, max(small * 0.05, 0.5), small * 0.3)
            mask = [True] * 4 if self.chance(0.7) else [self.chance(0.6) for _ in range(4)]
            return sh.rect(w, h, corners=[("chamfer", c) if m else None for m in mask]), True
        if kind == "circle":
            return sh.circle(u.nice(size / 2)), False
        if kind == "obround":
            w2, h2 = max(w, h), u.length(rng, max(size * 0.2, 2), size * 0.6)
            return (sh.obround(w2, h2) if self.chance(0.6) else sh.obround(h2, w2)), True
        if kind == "polygon":
            n = int(self.pick((3, 5, 6, 8), (0.1, 0.15, 0.6, 0.15)))
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
                steps = int(self.pick((2, 3), (0.7, 0.3)))
                verts = sh.step_verts(u.nice(w / steps) * steps, u.nice(h / steps) * steps, steps)
            verts = [(u.snap(x), u.snap(y)) for x, y in verts]
            if len(sh.proper_vertices([np.array(v, dtype=np.float64) for v in verts])) < len(verts):
                raise ValueError(f"{kind} outline collapsed when snapped to the grid")
            corner = None
            if self.chance(0.3) and len(verts) <= 8:
                edge_min = min(np.linalg.norm(np.subtract(verts[i], verts[i - 1])) for i in range(len(verts)))
                r = u.nice(self.uniform(0.15, 0.4) * edge_min)
                if r > 0.2 and r < edge_min / 2:
                    corner = [("fillet", r) if self.chance(0.5) else None for _ in verts]
            return sh.polygon_loop(verts, corner), kind in ("U", "step")
        if kind == "lug":
            ww = u.nice(min(w, h))
            hh = u.nice(max(max(w, h), ww * 0.75))
            return sh.lug(ww, hh), False
        if kind == "D":
            r = u.nice(size / 2)
            return sh.d_shape(r, u.nice(r * self.uniform(0.5, 0.85))), False
        if kind == "trapezoid":
            wt = u.nice(w * self.uniform(0.3, 0.8))
            verts = [(u.snap(x), u.snap(y)) for x, y in sh.trapezoid_verts(w, wt, h)]
            return sh.polygon_loop(verts, corners(4)), False
        # right triangle (gusset plates)
        verts = [(0.0, 0.0), (w, 0.0), (0.0, h)]
        return sh.polygon_loop(verts, corners(3, p_any=0.2)), False

    # ------------------------------------------------------------------ placing shapes on faces

    def _shape(self, kind: str, size: float, c, angle_long: bool):
        """A hole / boss shape of characteristic size `size` centred at c (face-local)."""
        u = self.u
        cx, cy = c
        if kind == "circle":
            return sh.circle(size / 2, cx, cy)
        if kind == "obround":
            ln = u.nice(size * self.uniform(1.6, 3.0))
            return sh.obround(ln, size, cx, cy) if angle_long else sh.obround(size, ln, cx, cy)
        if kind == "rect":
            w2 = u.nice(size * self.uniform(1.0, 1.8))
            return sh.rect(w2, size, cx, cy) if angle_long else sh.rect(size, w2, cx, cy)
        if kind == "rrect":
            w2 = u.nice(size * self.uniform(1.0, 2.0))
            r = u.nice(size * self.uniform(0.1, 0.35))
            dims = (w2, size) if angle_long else (size, w2)
            return sh.rect(*dims, cx, cy, corners=[("fillet", r)] * 4)
        if kind == "hexagon":
            return sh.regular_polygon(6, size, cx, cy)
        if kind == "octagon":
            return sh.regular_polygon(8, size, cx, cy)
        raise ValueError(kind)

    def _pattern(self, face: Face, n: int, extent: float):
        """Candidate centres for n features of bounding size `extent` on the face (face-local)."""
        u = self.u
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
            return u.snap(room * self.uniform(0.45, 1.0))

        ax = 0 if long_x else 1
        style = self.rng.random()
        if n == 1:
            if style < 0.55:
                return [c]
            return [np.array([u.snap(self.uniform(lo[0], hi[0])), u.snap(self.uniform(lo[1], hi[1]))])]
        round_face = abs(size[0] - size[1]) < 1e-6 and face.kind in ("top", "bottom", "boss") and n >= 3
        if round_face or (n >= 3 and style < 0.25):
            rad = u.snap(min(size) / 2 * self.uniform(0.4, 0.75))
            a0 = self.pick((0.0, math.pi / n, math.pi / 2))
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

    def _place(self, face: Face, n: int, make, extent: float, clearance: float, extra_forbidden=()):
        """Shapes (curve lists) for a pattern of n, all fitting the face; None if it does not fit."""
        for _ in range(4):
            centers = self._pattern(face, n, extent)
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

    def _hole_kind(self, allow_shapes: bool):
        if not allow_shapes:
            return "circle"
        return self.pick(("circle", "obround", "rect", "rrect", "hexagon"), (0.74, 0.1, 0.06, 0.06, 0.04))

    def _hole_loops(self, face: Face, count: int, allow_shapes: bool, concentric: bool = False):
        """Loops for holes inside `face` drawn in the same sketch (inner loops of a profile)."""
        u = self.u
        loops = []
        m = float(min(face.size))
        if concentric and self.chance(0.6):
            d = u.hole_diameter(self.rng, m * 0.15, m * 0.7) or u.nice(m * 0.4)
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
                kind = self._hole_kind(allow_shapes)
                d = self._hole_size(face, n, kind)
                if d is None:
                    continue
                extent = d * (3.0 if kind == "obround" else 2.0 if kind in ("rect", "rrect") else 1.0)
                long_x = bool(face.size[0] >= face.size[1])
                placed = self._place(face, n, lambda c: self._shape(kind, d, c, long_x), extent,
                                     max(0.8, 0.2 * d))
                if placed:
                    return loops + placed
        return loops

    def _hole_size(self, face: Face, n: int, kind: str):
        u = self.u
        m = float(min(face.size))
        hi = m * (0.45 if n == 1 else 0.3 / math.sqrt(n / 2))
        lo = max(m * 0.04, 1.0)
        if hi <= lo:
            return None
        if kind == "circle":
            return u.hole_diameter(self.rng, lo, hi) or u.length(self.rng, lo, hi)
        return u.length(self.rng, lo, hi)

    # ------------------------------------------------------------------ features

    def faces_of(self, *kinds, min_depth=0.0):
        return [f for f in self.faces if f.kind in kinds and f.depth >= min_depth and min(f.size) >= 3.0]

    def feat_holes(self, budget: int) -> int:
        """A pattern of holes (through or blind, optionally counterbored) on a face."""
        weights = {"top": 5.0, "bottom": 1.2, "boss": 2.0, "wall": 3.0, "pocket": 1.5}
        faces = self.faces_of(*weights, min_depth=0.5)
        if not faces:
            return 0
        face = self.pick(faces, [weights[f.kind] for f in faces])
        counts = [k for k in (1, 2, 3, 4, 6) if k <= budget]
        n = int(self.pick(counts, [(0.46, 0.26, 0.07, 0.17, 0.04)[(1, 2, 3, 4, 6).index(k)] for k in counts]))
        cbore = n * 2 <= budget and face.kind in ("top", "boss", "bottom") and self.chance(0.15)
        kind = "circle" if cbore else self._hole_kind(True)
        d = self._hole_size(face, n, kind)
        if d is None:
            return 0
        big = self.u.nice(d * self.uniform(1.6, 2.0)) if cbore else d
        extent = big * (3.0 if kind == "obround" else 2.0 if kind in ("rect", "rrect") else 1.0)
        long_x = bool(face.size[0] >= face.size[1])
        placed = self._place(face, n, lambda c: self._shape(kind, big, c, long_x), extent, max(0.8, 0.2 * big))
        if not placed:
            return 0
        through = cbore or self.chance(0.75)
        depth = face.depth if (through and self.chance(0.6)) else (
            self.u.nice(face.depth * self.uniform(1.0, 1.5), face.depth) if through else
            self.u.nice(face.depth * self.uniform(0.25, 0.75)))
        if cbore:
            depth_big = self.u.nice(face.depth * self.uniform(0.2, 0.45))
            for loops in placed:
                c = loops[0].center
                self._cut(face, [loops], depth_big, through=False)
                self._cut(face, [sh.circle(d / 2, *c)], depth, through=True)
            self.features.append(f"cbore_holes:{n}")
            return 2 * n
        b = self.base
        mid = through and face.kind in ("top", "bottom") and b.lo < 0 < b.hi and self.chance(0.5)
        for loops in placed:
            if mid:
                self._cut_mid(face, loops)
            else:
                self._cut(face, [loops], depth, through=through)
        self.features.append(f"holes:{kind}:{n}")
        return n

    def _cut(self, face: Face, loops, depth: float, through: bool, pocket_face: bool = False):
        """Cut `loops` (face-local) into the face by `depth`, from a plane on the face or flipped."""
        flip = self.chance(0.3)
        plane = self.sketch_plane(face, flip=flip)
        loops2 = [reproject(lp, face.plane, plane) for lp in loops]
        e1 = depth if flip else -depth
        self.add(plane, loops2, Operation.CUT, ExtentType.ONE_SIDE, e1)
        poly = sh.loop_polygon(loops[0])
        self.register(face.plane, poly, -depth, 0.0)
        if pocket_face and not through:
            floor = make_plane(face.plane.to_global(face.center) - depth * face.plane.normal, face.plane.normal,
                               up=self._up(face))
            self.faces.append(Face(floor, poly_to(poly, face.plane, floor), face.depth - depth, "pocket"))

    def _cut_mid(self, face: Face, loops):
        """A through cut sketched on the base's own (middle) plane with the base's Symmetric or
        TwoSides extent, as designers do for parts extruded both ways."""
        b = self.base
        on_point = self.chance(0.3)
        point = face.plane.to_global(sh.loop_polygon(loops).mean(axis=0))
        point = point - float((point - b.plane.origin) @ b.plane.normal) * b.plane.normal
        plane = make_plane(point, b.plane.normal, origin_at_point=on_point)
        if abs(b.lo + b.hi) < 1e-9:
            self.add(plane, [reproject(loops, face.plane, plane)], Operation.CUT, ExtentType.SYMMETRIC, b.hi)
        else:
            self.add(plane, [reproject(loops, face.plane, plane)], Operation.CUT, ExtentType.TWO_SIDES, b.hi, -b.lo)
        self.register(plane, poly_to(sh.loop_polygon(loops), face.plane, plane), b.lo, b.hi)

    def feat_pocket(self, budget: int) -> int:
        faces = self.faces_of("top", "bottom", "boss", min_depth=1.5)
        if not faces:
            return 0
        face = self.pick(faces, [3.0 if f.kind == "top" else 1.0 for f in faces])
        kind = self.pick(("rrect", "rect", "circle", "obround", "hexagon"), (0.4, 0.2, 0.25, 0.1, 0.05))
        m = float(min(face.size))
        size = self.u.length(self.rng, m * 0.2, m * 0.6)
        extent = size * (3.0 if kind == "obround" else 2.0 if kind in ("rect", "rrect") else 1.0)
        long_x = bool(face.size[0] >= face.size[1])
        placed = self._place(face, 1, lambda c: self._shape(kind, size, c, long_x), extent, max(1.0, 0.12 * m))
        if not placed:
            return 0
        depth = self.u.nice(face.depth * self.uniform(0.2, 0.7))
        if depth >= face.depth:
            return 0
        self._cut(face, [placed[0]], depth, through=False, pocket_face=True)
        self.features.append(f"pocket:{kind}")
        return 1

    def feat_boss(self, budget: int) -> int:
        weights = {"top": 5.0, "bottom": 1.2, "boss": 2.0}
        faces = self.faces_of(*weights)
        if not faces:
            return 0
        face = self.pick(faces, [weights[f.kind] for f in faces])
        counts = [k for k in (1, 2, 4) if k <= budget]
        n = int(self.pick(counts, [(0.72, 0.13, 0.15)[(1, 2, 4).index(k)] for k in counts]))
        kind = self.pick(("circle", "annulus", "rect", "rrect", "hexagon", "obround"),
                         (0.42, 0.18, 0.11, 0.13, 0.07, 0.09))
        m = float(min(face.size))
        hi = m * (0.8 if n == 1 else 0.35)
        size = self.u.length(self.rng, max(m * 0.15, 1.5), hi)
        shape = "circle" if kind == "annulus" else kind
        extent = size * (3.0 if kind == "obround" else 2.0 if kind in ("rect", "rrect") else 1.0)
        long_x = bool(face.size[0] >= face.size[1])
        placed = self._place(face, n, lambda c: self._shape(shape, size, c, long_x), extent, max(0.5, 0.06 * m))
        if not placed:
            return 0
        h = self.u.length(self.rng, max(size * 0.15, 0.8), size * 1.6)
        op = Operation.NEW_BODY if self.chance(0.15) else Operation.JOIN
        for curves in placed:
            loops = [curves]
            top_forbidden = []
            if kind == "annulus":
                inner = sh.circle(self.u.nice(size / 2 * self.uniform(0.35, 0.7)), *curves[0].center)
                loops.append(inner)
                top_forbidden.append(sh.loop_polygon(inner))
            flip = self.chance(0.2)
            plane = self.sketch_plane(face, flip=flip)
            self.add(plane, [reproject(lp, face.plane, plane) for lp in loops], op, ExtentType.ONE_SIDE,
                     -h if flip else h)
            poly = sh.loop_polygon(curves)
            self.register(face.plane, poly, 0.0, h)
            top_plane = make_plane(face.plane.to_global(sh.loop_polygon(curves).mean(axis=0)) + h * face.plane.normal,
                                   face.plane.normal, up=self._up(face))
            self.faces.append(Face(top_plane, poly_to(poly, face.plane, top_plane), h + face.depth, "boss",
                                   forbidden=[poly_to(p, face.plane, top_plane) for p in top_forbidden]))
        self.features.append(f"boss:{kind}:{n}")
        return n

    def feat_hub(self, budget: int) -> int:
        """A cylinder through the base from its sketch plane, out both sides (TwoSides)."""
        b = self.base
        top = next((f for f in self.faces if f.kind == "top"), None)
        bottom = next((f for f in self.faces if f.kind == "bottom"), None)
        if top is None or bottom is None:
            return 0
        m = float(min(top.size))
        d = self.u.length(self.rng, max(m * 0.15, 2), m * 0.6)
        placed = self._place(top, 1, lambda c: sh.circle(d / 2, *c), d, max(0.8, 0.1 * m),
                             extra_forbidden=[poly_to(p, bottom.plane, top.plane) for p in bottom.forbidden])
        if not placed:
            return 0
        c = placed[0][0].center
        a = self.u.length(self.rng, max(d * 0.1, 0.8), d * 1.0)
        bb = self.u.length(self.rng, max(d * 0.1, 0.8), d * 1.0)
        plane = make_plane(top.plane.to_global(c) - b.hi * b.plane.normal, b.plane.normal,
                           origin_at_point=self.chance(0.3))
        loops = [reproject(placed[0], top.plane, plane)]
        bore = self.chance(0.5)
        if bore:
            loops.append(sh.circle(self.u.nice(d / 2 * self.uniform(0.3, 0.65)), *loops[0][0].center))
        self.add(plane, loops, Operation.JOIN, ExtentType.TWO_SIDES, b.hi + a, -b.lo + bb)
        poly = sh.loop_polygon(placed[0])
        self.register(top.plane, poly, -(b.hi - b.lo) - bb, a)
        for sign, off in ((1, b.hi + a), (-1, b.lo - bb)):
            fp = make_plane(plane.to_global(loops[0][0].center) + (off) * b.plane.normal, sign * b.plane.normal,
                            up=None)
            face = Face(fp, poly_to(sh.loop_polygon(loops[0]), plane, fp), b.hi - b.lo + a + bb, "boss")
            if bore:
                face.forbidden.append(poly_to(sh.loop_polygon(loops[1]), plane, fp))
            self.faces.append(face)
        self.features.append("hub")
        return 1

    def _top(self):
        return next((f for f in self.faces if f.kind == "top"), None)

    def _edge_inward(self, e, top):
        """An edge of the top face in base-local coordinates: its ends, direction, the inward
        normal (the left normal of the CCW outline, flipped if it points out), its mid point and
        how deep the base reaches inward from there."""
        b = self.base
        p0, p1 = poly_to(e, top.plane, b.plane)
        d2 = (p1 - p0) / np.linalg.norm(p1 - p0)
        inward = np.array([-d2[1], d2[0]])
        mid = (p0 + p1) / 2
        if not sh.points_in_polygon((mid + inward * 1e-3)[None], b.outer)[0]:
            inward = -inward
        return p0, p1, d2, inward, mid, sh.ray_depth(mid, inward, [b.outer] + b.holes)

    def feat_wall(self, budget: int) -> int:
        """A wall standing on a straight edge of the base (L brackets, U channels, boxes)."""
        b, top = self.base, self._top()
        if top is None or not top.edges:
            return 0
        edges = sorted(top.edges, key=lambda e: -float(np.linalg.norm(e[1] - e[0])))
        e = edges[0] if self.chance(0.6) or len(edges) == 1 else edges[int(self.rng.integers(len(edges)))]
        length = float(np.linalg.norm(e[1] - e[0]))
        if length < 8.0:
            return 0
        p0, p1, d2, inward, mid, depth_in = self._edge_inward(e, top)
        if not math.isfinite(depth_in) or depth_in < 4.0:
            return 0
        # Walls about as thick as the plate they stand on (bent or welded sheet), not fins.
        t = b.hi - b.lo
        tw = self.u.length(self.rng, max(0.8, min(t * 0.6, depth_in * 0.2)), max(0.8, min(t * 1.5, depth_in * 0.35)))
        if tw >= depth_in * 0.5:
            return 0
        H = self.u.length(self.rng, max(b.size * 0.2, 3.0, 2 * tw), b.size * 0.8)
        if self.chance(0.3):  # a wall over part of the edge, centred
            part = self.u.nice(length * self.uniform(0.4, 0.8))
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
        on_point = self.chance(0.35)
        plane = make_plane(g0 + N * b.lo, n3, up=N, origin_at_point=on_point)
        flip = self.chance(0.25)
        if flip:
            plane = make_plane(g0 + N * b.lo, -n3, up=N, origin_at_point=on_point)
        rect = plane.to_local(quad)
        loop = sh.polygon_loop([[sh.rnd(v) for v in p] for p in rect])
        self.add(plane, [loop], Operation.JOIN, ExtentType.ONE_SIDE, tw if flip else -tw)
        self.register(b.plane, strip, b.lo - 1e-6, b.hi + H)  # the strip is taken on top and bottom
        top.edges = [ed for ed in top.edges if ed is not e]
        # the side face under the wall is gone
        self.faces = [f for f in self.faces if not (f.kind == "side" and abs(float(f.plane.normal @ n3) - 1) < 1e-9
                                                    and abs(float((f.plane.origin - g0) @ n3)) < 1e-6)]
        above = np.array([g0 + N * b.hi, g1 + N * b.hi, g1 + N * (b.hi + H), g0 + N * (b.hi + H)])
        outer_plane = make_plane(g0, n3, up=N)
        inner_plane = make_plane(g0 - n3 * tw, -n3, up=N)
        for fp in (outer_plane, inner_plane):
            self.faces.append(Face(fp, fp.to_local(above), tw, "wall"))
        self.walls.append({"g0": g0, "g1": g1, "n3": n3, "tw": tw, "H": H, "in_depth": depth_in,
                           "faces": self.faces[-2:]})
        self.features.append("wall")
        return 1

    def feat_gusset(self, budget: int) -> int:
        """Triangular ribs between a wall and the base (Symmetric extrudes on a cross plane)."""
        if not self.walls:
            return 0
        b, top = self.base, self._top()
        w = self.walls[int(self.rng.integers(len(self.walls)))]
        N, n3, tw, H = b.plane.normal, w["n3"], w["tw"], w["H"]
        g0, g1 = w["g0"], w["g1"]
        length = float(np.linalg.norm(g1 - g0))
        e3 = (g1 - g0) / length
        gt = self.u.length(self.rng, max(0.8, tw * 0.5), tw * 1.2)
        leg_in = self.u.length(self.rng, max(2.0, (w["in_depth"] - tw) * 0.25), (w["in_depth"] - tw) * 0.8)
        leg_up = self.u.length(self.rng, max(2.0, H * 0.3), H * 0.95)
        if leg_in + tw >= w["in_depth"] or leg_up > H:
            return 0
        n = 2 if (budget >= 2 and length > 8 * gt and self.chance(0.5)) else 1
        margin = gt / 2 + max(1.0, gt)
        if length < 2 * margin + gt:
            return 0
        pos = [length / 2] if n == 1 else [self.u.snap(margin + gt), self.u.snap(length - margin - gt)]
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
            plane = make_plane(c, e3 if self.chance(0.5) else -e3, up=N, origin_at_point=self.chance(0.3))
            tri = plane.to_local(tri3)
            self.add(plane, [sh.polygon_loop([[sh.rnd(v) for v in p] for p in tri])], Operation.JOIN,
                     ExtentType.SYMMETRIC, self.u.nice(gt / 2))
            if top is not None:
                top.forbidden.append(foot_top)
            for wf in w["faces"]:
                wf.forbidden.append(wf.plane.to_local(np.array(
                    [c - e3 * gt / 2, c + e3 * gt / 2, c + e3 * gt / 2 + N * leg_up, c - e3 * gt / 2 + N * leg_up])))
            added += 1
        if added:
            self.features.append(f"gusset:{added}")
        return added

    def _rect_axes(self):
        """For box-like bases: base-local bbox and in-plane axes (3-D)."""
        b = self.base
        lo, hi = b.outer.min(axis=0), b.outer.max(axis=0)
        return lo, hi, b.plane.x_axis, b.plane.y_axis

    def feat_groove(self, budget: int) -> int:
        """A slot or groove straight across the top (Symmetric / TwoSides cut on a cross plane)."""
        b, top = self.base, self._top()
        if top is None or not b.rectish or b.hi - b.lo < 3.0:
            return 0
        lo, hi, X, Y = self._rect_axes()
        ax = int(self.rng.integers(2))  # groove runs along the other axis, cut plane normal = axis ax
        A3 = X if ax == 0 else Y
        B3 = Y if ax == 0 else X
        a_lo, a_hi = lo[ax], hi[ax]
        b_lo, b_hi = lo[1 - ax], hi[1 - ax]
        span_a = a_hi - a_lo
        wg = self.u.length(self.rng, max(1.0, span_a * 0.08), span_a * 0.35)
        t = b.hi - b.lo
        dg = self.u.length(self.rng, max(0.5, t * 0.2), t * 0.6)
        if dg >= t * 0.75:
            return 0
        ca = self.u.snap((a_lo + a_hi) / 2 if self.chance(0.6) else self.uniform(a_lo + wg, a_hi - wg))
        if ca - wg / 2 < a_lo + 1.0 or ca + wg / 2 > a_hi - 1.0:
            return 0
        margin = self.u.nice(max(1.0, (b_hi - b_lo) * 0.05))
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
        normal = A3 if self.chance(0.5) else -A3
        plane = make_plane(P(ca, (b_lo + b_hi) / 2, b.hi), normal, up=N, origin_at_point=self.chance(0.3))
        quad = np.array([P(ca, b_lo - margin, b.hi - dg), P(ca, b_hi + margin, b.hi - dg),
                         P(ca, b_hi + margin, b.hi + margin), P(ca, b_lo - margin, b.hi + margin)])
        loop = sh.polygon_loop([[sh.rnd(v) for v in p] for p in plane.to_local(quad)])
        if self.chance(0.75):
            self.add(plane, [loop], Operation.CUT, ExtentType.SYMMETRIC, self.u.nice(wg / 2))
        else:
            e1 = self.u.nice(wg * self.uniform(0.3, 0.7))
            e2 = self.u.nice(max(wg - e1, 0.5))
            self.add(plane, [loop], Operation.CUT, ExtentType.TWO_SIDES, e1, e2)
            wg = e1 + e2
        top.forbidden.append(strip_top)
        # sides crossed by the groove lose their top band: drop them
        self.faces = [f for f in self.faces if not (f.kind == "side" and abs(float(f.plane.normal @ A3)) < 1e-6)]
        self.features.append("groove")
        return 1

    def feat_notch(self, budget: int) -> int:
        """A rectangular notch cut into a straight edge of the top face."""
        b, top = self.base, self._top()
        if top is None or not top.edges:
            return 0
        e = top.edges[int(self.rng.integers(len(top.edges)))]
        length = float(np.linalg.norm(e[1] - e[0]))
        if length < 10.0:
            return 0
        p0, p1, d2, inward, mid, depth_in = self._edge_inward(e, top)
        if not math.isfinite(depth_in) or depth_in < 6.0:
            return 0
        wn = self.u.length(self.rng, max(2.0, length * 0.15), length * 0.5)
        dn = self.u.length(self.rng, max(1.0, depth_in * 0.1), depth_in * 0.35)
        s = self.u.snap(length / 2 if self.chance(0.6) else self.uniform(wn / 2 + 2, length - wn / 2 - 2))
        if s - wn / 2 < 1.5 or s + wn / 2 > length - 1.5:
            return 0
        margin = self.u.nice(max(1.0, dn * 0.5))
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
        through = self.chance(0.6)
        t = b.hi - b.lo
        depth = t if through else self.u.nice(t * self.uniform(0.3, 0.7))
        if not through and depth >= t:
            return 0
        quad_top = poly_to(quad, b.plane, top.plane)
        loop = sh.polygon_loop([[sh.rnd(v) for v in p] for p in quad_top])
        flip = self.chance(0.3)
        plane = self.sketch_plane(top, flip=flip)
        self.add(plane, [reproject(loop, top.plane, plane)], Operation.CUT, ExtentType.ONE_SIDE,
                 depth if flip else -depth)
        self.register(top.plane, quad_top, -depth, 0.0)
        top.edges = [ed for ed in top.edges if ed is not e]
        g0 = b.plane.to_global(p0)
        n3 = -(inward[0] * b.plane.x_axis + inward[1] * b.plane.y_axis)
        self.faces = [f for f in self.faces if not (f.kind == "side" and abs(float(f.plane.normal @ n3) - 1) < 1e-9
                                                    and abs(float((f.plane.origin - g0) @ n3)) < 1e-6)]
        self.features.append("notch")
        return 1

    def feat_side_hole(self, budget: int) -> int:
        """A hole drilled into a side face of the base (blind, or through a convex part)."""
        b = self.base
        faces = [f for f in self.faces if f.kind == "side" and min(f.size) >= 4.0]
        if not faces:
            return 0
        face = faces[int(self.rng.integers(len(faces)))]
        t = b.hi - b.lo
        n = 2 if budget >= 2 and face.size[0] > 6 * t and self.chance(0.4) else 1
        d = self.u.hole_diameter(self.rng, max(1.0, t * 0.15), t * 0.55)
        if d is None:
            return 0
        placed = self._place(face, n, lambda c: sh.circle(d / 2, *c), d, max(0.6, t * 0.12))
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
            if max(outer_rays) - min(outer_rays) < 1e-6 and self.chance(0.4):
                depth = sh.rnd(outer_rays[1])
            else:
                depth = self.u.nice(min(rays) * self.uniform(0.3, 0.8))
                if depth >= min(rays):
                    continue
            flip = self.chance(0.3)
            plane = self.sketch_plane(face, flip=flip)
            self.add(plane, [reproject(curves, face.plane, plane)], Operation.CUT, ExtentType.ONE_SIDE,
                     depth if flip else -depth)
            face.forbidden.append(sh.loop_polygon(curves))
            added += 1
        if added:
            self.features.append(f"side_holes:{added}")
        return added

    def feat_intersect(self, budget: int) -> int:
        """Trim the base with a cross-section extruded across it: rounded, chamfered or arched edges."""
        b, top = self.base, self._top()
        if top is None or not b.rectish or len(self.extrudes) != 1 or b.hi - b.lo < 2.0:
            return 0
        lo, hi, X, Y = self._rect_axes()
        ax = int(self.rng.integers(2))
        A3, B3 = (X, Y) if ax == 0 else (Y, X)
        a_lo, a_hi, b_lo, b_hi = lo[ax], hi[ax], lo[1 - ax], hi[1 - ax]
        N = b.plane.normal
        base_pt = b.plane.to_global(np.zeros(2))
        t = b.hi - b.lo
        width = b_hi - b_lo
        style = self.pick(("fillet", "chamfer", "arch"), (0.5, 0.3, 0.2))
        m = self.u.nice(max(1.0, 0.1 * t))
        ca = self.u.snap((a_lo + a_hi) / 2)
        half = self.u.nice((a_hi - a_lo) / 2 + m)

        def P(bb, o):
            return base_pt + A3 * ca + B3 * bb + N * o

        if style == "arch":
            if width / 2 > t * 1.5:
                return 0
            plane = make_plane(P((b_lo + b_hi) / 2, b.lo), A3 if self.chance(0.5) else -A3, up=N,
                               origin_at_point=self.chance(0.4))
            yb = b.lo - m
            r = width / 2
            pts = plane.to_local(np.array([P(b_lo, yb), P(b_hi, yb), P(b_hi, b.hi - r), P(b_lo, b.hi - r),
                                           P((b_lo + b_hi) / 2, b.hi)]))
            q = [np.array([sh.rnd(v) for v in p]) for p in pts]
            loop = [Line(q[0], q[1]), Line(q[1], q[2]), Arc(q[2], q[4], q[3]), Line(q[3], q[0])]
            if b.hi - r <= b.lo + 0.5:
                return 0
        else:
            r = self.u.length(self.rng, max(0.5, min(t, width / 2) * 0.2), min(t, width / 2) * 0.9)
            if r >= min(t, width / 2):
                return 0
            verts3 = np.array([P(b_lo, b.lo - m), P(b_hi, b.lo - m), P(b_hi, b.hi), P(b_lo, b.hi)])
            plane = make_plane(P((b_lo + b_hi) / 2, b.lo), A3 if self.chance(0.5) else -A3, up=N,
                               origin_at_point=self.chance(0.4))
            v2 = [[sh.rnd(v) for v in p] for p in plane.to_local(verts3)]
            loop = sh.polygon_loop(v2, [None, None, (style, r), (style, r)])
        if self.chance(0.8):
            self.add(plane, [loop], Operation.INTERSECT, ExtentType.SYMMETRIC, half)
        else:
            self.add(plane, [loop], Operation.INTERSECT, ExtentType.TWO_SIDES, half, half)
        if style == "arch":
            self.faces = [f for f in self.faces if f.kind not in ("top", "side")]
        else:
            for sgn, edge in ((1, b_lo), (-1, b_hi)):
                strip = np.array([P(edge - sgn * 50 * m, b.hi), P(edge + sgn * r, b.hi)])
                a0, a1 = A3 * (a_lo - ca - m), A3 * (a_hi - ca + m)
                quad = np.array([strip[0] + a0, strip[1] + a0, strip[1] + a1, strip[0] + a1])
                top.forbidden.append(top.plane.to_local(quad))
            self.faces = [f for f in self.faces if not (f.kind == "side" and abs(float(f.plane.normal @ A3)) < 1e-6)]
        self.features.append(f"intersect:{style}")
        return 1
