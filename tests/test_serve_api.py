"""The serve API through FastAPI's TestClient, with a scripted generate function (no weights).

What is checked: a valid answer comes back with the part's size and files that open (STEP reads
back, the glTF container is well formed), bad code from the model is a 200 with the reason named
as evaluate names it, the views input composes like `cadvlm predict`, result files are reachable
only by server-made ids and allow-listed names and are gone after their TTL, batch jobs report
progress and give a zip with a CSV summary, and the metrics and docs are served.
"""

from __future__ import annotations

import csv
import io
import time
import zipfile

import pytest
from serve_helpers import ScriptedGenerate, model_dir, png_bytes, sheet_png, wait_workers_ready

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from fastapi.testclient import TestClient

    from cadvlm.serve.app import create_app
    from cadvlm.serve.config import ServeConfig

    root = tmp_path_factory.mktemp("serve_api")
    gen = ScriptedGenerate()
    cfg = ServeConfig(model_dir=model_dir(root / "model"), results_dir=root / "results", workers=2,
                      project_dir=root, api_token="")
    app = create_app(cfg, generate_fn=gen)
    with TestClient(app) as c:
        wait_workers_ready(app)
        c.gen = gen
        yield c


def _predict(client, data=None, **files):
    files = files or {"image": ("sheet.png", sheet_png(), "image/png")}
    return client.post("/v1/predict", files=files, data=data or {})


def test_valid_part_answer_and_files(client, tmp_path):
    import io

    import numpy as np
    import trimesh

    from cadvlm.geometry.mesh import read_step
    from cadvlm.geometry.solid import bounding_box

    r = _predict(client)
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["status"] == "ok" and j["detail"] == "" and j["format"] == "openecad"
    assert j["extrudes"] == 1 and j["box_mm"] == pytest.approx([40.0, 20.0, 5.0], abs=1e-3)
    assert j["volume_mm3"] == pytest.approx(40 * 20 * 5 - 3.14159265 * 16 * 5, rel=1e-3)
    assert j["code"].startswith("SketchPlane0") and j["answer"].startswith("Of course")
    assert set(j["timings_ms"]) >= {"queue", "generate", "build"} and j["batch_size"] >= 1
    assert set(j["files"]) == {"part.step", "part.stl", "part.glb", "views.png", "input.png", "part.py", "answer.txt"}
    got = {}
    for name, url in j["files"].items():
        f = client.get(url)
        assert f.status_code == 200, name
        got[name] = f.content
    (tmp_path / "part.step").write_bytes(got["part.step"])
    lo, hi = bounding_box(read_step(tmp_path / "part.step"))
    assert (hi - lo) * 1000 == pytest.approx([40, 20, 5], abs=1e-3)
    glb = trimesh.load(io.BytesIO(got["part.glb"]), file_type="glb", force="mesh")
    assert len(glb.faces) > 8 and got["part.glb"][:4] == b"glTF" and b'"NORMAL"' in got["part.glb"][:4096]
    assert np.sort(glb.extents) == pytest.approx([0.005, 0.02, 0.04], abs=1e-6)  # metres
    assert glb.extents[1] == pytest.approx(0.005, abs=1e-6)  # Z up -> glTF Y up
    assert got["views.png"][:8] == b"\x89PNG\r\n\x1a\n" and got["input.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert client.get(f"/v1/results/{j['id']}").json()["status"] == "ok"


def test_bad_code_is_200_with_the_reason(client):
    r = _predict(client, data={"prompt": "garbage please"})
    assert r.status_code == 200
    j = r.json()
    assert j["status"] == "parse_error" and j["detail"]
    assert j["extrudes"] is None and "part.step" not in j["files"] and "part.py" in j["files"]


def test_candidates_nearest_needs_the_folders_training_pictures(client):
    """This folder carries no retrieval.npz: asking for the lookup is a 422 that says so, as is an
    unknown mode (for /v1/batch too); the greedy answer alone says it compared nothing."""
    r = _predict(client, data={"candidates": "nearest"})
    assert r.status_code == 422 and "no training pictures" in r.json()["detail"]
    r = _predict(client, data={"candidates": "best"})
    assert r.status_code == 422 and "must be one of model, nearest" in r.json()["detail"]
    r = client.post("/v1/batch", files=[("files", ("a.png", sheet_png(), "image/png"))], data={"candidates": "nearest"})
    assert r.status_code == 422 and "no training pictures" in r.json()["detail"]
    assert _predict(client, data={"candidates": "model"}).json()["candidates"] is None
    assert client.get("/v1/info").json()["candidates"] == {"default": "model", "nearest_k": 5, "training_pictures": 0}


def test_views_input_is_composed_into_the_grid(client):
    from PIL import Image

    v = png_bytes((64, 32), "grey")
    r = _predict(client, front=("f.png", v, "image/png"), top=("t.png", v, "image/png"),
                 right=("r.png", v, "image/png"))
    assert r.status_code == 200 and r.json()["status"] == "ok"
    seen = Image.open(io.BytesIO(client.get(r.json()["files"]["input.png"]).content))
    assert seen.size == (256, 256)  # 2 x the model's 128 px views


def test_result_files_only_by_server_ids_and_allowed_names(client):
    rid = _predict(client).json()["id"]
    for url in (f"/v1/results/{rid}/part.sh", f"/v1/results/{rid}/..%2F..%2Fetc%2Fpasswd", "/v1/results/abc/part.step",
                f"/v1/results/{'0' * 32}/part.step", f"/v1/results/{rid}/results.zip",
                "/v1/results/..%2F..%2Fetc/passwd", f"/v1/results/{rid.upper()}/part.step"):
        assert client.get(url).status_code == 404, url
    assert client.get(f"/v1/results/{rid}/part.step").status_code == 200


def test_dynamic_batching_groups_concurrent_requests(client):
    from concurrent.futures import ThreadPoolExecutor

    client.gen.calls.clear()
    body = sheet_png()
    with ThreadPoolExecutor(8) as pool:
        rs = list(pool.map(lambda _: _predict(client, image=("s.png", body, "image/png")), range(8)))
    assert all(r.status_code == 200 and r.json()["status"] == "ok" for r in rs)
    assert sum(client.gen.calls) == 8 and max(client.gen.calls) >= 2, client.gen.calls


def test_batch_job_zip_progress_and_results(client):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("parts/a.png", sheet_png())
        zf.writestr("b.png", png_bytes())
        zf.writestr("broken.png", b"not a picture at all")
        zf.writestr("notes.txt", "hello")
        zf.writestr("__MACOSX/._a.png", b"junk")
    r = client.post("/v1/batch", files={"archive": ("pics.zip", buf.getvalue(), "application/zip")})
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["total"] == 3 and job["skipped"] == ["notes.txt"]
    deadline = time.time() + 60
    while True:
        s = client.get(f"/v1/batch/{job['id']}").json()
        if s["state"] == "done" or time.time() > deadline:
            break
        time.sleep(0.1)
    assert s["state"] == "done" and s["done"] == 3
    by_name = {it["name"]: it for it in s["items"]}
    assert by_name["parts/a.png"]["status"] == "ok" and by_name["b.png"]["status"] == "ok"
    assert by_name["broken.png"]["status"] == "bad_input" and "not a picture" in by_name["broken.png"]["detail"]
    z = client.get(f"/v1/batch/{job['id']}/results.zip")
    assert z.status_code == 200
    zf = zipfile.ZipFile(io.BytesIO(z.content))
    names = set(zf.namelist())
    assert {"summary.csv", "0000_a/part.step", "0000_a/part.py", "0001_b/part.step"} <= names
    assert not any(n.startswith(("/", "..")) or "/../" in n for n in names)
    rows = list(csv.DictReader(io.StringIO(zf.read("summary.csv").decode())))
    assert [r["status"] for r in rows] == ["ok", "ok", "bad_input"] and rows[0]["box_x_mm"].startswith("40")


def test_batch_of_files_and_bad_batches(client):
    r = client.post("/v1/batch", files=[("files", ("a.png", sheet_png(), "image/png")),
                                        ("files", ("b.png", sheet_png(), "image/png"))])
    assert r.status_code == 202 and r.json()["total"] == 2
    assert client.post("/v1/batch", files={"archive": ("x.zip", b"PK\x03\x04 nonsense", "application/zip")}
                       ).status_code == 422
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("readme.txt", "no pictures")
    r = client.post("/v1/batch", files={"archive": ("x.zip", empty.getvalue(), "application/zip")})
    assert r.status_code == 422 and "no pictures" in r.json()["detail"]
    assert client.get("/v1/batch/" + "f" * 32).status_code == 404


def test_health_metrics_info_docs_page(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["ready"] is True
    m = client.get("/metrics").text
    for name in ("cadvlm_http_requests_total", "cadvlm_predictions_total", "cadvlm_generate_batch_size_bucket",
                 "cadvlm_queue_depth", "cadvlm_prediction_stage_seconds_bucket", "cadvlm_http_request_seconds_bucket"):
        assert name in m, name
    assert 'cadvlm_predictions_total{status="ok"}' in m
    info = client.get("/v1/info").json()
    assert info["format"] == "openecad" and info["layout"] == "grid" and info["view_size"] == 128
    assert "/v1/predict" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200 and "model-viewer" in page.text
    assert client.get("/static/app.js").status_code == 200
