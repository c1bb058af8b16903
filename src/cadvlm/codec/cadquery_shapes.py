"""Sketch geometry for the CadQuery reader: faces as outer loop + holes, and how CadQuery nests them.

Curves are `Seg`s in millimetres in the sketch plane (the OpenECAD reader's records), so the
CadQuery reader hands its extrudes to the same builder (codec.openecad_build). Here are the
shapes CadQuery draws (rectangles, circles, segments, three-point arcs), translation to pushed
locations, and the containment tests that decide which wire is a hole of which face.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cadvlm.cad.model import Arc, CADError, Circle
from cadvlm.codec.answer import CodeParseError
from cadvlm.codec.deepcad_order import Seg, circle_center
from cadvlm.codec.openecad_exec import JOIN_TOL_MM, MAX_ABS, MIN_LENGTH_MM


@dataclass(frozen=True)
class Region:
    """A face of a sketch: an outer loop and its holes (Segs in millimetres, plane coordinates)."""

    outer: tuple
    holes: tuple = ()



def _shift(seg: Seg, d) -> Seg:
    dx, dy = d
    if seg.kind == "circle":
        return Seg("circle", center=(seg.center[0] + dx, seg.center[1] + dy), radius=seg.radius)
    return Seg(seg.kind, s=(seg.s[0] + dx, seg.s[1] + dy), e=(seg.e[0] + dx, seg.e[1] + dy),
               m=None if seg.m is None else (seg.m[0] + dx, seg.m[1] + dy))


def _shift_region(r: Region, d) -> Region:
    return Region(tuple(_shift(s, d) for s in r.outer), tuple(tuple(_shift(s, d) for s in h) for h in r.holes))


def _polygon(segs) -> np.ndarray:
    pts = []
    for s in segs:
        if s.kind == "line":
            pts.append(np.array([s.s]))
        elif s.kind == "arc":
            pts.append(Arc(s.s, s.m, s.e).sample(12)[:-1])
        else:
            pts.append(Circle(s.center, s.radius).sample(48)[:-1])
    return np.concatenate(pts)


def _inside(points: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon for each point (n, 2) against a closed polygon (m, 2)."""
    x, y = points[:, :1], points[:, 1:]
    x0, y0 = poly[:, 0][None, :], poly[:, 1][None, :]
    x1, y1 = np.roll(poly[:, 0], -1)[None, :], np.roll(poly[:, 1], -1)[None, :]
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return ((crosses & (x < xc)).sum(axis=1) % 2) == 1


def _contains(outer, inner) -> bool:
    """True when the loop `inner` lies inside the loop `outer` (all its sample points)."""
    return bool(_inside(_polygon(inner), _polygon(outer)).all())


def _nest(wires: list, line: int) -> list[Region]:
    """Closed wires -> regions as CadQuery sorts them: a wire inside an odd number of others is a
    hole of the innermost one holding it; the others are outer boundaries."""
    polys = [_polygon(w) for w in wires]
    holders = [[j for j in range(len(wires)) if j != i and _inside(polys[i][:1], polys[j])[0]] for i in range(len(wires))]
    outers = [i for i in range(len(wires)) if len(holders[i]) % 2 == 0]
    holes: dict[int, list] = {i: [] for i in outers}
    for i in range(len(wires)):
        if len(holders[i]) % 2 == 1:
            owner = max(holders[i], key=lambda j: len(holders[j]))  # the innermost holder
            if owner not in holes:
                raise CodeParseError("a wire lies inside a hole's hole in an unsupported way", line)
            holes[owner].append(tuple(wires[i]))
    return [Region(tuple(wires[i]), tuple(holes[i])) for i in outers]


def _loops_of_edges(edges: list, line: int) -> list[list[Seg]]:
    """Consecutive edges chained into closed loops (a full circle is a loop of its own)."""
    loops, cur = [], []
    for e in edges:
        if e.kind == "circle":
            if cur:
                raise CodeParseError("a full circle edge inside an unclosed chain of edges", line)
            loops.append([e])
            continue
        cur.append(e)
        if len(cur) > 1 and math.dist(cur[-1].e, cur[0].s) <= JOIN_TOL_MM:
            loops.append(cur)
            cur = []
    if cur:
        raise geo("open_loop", "the sketch's edges do not close into a loop before assemble()", line)
    return loops


def geo(reason: str, message: str, line: int | None) -> CADError:
    return CADError(reason, f"line {line}: {message}" if line else message)


def _line_seg(a, b, line: int) -> Seg:
    if math.dist(a, b) < MIN_LENGTH_MM:
        raise geo("zero_length_curve", "segment of zero length", line)
    return Seg("line", s=tuple(a), e=tuple(b))


def _arc_seg(a, m, b, line: int) -> Seg:
    cr = circle_center(a, m, b)
    if cr is None or cr[1] > MAX_ABS or min(math.dist(a, m), math.dist(m, b)) < MIN_LENGTH_MM:
        raise geo("degenerate_arc", "arc points are collinear or coincide", line)
    return Seg("arc", s=tuple(a), e=tuple(b), m=tuple(m))


def _circle_seg(c, r: float, line: int) -> Seg:
    if not r >= MIN_LENGTH_MM:
        raise geo("zero_length_curve", f"circle of radius {r!r}", line)
    return Seg("circle", center=tuple(c), radius=float(r))


def _rect(w: float, h: float, c, angle_deg: float = 0.0) -> tuple:
    a = math.radians(angle_deg)
    ca, sa = math.cos(a), math.sin(a)
    corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
    pts = [(c[0] + x * ca - y * sa, c[1] + x * sa + y * ca) for x, y in corners]
    return tuple(Seg("line", s=pts[k], e=pts[(k + 1) % 4]) for k in range(4))


def _placed(regions, locs) -> list[Region]:
    return [_shift_region(r, loc) if loc != (0.0, 0.0) else r for loc in locs for r in regions]
