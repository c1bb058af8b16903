"""The fast front end of the OpenECAD v2 parser: strict regular expressions, one per statement.

Why a module of its own: ``ast.parse`` alone costs ~0.2 ms per typical answer, and almost every
answer is in the exact forms codec.openecad_writer prints (keyword arguments in the writer's
order, one statement per line, no comments). Those are matched here and handed to the same
executor (codec.openecad_exec); any statement this module does not recognise raises `Fallback`,
and the parser then reads the whole program with the ast front end (codec.openecad_ast), which
is the authority. It must never accept what that one refuses (tests compare the two on real
and fuzzed programs).
"""

from __future__ import annotations

import math
import re

from cadvlm.codec.openecad_exec import TARGETS, Executor

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


class Fallback(Exception):
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


def _fast_call(ex: Executor, func: str, g: tuple, line: int) -> None:
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


def run_fast(lines: list[str], ex: Executor) -> None:
    i, n = 0, len(lines)
    while i < n:
        text = lines[i]
        start = i + 1
        i += 1
        if not text.strip():
            continue
        if text[0] in " \t#" or "#" in text:
            raise Fallback
        while i < n and lines[i][:1] in (" ", "\t") and lines[i].strip():
            text += "\n" + lines[i]
            i += 1
        if "(" not in text:
            m = _EMPTY.match(text)
            if m is None:
                raise Fallback
            ex.empty_list(m.group(1), start)
            continue
        eq = text.find("=")
        paren = text.find("(", eq)
        pattern = _FAST.get(text[eq + 1:paren].strip())
        m = pattern.match(text) if pattern is not None else None
        if m is None:
            raise Fallback
        _fast_call(ex, text[eq + 1:paren].strip(), m.groups(), start)
