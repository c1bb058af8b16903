"""Canonical model -> CadQuery Python, in the style CAD-Recode and cadrille train on.

Why this language: the strongest image-to-CAD systems (CAD-Recode, and cadrille, which starts
from it) answer in CadQuery, so writing our data the way their training scripts read lets a
checkpoint of theirs be fine-tuned on it, and their answers be scored by our evaluator. The
script is never run by cadvlm: `cadquery_reader` reads it from its syntax tree. Only the tests
build it with real CadQuery (scripts/cadquery_build.py, in its own virtual environment), to prove
that it makes the solid `geometry.solid.build_solid` makes.

What is taken from CAD-Recode's scripts:
- `import cadquery as cq`, then the workplanes `w0=...`, `w1=...` (one per distinct plane, in
  order of first use), then the body `r=...`: the first extrude that adds material, and one
  `r=r.union(...)`, `r=r.cut(...)` or `r=r.intersect(...)` per later extrude. No spaces.
- an axis-aligned sketch plane is one of the named planes 'XY', 'YZ', 'ZX' with only its offset
  along the normal as origin, e.g. `cq.Workplane('ZX',origin=(0,93,0))`; the sketch
  coordinates are then global coordinates, and a plane whose normal points the other way is
  the same named plane with the extrude's depth negated (and the extent sides swapped);
- a profile is one sketch: `wN.sketch()`, its outer loop as edges
  (`.segment((x,y),(x,y)).arc((x,y),(x,y)).segment((x,y)).close().assemble()`: each curve
  after the first starts where the last ended, `close()` writes a closing line, a loop that
  closes with an arc ends on its start point), or a circle `.push([(x,y)]).circle(r)`; each hole
  the same with `mode='s'`: `.push([(x,y)]).circle(r,mode='s')`, or
  `.reset().face(wN.sketch()...assemble(),mode='s')`; then `.finalize().extrude(d)`.
  Arcs are three-point (`Sketch.arc(start, mid, end)`, or `arc(mid, end)` after an edge).

Where it departs, and why:
- lengths are millimetres (the model's metres x 1000, as the OpenECAD writer writes them) with
  up to 4 decimals, trailing zeros stripped (`12.7`, `3`, `0.3969`), not CAD-Recode's integers
  on a [-100, 100] grid: a DeepCAD part keeps its real size and the code its exact dimensions;
  what is rounded (half to even) is positions: sketch points are global coordinates on a named
  plane, and a depth is the difference of its two faces' rounded positions, so faces that meet
  in the model meet in the script (a depth can then read 7.9376 where the model says 7.9375);
- a plane that is not axis-aligned (rare in DeepCAD) is written in full,
  `cq.Workplane(cq.Plane(cq.Vector(origin),cq.Vector(x_dir),cq.Vector(normal)))`, with its
  directions to DIRECTION_DECIMALS; CAD-Recode's own data has only the three named planes;
- DeepCAD's extents: a symmetric extrude is `.extrude(d,both=True)`; a two-sided one spanning
  (lo, hi) across its plane is sketched on `wN.workplane(offset=lo)` and extruded by hi - lo
  (when both sides point the same way, the longer one alone, as `Extrude.depth_range` says);
- circles are always placed with `push`, also at (0, 0), and polygon holes always follow a
  `reset()`: one way to write each thing, whatever came before it in the sketch;
- an extrude that cuts or intersects before any material exists is left out: `build_solid`
  skips it too (nothing to cut), and CadQuery has no body to call `cut` on.

`stated_model` returns the model exactly as its script states it (numbers rounded as printed,
planes as CadQuery reads them): the tests compare real CadQuery's solid with the project's build
of that model, so the 4-decimal rounding is not counted as a disagreement. Models that cannot be
written raise `CADError` with a short reason (counted by batch stages).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from cadvlm.cad.deepcad_json import JOIN_TOL
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
    circle_through,
)

MM = 1000.0
DECIMALS = 4  # lengths, in millimetres
DIRECTION_DECIMALS = 6  # components of a general plane's unit vectors (see `_frame`)
# CadQuery's named planes that CAD-Recode writes: name -> (x direction, normal); y = normal x x.
NAMED_PLANES = {"XY": ((1, 0, 0), (0, 0, 1)), "YZ": ((0, 1, 0), (1, 0, 0)), "ZX": ((0, 0, 1), (0, 1, 0))}
# A unit-vector component this close to 0 or +-1 is that value (DeepCAD stores cos 90deg as 6e-17).
AXIS_TOL = 1e-9
_SCALE = {DECIMALS: 10.0**DECIMALS, DIRECTION_DECIMALS: 10.0**DIRECTION_DECIMALS}
# Body-building calls of the script by operation (the first extrude that adds material is `r=`).
COMBINE = {Operation.NEW_BODY: "union", Operation.JOIN: "union", Operation.CUT: "cut",
           Operation.INTERSECT: "intersect"}


@dataclass(frozen=True)
class _Frame:
    """Where an extrude is written: the workplane and how model sketch points map into it."""

    name: str | None  # a NAMED_PLANES key, or None for a full cq.Plane
    origin: tuple  # millimetres, rounded as printed
    x_dir: tuple  # as printed (general planes) or the named plane's
    normal: tuple
    matrix: np.ndarray  # 2x2: model (u, v) -> written (u, v), before the offset
    offset: np.ndarray  # millimetres, added after the matrix
    sign: float  # +1 when the written normal is the model's, -1 when opposite
    level: float  # named planes: the plane's global coordinate along its normal (mm, unrounded); else 0


@dataclass
class _Written:
    """One extrude as the script states it, in millimetres."""

    frame: _Frame
    loops: list  # list[Loop] of rounded, exactly chained curves (outer first)
    combine: str | None  # None for the first body, else a COMBINE value
    offset: float  # workplane offset along the normal (two-sided extents), 0 when none
    depth: float  # extrude distance (negative: against the normal)
    both: bool  # symmetric extrude


# --------------------------------------------------------------------------- numbers


def _r(v: float, decimals: int = DECIMALS) -> float:
    """Round half to even, as printed, with -0 made 0.

    The value is first rounded to four more decimals (1e-8 mm): a length like 3.96875 mm (1/32
    inch steps are common) arrives as 3.9687499999999996 after metres x 1000, or from a sum of
    two positions, and must not fall on either side of the half-way point by that float noise.
    (numpy's rounding, which the OpenECAD writer reproduces for OpenECAD's sake, does not.)
    """
    v = float(v)
    if not math.isfinite(v):
        raise CADError("bad_number", f"a value is {v}")
    scale = _SCALE[decimals]
    return round(round(v * scale, 4)) / scale + 0.0


def number_text(v: float) -> str:
    """A rounded value, short: `3` for 3.0, `12.7`, `-0.3969`; never an exponent."""
    v = float(v)
    if v == int(v):
        return str(int(v))
    s = repr(v)
    return s if "e" not in s else f"{v:.{DIRECTION_DECIMALS}f}".rstrip("0").rstrip(".")


def _tuple_text(values) -> str:
    return "(" + ",".join(number_text(v) for v in values) + ")"


# --------------------------------------------------------------------------- planes


def _snap_axis(v) -> np.ndarray | None:
    """The vector with components snapped to -1/0/1 when it is axis-aligned, else None."""
    v = np.asarray(v, dtype=np.float64)
    snapped = np.round(v)
    if np.abs(v - snapped).max() > AXIS_TOL or np.abs(snapped).sum() != 1:
        return None
    return snapped + 0.0


def _frame(plane: Plane) -> _Frame:
    """The workplane of a model plane: a named plane when it is axis-aligned, else a cq.Plane."""
    n, x = np.asarray(plane.normal, float), np.asarray(plane.x_axis, float)
    if not (np.all(np.isfinite(n)) and np.all(np.isfinite(x)) and np.all(np.isfinite(plane.origin))):
        raise CADError("bad_frame", "a sketch plane has a non-finite number")
    origin = np.asarray(plane.origin, float) * MM
    ns, xs = _snap_axis(n), _snap_axis(x)
    if ns is not None and xs is not None and abs(float(ns @ xs)) == 0:
        ys = np.cross(ns, xs)
        for name, (nx, nn) in NAMED_PLANES.items():
            nx, nn = np.asarray(nx, float), np.asarray(nn, float)
            sign = float(ns @ nn)
            if sign == 0:
                continue
            ny = np.cross(nn, nx)
            matrix = np.array([[xs @ nx, ys @ nx], [xs @ ny, ys @ ny]])
            written_origin = tuple(_r(c) for c in nn * float(origin @ nn))
            return _Frame(name, written_origin, tuple(nx), tuple(nn), matrix,
                          np.array([origin @ nx, origin @ ny]), sign, float(origin @ nn))
    # A general plane keeps its frame. Its directions are printed to DIRECTION_DECIMALS, not 4:
    # 4 decimals turn a plane by up to ~7e-5 rad, which moves a 100 mm part's far edge 7 um off
    # the face it was sketched on, and a sketch that cuts an earlier face at such a grazing angle
    # is what OpenCascade's booleans do not survive (see the OpenECAD writer's EXACT_TOLS).
    nlen, xlen = float(np.linalg.norm(n)), float(np.linalg.norm(x))
    if nlen < 0.5 or xlen < 0.5 or abs(float(n @ x)) > 1e-6 * nlen * xlen:
        raise CADError("bad_frame", "a sketch plane's x axis and normal are not an orthonormal pair")
    return _Frame(None, tuple(_r(c) for c in origin), tuple(_r(c, DIRECTION_DECIMALS) for c in x),
                  tuple(_r(c, DIRECTION_DECIMALS) for c in n), np.eye(2), np.zeros(2), 1.0, 0.0)


def _plane_of(frame: _Frame) -> Plane:
    """The frame as CadQuery builds it (metres): unit normal, x axis made perpendicular to it."""
    n = np.asarray(frame.normal, float)
    n = n / np.linalg.norm(n)
    x = np.asarray(frame.x_dir, float)
    x = x - (x @ n) * n
    return Plane(np.asarray(frame.origin, float) / MM, x / np.linalg.norm(x), n)


def _workplane_text(frame: _Frame) -> str:
    if frame.name is not None:
        return f"cq.Workplane('{frame.name}',origin={_tuple_text(frame.origin)})"
    o, x, n = (_tuple_text(v) for v in (frame.origin, frame.x_dir, frame.normal))
    return f"cq.Workplane(cq.Plane(cq.Vector{o},cq.Vector{x},cq.Vector{n}))"


# --------------------------------------------------------------------------- loops


def _point(frame: _Frame, p) -> np.ndarray:
    """A model sketch point (metres) in the written frame, millimetres, unrounded."""
    return frame.matrix @ (np.asarray(p, float) * MM) + frame.offset


def _rounded(p: np.ndarray) -> np.ndarray:
    return np.array([_r(p[0]), _r(p[1])])


def _written_loop(loop: Loop, frame: _Frame) -> Loop:
    """The loop in the written frame, rounded, each curve starting exactly where the last ended."""
    curves = loop.curves
    if not curves:
        raise CADError("open_loop", "a loop has no curves")
    if isinstance(curves[0], Circle):
        if len(curves) != 1:
            raise CADError("open_loop", "a circle shares its loop with other curves")
        r = _r(curves[0].radius * MM)
        if r <= 0:
            raise CADError("tiny_curve", f"a circle's radius rounds to {r} mm")
        return Loop([Circle(_rounded(_point(frame, curves[0].center)), r)])
    gap = JOIN_TOL * MM
    first = _rounded(_point(frame, curves[0].start))
    out, at, end = [], first, _point(frame, curves[0].start)
    for k, c in enumerate(curves):
        if isinstance(c, Circle):
            raise CADError("open_loop", "a circle shares its loop with other curves")
        if not isinstance(c, (Line, Arc)):
            raise CADError("unsupported_curve", f"cannot write a {type(c).__name__}")
        if np.abs(_point(frame, c.start) - end).max() > gap:
            raise CADError("open_loop", f"curve {k} does not start where curve {k - 1} ends")
        end = _point(frame, c.end)
        stop = first if k == len(curves) - 1 else _rounded(end)
        if isinstance(c, Line):
            if np.array_equal(at, stop):
                raise CADError("tiny_curve", f"line {k} is shorter than the printed precision")
            out.append(Line(at, stop))
        else:
            mid = _rounded(_point(frame, c.mid))
            if np.array_equal(at, mid) or np.array_equal(mid, stop) or np.array_equal(at, stop):
                raise CADError("tiny_curve", f"arc {k} is shorter than the printed precision")
            circle_through(at, mid, stop)  # degenerate_arc when the rounded points are collinear
            out.append(Arc(at, mid, stop))
        at = stop
    if np.abs(end - _point(frame, curves[0].start)).max() > gap:
        raise CADError("open_loop", "the last curve does not end where the first starts")
    return Loop(out)


def _loop_text(loop: Loop, w: str, hole: bool) -> str:
    """One loop as sketch calls (outer: add; hole: subtract)."""
    mode = ",mode='s'" if hole else ""
    c0 = loop.curves[0]
    if isinstance(c0, Circle):
        return f".push([{_tuple_text(c0.center)}]).circle({number_text(c0.radius)}{mode})"
    parts = []
    last = len(loop.curves) - 1
    for k, c in enumerate(loop.curves):
        if k == last and isinstance(c, Line):
            parts.append(".close()")
        elif isinstance(c, Line):
            parts.append(f".segment({_tuple_text(c.start) + ',' if k == 0 else ''}{_tuple_text(c.end)})")
        else:
            head = _tuple_text(c.start) + "," if k == 0 else ""
            parts.append(f".arc({head}{_tuple_text(c.mid)},{_tuple_text(c.end)})")
    edges = "".join(parts) + ".assemble()"
    return f".reset().face({w}.sketch(){edges}{mode})" if hole else edges


# --------------------------------------------------------------------------- extrudes


def _extent(ex: Extrude, frame: _Frame) -> tuple[float, float, bool]:
    """(workplane offset, extrude distance, both) in millimetres along the written normal.

    On a named plane the faces' global positions are what is rounded (the distance is the
    difference of two rounded positions), so faces that meet in the model meet in the script: a
    cut from a plane at -3.96875 through 7.9375 ends at 3.96875, the far face of a plate
    symmetric about 0, and rounding the three numbers on their own (-3.9688, 7.9375) would stop
    it 0.1 um short, leaving a skin the project's kernel (in metres) and CadQuery (in mm) treat
    differently.
    """
    lo, hi = (v * MM for v in ex.depth_range())
    if frame.sign < 0:
        lo, hi = -hi, -lo
    if ex.extent_type == ExtentType.SYMMETRIC:
        depth = _r(hi)
        if depth <= 0:
            raise CADError("zero_extent", "a symmetric extrude has no depth")
        return 0.0, depth, True
    level = frame.level
    at = _r(level)
    lo, hi = _r(_r(level + lo) - at), _r(_r(level + hi) - at)
    if lo == 0 and hi == 0:
        raise CADError("zero_extent", "an extrude has no depth")
    if lo == 0 or hi == 0:
        return 0.0, (hi if lo == 0 else lo), False
    return lo, _r(hi - lo), False


def _written_extrudes(extrudes: list[Extrude]) -> list[_Written]:
    out: list[_Written] = []
    for ex in extrudes:
        if not out and ex.operation in (Operation.CUT, Operation.INTERSECT):
            continue  # nothing to cut yet: build_solid skips it, and so does the script
        frame = _frame(ex.plane)
        if not ex.profile.loops:
            raise CADError("open_loop", "a profile has no loops")
        loops = [_written_loop(lp, frame) for lp in ex.profile.loops]
        offset, depth, both = _extent(ex, frame)
        out.append(_Written(frame, loops, COMBINE[Operation(ex.operation)] if out else None, offset, depth, both))
    if not out:
        raise CADError("empty_solid", "no extrude adds material")
    return out


def _written(model: CADModel) -> list[_Written]:
    """The model's extrudes as the script states them (leading cuts / intersects dropped);
    CADError naming the model when one cannot be written."""
    try:
        return _written_extrudes(model.extrudes)
    except CADError as exc:
        raise (exc.with_id(model.model_id) if model.model_id else exc) from None


def write_cadquery(model: CADModel) -> str:
    """The model's CadQuery script (CADError with a reason when it cannot be written)."""
    written = _written(model)
    planes: dict[str, str] = {}  # workplane text -> its variable
    for w in written:
        planes.setdefault(_workplane_text(w.frame), f"w{len(planes)}")
    lines = ["import cadquery as cq"]
    lines += [f"{name}={text}" for text, name in planes.items()]
    for w in written:
        var = planes[_workplane_text(w.frame)]
        start = var + (f".workplane(offset={number_text(w.offset)})" if w.offset else "")
        sketch = "".join(_loop_text(lp, var, hole=k > 0) for k, lp in enumerate(w.loops))
        extrude = f".extrude({number_text(w.depth)}{',both=True' if w.both else ''})"
        solid = f"{start}.sketch(){sketch}.finalize(){extrude}"
        lines.append(f"r={solid}" if w.combine is None else f"r=r.{w.combine}({solid})")
    return "\n".join(lines) + "\n"


def _curve_in_metres(c):
    if isinstance(c, Circle):
        return Circle(c.center / MM, c.radius / MM)
    if isinstance(c, Line):
        return Line(c.start / MM, c.end / MM)
    return Arc(c.start / MM, c.mid / MM, c.end / MM)


def stated_model(model: CADModel) -> CADModel:
    """The model exactly as `write_cadquery`'s script states it (metres, canonical model).

    Rounded numbers, named planes with global sketch coordinates, depths along the written
    normal; a two-sided extrude on an offset workplane reads as TWO_SIDES (extent_one = offset +
    distance, extent_two = -offset), a symmetric one as SYMMETRIC, the rest as ONE_SIDE.
    """
    written = _written(model)
    extrudes = []
    for w in written:
        profile = Profile([Loop([_curve_in_metres(c) for c in lp.curves]) for lp in w.loops])
        if w.both:
            kind, e1, e2 = ExtentType.SYMMETRIC, w.depth, 0.0
        elif w.offset:
            kind, e1, e2 = ExtentType.TWO_SIDES, w.offset + w.depth, -w.offset
        else:
            kind, e1, e2 = ExtentType.ONE_SIDE, w.depth, 0.0
        op = {None: Operation.NEW_BODY, "union": Operation.JOIN, "cut": Operation.CUT,
              "intersect": Operation.INTERSECT}[w.combine]
        extrudes.append(Extrude(_plane_of(w.frame), profile, op, kind, e1 / MM, e2 / MM))
    return CADModel(extrudes, model_id=model.model_id)
