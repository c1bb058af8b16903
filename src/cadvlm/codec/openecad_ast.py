"""The authoritative front end of the OpenECAD v2 parser: Python's ``ast``, read as data.

Why a module of its own: this is the reader that decides what a program means and how an error
is worded; it accepts every spelling the language allows (positional or keyword arguments, any
layout, comments, ``np.pi`` expressions for angles) and refuses everything else with a
`CodeParseError` naming the line. Nothing is ever evaluated: nodes are checked one by one and
their literal values handed to the executor (codec.openecad_exec). The fast front end
(codec.openecad_fast) falls back to this one.
"""

from __future__ import annotations

import ast
import math
import warnings

from cadvlm.codec.answer import CodeParseError
from cadvlm.codec.openecad_exec import MAX_ABS, REQ, SIGNATURES, Executor


def parse_python(text: str) -> ast.Module:
    """Python's syntax tree of the text, never run; a syntax error, or code too deep or too large
    for the parser, is a CodeParseError (the CadQuery reader reads its scripts through this too)."""
    try:
        with warnings.catch_warnings():  # e.g. "invalid decimal literal" warnings: we raise instead
            warnings.simplefilter("ignore")
            return ast.parse(text, mode="exec")
    except SyntaxError as exc:
        raise CodeParseError(f"syntax error: {exc.msg}", exc.lineno) from None
    except (ValueError, MemoryError, RecursionError, OverflowError) as exc:
        raise CodeParseError(f"unreadable code: {type(exc).__name__}") from None


class AstFront:
    """The authoritative reader: ast nodes -> (target, function, values) for the executor."""

    def run(self, text: str, ex: Executor) -> None:
        for stmt in parse_python(text).body:
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
