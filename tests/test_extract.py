"""The extract stage: deterministic, validated subsets; broken files skipped and counted."""

import json
import shutil

from cadvlm.extract import ExtractConfig, extract


def _folder(deepcad_dir, tmp_path):
    raw = tmp_path / "raw" / "0000"
    raw.mkdir(parents=True)
    for p in (deepcad_dir / "json").glob("*.json"):
        shutil.copy(p, raw / p.name)
    (raw / "99999998.json").write_text("{not json")
    return tmp_path / "raw"


def test_extract_real_folder_with_split_file(deepcad_dir, tmp_path):
    raw = _folder(deepcad_dir, tmp_path)
    ids = sorted(f"0000/{p.stem}" for p in raw.glob("0000/*.json"))
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ids[:18], "validation": ids[18:22], "test": ids[22:] + ["0000/missing"]}))
    cfg = ExtractConfig(raw, tmp_path / "out", {"train": 100, "validation": 2, "test": 100}, split_file=split, workers=1)
    m = extract(cfg)
    chosen = json.loads((tmp_path / "out" / "split.json").read_text())
    assert len(chosen["validation"]) == 2
    assert set(chosen["train"]) <= set(ids[:18]) and set(chosen["test"]) <= set(ids[22:])
    for s in chosen.values():
        for i in s:
            assert (tmp_path / "out" / "json" / f"{i}.json").is_file()
    # 25 real + 1 broken: 2 empty, 4 over the limits, 1 malformed; the rest are valid.
    assert m["skipped"]["over_limits"] + m["skipped"]["no_extrude"] + m["skipped"].get("malformed_json", 0) >= 5
    assert sum(m["selected"].values()) + m["skipped_total"] == m["validated"]


def test_extract_is_deterministic_and_grows_by_appending(deepcad_dir, tmp_path):
    raw = _folder(deepcad_dir, tmp_path)
    small = extract(ExtractConfig(raw, tmp_path / "a", {"train": 5, "validation": 0, "test": 0}, seed=3, workers=1))
    again = extract(ExtractConfig(raw, tmp_path / "b", {"train": 5, "validation": 0, "test": 0}, seed=3, workers=2))
    big = extract(ExtractConfig(raw, tmp_path / "c", {"train": 8, "validation": 0, "test": 0}, seed=3, workers=1))
    a, b, c = (json.loads((tmp_path / x / "split.json").read_text())["train"] for x in "abc")
    assert a == b and c[:5] == a and len(c) == 8
    assert small["selected"] == again["selected"] and big["selected"]["train"] == 8
