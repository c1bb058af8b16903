"""The FastAPI app: lifecycle (model, build workers, results sweeper) and the inference routes.

`create_app(config, generate_fn=None)` reads the model folder's manifest at once (a folder that is
not a trained model fails here, before the server listens), then at startup starts the build
workers and loads the model in a thread, so /healthz answers at once and /readyz turns 200 when
the model is in memory. Tests pass `generate_fn` (pictures, prompt, budget, time limit -> answers)
instead of a model; everything else runs as in production.

Every way a request can be wrong has its status code and a sentence: 413 body over the limit
(`limits`), 422 for a missing or malformed field or an unusable picture (`pictures`), or for
candidates=nearest with a model folder that carries no training pictures (`inference`), 503 with
Retry-After for a full queue or a model still loading, 404 for a result that is unknown or past
its TTL. A model writing bad code is not an error: 200 with status != "ok".
"""

from __future__ import annotations

import asyncio
import logging
import math
from contextlib import asynccontextmanager

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response

from cadvlm.model.manifest import ModelManifest
from cadvlm.model.retrieval import RetrievalBank, RetrievalError, bank_for_compare
from cadvlm.serve.batching import Batcher, GenerationFailed, QueueFull, model_generate_fn
from cadvlm.serve.builds import BuildRunner
from cadvlm.serve.config import ServeConfig
from cadvlm.serve.inference import Predictor
from cadvlm.serve.jobs import Job, JobItem, JobRunner, file_loader, items_from_zip, save_upload
from cadvlm.serve.limits import BodyLimitMiddleware
from cadvlm.serve.metrics import MetricsMiddleware, ServeMetrics
from cadvlm.serve.pictures import BadInput, model_input, open_picture
from cadvlm.serve.store import FILES, MEDIA, ResultStore

log = logging.getLogger("cadvlm.serve")
VIEW_FIELDS = ("front", "top", "right", "iso")
CANDIDATES_HELP = ("model: build the greedy answer; nearest: also try the answers of the closest training "
                   "pictures and build the one whose part looks most like the input (default: the server's)")
INLINE = (".png", ".txt", ".py", ".json")


def _error(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _check_options(cfg: ServeConfig, max_new_tokens, longest_mm) -> tuple[int, float]:
    budget = cfg.max_new_tokens if max_new_tokens is None else max_new_tokens
    if not 1 <= budget <= cfg.max_new_tokens_limit:
        raise BadInput(f"max_new_tokens: must be between 1 and {cfg.max_new_tokens_limit}, not {budget}")
    size = 100.0 if longest_mm is None else float(longest_mm)
    if not (math.isfinite(size) and 0 < size <= 100_000):
        raise BadInput(f"longest_mm: must be a length in mm above 0 and at most 100000, not {longest_mm}")
    return int(budget), size


def _training_pictures(cfg: ServeConfig, manifest: ModelManifest) -> tuple[RetrievalBank | None, str]:
    """(the model folder's bank or None, why there is none). A server whose default is candidates=nearest
    refuses to start without one (RetrievalError), rather than refusing every request."""
    try:
        return bank_for_compare(cfg.model_dir, manifest), ""
    except RetrievalError as exc:
        if cfg.candidates == "nearest":
            raise
        return None, str(exc)


def create_app(config: ServeConfig, generate_fn=None, manifest: ModelManifest | None = None) -> FastAPI:
    cfg = config
    manifest = manifest or ModelManifest.read(cfg.model_dir)
    bank, bank_error = _training_pictures(cfg, manifest)
    metrics = ServeMetrics()
    state: dict = {"load_error": None}

    def on_batch(size, seconds):
        metrics.observe_batch(size, seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        store = ResultStore(cfg.results_dir, cfg.ttl_s)
        builds = BuildRunner(cfg.workers, cfg.build_timeout_s)
        builds.warm(manifest.view_size)
        predictor = Predictor(manifest, store, builds, metrics, cfg.generate_timeout_s, bank, bank_error,
                              cfg.candidates, cfg.nearest_k)
        jobs = JobRunner(predictor, store, cfg)
        app.state.store, app.state.builds, app.state.predictor, app.state.jobs = store, builds, predictor, jobs
        metrics.bind(lambda: predictor.batcher.depth if predictor.batcher else 0, lambda: builds.busy,
                     lambda: len(store), lambda: store.removed)

        def make_batcher(fn):
            b = Batcher(fn, cfg.max_batch, cfg.max_wait_ms, cfg.queue_max, cfg.generate_timeout_s, on_batch)
            b.start()
            predictor.batcher = b
            metrics.ready.set(1)

        async def load_model():
            try:
                from cadvlm.decode.generate import set_cpu_threads
                from cadvlm.model.load import load_trained

                model, processor = await asyncio.to_thread(load_trained, cfg.model_dir, cfg.device)
                set_cpu_threads(model, cfg.cpu_threads)
                make_batcher(model_generate_fn(model, processor, manifest.code))
                log.info("model loaded from %s", cfg.model_dir)
            except Exception as exc:  # noqa: BLE001 - reported by /readyz, the server stays up
                state["load_error"] = f"cannot load the model from {cfg.model_dir}: {type(exc).__name__}: {exc}"
                log.error(state["load_error"])

        if generate_fn is not None:
            make_batcher(generate_fn)
            loader = None
        else:
            loader = asyncio.get_running_loop().create_task(load_model())

        async def sweeper():
            while True:
                await asyncio.sleep(cfg.sweep_interval())
                await asyncio.to_thread(store.sweep)
                jobs.prune()

        sweep_task = asyncio.get_running_loop().create_task(sweeper())
        try:
            yield
        finally:
            sweep_task.cancel()
            if loader is not None:
                loader.cancel()
            jobs.close()
            if predictor.batcher is not None:
                await predictor.batcher.stop()
            await asyncio.to_thread(builds.close)
            store.close()

    app = FastAPI(title="cadvlm", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Pictures of a part -> CAD code -> STEP / STL / glTF, and the DVC experiments "
                              "behind the model.")
    app.state.config, app.state.manifest, app.state.metrics = cfg, manifest, metrics
    app.add_middleware(BodyLimitMiddleware, limit=cfg.max_body_bytes,
                       overrides={"/v1/batch": cfg.max_batch_body_bytes})
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.exception_handler(BadInput)
    async def _bad_input(request, exc: BadInput):
        return _error(exc.status, str(exc))

    @app.exception_handler(QueueFull)
    async def _queue_full(request, exc: QueueFull):
        return _error(503, f"the server is busy ({exc}); retry shortly", {"Retry-After": str(cfg.retry_after_s)})

    @app.exception_handler(GenerationFailed)
    async def _generation_failed(request, exc: GenerationFailed):
        return _error(500, f"generation failed: {exc}")

    def predictor_of(request: Request) -> Predictor:
        p: Predictor = request.app.state.predictor
        if not p.ready:
            why = state["load_error"] or "the model is still loading"
            raise BadInput(f"not ready: {why}", 503)
        return p

    # ------------------------------------------------------------------ health
    @app.get("/healthz", tags=["health"], summary="the process is up")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="the model is loaded and requests are served")
    async def readyz(request: Request):
        if request.app.state.predictor.ready:
            return {"ready": True, "model": str(cfg.model_dir),
                    "builders_started": request.app.state.builds.warmed.is_set()}
        return JSONResponse({"ready": False, "detail": state["load_error"] or "loading the model"}, status_code=503,
                            headers={"Retry-After": str(cfg.retry_after_s)})

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics")
    async def prometheus():
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/v1/info", tags=["inference"], summary="what the model expects and the server's limits")
    async def info():
        return {"format": manifest.code.name, "layout": manifest.layout, "views": list(manifest.views),
                "view_size": manifest.view_size,
                "prompt": manifest.prompt(manifest.views[0] if manifest.layout == "separate" else None),
                "limits": {"max_body_bytes": cfg.max_body_bytes, "max_batch_body_bytes": cfg.max_batch_body_bytes,
                           "max_pixels": cfg.max_pixels, "max_new_tokens": cfg.max_new_tokens,
                           "max_new_tokens_limit": cfg.max_new_tokens_limit, "ttl_s": cfg.ttl_s,
                           "max_batch": cfg.max_batch},
                "candidates": {"default": cfg.candidates, "nearest_k": cfg.nearest_k,
                               "training_pictures": len(bank) if bank is not None else 0}}

    # ------------------------------------------------------------------ inference
    @app.post("/v1/predict", tags=["inference"], summary="pictures of a part -> code and the part's files")
    async def predict(request: Request,
                      image: UploadFile | None = File(None, description="the 2x2 sheet of views (PNG, JPEG...)"),
                      front: UploadFile | None = File(None), top: UploadFile | None = File(None),
                      right: UploadFile | None = File(None), iso: UploadFile | None = File(None),
                      view: str | None = Form(None, description="separate-layout models: the view `image` shows"),
                      prompt: str | None = Form(None, max_length=4000),
                      max_new_tokens: int | None = Form(None), longest_mm: float | None = Form(None),
                      candidates: str | None = Form(None, description=CANDIDATES_HELP)):
        predictor = predictor_of(request)
        budget, size = _check_options(cfg, max_new_tokens, longest_mm)
        mode = predictor.candidates_mode(candidates)
        uploads = {"image": image, "front": front, "top": top, "right": right, "iso": iso}
        blobs = {k: await u.read() for k, u in uploads.items() if u is not None}

        def decode():
            pics = {k: open_picture(b, k, cfg.max_pixels, cfg.max_side) for k, b in blobs.items()}
            return model_input(manifest, image=pics.pop("image", None), views=pics, view=view)

        picture, used_view = await asyncio.to_thread(decode)
        return await predictor.predict(picture, used_view, prompt, budget, size, base_url=_base_url(request),
                                       candidates=mode)

    @app.get("/v1/results/{rid}", tags=["inference"], summary="the JSON of a result")
    async def result_json(request: Request, rid: str):
        data = request.app.state.store.read_json(rid)
        if data is None:
            return _error(404, "no such result (unknown, or removed after its time to live)")
        return data

    @app.get("/v1/results/{rid}/{name}", tags=["inference"], summary="a file of a result")
    async def result_file(request: Request, rid: str, name: str):
        if name not in FILES or name == "results.zip":
            return _error(404, f"no file {name!r}; files are {', '.join(n for n in FILES if n != 'results.zip')}")
        path = request.app.state.store.file(rid, name, kind="result")
        if path is None:
            return _error(404, "no such result file (unknown, not made for this result, or past its time to live)")
        suffix = "." + name.rsplit(".", 1)[-1]
        return FileResponse(path, media_type=MEDIA[suffix], filename=name,
                            content_disposition_type="inline" if suffix in INLINE else "attachment")

    # ------------------------------------------------------------------ batch jobs
    @app.post("/v1/batch", tags=["batch"], status_code=202, summary="a zip of pictures (or many files) -> a job")
    async def batch(request: Request, archive: UploadFile | None = File(None, description="a zip of pictures"),
                    files: list[UploadFile] | None = File(None, description="pictures, one per part"),
                    prompt: str | None = Form(None, max_length=4000), max_new_tokens: int | None = Form(None),
                    longest_mm: float | None = Form(None),
                    candidates: str | None = Form(None, description=CANDIDATES_HELP)):
        mode = predictor_of(request).candidates_mode(candidates)
        budget, size = _check_options(cfg, max_new_tokens, longest_mm)
        if (archive is None) == (not files):
            raise BadInput("send either `archive` (a zip of pictures) or `files` (several pictures), not both")
        store: ResultStore = request.app.state.store
        job_id, folder = store.create(kind="job")
        if archive is not None:
            await asyncio.to_thread(save_upload, archive.file, folder / "upload.zip")
            items, skipped = await asyncio.to_thread(items_from_zip, folder / "upload.zip", cfg.max_batch_items,
                                                     cfg.max_body_bytes)
        else:
            if len(files) > cfg.max_batch_items:
                raise BadInput(f"files: more than {cfg.max_batch_items} pictures; split them into several jobs")
            items, skipped = [], []
            for i, f in enumerate(files):
                dest = folder / f"input-{i:05d}"
                await asyncio.to_thread(save_upload, f.file, dest)
                items.append(JobItem(i, f.filename or f"file-{i}", file_loader(dest)))
        job = request.app.state.jobs.start(Job(job_id, folder, items, skipped),
                                           {"prompt": prompt, "max_new_tokens": budget, "longest_mm": size,
                                            "base_url": _base_url(request), "candidates": mode})
        base = _base_url(request)
        return {"id": job.id, "total": len(items), "skipped": skipped, "status_url": f"{base}/v1/batch/{job.id}",
                "results_zip": f"{base}/v1/batch/{job.id}/results.zip"}

    @app.get("/v1/batch/{job_id}", tags=["batch"], summary="progress and per-item results of a job")
    async def batch_status(request: Request, job_id: str):
        job = request.app.state.jobs.get(job_id)
        if job is None:
            return _error(404, "no such job (unknown, or removed after its time to live)")
        return request.app.state.jobs.status(job, _base_url(request))

    @app.get("/v1/batch/{job_id}/results.zip", tags=["batch"], summary="code, STEP files and a CSV summary")
    async def batch_zip(request: Request, job_id: str):
        jobs: JobRunner = request.app.state.jobs
        job = jobs.get(job_id)
        if job is None:
            return _error(404, "no such job (unknown, or removed after its time to live)")
        if job.state != "done":
            return _error(409, f"the job is still running ({job.done}/{len(job.items)} done)",
                          {"Retry-After": str(cfg.retry_after_s)})
        path = await jobs.results_zip(job)
        return FileResponse(path, media_type="application/zip", filename=f"cadvlm-batch-{job.id[:8]}.zip")

    from cadvlm.serve.page import add_page_routes
    from cadvlm.serve.routes_exp import add_experiment_routes

    add_experiment_routes(app, cfg)
    add_page_routes(app, cfg)
    return app
