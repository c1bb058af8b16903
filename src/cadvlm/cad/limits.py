"""DeepCAD's learning limits, its normalisation and its 8-bit quantisation.

DeepCAD trains on sequences of at most 60 commands (each curve, one start-of-loop per loop, one
extrude per extrude, one end token), at most 10 extrudes, 6 loops per profile and 14 curves per
loop; extraction uses the same limits so our subsets are comparable with published work.
Normalisation scales a model so its bounding box fits the [-0.75, 0.75] cube around the origin
(DeepCAD's NORM_FACTOR), and quantisation snaps every length to one of 2**bits levels over [-1, 1]:
the compact code format and duplicate filters use it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cadvlm.cad.model import Arc, CADError, CADModel, Circle, Line, Loop, Plane, Profile

NORM_FACTOR = 0.75


@dataclass(frozen=True)
class Limits:
    max_extrudes: int = 10
    max_loops: int = 6
    max_curves: int = 14
    max_commands: int = 60


def n_commands(model: CADModel) -> int:
    """DeepCAD sequence length: curves + one per loop + one per extrude + the end token."""
    loops = sum(len(e.profile.loops) for e in model.extrudes)
    return model.n_curves() + loops + len(model.extrudes) + 1


def check_limits(model: CADModel, limits: Limits = Limits()) -> None:
    """CADError(reason='over_limits') naming the first limit the model exceeds."""
    problems = []
    if len(model.extrudes) > limits.max_extrudes:
        problems.append(f"{len(model.extrudes)} extrudes > {limits.max_extrudes}")
    loops = max(len(e.profile.loops) for e in model.extrudes)
    if loops > limits.max_loops:
        problems.append(f"{loops} loops in a profile > {limits.max_loops}")
    curves = max(len(lp.curves) for e in model.extrudes for lp in e.profile.loops)
    if curves > limits.max_curves:
        problems.append(f"{curves} curves in a loop > {limits.max_curves}")
    n = n_commands(model)
    if n > limits.max_commands:
        problems.append(f"{n} commands > {limits.max_commands}")
    if problems:
        raise CADError("over_limits", "; ".join(problems), model.model_id)


def _model_extent(model: CADModel) -> float:
    """Largest |coordinate| reached by the model's profiles and extrude depths (no solid needed)."""
    m = 0.0
    for ex in model.extrudes:
        pts = ex.plane.to_global(np.concatenate([lp.points() for lp in ex.profile.loops]))
        lo, hi = ex.depth_range()
        for d in (lo, hi):
            m = max(m, float(np.abs(pts + d * ex.plane.normal).max()))
    return m


def _map_model(model: CADModel, f) -> CADModel:
    """Apply f to every length of the model (points, origins, radii, extents)."""

    def curve(c):
        if isinstance(c, Line):
            return Line(f(c.start), f(c.end))
        if isinstance(c, Arc):
            return Arc(f(c.start), f(c.mid), f(c.end))
        return Circle(f(c.center), float(f(np.array([c.radius]))[0]))

    out = []
    for ex in model.extrudes:
        plane = Plane(f(ex.plane.origin), ex.plane.x_axis, ex.plane.normal)
        profile = Profile([Loop([curve(c) for c in lp.curves]) for lp in ex.profile.loops])
        e1, e2 = (float(f(np.array([v]))[0]) for v in (ex.extent_one, ex.extent_two))
        out.append(replace(ex, plane=plane, profile=profile, extent_one=e1, extent_two=e2))
    return CADModel(out, model.model_id)


def normalize(model: CADModel, size: float = 1.0) -> CADModel:
    """Scale about the origin so the model reaches at most NORM_FACTOR * size on every axis."""
    extent = _model_extent(model)
    if extent <= 0:
        raise CADError("empty_solid", "the model has no extent", model.model_id)
    scale = NORM_FACTOR * size / extent
    return _map_model(model, lambda v: np.asarray(v, dtype=np.float64) * scale)


def quantize(model: CADModel, bits: int = 8) -> CADModel:
    """Snap every length of a normalised model to 2**bits levels over [-1, 1] (DeepCAD: 8 bits)."""
    levels = 2 ** bits - 1

    def q(v):
        v = np.clip(np.asarray(v, dtype=np.float64), -1.0, 1.0)
        return np.round((v + 1.0) / 2.0 * levels) / levels * 2.0 - 1.0

    return _map_model(model, q)
