"""The real `dvc` commands on a very small params set, in a temporary git repository.

Checks the promises of the pipeline: a fresh `dvc repro` runs every stage, a second one runs
none, a train-only parameter reruns only train and evaluate (0 models rendered), growing the
train split renders only the new models, and `dvc exp run -S` (also queued) / `dvc exp show` /
`dvc metrics diff` work from a clean checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["synthesize", "extract", "render", "convert", "train", "evaluate"]

SMALL = {
    "synthesize": {"n_models": 120},
    "data": {"train_size": 16, "val_size": 4, "test_size": 4},
    "render": {"size": 128, "supersample": 1},
    "model": {"tiny": {"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "layers": 1,
                       "heads": 2, "vision_hidden_size": 32, "vision_layers": 1}},
    "train": {"epochs": 1, "batch_size": 4, "eval_batch_size": 4, "evals_per_epoch": 1, "save_steps": 1000,
              "progress": False},
    "eval": {"max_new_tokens": 48, "batch_size": 4, "baseline_candidates": 2, "sheet_samples": 4,
             "n_points": 1024},
}


def _merge(dst: dict, src: dict) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _merge(dst[k], v)
        else:
            dst[k] = v


def _project_copy(dest: Path) -> None:
    """The files a clone would hold (tracked and new, not ignored), without the recorded run."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\n")
    for rel in filter(None, files):
        if rel == "dvc.lock" or rel.startswith(("metrics/", "docs/", "benchmarks/results/")):
            continue
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _run(cmd: list[str], cwd: Path, env: dict) -> str:
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-4000:]}"
    return out


def _ran(output: str) -> list[str]:
    return re.findall(r"Running stage '([a-z_]+)'", output)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    proj = tmp_path_factory.mktemp("pipeline")
    _project_copy(proj)
    params = yaml.safe_load((proj / "params.yaml").read_text())
    _merge(params, SMALL)
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "small pipeline"]):
        _run(cmd, proj, env)
    return proj, env


def _dvc(proj, env, *args) -> str:
    return _run([sys.executable, "-m", "dvc", *args], proj, env)


@pytest.mark.slow
def test_repro_reruns_exactly_what_changed(project):
    proj, env = project
    out = _dvc(proj, env, "repro")
    assert _ran(out) == STAGES
    for name in ("extract", "render", "convert", "train", "eval"):
        assert (proj / "metrics" / f"{name}.json").is_file(), name
    chosen = sum(json.loads((proj / "metrics" / "extract.json").read_text())["selected"].values())
    assert chosen == 24
    assert json.loads((proj / "metrics" / "render.json").read_text())["this_run"]["rendered"] == chosen
    _run(["git", "add", "-A"], proj, env)
    _run(["git", "commit", "-qm", "first run"], proj, env)

    assert _ran(_dvc(proj, env, "repro")) == []  # nothing changed: nothing runs

    # A train-only parameter: train and evaluate rerun, nothing is rendered or converted.
    out = _dvc(proj, env, "exp", "run", "-S", "train.lr=0.001")
    assert _ran(out) == ["train", "evaluate"]
    shown = json.loads(_dvc(proj, env, "exp", "show", "--json"))
    text = json.dumps(shown)
    assert '"metrics/eval.json"' in text and '"metrics/train.json"' in text and '"lr": 0.001' in text
    diff = json.loads(_dvc(proj, env, "metrics", "diff", "--json", "HEAD"))
    assert any("train" in path for path in diff), diff

    # Queued experiments: staged now, run later (here at once) in temporary copies of the workspace.
    for lr in ("0.002", "0.003"):
        _dvc(proj, env, "exp", "run", "--queue", "-S", f"train.lr={lr}")
    _dvc(proj, env, "exp", "run", "--run-all")
    status = _dvc(proj, env, "queue", "status")
    assert status.count("Success") == 2, status
    text = json.dumps(json.loads(_dvc(proj, env, "exp", "show", "--json")))
    assert '"lr": 0.002' in text and '"lr": 0.003' in text
    _run(["git", "checkout", "--", "."], proj, env)
    _dvc(proj, env, "checkout", "--force")

    # Growing the train split: extract onward reruns, but only the new models are rendered.
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["data"]["train_size"] += 4
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _dvc(proj, env, "repro", "convert")
    assert _ran(out) == ["extract", "render", "convert"]
    render = json.loads((proj / "metrics" / "render.json").read_text())["this_run"]
    assert render["rendered"] == 4 and render["reused"] == 24
