"""The canonical CAD model: sketch-and-extrude sequences, as DeepCAD defines them.

Every other part of cadvlm speaks this model: the DeepCAD JSON reader/writer, the synthetic
generator, the OpenECAD code writer/parser and the solid builder. Lengths are in the units of
the DeepCAD JSON (metres); the code writer scales to millimetres.

Curves live in the 2-D frame of their sketch plane (global = origin + u*x_axis + v*y_axis).
An arc is stored by three points (start, mid, end): unambiguous, direction-free and trivially
reversed, which makes loop chaining and code writing simple.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np


class CADError(ValueError):
    """A model that cannot be read or built; `reason` is a short key counted by batch stages."""

    def __init__(self, reason: str, message: str, model_id: str | None = None):
        self.reason = reason
        self.model_id = model_id
        self.detail = message
        super().__init__(self._text())

    def _text(self) -> str:
        where = f"{self.model_id}: " if self.model_id else ""
        return f"{where}{self.reason}: {self.detail}"

    def with_id(self, model_id: str) -> "CADError":
        """Attach the model id once it is known (readers deep down do not know it)."""
        if self.model_id is None:
            self.model_id = model_id
            self.args = (self._text(),)
        return self


class Operation(enum.IntEnum):
    """Boolean of an extrude with the body built so far (DeepCAD / OpenECAD numbering)."""

    NEW_BODY = 0
    JOIN = 1
    CUT = 2
    INTERSECT = 3


class ExtentType(enum.IntEnum):
    """How the extrude depth is applied (DeepCAD / OpenECAD numbering)."""

    ONE_SIDE = 0
    SYMMETRIC = 1
    TWO_SIDES = 2


def _vec(values, n: int) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(n)
    return arr


@dataclass(frozen=True, eq=False)
class Plane:
    """A sketch plane: origin and an orthonormal frame (normal = x_axis x y_axis)."""

    origin: np.ndarray
    x_axis: np.ndarray
    normal: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "origin", _vec(self.origin, 3))
        object.__setattr__(self, "x_axis", _vec(self.x_axis, 3))
        object.__setattr__(self, "normal", _vec(self.normal, 3))

    @property
    def y_axis(self) -> np.ndarray:
        return np.cross(self.normal, self.x_axis)

    def to_global(self, uv) -> np.ndarray:
        """Map 2-D sketch points (..., 2) to 3-D global points (..., 3)."""
        uv = np.asarray(uv, dtype=np.float64)
        return self.origin + uv[..., :1] * self.x_axis + uv[..., 1:2] * self.y_axis

    def to_local(self, xyz) -> np.ndarray:
        """Project 3-D global points (..., 3) into the plane's 2-D frame (..., 2)."""
        d = np.asarray(xyz, dtype=np.float64) - self.origin
        return np.stack([d @ self.x_axis, d @ self.y_axis], axis=-1)

    def __eq__(self, other):
        return isinstance(other, Plane) and all(
            np.array_equal(a, b)
            for a, b in ((self.origin, other.origin), (self.x_axis, other.x_axis), (self.normal, other.normal))
        )


@dataclass(frozen=True, eq=False)
class Line:
    start: np.ndarray
    end: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "start", _vec(self.start, 2))
        object.__setattr__(self, "end", _vec(self.end, 2))

    def reversed(self) -> "Line":
        return Line(self.end, self.start)

    def sample(self, n: int = 2) -> np.ndarray:
        if n == 2:
            return np.stack([self.start, self.end])
        t = np.linspace(0.0, 1.0, n)[:, None]
        return self.start + t * (self.end - self.start)

    def __eq__(self, other):
        return isinstance(other, Line) and np.array_equal(self.start, other.start) and np.array_equal(self.end, other.end)


@dataclass(frozen=True, eq=False)
class Arc:
    """A circular arc through start, mid and end (mid lies on the arc between them)."""

    start: np.ndarray
    mid: np.ndarray
    end: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "start", _vec(self.start, 2))
        object.__setattr__(self, "mid", _vec(self.mid, 2))
        object.__setattr__(self, "end", _vec(self.end, 2))

    def reversed(self) -> "Arc":
        return Arc(self.end, self.mid, self.start)

    def circle(self) -> tuple[np.ndarray, float]:
        """Centre and radius of the circle through the three points."""
        return circle_through(self.start, self.mid, self.end)

    @property
    def ccw(self) -> bool:
        """True when the arc runs counter-clockwise from start through mid to end."""
        a, b, c = self.start, self.mid, self.end
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])) > 0

    def _polar(self) -> tuple[np.ndarray, float, float, float]:
        """(centre, radius, start angle, signed sweep): everything sampling needs, computed once."""
        center, r = self.circle()
        a0 = math.atan2(self.start[1] - center[1], self.start[0] - center[0])
        a1 = math.atan2(self.end[1] - center[1], self.end[0] - center[0])
        sweep = (a1 - a0) % (2 * math.pi) if self.ccw else -((a0 - a1) % (2 * math.pi))
        return center, r, a0, sweep

    def sweep(self) -> float:
        """Swept angle in radians, in (0, 2*pi)."""
        return abs(self._polar()[3])

    def sample(self, n: int = 16) -> np.ndarray:
        center, r, a0, sweep = self._polar()
        t = a0 + np.linspace(0.0, sweep, n)
        return center + r * np.stack([np.cos(t), np.sin(t)], axis=1)

    def __eq__(self, other):
        return isinstance(other, Arc) and all(
            np.array_equal(a, b) for a, b in ((self.start, other.start), (self.mid, other.mid), (self.end, other.end))
        )


@dataclass(frozen=True, eq=False)
class Circle:
    center: np.ndarray
    radius: float

    def __post_init__(self):
        object.__setattr__(self, "center", _vec(self.center, 2))
        object.__setattr__(self, "radius", float(self.radius))

    def reversed(self) -> "Circle":
        return self

    def sample(self, n: int = 32) -> np.ndarray:
        t = np.linspace(0.0, 2 * math.pi, n)
        return self.center + self.radius * np.stack([np.cos(t), np.sin(t)], axis=1)

    def __eq__(self, other):
        return isinstance(other, Circle) and np.array_equal(self.center, other.center) and self.radius == other.radius


Curve = Line | Arc | Circle


@dataclass(eq=True)
class Loop:
    """A closed chain of curves: each curve ends where the next starts; a circle stands alone."""

    curves: list[Curve]

    def points(self) -> np.ndarray:
        """Points along the loop (for bounding boxes and containment tests)."""
        return np.concatenate([c.sample() for c in self.curves], axis=0)

    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        pts = self.points()
        return pts.min(axis=0), pts.max(axis=0)


@dataclass(eq=True)
class Profile:
    """A region of a sketch: loops[0] is the outer boundary, the rest are holes."""

    loops: list[Loop]


@dataclass(eq=True)
class Extrude:
    """One profile on one plane, extruded and combined with the body so far.

    extent_one is the depth along the plane normal (negative = reverse). SYMMETRIC spans
    +-extent_one; TWO_SIDES is the union of extent_one along and extent_two against the normal.
    """

    plane: Plane
    profile: Profile
    operation: Operation = Operation.NEW_BODY
    extent_type: ExtentType = ExtentType.ONE_SIDE
    extent_one: float = 0.0
    extent_two: float = 0.0

    def depth_range(self) -> tuple[float, float]:
        """(low, high) offsets along the normal that the solid spans."""
        e1, e2 = float(self.extent_one), float(self.extent_two)
        if self.extent_type == ExtentType.SYMMETRIC:
            return -abs(e1), abs(e1)
        if self.extent_type == ExtentType.TWO_SIDES:
            # Two prisms from the plane (e1 along, e2 against the normal), fused, as DeepCAD
            # builds them: when both point the same way the result is the longer one.
            return min(0.0, e1, -e2), max(0.0, e1, -e2)
        return (min(0.0, e1), max(0.0, e1))


@dataclass(eq=True)
class CADModel:
    """A construction sequence: extrudes applied in order to an empty shape."""

    extrudes: list[Extrude] = field(default_factory=list)
    model_id: str | None = None
    # Bounding box stored in the source file (min, max), metres; None when not known.
    bbox: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False)

    def n_curves(self) -> int:
        return sum(len(lp.curves) for e in self.extrudes for lp in e.profile.loops)


def circle_through(a, b, c) -> tuple[np.ndarray, float]:
    """Centre and radius of the circle through three 2-D points (CADError if collinear)."""
    (ax, ay), (bx, by), (cx, cy) = (map(float, p) for p in (a, b, c))  # floats: hot in parsing
    d = 2.0 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    scale = max(abs(ax - bx), abs(ay - by), abs(ax - cx), abs(ay - cy), 1e-300)
    if abs(d) < 1e-12 * scale * scale:
        raise CADError("degenerate_arc", "arc points are collinear")
    sa, sb, sc = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    ux = (sa * (by - cy) + sb * (cy - ay) + sc * (ay - by)) / d
    uy = (sa * (cx - bx) + sb * (ax - cx) + sc * (bx - ax)) / d
    return np.array([ux, uy]), math.hypot(ax - ux, ay - uy)
