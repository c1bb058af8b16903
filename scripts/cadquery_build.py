"""Build CadQuery scripts with real CadQuery and describe each solid (tests only).

Run with the CadQuery environment's interpreter (`.venv-cq/bin/python`, made by
scripts/setup_cadquery.sh): the `cadquery` package needs its own OCP build, which conflicts with
the project's cadquery-ocp-novtk, so this file imports nothing from cadvlm and talks JSON.

This is the one place a CadQuery script is executed, and it must only ever be given scripts that
cadvlm's own writer or its tests wrote: never a model's answer (those are read, never run, by
cadvlm.codec.cadquery_reader). Scripts run in forked worker processes, each with a time limit: a
script that hangs or crashes OpenCascade costs that script (its worker is replaced), not the batch.

Input (stdin): a JSON list of {"id": str, "code": str, "timeout": seconds (optional, else
--timeout)}; the script leaves its result in `r` (or `result`, or passes it to show_object).
Output (stdout): one JSON object per script, in input order:
  {"id", "ok", "error" (null or "Type: message"), "seconds" (running the script),
   "volume" (script units cubed, to a relative 1e-9), "bbox" ([min xyz, max xyz], exact geometry),
   "solids", "faces", "valid" (one or more solids, more than two faces, positive volume, OpenCascade's check passes),
   "step" (path of the exported STEP file, with --step-dir)}

Usage: .venv-cq/bin/python scripts/cadquery_build.py [--step-dir DIR] [--timeout S] [--jobs N] <jobs.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path


# Volumes by adaptive integration to this relative error: OpenCascade's default (fixed-order
# Gauss, what `Shape.Volume()` uses) is off by up to ~1e-5 on parts with cylinders.
VOLUME_EPS = 1e-9


def precise_volume(shape) -> float:
    from OCP.BRepGProp import BRepGProp
    from OCP.GProp import GProp_GProps

    props = GProp_GProps()
    BRepGProp.VolumeProperties_s(shape.wrapped, props, VOLUME_EPS, False, False)
    return props.Mass()


def describe(shape) -> dict:
    """Volume, exact bounding box, counts and validity of a cadquery Shape."""
    from OCP.Bnd import Bnd_Box
    from OCP.BRepBndLib import BRepBndLib
    from OCP.BRepCheck import BRepCheck_Analyzer

    box = Bnd_Box()
    BRepBndLib.AddOptimal_s(shape.wrapped, box, False, False)  # as cadvlm's bounding_box does
    lo, hi = box.CornerMin(), box.CornerMax()
    solids, faces, volume = len(shape.Solids()), len(shape.Faces()), precise_volume(shape)
    valid = solids > 0 and faces > 2 and volume > 0 and BRepCheck_Analyzer(shape.wrapped).IsValid()
    return {"volume": volume, "bbox": [[lo.X(), lo.Y(), lo.Z()], [hi.X(), hi.Y(), hi.Z()]],
            "solids": solids, "faces": faces, "valid": bool(valid)}


def _result_shape(namespace: dict, shown: list):
    """The script's result as cadvlm's reader picks it: what it passed to show_object, else the
    variable `result`, else `r`."""
    import cadquery as cq

    r = shown[-1] if shown else namespace.get("result", namespace.get("r"))
    if not isinstance(r, cq.Workplane):
        raise ValueError(f"the script leaves no cq.Workplane in r (found {type(r).__name__})")
    shapes = [v for v in r.vals() if isinstance(v, cq.Shape)]
    if not shapes:
        raise ValueError("r holds no shape")
    return shapes[0] if len(shapes) == 1 else cq.Compound.makeCompound(shapes)


def run_one(job: dict, step_dir: str | None) -> dict:
    """Execute one script in this process and describe its result (errors become the answer)."""
    out = {"id": job["id"], "ok": False, "error": None, "seconds": None}
    try:
        shown: list = []
        namespace = {"__name__": "__cadquery_script__", "show_object": lambda obj, *a, **k: shown.append(obj)}
        t = time.perf_counter()
        exec(compile(job["code"], f"<{job['id']}>", "exec"), namespace)  # noqa: S102  our own scripts only
        shape = _result_shape(namespace, shown)
        out["seconds"] = time.perf_counter() - t
        out.update(describe(shape))
        if step_dir:
            path = Path(step_dir) / (job["id"].replace("/", "_") + ".step")
            shape.export(str(path))
            out["step"] = str(path)
        out["ok"] = True
    except BaseException as exc:  # noqa: BLE001  any failure is that script's answer
        out["error"] = f"{type(exc).__name__}: {exc}"[:500]
    return out


def _serve(conn, step_dir) -> None:
    """A worker: warm up, say so, then run the jobs the parent sends until it sends None."""
    run_one({"id": "warm-up", "code": WARM_UP}, None)
    conn.send("ready")
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(run_one(job, step_dir))


class _Worker:
    """A forked child that runs one script at a time; killed and replaced when one overruns.
    A script's time starts when it is sent, after the worker's warm-up."""

    def __init__(self, ctx, step_dir):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, step_dir), daemon=True)
        self.proc.start()
        child.close()
        self.started = time.monotonic()
        self.ready = False
        self.job = None  # (index, job, start time) while busy

    def is_ready(self) -> bool:
        """Whether the worker has warmed up (RuntimeError when it died or hung doing so)."""
        if not self.ready and self.conn.poll(0.002):
            try:
                self.ready = self.conn.recv() == "ready"
            except EOFError:
                raise RuntimeError(f"a CadQuery worker died warming up (exit code {self.proc.exitcode})") from None
        if not self.ready and time.monotonic() - self.started > WARM_UP_LIMIT:
            raise RuntimeError(f"a CadQuery worker did not warm up in {WARM_UP_LIMIT} s")
        return self.ready

    def submit(self, index: int, job: dict) -> None:
        self.conn.send(job)
        self.job = (index, job, time.monotonic())

    def poll(self, timeout: float) -> dict | None:
        """The busy job's answer when it has one (a crash or an overrun is an answer too)."""
        index, job, started = self.job
        timeout = float(job.get("timeout", timeout))
        if self.conn.poll(0.002):
            try:
                return self.conn.recv()
            except EOFError:
                pass
        elif self.proc.is_alive() and time.monotonic() - started <= timeout:
            return None
        if self.proc.is_alive():
            self.proc.kill()
            return {"id": job["id"], "ok": False, "error": f"timeout: over {timeout:g} s"}
        return {"id": job["id"], "ok": False, "error": f"crashed (exit code {self.proc.exitcode})"}

    def stop(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.proc.kill()


def run_all(jobs: list[dict], step_dir: str | None, timeout: float, n_jobs: int):
    """Yield each job's answer in input order, from up to n_jobs forked workers."""
    ctx = mp.get_context("fork")
    workers = [_Worker(ctx, step_dir) for _ in range(min(n_jobs, len(jobs)))]
    pending = list(enumerate(jobs))
    done: dict[int, dict] = {}
    nxt = 0
    try:
        while nxt < len(jobs):
            for k, w in enumerate(workers):
                if w.job is None and pending and w.is_ready():
                    w.submit(*pending.pop(0))
                if w.job is None:
                    continue
                answer = w.poll(timeout)
                if answer is None:
                    continue
                done[w.job[0]] = answer
                w.job = None
                if not w.proc.is_alive() or answer["error"] and answer["error"].startswith(("timeout", "crashed")):
                    w.stop()
                    workers[k] = _Worker(ctx, step_dir)
            while nxt in done:
                yield done.pop(nxt)
                nxt += 1
    finally:
        for w in workers:
            w.stop()


# Run once by each worker before its first job: CadQuery's multiple dispatch and OpenCascade's
# first calls are slow (~0.1 s a script until they have run). Not in the parent: a fork after
# OpenCascade has started its thread pool can deadlock the child.
WARM_UP_LIMIT = 300  # seconds
WARM_UP = (
    "import cadquery as cq\n"
    "w0=cq.Workplane('XY',origin=(0,0,0))\n"
    "w1=cq.Workplane(cq.Plane(cq.Vector(0,0,1),cq.Vector(1,0,0),cq.Vector(0,0,1)))\n"
    "r=w0.sketch().segment((0,0),(4,0)).arc((5,1),(4,2)).segment((0,2)).close().assemble()"
    ".push([(1,1)]).circle(0.5,mode='s')"
    ".reset().face(w0.sketch().segment((2,0.5),(3,0.5)).segment((3,1.5)).close().assemble(),mode='s')"
    ".finalize().extrude(1)\n"
    "r=r.union(w1.workplane(offset=-0.5).sketch().push([(1,1)]).circle(1).finalize().extrude(2))\n"
    "r=r.cut(w0.sketch().arc((0,0),(1,1),(2,0)).close().assemble().finalize().extrude(3,both=True))\n"
    "r=r.intersect(w0.sketch().push([(0,0)]).circle(10).finalize().extrude(5))\n"
)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--step-dir", help="write each solid as DIR/<id>.step")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds allowed per script (default 30)")
    p.add_argument("--jobs", type=int, default=1, help="scripts run at once (default 1)")
    args = p.parse_args(argv)
    jobs = json.load(sys.stdin)
    if not isinstance(jobs, list) or not all(isinstance(j, dict) and {"id", "code"} <= set(j) for j in jobs):
        print("stdin must be a JSON list of {id, code}", file=sys.stderr)
        return 2
    if args.step_dir:
        os.makedirs(args.step_dir, exist_ok=True)
    import cadquery  # noqa: F401  imported once here, so each forked worker starts with it

    for answer in run_all(jobs, args.step_dir, args.timeout, max(1, args.jobs)):
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
