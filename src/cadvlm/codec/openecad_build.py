"""Executor records -> CADModel: closing each loop, ordering loops, millimetres to metres.

Why a module of its own: this is the step after the statements ran, shared by both front ends
and independent of the code's syntax. Loops are checked to close in written order (ends within
`JOIN_TOL_MM` are snapped together) or chained end to start as the DeepCAD reader does; loops
are ordered outer first (codec.deepcad_order); an extrude of zero depth is an error.
"""

from __future__ import annotations

import numpy as np

from cadvlm.cad.model import (
    Arc,
    CADModel,
    Circle,
    ExtentType,
    Extrude,
    Line,
    Loop,
    Operation,
    Plane,
    Profile,
)
from cadvlm.codec.deepcad_order import Seg, sort_loops
from cadvlm.codec.openecad_exec import JOIN_TOL_MM, MIN_LENGTH_MM, MM, ExtrudeRec, geo_error


def _copy(s: Seg) -> Seg:
    c = Seg.__new__(Seg)
    c.kind, c.s, c.e, c.m, c.center, c.radius, c.name = s.kind, s.s, s.e, s.m, s.center, s.radius, s.name
    return c


def _closed_loop(segs: list[Seg], line: int) -> list[Seg]:
    """Check the loop closes in written order (snapping ends within tolerance), or chain it."""
    if len(segs) == 1:
        if segs[0].kind != "circle":
            raise geo_error("open_loop", f"a single {segs[0].kind} cannot close a loop", line)
        return segs
    if any(s.kind == "circle" for s in segs):
        raise geo_error("open_loop", "a circle shares its loop with other curves", line)
    n = len(segs)
    exact = True
    for i in range(n):
        a, b = segs[i - 1].e, segs[i].s
        if a != b:
            exact = False
            if abs(a[0] - b[0]) > JOIN_TOL_MM or abs(a[1] - b[1]) > JOIN_TOL_MM:
                return _chain(segs, line)
    if exact:
        return segs
    out = []
    for i in range(n):  # snap each start onto the previous end: exact closure for the builder
        s = _copy(segs[i])
        s.s = segs[i - 1].e
        out.append(s)
    return out


def _chain(segs: list[Seg], line: int) -> list[Seg]:
    """Curves listed out of order or reversed: greedy end-to-start chaining, as the reader does."""
    rest = [_copy(s) for s in segs[1:]]
    chain = [_copy(segs[0])]
    while rest:
        end = chain[-1].e
        best, best_d, flip = None, JOIN_TOL_MM, False
        for k, c in enumerate(rest):
            ds = max(abs(c.s[0] - end[0]), abs(c.s[1] - end[1]))
            de = max(abs(c.e[0] - end[0]), abs(c.e[1] - end[1]))
            if ds <= best_d:
                best, best_d, flip = k, ds, False
            if de < best_d:
                best, best_d, flip = k, de, True
        if best is None:
            raise geo_error("open_loop", "the curves of this loop do not join end to start", line)
        c = rest.pop(best)
        if flip:
            c.reverse()
        c.s = end
        chain.append(c)
    last, first = chain[-1].e, chain[0].s
    if max(abs(last[0] - first[0]), abs(last[1] - first[1])) > JOIN_TOL_MM:
        raise geo_error("open_loop", "the loop does not close", line)
    chain[0].s = last
    return chain


def _m(p) -> tuple[float, float]:
    return p[0] / MM, p[1] / MM


def _model_curve(s: Seg):
    if s.kind == "line":
        return Line(_m(s.s), _m(s.e))
    if s.kind == "arc":
        return Arc(_m(s.s), _m(s.m), _m(s.e))
    return Circle(_m(s.center), s.radius / MM)


def build_model(recs: list[ExtrudeRec], model_id) -> CADModel:
    extrudes = []
    for rec in recs:
        loops = [_closed_loop(lp.segs, lp.line) for lp in rec.profile.loops]
        if len(loops) > 1:
            loops = [loops[k] for k in sort_loops(loops)]
        typ = ExtentType(rec.typ)
        e1 = rec.e1 / MM
        e2 = rec.e2 / MM if typ == ExtentType.TWO_SIDES else 0.0
        pl = rec.plane
        ex = Extrude(Plane(np.array(pl.origin) / MM, pl.x, pl.n), Profile([Loop([_model_curve(s) for s in lp]) for lp in loops]),
                     Operation(rec.op), typ, e1, e2)
        lo, hi = ex.depth_range()
        if hi - lo < MIN_LENGTH_MM / MM:
            raise geo_error("zero_extent", "extrude of zero depth", rec.line)
        extrudes.append(ex)
    return CADModel(extrudes=extrudes, model_id=model_id)
