"""`cadvlm predict`: pictures of a part -> CAD code -> STEP / STL / views of the predicted part.

Input, one of:
- one picture: a 2x2 view grid like the render stage makes (the default layout the model was
  trained on), or with --view NAME a single view (models trained with `render.layout: separate`);
- --front / --top / --right [/ --iso] pictures, composed into the render stage's grid (a view
  left out stays a white cell: the model was trained on all four, so expect worse answers);
- --json MODEL.json: a DeepCAD model, rendered first exactly as the model's training pictures were.

Everything about the model's conventions (code language, picture layout and size, prompt, render
settings) comes from the model folder's manifest (`cadvlm.model.manifest`), never from
params.yaml: a copied `models/` folder works alone.

Output folder (-o): input.png (exactly what the model saw), answer.txt (the raw generation),
part.py (the code; the raw answer when it holds no code block), and when the code builds a valid
solid: part.step, part.stl, part_views.png (STEP and STL in millimetres; compact code carries no
scale, so its part is sized to --longest-mm on its longest side). The code is parsed safely (never executed) and built
in a worker process with a time limit.

Render-and-compare (`cadvlm.render_compare`) picks, among several candidate answers, the one
whose rebuilt part's views best match the input picture. --samples N adds N sampled answers
(--temperature, --seed) to the greedy one; --candidates nearest adds the answers of the --nearest K
training pictures closest to the input (default 5), from the bank of training thumbnails the model
folder carries (`cadvlm.model.retrieval`, retrieval.npz: evaluate's `rac_nearest`; a folder
without one is refused with exit 2). candidates.json lists every candidate with its kind (greedy /
sample / nearest, with the training sample id), its silhouette IoU, and which one was chosen.
Exit status: 0 = part written, 1 = the code does not build (reason printed; answer and code are
still written), 2 = bad input or no model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from cadvlm.cad.model import CADError
from cadvlm.model.manifest import GRID_VIEWS


class PictureError(ValueError):
    """A picture that cannot be used; the message names the file and why."""


def load_picture(path):
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


def render_json(path: Path, manifest):
    """(picture uint8, view name or None for a grid) of a DeepCAD JSON, drawn as in training."""
    from cadvlm.render.pipeline import RenderJob, pictures_of_json

    if manifest.pictures == "imported":  # trained on a dataset's own pictures (an OpenECAD set): no renderer to copy
        raise PictureError("this model was trained on pictures imported from a dataset (data.source: openecad), "
                           "not drawn by the render stage: there are no render settings to draw a JSON model as in "
                           "training; give a picture of the part instead of --json")
    job = RenderJob.from_params(manifest.render_params())
    pictures, _ = pictures_of_json(str(path), Path(path).stem, job)
    if job.layout == "grid":
        return next(iter(pictures.values())), None
    first = next(iter(pictures))  # separate layout: the model reads one view; take the first
    return pictures[first], job.views[0]


def build_outputs(task: dict) -> dict:
    """Parse, build and export one answer (runs in a worker). {'ok', 'reason', 'detail', ...}."""
    from cadvlm.geometry.mesh import export_step, export_stl
    from cadvlm.geometry.solid import bounding_box, transformed, volume
    from cadvlm.rebuild import grid_picture, rebuild

    out = Path(task["out_dir"])
    code = task["code"]
    built = rebuild(task["answer"], code, "prediction")
    if not built.ok:
        return {"ok": False, "reason": built.reason, "detail": built.detail}
    shape = built.shape
    try:
        if code.compact:  # normalised units: give the part the asked-for size
            lo, hi = bounding_box(shape)
            longest_m = float(task.get("longest_mm", 100.0)) / 1000.0
            shape = transformed(shape, scale=longest_m / float(np.max(hi - lo)))
        export_step(shape, out / "part.step")
        export_stl(shape, out / "part.stl")
    except Exception as exc:  # OCC failures on degenerate geometry
        return {"ok": False, "reason": "build_error", "detail": f"{type(exc).__name__}: {exc}"}
    lo, hi = bounding_box(shape)
    result = {"ok": True, "extrudes": len(built.model.extrudes), "volume_mm3": volume(shape) * 1e9,
              "box_mm": [float(v) for v in (hi - lo) * 1000]}
    try:
        from cadvlm.render.sheet import encode_png, write_atomic

        write_atomic(out / "part_views.png", encode_png(grid_picture(shape, int(task.get("size", 512)))))
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
    p.add_argument("--max-new-tokens", type=int, default=1024, help="generation budget (default 1024)")
    p.add_argument("--size", type=int, help="pixels per view when composing views (default: the model's render size)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds allowed to build the part (default 60)")
    p.add_argument("--longest-mm", type=float, default=100.0,
                   help="longest side of the part when the code has no scale (compact format; default 100)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--cpu-threads", type=int, default=0, help="torch threads on a CPU (0: one for small models)")
    p.add_argument("--samples", type=int, default=0, metavar="N",
                   help="render-and-compare: also sample N answers and keep the one (greedy included) whose "
                        "rebuilt part's views best match the picture (default 0: greedy only)")
    add_candidates_arguments(p)
    p.add_argument("--temperature", type=float, default=0.7, help="sampling temperature for --samples (default 0.7)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed for --samples (default 0)")


def add_candidates_arguments(p, whose: str = "") -> None:
    """--candidates and --nearest, worded once for predict and serve (`whose`: what the mode is the default of)."""
    from cadvlm.model.retrieval import CANDIDATE_MODES, DEFAULT_NEAREST

    p.add_argument("--candidates", choices=CANDIDATE_MODES, default="model",
                   help=f"{whose}model: the model's own answers only; nearest: also the answers of the --nearest K "
                        "training pictures closest to the input (the model folder's retrieval.npz), and "
                        "render-and-compare keeps the one that looks most like the input (default: model)")
    p.add_argument("--nearest", type=int, default=DEFAULT_NEAREST, metavar="K",
                   help=f"training answers tried by --candidates nearest (default {DEFAULT_NEAREST})")


def _input_picture(args, manifest, size: int):
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
        picture, view = render_json(args.json, manifest)
    except CADError as exc:
        raise PictureError(f"{args.json}: cannot render the model: {exc}") from None
    return Image.fromarray(picture).convert("RGB"), view


def cmd_predict(args, generate=None, sample=None) -> int:
    """`generate(image, prompt, max_new_tokens) -> answer` and `sample(image, prompt, n) -> [answers]`
    replace the trained model (tests)."""
    from cadvlm.model.manifest import ManifestError, ModelManifest

    try:
        manifest = ModelManifest.read(args.model)
    except ManifestError as exc:
        print(f"cadvlm predict: {exc}", file=sys.stderr)
        return 2
    size = args.size or manifest.view_size
    try:
        picture, view = _input_picture(args, manifest, size)
    except PictureError as exc:
        print(f"cadvlm predict: {exc}", file=sys.stderr)
        return 2
    try:
        n_samples, bank = _candidate_sources(args, manifest)
    except ValueError as exc:
        print(f"cadvlm predict: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("part.step", "part.stl", "part_views.png", "candidates.json"):  # nothing older beside new code
        (out / stale).unlink(missing_ok=True)
    picture.save(out / "input.png")
    prompt = args.prompt or manifest.prompt(view)

    if generate is None:
        try:
            from cadvlm.decode.generate import generate_code, sample_code, set_cpu_threads
            from cadvlm.model.load import load_trained

            model, processor = load_trained(args.model, device=args.device)
        except Exception as exc:  # ModelLoadError, missing files, bad device: say which
            print(f"cadvlm predict: cannot load the model from {args.model}: {exc}", file=sys.stderr)
            return 2
        set_cpu_threads(model, args.cpu_threads)
        answer = generate_code(model, processor, [picture], prompt, args.max_new_tokens, 1, manifest.code)[0]
        sampled = sample_code(model, processor, picture, prompt, n_samples, args.max_new_tokens, args.temperature,
                              args.seed) if n_samples else []
    else:
        answer = generate(picture, prompt, args.max_new_tokens)
        sampled = list(sample(picture, prompt, n_samples)) if n_samples and sample else []
    code = manifest.code  # the language the model was trained to write
    from cadvlm.model.retrieval import gather_candidates
    from cadvlm.sandbox import TimeLimitedPool

    candidates = gather_candidates(answer, sampled, bank, picture, args.nearest)
    choosing = n_samples > 0 or bank is not None
    pool = TimeLimitedPool(1, args.timeout, warmup=("cadvlm.predict", "cadvlm.rebuild", "cadvlm.geometry.solid",
                                                     "cadvlm.geometry.mesh") + (RAC_WARMUP if choosing else ()))
    with pool:
        if choosing:
            answer = _render_compare(pool, picture, candidates, code, manifest, view, out)
        result = _build(pool, answer, code, out, size, args)
    (out / "answer.txt").write_text(answer, encoding="utf-8")
    return _report(result, code, out)


RAC_WARMUP = ("cadvlm.render_compare", "cadvlm.render.views", "cadvlm.render.pipeline")


def _candidate_sources(args, manifest) -> tuple[int, object]:
    """(N answers to sample, the training-picture bank or None) that the options ask for; ValueError
    saying why they cannot be had (a lookup without a bank, render-and-compare without a renderer)."""
    from cadvlm.model.retrieval import bank_for_compare

    n_samples = max(0, int(getattr(args, "samples", 0) or 0))
    if n_samples and manifest.pictures == "imported":
        raise ValueError("--samples draws each candidate as the training pictures were drawn, but this model "
                         "was trained on a dataset's own pictures: no renderer to copy")
    if args.candidates != "nearest":
        return n_samples, None
    if args.nearest < 1:
        raise ValueError(f"--nearest must be 1 or more, not {args.nearest}")
    try:
        return n_samples, bank_for_compare(args.model, manifest)
    except ValueError as exc:  # RetrievalError: none, unreadable, or no renderer, said with the folder's name
        raise ValueError(f"--candidates nearest: {exc}") from None


def _render_compare(pool, picture, candidates: list, code, manifest, view, out: Path) -> str:
    """The candidate (a retrieval.Candidate) whose rebuilt part looks most like the picture; all of them,
    with their kinds, in candidates.json."""
    import json

    from cadvlm.model.retrieval import choice_summary
    from cadvlm.render_compare import best_of

    choice = best_of(pool, picture, [c.answer for c in candidates], code, manifest.render_params(), view)
    (out / "candidates.json").write_text(json.dumps(choice_summary(choice, candidates), indent=1) + "\n")
    best, won = choice.scores[choice.index], candidates[choice.index]
    source = f": training sample {won.train_id}" if won.train_id else ""
    print(f"render-and-compare: candidate {choice.index} of {len(candidates)} ({won.kind}{source}), silhouette IoU "
          f"{'-' if best is None else f'{best:.3f}'}; {choice.n_built} distinct candidates built", file=sys.stderr)
    return choice.answer


def _build(pool, answer: str, code, out: Path, size: int, args) -> dict:
    """Write part.py, then build and export the part in the pool -> the result dict."""
    try:
        text = code.code_of(answer)
    except CADError:
        text = answer  # no usable block: keep what the model said, for inspection
    (out / "part.py").write_text(text if text.endswith("\n") or not text else text + "\n", encoding="utf-8")
    task = {"answer": answer, "out_dir": str(out), "size": size, "code": code, "longest_mm": args.longest_mm}
    outcome = next(iter(pool.run(build_outputs, [task])))
    if outcome.status == "ok":
        result = outcome.value
    elif outcome.status == "timeout":
        result = {"ok": False, "reason": "timeout", "detail": f"building took over {args.timeout:g} s"}
    else:
        result = {"ok": False, "reason": "crash" if outcome.status == "crash" else "build_error",
                  "detail": outcome.error}
    return result


def _report(result: dict, code, out: Path) -> int:
    if not result["ok"]:
        for stale in ("part.step", "part.stl", "part_views.png"):
            (out / stale).unlink(missing_ok=True)
        print(f"cadvlm predict: the generated code does not give a valid part: {result['reason']}: "
              f"{result['detail']} (answer in {out / 'answer.txt'}, code in {out / 'part.py'})", file=sys.stderr)
        return 1
    box = " x ".join(f"{v:.2f}" for v in result["box_mm"])
    sized = " (compact code has no scale: longest side set by --longest-mm)" if code.compact else ""
    print(f"{out}: {result['extrudes']} extrude(s), volume {result['volume_mm3']:.1f} mm3, box {box} mm{sized} -> "
          f"part.py, part.step, part.stl" + (", part_views.png" if "views_error" not in result else ""))
    if "views_error" in result:
        print(f"cadvlm predict: views not rendered: {result['views_error']}", file=sys.stderr)
    return 0
