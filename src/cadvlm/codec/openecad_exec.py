"""The semantics of OpenECAD v2 code, apart from its syntax: what each statement does.

Why a module of its own: the parser has two front ends (codec.openecad_ast, the authority, and
codec.openecad_fast, an accelerator) and both must mean exactly the same thing, so neither holds
the meaning. Here are the language's functions with their parameters (`SIGNATURES`), the names
their results must be given (`TARGETS`) and an `Executor` that runs statements handed to it as
(target, function, values): it checks numbers and names, keeps the most recent ``Curves`` and
``Loops`` lists as OpenECAD's interpreter does, resolves sketch planes (codec.planes) and records
the extrudes. codec.openecad_build turns those records into a CADModel.

Units: everything here is in millimetres, as written in the code.
"""

from __future__ import annotations

import math
import re

from cadvlm.cad.model import CADError
from cadvlm.codec import planes as P
from cadvlm.codec.answer import CodeParseError
from cadvlm.codec.deepcad_order import Seg, circle_center, reorder_loop

MAX_ABS = 1e6  # millimetres (1 km): beyond this a number is noise, not a part
JOIN_TOL_MM = 1e-3  # curve ends closer than this are the same point (reader's JOIN_TOL, in mm)
MIN_LENGTH_MM = 1e-4  # reader's MIN_LENGTH in mm
MM = 1000.0


def geo_error(reason: str, message: str, line: int | None) -> CADError:
    return CADError(reason, f"line {line}: {message}" if line else message)


# ------------------------------------------------------------------ signatures
REQ = object()  # marks a parameter without default
SIGNATURES: dict[str, tuple[tuple[str, str, object], ...]] = {
    "add_line": (("start", "vec2", REQ), ("end", "vec2", REQ)),
    "add_arc": (("start", "vec2", REQ), ("end", "vec2", REQ), ("mid", "vec2", REQ)),
    "add_circle": (("center", "vec2", REQ), ("radius", "num", REQ)),
    "add_loop": (("curves", "name", REQ),),
    "add_profile": (("loops", "name", REQ),),
    "add_sketchplane": (("origin", "vec3", REQ), ("normal", "vec3", REQ), ("x_axis", "vec3", REQ)),
    "add_sketchplane_ref": (("extrude", "name", REQ), ("origin", "vec2", REQ), ("type", "str", REQ),
                            ("line", "name", None), ("reverse", "bool", False), ("angle", "angle", 0.0)),
    "add_sketch": (("sketch_plane", "name", REQ), ("profile", "name", REQ),
                   ("sketch_position", "vec3", None), ("sketch_size", "num", None)),
    "add_extrude": (("sketch", "name", REQ), ("operation", "int", REQ), ("type", "int", REQ),
                    ("extent_one", "num", REQ), ("extent_two", "num", REQ)),
}
# The variable name each call must be assigned to (OpenECAD's interpreter dispatches on it).
TARGETS = {
    "add_line": re.compile(r"Line\d{1,6}_\d{1,6}_\d{1,6}\Z", re.ASCII),
    "add_arc": re.compile(r"Arc\d{1,6}_\d{1,6}_\d{1,6}\Z", re.ASCII),
    "add_circle": re.compile(r"Circle\d{1,6}_\d{1,6}_\d{1,6}\Z", re.ASCII),
    "add_loop": re.compile(r"Loop\d{1,6}_\d{1,6}\Z", re.ASCII),
    "add_profile": re.compile(r"Profile\d{1,6}\Z", re.ASCII),
    "add_sketchplane": re.compile(r"SketchPlane\d{1,6}\Z", re.ASCII),
    "add_sketchplane_ref": re.compile(r"SketchPlane\d{1,6}\Z", re.ASCII),
    "add_sketch": re.compile(r"Sketch\d{1,6}\Z", re.ASCII),
    "add_extrude": re.compile(r"Extrude\d{1,6}\Z", re.ASCII),
}
# Accepted for compatibility with OpenECAD v1 code, and ignored (OpenECAD's interpreter ignores them too).
IGNORED = ("sketch_position", "sketch_size")
_LIST_TARGET = re.compile(r"(Loops\d{1,6}|Curves\d{1,6}_\d{1,6})\Z", re.ASCII)


# ------------------------------------------------------------------ executor
class _CurveList(list):
    __slots__ = ("pending",)  # add_loop calls whose in-place reorder is not applied yet


class _LoopList(list):
    pass


class _Loop:
    __slots__ = ("segs", "line")

    def __init__(self, segs, line):
        self.segs, self.line = segs, line


class _Profile:
    __slots__ = ("loops", "line")

    def __init__(self, loops, line):
        self.loops, self.line = loops, line


class _Plane:
    __slots__ = ("origin", "x", "n")  # millimetres, unit vectors

    def __init__(self, origin, x, n):
        self.origin, self.x, self.n = origin, x, n


class _Sketch:
    __slots__ = ("plane", "profile")

    def __init__(self, plane, profile):
        self.plane, self.profile = plane, profile


class ExtrudeRec:
    """One add_extrude as run: plane, profile, operation, extent type, extents (mm), its line."""

    __slots__ = ("plane", "profile", "op", "typ", "e1", "e2", "line")


def _check_vals(vals: tuple, what: str, line: int) -> None:
    lo, hi = min(vals), max(vals)
    if not (-MAX_ABS <= lo and hi <= MAX_ABS):
        for v in vals:
            _check_num(v, what, line)
        raise CodeParseError(f"{what}: number out of range", line)


def _check_num(v: float, what: str, line: int) -> float:
    if not math.isfinite(v) or abs(v) > MAX_ABS:
        raise CodeParseError(f"{what}: number out of range ({v!r})", line)
    return v


class Executor:
    """Runs statements given as (target, function, values); knows nothing of syntax.

    One method per function, with the language's parameters; the ast front end binds a call's
    arguments and goes through `call`, the fast front end calls the methods directly.
    """

    def __init__(self):
        self.names: dict[str, object] = {}
        self.cur_curves: _CurveList | None = None
        self.cur_loops: _LoopList | None = None
        self.extrudes: list[ExtrudeRec] = []
        self.last_func: str | None = None
        self.last_line = 0

    def _get(self, name: str, cls, what: str, line: int):
        obj = self.names.get(name)
        if obj is None:
            raise CodeParseError(f"{what} {name!r} is not defined", line)
        if not isinstance(obj, cls):
            raise CodeParseError(f"{name!r} is not a {what}", line)
        return obj

    def _done(self, target, obj, func, line):
        self.names[target] = obj
        self.last_func, self.last_line = func, line

    def empty_list(self, target: str, line: int) -> None:
        if not _LIST_TARGET.match(target):
            raise CodeParseError(f"'{target} = []': only Loops<i> and Curves<i>_<j> lists exist", line)
        if target[4] == "s":  # "Loops"
            obj = self.cur_loops = _LoopList()
        else:
            obj = self.cur_curves = _CurveList()
            obj.pending = 0
        self._done(target, obj, "[]", line)

    def call(self, target: str, func: str, a: dict, line: int) -> None:
        """Run a call whose arguments are bound by parameter name (see SIGNATURES)."""
        if not TARGETS[func].match(target):
            raise CodeParseError(f"the result of {func} cannot be named {target!r}", line)
        getattr(self, func)(target, *(a[name] for name, _, _ in SIGNATURES[func] if name not in IGNORED), line)

    # -- curves
    def _append(self, target, seg, func, line):
        if self.cur_curves is None:
            raise CodeParseError(f"{func} before any 'Curves.. = []' list", line)
        seg.name = line  # the statement line, for later error messages
        self.cur_curves.append(seg)
        self._done(target, seg, func, line)

    def add_line(self, target, start, end, line):
        _check_vals(start + end, "add_line", line)
        if math.hypot(end[0] - start[0], end[1] - start[1]) < MIN_LENGTH_MM:
            raise geo_error("zero_length_curve", "line of zero length", line)
        self._append(target, Seg("line", s=start, e=end), "add_line", line)

    def add_arc(self, target, start, end, mid, line):
        _check_vals(start + end + mid, "add_arc", line)
        cr = circle_center(start, mid, end)
        if cr is None or cr[1] > MAX_ABS or min(math.dist(start, mid), math.dist(mid, end)) < MIN_LENGTH_MM:
            raise geo_error("degenerate_arc", "arc points are collinear or coincide", line)
        self._append(target, Seg("arc", s=start, e=end, m=mid), "add_arc", line)

    def add_circle(self, target, center, radius, line):
        _check_vals(center, "add_circle", line)
        _check_num(radius, "radius", line)
        if radius < MIN_LENGTH_MM:
            raise geo_error("zero_length_curve", f"circle of radius {radius!r}", line)
        self._append(target, Seg("circle", center=center, radius=radius), "add_circle", line)

    # -- loops, profiles, sketches
    def add_loop(self, target, curves, line):
        if self.cur_loops is None:
            raise CodeParseError("add_loop before any 'Loops.. = []' list", line)
        lst = self._get(curves, _CurveList, "curves list", line)
        if not lst:
            raise CodeParseError(f"add_loop({curves}) of an empty curves list", line)
        # OpenECAD reorders the curve objects in place here; that only turns curves around (the
        # loop's geometry stays), so it is applied lazily, when a "line" reference needs it.
        lst.pending += 1
        lp = _Loop(list(lst), line)
        self.cur_loops.append(lp)
        self._done(target, lp, "add_loop", line)

    def add_profile(self, target, loops, line):
        lst = self._get(loops, _LoopList, "loops list", line)
        if not lst:
            raise CodeParseError(f"add_profile({loops}) of an empty loops list", line)
        self._done(target, _Profile(list(lst), line), "add_profile", line)

    def add_sketch(self, target, sketch_plane, profile, line):
        obj = _Sketch(self._get(sketch_plane, _Plane, "sketch plane", line),
                      self._get(profile, _Profile, "profile", line))
        self._done(target, obj, "add_sketch", line)

    # -- planes
    def add_sketchplane(self, target, origin, normal, x_axis, line):
        _check_vals(origin + normal + x_axis, "add_sketchplane", line)
        self._done(target, _make_plane(origin, x_axis, normal, line), "add_sketchplane", line)

    def add_sketchplane_ref(self, target, extrude, origin, type, line_name, reverse, angle, line):
        ref = self._get(extrude, ExtrudeRec, "extrude", line)
        if type not in P.PLANE_TYPES:
            raise CodeParseError(f"unknown sketch plane type {type!r} (one of {', '.join(P.PLANE_TYPES)})", line)
        _check_vals(origin, "origin", line)
        if not math.isfinite(angle) or abs(angle) > 100.0:
            raise CodeParseError(f"angle out of range ({angle!r})", line)
        seg_uv = None
        if type == "line":
            if line_name is None:
                raise CodeParseError('type= "line" needs line= Line<i>_<j>_<k>', line)
            seg = self._get(line_name, Seg, "line", line)
            if seg.kind != "line":
                raise CodeParseError(f"{line_name!r} is not a line", line)
            self._settle(seg)
            seg_uv = (seg.s, seg.e)
        rp = ref.plane
        try:
            o3, x3, n3 = P.resolve_ref(rp.origin, rp.x, rp.n, ref.e1, ref.e2, origin, type, seg_uv, reverse, angle)
        except ValueError as exc:
            raise geo_error("bad_plane", str(exc), line) from None
        self._done(target, _make_plane(o3, x3, n3, line), "add_sketchplane_ref", line)

    def _settle(self, seg: Seg) -> None:
        """Apply OpenECAD's in-place loop reorders (two per add_loop) to the list holding seg."""
        for obj in self.names.values():
            if isinstance(obj, _CurveList) and obj.pending and any(c is seg for c in obj):
                for _ in range(obj.pending):
                    reorder_loop(reorder_loop(list(obj)))
                obj.pending = 0

    # -- extrudes
    def add_extrude(self, target, sketch, operation, type, extent_one, extent_two, line):
        sk = self._get(sketch, _Sketch, "sketch", line)
        if operation not in (0, 1, 2, 3):
            raise CodeParseError(f"operation= {operation} (0 NewBody, 1 Join, 2 Cut, 3 Intersect)", line)
        if type not in (0, 1, 2):
            raise CodeParseError(f"type= {type} (0 OneSide, 1 Symmetric, 2 TwoSides)", line)
        rec = ExtrudeRec()
        rec.plane, rec.profile, rec.op, rec.typ = sk.plane, sk.profile, operation, type
        rec.e1 = _check_num(extent_one, "extent_one", line)
        rec.e2 = _check_num(extent_two, "extent_two", line)
        rec.line = line
        self.extrudes.append(rec)
        self._done(target, rec, "add_extrude", line)

    def finish(self) -> list[ExtrudeRec]:
        if self.last_func is None:
            raise CADError("no_extrude", "empty program: nothing to build")
        if self.last_func != "add_extrude":
            raise CodeParseError("the program ends without add_extrude (truncated?)", self.last_line)
        return self.extrudes


def _make_plane(origin, x, n, line) -> _Plane:
    """Unit normal, x axis made perpendicular to it (Gram-Schmidt), as OpenECAD's angles imply."""
    nn = math.sqrt(P.dot3(n, n))
    if not nn > 1e-6:
        raise geo_error("bad_plane", "normal is a zero vector", line)
    n = (n[0] / nn, n[1] / nn, n[2] / nn)
    x = P.axpy((1.0, x), (-P.dot3(x, n), n))
    xn = math.sqrt(P.dot3(x, x))
    if not xn > 1e-6:
        raise geo_error("bad_plane", "x_axis is zero or parallel to the normal", line)
    return _Plane(tuple(origin), (x[0] / xn, x[1] / xn, x[2] / xn), n)
