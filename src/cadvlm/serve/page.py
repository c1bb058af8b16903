"""The web page at `/` and the files it needs, all served from this machine (no CDN: works offline).

The page (`static/index.html`, `app.js`, `style.css`) is a thin client of the API: it posts to
/v1/predict and shows what comes back. The 3-D viewer is Google's `<model-viewer>` web component
(three.js inside) from npm, installed by scripts/setup.sh into the git-ignored `web/node_modules`;
its single-file build is served at /vendor/model-viewer.min.js. Without it the page still works
and shows the rendered views instead of the 3-D part. /docs uses swagger-ui from the same npm
folder when it is there, else FastAPI's default (which loads swagger-ui from a CDN).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from cadvlm.serve.config import ServeConfig

STATIC = Path(__file__).resolve().parent / "static"
MODEL_VIEWER = Path("node_modules/@google/model-viewer/dist/model-viewer.min.js")
SWAGGER = Path("node_modules/swagger-ui-dist")


def add_page_routes(app: FastAPI, cfg: ServeConfig) -> None:
    web = cfg.viewer_dir()
    viewer = web / MODEL_VIEWER
    swagger = web / SWAGGER

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/vendor/model-viewer.min.js", include_in_schema=False)
    async def model_viewer():
        if viewer.is_file():
            return FileResponse(viewer, media_type="text/javascript; charset=utf-8")
        return JSONResponse({"detail": f"the 3-D viewer is not installed ({viewer}); run scripts/setup.sh"},
                            status_code=404)

    if (swagger / "swagger-ui-bundle.js").is_file():
        app.mount("/vendor/swagger-ui", StaticFiles(directory=swagger), name="swagger-ui")
        js, css = "/vendor/swagger-ui/swagger-ui-bundle.js", "/vendor/swagger-ui/swagger-ui.css"
    else:
        js = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
        css = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title="cadvlm API", swagger_js_url=js,
                                   swagger_css_url=css, swagger_favicon_url="/static/favicon.svg")
