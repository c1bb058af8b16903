"""What the RL stage shows the model: pictures, each with the truth its reward compares against.

Three sources (`rl.prompts`), each a list of rows in the shape TRL's GRPOTrainer reads: a
conversational `prompt` whose image block TRL fills from `image` (a PNG path, decoded as RGB when
a batch needs it, as evaluate's `load_image` does: a thousand 1024 px sheets held in memory would
take gigabytes), plus the columns the reward takes (`truth`: the answer the model is taught to
write, or None; `view`: the view a separate-layout picture shows):
- `train`: the training split's pictures and answers (the default);
- `unlabeled`: every PNG of `rl.unlabeled_dir`, with no truth, for the `views` reward (renders of
  real parts, say, that have no code);
- `fresh`: `rl.fresh_parts` new parts from the generator (a seed stream of their own, so none is
  a training or test part), built and drawn now with the model's own render settings: an
  unlimited supply of distinct pictures, each with its truth.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from cadvlm.data.conversations import load_conversations, to_messages

FRESH_SEED_OFFSET = 1_000_003  # fresh parts draw from base.seed + this: a stream the data stages never use


def _row(prompt: str, image: Path, truth: str | None, view: str | None) -> dict:
    return {"prompt": to_messages(prompt), "image": str(image), "truth": truth, "view": view}


def to_dataset(rows: list[dict]):
    """A `datasets.Dataset` whose `image` column opens each picture lazily, as RGB."""
    from datasets import Dataset, Image as ImageFeature

    columns = {k: [r[k] for r in rows] for k in ("prompt", "image", "truth", "view")}
    return Dataset.from_dict(columns).cast_column("image", ImageFeature(mode="RGB"))


def training_rows(converted_dir: Path, image_root: Path, limit: int = 0) -> list[dict]:
    """The training split's pictures with their answers (the first `limit`, 0 = all)."""
    records = load_conversations(Path(converted_dir) / "train.json", image_root)
    records = records[:limit] if limit else records
    return [_row(r.prompt, r.image, r.answer, None if r.view in (None, "grid") else r.view) for r in records]


def unlabeled_rows(folder: Path, manifest) -> list[dict]:
    """Every PNG under `folder` (sorted), prompted as the model was trained; no truth."""
    paths = sorted(Path(folder).rglob("*.png"))
    if not paths:
        raise ValueError(f"rl.unlabeled_dir {folder} holds no PNG picture")
    return [_row(manifest.prompt(), p, None, None) for p in paths]


def _fresh_part(task: dict) -> dict:
    """Worker: one generated part drawn as the model's pictures are, with its answer."""
    import json

    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.render.pipeline import pictures_of_json
    from cadvlm.synth.generate import model_json_text

    data = json.loads(model_json_text(task["index"], task["seed"]))  # what the synthesize stage would write
    pictures, _ = pictures_of_json(data, f"fresh{task['index']}", task["job"], nthreads=1)
    model = read_model(data, f"fresh{task['index']}")
    return {"answer": task["code"].answer(model), "pictures": list(pictures.values())}


def fresh_rows(n: int, seed: int, manifest, pool, folder: Path) -> list[dict]:
    """n generated parts (indices 0..n-1 of the fresh stream), drawn in the sandbox pool into `folder`;
    failures skipped."""
    from cadvlm.render.pipeline import RenderJob

    if manifest.layout not in ("grid", "separate"):
        raise ValueError(f"rl.fresh_parts needs rendered pictures; this model reads {manifest.layout} pictures")
    job = RenderJob.from_params(manifest.render_params())
    tasks = [{"index": i, "seed": seed + FRESH_SEED_OFFSET, "job": job, "code": manifest.code} for i in range(n)]
    rows: list[dict | None] = [None] * n
    for out in pool.run(_fresh_part, tasks):
        if out.status != "ok":
            continue  # a part that failed to build or draw in time is left out
        view = manifest.views[0] if manifest.layout == "separate" else None  # separate: the first view
        path = Path(folder) / f"fresh{out.index:06d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(out.value["pictures"][0]).save(path)
        rows[out.index] = _row(manifest.prompt(view), path, out.value["answer"], view)
    return [r for r in rows if r is not None]
