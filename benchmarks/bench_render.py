"""Render stage throughput and the cost of a rerun with nothing changed. Prints figures only.

    python benchmarks/bench_render.py [--models 1000] [--distinct 200] [--workers 2]
                                      [--json-dir DIR] [--workdir DIR]

Models: `--distinct` synthetic parts from the project's generator (or the JSON files of
--json-dir), repeated under new ids up to `--models` (repeats cost the same as new parts: each
is built and rendered again). Default render settings (= params.yaml).

Figures:
1. End to end (read + solid build + tessellation + 4 views at 512x512 + grid + PNG write) with
   the stage's worker processes: models/s over wall time, and the time split summed over
   workers (build, tessellate, ray cast, shading/outlines, encode+write), ray-casting share.
   Also CPU seconds per model and the rate that gives on idle cores (cores / CPU per model):
   on a shared machine the wall figure depends on what else runs, so the load is printed too.
2. Rerun with nothing changed: a fresh `python` process (as DVC runs the stage) over the same
   models: models rendered (must be 0) and seconds.
3. Single-process profile of the renderer on the first 50 models: ms per model per phase.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RERUN = """
import json, sys, time
t0 = time.perf_counter()
from cadvlm.render.pipeline import RenderJob
from cadvlm.render.stage import run_render
m = run_render(sys.argv[1], sys.argv[2], RenderJob(), workers=2, progress=False)
print(json.dumps({"rendered": m["this_run"]["rendered"], "reused": m["this_run"]["reused"],
                  "inside_s": time.perf_counter() - t0}))
"""


def load() -> str:
    try:
        return "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        return "load average n/a"


def make_extracted(root: Path, sources: list[Path], n: int) -> Path:
    ext = root / "extracted"
    (ext / "json").mkdir(parents=True)
    ids = []
    for i in range(n):
        model_id = f"{i // 1000:04d}/b{i:07d}"
        dst = ext / "json" / f"{model_id}.json"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sources[i % len(sources)], dst)
        ids.append(model_id)
    (ext / "split.json").write_text(json.dumps({"train": ids, "validation": [], "test": []}))
    return ext


def profile(sources: list[Path], n: int) -> None:
    import cadvlm.render.raymesh as raymesh
    from cadvlm.cad.model import CADError
    from cadvlm.render.pipeline import RenderJob, mesh_of, pictures_of_mesh
    from cadvlm.render.sheet import encode_png

    raymesh._clock = time.process_time  # CPU time: robust to other processes on the machine
    job = RenderJob()
    acc, done = {}, 0
    for path in sources[:n]:
        t = {}
        try:
            c0 = time.process_time()
            v, tri = mesh_of(path, path.stem, job, t)
            c1 = time.process_time()
            pics, _ = pictures_of_mesh(v, tri, job, path.stem, nthreads=1, timings=t)
            c2 = time.process_time()
            for img in pics.values():
                encode_png(img, job.png_compress_level)
            t["encode"] = time.process_time() - c2
            t["build+tessellate"] = c1 - c0
            t.pop("build"), t.pop("tessellate")
        except CADError:
            continue
        done += 1
        for k, v_ in t.items():
            acc[k] = acc.get(k, 0.0) + v_
    total = sum(acc.values())
    parts = ", ".join(f"{k} {1000 * v / done:.1f}" for k, v in sorted(acc.items()))
    print(f"single process, CPU ms per model over {done} models: {parts}; total {1000 * total / done:.1f}"
          f" -> {done / total:.1f} models/s per core")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=1000)
    ap.add_argument("--distinct", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json-dir", type=Path, help="DeepCAD JSON files to use instead of synthetic parts")
    ap.add_argument("--workdir", type=Path, help="keep data here (default: a temp folder, removed)")
    args = ap.parse_args()

    from cadvlm.render.pipeline import RenderJob
    from cadvlm.render.stage import run_render

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_render_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.json_dir:
            sources = sorted(args.json_dir.rglob("*.json"))[: args.distinct]
        else:
            from cadvlm.synth import write_dataset

            src = work / "synthetic"
            if len(list(src.glob("*.json"))) != args.distinct:
                t0 = time.perf_counter()
                write_dataset(src, args.distinct, seed=0, workers=args.workers, progress=False)
                print(f"(generated {args.distinct} synthetic parts in {time.perf_counter() - t0:.1f} s)")
            sources = sorted(src.glob("*.json"))
        shutil.rmtree(work / "run", ignore_errors=True)  # a fresh run: everything is rendered
        ext = make_extracted(work / "run", sources, args.models)
        out = work / "run" / "rendered"
        print(f"{args.models} models ({len(sources)} distinct), workers={args.workers}, "
              f"cores={os.cpu_count()}; {load()}")

        m = run_render(ext, out, RenderJob(), workers=args.workers, progress=False)
        run = m["this_run"]
        split = run["time_split_s"]
        summed = sum(split.values())
        n = run["rendered"] + run["failed"]
        print(f"end to end: {run['rendered']} rendered, {run['failed']} failed {m['failed_by_reason']} in "
              f"{run['render_seconds']:.1f} s -> {run['models_per_s']:.1f} models/s (wall); {load()}")
        print("time split (s summed over workers): " + ", ".join(f"{k} {v:.1f} ({100 * v / summed:.0f}%)"
                                                                 for k, v in split.items()))
        print(f"ray casting share: {100 * split['raycast'] / summed:.0f}% of all, "
              f"{100 * split['raycast'] / (split['raycast'] + split['shading']):.0f}% of rendering")
        cpu = run["cpu_seconds"] / n
        print(f"CPU per model {1000 * cpu:.0f} ms -> {args.workers / cpu:.1f} models/s on {args.workers} idle cores")
        sizes = [p.stat().st_size for p in out.rglob("*.png")]
        print(f"PNG: {len(sizes)} files, mean {sum(sizes) / len(sizes) / 1024:.1f} KiB")

        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", RERUN, str(ext), str(out)], capture_output=True, text=True,
                           check=True)
        wall = time.perf_counter() - t0
        res = json.loads(r.stdout.strip().splitlines()[-1])
        print(f"rerun, nothing changed: {res['rendered']} rendered, {res['reused']} reused; "
              f"{wall:.2f} s for the whole process ({res['inside_s']:.2f} s after start-up)")

        profile(sources, 50)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
