"""`cadvlm code` and `cadvlm parse`: model <-> CAD code (OpenECAD v2, CadQuery or compact) from the command line.

`cadvlm code DIR -o OUT` converts a whole folder of DeepCAD JSON (DeepCAD's `cad_json/` layout,
any depth) at once: OUT mirrors DIR with one `.py` per model, written atomically, models that
cannot be written are skipped and counted by reason (OUT/code_report.json lists them), and the
work is spread over worker processes, since one file is only a JSON read and a text write.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cadvlm.cad.model import CADError
from cadvlm.codec.format import add_format_arguments, format_from_arguments


def add_arguments_code(p) -> None:
    p.add_argument("model", help="DeepCAD-format JSON file, or a folder of them (then -o is required)")
    p.add_argument("-o", "--out", type=Path, help="folder mode: write <relative path>.py files here")
    p.add_argument("--workers", type=int, default=0, help="folder mode: worker processes (0 = all cores)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="folder mode: no progress bar")
    p.add_argument("--compat", action="store_true",
                   help="OpenECAD only: also reproduce OpenECAD's mirrored frames for normals with x < 0")
    p.add_argument("--answer", action="store_true", help="print the full chat answer (sentence + code block)")
    add_format_arguments(p)


def cmd_code(args) -> int:
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.codec.answer import wrap_answer

    if Path(args.model).is_dir():
        return cmd_code_folder(args)
    if args.out is not None:
        print("cadvlm code: -o is for a folder of models; for one model the code goes to stdout", file=sys.stderr)
        return 2
    try:
        code_format = format_from_arguments(args)
        code = code_format.write(read_model(args.model), compat=args.compat)
    except (CADError, ValueError) as exc:
        print(f"cadvlm code: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(wrap_answer(code) + "\n" if args.answer else code)
    return 0


def _code_one(job: tuple) -> tuple[str, str | None, str]:
    """(relative path, None or the skip reason, message): one JSON file -> its .py file."""
    from cadvlm.cad.deepcad_json import read_model

    src, dst, rel, code_format, compat = job
    try:
        code = code_format.write(read_model(src, Path(rel).stem), compat=compat)
    except CADError as exc:
        return rel, exc.reason, str(exc)
    except (RecursionError, MemoryError, OverflowError) as exc:  # absurd input: counted, not fatal
        return rel, "unreadable_model", f"{type(exc).__name__}"
    out = Path(dst)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(code if code.endswith("\n") else code + "\n", encoding="utf-8")
    tmp.replace(out)
    return rel, None, ""


def cmd_code_folder(args) -> int:
    """Every *.json under args.model -> args.out/<same relative path>.py, skips counted by reason."""
    import time
    from multiprocessing import get_context

    from tqdm import tqdm

    if args.out is None:
        print("cadvlm code: a folder of models needs -o OUT (the folder to write the code into)", file=sys.stderr)
        return 2
    try:
        code_format = format_from_arguments(args)
    except ValueError as exc:
        print(f"cadvlm code: {exc}", file=sys.stderr)
        return 2
    src_dir, out_dir = Path(args.model), Path(args.out)
    files = sorted(p for p in src_dir.rglob("*.json") if p.is_file())
    if not files:
        print(f"cadvlm code: no .json files under {src_dir}", file=sys.stderr)
        return 2
    jobs = [(str(p), str(out_dir / p.relative_to(src_dir).with_suffix(".py")), p.relative_to(src_dir).as_posix(),
             code_format, args.compat) for p in files]
    workers = args.workers if args.workers > 0 else (os.cpu_count() or 1)
    skipped: dict[str, int] = {}
    failures = []
    t0 = time.perf_counter()
    with tqdm(total=len(jobs), desc=f"code ({code_format.describe()})", unit="file", disable=not args.progress,
              file=sys.stderr) as bar:
        if workers == 1:
            results = map(_code_one, jobs)
            pool = None
        else:
            pool = get_context("spawn").Pool(workers)
            results = pool.imap(_code_one, jobs, chunksize=64)
        try:
            for rel, reason, message in results:
                if reason is not None:
                    skipped[reason] = skipped.get(reason, 0) + 1
                    failures.append({"file": rel, "reason": reason, "message": message})
                bar.update(1)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    seconds = time.perf_counter() - t0
    written = len(jobs) - len(failures)
    report = {"source": str(src_dir), "format": code_format.to_json(), "files": len(jobs), "written": written,
              "skipped": dict(sorted(skipped.items())), "seconds": round(seconds, 2),
              "files_per_s": round(len(jobs) / seconds, 1) if seconds > 0 else None, "failures": failures}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "code_report.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())) or "none"
    print(f"{src_dir} -> {out_dir}: {written} of {len(jobs)} files written as {code_format.describe()} "
          f"({report['files_per_s']} files/s); skipped: {reasons} (see {out_dir / 'code_report.json'})")
    return 0 if written else 1


def add_arguments_parse(p) -> None:
    p.add_argument("code", help="code (.py / .txt), or a chat answer holding a ``` block; - for stdin")
    p.add_argument("-o", "--output", required=True, help="DeepCAD-format JSON file to write")
    add_format_arguments(p)


def cmd_parse(args) -> int:
    from cadvlm.cad.deepcad_json import dumps, model_to_json

    try:
        code_format = format_from_arguments(args)
    except ValueError as exc:
        print(f"cadvlm parse: {exc}", file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read() if args.code == "-" else Path(args.code).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"cadvlm parse: cannot read {args.code}: {exc}", file=sys.stderr)
        return 1
    model_id = None if args.code == "-" else Path(args.code).stem
    try:
        model = code_format.parse_answer(text, model_id)
    except CADError as exc:
        print(f"cadvlm parse: {exc} (read as {code_format.describe()})", file=sys.stderr)
        return 1
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(dumps(model_to_json(model)), encoding="utf-8")
    tmp.replace(out)
    print(f"{args.code}: {len(model.extrudes)} extrudes, {model.n_curves()} curves -> {out}")
    return 0
