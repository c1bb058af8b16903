"""`cq.Workplane` as the CadQuery reader understands it: planes, wires, stacked points, solids.

A Workplane is read as an immutable value (each method returns a new one, as in CadQuery): its
plane, the points on its stack, the wires and sketch faces waiting to be extruded, and the
context solid as the sequence of extrudes that built it. extrude() combines with that solid as
CadQuery does (join, or cut for cutBlind/combine='cut'); union/cut/intersect append the tool's
extrudes with that operation, which is the same solid only when the tool is a plain union of
extrudes (one, for intersect), so anything else is refused.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, replace

import numpy as np

from cadvlm.cad.model import CADError
from cadvlm.codec.answer import CodeParseError
from cadvlm.codec.cadquery_args import _Args, _centered
from cadvlm.codec.cadquery_shapes import Region, _arc_seg, _circle_seg, _line_seg, _nest, _placed, _rect, geo
from cadvlm.codec.cadquery_sketch import SK
from cadvlm.codec.openecad_exec import MIN_LENGTH_MM, ExtrudeRec, _Loop, _make_plane, _Plane, _Profile

MAX_EXTRUDES = 256
NAMED_PLANES = {  # CadQuery's Plane.named: (xDir, normal)
    "XY": ((1, 0, 0), (0, 0, 1)), "YZ": ((0, 1, 0), (1, 0, 0)), "ZX": ((0, 0, 1), (0, 1, 0)),
    "XZ": ((1, 0, 0), (0, -1, 0)), "YX": ((0, 1, 0), (0, 0, -1)), "ZY": ((0, 0, 1), (-1, 0, 0)),
    "front": ((1, 0, 0), (0, 0, 1)), "back": ((-1, 0, 0), (0, 0, -1)), "left": ((0, 0, 1), (-1, 0, 0)),
    "right": ((0, 0, -1), (1, 0, 0)), "top": ((1, 0, 0), (0, 1, 0)), "bottom": ((1, 0, 0), (0, -1, 0)),
}
OPS = {"union": 1, "cut": 2, "intersect": 3}


@dataclass(frozen=True)
class WP:
    """A CadQuery Workplane as far as its solid matters: plane, stacked points, pending geometry, body."""

    plane: _Plane
    locs: tuple | None = None  # stacked 2-D points; None = the plane's origin
    wires: tuple = ()  # closed pending wires (tuples of Segs)
    pen: tuple = ()  # edges of the wire being drawn
    pen_at: tuple | None = None  # where the next edge starts (moveTo / last edge end)
    after_wire: bool = False  # the stack holds a closed wire (CadQuery would centre a circle on it)
    regions: tuple = ()  # finalized sketch faces waiting for extrude
    body: tuple = ()  # ExtrudeRecs applied in order (the context solid)

    def at(self):
        return self.locs if self.locs is not None else ((0.0, 0.0),)


class WorkplaneOps:
    """The Workplane methods of the reader (mixed into `Reader`, which provides value() and count())."""

    def wp_method(self, w: WP, name: str, call: ast.Call, line: int):
        def args(*params):
            return _Args(self, name, call, params, line)

        P = w.plane
        if name == "workplane":
            a = args(("offset", "num", 0.0), ("invert", "bool", False), ("centerOption", "str", "ProjectedOrigin"),
                     ("origin", "p3", None))
            if w.body or w.wires or w.pen or w.regions:
                raise CodeParseError("workplane() on a workplane holding a solid or a sketch needs CadQuery's face "
                                     "selection: start a new cq.Workplane(...) instead", line)
            n = -np.array(P.n) if a["invert"] else np.array(P.n)
            o = np.array(P.origin)
            if a["origin"] is not None:
                q = np.array(a["origin"])
                o = q - np.dot(q - o, P.n) * np.array(P.n)  # projected onto the plane
            o = o + a["offset"] * n
            return WP(_Plane(tuple(o), P.x, tuple(n)))
        if name == "center":
            a = args(("x", "num"), ("y", "num"))
            o = np.array(P.origin) + a["x"] * np.array(P.x) + a["y"] * _ydir(P)
            return replace(w, plane=_Plane(tuple(o), P.x, P.n), locs=None, pen_at=None, after_wire=False)
        if name == "pushPoints":
            a = args(("pntList", "points"),)
            return replace(w, locs=a["pntList"], after_wire=False)
        if name == "moveTo":
            a = args(("x", "num", 0.0), ("y", "num", 0.0))
            if w.pen:
                raise CodeParseError("moveTo while a wire is open: close() it first", line)
            p = (a["x"], a["y"])
            return replace(w, locs=(p,), pen_at=p, after_wire=False)
        if name in ("lineTo", "line", "hLine", "vLine", "hLineTo", "vLineTo", "polyline", "threePointArc"):
            return self.draw(w, name, call, line)
        if name == "close":
            args()
            if not w.pen:
                raise CodeParseError("close() with no open wire", line)
            pen = list(w.pen)
            start, end = pen[0].s, pen[-1].e
            if math.dist(start, end) > 1e-6:
                pen.append(_line_seg(end, start, line))
            self.count(1, line)
            return replace(w, wires=w.wires + (tuple(pen),), pen=(), pen_at=None, locs=None, after_wire=True)
        if name in ("circle", "rect"):
            if w.pen:
                raise CodeParseError(f"{name}() while a wire is open: close() it first", line)
            if w.after_wire:
                raise CodeParseError(f"{name}() right after a closed wire is centred on that wire in CadQuery: "
                                     "place it with moveTo/pushPoints first", line)
            if name == "circle":
                a = args(("radius", "num"), ("forConstruction", "bool", False))
                new = tuple((_circle_seg(c, a["radius"], line),) for c in w.at())
            else:
                a = args(("xLen", "num"), ("yLen", "num"), ("centered", "any", True), ("forConstruction", "bool", False))
                cx, cy = _centered(a["centered"], 2, line)
                dx = 0.0 if cx else a["xLen"] / 2
                dy = 0.0 if cy else a["yLen"] / 2
                new = tuple(_rect(a["xLen"], a["yLen"], (c[0] + dx, c[1] + dy)) for c in w.at())
            if a["forConstruction"]:
                return w
            self.count(len(new), line)
            return replace(w, wires=w.wires + new)
        if name == "sketch":
            args()
            return SK(w, tuple(w.at()))
        if name == "placeSketch":
            if call.keywords or not call.args:
                raise CodeParseError("placeSketch(sketch, ...) takes sketches", line)
            regions = list(w.regions)
            for node in call.args:
                s = self.value(node, line)
                if not isinstance(s, SK):
                    raise CodeParseError("placeSketch takes cq.Sketch values", line)
                regions += _placed(s.regions, w.at())
            return replace(w, regions=tuple(regions))
        if name in ("extrude", "cutBlind"):
            if name == "extrude":
                a = args(("until", "num"), ("combine", "any", True), ("clean", "bool", True), ("both", "bool", False),
                         ("taper", "num", None))
                combine = a["combine"]
            else:
                a = args(("until", "num"), ("clean", "bool", True), ("both", "bool", False), ("taper", "num", None))
                combine = "cut"
            if a["taper"]:
                raise CodeParseError("a tapered extrude is not a sketch-and-extrude operation", line)
            return self.extrude(w, a["until"], combine, a["both"], line)
        if name in ("box", "cylinder"):
            return self.primitive(w, name, call, line)
        if name in OPS:
            a = args(("toUnion" if name == "union" else "toCut" if name == "cut" else "toIntersect", "any"),
                     ("clean", "bool", True), ("glue", "bool", False), ("tol", "num", None))
            other = next(iter(a.values.values()))
            if not isinstance(other, WP):
                raise CodeParseError(f"{name}() takes a workplane holding a solid", line)
            return boolean(w, name, other, line)
        if name == "val" or name == "clean":
            args()
            return w
        raise CodeParseError(f"Workplane.{name}() is not supported (not a sketch-and-extrude operation)", line)

    def draw(self, w: WP, name: str, call: ast.Call, line: int) -> WP:
        """An edge of the open wire, from where the pen is (moveTo, the last edge, else the origin)."""
        def args(*params):
            return _Args(self, name, call, params, line)

        if w.after_wire and w.pen_at is None and name != "polyline":
            raise CodeParseError(f"{name}() after close() starts from the closed wire in CadQuery: moveTo first", line)
        at = w.pen_at if w.pen_at is not None else (w.at()[0] if w.locs else (0.0, 0.0))
        if name == "polyline":
            pts = args(("listOfXYTuple", "points"), ("forConstruction", "bool", False),
                       ("includeCurrent", "bool", False))["listOfXYTuple"]
            if len(pts) < 2 or w.pen:
                raise CodeParseError("polyline needs two points or more, on a workplane with no open wire", line)
            segs = tuple(_line_seg(a, b, line) for a, b in zip(pts, pts[1:]))
            self.count(len(segs), line)
            return replace(w, pen=segs, pen_at=segs[-1].e, after_wire=False)
        if name == "threePointArc":
            a = args(("point1", "p2"), ("point2", "p2"), ("forConstruction", "bool", False))
            seg = _arc_seg(at, a["point1"], a["point2"], line)
        else:
            if name == "lineTo":
                a = args(("x", "num"), ("y", "num"), ("forConstruction", "bool", False))
                end = (a["x"], a["y"])
            elif name == "line":
                a = args(("xDist", "num"), ("yDist", "num"), ("forConstruction", "bool", False))
                end = (at[0] + a["xDist"], at[1] + a["yDist"])
            elif name in ("hLine", "vLine"):
                d = args(("distance", "num"), ("forConstruction", "bool", False))["distance"]
                end = (at[0] + d, at[1]) if name == "hLine" else (at[0], at[1] + d)
            else:
                v = args(("xCoord" if name == "hLineTo" else "yCoord", "num"), ("forConstruction", "bool", False))
                c = next(iter(v.values.values()))
                end = (c, at[1]) if name == "hLineTo" else (at[0], c)
            seg = _line_seg(at, end, line)
        self.count(1, line)
        return replace(w, pen=w.pen + (seg,), pen_at=seg.e, after_wire=False)

    def primitive(self, w: WP, name: str, call: ast.Call, line: int) -> WP:
        """box / cylinder: a rectangle / circle on the workplane at each point, extruded (centred by default)."""
        a = _Args(self, name, call, (("length", "num"), ("width", "num"), ("height", "num"), ("centered", "any", True),
                                     ("combine", "any", True), ("clean", "bool", True)) if name == "box" else
                  (("height", "num"), ("radius", "num"), ("direct", "p3", (0.0, 0.0, 1.0)), ("angle", "num", 360.0),
                   ("centered", "any", True), ("combine", "any", True), ("clean", "bool", True)), line)
        if name == "cylinder" and (a["angle"] != 360.0 or a["direct"] != (0.0, 0.0, 1.0)):
            raise CodeParseError("cylinder(): only a full cylinder along the workplane normal", line)
        cx, cy, cz = _centered(a["centered"], 3, line)
        regions = []
        for c in w.at():
            if name == "box":
                dx = 0.0 if cx else a["length"] / 2
                dy = 0.0 if cy else a["width"] / 2
                regions.append(Region(_rect(a["length"], a["width"], (c[0] + dx, c[1] + dy))))
            else:
                dx = 0.0 if cx else a["radius"]
                dy = 0.0 if cy else a["radius"]
                regions.append(Region((_circle_seg((c[0] + dx, c[1] + dy), a["radius"], line),)))
        h = a["height"]
        if cz:
            plane = w.plane
            base = replace(w, plane=_Plane(tuple(np.array(plane.origin) - h / 2 * np.array(plane.n)), plane.x, plane.n))
            out = self.solid(base, regions, h, False, a["combine"], line)
            return replace(out, plane=w.plane)
        return self.solid(w, regions, h, False, a["combine"], line)

    def extrude(self, w: WP, d: float, combine, both: bool, line: int) -> WP:
        if w.pen:
            raise CodeParseError("extrude() with an open wire: close() it first", line)
        regions = _nest(list(w.wires), line) + list(w.regions)
        if not regions:
            raise CodeParseError("extrude() with nothing to extrude (no closed wire or sketch face)", line)
        return self.solid(w, regions, d, both, combine, line)

    def solid(self, w: WP, regions: list, d: float, both: bool, combine, line: int) -> WP:
        """Regions extruded by d (both: symmetric) and combined with the workplane's solid."""
        if combine in (True, "a"):
            op = 1 if w.body else 0
        elif combine in ("cut", "s"):
            if not w.body:
                raise CodeParseError("a cut with no solid to cut from", line)
            op = 2
        elif combine is False and not w.body:
            op = 0
        else:
            raise CodeParseError(f"combine={combine!r}: only True/'a', 'cut'/'s' (or False on a fresh workplane)", line)
        if abs(d) < MIN_LENGTH_MM:
            raise geo("zero_extent", "extrude of zero depth", line)
        recs = list(w.body)
        for k, r in enumerate(regions):
            rec = ExtrudeRec()
            rec.plane = w.plane
            rec.profile = _Profile([_Loop(list(r.outer), line)] + [_Loop(list(h), line) for h in r.holes], line)
            rec.op = op if (op != 0 or k == 0) else 1
            rec.typ, rec.e1, rec.e2, rec.line = (1 if both else 0), d, 0.0, line
            recs.append(rec)
        if len(recs) > MAX_EXTRUDES:
            raise CodeParseError(f"more than {MAX_EXTRUDES} extrudes", line)
        return WP(w.plane, body=tuple(recs))

    # -- Sketch


def boolean(a: WP, op: str, b: WP, line: int) -> WP:
    """a.union/cut/intersect(b) as a sequence: b's extrudes appended with the boolean's operation,
    which equals the boolean only when b's solid is a plain union of its extrudes (one for intersect)."""
    if not b.body:
        raise CodeParseError(f"{op}() of a workplane with no solid", line)
    if any(r.op not in (0, 1) for r in b.body):
        raise CodeParseError(f"{op}() with a tool that is itself cut or intersected: no sketch-and-extrude "
                             "sequence builds that", line)
    if op == "intersect" and len(b.body) != 1:
        raise CodeParseError("intersect() with a tool made of several extrudes: no sketch-and-extrude sequence "
                             "builds that", line)
    if not a.body:
        if op != "union":
            raise CodeParseError(f"{op}() on a workplane with no solid", line)
        return WP(a.plane, body=b.body)
    recs = list(a.body)
    for r in b.body:
        c = ExtrudeRec()
        c.plane, c.profile, c.typ, c.e1, c.e2, c.line = r.plane, r.profile, r.typ, r.e1, r.e2, r.line
        c.op = OPS[op]
        recs.append(c)
    if len(recs) > MAX_EXTRUDES:
        raise CodeParseError(f"more than {MAX_EXTRUDES} extrudes", line)
    return WP(a.plane, body=tuple(recs))


def _ydir(p: _Plane) -> np.ndarray:
    return np.cross(np.array(p.n), np.array(p.x))


def _plane(origin, x, n, line: int) -> _Plane:
    try:
        return _make_plane(tuple(float(v) for v in origin), tuple(float(v) for v in x), tuple(float(v) for v in n), line)
    except CADError as exc:
        raise CodeParseError(f"bad plane: {exc.detail}", line) from None
