"""The real `dvc` commands on a very small params set, in a temporary git repository.

Checks the promises of the pipeline: a fresh `dvc repro` runs every stage, a second one runs
none, a train-only parameter reruns only train, rl and evaluate (0 models rendered), growing the
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
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
STAGES = ["synthesize", "extract", "render", "convert", "train", "rl", "evaluate"]

SMALL = {
    "synthesize": {"n_models": 120},
    "data": {"train_size": 16, "val_size": 4, "test_size": 4},
    "render": {"size": 128, "supersample": 1},
    "model": {"tiny": {"vocab_size": 512, "hidden_size": 32, "intermediate_size": 64, "layers": 1,
                       "heads": 2, "vision_hidden_size": 32, "vision_layers": 1}},
    "train": {"epochs": 1, "batch_size": 4, "eval_batch_size": 4, "evals_per_epoch": 1, "save_steps": 1000,
              "progress": False},
    "rl": {"steps": 2, "group_size": 2, "prompts_per_step": 2, "max_new_tokens": 48, "workers": 1},
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
    for name in ("extract", "render", "convert", "train", "rl", "eval", "eval_sft"):
        assert (proj / "metrics" / f"{name}.json").is_file(), name
    rl = json.loads((proj / "metrics" / "rl.json").read_text())
    assert rl["steps"] == 2 and rl["answers"] == 8 and (proj / "models" / "cadvlm_model.json").is_file()
    assert json.loads((proj / "metrics" / "eval_sft.json").read_text())["same_as_model"] is False
    chosen = sum(json.loads((proj / "metrics" / "extract.json").read_text())["selected"].values())
    assert chosen == 24
    assert json.loads((proj / "metrics" / "render.json").read_text())["this_run"]["rendered"] == chosen
    _run(["git", "add", "-A"], proj, env)
    _run(["git", "commit", "-qm", "first run"], proj, env)

    assert _ran(_dvc(proj, env, "repro")) == []  # nothing changed: nothing runs

    # A train-only parameter: train, rl and evaluate rerun, nothing is rendered or converted.
    out = _dvc(proj, env, "exp", "run", "-S", "train.lr=0.001")
    assert _ran(out) == ["train", "rl", "evaluate"]
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


def readme_commands() -> list[str]:
    """The `cadvlm ...` lines of the README's command-line section, comments stripped."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## The command line"):]
    block = section[section.index("```bash\n") + 8:]
    block = block[:block.index("```")]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.startswith("cadvlm ")]


def _readme_inputs(proj: Path) -> None:
    """The README's placeholder files, made from the small run's outputs."""
    from PIL import Image

    split = json.loads((proj / "data" / "extracted" / "split.json").read_text())
    first = split["test"][0]
    shutil.copy(proj / "data" / "extracted" / "json" / f"{first}.json", proj / "MODEL.json")
    sheet = Image.open(proj / "data" / "rendered" / "images" / f"{first}.png")
    sheet.save(proj / "picture.png")
    half = sheet.width // 2  # the grid: top | iso / front | right
    for name, box in (("t", (0, 0, half, half)), ("f", (0, half, half, 2 * half)), ("r", (half, half, 2 * half, 2 * half))):
        sheet.crop(box).save(proj / f"{name}.png")
    (proj / "CODE.py").write_text(subprocess.run(
        [sys.executable, "-m", "cadvlm.cli", "code", "MODEL.json"], cwd=proj, capture_output=True, text=True,
        check=True).stdout)
    for name in ("outputs", "gen", "cad_json", "json", "cadrille_out", "cadquery"):
        shutil.rmtree(proj / name, ignore_errors=True)
    shutil.copytree(proj / "data" / "extracted" / "json", proj / "cad_json")
    shutil.copytree(proj / "data" / "extracted" / "json", proj / "json")
    (proj / "outputs").mkdir()
    for mid in split["test"]:  # OpenECAD v2 code of the truths: scores as the oracle
        (proj / "outputs" / f"{mid}.py").write_text(subprocess.run(
            [sys.executable, "-m", "cadvlm.cli", "code", f"cad_json/{mid}.json", "--format", "openecad"], cwd=proj,
            capture_output=True, text=True, check=True).stdout)
    # CadQuery of the truths, as a peer's folder of outputs (the folder mode of `cadvlm code`)
    subprocess.run([sys.executable, "-m", "cadvlm.cli", "code", "cad_json", "-o", "cadrille_out", "--format",
                    "cadquery", "--no-progress"], cwd=proj, capture_output=True, text=True, check=True)
    (proj / "gen").mkdir()
    for line in (proj / "data" / "eval" / "generations.jsonl").read_text().splitlines():
        g = json.loads(line)
        (proj / "gen" / f"{g['id']}.txt").write_text(g["answer"])


def _serve_until_ready(cli: str, args: list[str], proj: Path, env: dict) -> subprocess.CompletedProcess:
    """`cadvlm serve` runs until stopped: start it on a free port, wait for /readyz, stop it."""
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([cli, *args, "--port", str(port)], cwd=proj, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    ready, deadline = False, time.monotonic() + 180
    try:
        while not ready and time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5).status == 200
            except OSError:
                time.sleep(0.5)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, 0 if ready else 1, out, err)


@pytest.mark.slow
def test_every_readme_command_runs_on_the_small_default(project, tmp_path):
    """Each `cadvlm` command the README shows, with the README's arguments, on the trained small
    default: it exits as documented (predict: 1 when the model's code does not build; serve: up
    and ready until stopped; fetch: against a stand-in hub on the loopback address) and never
    with a traceback."""
    import shlex

    from test_fetch import Hub, _handler, _openecad_repo
    from tinyllava_fixture import write_checkpoint

    proj, env = project
    if not (proj / "models" / "cadvlm_model.json").is_file():
        _dvc(proj, env, "repro")
    _readme_inputs(proj)
    commands = readme_commands()
    assert len(commands) >= 12 and any(c.startswith("cadvlm predict --json") for c in commands)
    cli = str(Path(sys.executable).parent / "cadvlm")
    hub = Hub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(hub))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for line in commands:
            args = shlex.split(line)[1:]
            run_env = dict(env)
            if args[0] == "import-model":
                write_checkpoint(proj / args[1], "llama")
            if args[0] == "fetch":
                hub.set_repo("dataset", args[1], _openecad_repo())
                run_env.update(HF_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}",
                               HF_HOME=str(tmp_path / "hf_home"), NO_PROXY="127.0.0.1")
            if args[0] == "serve":
                r = _serve_until_ready(cli, args, proj, run_env)
            else:
                r = subprocess.run([cli, *args], cwd=proj, env=run_env, capture_output=True, text=True, timeout=600)
            allowed = (0, 1) if args[0] == "predict" else (0,)
            assert r.returncode in allowed and "Traceback" not in r.stderr, \
                f"{line}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
            if args[0] == "score" and ("outputs/" in args or "cadrille_out/" in args):
                assert "invalid   0.0%" in r.stdout, r.stdout  # OpenECAD code of the truths: every part valid
    finally:
        server.shutdown()
        server.server_close()
    assert (proj / "part.step").is_file() and (proj / "PARSED.json").is_file() and (proj / "views.png").is_file()
    assert (proj / "out" / "input.png").is_file() and (proj / "out" / "answer.txt").is_file()


@pytest.mark.slow
def test_predict_needs_only_a_copied_model_folder(project, tmp_path):
    """A compact-trained models/ copied into an empty folder predicts a valid part on its own:
    the code language, the picture size and the render settings all come from the folder.

    The small default's model is too short-trained to write valid code, so the train stage's
    code makes a model that has memorised one training part (one sample, 100 epochs), from the
    project's own converted data and pictures; predict then redraws that part from its JSON."""
    from cadvlm.geometry.mesh import read_step
    from cadvlm.geometry.solid import volume
    from cadvlm.train import train

    proj, env = project
    if not (proj / "data" / "converted" / "train.json").is_file():
        _dvc(proj, env, "repro")
    sample = json.loads((proj / "data" / "converted" / "train.json").read_text())[0]
    data = tmp_path / "converted"
    data.mkdir()
    for name in ("train", "val"):
        (data / f"{name}.json").write_text(json.dumps([sample]))
    shutil.copy(proj / "data" / "converted" / "convert_info.json", data)
    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["model"]["tiny"].update(hidden_size=64, intermediate_size=256, layers=2)
    params["train"].update(epochs=100, lr=3e-3, warmup_ratio=0.02, eval_on_start=False, evals_per_epoch=0.02)
    train(params, data, proj / "data" / "rendered", tmp_path / "models", tmp_path / "checkpoints")
    assert json.loads((tmp_path / "models" / "cadvlm_model.json").read_text())["code_format"] == "compact"

    work = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "models", work / "models")
    model_json = proj / "data" / "extracted" / "json" / f"{sample['model_id']}.json"
    cli = str(Path(sys.executable).parent / "cadvlm")
    r = subprocess.run([cli, "predict", "--json", str(model_json), "-o", "out"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"{r.stdout}\n{r.stderr}\n{(work / 'out' / 'answer.txt').read_text()[:500]}"
    assert sorted(p.name for p in work.iterdir()) == ["models", "out"]
    assert volume(read_step(work / "out" / "part.step")) > 0
