"""The evaluate stage: the trained model and the baselines on the test split -> metrics/eval.json.

The answers' language comes from the model folder's manifest (what the model was trained to
write), and every sample's ground truth from the model id the convert stage wrote on it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from cadvlm.eval.baselines import candidate_answers, choose_constant, nearest_answers, oracle_answer
from cadvlm.eval.report import (format_summary, pick_for_sheet, rounded, summarise_methods, write_json,
                                write_rows_csv, write_sheet)
from cadvlm.eval.scoring import ScoreConfig, make_pool, score_answers

METHODS = ("model", "oracle", "constant", "nearest")


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

    @classmethod
    def from_params(cls, params: dict) -> "EvalConfig":
        e = params["eval"]
        return cls(max_new_tokens=int(e["max_new_tokens"]), batch_size=int(e["batch_size"]),
                   baseline_candidates=int(e["baseline_candidates"]),
                   nearest_baseline=bool(e.get("nearest_baseline", True)), sheet_samples=int(e["sheet_samples"]),
                   cpu_threads=int(e.get("cpu_threads", 0)),
                   score=ScoreConfig(workers=int(e["workers"]), timeout_s=float(e["timeout_s"]),
                                     seed=int(params["base"]["seed"]), n_points=int(e["n_points"])))


def _model_answers(cfg: EvalConfig, records: list) -> list[str]:
    from cadvlm.model.generate import generate_for_records, set_cpu_threads
    from cadvlm.model.load import load_trained

    model, processor = load_trained(cfg.model_dir)
    set_cpu_threads(model, cfg.cpu_threads)
    return generate_for_records(model, processor, records, cfg.max_new_tokens, cfg.batch_size, cfg.score.progress)


def run_stage(cfg: EvalConfig, generate: Callable[[list], list[str]] | None = None, code=None) -> dict:
    """The evaluate stage. `generate(records) -> answers` and `code` (a CodeFormat) replace the
    trained model and its manifest (tests)."""
    from cadvlm.data.conversations import load_conversations
    from cadvlm.model.manifest import ModelManifest

    t_start = time.perf_counter()
    code = code or ModelManifest.read(cfg.model_dir).code  # answers are read in the model's language
    records = load_conversations(cfg.converted_dir / "test.json", cfg.rendered_dir)
    json_dir = cfg.extracted_dir / "json"
    truths = [str(json_dir / f"{r.model_id}.json") for r in records]

    t0 = time.perf_counter()
    answers = _model_answers(cfg, records) if generate is None else list(generate(records))
    if len(answers) != len(records):
        raise ValueError(f"generate returned {len(answers)} answers for {len(records)} samples")
    t_gen = time.perf_counter() - t0
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    with open(cfg.out_dir / "generations.jsonl", "w", encoding="utf-8") as f:
        for r, a in zip(records, answers):
            f.write(json.dumps({"id": r.id, "answer": a}, ensure_ascii=False) + "\n")

    with make_pool(cfg.score) as pool:
        t0 = time.perf_counter()
        constant = None
        train_path = cfg.converted_dir / "train.json"
        split_path = cfg.extracted_dir / "split.json"
        # The training split, read once: the constant answer's candidates and the nearest-picture lookup.
        train = load_conversations(train_path, cfg.rendered_dir) if train_path.is_file() else []
        if cfg.baseline_candidates > 0 and train and split_path.is_file():
            val_ids = json.loads(split_path.read_text(encoding="utf-8")).get("validation", [])
            val = [(v, str(json_dir / f"{v}.json")) for v in val_ids if (json_dir / f"{v}.json").is_file()]
            if val:
                pairs = [(t.id, t.answer) for t in train]
                constant = choose_constant(candidate_answers(pairs, cfg.baseline_candidates, code), val, cfg.score,
                                           code, pool)
        t_const = time.perf_counter() - t0
        t0 = time.perf_counter()
        nearest = nearest_answers(train, records) if cfg.nearest_baseline and train else None
        t_nearest = time.perf_counter() - t0

        samples = []
        for k, (r, truth, answer) in enumerate(zip(records, truths, answers)):
            sid = r.model_id
            samples.append({"id": sid, "method": "model", "answer": answer, "truth": truth})
            samples.append({"id": sid, "method": "oracle", "answer": oracle_answer(Path(truth), sid, code),
                            "truth": truth})
            if constant is not None:
                samples.append({"id": sid, "method": "constant", "answer": constant["answer"], "truth": truth,
                                "cache": True})
            if nearest is not None:
                samples.append({"id": sid, "method": "nearest", "answer": nearest[k], "truth": truth})
        t0 = time.perf_counter()
        rows = score_answers(samples, cfg.score, code, pool)
        t_score = time.perf_counter() - t0

        t0 = time.perf_counter()
        model_rows = [r for r in rows if r["method"] == "model"]
        answer_of = {(s["id"], s["method"]): s["answer"] for s in samples}
        picks = pick_for_sheet(model_rows, cfg.sheet_samples)
        sheet_items = [(r, answer_of[(r["id"], "model")], str(json_dir / f"{r['id']}.json")) for r in picks]
        write_sheet(sheet_items, cfg.out_dir / "compare.png", pool, code)
        t_sheet = time.perf_counter() - t0
        restarts = pool.restarts

    write_rows_csv(rows, cfg.out_dir / "samples.csv")
    summary = summarise_methods(rows, METHODS)
    metrics = dict(summary["model"])
    metrics["baselines"] = {m: summary[m] for m in summary if m != "model"}
    if constant is not None:
        metrics["baselines"]["constant"]["chosen"] = {
            "train_id": constant["train_id"], "val_chamfer_median": rounded(constant["val_chamfer_median"]),
            "n_candidates": constant["n_candidates"], "n_usable": constant["n_usable"], "n_val": constant["n_val"]}
    write_json(metrics, cfg.metrics_path)
    timing = {"generate_s": t_gen, "constant_selection_s": t_const, "nearest_s": t_nearest, "scoring_s": t_score,
              "sheet_s": t_sheet, "total_s": time.perf_counter() - t_start, "worker_restarts": restarts}
    for m in summary:
        print(format_summary(m, summary[m]))
    print("evaluate timing: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                          for k, v in timing.items()))
    return {"metrics": metrics, "rows": rows, "timing": timing}
