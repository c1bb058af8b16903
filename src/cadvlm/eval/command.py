"""`cadvlm score`: score a folder of generated code (ours, OpenECAD's, CadQuery from CAD-Recode or
cadrille, anyone's) against DeepCAD truth, never running it.

Several predictions per shape are named `<id>_<k>.py` (or `<id>/<k>.py`); besides the default
figures (one row per prediction) the report then counts them per shape and best of N
(`cadvlm.eval.conventions`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from cadvlm.codec.format import add_format_arguments, format_from_arguments
from cadvlm.eval.baselines import oracle_answer
from cadvlm.eval.conventions import convention_figures, format_conventions, shape_id
from cadvlm.eval.report import format_summary, summarise_methods, write_json, write_rows_csv
from cadvlm.eval.scoring import TRUTH_ERROR, ScoreConfig, score_answers


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
    p.add_argument("--deepcad-scale", action="store_true",
                   help="also report Chamfer in DeepCAD's convention (code in the truth's own frame only)")
    add_format_arguments(p)


def pred_files(pred_dir: Path) -> dict[str, Path]:
    """{id: file} for *.py / *.txt under pred_dir (id = relative path without suffix)."""
    out = {}
    for p in sorted(pred_dir.rglob("*")):
        if p.is_file() and p.suffix in (".py", ".txt"):
            out.setdefault(p.relative_to(pred_dir).with_suffix("").as_posix(), p)
    return out


def match_truths(preds: dict[str, Path], truth_dir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """({prediction id: truth JSON}, {prediction id: shape id}): the truth of <id> is
    <truth>/<id>.json, else the one truth file with the same name anywhere below (flat outputs
    such as 00000007.py against DeepCAD's cad_json/0000/); <id>_<k> and <id>/<k> are samples of <id>."""
    found_at: dict[str, Path | None] = {}
    by_stem = None

    def truth_of(i: str) -> Path | None:
        nonlocal by_stem
        if i not in found_at:
            direct = truth_dir / f"{i}.json"
            if direct.is_file():
                found_at[i] = direct
            else:
                if by_stem is None:
                    by_stem = {}
                    for p in truth_dir.rglob("*.json"):
                        by_stem.setdefault(p.stem, []).append(p)
                found = by_stem.get(Path(i).name, [])
                found_at[i] = found[0] if len(found) == 1 else None
        return found_at[i]

    truths, shapes = {}, {}
    for i in preds:
        sid = shape_id(i, lambda k: truth_of(k) is not None)
        if sid is not None:
            truths[i], shapes[i] = truth_of(sid), sid
    return truths, shapes


def _fail(message: str) -> int:
    print(f"cadvlm score: {message}", file=sys.stderr)
    return 2


def cmd_score(args) -> int:
    if not args.pred.is_dir():
        return _fail(f"--pred {args.pred} is not a folder")
    if not args.truth.is_dir():
        return _fail(f"--truth {args.truth} is not a folder")
    try:
        code = format_from_arguments(args)
    except ValueError as exc:
        return _fail(str(exc))
    preds = pred_files(args.pred)
    if not preds:
        return _fail(f"no .py or .txt files under {args.pred}")
    truth_of, shape_of = match_truths(preds, args.truth)
    missing = [i for i in preds if i not in truth_of]
    ids = [i for i in preds if i in truth_of]
    if not ids:
        return _fail(f"none of the {len(preds)} predictions has a truth <id>.json in {args.truth}")
    samples = []
    for i in ids:
        truth = str(truth_of[i])
        try:
            answer = preds[i].read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            answer = ""  # unreadable prediction: no code
        samples.append({"id": i, "method": "model", "answer": answer, "truth": truth,
                        "deepcad_scale": args.deepcad_scale})
        if args.oracle and shape_of[i] == i:
            samples.append({"id": i, "method": "oracle", "answer": oracle_answer(Path(truth), i, code), "truth": truth})
    print(f"scoring {len(ids)} answers as {code.describe()}", file=sys.stderr)
    rows = score_answers(samples, ScoreConfig(workers=args.workers, timeout_s=args.timeout, seed=args.seed), code)
    summary = summarise_methods(rows, ["model", "oracle"], seed=args.seed)
    conventions = convention_figures([r for r in rows if r["method"] == "model"], shape_of)
    for m, s in summary.items():
        print(format_summary(m, s))
        if m == "model":
            print(format_conventions(conventions))
    skipped = sum(1 for r in rows if r["status"] == TRUTH_ERROR and r["method"] == "model")
    if skipped or missing:
        print(f"left out: {skipped} whose truth does not build, {len(missing)} without a truth JSON")
    if args.json:
        out = dict(summary["model"])
        out["conventions"] = conventions
        if args.oracle:
            out["baselines"] = {"oracle": summary["oracle"]}
        write_json(out, args.json)
    if args.samples:
        write_rows_csv(rows, args.samples)
    return 0
