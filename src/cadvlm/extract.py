"""Choose a deterministic, validated subset of a DeepCAD-format folder.

A model's place in line is a hash of (seed, id), so the choice does not depend on how files are
listed, and growing a split from N to 2N keeps the first N (render then only renders the new
ones). Without a split file a model's split is also fixed by its hash. Candidates are validated
lazily in that order, in parallel, until every split has its quota: a 178K-file folder is listed
(names only) but only as many files are parsed as it takes.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from cadvlm.cad.deepcad_json import read_model
from cadvlm.cad.limits import Limits, check_limits
from cadvlm.cad.model import CADError
from cadvlm.geometry.solid import build_solid

SPLITS = ("train", "validation", "test")
# Without a split file: share of ids that fall in each split (DeepCAD's is about 90/5/5).
_SPLIT_BUCKETS = {"test": 10, "validation": 5}  # percent; the rest is train


def list_models(raw_dir: Path) -> list[str]:
    """Ids of all *.json files under raw_dir (relative path without suffix), names only."""
    ids = []
    stack = [raw_dir]
    while stack:
        d = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir():
                    stack.append(Path(e.path))
                elif e.name.endswith(".json"):
                    ids.append(Path(e.path).relative_to(raw_dir).with_suffix("").as_posix())
    return ids


def rank(model_id: str, seed: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{model_id}".encode(), digest_size=8).digest(), "big")


def hash_split(model_id: str, seed: int) -> str:
    bucket = rank(model_id, seed + 1_000_003) % 100
    if bucket < _SPLIT_BUCKETS["test"]:
        return "test"
    if bucket < _SPLIT_BUCKETS["test"] + _SPLIT_BUCKETS["validation"]:
        return "validation"
    return "train"


def validate(raw_dir: Path, model_id: str, limits: Limits) -> tuple[str, str | None]:
    """(id, None) when the model parses, fits the limits and builds a valid solid; else (id, reason)."""
    try:
        model = read_model(raw_dir / f"{model_id}.json", model_id)
        check_limits(model, limits)
        build_solid(model)
        return model_id, None
    except CADError as exc:
        return model_id, exc.reason
    except Exception as exc:  # a bug must not take the batch down, but it must be counted
        return model_id, f"unexpected_{type(exc).__name__}"


def _validate_star(args):
    return validate(*args)


@dataclass
class ExtractConfig:
    raw_dir: Path
    out_dir: Path
    sizes: dict  # split -> count
    seed: int = 0
    split_file: Path | None = None
    limits: Limits = Limits()
    workers: int = 2


def candidates(cfg: ExtractConfig) -> dict[str, list[str]]:
    """Per split, the ids in the order they are tried."""
    if cfg.split_file:
        official = json.loads(Path(cfg.split_file).read_text())
        pools = {s: [i for i in official.get(s, []) if (cfg.raw_dir / f"{i}.json").is_file()] for s in SPLITS}
    else:
        pools = {s: [] for s in SPLITS}
        for i in list_models(cfg.raw_dir):
            pools[hash_split(i, cfg.seed)].append(i)
    return {s: sorted(ids, key=lambda i: rank(i, cfg.seed)) for s, ids in pools.items()}


def extract(cfg: ExtractConfig) -> dict:
    """Write out_dir/json/<id>.json for the chosen models and out_dir/split.json; return metrics."""
    t0 = time.perf_counter()
    pools = candidates(cfg)
    chosen = {s: [] for s in SPLITS}
    skipped: Counter = Counter()
    tried = 0
    jobs = [(s, i) for s in SPLITS for i in pools[s]]
    need = {s: cfg.sizes.get(s, 0) for s in SPLITS}
    workers = cfg.workers or os.cpu_count() or 1
    with get_context("spawn" if workers > 1 else "fork").Pool(workers) if workers > 1 else _Serial() as pool:
        for s in SPLITS:
            if need[s] <= 0:
                continue
            args = [(cfg.raw_dir, i, cfg.limits) for i in pools[s]]
            bar = tqdm(total=need[s], desc=f"extract {s}", unit="model", leave=False)
            for model_id, reason in pool.imap(_validate_star, args, chunksize=8):
                tried += 1
                if reason is None:
                    chosen[s].append(model_id)
                    bar.update(1)
                else:
                    skipped[reason] += 1
                if len(chosen[s]) >= need[s]:
                    break
            bar.close()
    _write(cfg, chosen)
    dt = time.perf_counter() - t0
    return {
        "selected": {s: len(chosen[s]) for s in SPLITS},
        "requested": need,
        "shortfall": {s: need[s] - len(chosen[s]) for s in SPLITS if len(chosen[s]) < need[s]},
        "candidates": sum(len(v) for v in pools.values()),
        "validated": tried,
        "skipped": dict(sorted(skipped.items())),
        "skipped_total": sum(skipped.values()),
        "seconds": round(dt, 2),
        "models_per_s": round(tried / dt, 1) if dt > 0 else None,
    }


class _Serial:
    """Pool stand-in for workers=1 (no process start-up; easier to debug)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap(self, f, items, chunksize=1):
        return map(f, items)


def _write(cfg: ExtractConfig, chosen: dict) -> None:
    """Build the output in a temp folder, then swap it in: never a half-written subset."""
    out = Path(cfg.out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for ids in chosen.values():
        for i in ids:
            dst = tmp / "json" / f"{i}.json"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cfg.raw_dir / f"{i}.json", dst)
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "split.json").write_text(json.dumps(chosen, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
