"""The extract stage: deterministic, validated subsets; broken files skipped and counted."""

import json
import shutil
import time

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


# ---- scale: lazy feeding, the rank-order rule, the time limit (no real samples needed) ------


def _cylinders(root, n, broken=()):
    """n valid one-extrude models (cylinders of growing radius) in DeepCAD's XXXX/XXXXXXXX layout,
    plus malformed files at the given positions."""
    from cadvlm.cad.deepcad_json import dumps, model_to_json
    from cadvlm.cad.model import CADModel, Circle, Extrude, Loop, Plane, Profile

    plane = Plane([0, 0, 0], [1, 0, 0], [0, 0, 1])
    for i in range(n):
        path = root / f"{i // 100:04d}" / f"{i:08d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        if i in broken:
            path.write_text('{"entities": ')
            continue
        model = CADModel([Extrude(plane, Profile([Loop([Circle([0, 0], 0.01 + 0.0001 * i)])]), extent_one=0.02)])
        path.write_text(dumps(model_to_json(model)))
    return root


def _first_valid_in_rank_order(raw, sizes, seed, bad):
    from cadvlm.extract import candidates

    pools = candidates(ExtractConfig(raw, raw, sizes, seed=seed))
    return {s: [i for i in ids if i not in bad][: sizes.get(s, 0)] for s, ids in pools.items()}


def test_only_about_the_quota_is_parsed_and_the_choice_is_the_rank_order_prefix(tmp_path):
    broken = set(range(0, 400, 9))
    raw = _cylinders(tmp_path / "raw", 400, broken)
    bad = {f"{i // 100:04d}/{i:08d}" for i in broken}
    sizes = {"train": 30, "validation": 4, "test": 6}
    want = _first_valid_in_rank_order(raw, sizes, 7, bad)
    splits = []
    for workers in (1, 3):
        m = extract(ExtractConfig(raw, tmp_path / f"out{workers}", sizes, seed=7, workers=workers))
        splits.append((tmp_path / f"out{workers}" / "split.json").read_bytes())
        assert json.loads(splits[-1]) == want
        assert m["selected"] == sizes and m["shortfall"] == {}
        # decided in rank order: the prefix up to each split's last chosen model, whatever the workers
        assert m["validated"] == sum(len(v) for v in want.values()) + m["skipped_total"]
        assert m["skipped"] == {"malformed_json": m["skipped_total"]}
        # the work done: the decided prefix plus about the tasks in flight when a quota was met
        # (a little more when a slow task lets the others run ahead: allow twice that per split)
        assert m["validated"] <= m["files_parsed"] <= m["validated"] + 3 * 2 * workers
        assert m["files_parsed"] < 1.5 * sum(sizes.values())  # not 400
        assert m["solids_built"] <= m["files_parsed"] - m["skipped_total"]
    assert splits[0] == splits[1]


def _slow_for_one(args):
    """A stand-in worker check: the build of model 0000/00000005 never ends."""
    from cadvlm.extract import _check_task

    if args[1] == "0000/00000005":
        time.sleep(300)
    return _check_task(args)


def test_a_model_past_the_time_limit_is_killed_and_skipped(tmp_path):
    raw = _cylinders(tmp_path / "raw", 40)
    slow = "0000/00000005"
    sizes = {"train": 40, "validation": 40, "test": 40}  # all of them: the slow one is needed
    t = time.perf_counter()
    m = extract(ExtractConfig(raw, tmp_path / "out", sizes, workers=2, timeout_s=3), check=_slow_for_one)
    assert time.perf_counter() - t < 120
    assert m["skipped"] == {"timeout": 1} and sum(m["selected"].values()) == 39
    chosen = json.loads((tmp_path / "out" / "split.json").read_text())
    assert slow not in [i for ids in chosen.values() for i in ids] and m["solids_built"] == m["files_parsed"] == 40
    assert chosen == _first_valid_in_rank_order(raw, sizes, 0, {slow})
