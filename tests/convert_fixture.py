"""A tiny extract + render output for convert tests: real or synthetic JSON, blank PNG pictures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

VIEWS = ("front", "top", "right", "iso")


def make_dataset(root: Path, sources: dict, layout: str = "grid", view_size: int = 16,
                 splits: dict | None = None) -> tuple[Path, Path]:
    """sources: {model id: JSON path or text}. Returns (extracted, rendered) folders under root."""
    extracted, rendered = root / "extracted", root / "rendered"
    (extracted / "json").mkdir(parents=True, exist_ok=True)
    ids = sorted(sources)
    for mid, src in sources.items():
        dest = extracted / "json" / f"{mid}.json"
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, Path):
            shutil.copyfile(src, dest)
        else:
            dest.write_text(src)
    if splits is None:
        splits = {"train": ids[2:], "validation": ids[:1], "test": ids[1:2]}
    (extracted / "split.json").write_text(json.dumps(splits))
    index = {}
    grid = 2 * view_size
    for mid in ids:
        names = [f"images/{mid}.png"] if layout == "grid" else [f"images/{mid}_{v}.png" for v in VIEWS]
        for name in names:
            p = rendered / name
            p.parent.mkdir(parents=True, exist_ok=True)
            side = grid if layout == "grid" else view_size
            Image.new("L", (side, side), 255).save(p)
        index[mid] = names
    (rendered / "index.json").write_text(json.dumps(index))
    meta = {"layout": layout, "settings": {"views": list(VIEWS), "layout": layout, "size": view_size},
            "image": {"view_size": view_size, "grid_size": [grid, grid] if layout == "grid" else None}}
    (rendered / "rendering_metadata.json").write_text(json.dumps(meta))
    return extracted, rendered
