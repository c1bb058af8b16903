"""DeepCAD's canonical order of curves in a loop and of loops in a profile.

OpenECAD's converter does not write loops in file order: DeepCAD's sketch library reorders
every loop when it is built (start at the left-most, then lowest, start point; counter-clockwise
by a heuristic on the first and last curves) and sorts a profile's loops by the lower-left corner
of their bounding boxes. The writer must apply the same rules to reproduce OpenECAD's text, and
the parser needs them too, because OpenECAD's interpreter reorders each loop again in
``add_loop`` and reverses curve objects in place: a ``Line`` named later by a "line" sketch-plane
reference points the way the reorder left it.

The rules are restated here in our own code from their observable behaviour (tolerances, the
6-decimal rounding of comparisons, the 10000 mm start sentinel, in-place reversal), in
millimetres as OpenECAD works. Curves are small mutable `Seg` records so reversal is in place,
as in the original.
"""

from __future__ import annotations

import math

from cadvlm.codec.numfmt import np_round


class Seg:
    """A curve in millimetres: kind 'line' | 'arc' | 'circle'; s/e/m start, end, mid (x, y)."""

    __slots__ = ("kind", "s", "e", "m", "center", "radius", "name")

    def __init__(self, kind, s=None, e=None, m=None, center=None, radius=0.0, name=None):
        self.kind = kind
        self.s, self.e, self.m = s, e, m
        self.center, self.radius = center, radius
        self.name = name
        if kind == "circle":  # DeepCAD's circle "start/end": the left and right extremes
            cx, cy = center
            self.s, self.e = (cx - radius, cy), (cx + radius, cy)

    def reverse(self) -> None:
        if self.kind != "circle":
            self.s, self.e = self.e, self.s

    def direction(self, from_start: bool) -> tuple[float, float]:
        if self.kind == "line":
            return self.e[0] - self.s[0], self.e[1] - self.s[1]
        if self.kind == "arc":
            a, b = (self.s, self.m) if from_start else (self.m, self.e)
            return b[0] - a[0], b[1] - a[1]
        return self.center[0] - self.s[0], self.center[1] - self.s[1]

    def bbox(self) -> tuple[float, float, float, float]:
        """Exact (xmin, ymin, xmax, ymax), arcs included."""
        if self.kind == "line":
            (x0, y0), (x1, y1) = self.s, self.e
            return min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)
        if self.kind == "circle":
            (cx, cy), r = self.center, self.radius
            return cx - r, cy - r, cx + r, cy + r
        return arc_bbox(self.s, self.m, self.e)

    def __repr__(self):
        return f"Seg({self.kind}, s={self.s}, e={self.e}, m={self.m}, c={self.center}, r={self.radius})"


def circle_center(a, b, c):
    """Centre and radius of the circle through three points (None when collinear)."""
    d = 2.0 * (a[0] * (b[1] - c[1]) + b[0] * (c[1] - a[1]) + c[0] * (a[1] - b[1]))
    if d == 0.0:
        return None
    sa, sb, sc = a[0] ** 2 + a[1] ** 2, b[0] ** 2 + b[1] ** 2, c[0] ** 2 + c[1] ** 2
    ux = (sa * (b[1] - c[1]) + sb * (c[1] - a[1]) + sc * (a[1] - b[1])) / d
    uy = (sa * (c[0] - b[0]) + sb * (a[0] - c[0]) + sc * (b[0] - a[0])) / d
    return (ux, uy), math.hypot(a[0] - ux, a[1] - uy)


def arc_bbox(s, m, e):
    """Bounding box of the arc start -> mid -> end: end points plus the axis extremes it passes."""
    cr = circle_center(s, m, e)
    xs, ys = [s[0], e[0]], [s[1], e[1]]
    if cr is None:
        return min(xs), min(ys), max(xs), max(ys)
    (cx, cy), r = cr
    two_pi = 2.0 * math.pi
    a_s, a_m, a_e = (math.atan2(p[1] - cy, p[0] - cx) % two_pi for p in (s, m, e))
    lo, hi = min(a_s, a_e), max(a_s, a_e)
    if not lo < a_m < hi:  # the arc wraps through angle 0
        lo, hi = hi, lo + two_pi
    for k in range(8):
        ang = k * math.pi / 2
        if lo < ang < hi:
            q = k % 4
            xs.append(cx + (r if q == 0 else -r if q == 2 else 0.0))
            ys.append(cy + (r if q == 1 else -r if q == 3 else 0.0))
    return min(xs), min(ys), max(xs), max(ys)


def _close(a, b) -> bool:
    """numpy.allclose(a, b) with its default tolerances (note: relative to b)."""
    return all(abs(x - y) <= 1e-8 + 1e-5 * abs(y) for x, y in zip(a, b))


def reorder_loop(curves: list[Seg]) -> list[Seg]:
    """DeepCAD's loop reorder; reverses Seg objects in place and returns the new order."""
    n = len(curves)
    if n <= 1:
        return list(curves)
    c = list(curves)
    if _close(c[0].s, c[1].s) or _close(c[0].s, c[1].e):
        c[0].reverse()
    best, sx, sy = -1, 10000.0, 10000.0
    for i, cur in enumerate(c):
        if i < n - 1 and _close(cur.e, c[i + 1].e):
            c[i + 1].reverse()
        px, py = np_round(cur.s[0], 6), np_round(cur.s[1], 6)
        rx = np_round(sx, 6)
        if px < rx or (px == rx and py < np_round(sy, 6)):
            best, (sx, sy) = i, cur.s
    c = c[best:] + c[:best]
    if c[0].kind == "circle" or c[-1].kind == "circle":
        return c
    sv, ev = c[0].direction(True), c[-1].direction(False)
    if ev[0] * sv[1] - ev[1] * sv[0] <= 0:
        for cur in c:
            cur.reverse()
        c.reverse()
    return c


def loop_bbox(curves: list[Seg]) -> tuple[float, float, float, float]:
    boxes = [c.bbox() for c in curves]
    return (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))


def sort_loops(loops: list[list[Seg]]) -> list[int]:
    """Indices of loops in DeepCAD's profile order: by lower-left bbox corner (x, then y), stable."""
    keys = []
    for lp in loops:
        x0, y0, _, _ = loop_bbox(lp)
        keys.append((np_round(x0, 6), np_round(y0, 6)))
    return sorted(range(len(loops)), key=lambda k: keys[k])
