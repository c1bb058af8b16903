"""Score answers against ground-truth solids, each sample in a time-limited worker.

Protocol (DESIGN.md "Evaluation"): for every sample the answer's code block is extracted, parsed
safely (never executed), built into a solid under a per-sample time limit, and compared with the
ground-truth solid in the unit cube (`cadvlm.metrics`). Every sample counts: a sample without a
valid solid is invalid for one reason (`cadvlm.rebuild.INVALID_REASONS`). Command accuracy is
over the samples whose code parsed (a build is not needed to compare construction sequences).

Each sample is scored in a worker process (`cadvlm.sandbox`): a hanging boolean is killed at the
limit and counted as a timeout, a native crash as a crash; the stage always finishes.
"""

from __future__ import annotations

import hashlib
import sys
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cadvlm.cad.model import CADError
from cadvlm.codec.format import CodeFormat
from cadvlm.eval.families import curve_types_kind, operations_kind
from cadvlm.metrics import CHAMFER_POINTS, COMMAND_KEYS

if TYPE_CHECKING:
    from cadvlm.parallel import ParallelConfig

# A truth that cannot be built is the dataset's fault: such samples are left out and counted.
TRUTH_ERROR = "truth_error"


@dataclass
class ScoreConfig:
    workers: int = 2
    timeout_s: float = 30.0
    seed: int = 0
    n_points: int = CHAMFER_POINTS
    progress: bool = True
    parallel: ParallelConfig | None = None  # where the scoring runs: this machine's pool (None) or a Ray cluster


def make_pool(cfg: ScoreConfig, extra_warmup: tuple = ()):
    """The worker pool; workers import what a task needs before they report ready, so the time
    limit counts the task only."""
    from cadvlm.parallel import make_pool as make_parallel_pool

    return make_parallel_pool(cfg.workers, cfg.timeout_s, config=cfg.parallel, warmup=(
        "cadvlm.eval.scoring", "cadvlm.eval.report", "cadvlm.rebuild", "cadvlm.metrics", "cadvlm.codec.format",
        "cadvlm.geometry.solid", "cadvlm.geometry.mesh", "OCP.BRepAlgoAPI") + tuple(extra_warmup))


def progress_bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False)


# Worker-side caches: prepared truths are reused by the oracle, the constant answer and the
# model for the same sample; the constant answer's solid is built once per worker.
_TRUTH_CACHE: "OrderedDict[tuple, tuple]" = OrderedDict()
_PRED_CACHE: "OrderedDict[tuple, tuple]" = OrderedDict()


def _lru_get(cache: OrderedDict, key, make, size: int):
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = make()
    cache[key] = value
    while len(cache) > size:
        cache.popitem(last=False)
    return value


def load_truth(path: str, model_id: str, seed: int, n_points: int, code: CodeFormat):
    """(model, PreparedSolid) of a ground-truth DeepCAD JSON; raises CADError when unbuildable.

    The model returned is the truth as its code reads back (writer -> parser): the order of
    loops and curves the code language fixes, which is the order a model is taught to write.
    Command accuracy is measured against it, so the same sequence in that order scores 1.
    """
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.geometry.solid import build_solid
    from cadvlm.metrics import prepare

    def make():
        model = read_model(path, model_id)
        prepared = prepare(build_solid(model), n_points, seed)
        try:
            model = code.parse(code.write(model), model_id)
        except CADError:
            pass  # keep the JSON's order: command accuracy is then stricter, never wrong
        return model, prepared

    return _lru_get(_TRUTH_CACHE, (path, seed, n_points, code), make, 128)


def prepare_answer(answer: str, model_id: str, seed: int, n_points: int, code: CodeFormat):
    """(model or None, PreparedSolid or None, reason, detail) for one answer."""
    from cadvlm.metrics import prepare
    from cadvlm.rebuild import classify, rebuild

    built = rebuild(answer, code, model_id)
    if not built.ok:
        return built.model, None, built.reason, built.detail
    try:
        return built.model, prepare(built.shape, n_points, seed + 1), "", ""
    except CADError as exc:
        return built.model, None, classify(exc), exc.detail
    except Exception as exc:  # sampling a degenerate solid
        return built.model, None, "build_error", f"{type(exc).__name__}: {exc}"


def empty_row(sid: str, method: str) -> dict:
    row = {"id": sid, "method": method, "status": "", "detail": "", "chamfer": None, "iou": None,
           "iou_exact": None, "pred_extrudes": None, "truth_extrudes": None, "pred_curves": None,
           "truth_curves": None, "truth_ops": None, "truth_curve_types": None}
    row.update({k: None for k in COMMAND_KEYS})
    return row


def score_task(task: dict) -> dict:
    """Score one answer against one truth (runs in a worker). Returns one per-sample row.

    task: {id, method, answer, truth (JSON path), code (CodeFormat), seed, n_points, cache?}
    """
    from cadvlm.metrics import command_accuracy, compare

    sid, seed, n_points = task["id"], task.get("seed", 0), task.get("n_points", CHAMFER_POINTS)
    code = task.get("code") or CodeFormat()
    row = empty_row(sid, task["method"])
    try:
        truth_model, truth = load_truth(task["truth"], sid, seed, n_points, code)
    except Exception as exc:
        row.update(status=TRUTH_ERROR, detail=str(getattr(exc, "detail", exc)))
        return row
    row["truth_extrudes"] = len(truth_model.extrudes)
    row["truth_curves"] = truth_model.n_curves()
    row["truth_ops"], row["truth_curve_types"] = operations_kind(truth_model), curve_types_kind(truth_model)
    if task.get("cache"):  # the same answer for every sample: build it once per worker
        digest = hashlib.blake2b(task["answer"].encode(), digest_size=16).digest()
        model, pred, reason, detail = _lru_get(
            _PRED_CACHE, (digest, seed, n_points, code),
            lambda: prepare_answer(task["answer"], sid, seed, n_points, code), 8)
    else:
        model, pred, reason, detail = prepare_answer(task["answer"], sid, seed, n_points, code)
    if model is not None:
        row.update(command_accuracy(model, truth_model))
        row["pred_extrudes"] = len(model.extrudes)
        row["pred_curves"] = model.n_curves()
    if pred is None:
        row.update(status=reason, detail=detail)
        return row
    row.update(compare(pred, truth))
    if task.get("deepcad_scale"):
        from cadvlm.metrics import CHAMFER_SCALE, chamfer_deepcad

        row["chamfer_deepcad"] = chamfer_deepcad(pred, truth) * CHAMFER_SCALE
    row["status"] = "ok"
    return row


def select_task(task: dict) -> list:
    """Chamfer x1000 of one candidate answer against each of a list of truths (None = unusable)."""
    from cadvlm.metrics import CHAMFER_SCALE, chamfer

    seed, n_points = task.get("seed", 0), task.get("n_points", CHAMFER_POINTS)
    code = task.get("code") or CodeFormat()
    _, pred, _, _ = prepare_answer(task["answer"], "candidate", seed, n_points, code)
    if pred is None:
        return [None] * len(task["truths"])
    out = []
    for sid, path in task["truths"]:
        try:
            _, truth = load_truth(path, sid, seed, n_points, code)
        except Exception:
            out.append(None)
            continue
        out.append(chamfer(pred, truth) * CHAMFER_SCALE)
    return out


def score_answers(samples: list[dict], cfg: ScoreConfig, code: CodeFormat, pool=None,
                  desc: str = "scoring") -> list[dict]:
    """Score samples [{id, method, answer, truth, cache?, deepcad_scale?}] in isolated workers; rows
    in input order (deepcad_scale: also `chamfer_deepcad`, DeepCAD's convention).

    A sample whose worker times out or dies becomes a row with status timeout / crash.
    """
    tasks = [dict(s, seed=cfg.seed, n_points=cfg.n_points, code=code) for s in samples]
    rows: list[dict | None] = [None] * len(tasks)
    own = pool is None
    pool = make_pool(cfg) if own else pool
    try:
        with progress_bar(len(tasks), desc, cfg.progress) as bar:
            for out in pool.run(score_task, tasks):
                t = tasks[out.index]
                if out.status == "ok":
                    rows[out.index] = out.value
                else:
                    row = empty_row(t["id"], t["method"])
                    row["status"] = "timeout" if out.status == "timeout" else "crash"
                    row["detail"] = out.error
                    rows[out.index] = row
                bar.update(1)
    finally:
        if own:
            pool.close()
    return rows
