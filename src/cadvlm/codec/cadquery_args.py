"""Arguments of CadQuery calls, bound and checked as data: the reader's only way to see a value.

A call's positional and keyword arguments are bound to the parameter names of the method's
signature (unknown, repeated, `*` and `**` arguments refused) and each value is checked for its
kind (a finite number within range, a point, a list of points, a flag, a short string). Names that
start with `_` (dunder attributes are how sandboxes are escaped) are refused everywhere.
"""

from __future__ import annotations

import ast
import math

from cadvlm.codec.answer import CodeParseError
from cadvlm.codec.openecad_exec import MAX_ABS


class _Args:
    """A call's arguments bound to parameter names: (name, kind[, default]) per parameter."""

    def __init__(self, reader, what: str, call: ast.Call, params: tuple, line: int):
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


def _centered(v, n: int, line: int) -> tuple:
    if isinstance(v, bool):
        return (v,) * n
    if isinstance(v, tuple) and len(v) == n and all(isinstance(c, bool) for c in v):
        return v
    raise CodeParseError(f"centered must be True/False or a tuple of {n} of them", line)


def _check_name(name: str, line: int) -> None:
    if name.startswith("_") or "__" in name:
        raise CodeParseError(f"name {name!r}: names starting with '_' are not allowed", line)
