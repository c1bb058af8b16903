"""The render stage: every model of the extracted subset to PNG views, incrementally.

Input: data/extracted/{json/<id>.json, split.json}. Output folder (data/rendered/):
- images/<id>.png (grid layout) or images/<id>_<view>.png (separate layout);
- index.json: {id: [picture paths relative to the output folder]} for the models that rendered;
- rendering_metadata.json: settings, cameras, grid arrangement, framing rule (no per-run data);
- render_state.json: per model the key it was rendered with, its files and framing, or the
  reason it failed. This is what makes the stage incremental.

A model's key is a hash of its JSON bytes and the render job (params + RENDER_VERSION), so a
model whose file and params did not change is neither rebuilt nor rendered (a failure is
remembered the same way and not retried); models that left the subset, and any file the
index does not name (a changed layout, a temp file of a killed run), are deleted. The DVC
output is `persist: true`, so earlier pictures are there to reuse.

Models render in worker processes (`cadvlm.sandbox.TimeLimitedPool`, as evaluation uses, or on
a Ray cluster: `cadvlm.parallel`). A model that raises is counted by reason and skipped; a model
that runs past the per-model time limit (a boolean or a tessellation that never ends) or kills
its worker (a crash inside OpenCascade) costs only itself: the worker is replaced, the model is
counted as `timeout` or `worker_crashed` and remembered under its key like any failure. A worker
gets the model's JSON bytes with its task and returns the PNG bytes; only this process touches
the folders, so a worker may run on a machine that has neither.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import Counter
from pathlib import Path

from cadvlm.parallel import file_payload, make_pool
from cadvlm.pictures import PICTURES_FILE
from cadvlm.render.pipeline import RenderJob
from cadvlm.render.sheet import TMP_PREFIX, files_below, write_atomic, write_json_atomic

STATE = "render_state.json"
INDEX = "index.json"
METADATA = "rendering_metadata.json"
SPLITS = ("train", "validation", "test")
PHASES = ("build", "tessellate", "raycast", "shading", "encode")
FLUSH_SECONDS = 10.0


def subset_ids(extracted: Path) -> list[str]:
    """Ids of the subset: the union of the split lists, sorted."""
    split = json.loads((extracted / "split.json").read_text())
    ids = set()
    for name in SPLITS:
        ids.update(split.get(name) or [])
    return sorted(ids)


def safe_id(model_id) -> bool:
    """An id that is a harmless relative path (ids may hold '/': 'XXXX/XXXXXXXX')."""
    if not isinstance(model_id, str) or not model_id or "\\" in model_id or "\0" in model_id:
        return False
    parts = model_id.split("/")  # not PurePosixPath: it silently drops "." and "" parts
    return all(p not in ("", ".", "..") and not p.startswith(TMP_PREFIX) for p in parts)


def job_digest(job: RenderJob) -> str:
    return hashlib.sha256(json.dumps(job.to_json(), sort_keys=True).encode()).hexdigest()


def model_key(digest: str, data: bytes) -> str:
    return hashlib.sha256(digest.encode() + b"\0" + data).hexdigest()[:32]


# ----------------------------------------------------------------------------- workers

_W: dict = {}


def _init_worker(job: RenderJob, nthreads: int) -> None:
    _W.update(job=job, nthreads=nthreads, digest=job_digest(job))


def _render_one(task) -> dict:
    """Render one model in a worker: {'id', 'key', 'files' and 'pictures' (name -> PNG bytes, for
    the stage to write) | 'error', 'message', 'timings'}. task = (id, JSON bytes or path, key)."""
    model_id, source, _ = task
    job, timings = _W["job"], {}
    cpu0 = time.process_time()
    try:
        try:
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
        except OSError as exc:
            return {"id": model_id, "key": None, "error": "missing_json", "message": f"{model_id}: {exc}",
                    "timings": timings}
        # The key of the bytes actually rendered (the file may change while the stage runs).
        key = model_key(_W["digest"], data)
        return _render_checked(model_id, key, data, job, timings)
    finally:
        timings["cpu"] = time.process_time() - cpu0


def _render_checked(model_id, key, data, job, timings) -> dict:
    from cadvlm.cad.model import CADError
    from cadvlm.render.pipeline import pictures_of_json
    from cadvlm.render.sheet import encode_png

    try:
        try:
            model = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CADError("malformed_json", str(exc), model_id) from None
        if not isinstance(model, dict):
            raise CADError("malformed_json", "top level is not a JSON object", model_id)
        pictures, framing = pictures_of_json(model, model_id, job, _W["nthreads"], timings)
        t0 = time.perf_counter()
        blobs = {name: encode_png(img, job.png_compress_level) for name, img in pictures.items()}
        timings["encode"] = time.perf_counter() - t0
        return {"id": model_id, "key": key, "files": list(blobs), "pictures": blobs, "framing": framing.to_json(),
                "timings": timings}
    except CADError as exc:
        return {"id": model_id, "key": key, "error": exc.reason, "message": str(exc), "timings": timings}
    except Exception as exc:  # a bug or an unexpected library error: counted, never fatal
        return {"id": model_id, "key": key, "error": f"unexpected_{type(exc).__name__}",
                "message": f"{model_id}: {type(exc).__name__}: {exc}", "timings": timings}


def _in_worker(arg) -> dict:
    """Worker entry: (fn, task, job); the job is installed once per worker process."""
    fn, task, job = arg
    if _W.get("job") != job:
        _init_worker(job, 1)
    return fn(task)


# Imported by each worker before it takes a model, so the time limit counts rendering only.
WARMUP = ("open3d", "cadvlm.geometry.solid", "cadvlm.geometry.mesh", "cadvlm.render.views", "cadvlm.render.pipeline")


def _run_tasks(tasks, workers: int, job: RenderJob, out: Path, on_result, fn=None, timeout_s: float = 120.0,
               parallel=None) -> None:
    """Run fn (default _render_one) on tasks (id, JSON path, key) in time-limited workers (here, or
    on Ray by `parallel`), writing the pictures each returns under `out` and calling
    on_result(result) as each finishes; a model over the limit or whose worker dies becomes a
    failure result. A task's JSON is read only when a worker is free for it."""
    fn = fn or _render_one
    lost = {"timeout": "timeout", "crash": "worker_crashed"}
    with make_pool(workers, timeout_s, WARMUP, parallel) as pool:
        for o in pool.run(_in_worker, ((fn, (m, file_payload(path), key), job) for m, path, key in tasks)):
            model_id, _, key = tasks[o.index]
            if o.status == "ok":
                for name, blob in o.value.pop("pictures", {}).items():
                    write_atomic(out / name, blob)
                on_result(o.value)
            else:  # fn returns its own errors, so "error" here is a bug in the worker plumbing
                res = {"id": model_id, "key": key, "error": lost.get(o.status, "worker_error"),
                       "message": f"{model_id}: {o.error}", "timings": {}}
                if o.status == "timeout":
                    res["limit_s"] = timeout_s  # a later run with a longer limit tries it again
                on_result(res)


# ----------------------------------------------------------------------------- stage

def _load_state(out: Path) -> dict:
    try:
        state = json.loads((out / STATE).read_text())
        return state.get("models", {}) if state.get("version") == 1 else {}
    except (OSError, ValueError, AttributeError):
        return {}




def metadata(job: RenderJob) -> dict:
    from cadvlm.render.sheet import GRID_LAYOUT
    from cadvlm.render.views import CAMERAS

    return {
        "renderer": "cadvlm.render: orthographic ray casting (open3d RaycastingScene / Embree), CPU",
        "settings": job.to_json(),
        "image": {"format": "PNG", "mode": "L (8-bit grey)", "background": 255,
                  "view_size": job.settings.size,
                  "grid_size": [2 * job.settings.size, 2 * job.settings.size] if job.layout == "grid" else None},
        "layout": job.layout,
        "grid": [list(r) for r in GRID_LAYOUT] if job.layout == "grid" else None,
        "grid_note": "third-angle projection: top above front, right beside front, iso in the free cell",
        "cameras": {v: CAMERAS[v].to_json() for v in job.views},
        "frame": "model's global frame, Z up; a view looks along `direction`, picture x = `right`, "
                 "picture y = `up` (image rows run down)",
        "framing": "per model (render_state.json): centre = bounding-box centre of the mesh; "
                   "half_width (world units from picture centre to side) = largest half-extent of the "
                   "mesh over the listed views x (1 + margin); one scale for all views",
        "pixel_to_world": "x = centre.right + (col + 0.5 - size/2) * 2*half_width/size, "
                          "y = centre.up + (size/2 - row - 0.5) * 2*half_width/size",
    }


def run_render(extracted, out, job: RenderJob, workers: int = 2, metrics_path=None,
               progress: bool = True, timeout_s: float = 120.0, parallel=None) -> dict:
    """Render the subset in `extracted` into `out`; returns (and writes) the metrics.
    `timeout_s` is the limit per model (build + tessellate + views + PNG); `parallel` (a
    cadvlm.parallel.ParallelConfig) says where the workers run. A subset whose pictures came with
    the dataset (an OpenECAD set: pictures.json) is imported, not drawn (render.imported)."""
    t_start = time.perf_counter()
    extracted, out = Path(extracted), Path(out)
    if (extracted / PICTURES_FILE).is_file():
        from cadvlm.render.imported import import_pictures

        return import_pictures(extracted, out, metrics_path)
    out.mkdir(parents=True, exist_ok=True)
    images = out / "images"
    digest = job_digest(job)
    old = _load_state(out)
    existing = files_below(images, out)

    ids = subset_ids(extracted)
    state: dict = {}
    tasks, failed_now = [], Counter()
    reused = 0
    for model_id in ids:
        if not safe_id(model_id):
            state[str(model_id)] = {"key": None, "error": "bad_id", "message": f"unsafe model id {model_id!r}"}
            continue
        try:
            data = (extracted / "json" / f"{model_id}.json").read_bytes()
        except OSError as exc:
            state[model_id] = {"key": None, "error": "missing_json", "message": f"{model_id}: {exc}"}
            continue
        key = model_key(digest, data)
        prev = old.get(model_id)
        retry = prev and prev.get("error") == "timeout" and prev.get("limit_s", 0) < timeout_s
        if prev and prev.get("key") == key and not retry and (
                "error" in prev or all(f in existing for f in prev["files"])):
            state[model_id] = prev
            reused += 1
        else:
            # Read again when its task is sent: holding every model's bytes here would not scale.
            tasks.append((model_id, str(extracted / "json" / f"{model_id}.json"), key))

    times = Counter()
    done_ok = 0
    last_flush = [time.perf_counter()]
    bar = None
    if progress and tasks:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), desc="render", unit="model", mininterval=1.0, smoothing=0.05)

    def on_result(res: dict) -> None:
        nonlocal done_ok
        times.update(res.pop("timings", {}))
        model_id = res.pop("id")
        state[model_id] = res
        if "error" in res:
            failed_now[res["error"]] += 1
        else:
            done_ok += 1
        if bar is not None:
            bar.update(1)
        if time.perf_counter() - last_flush[0] > FLUSH_SECONDS:
            # Progress survives a killed run: rendered models are not rendered again.
            write_json_atomic(out / STATE, {"version": 1, "models": {**old, **state}})
            last_flush[0] = time.perf_counter()

    t_render = time.perf_counter()
    if tasks:
        nproc = workers if workers > 0 else (os.cpu_count() or 1)
        _run_tasks(tasks, min(nproc, len(tasks)), job, out, on_result, timeout_s=timeout_s, parallel=parallel)
    render_seconds = time.perf_counter() - t_render
    if bar is not None:
        bar.close()

    # Keep exactly the files the index names; everything else under images/ goes.
    state = {k: state[k] for k in sorted(state)}
    index = {k: v["files"] for k, v in state.items() if "files" in v}
    keep = {f for files in index.values() for f in files}
    removed = 0
    for rel in sorted(files_below(images, out) - keep):
        os.unlink(out / rel)
        removed += 1
    for root, dirs, files in os.walk(images, topdown=False):
        if not dirs and not files and Path(root) != images:
            try:
                os.rmdir(root)
            except OSError:
                pass
    write_json_atomic(out / INDEX, index)
    write_json_atomic(out / METADATA, metadata(job))
    write_json_atomic(out / STATE, {"version": 1, "models": state})

    failures = Counter(v["error"] for v in state.values() if "error" in v)
    phase = {p: round(times.get(p, 0.0), 3) for p in PHASES}
    cpu_total = sum(phase.values())
    metrics = {
        "models": len(ids),
        "rendered": len(index),
        "failed": sum(failures.values()),
        "failed_by_reason": dict(sorted(failures.items())),
        "this_run": {
            "rendered": done_ok,
            "failed": sum(failed_now.values()),
            "reused": reused,
            "removed_files": removed,
            "workers": workers,
            "seconds": round(time.perf_counter() - t_start, 3),
            "render_seconds": round(render_seconds, 3),
            "models_per_s": round(len(tasks) / render_seconds, 2) if tasks and render_seconds > 0 else None,
            "time_split_s": phase,
            "cpu_seconds": round(times.get("cpu", 0.0), 3),
            "raycast_share": round(phase["raycast"] / cpu_total, 3) if cpu_total else None,
        },
    }
    if metrics_path is not None:
        Path(metrics_path).parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(metrics_path), metrics)
    return metrics
