"""What a trained model folder says about itself: `cadvlm_model.json`.

A model is only usable with the conventions it was trained on: the code language (and its grid),
the picture layout, views and size, the prompts, and how the pictures were rendered. The train
stage writes all of them here, and predict, evaluate and serve read them from the folder and from
nowhere else (not params.yaml), so a `models/` folder copied to another machine works alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from cadvlm.codec.format import MODEL_MANIFEST, CodeFormat
from cadvlm.data.prompts import describe_views

MANIFEST = MODEL_MANIFEST
MANIFEST_VERSION = 2
GRID_VIEWS = ("front", "top", "right", "iso")
DEFAULT_PROMPT = "Write OpenECAD-style CAD code that produces the solid drawn in {views}."


class ManifestError(ValueError):
    """A model folder whose manifest is missing or does not say what inference needs."""


@dataclass(frozen=True)
class ModelManifest:
    weights: str  # "full": the folder holds every weight; "lora": an adapter over `base`
    base: str | None  # hub id or path relative to the folder (lora); None for full weights
    code: CodeFormat = field(default_factory=CodeFormat)
    layout: str = "grid"  # grid: one 2x2 sheet per part; separate: one picture per view; single: one imported picture
    views: tuple[str, ...] = GRID_VIEWS
    image_size: tuple[int, int] | None = None  # pictures as trained on (the sheet's size for grid)
    prompts: tuple[str, ...] = (DEFAULT_PROMPT,)  # training templates; {views} = what the picture shows
    render: dict = field(default_factory=dict)  # the render stage's settings (RenderJob.to_json())
    pictures: str = "rendered"  # rendered (by the render stage) | imported (a dataset's own, e.g. an OpenECAD set)

    def __post_init__(self):
        if self.weights not in ("full", "lora"):
            raise ManifestError(f"weights must be 'full' or 'lora', not {self.weights!r}")
        if self.layout not in ("grid", "separate", "single"):
            raise ManifestError(f"layout must be 'grid', 'separate' or 'single', not {self.layout!r}")
        if not self.prompts:
            raise ManifestError("a model needs at least one prompt template")
        if self.pictures not in ("rendered", "imported"):
            raise ManifestError(f"pictures must be 'rendered' or 'imported', not {self.pictures!r}")
        object.__setattr__(self, "views", tuple(self.views))
        object.__setattr__(self, "prompts", tuple(self.prompts))
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))

    # ------------------------------------------------------------------ what inference asks
    def prompt(self, view: str | None = None) -> str:
        """The first training template, filled in (as convert does) for the sheet (view None) or one view."""
        return self.prompts[0].replace("{views}", describe_views(self.views, view))

    def render_params(self) -> dict:
        """The render stage's settings as trained on, in params.yaml's `render` form (RenderJob.from_params)."""
        r = {k: v for k, v in self.render.items() if k != "render_version"}
        r["views"], r["layout"] = list(self.views), self.layout
        return r

    @property
    def view_size(self) -> int:
        """Pixels per view side (the render size)."""
        if "size" in self.render:
            return int(self.render["size"])
        if self.image_size:
            return self.image_size[0] // (2 if self.layout == "grid" else 1)
        return 512

    # ------------------------------------------------------------------ file
    def to_json(self) -> dict:
        return {"manifest_version": MANIFEST_VERSION, "weights": self.weights, "base": self.base,
                **self.code.to_json(), "layout": self.layout, "views": list(self.views),
                "image_size": list(self.image_size) if self.image_size else None,
                "prompts": list(self.prompts), "render": self.render, "pictures": self.pictures}

    def write(self, model_dir) -> Path:
        path = Path(model_dir) / MANIFEST
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, model_dir) -> "ModelManifest":
        path = Path(model_dir) / MANIFEST
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ManifestError(f"{model_dir}: no {MANIFEST}; not an output of the train stage") from None
        except ValueError as exc:
            raise ManifestError(f"{path}: not JSON ({exc})") from None
        missing = [k for k in ("weights", "code_format", "layout", "prompts") if k not in info]
        if missing:
            raise ManifestError(f"{path} does not say {', '.join(missing)} (written by an older cadvlm?): "
                                "retrain (`dvc repro train`) so the folder carries what inference needs")
        try:
            return cls(weights=info["weights"], base=info.get("base"), code=CodeFormat.from_json(info),
                       layout=info["layout"], views=tuple(info.get("views") or GRID_VIEWS),
                       image_size=info.get("image_size"), prompts=tuple(info["prompts"]),
                       render=dict(info.get("render") or {}), pictures=info.get("pictures") or "rendered")
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"{path}: {exc}") from None

    @classmethod
    def from_training_data(cls, weights: str, base: str | None, converted_dir, image_root) -> "ModelManifest":
        """Everything the convert and render stages recorded about the data a model is trained on."""
        converted_dir, image_root = Path(converted_dir), Path(image_root)
        info_path = converted_dir / "convert_info.json"
        info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
        meta_path = image_root / "rendering_metadata.json"
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
        return cls(weights=weights, base=base, code=CodeFormat.from_json(info),
                   layout=info.get("layout", "grid"), views=tuple(info.get("views") or GRID_VIEWS),
                   image_size=info.get("image_size"), prompts=tuple(info.get("prompts") or (DEFAULT_PROMPT,)),
                   render=dict(meta.get("settings") or {}), pictures=meta.get("pictures") or "rendered")
