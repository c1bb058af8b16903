"""The state of one synthetic part while it is being drawn, and the moves every feature shares.

A designer sketches a base profile on a principal plane and extrudes it, then sketches on the
faces of what exists: holes and pockets inside a face, bosses standing on it, walls and gussets
on its edges, grooves and notches across it. `PartBuilder` is the part under construction: the
random generator and unit system it draws with, the extrudes so far, and a list of planar
`Face`s (top / bottom / sides of the base, tops of bosses, walls, pocket floors), each with its
region polygon and the polygons already taken on it (holes, boss footprints), so that a new
feature goes inside a face with a margin and away from what is there: the part reads as a real
part, and the booleans rarely degenerate.

This module holds only that state and the primitives the feature families have in common
(weighted choices, adding an extrude, marking an area taken, sketch planes on faces, a cut into
a face). The base body lives in `synth.base`, each feature family in its own module; they take
the builder as their first argument, so the builder knows none of them. Millimetres throughout;
`synth.generate` converts to metres and validates the solid.
"""

from __future__ import annotations

import numpy as np

from cadvlm.cad.model import ExtentType, Extrude, Loop, Operation, Plane, Profile
from cadvlm.synth import shapes as sh
from cadvlm.synth.frames import Base, Face, make_plane, poly_to, reproject


class PartBuilder:
    """Builds one part's extrude list (mm) with an rng; features return how many extrudes they added.

    The order in which the generator is asked for numbers is part of the output: the same seed
    gives the same part only as long as every feature draws in the same order.
    """

    def __init__(self, rng: np.random.Generator, units: sh.Units, size_range=(10.0, 200.0)):
        self.rng = rng
        self.u = units
        self.size_range = size_range
        self.extrudes: list[Extrude] = []
        self.faces: list[Face] = []
        self.walls: list[dict] = []
        self.base: Base | None = None
        self.features: list[str] = []

    # ------------------------------------------------------------------ random draws

    def pick(self, options, p=None):
        """One of `options`, with weights `p` (uniform when None)."""
        p = np.asarray(p if p is not None else [1.0] * len(options), dtype=np.float64)
        return options[int(self.rng.choice(len(options), p=p / p.sum()))]

    def uniform(self, a, b) -> float:
        return float(self.rng.uniform(a, b))

    def chance(self, p) -> bool:
        return bool(self.rng.random() < p)

    # ------------------------------------------------------------------ extrudes and taken areas

    def add(self, plane: Plane, loops, op=Operation.JOIN, ext=ExtentType.ONE_SIDE, e1=0.0, e2=0.0):
        """Append an extrude of `loops` (sketch-local curve lists, outer first) on `plane`."""
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

    # ------------------------------------------------------------------ faces

    def faces_of(self, *kinds, min_depth=0.0):
        """Faces of the given kinds with at least `min_depth` of material under them and room to sketch."""
        return [f for f in self.faces if f.kind in kinds and f.depth >= min_depth and min(f.size) >= 3.0]

    def top(self) -> Face | None:
        """The base's top face, while it still exists."""
        return next((f for f in self.faces if f.kind == "top"), None)

    def sketch_up(self, face: Face):
        """The `up` hint for planes that are not principal: the base's normal, once there is a base."""
        return self.base.plane.normal if self.base is not None else None

    def sketch_plane(self, face: Face, flip: bool = False, at=None) -> Plane:
        """A sketch plane on `face` (normal out of the material, or into it when flip)."""
        n = -face.plane.normal if flip else face.plane.normal
        on_point = self.chance(0.35)
        point = face.plane.to_global(at if at is not None else face.center)
        if on_point:
            point = face.plane.to_global(np.array([self.u.snap(v) for v in face.plane.to_local(point)]))
        return make_plane(point, n, up=self.sketch_up(face), origin_at_point=on_point)

    def edge_inward(self, e, top: Face):
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

    def rect_axes(self):
        """For box-like bases: base-local bbox and in-plane axes (3-D)."""
        b = self.base
        lo, hi = b.outer.min(axis=0), b.outer.max(axis=0)
        return lo, hi, b.plane.x_axis, b.plane.y_axis

    # ------------------------------------------------------------------ the common cut

    def cut(self, face: Face, loops, depth: float, through: bool, pocket_face: bool = False):
        """Cut `loops` (face-local) into the face by `depth`, from a plane on the face or flipped;
        a blind cut with pocket_face leaves its floor as a new face to sketch on."""
        flip = self.chance(0.3)
        plane = self.sketch_plane(face, flip=flip)
        loops2 = [reproject(lp, face.plane, plane) for lp in loops]
        e1 = depth if flip else -depth
        self.add(plane, loops2, Operation.CUT, ExtentType.ONE_SIDE, e1)
        poly = sh.loop_polygon(loops[0])
        self.register(face.plane, poly, -depth, 0.0)
        if pocket_face and not through:
            floor = make_plane(face.plane.to_global(face.center) - depth * face.plane.normal, face.plane.normal,
                               up=self.sketch_up(face))
            self.faces.append(Face(floor, poly_to(poly, face.plane, floor), face.depth - depth, "pocket"))
