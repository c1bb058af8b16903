"""The compact code format: round trip, refusal of bad text, and its plumbing through convert/evaluate."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from cadvlm.cad.model import CADError
from cadvlm.synth import generate_model, model_json_text
from cadvlm.codec.answer import CodeParseError, wrap_answer
from cadvlm.codec.compact import longest_loop, parse_compact, write_compact
from cadvlm.codec.format import CodeFormat, read_converted_format
from cadvlm.data.convert import ConvertConfig, convert, count_tokens
from convert_fixture import make_dataset

SQUARE = "plane 128 128 128 254 127 127 127 254 127\nloop\nline 200 50\nline 200 200\nline 50 200\nline 50 50\n" \
         "extrude new one 200\nend\n"


def _box(model):
    from cadvlm.geometry.solid import bounding_box, build_solid

    lo, hi = bounding_box(build_solid(model))
    return np.asarray(hi) - np.asarray(lo)


def test_a_square_plate_reads_as_written():
    m = parse_compact(SQUARE)
    (ex,) = m.extrudes
    assert np.allclose(ex.plane.normal, [1, 0, 0]) and np.allclose(ex.plane.x_axis, [0, 1, 0])
    assert [type(c).__name__ for c in ex.profile.loops[0].curves] == ["Line"] * 4
    assert ex.extent_one == pytest.approx((200 / 255 * 2 - 1) * 2)
    size = _box(m)  # 150 levels of 2/255 wide in y and z
    assert size[1] == pytest.approx(150 * 2 / 255) and size[2] == pytest.approx(150 * 2 / 255)


def test_the_size_line_states_the_extents_first():
    """`size` is the model's box in levels (lengths), first; the parser takes it or its absence."""
    model = generate_model(5)
    code = write_compact(model)
    first, rest = code.split("\n", 1)
    words = first.split()
    assert words[0] == "size" and len(words) == 4
    ext = np.array([int(w) for w in words[1:]]) * 2 / 255
    box = _box(parse_compact(code))
    assert ext.max() == pytest.approx(1.5, abs=0.01)  # normalised: the longest side is 1.5
    assert np.all(box <= ext + 0.02)  # the box of the extruded profiles holds the solid's
    assert parse_compact(rest).n_curves() == parse_compact(code).n_curves()
    assert parse_compact("size 0 255 3\n" + SQUARE).n_curves() == 4


@pytest.mark.parametrize("index", range(12))
def test_round_trip_keeps_the_shape(index):
    """JSON model -> compact -> parse: same commands, same proportions up to the grid."""
    model = generate_model(index)
    code = write_compact(model)
    assert code.endswith("end\n") and count_tokens(code) < count_tokens(CodeFormat().write(model))
    back = parse_compact(code)
    assert len(back.extrudes) == len(model.extrudes)
    assert [e.operation for e in back.extrudes] == [e.operation for e in model.extrudes]
    a, b = _box(model), _box(back)
    assert np.allclose(a / a.max(), b / b.max(), atol=0.03)
    assert write_compact(model) == code  # deterministic


def test_round_trip_iou_is_high():
    from cadvlm.geometry.solid import build_solid
    from cadvlm.metrics import compare, prepare

    ious = []
    for i in range(6):
        m = generate_model(i)
        p = parse_compact(write_compact(m))
        ious.append(compare(prepare(build_solid(p), 1024, 0), prepare(build_solid(m), 1024, 1))["iou"])
    assert min(ious) > 0.8 and np.mean(ious) > 0.9


def test_fewer_bits_keep_the_directions_grid():
    """A plane's direction levels run 0..254 whatever the bits: a 6-bit program (coordinates 0..63)
    must still read its normals, and a 6-bit origin past 63 is off the grid."""
    m = generate_model(1)
    code = write_compact(m, 6)
    assert any(int(k) > 63 for line in code.splitlines() if line.startswith("plane") for k in line.split()[4:])
    assert parse_compact(code, bits=6).n_curves() == m.n_curves()
    with pytest.raises(CodeParseError, match="off the grid"):
        parse_compact(SQUARE.replace("plane 128 128 128", "plane 64 128 128"), bits=6)


def test_more_bits_cost_few_tokens():
    m = generate_model(1)
    assert parse_compact(write_compact(m, 10), bits=10).n_curves() == m.n_curves()
    with pytest.raises(CodeParseError):
        parse_compact(write_compact(m, 10), bits=8)  # levels above 255 are off an 8-bit grid


@pytest.mark.parametrize("text, reason", [
    ("", "parse_error"),
    (SQUARE.replace("end\n", ""), "parse_error"),  # truncated
    (SQUARE + "plane 1 2 3\n", "parse_error"),  # text after end
    (SQUARE.replace("line 200 50", "line 200"), "parse_error"),  # arity
    (SQUARE.replace("line 200 50", "line 200 256"), "parse_error"),  # off the grid
    (SQUARE.replace("line 200 50", "line 200 -5"), "parse_error"),
    (SQUARE.replace("line 200 50", "spline 200 50"), "parse_error"),
    (SQUARE.replace("new one 200", "new two 200"), "parse_error"),
    (SQUARE.replace("new one", "fuse one"), "parse_error"),
    (SQUARE.replace("127 254 127\n", "254 127 127\n"), "bad_plane"),  # x axis along the normal
    (SQUARE.replace("line 200 200", "line 200 50"), "zero_length_curve"),
    (SQUARE.replace("line 200 200", "arc 200 100 200 200"), "degenerate_arc"),  # collinear
    (SQUARE.replace("line 200 200\nline 50 200", "line 50 200\nline 200 200"), "self_crossing_loop"),
    (SQUARE.replace("line 200 200\n", "circle 100 100 5\n"), "open_loop"),
    ("__import__('os')\nend\n", "parse_error"),
    ("size 1 2\n" + SQUARE, "parse_error"),  # arity
    ("size 1 2 256\n" + SQUARE, "parse_error"),  # off the grid
    ("size 1 2 3\nsize 1 2 3\n" + SQUARE, "parse_error"),  # twice
    (SQUARE.replace("loop\n", "size 1 2 3\nloop\n"), "parse_error"),  # not first
    (SQUARE.replace("end\n", "") + "size 1 2 3\n" + SQUARE, "parse_error"),  # between extrudes
])
def test_bad_text_is_refused_with_a_reason(text, reason):
    with pytest.raises(CADError) as e:
        parse_compact(text, "m1")
    assert e.value.reason == reason and e.value.model_id == "m1"


def test_fuzzed_text_raises_only_cad_errors():
    rng = random.Random(0)
    codes = [write_compact(generate_model(i)) for i in range(4)] + [SQUARE]
    words = ["plane", "loop", "line", "arc", "circle", "extrude", "end", "new", "cut", "two", "0", "255", "999",
             "-1", "1e3", "\x00", "٣"]
    n_ok = 0
    for k in range(400):
        toks = rng.choice(codes).split(" ")
        op = k % 4
        if op == 0:
            text = " ".join(toks)[: rng.randrange(1, len(" ".join(toks)))]
        elif op == 1:
            i = rng.randrange(len(toks))
            toks[i] = rng.choice(words)
            text = " ".join(toks)
        elif op == 2:
            del toks[rng.randrange(len(toks))]
            text = " ".join(toks)
        else:
            lines = " ".join(toks).split("\n")
            rng.shuffle(lines)
            text = "\n".join(lines)
        try:
            parse_compact(text)
            n_ok += 1
        except CADError:
            pass
    assert n_ok < 400


def test_answers_and_switch():
    code = write_compact(generate_model(2))
    compact = CodeFormat("compact")
    assert compact.parse_answer(wrap_answer(code), "x").n_curves() == compact.parse(code).n_curves()
    assert compact.parse_answer(code, "x").n_curves() == compact.parse(code).n_curves()  # bare code
    with pytest.raises(ValueError):
        CodeFormat("python")
    with pytest.raises(ValueError):
        CodeFormat("compact", 3)


def test_longest_loop_counts_the_curves_of_each_loop():
    code = "size 1 1 1\nplane 1 2 3 4 5 6 7 8 9\nloop\nline 1 2\nline 3 4\narc 5 6 7 8\nloop\ncircle 9 9 2\nextrude new one 5\nend\n"
    assert longest_loop(code) == 3
    assert longest_loop("size 1 1 1\nend\n") == 0


def test_convert_in_compact_writes_parseable_answers(tmp_path):
    sources = {f"{i:04d}/{i:08d}": model_json_text(i, seed=5) for i in range(4)}
    extracted, rendered = make_dataset(tmp_path, sources)
    out = tmp_path / "converted"
    m = convert(extracted, rendered, out, ConvertConfig(workers=1, format="compact"))
    assert m["skipped"] == {} and m["code_format"] == "compact"
    fmt = read_converted_format(out)
    assert fmt == CodeFormat("compact", 8)
    train_loops = []
    for name in ("train", "val", "test"):
        for item in json.loads((out / f"{name}.json").read_text()):
            answer = item["conversations"][1]["value"]
            assert answer.rstrip("`\n").endswith("end")
            CodeFormat("compact").parse_answer(answer, item["id"])
            if name == "train":
                train_loops.append(longest_loop(fmt.code_of(answer)))
    # the longest loop the model will learn from travels with the format, for kept decoding
    assert fmt.max_loop_curves == max(train_loops) > 0
    assert CodeFormat.from_json(fmt.to_json()).max_loop_curves == fmt.max_loop_curves
    assert m["answer_tokens"]["max"] < 400
    with pytest.raises(ValueError):
        ConvertConfig(format="compact", compact_bits=3)
    with pytest.raises(ValueError):
        ConvertConfig.from_params({"convert": {"format": "python"}})


def test_evaluate_reads_the_format_from_the_model_folder_and_the_oracle_is_valid(tmp_path):
    from cadvlm.eval.stage import EvalConfig, ScoreConfig, run_stage
    from cadvlm.model.manifest import ModelManifest

    sources = {f"m{i}": model_json_text(i, seed=0) for i in range(5)}
    extracted, rendered = make_dataset(tmp_path, sources, splits={"train": ["m0", "m1"], "validation": ["m2"],
                                                                   "test": ["m3", "m4"]})
    converted = tmp_path / "converted"
    convert(extracted, rendered, converted, ConvertConfig(workers=1, format="compact"))
    # the chain convert_info -> manifest -> evaluate carries the language
    manifest = ModelManifest.from_training_data("full", None, converted, rendered)
    assert manifest.code == CodeFormat("compact", 8)
    manifest.write(tmp_path / "models")
    cfg = EvalConfig(converted_dir=converted, rendered_dir=rendered, extracted_dir=extracted, model_dir=tmp_path / "models",
                     out_dir=tmp_path / "eval", metrics_path=tmp_path / "eval.json", baseline_candidates=2,
                     sheet_samples=0, score=ScoreConfig(workers=1, timeout_s=60, progress=False))
    out = run_stage(cfg, generate=lambda recs: [r.answer for r in recs])
    m = out["metrics"]
    assert m["invalid_ratio"] == 0.0 and m["iou_mean"] > 0.8
    oracle = m["baselines"]["oracle"]
    assert oracle["invalid_ratio"] == 0.0 and oracle["command_accuracy"]["command"] == 1.0
    assert m["baselines"]["constant"]["invalid_ratio"] == 0.0


def test_code_and_parse_commands_speak_the_model_folders_language(deepcad_dir, tmp_path, monkeypatch, capsys):
    """`cadvlm code` / `parse` default to the language of ./models, and --format overrides it."""
    from cadvlm.cli import main
    from cadvlm.model.manifest import ModelManifest

    monkeypatch.chdir(tmp_path)
    src = str(deepcad_dir / "json" / "00000007.json")
    assert main(["code", src]) == 0 and capsys.readouterr().out.startswith("SketchPlane0")  # no models/: OpenECAD
    ModelManifest("full", None, code=CodeFormat("compact", 8)).write("models")
    assert main(["code", src]) == 0
    compact = capsys.readouterr().out
    assert compact.startswith("size ") and compact.endswith("end\n")
    (tmp_path / "c.txt").write_text(compact)
    assert main(["parse", "c.txt", "-o", "c.json"]) == 0 and (tmp_path / "c.json").is_file()
    assert main(["parse", "c.txt", "-o", "x.json", "--format", "openecad"]) == 1  # compact is no OpenECAD
    assert "read as OpenECAD v2" in capsys.readouterr().err
    assert main(["code", src, "--format", "openecad"]) == 0 and capsys.readouterr().out.startswith("SketchPlane0")
