"""A generated answer back to a solid, and a solid to the picture the model reads.

Evaluate, predict and serve all take the same path from untrusted text to geometry: pick the code
out of the answer, parse it (never executed) in the model's language, build the OpenCascade solid.
Every failure on the way is one reason from `INVALID_REASONS`, named the same everywhere. The
picture of a rebuilt solid is the render stage's 2x2 sheet, so a prediction is shown as its
ground truth is.
"""

from __future__ import annotations

import numpy as np

from cadvlm.cad.model import CADError, CADModel
from cadvlm.codec.format import CodeFormat

# Why a sample has no valid result, in the order reports list them.
INVALID_REASONS = ("no_code", "parse_error", "build_error", "invalid_solid", "empty_solid", "timeout", "crash")


def classify(exc: CADError) -> str:
    """Map a CADError from parsing, building or preparing a prediction to one of INVALID_REASONS."""
    if exc.reason in ("no_code", "parse_error"):
        return exc.reason
    if exc.reason in ("empty_solid", "no_extrude"):
        return "empty_solid"
    if exc.reason == "invalid_solid":
        return "invalid_solid"
    return "build_error"  # geometry found bad while parsing (open loop...) or while building


class Rebuilt:
    """What became of one answer: the parsed model and the solid, or the reason there is none."""

    __slots__ = ("model", "shape", "reason", "detail")

    def __init__(self, model: CADModel | None = None, shape=None, reason: str = "", detail: str = ""):
        self.model, self.shape, self.reason, self.detail = model, shape, reason, detail

    @property
    def ok(self) -> bool:
        return self.shape is not None


def rebuild(answer, code: CodeFormat, model_id: str | None = "prediction") -> Rebuilt:
    """Answer -> code -> CADModel -> solid. Never raises for bad input: the reason is in the result."""
    from cadvlm.geometry.solid import build_solid

    try:
        model = code.parse(code.code_of(answer), model_id)
    except CADError as exc:
        return Rebuilt(reason=classify(exc), detail=exc.detail)
    try:
        return Rebuilt(model, build_solid(model))
    except CADError as exc:
        return Rebuilt(model, reason=classify(exc), detail=exc.detail)
    except Exception as exc:  # OCC's Standard_Failure and friends on degenerate input
        return Rebuilt(model, reason="build_error", detail=f"{type(exc).__name__}: {exc}")


def grid_picture(shape, size: int) -> np.ndarray:
    """The four views of a solid in the render stage's 2x2 sheet (one scale for all), uint8."""
    from cadvlm.geometry.mesh import tessellate
    from cadvlm.render.sheet import compose_grid
    from cadvlm.render.views import VIEW_NAMES, render_views

    verts, tris = tessellate(shape)
    return compose_grid(render_views(verts, tris, size=size, views=VIEW_NAMES, nthreads=1))
