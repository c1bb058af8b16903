"""OpenECAD v2 code -> canonical model, without ever executing the text.

Model output is untrusted, so the code is read as data. Python's ``ast`` module parses it and only
these statement forms are accepted, one per logical line (see DESIGN.md "CAD code"):

    Loops{i} = []                          Curves{i}_{j} = []
    Line{i}_{j}_{k} = add_line(start= [u, v], end= [u, v])
    Arc{i}_{j}_{k} = add_arc(start= [u, v], end= [u, v], mid= [u, v])
    Circle{i}_{j}_{k} = add_circle(center= [u, v], radius= r)
    Loop{i}_{j} = add_loop(Curves{i}_{j})  Profile{i} = add_profile(Loops{i})
    SketchPlane{i} = add_sketchplane(origin= [x, y, z], normal= [x, y, z], x_axis= [x, y, z])
    SketchPlane{i} = add_sketchplane_ref(Extrude{k}, origin= [u, v], type= "sameplane" |
        "extent_one" | "extent_two" | "line", line= Line.., reverse= True, angle= <angle>)
    Sketch{i} = add_sketch(sketch_plane= SketchPlane{i}, profile= Profile{i})
    Extrude{i} = add_extrude(sketch= Sketch{i}, operation= 0..3, type= 0..2, extent_one= d, extent_two= d)

Arguments bind like a Python call (positional or keyword). Values are literal numbers (a sign
allowed), lists of them, the strings and booleans above, earlier names, and for ``angle`` a small
arithmetic expression of numbers and ``np.pi``. Everything else - imports, other names or
attributes, other calls, loops, comprehensions, huge literals or texts - is a `CodeParseError`
naming the line. Curves go to the most recent ``Curves`` list and loops to the most recent ``Loops``
list, as in OpenECAD's interpreter; a program must end with an ``add_extrude`` (a cut-off answer
is an error, not a smaller model).

Meaning: millimetres in, metres out (the canonical unit). Sketch-plane references follow
codec.planes (OpenECAD's definition with true frames). Loops are ordered as OpenECAD's interpreter
orders them (codec.deepcad_order): outer loop first by bounding box, and each loop reordered in
place so a ``Line`` named by a later "line" reference has the direction OpenECAD gives it. Geometry
errors (a loop that does not close, a zero-length line, a zero-depth extrude, a degenerate plane)
are `CADError`s with the reader's reasons, also naming the line.

Speed: ``ast.parse`` alone costs ~0.2 ms per typical answer, so a strict regular-expression front
end reads the exact forms the writer prints and hands every statement to the same executor; any
statement it does not recognise, and any error, sends the whole program to the ``ast`` front end,
which is the authority (tests check that both give the same result on real and fuzzed programs).
"""

from __future__ import annotations

import ast
import math
import re
import warnings

import numpy as np

from cadvlm.cad.model import (
    Arc,
    CADError,
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
from cadvlm.codec import planes as P
from cadvlm.codec.answer import CodeParseError
from cadvlm.codec.deepcad_order import Seg, circle_center, reorder_loop, sort_loops

MAX_CHARS = 1_000_000  # the largest real DeepCAD answer is ~50 KB
MAX_LINES = 20_000
MAX_LINE_CHARS = 2_000  # also bounds literal sizes and the expression depth handed to ast
MAX_ABS = 1e6  # millimetres (1 km): beyond this a number is noise, not a part
JOIN_TOL_MM = 1e-3  # curve ends closer than this are the same point (reader's JOIN_TOL, in mm)
MIN_LENGTH_MM = 1e-4  # reader's MIN_LENGTH in mm
MM = 1000.0


def _geo_error(reason: str, message: str, line: int | None) -> CADError:
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


# ------------------------------------------------------------------ executor (shared semantics)
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


class _ExtrudeRec:
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


class _Executor:
    """Runs statements given as (target, function, values); knows nothing of syntax.

    One method per function, with the language's parameters; the ast front end binds a call's
    arguments and goes through `call`, the fast front end calls the methods directly.
    """

    def __init__(self):
        self.names: dict[str, object] = {}
        self.cur_curves: _CurveList | None = None
        self.cur_loops: _LoopList | None = None
        self.extrudes: list[_ExtrudeRec] = []
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
            raise _geo_error("zero_length_curve", "line of zero length", line)
        self._append(target, Seg("line", s=start, e=end), "add_line", line)

    def add_arc(self, target, start, end, mid, line):
        _check_vals(start + end + mid, "add_arc", line)
        cr = circle_center(start, mid, end)
        if cr is None or cr[1] > MAX_ABS or min(math.dist(start, mid), math.dist(mid, end)) < MIN_LENGTH_MM:
            raise _geo_error("degenerate_arc", "arc points are collinear or coincide", line)
        self._append(target, Seg("arc", s=start, e=end, m=mid), "add_arc", line)

    def add_circle(self, target, center, radius, line):
        _check_vals(center, "add_circle", line)
        _check_num(radius, "radius", line)
        if radius < MIN_LENGTH_MM:
            raise _geo_error("zero_length_curve", f"circle of radius {radius!r}", line)
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
        ref = self._get(extrude, _ExtrudeRec, "extrude", line)
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
            raise _geo_error("bad_plane", str(exc), line) from None
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
        rec = _ExtrudeRec()
        rec.plane, rec.profile, rec.op, rec.typ = sk.plane, sk.profile, operation, type
        rec.e1 = _check_num(extent_one, "extent_one", line)
        rec.e2 = _check_num(extent_two, "extent_two", line)
        rec.line = line
        self.extrudes.append(rec)
        self._done(target, rec, "add_extrude", line)

    def finish(self) -> list[_ExtrudeRec]:
        if self.last_func is None:
            raise CADError("no_extrude", "empty program: nothing to build")
        if self.last_func != "add_extrude":
            raise CodeParseError("the program ends without add_extrude (truncated?)", self.last_line)
        return self.extrudes


def _copy(s: Seg) -> Seg:
    c = Seg.__new__(Seg)
    c.kind, c.s, c.e, c.m, c.center, c.radius, c.name = s.kind, s.s, s.e, s.m, s.center, s.radius, s.name
    return c


def _make_plane(origin, x, n, line) -> _Plane:
    """Unit normal, x axis made perpendicular to it (Gram-Schmidt), as OpenECAD's angles imply."""
    nn = math.sqrt(P.dot3(n, n))
    if not nn > 1e-6:
        raise _geo_error("bad_plane", "normal is a zero vector", line)
    n = (n[0] / nn, n[1] / nn, n[2] / nn)
    x = P.axpy((1.0, x), (-P.dot3(x, n), n))
    xn = math.sqrt(P.dot3(x, x))
    if not xn > 1e-6:
        raise _geo_error("bad_plane", "x_axis is zero or parallel to the normal", line)
    return _Plane(tuple(origin), (x[0] / xn, x[1] / xn, x[2] / xn), n)


# ------------------------------------------------------------------ model building
def _closed_loop(segs: list[Seg], line: int) -> list[Seg]:
    """Check the loop closes in written order (snapping ends within tolerance), or chain it."""
    if len(segs) == 1:
        if segs[0].kind != "circle":
            raise _geo_error("open_loop", f"a single {segs[0].kind} cannot close a loop", line)
        return segs
    if any(s.kind == "circle" for s in segs):
        raise _geo_error("open_loop", "a circle shares its loop with other curves", line)
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
            raise _geo_error("open_loop", "the curves of this loop do not join end to start", line)
        c = rest.pop(best)
        if flip:
            c.reverse()
        c.s = end
        chain.append(c)
    last, first = chain[-1].e, chain[0].s
    if max(abs(last[0] - first[0]), abs(last[1] - first[1])) > JOIN_TOL_MM:
        raise _geo_error("open_loop", "the loop does not close", line)
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


def _build(recs: list[_ExtrudeRec], model_id) -> CADModel:
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
            raise _geo_error("zero_extent", "extrude of zero depth", rec.line)
        extrudes.append(ex)
    return CADModel(extrudes=extrudes, model_id=model_id)


# ------------------------------------------------------------------ ast front end
class _AstFront:
    """The authoritative reader: ast nodes -> (target, function, values) for the executor."""

    def run(self, text: str, ex: _Executor) -> None:
        try:
            with warnings.catch_warnings():  # e.g. "invalid decimal literal" warnings: we raise instead
                warnings.simplefilter("ignore")
                tree = ast.parse(text, mode="exec")
        except SyntaxError as exc:
            raise CodeParseError(f"syntax error: {exc.msg}", exc.lineno) from None
        except (ValueError, MemoryError, RecursionError, OverflowError) as exc:
            raise CodeParseError(f"unreadable code: {type(exc).__name__}") from None
        for stmt in tree.body:
            line = stmt.lineno
            if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                raise CodeParseError(f"not a statement of the language ({type(stmt).__name__}): "
                                     "only 'Name = add_...(...)' and 'Name = []'", line)
            target, value = stmt.targets[0].id, stmt.value
            if isinstance(value, ast.List) and not value.elts:
                ex.empty_list(target, line)
            elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in SIGNATURES:
                func = value.func.id
                ex.call(target, func, self._bind(func, value, line), line)
            else:
                raise CodeParseError(f"'{target} = ...': the value must be [] or a call of one of "
                                     f"{', '.join(SIGNATURES)}", line)

    def _bind(self, func: str, call: ast.Call, line: int) -> dict:
        sig = SIGNATURES[func]
        nodes: dict[str, ast.AST] = {}
        if len(call.args) > len(sig):
            raise CodeParseError(f"{func} takes at most {len(sig)} arguments", line)
        for (name, _, _), node in zip(sig, call.args):
            if isinstance(node, ast.Starred):
                raise CodeParseError(f"{func}: *arguments are not allowed", line)
            nodes[name] = node
        known = {p[0] for p in sig}
        for kw in call.keywords:
            if kw.arg is None:
                raise CodeParseError(f"{func}: **arguments are not allowed", line)
            if kw.arg not in known:
                raise CodeParseError(f"{func} has no argument {kw.arg!r}", line)
            if kw.arg in nodes:
                raise CodeParseError(f"{func}: argument {kw.arg!r} given twice", line)
            nodes[kw.arg] = kw.value
        out = {}
        for name, kind, default in sig:
            if name in nodes:
                out[name] = self._value(nodes[name], kind, f"{func} {name}", line)
            elif default is REQ:
                raise CodeParseError(f"{func} needs {name}=", line)
            else:
                out[name] = default
        return out

    def _value(self, node, kind: str, what: str, line: int):
        if kind in ("vec2", "vec3"):
            n = 2 if kind == "vec2" else 3
            if not isinstance(node, ast.List) or len(node.elts) != n:
                raise CodeParseError(f"{what}: expected a list of {n} numbers", line)
            return tuple(float(self._number(e, what, line, 0)) for e in node.elts)
        if kind == "num":
            return float(self._number(node, what, line, 0))
        if kind == "int":
            v = self._number(node, what, line, 0)
            if not isinstance(v, int):
                raise CodeParseError(f"{what}: expected an integer", line)
            return v
        if kind == "angle":
            budget = [24]
            return float(self._angle(node, what, line, 0, budget))
        if kind == "bool":
            if not (isinstance(node, ast.Constant) and isinstance(node.value, bool)):
                raise CodeParseError(f"{what}: expected True or False", line)
            return node.value
        if kind == "str":
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                raise CodeParseError(f"{what}: expected a string", line)
            return node.value
        if not isinstance(node, ast.Name):  # "name"
            raise CodeParseError(f"{what}: expected a name defined earlier", line)
        return node.id

    def _number(self, node, what: str, line: int, depth: int):
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            if type(node.value) is int and abs(node.value) > MAX_ABS:
                raise CodeParseError(f"{what}: number out of range", line)
            return node.value
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)) and depth < 2:
            v = self._number(node.operand, what, line, depth + 1)
            return -v if isinstance(node.op, ast.USub) else v
        raise CodeParseError(f"{what}: expected a literal number", line)

    def _angle(self, node, what: str, line: int, depth: int, budget: list):
        budget[0] -= 1
        if budget[0] < 0 or depth > 8:
            raise CodeParseError(f"{what}: angle expression too complex", line)
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            if type(node.value) is int and abs(node.value) > MAX_ABS:
                raise CodeParseError(f"{what}: number out of range", line)
            return node.value
        if isinstance(node, ast.Attribute) and node.attr == "pi" and isinstance(node.value, ast.Name) \
                and node.value.id == "np":
            return math.pi
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = self._angle(node.operand, what, line, depth + 1, budget)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            a = self._angle(node.left, what, line, depth + 1, budget)
            b = self._angle(node.right, what, line, depth + 1, budget)
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            if b == 0:
                raise CodeParseError(f"{what}: division by zero", line)
            return a / b
        raise CodeParseError(f"{what}: expected a number or an expression of numbers and np.pi", line)


# ------------------------------------------------------------------ fast front end
_NUM = r"([-+]?(?:\d+\.\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?|\d+[eE][-+]?\d+|0+|[1-9]\d*))"
_INT = r"([-+]?(?:0+|[1-9]\d*))"
_V2 = rf"\[\s*{_NUM}\s*,\s*{_NUM}\s*\]"
_V3 = rf"\[\s*{_NUM}\s*,\s*{_NUM}\s*,\s*{_NUM}\s*\]"
_ID = r"([A-Za-z_]\w*)"
_S = r"[ \t\n]*"  # only the whitespace Python itself allows inside brackets
_ANGLE = r"(?:([-+]?)(?:(0|[1-9]\d*)\*)?np\.pi(?:/([1-9]\d*))?|" + _NUM + r")"


def _stmt(func: str, body: str):
    target = "(" + TARGETS[func].pattern[:-2] + ")"  # the name pattern, without its \Z
    return re.compile(rf"{target}{_S}={_S}{func}\({_S}{body}{_S}\){_S}\Z", re.ASCII)


_FAST = {
    "add_line": _stmt("add_line", rf"start{_S}={_S}{_V2}{_S},{_S}end{_S}={_S}{_V2}"),
    "add_arc": _stmt("add_arc", rf"start{_S}={_S}{_V2}{_S},{_S}end{_S}={_S}{_V2}{_S},{_S}mid{_S}={_S}{_V2}"),
    "add_circle": _stmt("add_circle", rf"center{_S}={_S}{_V2}{_S},{_S}radius{_S}={_S}{_NUM}"),
    "add_loop": _stmt("add_loop", _ID),
    "add_profile": _stmt("add_profile", _ID),
    "add_sketchplane": _stmt("add_sketchplane",
                             rf"origin{_S}={_S}{_V3}{_S},{_S}normal{_S}={_S}{_V3}{_S},{_S}x_axis{_S}={_S}{_V3}"),
    "add_sketchplane_ref": _stmt(
        "add_sketchplane_ref",
        rf'{_ID}{_S},{_S}origin{_S}={_S}{_V2}{_S},{_S}type{_S}={_S}"(\w+)"'
        rf"(?:{_S},{_S}line{_S}={_S}{_ID})?(?:{_S},{_S}angle{_S}={_S}{_ANGLE})?"
        rf"(?:{_S},{_S}reverse{_S}={_S}(True|False))?"),
    "add_sketch": _stmt("add_sketch", rf"sketch_plane{_S}={_S}{_ID}{_S},{_S}profile{_S}={_S}{_ID}"),
    "add_extrude": _stmt("add_extrude", rf"sketch{_S}={_S}{_ID}{_S},{_S}operation{_S}={_S}{_INT}{_S},{_S}"
                                        rf"type{_S}={_S}{_INT}{_S},{_S}extent_one{_S}={_S}{_NUM}{_S},{_S}"
                                        rf"extent_two{_S}={_S}{_NUM}"),
}
_EMPTY = re.compile(rf"{_ID}{_S}={_S}\[{_S}\]{_S}\Z", re.ASCII)


class _Fallback(Exception):
    """The fast front end met something it does not read: use the ast front end."""


def _fast_angle(g) -> float:
    sign, k, d, num = g
    if num is not None:
        return float(num)
    v = math.pi
    if k is not None:
        v = int(k) * v
    if d is not None:
        v = v / int(d)
    return -v if sign == "-" else v


def _fast_call(ex: _Executor, func: str, g: tuple, line: int) -> None:
    f = float
    if func == "add_line":
        ex.add_line(g[0], (f(g[1]), f(g[2])), (f(g[3]), f(g[4])), line)
    elif func == "add_arc":
        ex.add_arc(g[0], (f(g[1]), f(g[2])), (f(g[3]), f(g[4])), (f(g[5]), f(g[6])), line)
    elif func == "add_circle":
        ex.add_circle(g[0], (f(g[1]), f(g[2])), f(g[3]), line)
    elif func == "add_loop":
        ex.add_loop(g[0], g[1], line)
    elif func == "add_profile":
        ex.add_profile(g[0], g[1], line)
    elif func == "add_sketch":
        ex.add_sketch(g[0], g[1], g[2], line)
    elif func == "add_extrude":
        ex.add_extrude(g[0], g[1], int(g[2]), int(g[3]), f(g[4]), f(g[5]), line)
    elif func == "add_sketchplane":
        ex.add_sketchplane(g[0], (f(g[1]), f(g[2]), f(g[3])), (f(g[4]), f(g[5]), f(g[6])),
                           (f(g[7]), f(g[8]), f(g[9])), line)
    else:
        angle = _fast_angle(g[6:10]) if any(x is not None for x in g[6:10]) else 0.0
        ex.add_sketchplane_ref(g[0], g[1], (f(g[2]), f(g[3])), g[4], g[5], g[10] == "True", angle, line)


def _fast_run(lines: list[str], ex: _Executor) -> None:
    i, n = 0, len(lines)
    while i < n:
        text = lines[i]
        start = i + 1
        i += 1
        if not text.strip():
            continue
        if text[0] in " \t#" or "#" in text:
            raise _Fallback
        while i < n and lines[i][:1] in (" ", "\t") and lines[i].strip():
            text += "\n" + lines[i]
            i += 1
        if "(" not in text:
            m = _EMPTY.match(text)
            if m is None:
                raise _Fallback
            ex.empty_list(m.group(1), start)
            continue
        eq = text.find("=")
        paren = text.find("(", eq)
        pattern = _FAST.get(text[eq + 1:paren].strip())
        m = pattern.match(text) if pattern is not None else None
        if m is None:
            raise _Fallback
        _fast_call(ex, text[eq + 1:paren].strip(), m.groups(), start)


# ------------------------------------------------------------------ public API
def _precheck(text) -> list[str]:
    if not isinstance(text, str):
        raise CodeParseError(f"code must be text, not {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise CodeParseError(f"code of {len(text)} characters exceeds the limit of {MAX_CHARS}")
    lines = text.split("\n")
    if len(lines) > MAX_LINES:
        raise CodeParseError(f"code of {len(lines)} lines exceeds the limit of {MAX_LINES}")
    if max(map(len, lines)) > MAX_LINE_CHARS:
        k = next(k for k, ln in enumerate(lines) if len(ln) > MAX_LINE_CHARS)
        raise CodeParseError(f"line longer than {MAX_LINE_CHARS} characters", k + 1)
    if "\x00" in text:
        raise CodeParseError("code contains a NUL character", text[: text.index("\x00")].count("\n") + 1)
    return lines


def parse_code(text: str, model_id: str | None = None, fast: bool = True) -> CADModel:
    """Read OpenECAD v2 code into a CADModel (metres). CodeParseError / CADError on bad code.

    fast=False forces the ast front end (the fast one is only an accelerator; tests compare them).
    """
    try:
        lines = _precheck(text)
        model = None
        if fast:
            try:
                ex = _Executor()
                _fast_run(lines, ex)
                model = _build(ex.finish(), model_id)
            except (_Fallback, CADError):
                model = None  # the ast front end decides, and words any error
        if model is None:
            ex = _Executor()
            _AstFront().run(text, ex)
            model = _build(ex.finish(), model_id)
        return model
    except CADError as exc:
        raise exc.with_id(model_id) if model_id else exc
