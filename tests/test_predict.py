"""`cadvlm predict`: picture inputs, outputs, and exit status, with a fake model.

The trained model is replaced by a callable (cmd_predict's `generate`), so these tests cover the
picture handling, safe parsing, isolated build and exports; test_predict_model.py runs the real
model path when a trained model folder is at hand.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from PIL import Image

from cadvlm.cad.model import CADModel
from cadvlm.codec.answer import wrap_answer
from cadvlm.codec.format import CodeFormat
from cadvlm.codec.openecad_writer import write_code
from cadvlm.model.manifest import ModelManifest
from cadvlm.predict import GRID_VIEWS, PictureError, add_arguments_predict, cmd_predict, compose_views, load_picture
from test_metrics import box

PLATE = CADModel([box(0, 0, 0.04, 0.02, 0.005)])
ANSWER = wrap_answer(write_code(PLATE))


@pytest.fixture(autouse=True)
def model_dir(tmp_path, monkeypatch):
    """A model folder holding only its manifest (the fake model stands in for the weights), in an
    otherwise empty working directory: predict needs nothing else."""
    monkeypatch.chdir(tmp_path)
    d = tmp_path / "models"
    d.mkdir()
    ModelManifest("full", None).write(d)  # OpenECAD v2, grid of four views, 512 px
    return d


def parse(argv):
    p = argparse.ArgumentParser()
    add_arguments_predict(p)
    return p.parse_args(argv)


def run(argv, answer=ANSWER, seen=None):
    def fake(picture, prompt, max_new_tokens):
        if seen is not None:
            seen.update(picture=picture, prompt=prompt, max_new_tokens=max_new_tokens)
        return answer

    return cmd_predict(parse(argv), generate=fake)


@pytest.fixture
def views(tmp_path) -> dict:
    out = {}
    for i, v in enumerate(("front", "top", "right")):
        im = Image.new("RGB", (300, 200), "white")
        im.paste((120, 120, 120), (50 + 10 * i, 50, 250, 150))
        out[v] = tmp_path / f"{v}.png"
        im.save(out[v])
    return out


def test_views_are_composed_into_the_training_grid(views, tmp_path):
    seen = {}
    out = tmp_path / "pred"
    args = [f"--{v}={p}" for v, p in views.items()] + ["-o", str(out), "--size", "64"]
    assert run(args, seen=seen) == 0
    pic = seen["picture"]
    assert pic.size == (128, 128) and pic.mode == "RGB"
    grid = np.asarray(pic.convert("L"))
    assert grid[:64, 64:].min() > 190  # iso cell (top right in the grid) left white (only its divider)
    assert grid[64:, :64].min() < 150  # the front view is there (bottom left)
    assert "four views" in seen["prompt"]
    for f in ("input.png", "answer.txt", "part.py", "part.step", "part.stl", "part_views.png"):
        assert (out / f).is_file(), f
    assert (out / "part.py").read_text().startswith("SketchPlane0")
    from cadvlm.geometry.mesh import read_step
    from cadvlm.geometry.solid import volume

    assert volume(read_step(out / "part.step")) == pytest.approx(0.04 * 0.02 * 0.005, rel=1e-6)


def test_a_grid_picture_and_a_json_model(deepcad_dir, tmp_path):
    seen = {}
    out = tmp_path / "j"
    assert run(["--json", str(deepcad_dir / "json" / "00003877.json"), "-o", str(out)], seen=seen) == 0
    assert seen["picture"].size == (1024, 1024)  # 2 x 512 (render defaults)
    seen2 = {}
    assert run([str(out / "input.png"), "-o", str(tmp_path / "g")], seen=seen2) == 0
    assert np.array_equal(np.asarray(seen2["picture"]), np.asarray(seen["picture"]))


def test_code_that_does_not_build_is_kept_and_fails(views, tmp_path):
    out = tmp_path / "bad"
    bad = ANSWER.replace("extent_one= 5.", "extent_one= 0.")
    assert bad != ANSWER
    assert run([str(views["front"]), "-o", str(out)], answer=bad) == 1
    assert (out / "part.py").read_text().strip() == bad.split("```python\n")[1].split("```")[0].strip()
    assert (out / "answer.txt").read_text() == bad
    assert not (out / "part.step").exists()
    # no code at all: the raw answer is kept as the code file
    assert run([str(views["front"]), "-o", str(out)], answer="I don't know.") == 1
    assert (out / "part.py").read_text() == "I don't know.\n"


def test_a_build_past_the_time_limit_fails_cleanly(views, tmp_path, capsys):
    assert run([str(views["front"]), "-o", str(tmp_path / "t"), "--timeout", "0.001"]) == 1
    assert "timeout" in capsys.readouterr().err


def test_bad_pictures_and_inputs_exit_2(views, tmp_path, capsys):
    text = tmp_path / "notes.png"
    text.write_text("not a picture")
    cut = tmp_path / "cut.png"
    cut.write_bytes(views["front"].read_bytes()[:200])
    for argv, words in (([str(tmp_path / "missing.png")], "no such file"),
                        ([str(text)], "not a picture"),
                        ([str(cut)], "unreadable"),
                        ([], "exactly one input"),
                        ([str(text), "--front", str(views["front"])], "exactly one input"),
                        (["--json", str(tmp_path / "none.json")], "no such file")):
        assert run(argv + ["-o", str(tmp_path / "o")]) == 2, argv
        assert words in capsys.readouterr().err


def test_no_trained_model_is_a_clear_error(views, tmp_path, capsys):
    args = parse([str(views["front"]), "--model", str(tmp_path / "nomodel"), "-o", str(tmp_path / "o")])
    assert cmd_predict(args) == 2
    assert "no cadvlm_model.json" in capsys.readouterr().err
    args = parse([str(views["front"]), "-o", str(tmp_path / "o")])  # a manifest, but no weights
    assert cmd_predict(args) == 2
    assert "cannot load the model" in capsys.readouterr().err


def test_picture_helpers(tmp_path):
    rgba = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    rgba.paste((0, 0, 0, 255), (10, 5, 30, 15))
    grid = compose_views({"top": rgba}, 32)
    assert grid.shape == (64, 64) and grid.dtype == np.uint8
    assert grid[:32, :32].min() < 50 and grid[:32, :32].max() == 255  # transparent -> white, part dark
    with pytest.raises(PictureError):
        compose_views({"back": rgba}, 32)
    with pytest.raises(PictureError):
        load_picture(tmp_path)
    assert set(GRID_VIEWS) == {"front", "top", "right", "iso"}


def test_compact_answers_are_sized_by_longest_mm(views, tmp_path):
    """Compact code has no scale: the part is written with its longest side at --longest-mm."""
    from cadvlm.codec.compact import write_compact
    from cadvlm.geometry.mesh import read_step
    from cadvlm.geometry.solid import bounding_box

    model = tmp_path / "compact_model"
    model.mkdir()
    ModelManifest("full", None, code=CodeFormat("compact")).write(model)  # the folder says the language
    out = tmp_path / "c"

    def fake(picture, prompt, max_new_tokens):
        return wrap_answer(write_compact(PLATE))

    argv = [f"--{v}={p}" for v, p in views.items()] + ["-o", str(out), "--size", "64", "--longest-mm", "40",
                                                        "--model", str(model)]
    assert cmd_predict(parse(argv), generate=fake) == 0
    lo, hi = bounding_box(read_step(out / "part.step"))
    assert np.allclose(np.sort(hi - lo), [0.005, 0.02, 0.04], atol=4e-4)  # 40 x 20 x 5 mm up to the 8-bit grid
    assert (out / "part.py").read_text().startswith("size ")


# ------------------------------------------------------------------------------ --candidates nearest

def test_candidates_nearest_gives_back_the_training_part_in_the_picture(tmp_path):
    """A model that answers garbage, one sample of the wrong part, and the 2 nearest training answers:
    the training part drawn in the picture comes back, and candidates.json says where from."""
    import json

    from retrieval_fixture import bank_folder

    bank = bank_folder(tmp_path / "bank")
    out = tmp_path / "near"
    argv = [str(bank.pictures[2]), "--model", str(bank.models), "-o", str(out), "--candidates", "nearest",
            "--nearest", "2", "--samples", "1"]
    sampled = []

    def sample(picture, prompt, n):
        sampled.append(n)
        return [bank.answers[0]]

    assert cmd_predict(parse(argv), generate=lambda *a: "Of course, here are the codes:\n```python\nLoops0 = [\n```",
                       sample=sample) == 0
    assert sampled == [1]
    cands = json.loads((out / "candidates.json").read_text())
    assert [c["kind"] for c in cands["candidates"]] == ["greedy", "sample", "nearest", "nearest"]
    assert cands["candidates"][2]["train_id"] == "part2" and cands["candidates"][3]["train_id"] != "part2"
    assert cands["chosen"] == 2 and cands["chosen_kind"] == "nearest"
    assert cands["built"] == len({c["answer"] for c in cands["candidates"][1:]})  # each distinct answer built once
    scores = [c["silhouette_iou"] for c in cands["candidates"]]
    assert scores[0] is None and scores[2] > max(scores[1], scores[3])
    assert (out / "answer.txt").read_text() == bank.answers[2] and (out / "part.step").is_file()


def test_candidates_nearest_without_training_pictures_is_a_clear_error(views, tmp_path, capsys):
    out = tmp_path / "none"
    assert run([str(views["front"]), "-o", str(out), "--candidates", "nearest"]) == 2
    assert "no training pictures" in capsys.readouterr().err and not out.exists()
    assert run([str(views["front"]), "-o", str(out), "--candidates", "nearest", "--nearest", "0"]) == 2
    assert "--nearest must be 1 or more" in capsys.readouterr().err
