"""A small OpenECAD dataset set, written in the layout of OpenECAD's releases (cadvlm.extract_openecad).

data.json holds LLaVA-format records whose answers are OpenECAD v2 code (`CodeFormat().answer` of
synthetic parts), with the three prompts OpenECAD's json2dataset.py writes; images/ holds their
pictures as OpenECAD ships them: JPEG, one 640x480 view or a 1280x960 2x2 sheet, drawn here with
the project's renderer. Beside the good records: one answer that does not parse, one that parses
but builds nothing, one over DeepCAD's limits, one whose picture is missing, one with no code at
all, one malformed record and one repeated id.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from cadvlm.cad.deepcad_json import read_model
from cadvlm.cad.model import CADModel, Circle, Extrude, Loop, Operation, Plane, Profile
from cadvlm.codec.format import CodeFormat
from cadvlm.synth import model_json_text

PROMPTS = {  # OpenECAD's wording for its three kinds of picture (Bethany/json2dataset.py)
    "iso": "This image is a view of a 3D model from a certain angle. Please try to use OpenECAD-style API "
           "to render this model.",
    "transparent": "This image is a transparent view of a 3D model from a certain angle. Please try to use "
                   "OpenECAD-style API to render this model.",
    "grid": "This image contains 4 views of a 3D model from a certain angle and three orthographic views. "
            "Please try to use OpenECAD-style API to render this model.",
}
# Good parts: id -> (synthetic model index, kind of picture)
GOOD = {"00000011": (0, "iso"), "00000012": (1, "iso"), "00000013": (2, "transparent"), "00000014": (3, "grid"),
        "00000015": (4, "iso"), "00000016": (5, "grid"), "00000017": (6, "iso")}
BAD = {"00000021": "parse_error", "00000022": "empty_solid", "00000023": "over_limits",
       "00000024": "image_missing", "00000025": "no_code"}
REFUSED = {"malformed_record": 1, "duplicate_id": 1}
# An official-format split file (DeepCAD's "XXXX/XXXXXXXX" ids for some, as the real one names them).
SPLIT = {"train": ["0000/00000011", "00000012", "00000013", "00000014", "00000021", "00000022", "00000023"],
         "validation": ["00000015", "00000024"], "test": ["0000/00000016", "00000017", "00000025"]}
XY = Plane([0, 0, 0], [1, 0, 0], [0, 0, 1])


def _cylinder(x: float, z: float, r: float = 0.01, op=Operation.NEW_BODY) -> Extrude:
    return Extrude(Plane([0, 0, z], [1, 0, 0], [0, 0, 1]), Profile([Loop([Circle([x, 0], r)])]), op, extent_one=0.01)


def _record(model_id: str, answer: str, kind: str = "iso") -> dict:
    return {"id": model_id, "image": f"{model_id}.jpg", "conversations": [
        {"from": "human", "value": f"<image>\n{PROMPTS[kind]}"}, {"from": "gpt", "value": answer}]}


def _picture(data: str, model_id: str, kind: str) -> Image.Image:
    """The part drawn by the project's renderer, laid out as OpenECAD's picture of that kind."""
    from cadvlm.render.pipeline import RenderJob, pictures_of_json
    from cadvlm.render.views import RenderSettings

    settings = RenderSettings(size=480, supersample=1)
    if kind == "grid":
        job = RenderJob(settings=settings, views=("iso", "right", "front", "top"), layout="grid")
        canvas = Image.new("RGB", (1280, 960), "white")
    else:
        job = RenderJob(settings=settings, views=("iso",), layout="separate")
        canvas = Image.new("RGB", (640, 480), "white")
    picture = next(iter(pictures_of_json(json.loads(data), model_id, job)[0].values()))
    if kind == "transparent":
        picture = (255 - (255 - picture.astype(np.int16)) // 3).astype(np.uint8)  # a lighter stand-in
    sheet = Image.fromarray(picture).convert("RGB")
    canvas.paste(sheet, ((canvas.width - sheet.width) // 2, (canvas.height - sheet.height) // 2))
    return canvas


def write_set(root: Path) -> Path:
    """The set folder (data.json, images/, split.json) under root."""
    code = CodeFormat()
    (root / "images").mkdir(parents=True)
    records = []
    for model_id, (index, kind) in GOOD.items():
        data = model_json_text(index, 0)
        records.append(_record(model_id, code.answer(read_model(json.loads(data), model_id)), kind))
        _picture(data, model_id, kind).save(root / "images" / f"{model_id}.jpg", "JPEG", quality=90)
    some = records[0]["conversations"][1]["value"]
    bad = {
        "00000021": some[: len(some) // 2] + "\n```",  # cut mid-program: does not parse
        "00000022": code.answer(CADModel([_cylinder(0, 0), _cylinder(0.1, 0, op=Operation.INTERSECT)])),
        "00000023": code.answer(CADModel([_cylinder(0, 0.01 * k, op=Operation.JOIN if k else Operation.NEW_BODY)
                                          for k in range(11)])),  # 11 extrudes > 10
        "00000024": some,  # its picture is not there
        "00000025": "Of course, here is a bracket.",
    }
    for model_id, answer in bad.items():
        records.append(_record(model_id, answer))
        if model_id != "00000024":
            Image.new("RGB", (640, 480), "white").save(root / "images" / f"{model_id}.jpg", "JPEG")
    records.append({"id": "00000031", "image": "00000031.jpg", "conversations": []})  # malformed
    records.append(dict(records[1]))  # the same id again
    (root / "data.json").write_text(json.dumps(records, indent=4))
    (root / "split.json").write_text(json.dumps(SPLIT))
    return root
