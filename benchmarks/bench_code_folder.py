"""`cadvlm code DIR -o OUT --format F` at DeepCAD scale: files per second over a cad_json/ layout.

Usage: python benchmarks/bench_code_folder.py [--files 178000] [--format cadquery] [--workers 0]

DeepCAD's cad_json/ holds ~178K models in folders 0000/ .. 0099/. This lays out that many files
the same way (hard links to the project's synthetic models and the real samples, so it costs
no disk), runs the folder conversion as users run it, and prints the rate, the skips by reason
and the output size. The layout is kept under --work between runs (pass --fresh to rebuild it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout(work: Path, n: int, sources: list[Path]) -> Path:
    src_dir = work / "cad_json"
    if src_dir.is_dir() and sum(1 for _ in src_dir.rglob("*.json")) == n:
        return src_dir
    shutil.rmtree(src_dir, ignore_errors=True)
    for k in range(n):
        folder = src_dir / f"{k // 1780:04d}"
        if k % 1780 == 0:
            folder.mkdir(parents=True)
        os.link(sources[k % len(sources)], folder / f"{k:08d}.json")
    return src_dir


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=178_000)
    ap.add_argument("--format", default="cadquery")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/cadvlm-bench-code"))
    ap.add_argument("--fresh", action="store_true")
    args = ap.parse_args()
    sources = sorted((ROOT / "data/raw/synthetic").glob("*.json")) + sorted((ROOT.parent / "shared/deepcad/json").glob("*.json"))
    if not sources:
        print("no models: run `dvc repro synthesize` first (data/raw/synthetic)", file=sys.stderr)
        return 2
    if args.fresh:
        shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    src_dir = layout(args.work, args.files, sources)
    print(f"layout: {args.files} files from {len(sources)} distinct models in {time.perf_counter() - t0:.1f} s")
    out = args.work / f"out_{args.format}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "cadvlm.cli", "code", str(src_dir), "-o", str(out), "--format", args.format,
           "--workers", str(args.workers), "--no-progress"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    report = json.loads((out / "code_report.json").read_text())
    size = sum(p.stat().st_size for p in out.rglob("*.py"))
    print(f"{args.format}: {report['files']} files, {report['written']} written, skipped {report['skipped']}; "
          f"{report['files'] / wall:.0f} files/s end to end ({wall:.1f} s, {os.cpu_count()} cores, "
          f"{report['files_per_s']} files/s inside the command); {size / 1e6:.1f} MB of code")
    return 0


if __name__ == "__main__":
    sys.exit(main())
