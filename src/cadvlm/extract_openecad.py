"""An OpenECAD dataset set as the extract stage's source (`data.source: openecad`).

What a set is (facts read from OpenECAD's public sources, github.com/Yuki-Kokomi/OpenECAD_Project,
`Bethany/json2dataset.py` and `Bethany/step2img.py`, and the sets published on the Hugging Face hub,
e.g. `Yuki-Kokomi/OpenECADv2-Datasets`): a LLaVA-format JSON list, one record per part,

    {"id": "00001234", "image": "00001234.jpg", "conversations": [
        {"from": "human", "value": "<image>\\n<prompt>"},
        {"from": "gpt", "value": "Of course, here are the codes:\\n```python\\n<OpenECAD v2 code>```"}]}

beside a folder of JPEG pictures. A picture is one of three kinds, and the prompt says which:
a view from near (1, 1, 1) (`iso` here), a transparent view from (1, 1, 1) (`transparent`), or a
2x2 sheet of the (1, 1, 1), +X, +Y and +Z views (`grid`, twice the single view's 640x480 size).
The code is OpenECAD v2 in millimetres.

`data.raw_dir` names the set folder: the records are `data.json` there (or the folder's only
`*.json` file), the pictures are found under `images/`, the folder itself, or one of its
subfolders (whichever holds the first records' pictures), as the set's archives unpack.

Each record's answer is parsed with the project's safe OpenECAD v2 parser (never executed),
checked against the limits and built in the extract stage's time-limited workers, exactly like a
DeepCAD file; its picture must be there and decode. The chosen parts are written in the same
contract as a DeepCAD folder gives (json/<id>.json, split.json), plus `pictures/<id>.<ext>` (the
set's picture, byte for byte) and `pictures.json` ({id: {file, kind, size, format, prompt}}), which
the render stage imports instead of ray casting and the convert stage reads for the prompt.
Records that are not even well-formed are refused on reading and counted (`refused_records`).
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from cadvlm.cad.limits import Limits
from cadvlm.pictures import PICTURES_DIR, PICTURES_FILE, picture_kind
from cadvlm.subset import order_pools

IMAGE_TAG = "<image>"


def records_file(raw_dir: Path) -> Path:
    """data.json in the set folder, else its only *.json file (hidden files aside)."""
    raw_dir = Path(raw_dir)
    if (raw_dir / "data.json").is_file():
        return raw_dir / "data.json"
    found = sorted(p for p in raw_dir.glob("*.json") if not p.name.startswith("."))
    if len(found) != 1:
        raise ValueError(f"{raw_dir}: an OpenECAD set folder needs data.json (or exactly one *.json file); "
                         f"found {[p.name for p in found] or 'none'}")
    return found[0]


def _safe_rel(path) -> bool:
    if not isinstance(path, str) or not path or "\\" in path or "\0" in path or path.startswith("/"):
        return False
    return all(p not in ("", ".", "..") for p in path.split("/"))


def read_records(path: Path) -> tuple[dict, Counter]:
    """({id: (image, prompt, answer)} in file order, refused records by reason)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    records, refused = {}, Counter()
    for item in data:
        conv = item.get("conversations") if isinstance(item, dict) else None
        if not (isinstance(conv, list) and len(conv) == 2 and all(isinstance(t, dict) for t in conv)
                and [t.get("from") for t in conv] == ["human", "gpt"]
                and all(isinstance(t.get("value"), str) for t in conv) and IMAGE_TAG in conv[0]["value"]
                and _safe_rel(item.get("image"))):
            refused["malformed_record"] += 1
            continue
        model_id = item.get("id")
        if not _safe_rel(model_id):
            refused["bad_id"] += 1
        elif model_id in records:  # one picture per id: a second record of it is dropped
            refused["duplicate_id"] += 1
        else:
            records[model_id] = (item["image"], conv[0]["value"].replace(IMAGE_TAG, "").strip(), conv[1]["value"])
    return records, refused


def picture_root(raw_dir: Path, records: dict, probe: int = 20) -> Path:
    """The folder the records' image paths are relative to: images/, the set folder or a subfolder."""
    raw_dir = Path(raw_dir)
    images = [img for img, _, _ in list(records.values())[:probe]]
    roots = [raw_dir / "images", raw_dir] + sorted(p for p in raw_dir.iterdir()
                                                   if p.is_dir() and p.name not in ("images",) and
                                                   not p.name.startswith("."))
    hits = [sum((r / img).is_file() for img in images) for r in roots]
    best = max(range(len(roots)), key=lambda k: (hits[k], -k))
    return roots[best] if hits[best] else raw_dir / "images"


def check_record(args) -> tuple:
    """Worker: (model_id, answer, picture path, limits) -> (reason or None, built, payload or None).

    Cheap checks first (picture there, parse, limits), then the picture decodes, then the solid.
    The payload of a valid record: its DeepCAD JSON text, picture size and format.
    """
    from cadvlm.cad.deepcad_json import dumps, model_to_json, read_model
    from cadvlm.cad.limits import check_limits
    from cadvlm.cad.model import CADError
    from cadvlm.codec.format import CodeFormat
    from cadvlm.geometry.solid import bounding_box, build_solid

    model_id, answer, picture, limits = args
    if not Path(picture).is_file():
        return "image_missing", False, None
    try:
        model = CodeFormat().parse_answer(answer, model_id)  # OpenECAD v2, never executed
        check_limits(model, limits)
    except CADError as exc:
        return exc.reason, False, None
    except Exception as exc:  # noqa: BLE001 - a parser bug must not take the batch down: counted
        return f"unexpected_{type(exc).__name__}", False, None
    try:
        from PIL import Image

        with Image.open(picture) as im:
            size, fmt = im.size, im.format
            im.load()  # a truncated file fails here, not an hour into training
    except Exception:  # noqa: BLE001 - PIL raises many types for bad files
        return "image_unreadable", False, None
    try:
        shape = build_solid(model)
        text = dumps(model_to_json(model, bbox=bounding_box(shape)))
        read_model(json.loads(text), model_id)  # what downstream reads back must read
    except CADError as exc:
        return exc.reason, True, None
    except Exception as exc:  # noqa: BLE001 - OCC's Standard_Failure and friends: counted
        return f"unexpected_{type(exc).__name__}", True, None
    return None, True, {"json": text, "size": [int(size[0]), int(size[1])], "format": fmt}


class OpenECADSet:
    """The extract stage's view of a set: candidates per split, worker tasks, and the output."""

    check = staticmethod(check_record)
    warmup = ("cadvlm.extract_openecad", "cadvlm.codec.format", "cadvlm.geometry.solid", "PIL.Image")

    def __init__(self, cfg):  # an ExtractConfig
        self.cfg = cfg
        self.records, self.refused = read_records(records_file(cfg.raw_dir))
        self.root = picture_root(cfg.raw_dir, self.records)
        official = None
        if cfg.split_file:  # DeepCAD's official split names ids "XXXX/XXXXXXXX"; OpenECAD's are the stems
            raw = json.loads(Path(cfg.split_file).read_text())
            official = {s: [i if i in self.records else str(i).rsplit("/", 1)[-1] for i in raw.get(s) or []]
                        for s in raw}
        self.pools = order_pools(self.records, cfg.seed, official, lambda i: i in self.records)
        self.valid: dict = {}  # id -> payload of a valid record

    def task(self, model_id: str):
        image, _, answer = self.records[model_id]
        limits: Limits = self.cfg.limits
        return model_id, answer, str(self.root / image), limits

    def outcome(self, model_id: str, value) -> tuple[str | None, bool]:
        reason, built, payload = value
        if reason is None:
            self.valid[model_id] = payload
        return reason, built

    def write(self, tmp: Path, chosen: dict) -> None:
        pictures = {}
        for ids in chosen.values():
            for i in ids:
                image, prompt, _ = self.records[i]
                payload = self.valid[i]
                dst = tmp / "json" / f"{i}.json"
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_text(payload["json"], encoding="utf-8")
                rel = f"{PICTURES_DIR}/{i}{Path(image).suffix.lower() or '.jpg'}"
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.root / image, tmp / rel)
                pictures[i] = {"file": rel, "kind": picture_kind(prompt, payload["size"]), "size": payload["size"],
                               "format": payload["format"], "prompt": prompt}
        (tmp / PICTURES_FILE).write_text(json.dumps(pictures, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
