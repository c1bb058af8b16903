"""Choose a deterministic, validated subset of a DeepCAD-format folder.

A model's place in line is a hash of (seed, id), so the choice does not depend on how files are
listed, and growing a split from N to 2N keeps the first N (render then only renders the new
ones). Without a split file a model's split is also fixed by its hash. Candidates are validated
lazily in that order, in parallel, until every split has its quota: a 178K-file folder is listed
(names only, one listing) but only as many files are parsed as it takes, plus the few in flight
when a quota is met. Validation (parse, limits, OpenCascade solid) runs in the time-limited
sandbox render uses (cadvlm.sandbox): a model whose build hangs past `timeout_s` is killed and
skipped as `timeout`, one that kills its worker as `worker_crashed`. However the results arrive,
the subset is the first N valid models of each split in rank order.

Sources (`data.source`): `synthetic` and `deepcad` are the same thing, a folder of DeepCAD JSON
files; `openecad` is an OpenECAD dataset set (data.json + its pictures), whose true answers are
parsed to models here (cadvlm.extract_openecad). Either way the output is the same contract:
out_dir/json/<id>.json and out_dir/split.json (plus, for imported pictures, out_dir/pictures/ and
pictures.json, which the render stage imports instead of ray casting).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from cadvlm.cad.deepcad_json import read_model
from cadvlm.cad.limits import Limits, check_limits
from cadvlm.cad.model import CADError
from cadvlm.geometry.solid import build_solid
from cadvlm.parallel import ParallelConfig, file_payload, make_pool
from cadvlm.subset import SPLITS, hash_split, order_pools, rank  # noqa: F401 - rank, hash_split: part of this API

SOURCES = ("synthetic", "deepcad", "openecad")


def list_models(raw_dir: Path) -> list[str]:
    """Ids of all *.json files under raw_dir (relative path without suffix), names only.

    One os.scandir per folder and plain string joins: on DeepCAD's 178K files this is a fraction
    of a second, where a Path or a stat per file would cost several seconds.
    """
    ids = []
    stack = [(os.fspath(raw_dir), "")]
    while stack:
        d, prefix = stack.pop()
        with os.scandir(d) as it:
            for e in it:
                if e.is_dir():
                    stack.append((e.path, f"{prefix}{e.name}/"))
                elif e.name.endswith(".json") and e.is_file():  # no stat unless a symlink
                    ids.append(prefix + e.name[:-5])
    return ids


def validate(raw_dir: Path, model_id: str, limits: Limits) -> tuple[str, str | None]:
    """(id, None) when the model parses, fits the limits and builds a valid solid; else (id, reason)."""
    return model_id, _check(Path(raw_dir) / f"{model_id}.json", model_id, limits)[0]


def _check(source, model_id: str, limits: Limits) -> tuple[str | None, bool]:
    """(reason or None, whether a solid was built): the cheap checks first, the build last.
    `source` is the model's JSON file, or its bytes (`cadvlm.parallel.file_payload`)."""
    try:
        model = read_model(source, model_id)
        check_limits(model, limits)
    except CADError as exc:
        return exc.reason, False
    except Exception as exc:  # noqa: BLE001 - a bug must not take the batch down, but it is counted
        return f"unexpected_{type(exc).__name__}", False
    try:
        build_solid(model)
        return None, True
    except CADError as exc:
        return exc.reason, True
    except Exception as exc:  # noqa: BLE001 - OCC's Standard_Failure and friends: counted
        return f"unexpected_{type(exc).__name__}", True


def _check_task(args) -> tuple[str | None, bool]:
    """Worker entry (sent by reference to the sandbox): args = (JSON bytes or path, model_id, limits)."""
    return _check(*args)


# Imported by each worker before it takes a model, so the time limit counts the model only.
WARMUP = ("cadvlm.extract", "cadvlm.geometry.solid")
# Outcomes of the sandbox that are not a reason of their own: the model is skipped under these.
_LOST = {"timeout": "timeout", "crash": "worker_crashed", "error": "worker_error"}


@dataclass
class ExtractConfig:
    raw_dir: Path
    out_dir: Path
    sizes: dict  # split -> count
    seed: int = 0
    split_file: Path | None = None
    limits: Limits = Limits()
    workers: int = 2
    timeout_s: float = 60.0  # per model: parse + limits + solid; a model past it is killed, skipped
    source: str = "synthetic"  # synthetic | deepcad (DeepCAD JSON folders) | openecad (data.json + pictures)
    parallel: ParallelConfig = ParallelConfig()  # where validation runs: this machine's pool or a Ray cluster

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"data.source must be one of {SOURCES}, not {self.source!r}")

    @classmethod
    def from_params(cls, params: dict, out_dir: Path = Path("data/extracted")) -> ExtractConfig:
        """From params.yaml (`base.seed` and the `data` section)."""
        d = params["data"]
        return cls(raw_dir=Path(d["raw_dir"]), out_dir=Path(out_dir),
                   sizes={"train": d["train_size"], "validation": d["val_size"], "test": d["test_size"]},
                   seed=int(params["base"]["seed"]), split_file=Path(d["split_file"]) if d.get("split_file") else None,
                   limits=Limits(d["max_extrudes"], d["max_loops"], d["max_curves"], d["max_commands"]),
                   workers=int(d.get("workers", 2)), timeout_s=float(d.get("timeout_s", 60)),
                   source=str(d.get("source") or "synthetic"), parallel=ParallelConfig.from_params(params))


def candidates(cfg: ExtractConfig) -> dict[str, list[str]]:
    """Per split, the ids of a DeepCAD JSON folder in the order they are tried."""
    ids = list_models(cfg.raw_dir)
    # One listing of the folder instead of a stat per id (178K on DeepCAD); an id the listing
    # does not spell the same way (e.g. "./0000/x") gets the old per-file test.
    official = json.loads(Path(cfg.split_file).read_text()) if cfg.split_file else None
    present = set(ids) if official is not None else set()
    return order_pools(ids, cfg.seed, official, lambda i: i in present or (cfg.raw_dir / f"{i}.json").is_file())


class _JSONFolder:
    """The DeepCAD-format source: one JSON file per model, validated in the workers, copied out."""

    warmup = WARMUP

    def __init__(self, cfg: ExtractConfig, check):
        self.cfg, self.check = cfg, check
        self.pools = candidates(cfg)
        self.refused: Counter = Counter()  # nothing is refused before validation

    def task(self, model_id: str):
        """The file goes with the task (read here, when a worker is free): workers need no copy."""
        return file_payload(self.cfg.raw_dir / f"{model_id}.json"), model_id, self.cfg.limits

    def outcome(self, model_id: str, value) -> tuple[str | None, bool]:
        return value  # (reason or None, built)

    def write(self, tmp: Path, chosen: dict) -> None:
        for ids in chosen.values():
            for i in ids:
                dst = tmp / "json" / f"{i}.json"
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.cfg.raw_dir / f"{i}.json", dst)


class _Split:
    """One split's candidates and the rule "the first N valid ones in rank order".

    Results come back out of order; they wait in `done` until every earlier candidate is decided.
    Feeding stops as soon as N valid results are known anywhere among the candidates fed so far:
    then the N-th valid one in rank order is among them, and no later candidate can be chosen.
    """

    def __init__(self, ids: list[str], need: int):
        self.ids, self.need = ids, max(0, need)
        self.fed = 0  # candidates handed to the pool
        self.done: dict[int, str | None] = {}  # position -> reason (None = valid), not yet decided
        self.valid_pending = 0  # valid results in `done`
        self.decided = 0  # candidates decided, in rank order
        self.chosen: list[str] = []
        self.skipped: Counter = Counter()

    def wants_more(self) -> bool:
        return len(self.chosen) + self.valid_pending < self.need and self.fed < len(self.ids)

    def result(self, k: int, reason: str | None) -> None:
        if k < self.decided or len(self.chosen) >= self.need:
            return  # past the quota: work in flight when it was met
        self.done[k] = reason
        self.valid_pending += reason is None
        while self.decided in self.done and len(self.chosen) < self.need:
            r = self.done.pop(self.decided)
            if r is None:
                self.valid_pending -= 1
                self.chosen.append(self.ids[self.decided])
            else:
                self.skipped[r] += 1
            self.decided += 1


def extract(cfg: ExtractConfig, check=None) -> dict:
    """Write out_dir/json/<id>.json for the chosen models and out_dir/split.json; return metrics.

    Candidates go to time-limited worker processes (cadvlm.sandbox) one at a time, as workers
    free up, split after split, and only while the split still needs them. `validated` and
    `skipped` count the candidates decided in rank order (the same for any number of workers);
    `files_parsed` and `solids_built` count the work done, including the few results in flight
    when a quota was met. `check` (a module-level function, run in the workers) is for tests.
    """
    t0 = time.perf_counter()
    if cfg.source == "openecad":
        from cadvlm.extract_openecad import OpenECADSet

        src = OpenECADSet(cfg)
        check = check or src.check
    else:
        src = _JSONFolder(cfg, check or _check_task)
        check = src.check
    pools = src.pools
    t_list = time.perf_counter() - t0
    need = {s: max(0, cfg.sizes.get(s, 0)) for s in SPLITS}
    splits = {s: _Split(pools[s], need[s]) for s in SPLITS}
    tasks: list[tuple[str, int]] = []  # pool task index -> (split, position)
    work = Counter()
    bar = tqdm(total=sum(need.values()), desc="extract", unit="model", leave=False)

    def feed():
        for s in SPLITS:
            sp = splits[s]
            while sp.wants_more():  # re-checked each time a worker is free
                tasks.append((s, sp.fed))
                yield src.task(sp.ids[sp.fed])
                sp.fed += 1

    with make_pool(cfg.workers, cfg.timeout_s, src.warmup, cfg.parallel) as pool:
        for o in pool.run(check, feed()):
            s, k = tasks[o.index]
            work["files_parsed"] += 1
            if o.status == "ok":
                reason, built = src.outcome(splits[s].ids[k], o.value)
            else:  # killed past the time limit, or its process died: almost surely in the build
                reason, built = _LOST.get(o.status, "worker_error"), True
            work["solids_built"] += built
            before = len(splits[s].chosen)
            splits[s].result(k, reason)
            bar.update(len(splits[s].chosen) - before)
    bar.close()
    chosen = {s: splits[s].chosen for s in SPLITS}
    _write(cfg, chosen, src)
    dt = time.perf_counter() - t0
    skipped = sum((splits[s].skipped for s in SPLITS), Counter())
    validated = sum(splits[s].decided for s in SPLITS)
    total = sum(need.values())
    metrics = {
        "source": cfg.source,
        "selected": {s: len(chosen[s]) for s in SPLITS},
        "requested": need,
        "shortfall": {s: need[s] - len(chosen[s]) for s in SPLITS if len(chosen[s]) < need[s]},
        "candidates": sum(len(v) for v in pools.values()),
        "validated": validated,
        "skipped": dict(sorted(skipped.items())),
        "skipped_total": sum(skipped.values()),
        "files_parsed": work["files_parsed"],
        "solids_built": work["solids_built"],
        "parsed_per_requested": round(work["files_parsed"] / total, 3) if total else None,
        "list_seconds": round(t_list, 2),
        "seconds": round(dt, 2),
        "models_per_s": round(work["files_parsed"] / dt, 1) if dt > 0 else None,
    }
    if src.refused:  # records dropped on reading, before any validation (openecad: malformed, duplicate id)
        metrics["refused_records"] = dict(sorted(src.refused.items()))
    return metrics


def _write(cfg: ExtractConfig, chosen: dict, src) -> None:
    """Build the output in a temp folder, then swap it in: never a half-written subset."""
    out = Path(cfg.out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    src.write(tmp, chosen)
    (tmp / "split.json").write_text(json.dumps(chosen, indent=1) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
