"""The render stage for parts whose pictures came with the dataset: import them, draw nothing.

An OpenECAD set (`data.source: openecad`) ships one picture per part; the extract stage keeps the
chosen ones in data/extracted/pictures/ and lists them in pictures.json (`cadvlm.pictures`). Here
they become the render stage's usual output, so convert, train and evaluate read them as they
read drawn pictures:
- images/<id>.<ext>: the dataset's bytes, unchanged (JPEG stays JPEG: no re-encoding loss);
- index.json: {id: [picture path]};
- rendering_metadata.json: no renderer settings (there are none), the layout (`grid` when every
  picture is OpenECAD's 2x2 sheet, else `single`: one picture per part as shipped, its kind per
  part), the kinds and sizes found, the sheet's arrangement;
- render_state.json: per part the hash of its picture, so a rerun copies only what changed.
A part whose picture is missing is counted by reason and left out of the index.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from pathlib import Path

from cadvlm.pictures import KINDS, OPENECAD_SHEET, read_pictures
from cadvlm.render.sheet import files_below, write_atomic, write_json_atomic

STATE_VERSION = "imported-1"  # render_state.json of drawn pictures has version 1: neither reuses the other



def imported_metadata(records: list[dict]) -> dict:
    """rendering_metadata.json for imported pictures (records: pictures.json entries of the subset)."""
    kinds = Counter(r["kind"] for r in records)
    sizes = Counter(f"{r['size'][0]}x{r['size'][1]}" for r in records)
    layout = "grid" if kinds and set(kinds) == {"grid"} else "single"
    uniform = list(records[0]["size"]) if len(sizes) == 1 else None
    views = [v for row in OPENECAD_SHEET for v in row] if layout == "grid" else [k for k in KINDS if k in kinds]
    return {
        "renderer": None,
        "pictures": "imported",  # the model folder's manifest carries it: nothing can draw a part as these were
        "source": "the dataset's own pictures, copied byte for byte; no renderer settings",
        "settings": {},
        "cameras": {},
        "layout": layout,
        "layout_note": "grid: every picture is the dataset's 2x2 sheet of views; single: one picture per part "
                       "as the dataset ships it, of the kind data/extracted/pictures.json gives (and each "
                       "converted sample's `view`): iso (one view from near (1, 1, 1)), transparent, grid",
        "views": views,
        "image": {"format": "/".join(sorted({r["format"] for r in records})) or None,
                  "view_size": uniform if layout == "single" else None,
                  "grid_size": uniform if layout == "grid" else None,
                  "sizes": dict(sorted(sizes.items()))},
        "kinds": dict(sorted(kinds.items())),
        "grid": [list(r) for r in OPENECAD_SHEET] if "grid" in kinds else None,
        "grid_note": "OpenECAD's sheet: views from (1,1,1), +X / +Y, +Z, each 640x480 (Bethany/step2img.py)",
    }



def import_pictures(extracted, out, metrics_path=None) -> dict:
    """Copy the subset's pictures into `out` with the render stage's index and metadata; metrics."""
    t0 = time.perf_counter()
    extracted, out = Path(extracted), Path(out)
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    pictures = read_pictures(extracted) or {}
    split = json.loads((extracted / "split.json").read_text())
    ids = sorted({i for name in ("train", "validation", "test") for i in split.get(name) or []})
    try:
        old = json.loads((out / "render_state.json").read_text())
        old = old.get("models", {}) if old.get("version") == STATE_VERSION else {}
    except (OSError, ValueError, AttributeError):
        old = {}
    existing = files_below(images, out)
    state, index, copied, reused = {}, {}, 0, 0
    for model_id in ids:
        rec = pictures.get(model_id)
        try:
            if rec is None:
                raise FileNotFoundError(f"{model_id} is not in pictures.json")
            data = (extracted / rec["file"]).read_bytes()
        except OSError as exc:
            state[model_id] = {"key": None, "error": "missing_picture", "message": f"{model_id}: {exc}"}
            continue
        key = hashlib.sha256(data).hexdigest()[:32]
        rel = f"images/{model_id}{Path(rec['file']).suffix}"
        prev = old.get(model_id) or {}
        if prev.get("key") == key and prev.get("files") == [rel] and rel in existing:
            reused += 1
        else:
            write_atomic(out / rel, data)
            copied += 1
        state[model_id] = {"key": key, "files": [rel], "kind": rec["kind"], "size": rec["size"]}
        index[model_id] = [rel]

    keep = {f for files in index.values() for f in files}
    removed = 0
    for rel in sorted(files_below(images, out) - keep):  # earlier pictures of parts no longer in the subset
        os.unlink(out / rel)
        removed += 1
    for root, dirs, files in os.walk(images, topdown=False):
        if not dirs and not files and Path(root) != images:
            os.rmdir(root)
    records = [pictures[i] for i in index]
    write_json_atomic(out / "index.json", index)
    write_json_atomic(out / "rendering_metadata.json", imported_metadata(records))
    write_json_atomic(out / "render_state.json", {"version": STATE_VERSION, "models": state})
    failures = Counter(v["error"] for v in state.values() if "error" in v)
    metrics = {
        "source": "imported",
        "models": len(ids),
        "rendered": len(index),
        "failed": sum(failures.values()),
        "failed_by_reason": dict(sorted(failures.items())),
        "kinds": dict(sorted(Counter(r["kind"] for r in records).items())),
        "this_run": {"rendered": copied, "reused": reused, "removed_files": removed,
                     "seconds": round(time.perf_counter() - t0, 3)},
    }
    if metrics_path is not None:
        Path(metrics_path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(metrics_path), metrics)
    return metrics
