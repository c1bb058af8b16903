"""Building answers into parts off the event loop, in time-limited worker processes.

Why threads that each own a one-process `TimeLimitedPool`: the pool is synchronous (its `run`
blocks until the task is done, killed or crashed) and not meant to be shared between threads.
With one pool per thread, N builds run at once, a build past its limit kills only its own worker,
and the event loop just awaits a future. Idle workers stay up between requests, so the price of
starting an interpreter and importing OpenCascade is paid once per worker, not per request.

The worker function is `cadvlm.predict.build_outputs` (parse, build, STEP, STL, views: the one
path predict uses) plus the glTF file for the page's 3-D viewer, made from the written STEP so it
shows exactly the exported part. `choose` runs render-and-compare among candidate answers in the
same workers (requests with candidates=nearest).
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

WARMUP = ("cadvlm.serve.builds", "cadvlm.predict", "cadvlm.rebuild", "cadvlm.geometry.solid",
          "cadvlm.geometry.mesh", "cadvlm.render.views", "cadvlm.render.sheet", "cadvlm.serve.glb",
          "cadvlm.render_compare", "cadvlm.render.pipeline")


def build_task(task: dict) -> dict:
    """Runs in a worker: build_outputs, then part.glb for the viewer. The answer's result dict."""
    from cadvlm.geometry.mesh import read_step
    from cadvlm.predict import build_outputs
    from cadvlm.serve.glb import export_glb

    result = build_outputs(task)
    if result.get("ok"):
        try:
            export_glb(read_step(Path(task["out_dir"]) / "part.step"), Path(task["out_dir"]) / "part.glb")
        except Exception as exc:  # the part and its files exist; only the viewer file is missing
            result["glb_error"] = f"{type(exc).__name__}: {exc}"
    return result


_CUBE = ("SketchPlane0 = add_sketchplane(origin= [0., 0., 0.], normal= [0., 0., 1.], x_axis= [1., 0., 0.])\n"
         "Loops0 = []\nCurves0_0 = []\nCircle0_0_0 = add_circle(center= [0., 0.], radius= 5.)\n"
         "Loop0_0 = add_loop(Curves0_0)\nProfile0 = add_profile(Loops0)\n"
         "Sketch0 = add_sketch(sketch_plane= SketchPlane0, profile= Profile0)\n"
         "Extrude0 = add_extrude(sketch= Sketch0, operation= 0, type= 0, extent_one= 5., extent_two= 0.)\n")


def warm_build(size: int) -> bool:
    """Build, export and draw a small disc once, in a scratch folder: the first call of each step
    (ray-casting scene, STEP writer...) costs ~0.6 s, paid here rather than by the first request."""
    import tempfile

    from cadvlm.codec.format import CodeFormat

    with tempfile.TemporaryDirectory(prefix="cadvlm-warm-") as d:
        return bool(build_task({"answer": _CUBE, "out_dir": d, "size": int(size), "code": CodeFormat(),
                                "longest_mm": 10.0}).get("ok"))


def outcome_result(outcome, timeout: float) -> dict:
    """A pool Outcome as build_outputs' result dict, with the reason named as evaluate names it."""
    if outcome.status == "ok":
        return outcome.value
    if outcome.status == "timeout":
        return {"ok": False, "reason": "timeout", "detail": f"building the part took over {timeout:g} s"}
    if outcome.status == "crash":
        return {"ok": False, "reason": "crash", "detail": outcome.error}
    return {"ok": False, "reason": "build_error", "detail": outcome.error}


class BuildRunner:
    """`workers` build processes behind an async `build(task)`."""

    def __init__(self, workers: int, timeout: float, fn=build_task, warmup=WARMUP):
        from cadvlm.sandbox import TimeLimitedPool

        self.workers = max(1, int(workers))
        self.timeout = float(timeout)
        self.fn = fn
        self._make_pool = lambda: TimeLimitedPool(1, self.timeout, warmup=warmup)
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="cadvlm-build")
        self._local = threading.local()
        self._pools: list = []
        self._lock = threading.Lock()
        self.busy = 0
        self.warmed = threading.Event()  # set once every worker has started (after warm())
        self._warm_left = self.workers

    def _pool(self):
        pool = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = self._make_pool()
            with self._lock:
                self._pools.append(pool)
        return pool

    def _run(self, task: dict) -> dict:
        outcome = next(iter(self._pool().run(self.fn, [task])))
        return outcome_result(outcome, self.timeout)

    def _choose(self, picture, answers: list[str], code, render_params: dict, view: str | None):
        from cadvlm.render_compare import best_of

        return best_of(self._pool(), picture, answers, code, render_params, view)

    async def _on_thread(self, fn, *args):
        self.busy += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        finally:
            self.busy -= 1

    async def build(self, task: dict) -> dict:
        return await self._on_thread(self._run, task)

    async def choose(self, picture, answers: list[str], code, render_params: dict, view: str | None = None):
        """Render-and-compare (`cadvlm.render_compare.best_of`) in one build worker: each answer is
        rebuilt and drawn there under the build time limit, the input's masks are cut on a build
        thread; the event loop only awaits. The `Choice`."""
        return await self._on_thread(self._choose, picture, answers, code, render_params, view)

    def warm(self, size: int = 128) -> None:
        """Start every worker now (in the background), so the first requests do not wait for imports.

        The barrier holds each warm-up task on its own thread: every thread gets its own pool.
        """
        barrier = threading.Barrier(self.workers)

        def one():
            try:
                barrier.wait(timeout=60)
                list(self._pool().run(warm_build, [size]))
            except Exception:  # noqa: BLE001 - a worker that cannot start fails its first build, visibly
                pass
            with self._lock:
                self._warm_left -= 1
                if self._warm_left == 0:
                    self.warmed.set()

        for _ in range(self.workers):
            self._executor.submit(one)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for pool in self._pools:
                pool.close()
            self._pools = []
