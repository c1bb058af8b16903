"""`cadvlm code` and `cadvlm parse`: model <-> CAD code (OpenECAD v2 or compact) from the command line."""

from __future__ import annotations

import sys
from pathlib import Path

from cadvlm.cad.model import CADError
from cadvlm.codec.format import add_format_arguments, format_from_arguments


def add_arguments_code(p) -> None:
    p.add_argument("model", help="DeepCAD-format JSON file")
    p.add_argument("--compat", action="store_true",
                   help="OpenECAD only: also reproduce OpenECAD's mirrored frames for normals with x < 0")
    p.add_argument("--answer", action="store_true", help="print the full chat answer (sentence + code block)")
    add_format_arguments(p)


def cmd_code(args) -> int:
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.codec.answer import wrap_answer

    try:
        code_format = format_from_arguments(args)
        code = code_format.write(read_model(args.model), compat=args.compat)
    except (CADError, ValueError) as exc:
        print(f"cadvlm code: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(wrap_answer(code) + "\n" if args.answer else code)
    return 0


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
