"""Exact B-rep solids of CADModels with OpenCascade (OCP bindings).

Per extrude: edges straight from the sketch curves mapped to 3-D, one wire per loop (outer loop
counter-clockwise about the plane normal, holes clockwise, so the face is right without a
ShapeFix pass), a planar face with holes, one prism over the extrude's whole depth range (a
Symmetric or TwoSides extrude is one prism, not two fused), then the boolean with the body so far.
"""

from __future__ import annotations

import numpy as np
from OCP.BRepAlgoAPI import BRepAlgoAPI_Common, BRepAlgoAPI_Cut, BRepAlgoAPI_Fuse
from OCP.BRepBuilderAPI import (
    BRepBuilderAPI_MakeEdge,
    BRepBuilderAPI_MakeFace,
    BRepBuilderAPI_MakeWire,
    BRepBuilderAPI_Transform,
)
from OCP.BRepCheck import BRepCheck_Analyzer
from OCP.BRepGProp import BRepGProp
from OCP.BRepPrimAPI import BRepPrimAPI_MakePrism
from OCP.GC import GC_MakeArcOfCircle, GC_MakeSegment
from OCP.gp import gp_Ax2, gp_Ax3, gp_Circ, gp_Dir, gp_Pln, gp_Pnt, gp_Trsf, gp_Vec
from OCP.GProp import GProp_GProps
from OCP.ShapeUpgrade import ShapeUpgrade_UnifySameDomain
from OCP.TopAbs import TopAbs_FACE, TopAbs_SOLID
from OCP.TopExp import TopExp_Explorer
from OCP.TopoDS import TopoDS_Shape

from cadvlm.cad.model import CADError, CADModel, Circle, Extrude, Line, Loop, Operation, Plane


def _pnt(p) -> gp_Pnt:
    return gp_Pnt(float(p[0]), float(p[1]), float(p[2]))


def _dir(v) -> gp_Dir:
    return gp_Dir(float(v[0]), float(v[1]), float(v[2]))


def signed_area(loop: Loop) -> float:
    """Shoelace area of the loop's polyline: > 0 when it runs counter-clockwise."""
    if len(loop.curves) == 1 and isinstance(loop.curves[0], Circle):
        return float(np.pi * loop.curves[0].radius ** 2)
    pts = loop.points()
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _edges(curve, plane: Plane, reverse: bool):
    if isinstance(curve, Circle):
        # A clockwise circle is the same circle about the reversed normal.
        normal = -plane.normal if reverse else plane.normal
        ax = gp_Ax2(_pnt(plane.to_global(curve.center)), _dir(normal), _dir(plane.x_axis))
        return BRepBuilderAPI_MakeEdge(gp_Circ(ax, curve.radius)).Edge()
    c = curve.reversed() if reverse else curve
    if isinstance(c, Line):
        seg = GC_MakeSegment(_pnt(plane.to_global(c.start)), _pnt(plane.to_global(c.end)))
        return BRepBuilderAPI_MakeEdge(seg.Value()).Edge()
    arc = GC_MakeArcOfCircle(*(_pnt(plane.to_global(p)) for p in (c.start, c.mid, c.end)))
    if not arc.IsDone():
        raise CADError("build_failed", "an arc's three points do not define a circle")
    return BRepBuilderAPI_MakeEdge(arc.Value()).Edge()


def _wire(loop: Loop, plane: Plane, ccw: bool):
    """A closed wire for the loop, oriented counter-clockwise about the normal when ccw."""
    reverse = (signed_area(loop) > 0) != ccw
    curves = list(reversed(loop.curves)) if reverse else loop.curves
    mk = BRepBuilderAPI_MakeWire()
    for c in curves:
        mk.Add(_edges(c, plane, reverse))
        if not mk.IsDone():
            raise CADError("build_failed", "loop edges do not connect into a wire")
    wire = mk.Wire()
    if not wire.Closed():
        raise CADError("open_loop", "the wire of a loop is not closed")
    return wire


def extrude_face(ex: Extrude):
    """The planar face of an extrude's profile (outer boundary with holes)."""
    plane = ex.plane
    ax3 = gp_Ax3(_pnt(plane.origin), _dir(plane.normal), _dir(plane.x_axis))
    mk = BRepBuilderAPI_MakeFace(gp_Pln(ax3), _wire(ex.profile.loops[0], plane, ccw=True), True)
    for hole in ex.profile.loops[1:]:
        mk.Add(_wire(hole, plane, ccw=False))
    if not mk.IsDone():
        raise CADError("build_failed", "could not make the profile face")
    return mk.Face()


def extrude_solid(ex: Extrude) -> TopoDS_Shape:
    """The prism of one extrude over its whole depth range."""
    face = extrude_face(ex)
    lo, hi = ex.depth_range()
    n = np.asarray(ex.plane.normal, dtype=np.float64)
    if lo != 0.0:
        t = gp_Trsf()
        t.SetTranslation(gp_Vec(*(n * lo)))
        face = BRepBuilderAPI_Transform(face, t, True).Shape()
    prism = BRepPrimAPI_MakePrism(face, gp_Vec(*(n * (hi - lo))), True)
    if not prism.IsDone():
        raise CADError("build_failed", "prism failed")
    return prism.Shape()


def _boolean(kind, a, b):
    op = kind(a, b)
    if not op.IsDone():
        raise CADError("boolean_failed", f"{kind.__name__.split('_')[-1]} failed")
    return op.Shape()


def build_solid(model: CADModel, unify: bool = True) -> TopoDS_Shape:
    """Apply the model's extrudes in order to an empty shape; CADError when the result is not valid.

    unify merges coplanar faces left by booleans (cleaner renders and smaller STEP files).
    """
    try:
        body = None
        for ex in model.extrudes:
            tool = extrude_solid(ex)
            if ex.operation in (Operation.NEW_BODY, Operation.JOIN):
                body = tool if body is None else _boolean(BRepAlgoAPI_Fuse, body, tool)
            elif body is None:
                continue  # cutting or intersecting nothing leaves nothing
            elif ex.operation == Operation.CUT:
                body = _boolean(BRepAlgoAPI_Cut, body, tool)
            else:
                body = _boolean(BRepAlgoAPI_Common, body, tool)
        if body is None:
            raise CADError("empty_solid", "no extrude adds material")
        if unify:
            u = ShapeUpgrade_UnifySameDomain(body, True, True, False)
            u.Build()
            body = u.Shape()
        check_valid(body)
        return body
    except CADError as exc:
        raise exc.with_id(model.model_id) if model.model_id else exc
    except Exception as exc:  # OCC raises Standard_Failure subclasses on degenerate input
        raise CADError("build_failed", f"{type(exc).__name__}: {exc}", model.model_id) from None


def count(shape, kind) -> int:
    exp, n = TopExp_Explorer(shape, kind), 0
    while exp.More():
        n += 1
        exp.Next()
    return n


def volume(shape) -> float:
    props = GProp_GProps()
    BRepGProp.VolumeProperties_s(shape, props)
    return props.Mass()


def check_valid(shape) -> None:
    """A valid result: at least one solid, more than two faces, positive volume, passes BRepCheck."""
    if shape is None or shape.IsNull() or count(shape, TopAbs_SOLID) == 0:
        raise CADError("empty_solid", "the result has no solid")
    if count(shape, TopAbs_FACE) <= 2:
        raise CADError("empty_solid", "the result has two faces or fewer")
    if volume(shape) <= 0:
        raise CADError("empty_solid", "the result has no volume")
    if not BRepCheck_Analyzer(shape).IsValid():
        raise CADError("invalid_solid", "OpenCascade's shape check fails")


def is_valid(shape) -> bool:
    try:
        check_valid(shape)
        return True
    except CADError:
        return False


def transformed(shape, center=(0.0, 0.0, 0.0), scale: float = 1.0):
    """A copy of the shape moved by -center, then scaled by `scale` about the origin (gp_Trsf).
    Normalising for the metrics, and unit changes on export (metres <-> millimetres)."""
    move = gp_Trsf()
    move.SetTranslation(gp_Vec(*(-np.asarray(center, dtype=np.float64))))
    trsf = gp_Trsf()
    trsf.SetScale(gp_Pnt(0.0, 0.0, 0.0), float(scale))
    trsf.Multiply(move)  # scale o move: applied right to left
    return BRepBuilderAPI_Transform(shape, trsf, True).Shape()


def bounding_box(shape) -> tuple[np.ndarray, np.ndarray]:
    """Tight axis-aligned box (min, max) of the exact geometry."""
    from OCP.Bnd import Bnd_Box
    from OCP.BRepBndLib import BRepBndLib

    box = Bnd_Box()
    BRepBndLib.AddOptimal_s(shape, box, False, False)
    lo, hi = box.CornerMin(), box.CornerMax()
    return np.array([lo.X(), lo.Y(), lo.Z()]), np.array([hi.X(), hi.Y(), hi.Z()])
