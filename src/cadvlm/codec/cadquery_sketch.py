"""`cq.Sketch` as the CadQuery reader understands it: edges, faces, pushed locations, modes.

CadQuery's Sketch keeps every edge ever drawn (assemble() does not clear them), makes a face of
all of them at once (the first closed wire the boundary, the others holes), places faces at the
pushed locations (which stay until reset()), and fuses ('a'), subtracts ('s') or ignores ('c')
them; face(other_sketch) adds, subtracts... another sketch's faces. `SketchOps` restates that on
`Region`s; a subtracted shape must lie inside one face, where
it becomes that face's hole.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field, replace

from cadvlm.codec.answer import CodeParseError
from cadvlm.codec.cadquery_args import _Args, _coerce, _num
from cadvlm.codec.cadquery_shapes import (
    Region,
    _arc_seg,
    _circle_seg,
    _contains,
    _inside,
    _line_seg,
    _loops_of_edges,
    _placed,
    _polygon,
    _rect,
)
from cadvlm.codec.deepcad_order import Seg


@dataclass
class SK:
    """A CadQuery Sketch: its edges (never cleared, as in CadQuery), faces and selection."""

    parent: object  # the Workplane it was started on (None: cq.Sketch())
    locs: tuple = ((0.0, 0.0),)
    edges: list = field(default_factory=list)
    regions: list = field(default_factory=list)
    selection: tuple | None = None

    def copy(self) -> "SK":
        return SK(self.parent, self.locs, list(self.edges), list(self.regions), self.selection)


class SketchOps:
    """The Sketch methods of the reader (mixed into `Reader`, which provides value() and count())."""

    def sk_method(self, s: SK, name: str, call: ast.Call, line: int):
        def args(*params):
            return _Args(self, name, call, params, line)

        s = s.copy()
        if name == "segment":
            pts = [self.value(n, line) for n in call.args]
            kw = self._kw(call, ("tag", "forConstruction"), line)
            if len(pts) == 2 and all(isinstance(p, tuple) for p in pts):
                p1, p2 = (_coerce(p, "p2", "segment", line) for p in pts)
            elif len(pts) == 1 and isinstance(pts[0], tuple):
                p1, p2 = self._end(s, line), _coerce(pts[0], "p2", "segment", line)
            elif len(pts) == 2:
                length, ang = (_num(p, "segment", line) for p in pts)
                p1 = self._end(s, line)
                p2 = (p1[0] + length * math.cos(math.radians(ang)), p1[1] + length * math.sin(math.radians(ang)))
            else:
                raise CodeParseError("segment(p1, p2), segment(p2) or segment(length, angle)", line)
            return self._edge(s, _line_seg(p1, p2, line), kw, line)
        if name == "arc":
            vals = [self.value(n, line) for n in call.args]
            kw = self._kw(call, ("tag", "forConstruction"), line)
            if len(vals) == 3 and all(isinstance(v, tuple) for v in vals):
                p1, p2, p3 = (_coerce(v, "p2", "arc", line) for v in vals)
                seg = _arc_seg(p1, p2, p3, line)
            elif len(vals) == 2 and all(isinstance(v, tuple) for v in vals):
                p2, p3 = (_coerce(v, "p2", "arc", line) for v in vals)
                seg = _arc_seg(self._end(s, line), p2, p3, line)
            elif len(vals) == 4 and isinstance(vals[0], tuple):
                c = _coerce(vals[0], "p2", "arc", line)
                r, a0, da = (_num(v, "arc", line) for v in vals[1:])
                if abs(da) >= 360:
                    seg = _circle_seg(c, r, line)
                else:
                    p = [(c[0] + r * math.cos(math.radians(t)), c[1] + r * math.sin(math.radians(t)))
                         for t in (a0, a0 + da / 2, a0 + da)]
                    seg = _arc_seg(*p, line)
            else:
                raise CodeParseError("arc(p1, p2, p3), arc(p2, p3) or arc(centre, r, angle, sweep)", line)
            return self._edge(s, seg, kw, line)
        if name == "close":
            args(("tag", "str", None))
            if not s.edges:
                raise CodeParseError("close() with no edges", line)
            start, end = self._start(s, line), self._end(s, line)
            return self._edge(s, _line_seg(end, start, line), {}, line)
        if name == "assemble":
            a = args(("mode", "str", "a"), ("tag", "str", None))
            loops = _loops_of_edges([e for e in s.edges if not getattr(e, "name", None) == "construction"], line)
            if not loops:
                raise CodeParseError("assemble() with no edges", line)
            face = Region(tuple(loops[0]), tuple(tuple(lp) for lp in loops[1:]))
            return self._face(s, [face], a["mode"], line)
        if name == "circle":
            a = args(("r", "num"), ("mode", "str", "a"), ("tag", "str", None))
            return self._face(s, [Region((_circle_seg((0.0, 0.0), a["r"], line),))], a["mode"], line)
        if name == "rect":
            a = args(("w", "num"), ("h", "num"), ("angle", "num", 0.0), ("mode", "str", "a"), ("tag", "str", None))
            return self._face(s, [Region(_rect(a["w"], a["h"], (0.0, 0.0), a["angle"]))], a["mode"], line)
        if name == "face":  # another sketch's faces, as CadQuery's face(sketch) takes them
            a = args(("b", "any"), ("angle", "num", 0.0), ("mode", "str", "a"), ("tag", "str", None),
                     ("ignore_selection", "bool", False))
            if not isinstance(a["b"], SK) or a["angle"] != 0.0:
                raise CodeParseError("face(): only another sketch's faces, unrotated", line)
            if not a["b"].regions:
                raise CodeParseError("face() of a sketch with no faces (assemble() it first)", line)
            if a["ignore_selection"]:
                s.selection, kept = None, s.selection
                out = self._face(s, list(a["b"].regions), a["mode"], line)
                out.selection = kept
                return out
            return self._face(s, list(a["b"].regions), a["mode"], line)
        if name == "push":
            a = args(("locs", "points"), ("tag", "str", None))
            s.selection = a["locs"]
            return s
        if name == "reset":
            args()
            s.selection = None
            return s
        if name == "clean":
            args()
            return s
        if name == "finalize":
            args()
            if s.parent is None:
                raise CodeParseError("finalize() of a sketch made with cq.Sketch(): use workplane.placeSketch(sketch)",
                                     line)
            return replace(s.parent, regions=s.parent.regions + tuple(_placed(s.regions, s.locs)))
        raise CodeParseError(f"Sketch.{name}() is not supported (not a sketch-and-extrude operation)", line)

    def _kw(self, call: ast.Call, allowed: tuple, line: int) -> dict:
        out = {}
        for kw in call.keywords:
            if kw.arg not in allowed:
                raise CodeParseError(f"unexpected argument {kw.arg!r}", line)
            out[kw.arg] = self.value(kw.value, line)
        return out

    def _edge(self, s: SK, seg: Seg, kw: dict, line: int) -> SK:
        if kw.get("forConstruction"):
            seg.name = "construction"
        self.count(1, line)
        s.edges.append(seg)
        return s

    def _end(self, s: SK, line: int):
        if not s.edges:
            raise CodeParseError("no edge to continue from (start with segment(p1, p2) or arc(p1, p2, p3))", line)
        return s.edges[-1].e

    def _start(self, s: SK, line: int):
        mode = s.edges[-1].name
        return next(e.s for e in s.edges if e.name == mode)

    def _face(self, s: SK, faces: list, mode: str, line: int) -> SK:
        placed = _placed(faces, s.selection or ((0.0, 0.0),))
        if mode == "c":
            return s
        if mode == "a":
            s.regions = s.regions + placed
            return s
        if mode == "s":
            regions = list(s.regions)
            for f in placed:
                if f.holes:
                    raise CodeParseError("subtracting a face that has holes of its own is not supported", line)
                owners = [k for k, r in enumerate(regions) if _contains(r.outer, f.outer)]
                others = [k for k, r in enumerate(regions) if k not in owners
                          and (_inside(_polygon(f.outer), _polygon(r.outer)).any()
                               or _inside(_polygon(r.outer), _polygon(f.outer)).any())]
                if len(owners) != 1 or others:
                    raise CodeParseError("a subtracted shape must lie inside exactly one face of the sketch "
                                         "(one that crosses a face's edge has no sketch-and-extrude equivalent)", line)
                r = regions[owners[0]]
                regions[owners[0]] = Region(r.outer, r.holes + (f.outer,))
            s.regions = regions
            return s
        raise CodeParseError(f"sketch mode {mode!r}: only 'a', 's' and 'c'", line)
