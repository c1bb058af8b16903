"""`cadvlm render` and `cadvlm contact-sheet`: pictures of one model, or of many on one sheet."""

from __future__ import annotations

import sys
from pathlib import Path

from cadvlm.render.views import VIEW_NAMES, RenderSettings


def _add_look_arguments(p, size: int) -> None:
    d = RenderSettings()
    p.add_argument("--size", type=int, default=size, help=f"pixels per view side (default {size})")
    p.add_argument("--views", default=",".join(VIEW_NAMES), help="comma-separated views (default: all four)")
    p.add_argument("--supersample", type=int, default=d.supersample,
                   help=f"k x k rays per pixel near outlines, 1 = off (default {d.supersample})")
    p.add_argument("--line-width", type=float, default=d.line_width, help="outline width in pixels")
    p.add_argument("--margin", type=float, default=d.margin, help="white border, fraction of the fitted extent")
    p.add_argument("--crease-angle", type=float, default=d.crease_angle,
                   help="degrees: faces meeting at more are outlined")


def _job(args, layout: str):
    from cadvlm.render.pipeline import RenderJob

    settings = RenderSettings(size=args.size, supersample=args.supersample, line_width=args.line_width,
                              margin=args.margin, crease_angle=args.crease_angle)
    views = tuple(v.strip() for v in args.views.split(",") if v.strip())
    return RenderJob(settings=settings, views=views, layout=layout)


def add_arguments_render(p) -> None:
    p.add_argument("model", help="DeepCAD-format JSON file")
    p.add_argument("-o", "--output", required=True,
                   help="PNG path; with --layout separate, one file per view: NAME_<view>.png")
    p.add_argument("--layout", choices=("grid", "separate"), default="grid",
                   help="grid: one 2x2 sheet (top | iso / front | right); separate: one PNG per view")
    _add_look_arguments(p, RenderSettings().size)


def cmd_render(args) -> int:
    from cadvlm.cad.model import CADError
    from cadvlm.render.pipeline import pictures_of_json
    from cadvlm.render.sheet import encode_png, write_atomic

    try:
        job = _job(args, args.layout)
    except ValueError as exc:
        print(f"cadvlm render: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output)
    model_id = Path(args.model).stem
    try:
        pictures, _ = pictures_of_json(args.model, model_id, job)
    except CADError as exc:
        print(f"cadvlm render: {exc}", file=sys.stderr)
        return 1
    written = []
    for name, image in pictures.items():
        if job.layout == "grid":
            path = out
        else:  # images/<id>_<view>.png -> <output stem>_<view>.png
            view = name.rsplit("_", 1)[-1][: -len(".png")]
            path = out.with_name(f"{out.stem}_{view}{out.suffix or '.png'}")
        write_atomic(path, encode_png(image, job.png_compress_level))
        written.append(str(path))
    print(f"{args.model} -> {', '.join(written)}")
    return 0


def add_arguments_contact_sheet(p) -> None:
    p.add_argument("inputs", nargs="+",
                   help="folders or files: DeepCAD JSON models (rendered now) or PNG pictures; "
                        "a folder holding index.json (a render stage output) uses its pictures")
    p.add_argument("-o", "--output", required=True, help="PNG path of the sheet")
    p.add_argument("--columns", type=int, default=6)
    p.add_argument("--tile", type=int, default=256, help="pixels per tile side")
    p.add_argument("--limit", type=int, default=48, help="at most this many models (first by name)")
    p.add_argument("--skip-failed", action="store_true",
                   help="leave out models that do not build (default: a labelled empty tile)")
    _add_look_arguments(p, 256)


def _collect(inputs) -> list[tuple[str, Path]]:
    """(label, path) of the pictures or models named by the inputs, sorted per folder."""
    import json

    found = []
    for item in map(Path, inputs):
        if item.is_dir():
            index = item / "index.json"
            if index.is_file():
                for model_id, files in sorted(json.loads(index.read_text()).items()):
                    found += [(model_id if len(files) == 1 else f"{model_id} {Path(f).stem.rsplit('_', 1)[-1]}",
                               item / f) for f in files]
                continue
            for path in sorted(item.rglob("*")):
                if path.suffix.lower() in (".json", ".png") and not path.name.startswith("."):
                    rel = path.relative_to(item).with_suffix("").as_posix()
                    found.append((rel, path))
        elif item.is_file():
            found.append((item.stem, item))
        else:
            raise FileNotFoundError(f"no such file or folder: {item}")
    return found


def cmd_contact_sheet(args) -> int:
    import numpy as np
    from PIL import Image

    from cadvlm.cad.model import CADError
    from cadvlm.render.pipeline import pictures_of_json
    from cadvlm.render.sheet import contact_sheet, encode_png, write_atomic

    try:
        job = _job(args, "grid")
        found = _collect(args.inputs)
    except (ValueError, FileNotFoundError) as exc:
        print(f"cadvlm contact-sheet: {exc}", file=sys.stderr)
        return 2
    found = found[: max(1, args.limit)]
    if not found:
        print("cadvlm contact-sheet: no .json or .png inputs found", file=sys.stderr)
        return 2
    items, failed = [], 0
    for label, path in found:
        if path.suffix.lower() == ".png":
            with Image.open(path) as im:
                items.append((label, np.asarray(im.convert("L"))))
            continue
        try:
            pictures, _ = pictures_of_json(path, label, job)
            items.append((label, next(iter(pictures.values()))))
        except CADError as exc:
            failed += 1
            if not args.skip_failed:
                items.append((f"{label}: {exc.reason}", None))
    if not items:
        print("cadvlm contact-sheet: no model could be rendered", file=sys.stderr)
        return 1
    sheet = contact_sheet(items, columns=args.columns, tile=args.tile)
    write_atomic(args.output, encode_png(sheet, 9))
    print(f"{len(items)} pictures, {failed} models failed -> {args.output} ({sheet.shape[1]}x{sheet.shape[0]})")
    return 0
