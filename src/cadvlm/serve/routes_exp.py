"""Routes that drive DVC: list, queue, inspect and cancel experiments; the data metrics of the last run.

Why behind a token while inference is open: queuing an experiment spends hours of compute and
writes to the project's git repository. With no CADVLM_API_TOKEN configured the routes answer 403
(off), so a server started for inference alone exposes nothing more; with one, a request needs
`Authorization: Bearer <token>` (compared in constant time). DVC runs in a thread, so a slow
`dvc exp show` never stalls inference, and changes to the queue go one at a time.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from cadvlm.serve.config import ServeConfig
from cadvlm.serve.experiments import DvcDriver, ExperimentError, check_name, check_overrides


class ExperimentRequest(BaseModel):
    params: dict[str, Any] = Field(..., description='params.yaml keys to values, e.g. {"train.lr": 0.001}')
    name: str | None = Field(None, description="experiment name (1-64 of A-Z a-z 0-9 _ -); made up when absent")


def add_experiment_routes(app: FastAPI, cfg: ServeConfig, driver: DvcDriver | None = None) -> DvcDriver:
    driver = driver or DvcDriver(cfg.project_dir)
    app.state.dvc = driver
    lock = asyncio.Lock()

    def authorize(authorization: str | None = Header(None)) -> None:
        token = cfg.token()
        if not token:
            raise HTTPException(403, "the experiment endpoints are off: start the server with CADVLM_API_TOKEN set")
        given = authorization[7:].strip() if authorization and authorization[:7].lower() == "bearer " else ""
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "send `Authorization: Bearer <token>` with the server's CADVLM_API_TOKEN",
                                headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ExperimentError)
    async def _experiment_error(request, exc: ExperimentError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    guard = [Depends(authorize)]

    @app.get("/v1/experiments", tags=["experiments"], dependencies=guard,
             summary="experiments (dvc exp show --json) and the queue (dvc queue status)")
    async def experiments(raw: bool = False):
        from cadvlm.serve.experiments import summarize_show

        show = await asyncio.to_thread(driver.show)
        queue = await asyncio.to_thread(driver.queue_status)
        out = {"experiments": summarize_show(show), "queue": queue}
        if raw:
            out["exp_show"] = show
        return out

    @app.post("/v1/experiments", tags=["experiments"], dependencies=guard, status_code=202,
              summary="queue `dvc exp run --queue -S key=value ...` and start the queue worker")
    async def queue_experiment(body: ExperimentRequest):
        async with lock:
            params = await asyncio.to_thread(driver.params)
            set_args = check_overrides(params, body.params)
            name = check_name(body.name)
            return await asyncio.to_thread(driver.queue, name, set_args)

    @app.get("/v1/experiments/{name}", tags=["experiments"], dependencies=guard,
             summary="an experiment's state, params, metrics and logs")
    async def experiment(name: str):
        return await asyncio.to_thread(driver.state, check_name(name))

    @app.delete("/v1/experiments/{name}", tags=["experiments"], dependencies=guard,
                summary="cancel a queued or running experiment")
    async def cancel(name: str):
        async with lock:
            return await asyncio.to_thread(driver.cancel, check_name(name))

    @app.get("/v1/data", tags=["experiments"], dependencies=guard,
             summary="the synthesize/extract/render/convert metrics of the last run (metrics/*.json)")
    async def data():
        return await asyncio.to_thread(driver.data_metrics)

    return driver
