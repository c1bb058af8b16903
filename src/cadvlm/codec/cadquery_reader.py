"""Read CadQuery Python as data: the AST of a sketch-and-extrude script -> a CADModel, never run.

Why: the leading image-to-CAD systems (CAD-Recode, cadrille, CADEvolve) write CadQuery, and score
it by executing the script. cadvlm never executes model output, so this module reads the script's
syntax tree and interprets the small part of CadQuery's API that sketch-and-extrude parts use,
with the meaning CadQuery gives it (restated from CadQuery's documented behaviour; the tests build
the same scripts with the real package and compare the solids). Anything else is refused with a
`CodeParseError` that names the line and why: any import but cadquery, calls and attributes off
the allow-list, loops, conditionals, definitions, lambdas, comprehensions, dunder names, numbers
out of range, chains or programs past the size limits.

What is understood, in both of the styles people and models write:

- planes: ``cq.Workplane('XY', origin=(x, y, z))`` with CadQuery's twelve named planes, and
  ``cq.Workplane(cq.Plane(origin, xDir, normal))`` (``cq.Vector`` or tuples);
  ``.workplane(offset=, invert=, origin=)`` on a workplane without a solid, ``.center(x, y)``;
- workplane wires: ``moveTo``, ``lineTo``, ``line``, ``hLine``/``vLine``, ``hLineTo``/``vLineTo``,
  ``polyline``, ``threePointArc``, ``close``; ``circle`` and ``rect`` at the stacked points
  (``pushPoints``, ``moveTo``); nested wires become holes as CadQuery sorts them;
- sketches (``.sketch()`` ... ``.finalize()``, or ``cq.Sketch()`` placed with ``placeSketch``):
  ``segment``, ``arc`` (three points, two points, or centre/radius/angles), ``close``,
  ``assemble``, ``circle``, ``rect``, ``push``, ``reset``, with ``mode='a'`` (add), ``'s'``
  (subtract: a hole of the one region that holds it) and ``'c'`` (construction, no effect);
- solids: ``extrude(d, combine=, both=)``, ``cutBlind``, ``box``, ``cylinder``, and the booleans
  ``union``/``cut``/``intersect`` (or ``+ | - &``) between results.

The result is the variable passed to ``show_object``, else ``result``, else ``r``, else the last
variable assigned a solid. Lengths are read as millimetres (CadQuery's unit) and returned in
metres like every CADModel; the build (codec.openecad_build) closes loops, orders them and checks
extents exactly as for OpenECAD code.

A boolean whose tool is not a plain union of extrudes (``a.cut(b.cut(c))``), an intersection with
several regions, and a subtracted shape that crosses a region's edge have no sketch-and-extrude
sequence of the same solid: they are refused, saying so.
"""

from __future__ import annotations

import ast
import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from cadvlm.cad.model import Arc, CADError, CADModel, Circle, Line
from cadvlm.codec.answer import CodeParseError
from cadvlm.codec.deepcad_order import Seg, circle_center
from cadvlm.codec.openecad_build import build_model
from cadvlm.codec.openecad_exec import (
    JOIN_TOL_MM,
    MAX_ABS,
    MIN_LENGTH_MM,
    ExtrudeRec,
    _Loop,
    _make_plane,
    _Plane,
    _Profile,
)
from cadvlm.codec.openecad_parser import MAX_CHARS, MAX_LINES

MAX_LINE_CHARS = 50_000  # CAD-Recode and cadrille write a whole sketch on one line
MAX_CHAIN = 4000  # method calls in one expression
MAX_EXTRUDES = 256
MAX_CURVES = 20000
MAX_DEPTH = 64  # nesting of expressions other than method chains
ROOT_NAMES = ("Workplane", "Sketch", "Plane", "Vector")
NAMED_PLANES = {  # CadQuery's Plane.named: (xDir, normal)
    "XY": ((1, 0, 0), (0, 0, 1)), "YZ": ((0, 1, 0), (1, 0, 0)), "ZX": ((0, 0, 1), (0, 1, 0)),
    "XZ": ((1, 0, 0), (0, -1, 0)), "YX": ((0, 1, 0), (0, 0, -1)), "ZY": ((0, 0, 1), (-1, 0, 0)),
    "front": ((1, 0, 0), (0, 0, 1)), "back": ((-1, 0, 0), (0, 0, -1)), "left": ((0, 0, 1), (-1, 0, 0)),
    "right": ((0, 0, -1), (1, 0, 0)), "top": ((1, 0, 0), (0, 1, 0)), "bottom": ((1, 0, 0), (0, -1, 0)),
}
OPS = {"union": 1, "cut": 2, "intersect": 3}
BINOPS = {ast.Add: "union", ast.BitOr: "union", ast.Sub: "cut", ast.BitAnd: "intersect"}


class _Module:
    """The cadquery module (or one of its classes imported by name)."""

    def __init__(self, member: str | None = None):
        self.member = member


@dataclass(frozen=True)
class Region:
    """A face of a sketch: an outer loop and its holes (Segs in millimetres, plane coordinates)."""

    outer: tuple
    holes: tuple = ()


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


@dataclass
class SK:
    """A CadQuery Sketch: its edges (never cleared, as in CadQuery), faces and selection."""

    parent: WP | None
    locs: tuple = ((0.0, 0.0),)
    edges: list = field(default_factory=list)
    regions: list = field(default_factory=list)
    selection: tuple | None = None

    def copy(self) -> "SK":
        return SK(self.parent, self.locs, list(self.edges), list(self.regions), self.selection)


# ------------------------------------------------------------------ geometry helpers
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


# ------------------------------------------------------------------ the interpreter
class _Args:
    """A call's arguments bound to parameter names: (name, kind[, default]) per parameter."""

    def __init__(self, reader: "Reader", what: str, call: ast.Call, params: tuple, line: int):
        if len(call.args) > len(params):
            raise CodeParseError(f"{what} takes at most {len(params)} arguments here", line)
        self.values: dict = {}
        for p, node in zip(params, call.args):
            if isinstance(node, ast.Starred):
                raise CodeParseError(f"{what}: *arguments are not allowed", line)
            self.values[p[0]] = reader.value(node, line)
        known = {p[0] for p in params}
        for kw in call.keywords:
            if kw.arg is None:
                raise CodeParseError(f"{what}: **arguments are not allowed", line)
            if kw.arg not in known or kw.arg in self.values:
                raise CodeParseError(f"{what}: unexpected or repeated argument {kw.arg!r}", line)
            self.values[kw.arg] = reader.value(kw.value, line)
        for p in params:
            if p[0] not in self.values:
                if len(p) < 3:
                    raise CodeParseError(f"{what}: missing argument {p[0]!r}", line)
                self.values[p[0]] = p[2]
        for p in params:
            self.values[p[0]] = _coerce(self.values[p[0]], p[1], f"{what}: {p[0]}", line)

    def __getitem__(self, key):
        return self.values[key]


def _num(v, what: str, line: int) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise CodeParseError(f"{what} must be a number", line)
    v = float(v)
    if not math.isfinite(v) or abs(v) > MAX_ABS:
        raise CodeParseError(f"{what}: number out of range ({v!r})", line)
    return v


def _coerce(v, kind: str, what: str, line: int):
    """Check one argument's type: num, bool, str, p2 (2-D point), p3, any, points (list of p2)."""
    if kind == "any" or v is None:
        return v
    if kind == "num":
        return _num(v, what, line)
    if kind == "bool":
        if not isinstance(v, bool):
            raise CodeParseError(f"{what} must be True or False", line)
        return v
    if kind == "str":
        if not isinstance(v, str):
            raise CodeParseError(f"{what} must be a string", line)
        return v
    if kind in ("p2", "p3"):
        n = 2 if kind == "p2" else 3
        if not isinstance(v, tuple) or not (len(v) == n or (n == 3 and len(v) == 2)):
            raise CodeParseError(f"{what} must be a point of {n} numbers", line)
        pt = tuple(_num(c, what, line) for c in v)
        return pt + (0.0,) * (n - len(pt))
    if kind == "points":
        if not isinstance(v, (list, tuple)) or not v or len(v) > 10000:
            raise CodeParseError(f"{what} must be a non-empty list of points", line)
        return tuple(_coerce(p, "p2", what, line) for p in v)
    raise AssertionError(kind)


class Reader:
    """Interprets a script's statements; `model()` is the result's CADModel."""

    def __init__(self):
        self.names: dict[str, object] = {}
        self.shown: object = None
        self.last_solid: object = None
        self.n_curves = 0

    # -- statements
    def run(self, text: str) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(text, mode="exec")
        except SyntaxError as exc:
            raise CodeParseError(f"syntax error: {exc.msg}", exc.lineno) from None
        except (ValueError, MemoryError, RecursionError, OverflowError) as exc:
            raise CodeParseError(f"unreadable code: {type(exc).__name__}") from None
        for stmt in tree.body:
            self.statement(stmt)

    def statement(self, stmt: ast.stmt) -> None:
        line = stmt.lineno
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                if a.name != "cadquery":
                    raise CodeParseError(f"import of {a.name!r}: only cadquery may be imported", line)
                self.bind(a.asname or "cadquery", _Module(), line)
        elif isinstance(stmt, ast.ImportFrom):
            if stmt.module != "cadquery" or stmt.level:
                raise CodeParseError(f"import from {stmt.module!r}: only cadquery may be imported", line)
            for a in stmt.names:
                if a.name not in ROOT_NAMES:
                    raise CodeParseError(f"from cadquery import {a.name}: only {', '.join(ROOT_NAMES)}", line)
                self.bind(a.asname or a.name, _Module(a.name), line)
        elif isinstance(stmt, ast.Assign):
            if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                raise CodeParseError("only 'name = expression' assignments are allowed", line)
            value = self.value(stmt.value, line)
            self.bind(stmt.targets[0].id, value, line)
            if isinstance(value, WP) and value.body:
                self.last_solid = value
        elif isinstance(stmt, ast.Expr):
            v = stmt.value
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                return  # a docstring
            if (isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "show_object"
                    and v.args and not v.keywords and len(v.args) <= 2):
                self.shown = self.value(v.args[0], line)
                return
            raise CodeParseError("an expression statement other than show_object(result)", line)
        elif isinstance(stmt, ast.Pass):
            return
        else:
            raise CodeParseError(f"{type(stmt).__name__} statements are not allowed (sketch-and-extrude scripts "
                                 "are straight-line assignments)", line)

    def bind(self, name: str, value, line: int) -> None:
        _check_name(name, line)
        self.names[name] = value

    # -- expressions
    def value(self, node: ast.AST, line: int, depth: int = 0):
        if depth > MAX_DEPTH:
            raise CodeParseError("expression nested too deeply", line)
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool) or v is None or isinstance(v, str):
                if isinstance(v, str) and len(v) > 64:
                    raise CodeParseError("string too long", line)
                return v
            if isinstance(v, int):
                if abs(v) > MAX_ABS:
                    raise CodeParseError("number out of range", line)
                return float(v)
            if isinstance(v, float):
                return _num(v, "number", line)
            raise CodeParseError(f"a {type(v).__name__} literal is not allowed", line)
        if isinstance(node, (ast.Tuple, ast.List)):
            if len(node.elts) > 10000:
                raise CodeParseError("list too long", line)
            return tuple(self.value(e, line, depth + 1) for e in node.elts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = _num(self.value(node.operand, line, depth + 1), "operand", line)
            return -v if isinstance(node.op, ast.USub) else v
        if isinstance(node, ast.BinOp):
            a, b = self.value(node.left, line, depth + 1), self.value(node.right, line, depth + 1)
            if isinstance(a, WP) and isinstance(b, WP) and type(node.op) in BINOPS:
                return boolean(a, BINOPS[type(node.op)], b, line)
            a, b = _num(a, "operand", line), _num(b, "operand", line)
            if isinstance(node.op, ast.Add):
                return _num(a + b, "sum", line)
            if isinstance(node.op, ast.Sub):
                return _num(a - b, "difference", line)
            if isinstance(node.op, ast.Mult):
                return _num(a * b, "product", line)
            if isinstance(node.op, ast.Div):
                if b == 0:
                    raise CodeParseError("division by zero", line)
                return _num(a / b, "quotient", line)
            raise CodeParseError(f"operator {type(node.op).__name__} is not allowed", line)
        if isinstance(node, ast.Name):
            _check_name(node.id, line)
            if node.id not in self.names:
                raise CodeParseError(f"name {node.id!r} is not defined", line)
            return self.names[node.id]
        if isinstance(node, (ast.Call, ast.Attribute)):
            return self.chain(node, line)
        raise CodeParseError(f"{type(node).__name__} expressions are not allowed", line)

    def chain(self, node: ast.AST, line: int):
        """A chain a.b(...).c(...): unwound iteratively (a long chain is no deeper than a short one)."""
        links = []
        while isinstance(node, (ast.Call, ast.Attribute)):
            if len(links) > 2 * MAX_CHAIN:
                raise CodeParseError(f"a chain of more than {MAX_CHAIN} calls", line)
            links.append(node)
            node = node.func if isinstance(node, ast.Call) else node.value
        links.reverse()
        cur = self.value(node, line)
        k = 0
        while k < len(links):
            link = links[k]
            if isinstance(link, ast.Call):
                raise CodeParseError("only methods and cadquery constructors may be called", line)
            _check_name(link.attr, line)
            call = links[k + 1] if k + 1 < len(links) and isinstance(links[k + 1], ast.Call) else None
            cur = self.member(cur, link.attr, call, line)
            k += 2 if call is not None else 1
        return cur

    def member(self, obj, name: str, call: ast.Call | None, line: int):
        if isinstance(obj, _Module) and obj.member is None:
            if name not in ROOT_NAMES:
                raise CodeParseError(f"cadquery.{name} is not allowed (only {', '.join(ROOT_NAMES)})", line)
            obj = _Module(name)
            if call is None:
                return obj
            return self.construct(name, call, line)
        if call is None:
            raise CodeParseError(f"attribute {name!r} is not allowed (only method calls)", line)
        if isinstance(obj, WP):
            return self.wp_method(obj, name, call, line)
        if isinstance(obj, SK):
            return self.sk_method(obj, name, call, line)
        raise CodeParseError(f"no method {name!r} on a {type(obj).__name__}", line)

    def construct(self, cls: str, call: ast.Call, line: int):
        if cls == "Vector":
            a = _Args(self, "Vector", call, (("x", "num", 0.0), ("y", "num", 0.0), ("z", "num", 0.0)), line)
            if len(call.args) == 1 and isinstance(a.values.get("x"), tuple):
                return _coerce(a["x"], "p3", "Vector", line)
            return (a["x"], a["y"], a["z"])
        if cls == "Plane":
            a = _Args(self, "Plane", call, (("origin", "p3"), ("xDir", "p3", None), ("normal", "p3", (0.0, 0.0, 1.0))),
                      line)
            return _plane(a["origin"], a["xDir"] or (1.0, 0.0, 0.0), a["normal"], line)
        if cls == "Workplane":
            a = _Args(self, "Workplane", call, (("inPlane", "any", "XY"), ("origin", "p3", (0.0, 0.0, 0.0))), line)
            plane = a["inPlane"]
            if isinstance(plane, str):
                if plane not in NAMED_PLANES:
                    raise CodeParseError(f"unknown plane {plane!r} (one of {', '.join(NAMED_PLANES)})", line)
                x, n = NAMED_PLANES[plane]
                plane = _plane(a["origin"], x, n, line)
            elif not isinstance(plane, _Plane):
                raise CodeParseError("Workplane(inPlane): a plane name or a cq.Plane", line)
            elif any(a["origin"]):
                plane = _Plane(a["origin"], plane.x, plane.n)
            return WP(plane)
        if cls == "Sketch":
            _Args(self, "Sketch", call, (), line)
            return SK(None)
        raise CodeParseError(f"cadquery.{cls}(...) is not allowed", line)

    # -- Workplane
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

    def count(self, n: int, line: int) -> None:
        self.n_curves += n
        if self.n_curves > MAX_CURVES:
            raise CodeParseError(f"more than {MAX_CURVES} curves", line)

    # -- result
    def result(self) -> WP:
        for cand in (self.shown, self.names.get("result"), self.names.get("r"), self.last_solid):
            if isinstance(cand, WP) and cand.body:
                return cand
        raise CADError("no_extrude", "the script makes no solid (nothing extruded)")


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


def _placed(regions, locs) -> list[Region]:
    return [_shift_region(r, loc) if loc != (0.0, 0.0) else r for loc in locs for r in regions]


def _ydir(p: _Plane) -> np.ndarray:
    return np.cross(np.array(p.n), np.array(p.x))


def _plane(origin, x, n, line: int) -> _Plane:
    try:
        return _make_plane(tuple(float(v) for v in origin), tuple(float(v) for v in x), tuple(float(v) for v in n), line)
    except CADError as exc:
        raise CodeParseError(f"bad plane: {exc.detail}", line) from None


def _centered(v, n: int, line: int) -> tuple:
    if isinstance(v, bool):
        return (v,) * n
    if isinstance(v, tuple) and len(v) == n and all(isinstance(c, bool) for c in v):
        return v
    raise CodeParseError(f"centered must be True/False or a tuple of {n} of them", line)


def _check_name(name: str, line: int) -> None:
    if name.startswith("_") or "__" in name:
        raise CodeParseError(f"name {name!r}: names starting with '_' are not allowed", line)


def _precheck(text) -> None:
    """Sizes checked before the text reaches Python's parser."""
    if not isinstance(text, str):
        raise CodeParseError(f"code must be text, not {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise CodeParseError(f"code of {len(text)} characters exceeds the limit of {MAX_CHARS}")
    lines = text.split("\n")
    if len(lines) > MAX_LINES:
        raise CodeParseError(f"code of {len(lines)} lines exceeds the limit of {MAX_LINES}")
    if max(map(len, lines)) > MAX_LINE_CHARS:
        raise CodeParseError(f"line longer than {MAX_LINE_CHARS} characters",
                             next(k for k, ln in enumerate(lines) if len(ln) > MAX_LINE_CHARS) + 1)
    if "\x00" in text:
        raise CodeParseError("code contains a NUL character", text[: text.index("\x00")].count("\n") + 1)


def parse_cadquery(code: str, model_id: str | None = None) -> CADModel:
    """CadQuery script -> CADModel (metres), read from its AST and never executed.
    CodeParseError for code outside the understood subset, CADError for geometry that cannot be."""
    try:
        _precheck(code)
        reader = Reader()
        reader.run(code)
        return build_model(list(reader.result().body), model_id)
    except CADError as exc:
        raise exc.with_id(model_id) if model_id else exc
