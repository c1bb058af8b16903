"""The evaluate stage: the trained model and the baselines on the test split -> metrics/eval.json.

The answers' language comes from the model folder's manifest (what the model was trained to
write), and every sample's ground truth from the model id the convert stage wrote on it.

Methods, each scored the same way (`cadvlm.eval.scoring`): `model` (greedy answers), `rac`
(render-and-compare over the greedy answer and `rac_samples` sampled ones, off by default:
`cadvlm.render_compare`), and the baselines `oracle`, `constant`, `nearest`
(`cadvlm.eval.baselines`). Every method's summary carries bootstrap 95% intervals
(`cadvlm.eval.intervals`); the per-family table (`cadvlm.eval.families`) says where each does
well. With `real_dir` set, the same methods are also scored on a folder of DeepCAD JSON parts,
rendered as the model's training pictures were (`cadvlm.eval.real`), into metrics/eval_real.json;
with `train_parts` N, the model and the oracle on the first N training pictures, into
metrics/eval_train.json (fitted, or memorised without generalising?). With `sft_model_dir` (the
train stage's folder, when the rl stage wrote `model_dir`), the SFT model's greedy answers on the
test split are scored too, into metrics/eval_sft.json with eval.json's keys and baselines, so
`dvc metrics diff` shows what RL changed; when the two folders hold the same files (rl.steps 0),
its rows are the model's.

Files whose bytes depend only on the inputs: eval.json, eval_real.json, eval_train.json,
eval_families.json, samples.csv, real_samples.csv, families.csv, generations.jsonl, compare.png.
Seconds (how long each method took per part) go to eval_timing.json, which changes on every run.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from cadvlm.eval.baselines import candidate_answers, choose_constant, nearest_answers, oracle_answer
from cadvlm.eval.families import write_families
from cadvlm.eval.intervals import RESAMPLES
from cadvlm.eval.report import (format_summary, pick_for_sheet, rounded, summarise_methods, write_json,
                                write_rows_csv, write_sheet)
from cadvlm.eval.scoring import ScoreConfig, make_pool, score_answers

METHODS = ("model", "rac", "rac_nearest", "oracle", "constant", "nearest")
CHOSEN = ("rac", "rac_nearest")  # the model's answers chosen by how their rebuilt views match the picture
WARMUP_EXTRA = ("cadvlm.render_compare", "cadvlm.render.views", "cadvlm.render.pipeline", "cadvlm.eval.real")


@dataclass
class EvalConfig:
    converted_dir: Path = Path("data/converted")
    rendered_dir: Path = Path("data/rendered")
    extracted_dir: Path = Path("data/extracted")
    model_dir: Path = Path("models")
    out_dir: Path = Path("data/eval")
    metrics_path: Path = Path("metrics/eval.json")  # eval_real/_families/_timing.json are written beside it
    max_new_tokens: int = 1024
    batch_size: int = 8
    baseline_candidates: int = 50
    nearest_baseline: bool = True
    sheet_samples: int = 32
    cpu_threads: int = 0  # torch threads when generating on a CPU (0 = 1 for small models, else default)
    bootstrap: int = RESAMPLES  # resamples for the 95% intervals (0 = none)
    rac_samples: int = 0  # render-and-compare: sampled answers per part besides the greedy one (0 = off)
    rac_temperature: float = 0.7
    rac_nearest: int = 0  # render-and-compare over the greedy, the sampled and the k nearest training answers (0 = off)
    real_dir: Path | None = None  # a folder of DeepCAD JSON parts to evaluate on as well (None = none)
    train_parts: int = 0  # the first N training pictures scored as well: does the model fit its own data? (0 = none)
    constrained: bool = True  # greedy decoding kept to valid compact programs (cadvlm.decode.constrain)
    sft_model_dir: Path | None = None  # the SFT model, scored beside the final one (metrics/eval_sft.json)
    score: ScoreConfig = field(default_factory=ScoreConfig)

    @classmethod
    def from_params(cls, params: dict) -> "EvalConfig":
        e = params["eval"]
        return cls(max_new_tokens=int(e["max_new_tokens"]), batch_size=int(e["batch_size"]),
                   baseline_candidates=int(e["baseline_candidates"]),
                   nearest_baseline=bool(e.get("nearest_baseline", True)), sheet_samples=int(e["sheet_samples"]),
                   cpu_threads=int(e.get("cpu_threads", 0)), bootstrap=int(e.get("bootstrap", RESAMPLES)),
                   rac_samples=int(e.get("rac_samples") or 0), rac_temperature=float(e.get("rac_temperature", 0.7)),
                   rac_nearest=int(e.get("rac_nearest") or 0),
                   real_dir=Path(e["real_dir"]) if e.get("real_dir") else None,
                   train_parts=int(e.get("train_parts") or 0),
                   constrained=bool(e.get("constrained", True)),
                   sft_model_dir=Path(e["sft_model_dir"]) if e.get("sft_model_dir") else None,
                   score=ScoreConfig(workers=int(e["workers"]), timeout_s=float(e["timeout_s"]),
                                     seed=int(params["base"]["seed"]), n_points=int(e["n_points"])))

    def beside(self, name: str) -> Path:
        return self.metrics_path.with_name(name)


class ModelRunner:
    """The trained model, loaded on first use; `generate(records) -> answers` and
    `sample(records, n) -> [[answers]]` replace it (tests)."""

    def __init__(self, cfg: EvalConfig, generate: Callable | None = None, sample: Callable | None = None,
                 constrain=None):
        self.cfg, self._generate, self._sample, self._model = cfg, generate, sample, None
        self.constrain = constrain  # the CodeFormat greedy decoding keeps to (None: free decoding)

    def load(self) -> float:
        """Load the model now (so that generation times exclude loading); returns the seconds it took."""
        t0 = time.perf_counter()
        if self._generate is None or (self.cfg.rac_samples > 0 and self._sample is None):
            self._load()
        return time.perf_counter() - t0

    def _load(self):
        if self._model is None:
            from cadvlm.decode.generate import set_cpu_threads
            from cadvlm.model.load import load_trained

            self._model = load_trained(self.cfg.model_dir)
            set_cpu_threads(self._model[0], self.cfg.cpu_threads)
        return self._model

    def greedy(self, records: list) -> list[str]:
        if self._generate is not None:
            answers = list(self._generate(records))
        else:
            from cadvlm.decode.generate import generate_for_records

            answers = generate_for_records(*self._load(), records, self.cfg.max_new_tokens, self.cfg.batch_size,
                                           self.cfg.score.progress, self.constrain)
        if len(answers) != len(records):
            raise ValueError(f"generate returned {len(answers)} answers for {len(records)} samples")
        return answers

    def sample(self, records: list, n: int) -> list[list[str]]:
        if self._sample is not None:
            return [list(s) for s in self._sample(records, n)]
        from cadvlm.decode.generate import sample_for_records

        return sample_for_records(*self._load(), records, n, self.cfg.max_new_tokens, self.cfg.rac_temperature,
                                  self.cfg.score.seed, self.cfg.score.progress)


def _render_compare(cfg: EvalConfig, runner: ModelRunner, records: list, greedy: list[str], code, render_params,
                    pool, near: list | None, t_near: float) -> dict:
    """The rac answers (the greedy answer and rac_samples sampled ones, the best-looking kept) and, with
    rac_nearest k, the rac_nearest answers (the same candidates plus `near`, the k nearest training
    pictures' answers, found in t_near seconds): {method: (answers, info, seconds)}."""
    from cadvlm.data.conversations import load_image
    from cadvlm.render_compare import select_answers

    t0 = time.perf_counter()
    sampled = runner.sample(records, cfg.rac_samples) if cfg.rac_samples > 0 else [[] for _ in records]
    t_sampled = time.perf_counter() - t0
    pictures = [load_image(r.image) for r in records]
    views = [None if r.view in (None, "grid") else r.view for r in records]
    out = {}
    pools = {"rac": [[g] + list(s) for g, s in zip(greedy, sampled)]} if cfg.rac_samples > 0 else {}
    if cfg.rac_nearest > 0 and near is not None:
        pools["rac_nearest"] = [[g] + list(s) + n[:cfg.rac_nearest] for g, s, n in zip(greedy, sampled, near)]
    for method, candidates in pools.items():
        t1 = time.perf_counter()
        choices = select_answers(pool, pictures, candidates, code, render_params, views)
        info = [{"index": c.index, "scores": [None if s is None else round(s, 4) for s in c.scores],
                 "built": c.n_built} for c in choices]
        seconds = t_sampled + (t_near if method == "rac_nearest" else 0.0) + time.perf_counter() - t1
        out[method] = ([c.answer for c in choices], info, seconds)
    return out


def evaluate_records(cfg: EvalConfig, runner: ModelRunner, records: list, truths: list[str], code, pool,
                     constant: dict | None, train: list, render_params: dict | None) -> dict:
    """Answer and score every method on one set of pictures -> rows, answers and seconds."""
    runner.load()
    t0 = time.perf_counter()
    answers = runner.greedy(records)
    out = {"answers": answers, "seconds": {"model": time.perf_counter() - t0}, "chosen": {}}
    # One lookup of the nearest training pictures serves the baseline (the closest) and rac_nearest (k).
    near, t_near = None, 0.0
    if train and (cfg.nearest_baseline or cfg.rac_nearest > 0):
        t0 = time.perf_counter()
        near = nearest_answers(train, records, max(1, cfg.rac_nearest))
        t_near = time.perf_counter() - t0
    if cfg.rac_samples > 0 or cfg.rac_nearest > 0:
        chosen = _render_compare(cfg, runner, records, answers, code, render_params or {}, pool, near, t_near)
        for method, (picked, info, seconds) in chosen.items():
            out["chosen"][method] = (picked, info)
            out["seconds"][method] = out["seconds"]["model"] + seconds  # the greedy answer is one of its candidates
    nearest = [n[0] for n in near] if cfg.nearest_baseline and near is not None else None
    if nearest is not None:
        out["seconds"]["nearest"] = t_near
    samples = []
    for k, (r, truth) in enumerate(zip(records, truths)):
        sid = r.model_id
        samples.append({"id": sid, "method": "model", "answer": answers[k], "truth": truth})
        for method, (picked, _) in out["chosen"].items():
            samples.append({"id": sid, "method": method, "answer": picked[k], "truth": truth})
        samples.append({"id": sid, "method": "oracle", "answer": oracle_answer(Path(truth), sid, code), "truth": truth})
        if constant is not None:
            samples.append({"id": sid, "method": "constant", "answer": constant["answer"], "truth": truth,
                            "cache": True})
        if nearest is not None:
            samples.append({"id": sid, "method": "nearest", "answer": nearest[k], "truth": truth})
    t0 = time.perf_counter()
    out["rows"] = score_answers(samples, cfg.score, code, pool)
    out["seconds"]["scoring"] = time.perf_counter() - t0
    return out


def method_metrics(cfg: EvalConfig, rows: list[dict], constant: dict | None, chosen: dict | None,
                   title: str) -> dict:
    """eval.json's shape: the model's figures at the top, the other methods beside them.
    chosen: {rac | rac_nearest: (answers, per-part choice info)}."""
    summary = summarise_methods(rows, METHODS, cfg.score.seed, cfg.bootstrap)
    print(title)
    metrics = dict(summary["model"])
    metrics["baselines"] = {m: summary[m] for m in summary if m != "model" and m not in CHOSEN}
    for method, (_, info) in (chosen or {}).items():
        if method not in summary:
            continue
        metrics[method] = dict(summary[method], samples=cfg.rac_samples, temperature=cfg.rac_temperature,
                               candidates_built_mean=rounded(sum(i["built"] for i in info) / max(1, len(info))),
                               changed_from_greedy=sum(1 for i in info if i["index"] != 0))
        if method == "rac_nearest":
            n = 1 + cfg.rac_samples
            metrics[method].update(nearest=cfg.rac_nearest,
                                   chose_a_training_answer=sum(1 for i in info if i["index"] >= n))
    if constant is not None:
        metrics["baselines"]["constant"]["chosen"] = {
            "train_id": constant["train_id"], "val_chamfer_median": rounded(constant["val_chamfer_median"]),
            "n_candidates": constant["n_candidates"], "n_usable": constant["n_usable"], "n_val": constant["n_val"]}
    for m in summary:
        print(format_summary(m, summary[m]))
    return metrics


def _per_part(seconds: dict, n: int) -> dict:
    return {f"{k}_seconds_per_part": rounded(v / max(1, n), 4) for k, v in seconds.items() if k != "scoring"}


def run_stage(cfg: EvalConfig, generate: Callable[[list], list[str]] | None = None, code=None,
              sample: Callable[[list, int], list[list[str]]] | None = None) -> dict:
    """The evaluate stage. `generate(records) -> answers`, `sample(records, n) -> [[answers]]` and
    `code` (a CodeFormat) replace the trained model and its manifest (tests)."""
    from cadvlm.data.conversations import load_conversations
    from cadvlm.model.manifest import ModelManifest

    t_start = time.perf_counter()
    manifest = ModelManifest.read(cfg.model_dir) if (cfg.model_dir / "cadvlm_model.json").is_file() else None
    code = code or (manifest or ModelManifest.read(cfg.model_dir)).code  # answers are read in the model's language
    render_params = manifest.render_params() if manifest else {}
    if (cfg.rac_samples > 0 or cfg.real_dir is not None) and (manifest is None or manifest.pictures == "imported"):
        raise ValueError(f"eval.rac_samples and eval.real_dir draw parts as the model's pictures were drawn, but "
                         f"{cfg.model_dir} was trained on a dataset's own pictures (or has no manifest): no renderer "
                         "to copy")
    runner = ModelRunner(cfg, generate, sample, code if cfg.constrained else None)
    records = load_conversations(cfg.converted_dir / "test.json", cfg.rendered_dir)
    json_dir = cfg.extracted_dir / "json"
    truths = [str(json_dir / f"{r.model_id}.json") for r in records]
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    timing: dict = {"load_model_s": runner.load()}

    with make_pool(cfg.score, WARMUP_EXTRA if cfg.rac_samples > 0 or cfg.real_dir else ()) as pool:
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
        timing["constant_selection_s"] = time.perf_counter() - t0

        test = evaluate_records(cfg, runner, records, truths, code, pool, constant, train, render_params)
        with open(cfg.out_dir / "generations.jsonl", "w", encoding="utf-8") as f:
            for k, (r, a) in enumerate(zip(records, test["answers"])):
                line = {"id": r.id, "answer": a}
                for method, (picked, info) in test["chosen"].items():
                    line[method] = dict(info[k], answer=picked[k])
                f.write(json.dumps(line, ensure_ascii=False) + "\n")

        t0 = time.perf_counter()
        model_rows = [r for r in test["rows"] if r["method"] == "model"]
        answer_of = {r.model_id: a for r, a in zip(records, test["answers"])}
        picks = pick_for_sheet(model_rows, cfg.sheet_samples)
        sheet_items = [(r, answer_of[r["id"]], str(json_dir / f"{r['id']}.json")) for r in picks]
        write_sheet(sheet_items, cfg.out_dir / "compare.png", pool, code)
        timing["sheet_s"] = time.perf_counter() - t0

        real = None
        if cfg.real_dir is not None:
            real = _evaluate_real(cfg, runner, manifest, code, pool, constant, train, render_params)
        fit = _evaluate_train(cfg, runner, train, code, pool) if cfg.train_parts > 0 and train else None
        sft = _evaluate_sft(cfg, records, truths, test, code, pool) if cfg.sft_model_dir else None
        timing["worker_restarts"] = pool.restarts

    write_rows_csv(test["rows"], cfg.out_dir / "samples.csv")
    metrics = method_metrics(cfg, test["rows"], constant, test["chosen"], f"test split ({len(records)} pictures):")
    write_json(metrics, cfg.metrics_path)
    write_families(cfg.out_dir / "samples.csv", cfg.beside("eval_families.json"), cfg.out_dir / "families.csv",
                   METHODS)
    if real is None:  # DVC wants every declared output: say plainly that nothing was evaluated
        write_rows_csv([], cfg.out_dir / "real_samples.csv")
        write_json({"n": 0, "real_dir": None}, cfg.beside("eval_real.json"))
    fit_metrics = {"n": 0}
    if fit is not None:
        fit_metrics = method_metrics(cfg, fit["rows"], None, None, f"training parts ({fit['n_pictures']} pictures):")
    write_json(dict(fit_metrics, train_parts=cfg.train_parts), cfg.beside("eval_train.json"))
    if sft is not None:
        sft_metrics = method_metrics(cfg, sft["rows"], constant, None, f"the SFT model ({cfg.sft_model_dir}):")
        write_json(dict(sft_metrics, same_as_model=sft["same"]), cfg.beside("eval_sft.json"))
    seconds = {"test": _per_part(test["seconds"], len(records)),
               "real": _per_part(real["seconds"], real["n_pictures"]) if real else None,
               "train": _per_part(fit["seconds"], fit["n_pictures"]) if fit else None,
               "sft": _per_part(sft["seconds"], len(records)) if sft and not sft["same"] else None,
               "stage": {k: rounded(v, 4) if isinstance(v, float) else v
                         for k, v in dict(timing, total_s=time.perf_counter() - t_start).items()}}
    write_json(seconds, cfg.beside("eval_timing.json"))
    print("evaluate seconds per part: " + ", ".join(f"{k} {v:.3f}" for k, v in seconds["test"].items()))
    return {"metrics": metrics, "rows": test["rows"], "timing": dict(timing, **test["seconds"]),
            "real": real}


def _evaluate_real(cfg: EvalConfig, runner: ModelRunner, manifest, code, pool, constant, train,
                   render_params) -> dict:
    """Render the real parts as the model's pictures were drawn, then score every method on them."""
    from cadvlm.eval.real import real_records

    with tempfile.TemporaryDirectory(prefix="cadvlm-real-") as tmp:
        records, truths, skipped = real_records(cfg.real_dir, manifest, Path(tmp), pool)
        if not records:
            raise ValueError(f"eval.real_dir {cfg.real_dir}: no part could be drawn ({skipped})")
        out = evaluate_records(cfg, runner, records, truths, code, pool, constant, train, render_params)
    write_rows_csv(out["rows"], cfg.out_dir / "real_samples.csv")
    metrics = method_metrics(cfg, out["rows"], constant, out["chosen"],
                             f"real parts from {cfg.real_dir} ({len(records)} pictures, skipped {skipped or 'none'}):")
    metrics.update(real_dir=str(cfg.real_dir), n_files=len({r.model_id for r in records}) + sum(skipped.values()),
                   skipped=skipped)
    write_json(metrics, cfg.beside("eval_real.json"))
    return {"metrics": metrics, "rows": out["rows"], "seconds": out["seconds"], "n_pictures": len(records)}


def _evaluate_train(cfg: EvalConfig, runner: ModelRunner, train: list, code, pool) -> dict:
    """The model and the oracle on the first `train_parts` training pictures (metrics/eval_train.json).

    Why: a model that scores on its own training parts as it does on the test split has not fitted
    its data (more steps or capacity may help); one that scores like the oracle there but not on
    the test split has memorised without generalising (more steps will not). The lookup and the
    constant answer are left out: on a training picture the lookup finds the picture itself.
    """
    records = train[:cfg.train_parts]
    truths = [str(cfg.extracted_dir / "json" / f"{r.model_id}.json") for r in records]
    out = evaluate_records(replace(cfg, rac_samples=0, rac_nearest=0, nearest_baseline=False), runner, records,
                           truths, code, pool,
                           None, [], None)
    return {"rows": out["rows"], "seconds": out["seconds"], "n_pictures": len(records)}


def same_files(a: Path, b: Path) -> bool:
    """Two model folders holding the same files, byte for byte (rl.steps 0 passes SFT through)."""
    import filecmp

    names = lambda d: sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file())
    files = names(a)
    return files == names(b) and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def _evaluate_sft(cfg: EvalConfig, records: list, truths: list, test: dict, code, pool) -> dict:
    """The SFT model's greedy answers on the test split, scored beside the final model's baselines."""
    baselines = [r for r in test["rows"] if r["method"] != "model" and r["method"] not in CHOSEN]
    if same_files(cfg.sft_model_dir, cfg.model_dir):
        return {"rows": [r for r in test["rows"] if r["method"] == "model"] + baselines, "same": True,
                "seconds": {}}
    runner = ModelRunner(replace(cfg, model_dir=cfg.sft_model_dir, rac_samples=0, rac_nearest=0),
                         constrain=code if cfg.constrained else None)
    runner.load()
    t0 = time.perf_counter()
    answers = runner.greedy(records)
    seconds = {"model": time.perf_counter() - t0}
    samples = [{"id": r.model_id, "method": "model", "answer": a, "truth": t} for r, a, t in zip(records, answers, truths)]
    rows = score_answers(samples, cfg.score, code, pool, desc="scoring the SFT model")
    return {"rows": rows + baselines, "same": False, "seconds": seconds}
