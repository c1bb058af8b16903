"""Sketch-plane geometry of the OpenECAD v2 language, in millimetres.

Two things live here.

1. The meaning of ``add_sketchplane_ref`` (shared by writer and parser). A plane is defined from
   an earlier extrude's plane (origin O, axes X, Y, normal N; Y = N x X):
   - "sameplane":  origin O + u X + v Y; "extent_one": O + e1 N + u X + v Y; "extent_two":
     O - e2 N + u X + v Y (e1, e2 the referenced extrude's extents); x axis = X turned by
     ``angle`` counter-clockwise about N; normal N, or -N with ``reverse``.
   - "line": from a line S -> E of the referenced sketch (mapped to 3-D with its plane): the
     default frame has x = unit(E - S), y = N, normal D = x cross y; origin S + u x + v N; x axis
     = x turned by ``angle`` about D; normal D, or -D with ``reverse``.
   This is OpenECAD's definition (its interpreter's docstring and code), with one difference on
   purpose: OpenECAD stores every plane as spherical angles whose azimuth is computed with
   ``arctan(y / x)``, which loses the sign of x, so a plane whose normal has a negative x component
   comes back mirrored. We use the plane's true frame.

2. The plane frames OpenECAD's converter prints. It passes each sketch frame through that same
   spherical round trip, so the printed normal / x axis carry its float noise (``-0.`` where the
   truth is 0) and, for normals with x < 0, the mirror. `openecad_frame` reproduces the round
   trip so the writer can print identical text; the writer keeps the true frame where the round
   trip would change the geometry (see openecad_writer).

All geometry here uses numpy exactly the way the original arithmetic does (same operations in
the same order), because the printed ``-0.`` versus ``0.`` depends on the last bit.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from cadvlm.codec.numfmt import np_round

TOL = 1e-10  # OpenECAD's tolerance for "parallel" and "on the plane", in millimetres
PLANE_TYPES = ("sameplane", "extent_one", "extent_two", "line")


# ------------------------------------------------------------------ spherical round trip
def _to_polar(v: np.ndarray) -> tuple[float, float]:
    v = v.round(6)
    norm = np.linalg.norm(v)
    theta = np.arccos(v[2] / norm)
    phi = np.arctan(v[1] / (v[0] + 1e-15))  # the azimuth loses the sign of x (DeepCAD's choice)
    return theta, phi


def _from_polar(theta, phi) -> np.ndarray:
    return np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])


def _rot_y(v, t):
    m = np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])
    return np.dot(m, v)


def _rot_z(v, t):
    m = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
    return np.dot(m, v)


@functools.lru_cache(maxsize=4096)
def _openecad_axes(normal: tuple, x_axis: tuple, y_axis: tuple):
    n, x, y = np.array(normal), np.array(x_axis), np.array(y_axis)
    theta, phi = _to_polar(n)
    ref_x = _rot_z(_rot_y(np.array([1, 0, 0]), theta), phi)
    gamma = np.arccos(np.dot(x, ref_x).round(6))
    if np.dot(np.cross(ref_x, x), n) < 0:
        gamma = -gamma
    n2 = _from_polar(theta, phi)
    ref_y = np.cross(n2, ref_x)
    x2 = ref_x * np.cos(gamma) + ref_y * np.sin(gamma)
    y2 = _from_polar(*_to_polar(y))
    return n2, x2, y2


def openecad_frame(normal, x_axis, y_axis):
    """(normal, x_axis, y_axis) after OpenECAD's spherical round trip (copies; safe to modify)."""
    key = tuple(tuple(float(c) for c in v) for v in (normal, x_axis, y_axis))
    return tuple(a.copy() for a in _openecad_axes(*key))


# ------------------------------------------------------------------ small vector helpers
def cross(a, b) -> np.ndarray:
    """np.cross for 3-vectors, bit for bit (same products and differences), ~20x faster."""
    a0, a1, a2 = float(a[0]), float(a[1]), float(a[2])
    b0, b1, b2 = float(b[0]), float(b[1]), float(b[2])
    return np.array([a1 * b2 - a2 * b1, a2 * b0 - a0 * b2, a0 * b1 - a1 * b0])


def are_parallel(a, b, tol: float = TOL) -> bool:
    c = cross(a, b)
    return abs(c[0]) < tol and abs(c[1]) < tol and abs(c[2]) < tol


def on_plane(origin, x, y, point, tol: float = TOL) -> bool:
    return plane_distance(origin, x, y, point) < tol


def plane_distance(origin, x, y, point) -> float:
    return float(np.abs(np.dot(point - origin, cross(x, y))))


def to_2d(origin, x, y, point) -> np.ndarray:
    """Coordinates of a 3-D point in the plane (least squares, as OpenECAD does)."""
    return np.linalg.lstsq(np.vstack([x, y]).T, point - origin, rcond=None)[0]


def unit(v) -> np.ndarray:
    n = np.linalg.norm(v)
    if not n > 0:
        raise ValueError("zero vector has no direction")
    return v / n


def _allclose(a, b) -> bool:
    return all(abs(float(p) - float(q)) <= 1e-8 + 1e-5 * abs(float(q)) for p, q in zip(a, b))


def third_axis(x, y) -> np.ndarray:
    """The unit n with y = n cross x (so x, y, n is right-handed): n = unit(x cross y)."""
    n = cross(x, y)
    n = n / np.linalg.norm(n)
    return n if _allclose(cross(n, x), y) else -n


def rotation_angle(v1, v2, axis) -> float:
    """Signed angle (-pi, pi] turning v1 to v2 counter-clockwise about axis."""
    axis = axis / np.linalg.norm(axis)
    norms = np.linalg.norm(v1) * np.linalg.norm(v2)
    return float(np.arctan2(np.dot(cross(v1, v2), axis) / norms, np.dot(v1, v2) / norms))


_PI_NAMES = (
    (math.pi, "np.pi"), (math.pi / 2, "np.pi/2"), (math.pi / 3, "np.pi/3"), (math.pi / 4, "np.pi/4"),
    (math.pi / 6, "np.pi/6"), (2 * math.pi, "2*np.pi"), (3 * math.pi / 2, "3*np.pi/2"),
    (3 * math.pi / 4, "3*np.pi/4"), (5 * math.pi / 6, "5*np.pi/6"), (5 * math.pi / 3, "5*np.pi/3"),
    (7 * math.pi / 6, "7*np.pi/6"), (4 * math.pi / 3, "4*np.pi/3"),
)


def angle_text(angle: float, tol: float = TOL) -> str:
    """An angle as OpenECAD prints it: a named multiple of pi, else 6 decimals."""
    for value, name in _PI_NAMES:
        if abs(abs(angle) - value) < tol:
            return name if angle > 0 else "-" + name
    return repr(np_round(angle, 6))


# ------------------------------------------------------------------ the language's semantics
# Pure-Python 3-vectors (tuples): the parser resolves planes ~10x faster than with tiny numpy arrays.
def cross3(a, b) -> tuple[float, float, float]:
    return (a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0])


def dot3(a, b) -> float:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def axpy(*terms) -> tuple[float, float, float]:
    """Sum of (scale, vector) pairs."""
    x = y = z = 0.0
    for k, v in terms:
        x += k * v[0]
        y += k * v[1]
        z += k * v[2]
    return (x, y, z)


def unit3(v) -> tuple[float, float, float]:
    n = math.sqrt(dot3(v, v))
    if not n > 0:
        raise ValueError("zero vector has no direction")
    return (v[0] / n, v[1] / n, v[2] / n)


def rotate3(v, axis, angle: float):
    """Rodrigues rotation of v about the unit axis by angle (counter-clockwise seen from +axis)."""
    if angle == 0.0:
        return tuple(v)
    c, s = math.cos(angle), math.sin(angle)
    return axpy((c, v), (s, cross3(axis, v)), (dot3(axis, v) * (1.0 - c), axis))


def resolve_ref(ref_origin, ref_x, ref_n, ref_e1, ref_e2, uv, kind: str,
                line=None, reverse: bool = False, angle: float = 0.0):
    """Origin, x axis and normal (mm; 3-tuples) of an ``add_sketchplane_ref`` plane.

    ref_* describe the referenced extrude (unit X, N; Y = N x X); line is ((u, v), (u, v)) of the
    referenced line in that plane for kind "line". Raises ValueError for a degenerate line.
    """
    ref_y = cross3(ref_n, ref_x)
    u, v = float(uv[0]), float(uv[1])
    if kind == "line":
        (su, sv), (eu, ev) = line
        s3 = axpy((1.0, ref_origin), (su, ref_x), (sv, ref_y))
        e3 = axpy((1.0, ref_origin), (eu, ref_x), (ev, ref_y))
        dx = unit3(axpy((1.0, e3), (-1.0, s3)))
        dn = unit3(cross3(dx, ref_n))
        origin = axpy((1.0, s3), (u, dx), (v, ref_n))
        x_axis = rotate3(dx, dn, angle)
        return origin, x_axis, ((-dn[0], -dn[1], -dn[2]) if reverse else dn)
    if kind == "sameplane":
        base = tuple(ref_origin)
    elif kind == "extent_one":
        base = axpy((1.0, ref_origin), (ref_e1, ref_n))
    elif kind == "extent_two":
        base = axpy((1.0, ref_origin), (-ref_e2, ref_n))
    else:
        raise ValueError(f"unknown plane type {kind!r}")
    origin = axpy((1.0, base), (u, ref_x), (v, ref_y))
    n = (-ref_n[0], -ref_n[1], -ref_n[2]) if reverse else tuple(ref_n)
    return origin, rotate3(ref_x, ref_n, angle), n
