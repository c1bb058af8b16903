"""The render stage end to end on a few synthetic models: outputs, incrementality, cleanup,
failures counted by reason, determinism; and the two CLI commands."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cadvlm.render.pipeline import RenderJob
from cadvlm.render.stage import run_render, safe_id
from cadvlm.render.views import RenderSettings
from conftest import real_json_files

SMALL = RenderSettings(size=96, supersample=2)
N_MODELS = 4


@pytest.fixture(scope="module")
def synthetic_json(tmp_path_factory) -> Path:
    """A few DeepCAD-format models from the project's own generator (no shared data needed)."""
    from cadvlm.synth import write_dataset

    out = tmp_path_factory.mktemp("synthetic")
    write_dataset(out, N_MODELS, seed=0, workers=1, progress=False)
    return out


def make_extracted(root: Path, sources: dict, split=None) -> Path:
    """data/extracted-like folder: json/<id>.json from {id: source path or raw bytes}."""
    ext = root / "extracted"
    if ext.exists():
        shutil.rmtree(ext)
    for model_id, src in sources.items():
        dst = ext / "json" / f"{model_id}.json"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, bytes):
            dst.write_bytes(src)
        else:
            shutil.copy(src, dst)
    ids = sorted(sources)
    split = split or {"train": ids[:-1], "validation": [], "test": ids[-1:]}
    (ext / "split.json").write_text(json.dumps(split))
    return ext


def tree_bytes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def sources(synthetic_json) -> dict:
    files = sorted(synthetic_json.glob("*.json"))
    # Ids with a folder part, as in DeepCAD ("XXXX/XXXXXXXX").
    return {f"0000/{p.stem}": p for p in files}


def test_stage_renders_indexes_and_reuses(tmp_path, sources):
    ext = make_extracted(tmp_path, sources)
    out = tmp_path / "rendered"
    job = RenderJob(settings=SMALL)
    m = run_render(ext, out, job, workers=1, metrics_path=tmp_path / "m.json", progress=False)
    assert m["models"] == N_MODELS and m["rendered"] == N_MODELS and m["failed"] == 0
    assert m["this_run"]["rendered"] == N_MODELS and m["this_run"]["time_split_s"]["raycast"] > 0
    assert json.loads((tmp_path / "m.json").read_text()) == m

    index = json.loads((out / "index.json").read_text())
    assert sorted(index) == sorted(sources)
    for model_id, files in index.items():
        assert files == [f"images/{model_id}.png"]
        with Image.open(out / files[0]) as im:
            assert im.mode == "L" and im.size == (2 * SMALL.size, 2 * SMALL.size)
    meta = json.loads((out / "rendering_metadata.json").read_text())
    assert meta["grid"] == [["top", "iso"], ["front", "right"]]
    assert set(meta["cameras"]) == {"front", "top", "right", "iso"}
    assert meta["settings"]["size"] == SMALL.size

    before = tree_bytes(out)
    m2 = run_render(ext, out, job, workers=1, progress=False)
    assert m2["this_run"]["rendered"] == 0 and m2["this_run"]["reused"] == N_MODELS
    assert tree_bytes(out) == before  # nothing rewritten differently

    # Same inputs in a fresh folder: the same bytes.
    out2 = tmp_path / "rendered2"
    run_render(ext, out2, job, workers=1, progress=False)
    assert tree_bytes(out2) == before


def test_changed_params_rerender_and_dropped_models_are_removed(tmp_path, sources):
    ext = make_extracted(tmp_path, sources)
    out = tmp_path / "rendered"
    run_render(ext, out, RenderJob(settings=SMALL), workers=1, progress=False)
    (out / "images" / "0000" / ".tmp-leftover.png").write_bytes(b"half a file")

    thicker = RenderJob(settings=RenderSettings(size=SMALL.size, line_width=2.0))
    m = run_render(ext, out, thicker, workers=1, progress=False)
    assert m["this_run"]["rendered"] == N_MODELS and m["this_run"]["removed_files"] == 1
    assert not list(out.rglob(".tmp-*"))

    ids = sorted(sources)
    keep = {k: sources[k] for k in ids[:2]}
    ext = make_extracted(tmp_path, keep)
    m = run_render(ext, out, thicker, workers=1, progress=False)
    assert m["this_run"]["rendered"] == 0 and m["this_run"]["removed_files"] == N_MODELS - 2
    assert sorted(json.loads((out / "index.json").read_text())) == ids[:2]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == \
        [f"images/{i}.png" for i in ids[:2]]


def test_separate_layout_and_back(tmp_path, sources):
    one = dict(list(sources.items())[:1])
    ext = make_extracted(tmp_path, one, split={"train": list(one), "validation": [], "test": []})
    out = tmp_path / "rendered"
    sep = RenderJob(settings=SMALL, layout="separate")
    run_render(ext, out, sep, workers=1, progress=False)
    (model_id, files), = json.loads((out / "index.json").read_text()).items()
    assert files == [f"images/{model_id}_{v}.png" for v in ("front", "top", "right", "iso")]
    for f in files:
        with Image.open(out / f) as im:
            assert im.size == (SMALL.size, SMALL.size)
    run_render(ext, out, RenderJob(settings=SMALL), workers=1, progress=False)
    assert [p.name for p in out.rglob("*.png")] == [Path(model_id).name + ".png"]


def test_bad_models_are_counted_and_leave_no_picture(tmp_path, sources):
    good = dict(list(sources.items())[:2])
    no_extrude = json.dumps({"entities": {}, "sequence": [], "properties": {}}).encode()
    srcs = {**good, "0000/broken": b"{ not json", "0000/empty": no_extrude}
    ids = sorted(srcs) + ["0000/missing", "../escape"]
    ext = make_extracted(tmp_path, srcs, split={"train": ids, "validation": [], "test": []})
    out = tmp_path / "rendered"
    m = run_render(ext, out, RenderJob(settings=SMALL), workers=1, progress=False)
    assert m["rendered"] == 2 and m["failed"] == 4
    reasons = m["failed_by_reason"]
    assert reasons["malformed_json"] == 1 and reasons["missing_json"] == 1 and reasons["bad_id"] == 1
    assert sum(reasons.values()) == 4
    assert sorted(p.stem for p in out.rglob("*.png")) == sorted(Path(i).name for i in good)
    state = json.loads((out / "render_state.json").read_text())["models"]
    assert state["0000/broken"]["error"] == "malformed_json"
    # Failures are remembered: a rerun does not try them again, and counts stay.
    m2 = run_render(ext, out, RenderJob(settings=SMALL), workers=1, progress=False)
    assert m2["this_run"]["rendered"] == 0 and m2["failed_by_reason"] == reasons


def test_worker_processes_give_the_same_bytes(tmp_path, sources):
    ext = make_extracted(tmp_path, sources)
    a, b = tmp_path / "a", tmp_path / "b"
    job = RenderJob(settings=SMALL)
    run_render(ext, a, job, workers=1, progress=False)
    m = run_render(ext, b, job, workers=2, progress=False)
    assert m["rendered"] == N_MODELS
    assert tree_bytes(a) == tree_bytes(b)


@pytest.mark.parametrize("model_id,ok", [("0000/00000007", True), ("s0000001", True), ("../x", False),
                                         ("/abs", False), ("a//b", False), ("a/./b", False), ("", False),
                                         ("a\\b", False), (".tmp-x", False), (7, False)])
def test_safe_ids(model_id, ok):
    assert safe_id(model_id) is ok


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cadvlm.cli", *map(str, args)], capture_output=True, text=True)


def test_cli_render_grid_and_separate(tmp_path, synthetic_json):
    model = sorted(synthetic_json.glob("*.json"))[0]
    r = run_cli("render", model, "-o", tmp_path / "v.png", "--size", 64)
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "v.png") as im:
        assert im.mode == "L" and im.size == (128, 128)
    r = run_cli("render", model, "-o", tmp_path / "s.png", "--size", 64, "--layout", "separate", "--views", "front,iso")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.glob("s_*.png")) == ["s_front.png", "s_iso.png"]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    r = run_cli("render", bad, "-o", tmp_path / "bad.png")
    assert r.returncode == 1 and "bad" in r.stderr and not (tmp_path / "bad.png").exists()


def test_cli_contact_sheet_from_json_and_pngs(tmp_path, synthetic_json):
    r = run_cli("contact-sheet", synthetic_json, "-o", tmp_path / "sheet.png", "--size", 48, "--tile", 96,
                "--columns", 2)
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "sheet.png") as im:
        sheet = np.asarray(im)
    assert sheet.shape[1] < sheet.shape[0] * 2  # 2 columns x 2 rows
    r = run_cli("contact-sheet", tmp_path / "sheet.png", "-o", tmp_path / "sheet2.png")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("path", real_json_files(), ids=lambda p: p.stem)
def test_every_buildable_real_model_renders(path):
    """Real DeepCAD models: those that build give four non-empty views; the others a typed error."""
    from cadvlm.cad.model import CADError
    from cadvlm.render.pipeline import pictures_of_json

    job = RenderJob(settings=RenderSettings(size=96), layout="separate")
    try:
        pictures, framing = pictures_of_json(path, path.stem, job, nthreads=1)
    except CADError as exc:
        assert exc.reason in ("no_extrude", "empty_solid", "build_failed")
        return
    assert len(pictures) == 4 and framing.half_width > 0
    for img in pictures.values():
        assert img.shape == (96, 96) and (img < 250).any() and img[0, 0] == 255


def _crash_on_boom(task):
    """A stand-in worker function: dies like a segfault inside OpenCascade for 'boom'."""
    import os

    if task[0] == "boom":
        os._exit(11)
    return {"id": task[0], "key": task[2], "files": [], "timings": {}}


def test_a_dying_worker_loses_only_its_model(tmp_path):
    from cadvlm.render.stage import _run_tasks

    tasks = [(f"m{i}", "unused", f"k{i}") for i in range(6)] + [("boom", "unused", "kb")]
    results = []
    _run_tasks(tasks, 2, RenderJob(settings=SMALL), tmp_path, results.append, fn=_crash_on_boom)
    by_id = {r["id"]: r for r in results}
    assert sorted(by_id) == sorted(t[0] for t in tasks) and len(results) == len(tasks)
    assert by_id["boom"]["error"] == "worker_crashed" and by_id["boom"]["key"] == "kb"
    assert all("error" not in by_id[f"m{i}"] for i in range(6))


def test_a_model_past_the_time_limit_is_counted_and_retried_with_a_longer_one(tmp_path, sources):
    """Every model over a limit no render can meet: all counted as timeout, nothing written; a
    rerun with the same limit does not try again, a longer limit renders them."""
    ext = make_extracted(tmp_path, dict(list(sources.items())[:2]))
    out = tmp_path / "rendered"
    m = run_render(ext, out, RenderJob(settings=SMALL), workers=2, progress=False, timeout_s=0.001)
    assert m["rendered"] == 0 and m["failed_by_reason"] == {"timeout": 2}
    assert not list(out.rglob("*.png"))
    again = run_render(ext, out, RenderJob(settings=SMALL), workers=2, progress=False, timeout_s=0.001)
    assert again["this_run"]["reused"] == 2 and again["this_run"]["rendered"] == 0
    longer = run_render(ext, out, RenderJob(settings=SMALL), workers=2, progress=False, timeout_s=120)
    assert longer["rendered"] == 2 and longer["failed"] == 0
