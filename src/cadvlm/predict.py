"""`cadvlm predict`: pictures of a part -> CAD code -> STEP / STL / views of the predicted part.

Input, one of:
- one picture: a 2x2 view grid like the render stage makes (the default layout the model was
  trained on), or with --view NAME a single view (models trained with `render.layout: separate`);
- --front / --top / --right [/ --iso] pictures, composed into the render stage's grid (a view
  left out stays a white cell: the model was trained on all four, so expect worse answers);
- --json MODEL.json: a DeepCAD model rendered first with the render params in params.yaml.

Output folder (-o): input.png (exactly what the model saw), answer.txt (the raw generation),
part.py (the code; the raw answer when it holds no code block), and when the code builds a valid
solid: part.step, part.stl, part_views.png (STEP and STL in millimetres; compact code carries no
scale, so its part is sized to --longest-mm on its longest side). The code is parsed safely (never executed) and built
in a worker process with a time limit. Exit status: 0 = part written, 1 = the code does not
build (reason printed; answer and code are still written), 2 = bad input or no model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from cadvlm.cad.model import CADError

GRID_VIEWS = ("front", "top", "right", "iso")
FALLBACK_PROMPT = "Write OpenECAD-style CAD code that produces the solid drawn in {views}."


class PictureError(ValueError):
    """A picture that cannot be used; the message names the file and why."""


def load_picture(path) -> "Image.Image":
    """Open a picture fully (decoding all pixels now, so a truncated file fails here, clearly)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise PictureError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except UnidentifiedImageError:
        raise PictureError(f"{path}: not a picture Pillow can read (PNG, JPEG, ...)") from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data
        raise PictureError(f"{path}: unreadable picture ({exc})") from None


def fit_square(image, size: int) -> np.ndarray:
    """A grey uint8 (size, size) view: the picture scaled to fit, centred on white.

    Photos or screenshots come in any size and colour; the renderer's views are grey squares
    with the part centred, so that is what the model gets.
    """
    from PIL import Image

    im = image
    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, im.convert("RGBA"))
    im = im.convert("L")
    w, h = im.size
    k = size / max(w, h)
    im = im.resize((max(1, round(w * k)), max(1, round(h * k))), Image.LANCZOS)
    canvas = Image.new("L", (size, size), 255)
    canvas.paste(im, ((size - im.width) // 2, (size - im.height) // 2))
    return np.asarray(canvas, dtype=np.uint8)


def compose_views(pictures: dict, size: int) -> np.ndarray:
    """The render stage's 2x2 grid from {view name: PIL picture} (missing views stay white)."""
    from cadvlm.render.sheet import compose_grid

    unknown = set(pictures) - set(GRID_VIEWS)
    if unknown:
        raise PictureError(f"unknown views {sorted(unknown)}; use {', '.join(GRID_VIEWS)}")
    if not pictures:
        raise PictureError("no views given")
    return compose_grid({name: fit_square(im, size) for name, im in pictures.items()})


def render_json(path: Path, params: dict):
    """(picture uint8, description of what it shows) of a DeepCAD JSON with the render params."""
    from cadvlm.render.pipeline import RenderJob, pictures_of_json

    job = RenderJob.from_params(params.get("render", {})) if params.get("render") else RenderJob()
    pictures, _ = pictures_of_json(str(path), Path(path).stem, job)
    if job.layout == "grid":
        return next(iter(pictures.values())), None
    first = next(iter(pictures))  # separate layout: the model reads one view; take the first
    return pictures[first], job.views[0]


def describe_views(view: str | None, views=GRID_VIEWS) -> str:
    """The prompt's {views} text, worded as the convert stage words it."""
    try:
        from cadvlm.data.convert import RenderInfo

        return RenderInfo("grid" if view is None else "separate", tuple(views), None).describe(view)
    except ImportError:
        return f"the {view} view" if view else "four views (front, top, right and iso)"


def default_prompt(params: dict, view: str | None) -> str:
    """The first training prompt template (params.yaml convert.prompts, else the convert default)."""
    prompts = (params.get("convert") or {}).get("prompts")
    if not prompts:
        try:
            from cadvlm.data.convert import DEFAULT_PROMPTS as prompts
        except ImportError:
            prompts = (FALLBACK_PROMPT,)
    views = tuple((params.get("render") or {}).get("views") or GRID_VIEWS)
    return prompts[0].replace("{views}", describe_views(view, views))


def build_outputs(task: dict) -> dict:
    """Parse, build and export one answer (runs in a worker). {'ok', 'reason', 'detail', ...}."""
    from cadvlm.codec.compact import parse_code_as
    from cadvlm.evaluate import answer_code, classify
    from cadvlm.geometry.mesh import export_step, export_stl, tessellate
    from cadvlm.geometry.solid import bounding_box, build_solid, transformed, volume

    out = Path(task["out_dir"])
    try:
        fmt, bits = task.get("format", "openecad"), task.get("bits", 8)
        model = parse_code_as(answer_code(task["answer"], fmt), fmt, "prediction", bits)
        shape = build_solid(model)
        if fmt == "compact":  # normalised units: give the part the asked-for size
            lo, hi = bounding_box(shape)
            longest_m = float(task.get("longest_mm", 100.0)) / 1000.0
            shape = transformed(shape, scale=longest_m / float(np.max(hi - lo)))
        export_step(shape, out / "part.step")
        export_stl(shape, out / "part.stl")
    except CADError as exc:
        return {"ok": False, "reason": classify(exc), "detail": exc.detail}
    except Exception as exc:  # OCC failures on degenerate geometry
        return {"ok": False, "reason": "build_error", "detail": f"{type(exc).__name__}: {exc}"}
    lo, hi = bounding_box(shape)
    result = {"ok": True, "extrudes": len(model.extrudes), "volume_mm3": volume(shape) * 1e9,
              "box_mm": [float(v) for v in (hi - lo) * 1000]}
    try:
        from cadvlm.render.sheet import compose_grid, encode_png, write_atomic
        from cadvlm.render.views import VIEW_NAMES, render_views

        verts, tris = tessellate(shape)
        grid = compose_grid(render_views(verts, tris, size=int(task.get("size", 512)), views=VIEW_NAMES, nthreads=1))
        write_atomic(out / "part_views.png", encode_png(grid))
    except Exception as exc:  # the part is written; a picture problem is only reported
        result["views_error"] = f"{type(exc).__name__}: {exc}"
    return result


def add_arguments_predict(p) -> None:
    p.add_argument("image", nargs="?", type=Path,
                   help="a picture of the part: the 2x2 view grid the render stage makes (or one view, with --view)")
    for v in GRID_VIEWS:
        p.add_argument(f"--{v}", type=Path, metavar="PNG", help=f"the {v} view (composed into the grid)")
    p.add_argument("--json", type=Path, metavar="MODEL.json", help="a DeepCAD JSON model: render it, then predict")
    p.add_argument("--view", choices=GRID_VIEWS, help="the single picture is this one view (separate-layout model)")
    p.add_argument("--model", type=Path, default=Path("models"), help="trained model folder (default: models)")
    p.add_argument("-o", "--out", type=Path, default=Path("prediction"), help="output folder (default: prediction)")
    p.add_argument("--prompt", help="instruction text (default: the first training prompt template)")
    p.add_argument("--max-new-tokens", type=int, help="generation budget (default: params eval.max_new_tokens or 1024)")
    p.add_argument("--size", type=int, help="pixels per view when composing views (default: params render.size or 512)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed to build the part (default 60)")
    p.add_argument("--longest-mm", type=float, default=100.0,
                   help="longest side of the part when the code has no scale (compact format; default 100)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file for the defaults")


def _params(path: Path) -> dict:
    if not path.is_file():
        return {}
    from cadvlm.params import load_params

    try:
        return load_params(path)
    except Exception:
        return {}


def _input_picture(args, params: dict, size: int):
    """(picture as a PIL image, view name or None for a grid) from the chosen input."""
    from PIL import Image

    views = {v: getattr(args, v) for v in GRID_VIEWS if getattr(args, v) is not None}
    modes = [m for m, given in (("picture", args.image is not None), ("views", bool(views)),
                                ("json", args.json is not None)) if given]
    if len(modes) != 1:
        raise PictureError("give exactly one input: a picture, --front/--top/--right[/--iso] views, or --json")
    if modes[0] == "picture":
        im = load_picture(args.image)
        return im.convert("RGB"), args.view
    if modes[0] == "views":
        if args.view:
            raise PictureError("--view names a single picture; it does not combine with --front/--top/...")
        grid = compose_views({v: load_picture(p) for v, p in views.items()}, size)
        missing = [v for v in GRID_VIEWS if v not in views]
        if missing:
            print(f"cadvlm predict: no {', '.join(missing)} view: left white (the model was trained on all four)",
                  file=sys.stderr)
        return Image.fromarray(grid).convert("RGB"), None
    if not args.json.is_file():
        raise PictureError(f"{args.json}: no such file")
    try:
        picture, view = render_json(args.json, params)
    except CADError as exc:
        raise PictureError(f"{args.json}: cannot render the model: {exc}") from None
    return Image.fromarray(picture).convert("RGB"), view


def cmd_predict(args, generate=None) -> int:
    """`generate(image, prompt, max_new_tokens) -> answer` replaces the trained model (tests)."""
    params = _params(args.params)
    size = args.size or int((params.get("render") or {}).get("size", 512))
    try:
        picture, view = _input_picture(args, params, size)
    except PictureError as exc:
        print(f"cadvlm predict: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("part.step", "part.stl", "part_views.png"):  # never leave an older part beside new code
        (out / stale).unlink(missing_ok=True)
    picture.save(out / "input.png")
    prompt = args.prompt or default_prompt(params, view)
    max_new = args.max_new_tokens or int((params.get("eval") or {}).get("max_new_tokens", 1024))

    if generate is None:
        try:
            from cadvlm.model.generate import generate_code
            from cadvlm.model.load import load_trained

            model, processor = load_trained(args.model, device=args.device)
        except Exception as exc:  # ModelLoadError, missing files, bad device: say which
            print(f"cadvlm predict: cannot load the model from {args.model}: {exc}", file=sys.stderr)
            return 2
        from cadvlm.evaluate import set_cpu_threads

        set_cpu_threads(model, int((params.get("eval") or {}).get("cpu_threads", 0)))
        answer = generate_code(model, processor, [picture], prompt, max_new, 1)[0]
    else:
        answer = generate(picture, prompt, max_new)
    (out / "answer.txt").write_text(answer, encoding="utf-8")
    from cadvlm.evaluate import answer_code

    # The model writes the language its training data was converted to (params convert.format).
    conv = params.get("convert") or {}
    fmt, bits = str(conv.get("format", "openecad")), int(conv.get("compact_bits", 8))
    try:
        code = answer_code(answer, fmt)
    except CADError:
        code = answer  # no usable block: keep what the model said, for inspection
    (out / "part.py").write_text(code if code.endswith("\n") or not code else code + "\n", encoding="utf-8")

    from cadvlm.sandbox import TimeLimitedPool

    task = {"answer": answer, "out_dir": str(out), "size": size, "format": fmt, "bits": bits,
            "longest_mm": args.longest_mm}
    with TimeLimitedPool(1, args.timeout, warmup=("cadvlm.predict", "cadvlm.evaluate", "cadvlm.geometry.solid",
                                                          "cadvlm.geometry.mesh")) as pool:
        outcome = next(iter(pool.run(build_outputs, [task])))
    if outcome.status == "ok":
        result = outcome.value
    elif outcome.status == "timeout":
        result = {"ok": False, "reason": "timeout", "detail": f"building took over {args.timeout:g} s"}
    else:
        result = {"ok": False, "reason": "crash" if outcome.status == "crash" else "build_error",
                  "detail": outcome.error}
    if not result["ok"]:
        for stale in ("part.step", "part.stl", "part_views.png"):
            (out / stale).unlink(missing_ok=True)
        print(f"cadvlm predict: the generated code does not give a valid part: {result['reason']}: "
              f"{result['detail']} (answer in {out / 'answer.txt'}, code in {out / 'part.py'})", file=sys.stderr)
        return 1
    box = " x ".join(f"{v:.2f}" for v in result["box_mm"])
    sized = " (compact code has no scale: longest side set by --longest-mm)" if fmt == "compact" else ""
    print(f"{out}: {result['extrudes']} extrude(s), volume {result['volume_mm3']:.1f} mm3, box {box} mm{sized} -> "
          f"part.py, part.step, part.stl" + (", part_views.png" if "views_error" not in result else ""))
    if "views_error" in result:
        print(f"cadvlm predict: views not rendered: {result['views_error']}", file=sys.stderr)
    return 0
