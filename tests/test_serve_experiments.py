"""The experiment endpoints: token gate, params checked against params.yaml, DVC driven as argument
lists; one test queues a real experiment in a small git + DVC project and waits for it to finish.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import yaml

pytest.importorskip("fastapi")

TOKEN = "s3cret-token"
PARAMS = {"train": {"lr": 0.002, "epochs": 3, "name": "base run", "flag": True, "layers": ["a", "b"]},
          "data": {"split_file": None}}
QUEUE_TEXT = """Task     Name    Created    Status
d82d391  e1      02:31 PM   Success
e60e7eb  e2      02:32 PM   Queued
f00ba12  e3      02:33 PM   Running

Worker status: 1 active, 0 idle
"""


# ------------------------------------------------------------------ pure functions
def test_overrides_are_checked_against_params_yaml():
    from cadvlm.serve.experiments import ExperimentError, check_overrides

    assert check_overrides(PARAMS, {"train.lr": 0.001, "train.epochs": 5}) == ["-S", "train.lr=0.001", "-S",
                                                                               "train.epochs=5"]
    assert check_overrides(PARAMS, {"train.lr": 1}) == ["-S", "train.lr=1.0"]  # an int where a float is: fine
    assert check_overrides(PARAMS, {"data.split_file": "s.json"}) == ["-S", "data.split_file='s.json'"]
    assert check_overrides(PARAMS, {"train.layers": ["x y", "z"]}) == ["-S", "train.layers=['x y','z']"]
    bad = {"train.nope": 1, "nope": 1, "train": 1, "train.epochs": "3", "train.flag": 1, "train.epochs.x": 1}
    for key, value in bad.items():
        with pytest.raises(ExperimentError) as e:
            check_overrides(PARAMS, {key: value})
        assert e.value.status == 422 and repr(key) in str(e.value), (key, str(e.value))
    for value in (True, 2.5, None, "3"):
        with pytest.raises(ExperimentError):
            check_overrides(PARAMS, {"train.epochs": value})
    for params in ({}, [], {"train.name": "a\nb"}, {"train.name": "${oops}"}, {"train.lr": float("nan")},
                   {f"train.k{i}": 1 for i in range(40)}):
        with pytest.raises(ExperimentError):
            check_overrides(PARAMS, params)


def test_values_in_dvc_set_grammar():
    from cadvlm.serve.experiments import format_value

    assert format_value(True) == "true" and format_value(None) == "null" and format_value(3) == "3"
    assert format_value(1e-5) == "1e-05" and format_value(2, 0.5) == "2.0"
    assert format_value("it's") == r"'it\'s'" and format_value("a \\ b") == r"'a \ b'"
    assert format_value("end\\") == "'end\\\\'"


def test_reading_dvc_answers():
    from cadvlm.serve.experiments import parse_queue_status, summarize_show

    rows = parse_queue_status(QUEUE_TEXT)
    assert [(r["name"], r["status"]) for r in rows] == [("e1", "Success"), ("e2", "Queued"), ("e3", "Running")]
    assert parse_queue_status("No experiment tasks in the queue.\n\nWorker status: 0 active, 0 idle\n") == []
    show = [{"rev": "workspace", "name": None, "data": {"rev": "workspace", "params": {
                "params.yaml": {"data": {"train": {"lr": 0.002}}}}, "metrics": {}}, "experiments": None},
            {"rev": "abc", "name": "master", "data": {"rev": "abc", "params": {}, "metrics": {}},
             "experiments": [{"executor": {"state": "success"}, "name": "e1", "revs": [
                 {"rev": "def", "name": "e1", "data": {"rev": "def", "timestamp": "t", "params": {
                     "params.yaml": {"data": {"train": {"lr": 0.005}}}},
                     "metrics": {"metrics/eval.json": {"data": {"iou": {"mean": 0.5}}}}}}]}]}]
    out = summarize_show(show)
    assert [r["name"] for r in out] == ["workspace", "master", "e1"]
    assert out[2] == {"name": "e1", "rev": "def", "baseline": "master", "status": "success", "timestamp": "t",
                      "params": {"train.lr": 0.005}, "metrics": {"metrics/eval.json:iou.mean": 0.5}}


# ------------------------------------------------------------------ routes, with DVC scripted
class ScriptedDvc:
    """Stands in for the dvc executable: records each argument list, answers like DVC would."""

    def __init__(self, project):
        from cadvlm.serve.experiments import DvcDriver

        self.calls: list[list[str]] = []
        outer = self

        class Driver(DvcDriver):
            def run(self, *args, check=True):
                outer.calls.append(list(args))
                out = {"exp": "[]", "queue": QUEUE_TEXT}.get(args[0], "")
                if args[:2] == ("exp", "show"):
                    out = "[]"
                if args[:2] == ("queue", "logs"):
                    out = "> python stages/train.py\nepoch 1\n"
                return subprocess.CompletedProcess(args, 0, out, "")

        self.driver = Driver(project)


@pytest.fixture()
def exp_client(tmp_path, monkeypatch):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from cadvlm.serve.config import ServeConfig
    from cadvlm.serve.routes_exp import add_experiment_routes

    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "extract.json").write_text(json.dumps({"n_valid": 7}))
    scripted = ScriptedDvc(tmp_path)

    def make(token):
        app = FastAPI()
        add_experiment_routes(app, ServeConfig(project_dir=tmp_path, api_token=token), driver=scripted.driver)
        return TestClient(app)

    make.scripted = scripted
    return make


def test_off_without_a_token_and_401_with_a_wrong_one(exp_client):
    off = exp_client("")
    for method, url in (("get", "/v1/experiments"), ("post", "/v1/experiments"), ("get", "/v1/experiments/e1"),
                        ("delete", "/v1/experiments/e1"), ("get", "/v1/data")):
        r = getattr(off, method)(url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 403 and "CADVLM_API_TOKEN" in r.json()["detail"], url
    on = exp_client(TOKEN)
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic x"}):
        assert on.get("/v1/experiments", headers=headers).status_code == 401, headers
    assert exp_client.scripted.calls == []  # nothing ran


def test_routes_drive_dvc_with_argument_lists(exp_client):
    c = exp_client(TOKEN)
    auth = {"Authorization": f"Bearer {TOKEN}"}
    calls = exp_client.scripted.calls
    r = c.post("/v1/experiments", json={"params": {"train.nope": 1}}, headers=auth)
    assert r.status_code == 422 and "train.nope" in r.json()["detail"]
    r = c.post("/v1/experiments", json={"params": {"train.epochs": "five"}}, headers=auth)
    assert r.status_code == 422 and "train.epochs" in r.json()["detail"]
    r = c.post("/v1/experiments", json={"params": {"train.lr": 0.001}, "name": "bad name; rm -rf /"}, headers=auth)
    assert r.status_code == 422 and "name" in r.json()["detail"]
    assert c.post("/v1/experiments", json={"name": "x"}, headers=auth).status_code == 422
    assert c.post("/v1/experiments", json={"params": {"train.lr": 0.001}, "name": "e1"}, headers=auth).status_code == 409
    calls.clear()
    r = c.post("/v1/experiments", json={"params": {"train.lr": 0.001, "train.name": "a b"}, "name": "lr-1e-3"},
               headers=auth)
    assert r.status_code == 202 and r.json()["name"] == "lr-1e-3"
    assert ["exp", "run", "--queue", "--name", "lr-1e-3", "-S", "train.lr=0.001", "-S", "train.name='a b'"] in calls
    assert ["queue", "start"] in calls
    assert c.get("/v1/experiments", headers=auth).json()["queue"][1]["name"] == "e2"
    state = c.get("/v1/experiments/e3", headers=auth).json()
    assert state["status"] == "Running" and "epoch 1" in state["logs"]
    assert c.get("/v1/experiments/nope", headers=auth).status_code == 404
    calls.clear()
    assert c.delete("/v1/experiments/e2", headers=auth).json() == {"name": "e2", "cancelled": True, "was": "Queued"}
    assert ["queue", "remove", "e2"] in calls
    assert c.delete("/v1/experiments/e3", headers=auth).status_code == 200 and ["queue", "kill", "e3"] in calls
    assert c.delete("/v1/experiments/e1", headers=auth).status_code == 409  # finished
    data = c.get("/v1/data", headers=auth).json()
    assert data["extract"] == {"n_valid": 7} and data["render"] is None


# ------------------------------------------------------------------ the real thing
@pytest.mark.slow
def test_queue_a_real_experiment(tmp_path, monkeypatch):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from cadvlm.serve.config import ServeConfig
    from cadvlm.serve.routes_exp import add_experiment_routes

    for k, v in {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                 "GIT_COMMITTER_EMAIL": "t@t", "DVC_NO_ANALYTICS": "1"}.items():
        monkeypatch.setenv(k, v)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    (proj / "run.py").write_text("import json, yaml\np = yaml.safe_load(open('params.yaml'))['train']\n"
                                 "json.dump({'score': p['lr'] * p['epochs']}, open('metrics.json', 'w'))\n"
                                 "print('trained with', p['lr'])\n")
    (proj / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {
        "cmd": f"{sys.executable} run.py", "deps": ["run.py"], "params": ["train.lr", "train.epochs"],
        "metrics": [{"metrics.json": {"cache": False}}]}}}))
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"], ["git", "add", "-A"],
                ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=proj, check=True, capture_output=True)
    app = FastAPI()
    add_experiment_routes(app, ServeConfig(project_dir=proj, api_token=TOKEN))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    c = TestClient(app)
    assert c.get("/v1/experiments", headers=auth).status_code == 200
    r = c.post("/v1/experiments", json={"params": {"train.lr": 0.5}, "name": "half"}, headers=auth)
    assert r.status_code == 202, r.text
    deadline = time.time() + 150
    while time.time() < deadline:
        state = c.get("/v1/experiments/half", headers=auth).json()
        if state["status"] in ("Success", "Failed"):
            break
        time.sleep(1)
    assert state["status"] == "Success", state
    assert "trained with 0.5" in (state.get("logs") or "")
    rows = {row["name"]: row for row in c.get("/v1/experiments", headers=auth).json()["experiments"]}
    assert rows["half"]["params"]["train.lr"] == 0.5 and rows["half"]["metrics"]["metrics.json:score"] == 1.5
    subprocess.run([sys.executable, "-m", "dvc", "queue", "stop"], cwd=proj, capture_output=True)
