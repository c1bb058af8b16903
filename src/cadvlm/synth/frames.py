"""Sketch planes and the faces a synthetic part is sketched on (millimetres).

Every feature of a synthetic part is sketched on a plane: a principal plane, or a plane lying on
a face of what is already built. This module holds what all feature families share about those
planes, so none of them reaches into another: DeepCAD's x_axis convention (`make_plane`), moving
curves and polygons between parallel planes (`reproject`, `poly_to`), and the records of the
part's state, `Face` (a planar face with its free region and what is taken on it) and `Base` (the
first extrude).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cadvlm.cad.model import Circle, Line, Plane
from cadvlm.synth import shapes as sh

# DeepCAD's x_axis for sketches on principal planes (from real samples: the front plane has
# normal -Y and x_axis +X, the right plane normal +X and x_axis +Y, ...): vertical planes keep
# their y_axis = +Z.
CANON_X = {
    (0, 0, 1): (1, 0, 0), (0, 0, -1): (1, 0, 0),
    (0, -1, 0): (1, 0, 0), (0, 1, 0): (-1, 0, 0),
    (1, 0, 0): (0, 1, 0), (-1, 0, 0): (0, -1, 0),
}


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

