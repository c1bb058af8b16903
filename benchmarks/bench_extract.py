"""Extraction at DeepCAD scale: a 178K-file folder, the official split format, a 1000/50/100 subset.

Usage: python benchmarks/bench_extract.py [--root /tmp/cadvlm_bench_extract] [--workers 2]
                                          [--sizes 1000 50 100] [--sources 300]

The folder is made once under --root and reused (178,000 hard links take a while): DeepCAD's
layout `cad_json/XXXX/XXXXXXXX.json` for XXXX = 0000..0177, 1,000 files each, every one a hard
link to one of --sources synthetic models (plus the real samples of ../shared/deepcad when
present); 3% of the ids point at broken files (malformed JSON, a missing key, a dangling
reference, a zero-depth extrude), which extract must skip and count. The split file has the
official format ({"train", "validation", "test"}, ids "XXXX/XXXXXXXX", ~90/5/5), 200 ids whose
file is missing, and leaves 500 files out of any split.

Prints: the time to list the folder and check the split file's ids (one listing) against the
old way (a stat per id), then for the extract run: wall time, files parsed, solids built, and
the over-parse ratio files parsed / models requested (target: under 60 s on 2 cores, ratio
<= 1.2). Figures only; no asserts (the machine may be shared).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

FOLDERS, PER_FOLDER = 178, 1000
BROKEN_SHARE = 0.03
REAL = Path(__file__).resolve().parents[2] / "shared" / "deepcad" / "json"


def _h(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def _broken_files(src: Path, model: Path) -> list[Path]:
    """A few broken variants of one good model: each is a reason extract must count."""
    data = json.loads(model.read_text())
    ext = next(k for k, v in data["entities"].items() if v["type"] == "ExtrudeFeature")
    variants = {"malformed": model.read_text()[:150]}
    d = json.loads(model.read_text())
    d.pop("sequence")
    variants["missing_key"] = json.dumps(d)
    d = json.loads(model.read_text())
    d["entities"][ext]["profiles"][0]["sketch"] = "no_such_sketch"
    variants["dangling"] = json.dumps(d)
    d = json.loads(model.read_text())
    d["entities"][ext]["extent_one"]["distance"]["value"] = 0.0
    variants["zero_extent"] = json.dumps(d)
    out = []
    for name, text in variants.items():
        p = src / f"broken_{name}.json"
        p.write_text(text)
        out.append(p)
    return out


def make_folder(root: Path, n_sources: int) -> tuple[Path, Path]:
    raw, split_file, stamp = root / "cad_json", root / "split.json", root / "DONE"
    if stamp.is_file():
        return raw, split_file
    shutil.rmtree(root, ignore_errors=True)
    src = root / "sources"
    from cadvlm.synth import write_dataset

    t = time.perf_counter()
    write_dataset(src, n_sources, seed=0, workers=2, progress=False)
    goods = sorted(src.glob("*.json"))
    if REAL.is_dir():
        for p in sorted(REAL.glob("*.json")):
            shutil.copyfile(p, src / f"real_{p.name}")
        goods = sorted(src.glob("*.json"))
    broken = _broken_files(src, goods[0])
    print(f"sources: {len(goods)} models, {len(broken)} broken variants ({time.perf_counter() - t:.1f} s)")

    t = time.perf_counter()
    ids = []
    for f in range(FOLDERS):
        d = raw / f"{f:04d}"
        d.mkdir(parents=True)
        for j in range(PER_FOLDER):
            mid = f"{f:04d}{j:04d}"
            h = _h(mid)
            target = broken[h % len(broken)] if (h >> 20) % 10_000 < BROKEN_SHARE * 10_000 else goods[h % len(goods)]
            os.link(target, d / f"{mid}.json")
            ids.append(f"{f:04d}/{mid}")
    print(f"folder: {len(ids)} hard links in {time.perf_counter() - t:.1f} s")

    split = {"train": [], "validation": [], "test": []}
    for i in ids[:-500]:  # the last 500 files are in no split
        b = _h("split:" + i) % 100
        split["test" if b < 5 else "validation" if b < 10 else "train"].append(i)
    split["train"] += [f"0999/0999{j:04d}" for j in range(200)]  # ids whose file is missing
    split_file.write_text(json.dumps(split))
    stamp.write_text("ok\n")
    return raw, split_file


def time_listing(raw: Path, split_file: Path) -> None:
    from cadvlm.extract import list_models

    official = json.loads(split_file.read_text())
    t = time.perf_counter()
    present = set(list_models(raw))
    kept_new = sum(1 for s in official.values() for i in s if i in present)
    t_new = time.perf_counter() - t
    t = time.perf_counter()
    kept_old = sum(1 for s in official.values() for i in s if (raw / f"{i}.json").is_file())
    t_old = time.perf_counter() - t
    print(f"split check: one listing {t_new:.2f} s, a stat per id {t_old:.2f} s "
          f"({kept_new} of {sum(map(len, official.values()))} ids present; old way agrees: {kept_new == kept_old})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("/tmp/cadvlm_bench_extract"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs=3, default=[1000, 50, 100], metavar=("TRAIN", "VAL", "TEST"))
    ap.add_argument("--sources", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from cadvlm.extract import ExtractConfig, extract

    raw, split_file = make_folder(args.root, args.sources)
    time_listing(raw, split_file)
    sizes = dict(zip(("train", "validation", "test"), args.sizes))
    cfg = ExtractConfig(raw, args.root / "out", sizes, seed=args.seed, split_file=split_file, workers=args.workers)
    t = time.perf_counter()
    m = extract(cfg)
    wall = time.perf_counter() - t
    total = sum(sizes.values())
    print(f"extract {sizes}, {args.workers} workers, {os.cpu_count()} cores (load {os.getloadavg()[0]:.1f}):")
    print(f"  wall {wall:.1f} s (listing + candidate order {m['list_seconds']:.2f} s)")
    print(f"  candidates {m['candidates']}, selected {m['selected']}, shortfall {m['shortfall'] or 'none'}")
    print(f"  files parsed {m['files_parsed']}, solids built {m['solids_built']}, decided in rank order "
          f"{m['validated']} (skipped {m['skipped']})")
    print(f"  over-parse ratio {m['files_parsed'] / total:.3f} (files parsed / {total} requested)")


if __name__ == "__main__":
    main()
