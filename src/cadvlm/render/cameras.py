"""What a view is: the cameras, the settings that decide the pixels, and the shared framing.

Why a module of its own: these are the renderer's vocabulary, used by the stage, the pipeline
and the command line (view names, settings in params.yaml and manifests) without any ray
casting; render.views re-exports them.

Cameras (global frame, Z up): front looks along +Y (X right, Z up), top looks down -Z (X right,
Y up), right looks along -X (Y right, Z up), iso looks along (-1, +1, -1) (Z up in the picture).
All views of a model share one centre (the bounding-box centre) and one scale (the largest
extent any requested view needs, plus the margin), so proportions hold across views and the
views of a third-angle sheet line up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cadvlm.render.raymesh import PreparedMesh

VIEW_NAMES = ("front", "top", "right", "iso")


@dataclass(frozen=True)
class Camera:
    """An orthographic camera: it looks along `direction`; `right` and `up` span the picture."""

    name: str
    direction: tuple[float, float, float]
    right: tuple[float, float, float]
    up: tuple[float, float, float]

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.array(self.direction, dtype=np.float64), np.array(self.right, dtype=np.float64),
                np.array(self.up, dtype=np.float64))

    def to_json(self) -> dict:
        return {"direction": list(self.direction), "right": list(self.right), "up": list(self.up)}


def _unit(*v: float) -> tuple[float, float, float]:
    n = math.sqrt(sum(x * x for x in v))
    return tuple(x / n for x in v)


CAMERAS: dict[str, Camera] = {
    "front": Camera("front", (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "top": Camera("top", (0.0, 0.0, -1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "right": Camera("right", (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    # From (+1, -1, +1) towards the origin; right = direction x Z, up = right x direction.
    "iso": Camera("iso", _unit(-1, 1, -1), _unit(1, 1, 0), _unit(-1, 1, 2)),
}


@dataclass(frozen=True)
class RenderSettings:
    """Everything that changes the pixels of a view (and nothing that does not)."""

    size: int = 512               # pixels per view side
    supersample: int = 2          # k: k x k rays per pixel near outlines (1 = off)
    line_width: float = 1.0       # outline width in output pixels
    margin: float = 0.08          # white border: the fitted extent is enlarged by this fraction
    crease_angle: float = 30.0    # degrees: faces meeting at more are a sharp (outlined) edge

    def __post_init__(self):
        if not (16 <= int(self.size) <= 8192):
            raise ValueError(f"render size must be 16..8192 pixels, got {self.size}")
        if not (1 <= int(self.supersample) <= 8):
            raise ValueError(f"supersample must be 1..8, got {self.supersample}")
        if not (0.0 < float(self.line_width) <= 16.0):
            raise ValueError(f"line_width must be in (0, 16], got {self.line_width}")
        if not (0.0 <= float(self.margin) < 1.0):
            raise ValueError(f"margin must be in [0, 1), got {self.margin}")
        if not (1.0 <= float(self.crease_angle) < 90.0):
            raise ValueError(f"crease_angle must be in [1, 90) degrees, got {self.crease_angle}")

    def to_json(self) -> dict:
        return {"size": int(self.size), "supersample": int(self.supersample),
                "line_width": float(self.line_width), "margin": float(self.margin),
                "crease_angle": float(self.crease_angle)}


@dataclass(frozen=True)
class Framing:
    """Where the views look and how much they show: shared by all views of one model."""

    center: np.ndarray    # world point at the centre of every view
    half_width: float     # world length from the picture's centre to its side

    def to_json(self) -> dict:
        return {"center": [float(x) for x in self.center], "half_width": float(self.half_width)}


def fit_framing(mesh: PreparedMesh, views, margin: float) -> Framing:
    """One centre and scale for all views: the largest half-extent any view needs, plus margin."""
    half = 0.0
    for name in views:
        _, r, u = CAMERAS[name].axes()
        half = max(half, float(np.abs(mesh.vertices @ r).max()), float(np.abs(mesh.vertices @ u).max()))
    return Framing(center=mesh.center.copy(), half_width=half * (1.0 + margin))
