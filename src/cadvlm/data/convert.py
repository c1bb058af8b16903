"""The convert stage: extracted models + rendered pictures -> TinyLLaVA conversation JSON.

Input: data/extracted/{split.json, json/<id>.json} and data/rendered/{index.json,
rendering_metadata.json, images/...}. Output (data/converted/):
- train.json, val.json, test.json: JSON lists of ``{"id", "image" (relative to data/rendered),
  "conversations": [{"from": "human", "value": "<image>\\n<prompt>"}, {"from": "gpt", "value":
  "Of course, here are the codes:\\n```python\\n<code>\\n```"}]}`` (DESIGN.md, "Conversation
  format"); one sample per model in the `grid` layout, one per model and view in `separate`;
- convert_info.json: where the pictures are and their size, so `cadvlm validate-data` can check
  the folder on its own.

The answer is the model's OpenECAD v2 code (codec.openecad_writer), or with `convert.format:
compact` the compact quantised code (codec.compact); convert_info.json records which, so
evaluate and validate-data read answers in the same language. The prompt is one of several
templates (params), picked per sample from a hash of the sample id and the seed: deterministic,
independent of order and of the other samples, and balanced over a large set. A template may say
``{views}``, replaced by what the picture shows ("four views (front, top, right and iso)" or
"the front view"). Pictures imported from a dataset (an OpenECAD set: data/extracted/pictures.json)
keep the dataset's own prompt, which says what kind of picture each is, and one sample per part.

Everything written is checked first (`check_samples`, the same code `cadvlm validate-data` runs):
each picture exists and is a PNG (or an imported JPEG) of the rendered size (read from its header
only: cheap), each human turn starts with ``<image>``, each answer parses back to a model with the
source's extrude and curve counts. A sample that fails is left out and counted by reason in metrics/convert.json,
with the counts per split, per template, and answer lengths in characters and tokens.

Token counts use `count_tokens`, a fixed regular expression (letter runs, single digits, single
other characters; whitespace dropped): no tokenizer download, same number on every machine, and
close to what byte-level BPE tokenizers that split digits (Qwen2, LLaMA 3) produce on this code.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from cadvlm.codec.compact import longest_loop
from cadvlm.data.prompts import DEFAULT_PROMPTS, choose_template, describe_views
from cadvlm.parallel import ParallelConfig
from cadvlm.pictures import picture_size, read_pictures

IMAGE_TAG = "<image>"
SPLIT_FILES = {"train": "train.json", "validation": "val.json", "test": "test.json"}
INFO_FILE = "convert_info.json"
GRID_VIEW = "grid"  # a sample's `view` when its picture is the 2x2 sheet of all views
# grid: one 2x2 sheet per part; separate: one picture per part and view; single: one imported
# picture per part as its dataset ships it (render.imported), of the kind pictures.json gives.
LAYOUTS = ("grid", "separate", "single")
POOL_MIN = 64  # fewer models than this are written in-process (a pool costs more than it saves)
# On a Ray cluster (parallel.backend: ray) answers go in chunks: a model takes milliseconds, about
# what a task's round trip costs. A chunk that times out or whose worker dies counts all its models.
CLUSTER_CHUNK = 64
CLUSTER_CHUNK_LIMIT_S = 600.0

_TOKEN = re.compile(r"[A-Za-z_]+|\d|[^\sA-Za-z_\d]")


def count_tokens(text: str) -> int:
    """Deterministic token estimate: letter/underscore runs, single digits, single other chars."""
    return len(_TOKEN.findall(text))


@dataclass(frozen=True)
class ConvertConfig:
    prompts: tuple[str, ...] = DEFAULT_PROMPTS
    seed: int = 0
    compat: bool = False  # OpenECAD's mirrored frames too (see codec.openecad_writer); False = exact geometry
    workers: int = 2  # processes writing code (0 = all cores); the output does not depend on it
    format: str = "openecad"  # answer language: 'openecad' (OpenECAD v2) or 'compact' (codec.compact)
    compact_bits: int = 8  # grid of the compact format (2**bits levels over [-1, 1])
    parallel: ParallelConfig = ParallelConfig()  # backend ray: the answers are written on the Ray cluster

    def __post_init__(self):
        prompts = tuple(self.prompts)
        if not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
            raise ValueError("convert.prompts must be a non-empty list of non-empty strings")
        if any(IMAGE_TAG in p for p in prompts):
            raise ValueError(f"convert.prompts must not contain {IMAGE_TAG}: the stage adds it")
        object.__setattr__(self, "prompts", prompts)
        self.code  # validates the format and its bits

    @property
    def code(self):
        """The answers' language as one `CodeFormat`."""
        from cadvlm.codec.format import CodeFormat

        return CodeFormat(self.format, self.compact_bits)

    @classmethod
    def from_params(cls, params: dict) -> "ConvertConfig":
        c = params.get("convert", {}) or {}
        unknown = set(c) - {"prompts", "compat", "workers", "format", "compact_bits"}
        if unknown:
            raise ValueError(f"unknown convert params: {sorted(unknown)}")
        return cls(prompts=tuple(c.get("prompts") or DEFAULT_PROMPTS), seed=int(params.get("base", {}).get("seed", 0)),
                   compat=bool(c.get("compat", False)), workers=int(c.get("workers", 2)),
                   format=str(c.get("format", "openecad")), compact_bits=int(c.get("compact_bits", 8)),
                   parallel=ParallelConfig.from_params(params))


@dataclass(frozen=True)
class RenderInfo:
    """What the render stage made: layout, views in order, picture size (width, height)."""

    layout: str
    views: tuple[str, ...]
    size: tuple[int, int] | None

    @classmethod
    def read(cls, rendered: Path) -> "RenderInfo":
        meta = json.loads((rendered / "rendering_metadata.json").read_text())
        settings = meta.get("settings") or {}
        layout = meta.get("layout") or settings.get("layout")
        if layout not in LAYOUTS:
            raise ValueError(f"{rendered}/rendering_metadata.json: unknown layout {layout!r}")
        views = tuple(meta.get("views") or settings.get("views") or (meta.get("cameras") or {}).keys())
        image = meta.get("image", {})
        size = image.get("grid_size") if layout == "grid" else image.get("view_size")
        if isinstance(size, int):
            size = (size, size)
        return cls(layout, views, tuple(int(s) for s in size) if size else None)

    def describe(self, view: str | None) -> str:
        """The text for a template's {views}."""
        return describe_views(self.views, view)


# ----------------------------------------------------------------------------- answers
def model_answer(json_path: Path | bytes, model_id: str, compat: bool = False,
                 code_format=None) -> tuple[str | None, str | None, tuple]:
    """(answer, verdict, (extrudes, curves)) for one model, or (None, reason, ()) when it cannot be written.

    `json_path` is the model's JSON file, or its bytes (a task on a cluster carries the file).
    The verdict is `answer_verdict` of the answer, computed here so the parse-back check runs in
    the worker processes too.
    """
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.cad.model import CADError
    from cadvlm.codec.answer import wrap_answer
    from cadvlm.codec.format import CodeFormat

    code_format = code_format or CodeFormat()
    try:
        model = read_model(json_path, model_id, check_crossing=False)  # extract validated it
        code = code_format.write(model, compat=compat)
    except CADError as exc:
        return None, exc.reason, ()
    except OSError:
        return None, "missing_json", ()
    answer = wrap_answer(code)
    if code_format.compact:  # the grid may drop curves shorter than one level: count what was written
        try:
            model = code_format.parse(code, model_id)
        except CADError as exc:
            return None, "answer_" + exc.reason, ()
    counts = (len(model.extrudes), model.n_curves())
    return answer, answer_verdict(answer, model_id, counts, code_format), counts


def answer_verdict(answer: str, sample_id: str, counts: tuple | None = None, code_format=None) -> tuple[str, str]:
    """("ok", "") when the answer parses back (to `counts` extrudes and curves when given), else (reason, message)."""
    from cadvlm.cad.model import CADError
    from cadvlm.codec.format import CodeFormat

    try:
        model = (code_format or CodeFormat()).parse_answer(answer, sample_id)
    except CADError as exc:
        return ("answer_parse_error" if exc.reason == "parse_error" else "answer_" + exc.reason), str(exc)
    got = (len(model.extrudes), model.n_curves())
    if counts is not None and tuple(counts) != got:
        return "answer_mismatch", f"{sample_id}: parsed {got} extrudes/curves, the model has {tuple(counts)}"
    return "ok", ""


def _answer_task(args):
    return model_answer(*args)


def _answer_chunk(tasks: list) -> list:
    """Cluster task: the answers of a chunk of models, each task's JSON carried as bytes."""
    return [_answer_task(t) for t in tasks]


def _answers_on_cluster(tasks: list, config: ConvertConfig) -> list:
    """[_answer_task(t) for t in tasks], in chunks on the pool `config.parallel` names."""
    from cadvlm.parallel import file_payload, make_pool

    chunks = [tasks[i:i + CLUSTER_CHUNK] for i in range(0, len(tasks), CLUSTER_CHUNK)]
    results: list = [None] * len(tasks)
    lost = {"timeout": "timeout", "crash": "worker_crashed"}
    with make_pool(config.workers, CLUSTER_CHUNK_LIMIT_S, ("cadvlm.data.convert", "cadvlm.codec.format"),
                   config.parallel) as pool:
        carried = ([(file_payload(t[0]), *t[1:]) for t in chunk] for chunk in chunks)
        for o in pool.run(_answer_chunk, carried):
            start, n = o.index * CLUSTER_CHUNK, len(chunks[o.index])
            results[start:start + n] = o.value if o.status == "ok" else \
                [(None, lost.get(o.status, "worker_error"), ())] * n
    return results


# ----------------------------------------------------------------------------- checks
@dataclass
class CheckResult:
    ok: list = field(default_factory=list)  # samples that passed
    problems: Counter = field(default_factory=Counter)  # reason -> count
    examples: dict = field(default_factory=dict)  # reason -> first message


def check_samples(samples: list, image_root: Path, size: tuple[int, int] | None,
                  parsed_cache: dict | None = None, code_format=None) -> CheckResult:
    """Validate conversation samples; `parsed_cache` maps answer -> verdict (filled as it goes)."""
    res = CheckResult()
    cache = parsed_cache if parsed_cache is not None else {}
    seen_ids = set()

    def bad(reason, message):
        res.problems[reason] += 1
        res.examples.setdefault(reason, message)

    for k, s in enumerate(samples):
        if not isinstance(s, dict) or not isinstance(s.get("id"), str) or not isinstance(s.get("image"), str):
            bad("malformed_sample", f"item {k}: needs string 'id' and 'image'")
            continue
        sid = s["id"]
        conv = s.get("conversations")
        if sid in seen_ids:
            bad("duplicate_id", f"{sid}: id used twice")
            continue
        if not (isinstance(conv, list) and len(conv) == 2 and all(isinstance(t, dict) for t in conv)
                and [t.get("from") for t in conv] == ["human", "gpt"]
                and all(isinstance(t.get("value"), str) for t in conv)):
            bad("malformed_conversation", f"{sid}: expected one human and one gpt turn")
            continue
        if not conv[0]["value"].startswith(IMAGE_TAG + "\n"):
            bad("no_image_tag", f"{sid}: the human turn must start with {IMAGE_TAG!r} and a newline")
            continue
        rel = Path(s["image"])
        if rel.is_absolute() or ".." in rel.parts:
            bad("bad_image_path", f"{sid}: image path {s['image']!r} must stay inside the image folder")
            continue
        path = image_root / rel
        if not path.is_file():
            bad("image_missing", f"{sid}: {path} does not exist")
            continue
        got = picture_size(path)
        if got is None:
            bad("image_unreadable", f"{sid}: {path} is not a readable PNG or JPEG")
            continue
        if size is not None and tuple(got) != tuple(size):
            bad("image_size", f"{sid}: {path} is {got[0]}x{got[1]}, expected {size[0]}x{size[1]}")
            continue
        answer = conv[1]["value"]
        verdict = cache.get(answer)
        if verdict is None:
            verdict = cache[answer] = answer_verdict(answer, sid, None, code_format)
        if verdict[0] != "ok":
            bad(verdict[0], verdict[1] or sid)
            continue
        seen_ids.add(sid)
        res.ok.append(s)
    return res


# ----------------------------------------------------------------------------- the stage
def _stats(values: list[int]) -> dict:
    if not values:
        return {"min": 0, "mean": 0.0, "max": 0}
    return {"min": min(values), "mean": round(sum(values) / len(values), 1), "max": max(values)}


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


def convert(extracted, rendered, out_dir, config: ConvertConfig = ConvertConfig(), metrics_path=None,
            progress: bool = False) -> dict:
    """Write the conversation files; returns (and optionally writes) the metrics."""
    extracted, rendered, out_dir = Path(extracted), Path(rendered), Path(out_dir)
    split = json.loads((extracted / "split.json").read_text())
    index = json.loads((rendered / "index.json").read_text())
    info = RenderInfo.read(rendered)
    # Pictures that came with the dataset come with its prompts, which say what each picture is.
    imported = read_pictures(extracted) or {}
    skipped: Counter = Counter()

    # One answer per model (all its views share it), written in worker processes.
    todo = []
    for name in SPLIT_FILES:
        for model_id in split.get(name) or []:
            if model_id not in index:
                skipped["not_rendered"] += 1
            else:
                todo.append(model_id)
    unique = sorted(set(todo))
    tasks = [(extracted / "json" / f"{m}.json", m, config.compat, config.code) for m in unique]
    workers = config.workers or os.cpu_count() or 1
    if config.parallel.backend == "ray" and tasks:
        results = _answers_on_cluster(tasks, config)
    elif workers > 1 and len(tasks) >= POOL_MIN:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_answer_task, tasks, chunksize=max(1, len(tasks) // (8 * workers))))
    else:
        results = [_answer_task(t) for t in tasks]
    answers = dict(zip(unique, results))

    metrics = {"layout": info.layout, "code_format": config.format, "models": {}, "samples": {}, "skipped": {}, "templates": {},
               "answer_chars": {}, "answer_tokens": {},
               "tokenizer": "regex [A-Za-z_]+|\\d|[^\\sA-Za-z_\\d] (letter runs, single digits, other chars)"}
    templates: Counter = Counter()
    chars, tokens = [], []
    longest = 0  # curves in the longest loop of the training answers (compact), for kept decoding
    cache, owner = {}, {}
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, fname in SPLIT_FILES.items():
        samples = []
        for model_id in split.get(name) or []:
            if model_id not in answers:
                continue
            answer, verdict, counts = answers[model_id]
            if answer is None:
                skipped[verdict] += 1
                continue
            cache[answer] = verdict
            images = index[model_id]
            if info.layout != "separate":  # the sheet of all views, or the one imported picture
                pairs = [(model_id, images[0] if images else None, imported.get(model_id, {}).get("kind"))]
            else:
                pairs = [(f"{model_id}_{v}", _view_image(images, model_id, v), v) for v in info.views]
            for sid, image, view in pairs:
                owner[sid] = model_id
                if image is None:
                    skipped["image_not_indexed"] += 1
                    continue
                if model_id in imported:
                    prompt = imported[model_id]["prompt"]
                else:
                    t = choose_template(sid, config.seed, len(config.prompts))
                    prompt = config.prompts[t].replace("{views}", info.describe(view))
                # model_id and view say what the sample shows: nothing downstream parses ids
                samples.append({"id": sid, "model_id": model_id, "view": view or GRID_VIEW, "image": image,
                                "conversations": [
                    {"from": "human", "value": f"{IMAGE_TAG}\n{prompt}"},
                    {"from": "gpt", "value": answer}]})
        res = check_samples(samples, rendered, info.size, cache, config.code)
        skipped.update(res.problems)
        ok_ids = set()
        for s in res.ok:
            ok_ids.add(owner[s["id"]])
            answer = s["conversations"][1]["value"]
            templates["dataset" if owner[s["id"]] in imported else
                      choose_template(s["id"], config.seed, len(config.prompts))] += 1
            chars.append(len(answer))
            tokens.append(count_tokens(answer))
            if name == "train" and config.code.compact:
                longest = max(longest, longest_loop(config.code.code_of(answer)))
        n_models = len(ok_ids)
        _write_json(out_dir / fname, res.ok)
        metrics["models"][fname[:-5]] = n_models
        metrics["samples"][fname[:-5]] = len(res.ok)
    _write_json(out_dir / INFO_FILE, {
        "image_folder": os.path.relpath(rendered, out_dir), "image_size": list(info.size) if info.size else None,
        "layout": info.layout, "views": list(info.views), "splits": SPLIT_FILES,
        **replace(config.code, max_loop_curves=longest or None).to_json(),
        "prompts": list(_dataset_prompts(imported) or config.prompts)})
    metrics["skipped"] = dict(sorted(skipped.items()))
    metrics["templates"] = {str(k): templates.get(k, 0) for k in range(len(config.prompts))}
    if imported:
        metrics["templates"]["dataset"] = templates.get("dataset", 0)
    metrics["answer_chars"] = _stats(chars)
    metrics["answer_tokens"] = _stats(tokens)
    if metrics_path is not None:
        Path(metrics_path).parent.mkdir(parents=True, exist_ok=True)
        _write_json(Path(metrics_path), metrics)
    return metrics


def _dataset_prompts(imported: dict) -> list[str]:
    """The dataset's own prompts, the most used first (the one inference uses by default)."""
    counts = Counter(r["prompt"] for r in imported.values())
    return sorted(counts, key=lambda p: (-counts[p], p))


def _view_image(images: list, model_id: str, view: str) -> str | None:
    """The picture of one view: render names them images/<id>_<view>.png."""
    suffix = f"{model_id}_{view}.png"
    for p in images:
        if p.endswith(suffix):
            return p
    return None


# ----------------------------------------------------------------------------- any dataset folder
def validate_folder(folder, image_root=None, size=None) -> dict:
    """Run `check_samples` on every split file of a converted folder; returns a report dict."""
    folder = Path(folder)
    info_path = folder / INFO_FILE
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if image_root is None:
        image_root = folder / info["image_folder"] if "image_folder" in info else folder
    if size is None and info.get("image_size"):
        size = tuple(info["image_size"])
    report = {"image_root": str(image_root), "image_size": list(size) if size else None, "files": {}}
    files = [folder / f for f in SPLIT_FILES.values() if (folder / f).is_file()]
    if not files:
        files = sorted(p for p in folder.glob("*.json") if p.name != INFO_FILE)
    from cadvlm.codec.format import read_converted_format

    code_format = read_converted_format(folder)
    cache: dict = {}
    for path in files:
        try:
            samples = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            report["files"][path.name] = {"samples": 0, "ok": 0, "problems": {"unreadable_json": 1},
                                          "examples": {"unreadable_json": str(exc)}}
            continue
        if not isinstance(samples, list):
            report["files"][path.name] = {"samples": 0, "ok": 0, "problems": {"not_a_list": 1},
                                          "examples": {"not_a_list": f"{path.name}: top level is not a list"}}
            continue
        res = check_samples(samples, Path(image_root), size, cache, code_format)
        report["files"][path.name] = {"samples": len(samples), "ok": len(res.ok),
                                      "problems": dict(sorted(res.problems.items())), "examples": res.examples}
    return report
