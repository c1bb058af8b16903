"""`cadvlm validate-data`: check a conversation dataset folder before anyone trains on it."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def add_arguments_validate_data(p) -> None:
    p.add_argument("folder", help="folder with train.json / val.json / test.json (e.g. data/converted)")
    p.add_argument("--images", help="folder the 'image' paths are relative to "
                                    "(default: from convert_info.json, else the folder itself)")
    p.add_argument("--size", help="expected picture size WxH (default: from convert_info.json; none = any)")
    p.add_argument("--json", action="store_true", help="print the full report as JSON")


def cmd_validate_data(args) -> int:
    from cadvlm.data.convert import validate_folder

    size = None
    if args.size:
        try:
            w, h = (int(v) for v in args.size.lower().split("x"))
            size = (w, h)
        except ValueError:
            print(f"cadvlm validate-data: --size must be WxH, got {args.size!r}", file=sys.stderr)
            return 2
    folder = Path(args.folder)
    if not folder.is_dir():
        print(f"cadvlm validate-data: {folder} is not a folder", file=sys.stderr)
        return 2
    report = validate_folder(folder, Path(args.images) if args.images else None, size)
    if args.json:
        print(json.dumps(report, indent=1))
    if not report["files"]:
        print(f"cadvlm validate-data: no dataset JSON in {folder}", file=sys.stderr)
        return 1
    bad = 0
    for name, r in report["files"].items():
        n_bad = sum(r["problems"].values())
        bad += n_bad
        line = f"{name}: {r['ok']}/{r['samples']} samples ok"
        if n_bad:
            line += "; " + ", ".join(f"{k} {v}" for k, v in r["problems"].items())
        print(line)
        for reason, example in r["examples"].items():
            print(f"  {reason}: {example}")
    print(f"images in {report['image_root']}" + (f", expected {report['image_size'][0]}x{report['image_size'][1]}"
                                                if report["image_size"] else ""))
    return 1 if bad else 0
