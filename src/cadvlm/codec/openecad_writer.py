"""Canonical model -> OpenECAD v2 code, the text OpenECAD's own converter writes.

Why reproduce it exactly: OpenECAD checkpoints were trained on this text, so matching it lets a
checkpoint be fine-tuned without unlearning its format, and lets our evaluator read what such a
checkpoint writes. ../shared/deepcad/openecad_v2 holds the converter's output for 25 real models;
tests/test_codec_writer.py compares against every one.

What the converter does (restated from its behaviour, see DESIGN.md "CAD code"):
- millimetres (model metres x 1000), every number rounded to 4 decimals and printed like
  ``np.array2string(..., separator=', ')`` (codec.numfmt);
- loops in DeepCAD's canonical order (codec.deepcad_order), lines named ``Line{i}_{j}_{k}`` by
  that order;
- each sketch plane defined, when possible, relative to the first earlier extrude that allows it:
  a parallel plane is "sameplane" (the origin lies in the referenced plane), else "extent_one" /
  "extent_two" (the origin lies on the normal through the referenced origin at that extent's
  distance; see below for the sign), and a perpendicular plane is "line" when it contains one of that extrude's lines and
  its normal is the line direction crossed with the referenced normal (``reverse`` flips the
  normal, ``angle`` turns the x axis). Otherwise ``add_sketchplane`` with absolute axes.

The one deliberate difference, `compat=False` (the default): OpenECAD's frames pass through a
spherical round trip that mirrors planes whose normal has a negative x component (and flips the
in-plane v axis when the y axis does). The writer keeps OpenECAD's frame (and so its exact text)
wherever that round trip only adds float noise, and the true frame where it would move geometry,
so code always rebuilds the model's solid. `compat=True` reproduces the mirror as well.

Two more departures in the default mode, both where OpenECAD's converter writes code that does not
rebuild the model, and neither met in the 25 reference files: references are found with
tolerances that survive float noise (EXACT_TOLS instead of 1e-10), and "extent_one" / "extent_two"
are chosen when the origin is where the interpreter puts them (origin + e1 N, origin - e2 N),
whereas the converter tests the distance |e1| on the positive side, which for a negative extent
names the wrong face and misses the right one.
"""

from __future__ import annotations

import numpy as np

from cadvlm.cad.model import Arc, CADModel, Circle, ExtentType, Line
from cadvlm.codec import planes as P
from cadvlm.codec.deepcad_order import Seg, reorder_loop, sort_loops
from cadvlm.codec.numfmt import round_array, round_scalar

MM = 1000.0
# The spherical round trip changes a frame by at most ~1e-6 (6-decimal rounding) unless it
# mirrors it; above this the writer treats the round trip as a geometry change (compat=False).
FRAME_TOL = 1e-4
# Reference tolerances (direction: unit-vector components / radians; position: millimetres).
# OpenECAD's converter uses 1e-10 for both, which float noise in the files defeats (a JSON rounded
# to 1e-10 m, a line direction from rounded end points): the plane is then written absolutely
# with a 4-decimal normal, ~3e-5 rad off, and a sketch meant to lie on an earlier face cuts it at
# a grazing angle, which OpenCascade's booleans do not survive. compat=True keeps 1e-10.
EXACT_TOLS = (1e-6, 1e-5)
COMPAT_TOLS = (P.TOL, P.TOL)


class _Ext:
    """One extrude in OpenECAD's millimetre world: frame used for decisions, ordered loops."""

    __slots__ = ("origin", "n", "x", "y", "loops", "e1", "e2", "op", "typ")


def _segs(loop) -> list[Seg]:
    out = []
    for c in loop.curves:
        if isinstance(c, Line):
            out.append(Seg("line", s=_mm2(c.start), e=_mm2(c.end)))
        elif isinstance(c, Arc):
            out.append(Seg("arc", s=_mm2(c.start), e=_mm2(c.end), m=_mm2(c.mid)))
        elif isinstance(c, Circle):
            out.append(Seg("circle", center=_mm2(c.center), radius=float(c.radius) * MM))
        else:
            raise TypeError(f"unsupported curve {type(c).__name__}")
    return out


def _mm2(p) -> tuple[float, float]:
    return float(p[0]) * MM, float(p[1]) * MM


def _prepare(extrude, compat: bool) -> _Ext:
    ex = _Ext()
    pl = extrude.plane
    ex.origin = pl.origin * MM
    n, x = pl.normal, pl.x_axis
    y = P.cross(n, x)
    n2, x2, y2 = P.openecad_frame(n, x, y)
    if compat or max(np.abs(n2 - n).max(), np.abs(x2 - x).max(), np.abs(y2 - y).max()) < FRAME_TOL:
        ex.n, ex.x, ex.y = n2, x2, y2
    else:
        ex.n, ex.x, ex.y = np.array(n, dtype=float), np.array(x, dtype=float), y
    loops = [reorder_loop(_segs(lp)) for lp in extrude.profile.loops]
    ex.loops = [loops[k] for k in sort_loops(loops)]
    ex.e1 = float(extrude.extent_one) * MM
    ex.e2 = float(extrude.extent_two) * MM if extrude.extent_type == ExtentType.TWO_SIDES else 0.0
    ex.op, ex.typ = int(extrude.operation), int(extrude.extent_type)
    return ex


def _absolute(i: int, ex: _Ext) -> str:
    return (f"SketchPlane{i} = add_sketchplane(\n\torigin= {round_array(ex.origin)}, "
            f"normal= {round_array(ex.n)}, x_axis= {round_array(ex.x)})\n")


def _ref_text(i, k, origin2, kind, angle, reverse, tol, line_name=None) -> str:
    if line_name is None:  # the converter spaces "key = value" here and "key= value" for lines
        s = f'SketchPlane{i} = add_sketchplane_ref(\n\tExtrude{k}, origin = {round_array(origin2)}, type = "{kind}"'
        if abs(angle) > tol:
            s += f", angle = {P.angle_text(angle, tol)}"
        if reverse:
            s += ", reverse = True"
        return s + ")\n"
    s = (f'SketchPlane{i} = add_sketchplane_ref(\n\tExtrude{k}, origin= {round_array(origin2)}, '
         f'type= "line", line= {line_name}')
    if abs(angle) > tol:
        s += f", angle= {P.angle_text(angle, tol)}"
    if reverse:
        s += ", reverse= True"
    return s + ")\n"


def _plane_text(exts: list[_Ext], i: int, compat: bool) -> str:
    """The SketchPlane statement of extrude i: the first usable reference, else absolute."""
    dtol, ptol = COMPAT_TOLS if compat else EXACT_TOLS
    t = exts[i]
    for k in range(i):
        r = exts[k]
        if P.are_parallel(t.n, r.n, dtol):
            reverse = not np.dot(t.n, r.n) > 0
            d = t.origin - r.origin
            if P.on_plane(r.origin, r.x, r.y, t.origin, ptol):
                kind, base = "sameplane", r.origin
            elif compat and P.are_parallel(d, r.n, ptol) and np.dot(d, r.n) > 0 and \
                    abs(P.plane_distance(r.origin, r.x, r.y, t.origin) - abs(r.e1)) < ptol:
                kind, base = "extent_one", r.origin + r.n * r.e1  # (wrong place when e1 < 0: OpenECAD's rule)
            elif compat and P.are_parallel(d, r.n, ptol) and np.dot(d, r.n) < 0 and \
                    abs(P.plane_distance(r.origin, r.x, r.y, t.origin) - abs(r.e2)) < ptol:
                kind, base = "extent_two", r.origin - r.n * r.e2
            elif not compat and P.are_parallel(d, r.n, ptol) and abs(np.dot(d, r.n) - r.e1) < ptol:
                kind, base = "extent_one", r.origin + r.n * r.e1  # the face the extrude ends on, either sign
            elif not compat and P.are_parallel(d, r.n, ptol) and abs(np.dot(d, r.n) + r.e2) < ptol:
                kind, base = "extent_two", r.origin - r.n * r.e2
            else:
                continue
            origin2 = P.to_2d(base, r.x, r.y, t.origin)
            angle = P.rotation_angle(r.x, t.x, r.n)
            return _ref_text(i, k, origin2, kind, angle, reverse, dtol)
        if np.dot(t.n, r.n) < dtol:
            for j, loop in enumerate(r.loops):
                for c, seg in enumerate(loop):
                    if seg.kind != "line":
                        continue
                    s3 = r.origin + seg.s[0] * r.x + seg.s[1] * r.y
                    e3 = r.origin + seg.e[0] * r.x + seg.e[1] * r.y
                    lx = P.unit(e3 - s3)
                    ln = P.third_axis(lx, r.n)
                    reverse = not np.dot(t.n, ln) > 0
                    if P.are_parallel(t.n, ln, dtol) and P.on_plane(s3, lx, r.n, t.origin, ptol):
                        origin2 = P.to_2d(s3, lx, r.n, t.origin)
                        angle = P.rotation_angle(lx, t.x, ln)
                        return _ref_text(i, k, origin2, "line", angle, reverse, dtol, f"Line{k}_{j}_{c}")
    return _absolute(i, t)


def _curve_text(i: int, j: int, k: int, c: Seg) -> str:
    if c.kind == "line":
        return f"Line{i}_{j}_{k} = add_line(start= {round_array(c.s)}, end= {round_array(c.e)})\n"
    if c.kind == "arc":
        return (f"Arc{i}_{j}_{k} = add_arc(start= {round_array(c.s)}, end= {round_array(c.e)}, "
                f"mid= {round_array(c.m)})\n")
    return f"Circle{i}_{j}_{k} = add_circle(center= {round_array(c.center)}, radius= {round_scalar(c.radius)})\n"


def write_code(model: CADModel, compat: bool = False) -> str:
    """OpenECAD v2 code of a model ('' when it has no extrude, as the converter writes)."""
    exts = [_prepare(e, compat) for e in model.extrudes]
    out: list[str] = []
    for i, ex in enumerate(exts):
        out.append(_plane_text(exts, i, compat))
        out.append(f"Loops{i} = []\n")
        for j, loop in enumerate(ex.loops):
            out.append(f"Curves{i}_{j} = []\n")
            out.extend(_curve_text(i, j, k, c) for k, c in enumerate(loop))
            out.append(f"Loop{i}_{j} = add_loop(Curves{i}_{j})\n")
        out.append(f"Profile{i} = add_profile(Loops{i})\n")
        out.append(f"Sketch{i} = add_sketch(sketch_plane= SketchPlane{i}, profile= Profile{i})\n")
        out.append(f"Extrude{i} = add_extrude(sketch= Sketch{i},\n"
                   f"\toperation= {ex.op}, type= {ex.typ}, extent_one= {round_scalar(ex.e1)}, "
                   f"extent_two= {round_scalar(ex.e2)})\n")
    return "".join(out)
