"""JSON -> code -> parse -> solid is the solid of the JSON (IoU >= 0.999), real and synthetic.

IoU here is a small local helper (exact volumes from OpenCascade booleans); the evaluation's
shared metric lives in cadvlm.metrics.
"""

import pytest

from cadvlm.cad.deepcad_json import read_model
from cadvlm.cad.model import CADError
from cadvlm.codec.openecad_parser import parse_code
from cadvlm.codec.openecad_writer import write_code
from conftest import map_on_cores, real_json_files

IOU_MIN = 0.999


def iou(a, b) -> float:
    from OCP.BRepAlgoAPI import BRepAlgoAPI_Common

    from cadvlm.geometry.solid import volume

    va, vb = volume(a), volume(b)
    common = volume(BRepAlgoAPI_Common(a, b).Shape())
    return common / (va + vb - common)


def roundtrip_iou(model) -> float | None:
    """IoU of the model's solid and its code's solid; None when the model itself does not build."""
    from cadvlm.geometry.solid import build_solid

    try:
        truth = build_solid(model)
    except CADError:
        return None
    back = parse_code(write_code(model), model.model_id)
    assert len(back.extrudes) == len(model.extrudes) and back.n_curves() == model.n_curves()
    return iou(truth, build_solid(back))


@pytest.mark.parametrize("path", real_json_files(), ids=lambda p: p.stem)
def test_real_samples(path):
    try:
        model = read_model(path)
    except CADError as exc:
        pytest.skip(f"not a model: {exc.reason}")
    value = roundtrip_iou(model)
    if value is None:
        pytest.skip("the sample itself does not build")
    assert value >= IOU_MIN


def _synthetic_iou(args: tuple) -> float | None:
    from cadvlm.synth import generate_model

    i, seed = args
    return roundtrip_iou(generate_model(i, seed=seed))


def _synthetic(n: int, seed: int):
    values = map_on_cores(_synthetic_iou, [(i, seed) for i in range(n)])
    low = [(i, v) for i, v in enumerate(values) if v is not None and v < IOU_MIN]
    assert not low, f"round trip IoU below {IOU_MIN}: {low}"
    return sum(v is not None for v in values)


def test_synthetic_sample():
    assert _synthetic(25, seed=3) >= 20


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_synthetic_1000():
    assert _synthetic(1000, seed=0) >= 950
