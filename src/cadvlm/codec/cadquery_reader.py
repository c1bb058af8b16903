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

Here: statements, expressions and the script's result; the Workplane methods are in
codec.cadquery_workplane, the Sketch ones in codec.cadquery_sketch, argument checks in
codec.cadquery_args and the sketch geometry in codec.cadquery_shapes.
"""

from __future__ import annotations

import ast

from cadvlm.cad.model import CADError, CADModel
from cadvlm.codec.answer import CodeParseError
from cadvlm.codec.cadquery_args import _Args, _check_name, _coerce, _num
from cadvlm.codec.cadquery_sketch import SK, SketchOps
from cadvlm.codec.cadquery_workplane import NAMED_PLANES, WP, WorkplaneOps, _plane, boolean
from cadvlm.codec.openecad_build import build_model
from cadvlm.codec.openecad_exec import MAX_ABS, _Plane
from cadvlm.codec.openecad_ast import parse_python
from cadvlm.codec.openecad_parser import check_code_size

MAX_LINE_CHARS = 50_000  # CAD-Recode and cadrille write a whole sketch on one line
MAX_CHAIN = 4000  # method calls in one expression
MAX_CURVES = 20000
MAX_DEPTH = 64  # nesting of expressions other than method chains
ROOT_NAMES = ("Workplane", "Sketch", "Plane", "Vector")
BINOPS = {ast.Add: "union", ast.BitOr: "union", ast.Sub: "cut", ast.BitAnd: "intersect"}


class _Module:
    """The cadquery module (or one of its classes imported by name)."""

    def __init__(self, member: str | None = None):
        self.member = member


class Reader(WorkplaneOps, SketchOps):
    """Interprets a script's statements; `model()` is the result's CADModel."""

    def __init__(self):
        self.names: dict[str, object] = {}
        self.shown: object = None
        self.last_solid: object = None
        self.n_curves = 0

    # -- statements
    def run(self, text: str) -> None:
        for stmt in parse_python(text).body:
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


def parse_cadquery(code: str, model_id: str | None = None) -> CADModel:
    """CadQuery script -> CADModel (metres), read from its AST and never executed.
    CodeParseError for code outside the understood subset, CADError for geometry that cannot be."""
    try:
        check_code_size(code, MAX_LINE_CHARS)
        reader = Reader()
        reader.run(code)
        return build_model(list(reader.result().body), model_id)
    except CADError as exc:
        raise exc.with_id(model_id) if model_id else exc
