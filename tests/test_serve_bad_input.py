"""Bad input against a real uvicorn server on 127.0.0.1: a clear 4xx, in under a second, and the
server still healthy afterwards. Also the two time limits (generation and build) ending as
status "timeout", and a full queue answered 503 with Retry-After.
"""

from __future__ import annotations

import http.client
import json
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
from serve_helpers import (RELEASE, ScriptedGenerate, ServerThread, bomb_png, corrupt_png, model_dir, png_bytes,
                           sheet_png, truncated_png, wait_workers_ready)

requests = pytest.importorskip("requests")
pytest.importorskip("uvicorn")

FAST = 1.0  # seconds: every refusal must come back within this
MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from cadvlm.serve.app import create_app
    from cadvlm.serve.config import ServeConfig

    root = tmp_path_factory.mktemp("serve_bad")
    cfg = ServeConfig(model_dir=model_dir(root / "model"), results_dir=root / "results", workers=1, queue_max=3,
                      max_batch=4, max_wait_ms=5, generate_timeout_s=0.5, api_token="", project_dir=root)
    app = create_app(cfg, generate_fn=ScriptedGenerate())
    with ServerThread(app) as s:
        wait_workers_ready(app)
        s.app = app
        yield s


def _post(server, files=None, data=None, **kw):
    t = time.perf_counter()
    r = requests.post(server.url + "/v1/predict", files=files, data=data, timeout=30, **kw)
    return r, time.perf_counter() - t


def _healthy(server):
    assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
    assert requests.get(server.url + "/readyz", timeout=5).status_code == 200


BAD_PICTURES = {
    "not a picture": (b"%PDF-1.4 this is a pdf, not a picture", "not a picture"),
    "empty": (b"", "empty"),
    "truncated": (truncated_png(), "truncated or corrupt"),
    "corrupt": (corrupt_png(), "corrupt"),
    "bomb 100000x100000": (bomb_png(), "refused before decoding"),
    "bomb 9000x9000": (bomb_png(9000, 9000), "refused before decoding"),
}


@pytest.mark.parametrize("case", list(BAD_PICTURES))
def test_bad_pictures_are_422_fast(server, case):
    data, words = BAD_PICTURES[case]
    r, seconds = _post(server, files={"image": ("x.png", data, "image/png")})
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"] and "image" in r.json()["detail"]
    assert seconds < FAST, seconds
    _healthy(server)


def test_bad_view_is_named(server):
    r, seconds = _post(server, files={"front": ("f.png", png_bytes(), "image/png"),
                                      "top": ("t.png", truncated_png(), "image/png")})
    assert r.status_code == 422 and r.json()["detail"].startswith("top:") and seconds < FAST


@pytest.mark.parametrize("data,files,words", [
    ({}, None, "send either"),
    ({"max_new_tokens": "lots"}, "sheet", "max_new_tokens"),
    ({"max_new_tokens": "0"}, "sheet", "max_new_tokens"),
    ({"max_new_tokens": "100000"}, "sheet", "max_new_tokens"),
    ({"longest_mm": "-5"}, "sheet", "longest_mm"),
    ({"longest_mm": "nan"}, "sheet", "longest_mm"),
    ({"view": "side"}, "sheet", "view"),
    ({"image": "just text"}, None, "image"),
    ({}, "both", "not both"),
])
def test_wrong_fields_are_422_naming_the_field(server, data, files, words):
    sheet = ("s.png", png_bytes(), "image/png")
    files = {"sheet": {"image": sheet}, "both": {"image": sheet, "front": sheet}, None: None}[files]
    if files is None:
        files = {"dummy": ("d.txt", b"x", "text/plain")}  # multipart, but not the fields asked for
    r, seconds = _post(server, files=files, data=data)
    assert r.status_code == 422, r.text
    assert words in json.dumps(r.json()["detail"]), r.text
    assert seconds < FAST
    _healthy(server)


def _raw(server, headers: dict, body_chunks, chunked: bool):
    """A POST sent by hand (to declare a length or stream chunks), then its response status."""
    u = urlsplit(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    t = time.perf_counter()
    conn.putrequest("POST", "/v1/predict")
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    try:
        for chunk in body_chunks:
            conn.send((b"%x\r\n" % len(chunk) + chunk + b"\r\n") if chunked else chunk)
        if chunked:
            conn.send(b"0\r\n\r\n")
    except OSError:  # the server answered and closed while we were still sending: expected
        pass
    resp = conn.getresponse()
    status, body = resp.status, resp.read()
    conn.close()
    return status, body, time.perf_counter() - t


def test_body_over_the_limit_is_413_before_it_is_read(server):
    status, body, seconds = _raw(server, {"Content-Type": "multipart/form-data; boundary=x",
                                          "Content-Length": str(21 * MB)}, [b"--x\r\n"], chunked=False)
    assert status == 413 and b"limit" in body and seconds < FAST
    _healthy(server)


def test_streamed_body_over_the_limit_is_413(server):
    head = (b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n'
            b"Content-Type: image/png\r\n\r\n")
    chunks = [head] + [b"\0" * MB] * 22
    status, body, seconds = _raw(server, {"Content-Type": "multipart/form-data; boundary=x",
                                          "Transfer-Encoding": "chunked"}, chunks, chunked=True)
    assert status == 413 and seconds < FAST
    _healthy(server)


def test_generation_past_its_limit_is_status_timeout(server):
    r, _ = _post(server, files={"image": ("s.png", sheet_png(), "image/png")}, data={"prompt": "slow"})
    assert r.status_code == 200 and r.json()["status"] == "timeout", r.text
    assert "generation stopped" in r.json()["detail"]
    _healthy(server)


def test_full_queue_is_503_with_retry_after(server):
    RELEASE.clear()
    body = sheet_png()
    try:
        with ThreadPoolExecutor(5) as pool:
            busy = pool.submit(_post, server, {"image": ("s.png", body, "image/png")}, {"prompt": "block"})
            deadline = time.time() + 10
            while server.app.state.predictor.batcher.generating == 0 and time.time() < deadline:
                time.sleep(0.01)
            waiting = [pool.submit(_post, server, {"image": ("s.png", body, "image/png")}) for _ in range(3)]
            while server.app.state.predictor.batcher.depth < 3 and time.time() < deadline:
                time.sleep(0.01)
            r, seconds = _post(server, files={"image": ("s.png", body, "image/png")})
            assert r.status_code == 503 and r.headers.get("Retry-After") and seconds < FAST, r.text
            RELEASE.set()
            assert busy.result()[0].status_code == 200
            assert all(f.result()[0].status_code == 200 for f in waiting)
    finally:
        RELEASE.set()
    _healthy(server)


def test_build_past_its_limit_is_status_timeout_and_files_expire(tmp_path):
    """A separate server: builds limited to 50 ms, results kept 1.5 s."""
    from cadvlm.serve.app import create_app
    from cadvlm.serve.config import ServeConfig

    cfg = ServeConfig(model_dir=model_dir(tmp_path / "model"), results_dir=tmp_path / "results", workers=1,
                      build_timeout_s=0.05, ttl_s=1.5, sweep_s=0.2, api_token="", project_dir=tmp_path)
    app = create_app(cfg, generate_fn=ScriptedGenerate())
    with ServerThread(app) as s:
        wait_workers_ready(app)
        r = requests.post(s.url + "/v1/predict", files={"image": ("s.png", sheet_png(), "image/png")}, timeout=60)
        j = r.json()
        assert r.status_code == 200 and j["status"] == "timeout" and "took over" in j["detail"]
        url = j["files"]["input.png"]
        assert requests.get(url, timeout=5).status_code == 200
        folder = app.state.store.root / j["id"]
        assert folder.is_dir()
        time.sleep(2.2)
        assert requests.get(url, timeout=5).status_code == 404
        assert not folder.exists()  # removed from disk, not only forgotten
        assert requests.get(s.url + "/healthz", timeout=5).status_code == 200
