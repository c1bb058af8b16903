"""The evaluate stage and `cadvlm score`: generated CAD code -> solids -> metrics against the truth.

Protocol (DESIGN.md "Evaluation"): for every test sample the answer's code block is extracted,
parsed safely (never executed), built into a solid under a per-sample time limit, and compared
with the ground-truth solid in the unit cube (`cadvlm.metrics`). Every sample counts: a sample
without a valid solid is invalid for one reason (INVALID_REASONS), and the invalid ratio is over
ALL samples; Chamfer and IoU are over the valid ones. Command accuracy is over the samples whose
code parsed (a build is not needed to compare construction sequences).

Each sample is scored in a worker process (`cadvlm.sandbox`): a hanging boolean is killed at the
limit and counted as a timeout, a native crash as a crash; the stage always finishes.

Baselines through the same protocol, in the same metrics file:
- oracle: the ground truth written as code (writer -> code -> parser -> build); it must give
  invalid 0 and IoU ~1; its Chamfer distance is the sampling floor;
- constant: one training answer given for every picture; the one chosen is, among a bounded set
  of candidates (the most frequent training answers, ties broken by a hash), the one with the
  lowest median Chamfer distance on the validation split. A model must beat it to have learnt
  anything from the pictures.
- nearest picture: the answer of the training sample whose picture is closest (grey levels at
  RETRIEVAL_PX square, squared differences). No learning at all, only lookup: it shows how much
  the pictures alone say and how close the training set comes to each test part, the yardstick a
  model that reads pictures should approach.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import statistics
import sys
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from cadvlm.cad.model import CADError
from cadvlm.metrics import CHAMFER_POINTS, COMMAND_KEYS

# Why a sample has no valid result; every key is always present in the metrics (0 when none).
INVALID_REASONS = ("no_code", "parse_error", "build_error", "invalid_solid", "empty_solid", "timeout", "crash")
# A truth that cannot be built is the dataset's fault: such samples are left out and counted.
TRUTH_ERROR = "truth_error"
METHODS = ("model", "oracle", "constant", "nearest")
# Side of the grey thumbnails the nearest-picture baseline compares (a 2x2 sheet: 16 px a view).
RETRIEVAL_PX = 32
# Points per solid when choosing the constant answer. Choosing only ranks candidates whose
# Chamfer distances are ~10-100 (x1000) apart, far above the sampling noise of 2,048 points
# (~0.6), and it is ~5x cheaper than 8,192: 50 candidates x 50 validation models = 2,500 pairs.
# The chosen answer is then scored on the test split with the full protocol.
SELECTION_POINTS = 2048

# --------------------------------------------------------------------------------------------
# answers -> code -> model -> solid, with every failure mapped to one reason
# --------------------------------------------------------------------------------------------


def answer_code(answer, fmt: str = "openecad") -> str:
    """The code in a generated answer: the fenced block if the answer has one, else the whole
    text when it is bare code (OpenECAD outputs saved as .py files).

    CADError('no_code') for an empty answer or prose without code; 'parse_error' for a broken
    fence (an unclosed block is a truncated answer).
    """
    from cadvlm.codec.openecad_parser import extract_code

    if not isinstance(answer, str) or not answer.strip():
        raise CADError("no_code", "empty answer")
    if "```" in answer:
        return extract_code(answer)  # CodeParseError (reason parse_error) when broken
    if ("add_" if fmt == "openecad" else "extrude") in answer:
        return answer
    raise CADError("no_code", "no code block and no OpenECAD statement in the answer")


def classify(exc: CADError) -> str:
    """Map a CADError from parsing, building or preparing a prediction to one of INVALID_REASONS."""
    if exc.reason in ("no_code", "parse_error"):
        return exc.reason
    if exc.reason in ("empty_solid", "no_extrude"):
        return "empty_solid"
    if exc.reason == "invalid_solid":
        return "invalid_solid"
    return "build_error"  # geometry found bad while parsing (open loop...) or while building


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


def _load_truth(path: str, model_id: str, seed: int, n_points: int, fmt: str = "openecad", bits: int = 8):
    """(model, PreparedSolid) of a ground-truth DeepCAD JSON; raises CADError when unbuildable.

    The model returned is the truth as its code reads back (writer -> parser): the order of
    loops and curves the code language fixes, which is the order a model is taught to write.
    Command accuracy is measured against it, so the same sequence in that order scores 1.
    """
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.codec.compact import parse_code_as, write_code_as
    from cadvlm.geometry.solid import build_solid
    from cadvlm.metrics import prepare

    def make():
        model = read_model(path, model_id)
        prepared = prepare(build_solid(model), n_points, seed)
        try:
            model = parse_code_as(write_code_as(model, fmt, bits), fmt, model_id, bits)
        except CADError:
            pass  # keep the JSON's order: command accuracy is then stricter, never wrong
        return model, prepared

    return _lru_get(_TRUTH_CACHE, (path, seed, n_points, fmt, bits), make, 128)


def _build_answer(answer: str, model_id: str, seed: int, n_points: int, fmt: str = "openecad", bits: int = 8):
    """(model or None, PreparedSolid or None, reason, detail, stage reached) for one answer."""
    from cadvlm.codec.compact import parse_code_as
    from cadvlm.geometry.solid import build_solid
    from cadvlm.metrics import prepare

    try:
        model = parse_code_as(answer_code(answer, fmt), fmt, model_id, bits)
    except CADError as exc:
        return None, None, classify(exc), exc.detail
    try:
        prep = prepare(build_solid(model), n_points, seed + 1)
    except CADError as exc:
        return model, None, classify(exc), exc.detail
    except Exception as exc:  # OCC's Standard_Failure and friends on degenerate input
        return model, None, "build_error", f"{type(exc).__name__}: {exc}"
    return model, prep, "", ""


def score_task(task: dict) -> dict:
    """Score one answer against one truth (runs in a worker). Returns one per-sample row."""
    sid, seed, n_points = task["id"], task.get("seed", 0), task.get("n_points", CHAMFER_POINTS)
    row = empty_row(sid, task["method"])
    fmt, bits = task.get("format", "openecad"), task.get("bits", 8)
    try:
        truth_model, truth = _load_truth(task["truth"], sid, seed, n_points, fmt, bits)
    except Exception as exc:
        row.update(status=TRUTH_ERROR, detail=str(getattr(exc, "detail", exc)))
        return row
    row["truth_extrudes"] = len(truth_model.extrudes)
    row["truth_curves"] = truth_model.n_curves()
    if task.get("cache"):  # the same answer for every sample: build it once per worker
        digest = hashlib.blake2b(task["answer"].encode(), digest_size=16).digest()
        model, pred, reason, detail = _lru_get(
            _PRED_CACHE, (digest, seed, n_points, fmt, bits),
            lambda: _build_answer(task["answer"], sid, seed, n_points, fmt, bits), 8)
    else:
        model, pred, reason, detail = _build_answer(task["answer"], sid, seed, n_points, fmt, bits)
    if model is not None:
        from cadvlm.metrics import command_accuracy

        row.update(command_accuracy(model, truth_model))
        row["pred_extrudes"] = len(model.extrudes)
        row["pred_curves"] = model.n_curves()
    if pred is None:
        row.update(status=reason, detail=detail)
        return row
    from cadvlm.metrics import compare

    row.update(compare(pred, truth))
    row["status"] = "ok"
    return row


def select_task(task: dict) -> list:
    """Chamfer x1000 of one candidate answer against each of a list of truths (None = unusable)."""
    from cadvlm.metrics import CHAMFER_SCALE, chamfer

    seed, n_points = task.get("seed", 0), task.get("n_points", CHAMFER_POINTS)
    fmt, bits = task.get("format", "openecad"), task.get("bits", 8)
    _, pred, reason, _ = _build_answer(task["answer"], "candidate", seed, n_points, fmt, bits)
    if pred is None:
        return [None] * len(task["truths"])
    out = []
    for sid, path in task["truths"]:
        try:
            _, truth = _load_truth(path, sid, seed, n_points, fmt, bits)
        except Exception:
            out.append(None)
            continue
        out.append(chamfer(pred, truth) * CHAMFER_SCALE)
    return out


def empty_row(sid: str, method: str) -> dict:
    row = {"id": sid, "method": method, "status": "", "detail": "", "chamfer": None, "iou": None,
           "iou_exact": None, "pred_extrudes": None, "truth_extrudes": None, "pred_curves": None,
           "truth_curves": None}
    row.update({k: None for k in COMMAND_KEYS})
    return row


# --------------------------------------------------------------------------------------------
# running many samples
# --------------------------------------------------------------------------------------------


@dataclass
class ScoreConfig:
    workers: int = 2
    timeout_s: float = 30.0
    seed: int = 0
    n_points: int = CHAMFER_POINTS
    progress: bool = True


def _pool(cfg: ScoreConfig):
    from cadvlm.sandbox import TimeLimitedPool

    # Workers import what a task needs before they report ready: the limit is for the task only.
    return TimeLimitedPool(cfg.workers, cfg.timeout_s, warmup=(
        "cadvlm.evaluate", "cadvlm.metrics", "cadvlm.codec.openecad_parser", "cadvlm.codec.openecad_writer",
        "cadvlm.codec.compact",
        "cadvlm.geometry.solid", "cadvlm.geometry.mesh", "OCP.BRepAlgoAPI"))


def _bar(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, file=sys.stderr, leave=False)


def score_answers(samples: list[dict], cfg: ScoreConfig, pool=None, desc: str = "scoring") -> list[dict]:
    """Score samples [{id, method, answer, truth, cache?}] in isolated workers; rows in input order.

    A sample whose worker times out or dies becomes a row with status timeout / crash.
    """
    tasks = [dict(s, seed=cfg.seed, n_points=cfg.n_points) for s in samples]
    rows: list[dict | None] = [None] * len(tasks)
    own = pool is None
    pool = _pool(cfg) if own else pool
    try:
        with _bar(len(tasks), desc, cfg.progress) as bar:
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


def _stats(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return statistics.median(values), statistics.fmean(values)


def _r(x, digits: int = 6):
    """Round for stable metrics files (same inputs, same bytes)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return float(f"{x:.{digits}g}")


def summarise(rows: list[dict]) -> dict:
    """Aggregate per-sample rows of one method into the metrics of DESIGN.md "Evaluation"."""
    scored = [r for r in rows if r["status"] != TRUTH_ERROR]
    valid = [r for r in scored if r["status"] == "ok"]
    n = len(scored)
    by_reason = {k: 0 for k in INVALID_REASONS}
    for r in scored:
        if r["status"] != "ok":
            by_reason[r["status"]] = by_reason.get(r["status"], 0) + 1
    cd_med, cd_mean = _stats([r["chamfer"] for r in valid])
    iou_med, iou_mean = _stats([r["iou"] for r in valid])
    parsed = [r for r in scored if r["command"] is not None]
    out = {
        "n": n,
        "n_valid": len(valid),
        "invalid_ratio": _r((n - len(valid)) / n) if n else None,
        "invalid_by_reason": by_reason,
        "chamfer_median": _r(cd_med),
        "chamfer_mean": _r(cd_mean),
        "iou_mean": _r(iou_mean),
        "iou_median": _r(iou_med),
        # IoU with every invalid sample counted as 0: one number that punishes both failures.
        "iou_mean_all": _r(sum(r["iou"] for r in valid) / n) if n else None,
        "iou_inexact": sum(1 for r in valid if r["iou_exact"] is False),
        "n_parsed": len(parsed),
        "command_accuracy": {k: _r(statistics.fmean(r[k] for r in parsed)) if parsed else None
                             for k in COMMAND_KEYS},
    }
    skipped = len(rows) - n
    if skipped:
        out["n_truth_errors"] = skipped
    return out


CSV_FIELDS = ("id", "method", "status", "chamfer", "iou", "iou_exact") + COMMAND_KEYS + (
    "pred_extrudes", "truth_extrudes", "pred_curves", "truth_curves", "detail")


def write_rows_csv(rows: list[dict], path: Path) -> None:
    """The per-sample table (fixed formatting: the same rows give the same bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    for r in rows:
        out = []
        for k in CSV_FIELDS:
            v = r.get(k)
            if v is None:
                out.append("")
            elif isinstance(v, bool):
                out.append(int(v))
            elif isinstance(v, float):
                out.append(f"{v:.6g}")
            elif k == "detail":
                out.append(" ".join(str(v).split())[:200])
            else:
                out.append(v)
        w.writerow(out)
    path.write_text(buf.getvalue(), encoding="utf-8")


def write_json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def format_summary(name: str, s: dict) -> str:
    def f(x, spec):
        return "-" if x is None else format(x, spec)

    reasons = ", ".join(f"{k} {v}" for k, v in s["invalid_by_reason"].items() if v) or "none"
    ca = s["command_accuracy"]
    return (f"{name:>9}: n {s['n']:4d}  invalid {f(s['invalid_ratio'] and 100 * s['invalid_ratio'], '5.1f')}% "
            f"({reasons})  CD x1000 median {f(s['chamfer_median'], '.4f')} mean {f(s['chamfer_mean'], '.4f')}  "
            f"IoU mean {f(s['iou_mean'] and 100 * s['iou_mean'], '.1f')}%  "
            f"cmd acc {f(ca['command'], '.3f')} (parsed {s['n_parsed']})")


# --------------------------------------------------------------------------------------------
# the constant-answer baseline
# --------------------------------------------------------------------------------------------


def candidate_answers(train_answers: Iterable[tuple[str, str]], k: int, fmt: str = "openecad") -> list[tuple[str, str]]:
    """Up to k distinct training answers [(train id, answer)]: the most frequent codes first,
    ties broken by a hash of the code (deterministic, and a fair sample when all are unique)."""
    counts: Counter = Counter()
    first: dict[str, tuple[str, str]] = {}
    for sid, answer in train_answers:
        try:
            code = answer_code(answer, fmt).strip()
        except CADError:
            continue
        counts[code] += 1
        first.setdefault(code, (sid, answer))

    def key(code):
        return (-counts[code], hashlib.blake2b(code.encode(), digest_size=8).hexdigest())

    return [first[c] for c in sorted(counts, key=key)[:k]]


def choose_constant(candidates: list[tuple[str, str]], val_truths: list[tuple[str, str]], cfg: ScoreConfig,
                    pool=None, fmt: str = "openecad", bits: int = 8) -> dict | None:
    """The candidate with the lowest median Chamfer x1000 on the validation truths (a candidate
    that fails to build, or on any truth, is out). None when no candidate is usable."""
    tasks = [{"answer": a, "truths": val_truths, "seed": cfg.seed, "n_points": min(SELECTION_POINTS, cfg.n_points),
              "format": fmt, "bits": bits} for _, a in candidates]
    own = pool is None
    pool = _pool(cfg) if own else pool
    scores: list = [None] * len(tasks)
    try:
        with _bar(len(tasks), "constant baseline", cfg.progress) as bar:
            # one task scores a candidate on every validation model: allow for that many
            for out in pool.run(select_task, tasks, timeout=cfg.timeout_s * (1 + len(val_truths) / 10)):
                if out.status == "ok" and out.value and all(v is not None for v in out.value):
                    scores[out.index] = statistics.median(out.value)
                bar.update(1)
    finally:
        if own:
            pool.close()
    usable = [(s, i) for i, s in enumerate(scores) if s is not None]
    if not usable:
        return None
    best, i = min(usable)
    return {"train_id": candidates[i][0], "answer": candidates[i][1], "val_chamfer_median": best,
            "n_candidates": len(candidates), "n_usable": len(usable), "n_val": len(val_truths)}


# --------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------


@dataclass
class EvalConfig:
    converted_dir: Path = Path("data/converted")
    rendered_dir: Path = Path("data/rendered")
    extracted_dir: Path = Path("data/extracted")
    model_dir: Path = Path("models")
    out_dir: Path = Path("data/eval")
    metrics_path: Path = Path("metrics/eval.json")
    max_new_tokens: int = 1024
    batch_size: int = 8
    baseline_candidates: int = 50
    nearest_baseline: bool = True
    sheet_samples: int = 32
    cpu_threads: int = 0  # torch threads when generating on a CPU (0 = 1 for small models, else default)
    score: ScoreConfig = field(default_factory=ScoreConfig)


def load_split_records(path: Path, image_root: Path) -> list:
    from cadvlm.data.conversations import load_conversations

    return load_conversations(path, image_root)


def truth_id(sample_id: str, known) -> str:
    """The ground-truth model id of a conversation sample: its id, or its id without a trailing
    view name when the layout is one sample per view (e.g. '0000/00000007_front')."""
    if sample_id in known:
        return sample_id
    from cadvlm.render.views import VIEW_NAMES

    for sep in ("_", "/", "-", "."):
        head, _, tail = sample_id.rpartition(sep)
        if tail in VIEW_NAMES and head in known:
            return head
    return sample_id


SMALL_MODEL_PARAMS = 100_000_000


def set_cpu_threads(model, threads: int = 0) -> int:
    """Torch's intra-op threads for generating on a CPU; returns the number set (0 = left as is).

    threads = 0 picks: one thread for a small model, torch's default for a large one. Decoding a
    small model is a long series of tiny matrix products, where waking and joining OpenMP
    threads costs more than the work: measured on the 2-core default machine, the tiny model
    decodes ~9x faster on one thread than on two (6.8 vs 60 ms a step, batch 16).
    """
    import torch

    if next(model.parameters()).device.type != "cpu":
        return 0
    if threads <= 0:
        n_params = sum(p.numel() for p in model.parameters())
        if n_params >= SMALL_MODEL_PARAMS:
            return 0
        threads = 1
    torch.set_num_threads(int(threads))
    return int(threads)


def generate_with_model(model_dir: Path, records: list, max_new_tokens: int, batch_size: int,
                        progress: bool = True, cpu_threads: int = 0) -> list[str]:
    """Answers of the trained model for the records (greedy, batched; grouped by prompt)."""
    from cadvlm.data.conversations import load_image
    from cadvlm.model.generate import generate_code
    from cadvlm.model.load import load_trained

    model, processor = load_trained(model_dir)
    set_cpu_threads(model, cpu_threads)
    by_prompt: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_prompt.setdefault(r.prompt, []).append(i)
    answers: list[str] = [""] * len(records)
    with _bar(len(records), "generating", progress) as bar:
        for prompt, idx in by_prompt.items():
            for start in range(0, len(idx), batch_size):
                chunk = idx[start:start + batch_size]
                images = [load_image(records[i].image) for i in chunk]
                for i, a in zip(chunk, generate_code(model, processor, images, prompt, max_new_tokens, batch_size)):
                    answers[i] = a
                bar.update(len(chunk))
    return answers


def thumbnails(paths: list, px: int = RETRIEVAL_PX) -> np.ndarray:
    """(n, px*px) float32 ink levels (0 white .. 1 black) of the pictures, for lookup."""
    from PIL import Image

    out = np.zeros((len(paths), px * px), np.float32)
    for i, path in enumerate(paths):
        with Image.open(path) as im:
            out[i] = 1.0 - np.asarray(im.convert("L").resize((px, px), Image.BILINEAR), np.float32).ravel() / 255.0
    return out


def nearest_answers(train: list, queries: list, px: int = RETRIEVAL_PX) -> list[str]:
    """The answer of the closest training picture for each query (records with .image/.answer)."""
    base, q = thumbnails([r.image for r in train], px), thumbnails([r.image for r in queries], px)
    d = (q * q).sum(1)[:, None] - 2.0 * q @ base.T + (base * base).sum(1)[None, :]
    return [train[int(i)].answer for i in d.argmin(axis=1)]


def oracle_answer(truth_path: Path, model_id: str, fmt: str = "openecad", bits: int = 8) -> str:
    """The ground truth as the model should have written it (empty when it cannot be written)."""
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.codec.compact import write_code_as
    from cadvlm.codec.openecad_parser import wrap_answer

    try:
        return wrap_answer(write_code_as(read_model(truth_path, model_id), fmt, bits))
    except Exception:  # unreadable truth (scored as truth_error anyway) or a writer bug (shows as no_code)
        return ""


def run_stage(cfg: EvalConfig, generate: Callable[[list], list[str]] | None = None) -> dict:
    """The evaluate stage. `generate(records) -> answers` replaces the trained model (tests)."""
    from cadvlm.codec.compact import read_format

    t_start = time.perf_counter()
    fmt, bits = read_format(cfg.converted_dir)  # answers are scored in the language convert wrote
    records = load_split_records(cfg.converted_dir / "test.json", cfg.rendered_dir)
    json_dir = cfg.extracted_dir / "json"
    known = {p.relative_to(json_dir).with_suffix("").as_posix() for p in json_dir.rglob("*.json")}
    ids = [truth_id(r.id, known) for r in records]
    truths = [str(json_dir / f"{i}.json") for i in ids]

    t0 = time.perf_counter()
    if generate is None:
        answers = generate_with_model(cfg.model_dir, records, cfg.max_new_tokens, cfg.batch_size,
                                      cfg.score.progress, cfg.cpu_threads)
    else:
        answers = list(generate(records))
    if len(answers) != len(records):
        raise ValueError(f"generate returned {len(answers)} answers for {len(records)} samples")
    t_gen = time.perf_counter() - t0
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    with open(cfg.out_dir / "generations.jsonl", "w", encoding="utf-8") as f:
        for r, a in zip(records, answers):
            f.write(json.dumps({"id": r.id, "answer": a}, ensure_ascii=False) + "\n")

    with _pool(cfg.score) as pool:
        t0 = time.perf_counter()
        constant = None
        train_path = cfg.converted_dir / "train.json"
        split_path = cfg.extracted_dir / "split.json"
        # The training split, read once: the constant answer's candidates and the nearest-picture lookup.
        train = load_split_records(train_path, cfg.rendered_dir) if train_path.is_file() else []
        if cfg.baseline_candidates > 0 and train and split_path.is_file():
            val_ids = json.loads(split_path.read_text(encoding="utf-8")).get("validation", [])
            val = [(v, str(json_dir / f"{v}.json")) for v in val_ids if v in known]
            if val:
                pairs = [(t.id, t.answer) for t in train]
                constant = choose_constant(candidate_answers(pairs, cfg.baseline_candidates, fmt), val, cfg.score, pool,
                                           fmt, bits)
        t_const = time.perf_counter() - t0
        t0 = time.perf_counter()
        nearest = nearest_answers(train, records) if cfg.nearest_baseline and train else None
        t_nearest = time.perf_counter() - t0

        samples = []
        for k, (r, sid, truth, answer) in enumerate(zip(records, ids, truths, answers)):
            samples.append({"id": sid, "method": "model", "answer": answer, "truth": truth})
            samples.append({"id": sid, "method": "oracle", "answer": oracle_answer(Path(truth), sid, fmt, bits),
                            "truth": truth})
            if constant is not None:
                samples.append({"id": sid, "method": "constant", "answer": constant["answer"], "truth": truth,
                                "cache": True})
            if nearest is not None:
                samples.append({"id": sid, "method": "nearest", "answer": nearest[k], "truth": truth})
        for s in samples:
            s["format"], s["bits"] = fmt, bits
        t0 = time.perf_counter()
        rows = score_answers(samples, cfg.score, pool)
        t_score = time.perf_counter() - t0

        t0 = time.perf_counter()
        model_rows = [r for r in rows if r["method"] == "model"]
        answer_of = {(s["id"], s["method"]): s["answer"] for s in samples}
        picks = pick_for_sheet(model_rows, cfg.sheet_samples)
        sheet_items = [(r, answer_of[(r["id"], "model")], str(json_dir / f"{r['id']}.json")) for r in picks]
        write_sheet(sheet_items, cfg.out_dir / "compare.png", pool, fmt=fmt, bits=bits)
        t_sheet = time.perf_counter() - t0
        restarts = pool.restarts

    write_rows_csv(rows, cfg.out_dir / "samples.csv")
    summary = {m: summarise([r for r in rows if r["method"] == m]) for m in METHODS
               if any(r["method"] == m for r in rows)}
    metrics = dict(summary["model"])
    metrics["baselines"] = {m: summary[m] for m in summary if m != "model"}
    if constant is not None:
        metrics["baselines"]["constant"]["chosen"] = {
            "train_id": constant["train_id"], "val_chamfer_median": _r(constant["val_chamfer_median"]),
            "n_candidates": constant["n_candidates"], "n_usable": constant["n_usable"], "n_val": constant["n_val"]}
    write_json(metrics, cfg.metrics_path)
    timing = {"generate_s": t_gen, "constant_selection_s": t_const, "nearest_s": t_nearest, "scoring_s": t_score, "sheet_s": t_sheet,
              "total_s": time.perf_counter() - t_start, "worker_restarts": restarts}
    for m in summary:
        print(format_summary(m, summary[m]))
    print("evaluate timing: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in timing.items()))
    return {"metrics": metrics, "rows": rows, "timing": timing}


# --------------------------------------------------------------------------------------------
# the comparison sheet
# --------------------------------------------------------------------------------------------

SHEET_VIEW_PX = 96  # one view; a sample shows the truth's 2x2 views beside the prediction's
SHEET_COLUMNS = 4


def pick_for_sheet(rows: list[dict], k: int) -> list[dict]:
    """The k/2 best and k/2 worst valid samples by Chamfer distance (best first, worst last);
    when fewer are valid, invalid samples fill the remaining places (their reason is shown)."""
    if k <= 0:
        return []
    valid = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: (r["chamfer"], r["id"]))
    if len(valid) > k:
        valid = valid[: k - k // 2] + valid[len(valid) - k // 2:]
    invalid = sorted((r for r in rows if r["status"] not in ("ok", TRUTH_ERROR)), key=lambda r: (r["status"], r["id"]))
    return valid + invalid[: k - len(valid)]


def views_task(task: dict) -> dict:
    """2x2 view grids (uint8) of the truth and of the answer's solid (None when it does not build)."""
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.codec.compact import parse_code_as
    from cadvlm.geometry.solid import build_solid

    size = task.get("size", SHEET_VIEW_PX)
    fmt, bits = task.get("format", "openecad"), task.get("bits", 8)
    out = {"truth": None, "pred": None}
    try:
        out["truth"] = _grid_of(build_solid(read_model(task["truth"], task["id"])), size)
    except Exception:
        pass
    if task.get("answer"):
        try:
            out["pred"] = _grid_of(build_solid(parse_code_as(answer_code(task["answer"], fmt), fmt, None, bits)), size)
        except Exception:
            pass
    return out


def _grid_of(shape, size: int) -> np.ndarray:
    """The four views in the render stage's 2x2 grid (one scale for all), as the model sees them."""
    from cadvlm.geometry.mesh import tessellate
    from cadvlm.render.sheet import compose_grid
    from cadvlm.render.views import VIEW_NAMES, render_views

    verts, tris = tessellate(shape)
    return compose_grid(render_views(verts, tris, size=size, views=VIEW_NAMES, nthreads=1))


def write_sheet(items: list[tuple[dict, str, str]], path: Path, pool=None, size: int = SHEET_VIEW_PX,
                fmt: str = "openecad", bits: int = 8) -> None:
    """A PNG: per sample, the truth's views beside the prediction's, captioned with id and scores."""
    from PIL import Image, ImageDraw

    tasks = [{"id": r["id"], "answer": a if r["status"] == "ok" else "", "truth": t, "size": size, "format": fmt,
              "bits": bits} for r, a, t in items]
    grids: list = [None] * len(tasks)
    if tasks:
        own = pool is None
        pool = _pool(ScoreConfig()) if own else pool
        try:
            for out in pool.run(views_task, tasks):
                grids[out.index] = out.value if out.status == "ok" else None
        finally:
            if own:
                pool.close()
    g = 2 * size
    cap = 14
    cell_w, cell_h = 2 * g + 6, g + cap + 6
    cols = max(1, min(SHEET_COLUMNS, len(items)))
    rows_n = max(1, math.ceil(len(items) / cols))
    sheet = Image.new("L", (cols * cell_w, rows_n * cell_h + 18), 255)
    draw = ImageDraw.Draw(sheet)
    draw.text((4, 3), "left: ground truth  |  right: prediction  (best Chamfer first, worst last)", fill=0)
    for n, ((row, _, _), grid) in enumerate(zip(items, grids)):
        x0, y0 = (n % cols) * cell_w, 18 + (n // cols) * cell_h
        grid = grid or {}
        for k, key in enumerate(("truth", "pred")):
            im = grid.get(key)
            bx = x0 + k * g + 2
            if im is not None:
                sheet.paste(Image.fromarray(im), (bx, y0 + cap))
            else:
                draw.rectangle([bx, y0 + cap, bx + g - 1, y0 + cap + g - 1], outline=160, fill=235)
                draw.text((bx + 6, y0 + cap + g // 2 - 6), row["status"] if key == "pred" else "no truth", fill=60)
        draw.line([x0 + g + 2, y0 + cap, x0 + g + 2, y0 + cap + g - 1], fill=70, width=2)  # truth | prediction
        draw.rectangle([x0, y0, x0 + cell_w - 3, y0 + cell_h - 3], outline=120)
        if row["status"] == "ok":
            caption = f"{row['id']}  CD {row['chamfer']:.3g}  IoU {row['iou']:.2f}"
        else:
            caption = f"{row['id']}  invalid: {row['status']}"
        draw.text((x0 + 3, y0 + 1), caption[:48], fill=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=False)


# --------------------------------------------------------------------------------------------
# `cadvlm score`
# --------------------------------------------------------------------------------------------


def add_arguments_score(p) -> None:
    p.add_argument("--pred", required=True, type=Path,
                   help="folder of generated answers: <id>.py or <id>.txt (code, or answer text with a ``` block)")
    p.add_argument("--truth", required=True, type=Path, help="folder of ground-truth DeepCAD JSON: <id>.json")
    p.add_argument("--json", type=Path, help="write the metrics here")
    p.add_argument("--samples", type=Path, help="write the per-sample table (CSV) here")
    p.add_argument("--oracle", action="store_true", help="also score the ground truth through the code path")
    p.add_argument("--workers", type=int, default=2, help="worker processes (0 = all cores)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds allowed per sample (parse + build + score)")
    p.add_argument("--seed", type=int, default=0, help="point-sampling seed")
    p.add_argument("--format", default="openecad", choices=["openecad", "compact"],
                   help="language of the answers (compact: this project's quantised format)")
    p.add_argument("--bits", type=int, default=8, help="compact only: the grid's bits")


def pred_files(pred_dir: Path) -> dict[str, Path]:
    """{id: file} for *.py / *.txt under pred_dir (id = relative path without suffix)."""
    out = {}
    for p in sorted(pred_dir.rglob("*")):
        if p.is_file() and p.suffix in (".py", ".txt"):
            out.setdefault(p.relative_to(pred_dir).with_suffix("").as_posix(), p)
    return out


def match_truths(preds: dict[str, Path], truth_dir: Path) -> dict[str, Path]:
    """{prediction id: truth JSON}: <truth>/<id>.json, else the one truth file with the same
    name anywhere below (flat outputs such as 00000007.py against DeepCAD's cad_json/0000/)."""
    out, by_stem = {}, None
    for i in preds:
        direct = truth_dir / f"{i}.json"
        if direct.is_file():
            out[i] = direct
            continue
        if by_stem is None:
            by_stem = {}
            for p in truth_dir.rglob("*.json"):
                by_stem.setdefault(p.stem, []).append(p)
        found = by_stem.get(Path(i).name, [])
        if len(found) == 1:
            out[i] = found[0]
    return out


def cmd_score(args) -> int:
    if not args.pred.is_dir():
        print(f"cadvlm score: --pred {args.pred} is not a folder", file=sys.stderr)
        return 2
    if not args.truth.is_dir():
        print(f"cadvlm score: --truth {args.truth} is not a folder", file=sys.stderr)
        return 2
    preds = pred_files(args.pred)
    if not preds:
        print(f"cadvlm score: no .py or .txt files under {args.pred}", file=sys.stderr)
        return 2
    truth_of = match_truths(preds, args.truth)
    missing = [i for i in preds if i not in truth_of]
    ids = [i for i in preds if i in truth_of]
    if not ids:
        print(f"cadvlm score: none of the {len(preds)} predictions has a truth <id>.json in {args.truth}",
              file=sys.stderr)
        return 2
    cfg = ScoreConfig(workers=args.workers, timeout_s=args.timeout, seed=args.seed)
    samples = []
    for i in ids:
        truth = str(truth_of[i])
        try:
            answer = preds[i].read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            answer = ""  # unreadable prediction: no code
        samples.append({"id": i, "method": "model", "answer": answer, "truth": truth})
        if args.oracle:
            samples.append({"id": i, "method": "oracle", "answer": oracle_answer(Path(truth), i, args.format, args.bits),
                            "truth": truth})
    for s in samples:
        s["format"], s["bits"] = args.format, args.bits
    rows = score_answers(samples, cfg)
    methods = ["model"] + (["oracle"] if args.oracle else [])
    summary = {m: summarise([r for r in rows if r["method"] == m]) for m in methods}
    for m in methods:
        print(format_summary(m, summary[m]))
    skipped = sum(1 for r in rows if r["status"] == TRUTH_ERROR and r["method"] == "model")
    if skipped or missing:
        print(f"left out: {skipped} whose truth does not build, {len(missing)} without a truth JSON")
    if args.json:
        out = dict(summary["model"])
        if args.oracle:
            out["baselines"] = {"oracle": summary["oracle"]}
        write_json(out, args.json)
    if args.samples:
        write_rows_csv(rows, args.samples)
    return 0
