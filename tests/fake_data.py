"""A small fake dataset in the convert stage's format, for tests and benchmarks of the train stage
without the upstream pipeline. Code strings are real OpenECAD v2 programs, with every number
rescaled per sample, so lengths and token statistics look like the real thing: by default those
the project's generator writes (cadvlm.synth, so the tests need no outside data), or the files of
a folder when given. The picture draws the same scale, so the image carries information about the
answer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from PIL import Image

from cadvlm.data.conversations import IMAGE_TAG

_NUM = re.compile(r"(?<![\w.])-?\d+\.\d*|(?<![\w.])-?\d+(?![\w.])")
_SYNTH_TEMPLATE = (
    "SketchPlane0 = add_sketchplane(\n\torigin= [0., 0., 0.], normal= [0., 0., 1.], x_axis= [1., 0., 0.])\n"
    "Loops0 = []\nCurves0_0 = []\n"
    "Line0_0_0 = add_line(start= [0., 0.], end= [{a}, 0.])\n"
    "Line0_0_1 = add_line(start= [{a}, 0.], end= [{a}, {b}])\n"
    "Line0_0_2 = add_line(start= [{a}, {b}], end= [0., {b}])\n"
    "Line0_0_3 = add_line(start= [0., {b}], end= [0., 0.])\n"
    "Loop0_0 = add_loop(Curves0_0)\nCurves0_1 = []\n"
    "Circle0_1_0 = add_circle(center= [{c}, {d}], radius= {r})\n"
    "Loop0_1 = add_loop(Curves0_1)\nProfile0 = add_profile(Loops0)\n"
    "Sketch0 = add_sketch(sketch_plane= SketchPlane0, profile= Profile0)\n"
    "Extrude0 = add_extrude(sketch= Sketch0,\n\toperation= 0, type= 0, extent_one= {h}, extent_two= 0.)\n"
)


def _fmt(x: float) -> str:
    s = f"{round(x, 4):.4f}".rstrip("0")
    return s if not s.endswith("-0.") else "0."


def _rescale(code: str, k: float) -> str:
    """Multiply every literal number in OpenECAD code by k (operation/type codes and ids stay)."""
    out, last = [], 0
    for m in _NUM.finditer(code):
        before = code[max(0, m.start() - 11): m.start()]
        if "operation=" in before or "type=" in before:
            continue
        out.append(code[last: m.start()])
        out.append(_fmt(float(m.group()) * k))
        last = m.end()
    out.append(code[last:])
    return "".join(out)


def _fake_picture(kind: int, k: float, size: int) -> Image.Image:
    """A 2x2 sheet of 'views' (white, grey part, dark outline) whose shape/size encode kind and k."""
    im = Image.new("RGB", (size, size), "white")
    from PIL import ImageDraw

    d = ImageDraw.Draw(im)
    half = size // 2
    s = max(4, int(half * (0.15 + 0.3 * min(k, 2.0) / 2.0)))
    for v in range(4):
        cx, cy = (v % 2) * half + half // 2, (v // 2) * half + half // 2
        box = [cx - s, cy - int(s * (0.5 + 0.5 * ((kind + v) % 3) / 2)), cx + s, cy + s]
        if (kind + v) % 2:
            d.ellipse(box, fill=(200, 200, 200), outline=(30, 30, 30), width=3)
        else:
            d.rectangle(box, fill=(200, 200, 200), outline=(30, 30, 30), width=3)
        if kind % 3 == 0:
            d.ellipse([cx - s // 3, cy - s // 3, cx + s // 3, cy + s // 3], fill="white", outline=(30, 30, 30), width=2)
    return im


def _generated_code(n: int = 40) -> list[str]:
    """OpenECAD v2 code of the generator's first n parts: real programs of every family, made here."""
    from cadvlm.codec.openecad_writer import write_code
    from cadvlm.synth import generate_model

    return [write_code(generate_model(i, seed=0)) for i in range(n)]


def write_fake_dataset(out_dir: str | Path, n_train: int, n_val: int, n_test: int = 0, seed: int = 0,
                       code_dir: str | Path | None = None, max_chars: int = 3000, image_size: int = 512,
                       prompts: tuple[str, ...] = ("Generate the CAD code for this part.",
                                                   "Write OpenECAD code that builds the object in the picture.")) -> Path:
    """Write `out_dir/rendered/*.png` and `out_dir/converted/{train,val,test}.json`; returns out_dir.

    `code_dir`: folder of OpenECAD v2 `.py` files (non-empty ones up to `max_chars` are used as
    templates); without it, the generator's first 40 parts (seed 0) up to `max_chars`, else a
    plate-with-hole template. Deterministic in `seed`.
    """
    import random

    out_dir = Path(out_dir)
    rng = random.Random(seed)
    templates: list[str] = []
    if code_dir is not None and Path(code_dir).is_dir():
        for f in sorted(Path(code_dir).glob("*.py")):
            t = f.read_text(encoding="utf-8")
            if t.strip() and len(t) <= max_chars:
                templates.append(t)
    if code_dir is None:
        templates = [t for t in _generated_code() if len(t) <= max_chars]
    if not templates:
        templates = [_SYNTH_TEMPLATE.format(a="10.", b="6.", c="5.", d="3.", r="1.5", h="2.")]
    (out_dir / "rendered").mkdir(parents=True, exist_ok=True)
    (out_dir / "converted").mkdir(parents=True, exist_ok=True)
    i = 0
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        items = []
        for _ in range(n):
            kind = rng.randrange(len(templates))
            k = round(rng.uniform(0.5, 2.0), 3)  # continuous: numbers differ in every sample
            code = _rescale(templates[kind], k).rstrip("\n")
            rel = f"{i:06d}.png"
            _fake_picture(kind, k, image_size).save(out_dir / "rendered" / rel)
            prompt = prompts[rng.randrange(len(prompts))]
            items.append({"id": f"fake/{i:06d}", "image": rel, "conversations": [
                {"from": "human", "value": f"{IMAGE_TAG}\n{prompt}"},
                {"from": "gpt", "value": f"Of course, here are the codes:\n```python\n{code}\n```"}]})
            i += 1
        (out_dir / "converted" / f"{split}.json").write_text(json.dumps(items, indent=1), encoding="utf-8")
    return out_dir


TINY_MODEL = {"vocab_size": 300, "image_size": 32, "patch_size": 16, "vision_hidden_size": 32, "vision_layers": 1,
              "vision_heads": 2, "hidden_size": 32, "intermediate_size": 64, "layers": 1, "heads": 2,
              "max_position_embeddings": 512}


def write_untrained_model(folder: Path, **manifest) -> Path:
    """An untrained tiny model folder (weights, processor, manifest: OpenECAD v2, grid of four views
    unless `manifest` says otherwise), for tests of the real loading and generation path."""
    from cadvlm.model.manifest import ModelManifest
    from cadvlm.model.tiny import build_tiny_base

    texts = ["SketchPlane0 = add_sketchplane(origin= [0., 0., 0.], normal= [0., 0., 1.], x_axis= [1., 0., 0.])",
             "Write OpenECAD-style CAD code that produces the solid drawn in four views."] * 20
    build_tiny_base(folder, texts, TINY_MODEL, seed=0)
    ModelManifest("full", None, **manifest).write(folder)
    return folder
