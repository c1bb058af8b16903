"""serve's candidates=nearest with a model folder that carries training pictures (`cadvlm.model.retrieval`).

The scripted model answers garbage when the prompt says so; with candidates=nearest the server
looks up the training pictures closest to the input and render-and-compare (run in a build
worker) keeps the training part drawn in the picture, for /v1/predict and for a /v1/batch job.
A server whose default is nearest does not start from a folder without training pictures.
"""

from __future__ import annotations

import time

import pytest
from serve_helpers import ScriptedGenerate, wait_workers_ready

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from fastapi.testclient import TestClient
    from retrieval_fixture import bank_folder

    from cadvlm.serve.app import create_app
    from cadvlm.serve.config import ServeConfig

    root = tmp_path_factory.mktemp("serve_nearest")
    bank = bank_folder(root, n=3)
    cfg = ServeConfig(model_dir=bank.models, results_dir=root / "results", workers=1, project_dir=root,
                      api_token="", nearest_k=2)
    app = create_app(cfg, generate_fn=ScriptedGenerate())
    with TestClient(app) as c:
        wait_workers_ready(app)
        yield c, bank


def _post(client, picture, **data):
    return client.post("/v1/predict", files={"image": ("p.png", picture.read_bytes(), "image/png")},
                       data={"prompt": "garbage please", **data})


def test_the_training_part_in_the_picture_wins(served):
    client, bank = served
    assert _post(client, bank.pictures[1]).json()["status"] == "parse_error"  # the model alone
    r = _post(client, bank.pictures[1], candidates="nearest")
    assert r.status_code == 200, r.text
    j = r.json()
    assert j["status"] == "ok" and j["answer"] == bank.answers[1] and "part.step" in j["files"]
    c = j["candidates"]
    assert c["mode"] == "nearest" and c["chosen"] == 1 and c["chosen_kind"] == "nearest"
    assert [x["kind"] for x in c["candidates"]] == ["greedy", "nearest", "nearest"]
    assert c["candidates"][1]["train_id"] == "part1" and c["candidates"][0]["silhouette_iou"] is None
    assert c["candidates"][1]["silhouette_iou"] > c["candidates"][2]["silhouette_iou"]
    assert j["timings_ms"]["select"] > 0
    assert client.get("/v1/info").json()["candidates"]["training_pictures"] == 3


def test_a_batch_job_asks_for_the_lookup_too(served):
    client, bank = served
    files = [("files", (f"p{i}.png", bank.pictures[i].read_bytes(), "image/png")) for i in (2, 0)]
    r = client.post("/v1/batch", files=files, data={"prompt": "garbage please", "candidates": "nearest"})
    assert r.status_code == 202, r.text
    deadline = time.time() + 60
    while (status := client.get(f"/v1/batch/{r.json()['id']}").json())["state"] != "done":
        assert time.time() < deadline, status
        time.sleep(0.1)
    assert status["counts"] == {"ok": 2}
    for item, part in zip(status["items"], (2, 0)):
        assert client.get(f"/v1/results/{item['result_id']}").json()["answer"] == bank.answers[part]


def test_a_nearest_server_needs_training_pictures(tmp_path):
    from serve_helpers import model_dir

    from cadvlm.model.retrieval import RetrievalError
    from cadvlm.serve.app import create_app
    from cadvlm.serve.config import ServeConfig

    with pytest.raises(RetrievalError, match="no training pictures"):
        create_app(ServeConfig(model_dir=model_dir(tmp_path / "m"), results_dir=tmp_path / "r", candidates="nearest"))
    with pytest.raises(ValueError, match="candidates must be one of"):
        ServeConfig(candidates="all")
