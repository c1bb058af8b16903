"""`cadvlm code` and `cadvlm parse`: model <-> OpenECAD v2 code from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cadvlm.cad.model import CADError


def add_arguments_code(p) -> None:
    p.add_argument("model", help="DeepCAD-format JSON file")
    p.add_argument("--compat", action="store_true",
                   help="also reproduce OpenECAD's mirrored frames for normals with x < 0 (see openecad_writer)")
    p.add_argument("--answer", action="store_true", help="print the full chat answer (sentence + code block)")


def cmd_code(args) -> int:
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.codec.openecad_parser import wrap_answer
    from cadvlm.codec.openecad_writer import write_code

    try:
        code = write_code(read_model(args.model), compat=args.compat)
    except CADError as exc:
        print(f"cadvlm code: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(wrap_answer(code) + "\n" if args.answer else code)
    return 0


def add_arguments_parse(p) -> None:
    p.add_argument("code", help="OpenECAD v2 code (.py), or a chat answer holding a ```python block; - for stdin")
    p.add_argument("-o", "--output", required=True, help="DeepCAD-format JSON file to write")


def cmd_parse(args) -> int:
    from cadvlm.cad.deepcad_json import dumps, model_to_json
    from cadvlm.codec.openecad_parser import extract_code, parse_code

    try:
        text = sys.stdin.read() if args.code == "-" else Path(args.code).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"cadvlm parse: cannot read {args.code}: {exc}", file=sys.stderr)
        return 1
    model_id = None if args.code == "-" else Path(args.code).stem
    try:
        if "```" in text:  # a whole answer: take its code block
            text = extract_code(text)
        model = parse_code(text, model_id=model_id)
    except CADError as exc:
        print(f"cadvlm parse: {exc}", file=sys.stderr)
        return 1
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(dumps(model_to_json(model)), encoding="utf-8")
    tmp.replace(out)
    n_curves = model.n_curves()
    print(f"{args.code}: {len(model.extrudes)} extrudes, {n_curves} curves -> {out}")
    return 0
