"""`cadvlm serve` with a real (tiny, untrained) model folder: the model is loaded in the background,
/readyz turns 200, and concurrent requests are generated in shared batches by the real
`generate_code`. The answers are noise, so they come back as 200 with an invalid status.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from serve_helpers import ServerThread, png_bytes

pytestmark = pytest.mark.slow
requests = pytest.importorskip("requests")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    pytest.importorskip("torch")
    from fake_data import write_untrained_model

    return write_untrained_model(tmp_path_factory.mktemp("models"), render={"size": 64})


def test_real_model_loads_and_batches(tiny_model_dir, tmp_path):
    from cadvlm.serve.app import create_app
    from cadvlm.serve.config import ServeConfig

    cfg = ServeConfig(model_dir=tiny_model_dir, results_dir=tmp_path / "results", workers=1, device="cpu",
                      max_wait_ms=100, max_new_tokens=16, api_token="", project_dir=tmp_path)
    app = create_app(cfg)
    with ServerThread(app) as s:
        assert requests.get(s.url + "/healthz", timeout=5).status_code == 200
        deadline = time.time() + 120
        while requests.get(s.url + "/readyz", timeout=5).status_code != 200:
            assert time.time() < deadline, requests.get(s.url + "/readyz", timeout=5).json()
            time.sleep(0.2)
        body = png_bytes((128, 128))
        with ThreadPoolExecutor(4) as pool:
            rs = list(pool.map(lambda _: requests.post(s.url + "/v1/predict", timeout=120,
                                                       files={"image": ("s.png", body, "image/png")}), range(4)))
        for r in rs:
            assert r.status_code == 200, r.text
            j = r.json()
            assert j["status"] in ("no_code", "parse_error", "build_error", "empty_solid", "invalid_solid")
            assert j["answer"] is not None and j["format"] == "openecad" and j["timings_ms"]["generate"] > 0
        assert max(r.json()["batch_size"] for r in rs) >= 2  # the four shared generate() calls
        metrics = requests.get(s.url + "/metrics", timeout=5).text
        assert "cadvlm_model_ready 1.0" in metrics


def test_a_model_that_does_not_load_is_reported_not_fatal(tmp_path):
    """A manifest without weights: the server stays up, /readyz and /v1/predict say why (503)."""
    from fastapi.testclient import TestClient
    from serve_helpers import model_dir

    from cadvlm.serve.app import create_app
    from cadvlm.serve.config import ServeConfig

    cfg = ServeConfig(model_dir=model_dir(tmp_path / "model"), results_dir=tmp_path / "results", workers=1,
                      device="cpu", api_token="", project_dir=tmp_path)
    with TestClient(create_app(cfg)) as c:
        deadline = time.time() + 60
        while "cannot load" not in c.get("/readyz").json()["detail"]:
            assert time.time() < deadline
            time.sleep(0.1)
        assert c.get("/readyz").status_code == 503 and c.get("/healthz").status_code == 200
        r = c.post("/v1/predict", files={"image": ("s.png", png_bytes(), "image/png")})
        assert r.status_code == 503 and "cannot load the model" in r.json()["detail"]
