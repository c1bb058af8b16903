"""One model, JSON to pictures: read, build the solid, tessellate, render, lay out.

Shared by `cadvlm render` and the render stage's workers so both make the same bytes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from cadvlm.render.views import VIEW_NAMES, RenderSettings

LAYOUTS = ("grid", "separate")
# Bump when a code change alters the pixels: the render stage re-renders everything then
# (params and geometry are hashed separately).
RENDER_VERSION = 1


@dataclass(frozen=True)
class RenderJob:
    """Everything that decides a model's pictures (and nothing that does not, e.g. workers)."""

    settings: RenderSettings = field(default_factory=RenderSettings)
    views: tuple = VIEW_NAMES
    layout: str = "grid"
    png_compress_level: int = 6
    rel_deflection: float | None = None   # tessellation; None = the geometry module's default
    angular_deflection: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "views", tuple(self.views))
        from cadvlm.render.views import CAMERAS

        bad = [v for v in self.views if v not in CAMERAS]
        if bad or not self.views or len(set(self.views)) != len(self.views):
            raise ValueError(f"views must be distinct names from {list(CAMERAS)}, got {list(self.views)}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if not 0 <= int(self.png_compress_level) <= 9:
            raise ValueError(f"png_compress_level must be 0..9, got {self.png_compress_level}")

    @classmethod
    def from_params(cls, p: dict) -> "RenderJob":
        """From the `render` section of params.yaml (unknown keys are an error: typos bite)."""
        p = dict(p)
        p.pop("workers", None)
        settings = RenderSettings(**{k: p.pop(k) for k in ("size", "supersample", "line_width", "margin",
                                                           "crease_angle") if k in p})
        job = cls(settings=settings, **p)
        return job

    def to_json(self) -> dict:
        return {**self.settings.to_json(), "views": list(self.views), "layout": self.layout,
                "png_compress_level": int(self.png_compress_level),
                "rel_deflection": self.rel_deflection, "angular_deflection": self.angular_deflection,
                "render_version": RENDER_VERSION}

    def outputs(self, model_id: str) -> list[str]:
        """Picture paths of a model, relative to the output folder (ids may contain '/')."""
        if self.layout == "grid":
            return [f"images/{model_id}.png"]
        return [f"images/{model_id}_{v}.png" for v in self.views]


def mesh_of(data, model_id: str, job: RenderJob, timings: dict):
    """Triangles of a model's solid (CADError on a model that does not build)."""
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.geometry.mesh import tessellate
    from cadvlm.geometry.solid import build_solid

    t0 = time.perf_counter()
    model = read_model(data, model_id)
    shape = build_solid(model)
    t1 = time.perf_counter()
    kw = {}
    if job.rel_deflection is not None:
        kw["rel_deflection"] = job.rel_deflection
    if job.angular_deflection is not None:
        kw["angular"] = job.angular_deflection
    vertices, triangles = tessellate(shape, **kw)
    t2 = time.perf_counter()
    timings["build"] = timings.get("build", 0.0) + (t1 - t0)
    timings["tessellate"] = timings.get("tessellate", 0.0) + (t2 - t1)
    return vertices, triangles


def pictures_of_mesh(vertices, triangles, job: RenderJob, model_id: str | None = None,
                     nthreads: int = 0, timings: dict | None = None):
    """({relative name: uint8 picture}, framing) in the job's layout; keys match outputs()."""
    from cadvlm.render.sheet import compose_grid
    from cadvlm.render.views import render_with

    timings = {} if timings is None else timings
    images, framing = render_with(vertices, triangles, job.settings, job.views, nthreads, model_id,
                                  timings, return_framing=True)
    names = job.outputs(model_id or "model")
    if job.layout == "grid":
        return {names[0]: compose_grid(images)}, framing
    return dict(zip(names, (images[v] for v in job.views))), framing


def pictures_of_json(data, model_id: str, job: RenderJob, nthreads: int = 0, timings: dict | None = None):
    """Build and render a DeepCAD JSON model (path, dict or bytes) -> (pictures, framing)."""
    timings = {} if timings is None else timings
    vertices, triangles = mesh_of(data, model_id, job, timings)
    return pictures_of_mesh(vertices, triangles, job, model_id, nthreads, timings)
