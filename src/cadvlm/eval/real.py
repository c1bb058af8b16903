"""Real parts for the evaluate stage: a folder of DeepCAD JSON, drawn as the model's pictures were.

The embedded default trains and tests on synthetic parts; `eval.real_dir` names a folder of real
DeepCAD JSON (e.g. `cad_json/` or a handful of samples) on which the same methods are scored as
well, so a model that only learnt the generator's families shows it. Each file is rendered with
the model folder's own render settings (`ModelManifest.render_params()`, the render stage's
`RenderJob` and `pictures_of_json`): the same pictures the render stage would have made. A
separate-layout model gets one picture per view, as in its training data. Drawing runs in the
time-limited worker pool (a real part's boolean can hang); a file that cannot be drawn is
skipped and counted by reason.

Ids are the files' paths below the folder without `.json` (`0000/00000007` in `cad_json/`).
"""

from __future__ import annotations

from pathlib import Path

from cadvlm.cad.model import CADError


def list_parts(real_dir: Path) -> list[tuple[str, Path]]:
    """[(id, path)] of the *.json files below real_dir, sorted by id."""
    real_dir = Path(real_dir)
    if not real_dir.is_dir():
        raise ValueError(f"eval.real_dir {real_dir} is not a folder")
    return sorted((p.relative_to(real_dir).with_suffix("").as_posix(), p)
                  for p in real_dir.rglob("*.json") if p.is_file())


def draw_task(task: dict) -> dict:
    """Worker: render one JSON part into task['out'] -> {ok, files: [(file, view)]} or {ok: False, reason}."""
    from cadvlm.render.pipeline import RenderJob, pictures_of_json
    from cadvlm.render.sheet import encode_png

    job = RenderJob.from_params(task["params"])
    try:
        pictures, _ = pictures_of_json(task["path"], task["id"], job, nthreads=1)
    except CADError as exc:
        return {"ok": False, "reason": exc.reason}
    views = [None] if job.layout == "grid" else list(job.views)
    files = []
    for (name, picture), view in zip(pictures.items(), views):
        path = Path(task["out"]) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_png(picture, job.png_compress_level))
        files.append((str(path), view, (int(picture.shape[1]), int(picture.shape[0]))))
    return {"ok": True, "files": files}


def real_records(real_dir: Path, manifest, out_dir: Path, pool) -> tuple[list, list[str], dict]:
    """(records, truth paths, skipped by reason): one record per picture, prompted as in training."""
    from cadvlm.data.conversations import Record

    parts = list_parts(real_dir)
    params = manifest.render_params()
    tasks = [{"id": i, "path": str(p), "params": params, "out": str(out_dir)} for i, p in parts]
    results: list = [None] * len(tasks)
    for out in (pool.run(draw_task, tasks) if tasks else ()):
        if out.status == "ok":
            results[out.index] = out.value
        else:
            results[out.index] = {"ok": False, "reason": out.status if out.status != "error" else "render_error"}
    records, truths, skipped = [], [], {}
    for (mid, path), res in zip(parts, results):
        if not res["ok"]:
            skipped[res["reason"]] = skipped.get(res["reason"], 0) + 1
            continue
        for file, view, size in res["files"]:
            records.append(Record(id=mid if view is None else f"{mid}_{view}", image=Path(file),
                                  prompt=manifest.prompt(view), answer="", image_size=size, model_id=mid,
                                  view=view or "grid"))
            truths.append(str(path))
    return records, truths, dict(sorted(skipped.items()))
