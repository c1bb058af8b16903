"""CAD code speed and robustness: writer, parser (fast and ast front ends), fuzzing, convert stage.

Usage: python benchmarks/bench_codec.py [--synthetic N] [--fuzz N] [--convert-samples N] [--skip-convert]

Figures printed (CPU time of this process, so a busy machine distorts them less than wall time):
- writer: models/s and how many of ../shared/deepcad's 25 files it reproduces exactly;
- parser: programs/s on typical answers (DeepCAD-limit real samples + synthetic models);
- fuzz: cases run (mutated / truncated real answers), outcomes, slowest case;
- convert: seconds for N samples (grid layout, blank pictures, models copied under new ids).
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "deepcad"
sys.path.insert(0, str(ROOT / "tests"))


def cpu(fn, repeat: int = 1) -> float:
    t = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - t) / repeat


def corpus(n_synthetic: int):
    """(id, JSON text, model) of in-limit real samples and synthetic models."""
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.cad.limits import check_limits
    from cadvlm.cad.model import CADError
    from cadvlm.synth import model_json_text

    out = []
    for p in sorted((SHARED / "json").glob("*.json")) if SHARED.is_dir() else []:
        try:
            m = read_model(p)
            check_limits(m)
        except CADError:
            continue
        out.append((p.stem, p.read_text(), m))
    for i in range(n_synthetic):
        text = model_json_text(i, seed=11)
        out.append((f"syn{i}", text, read_model(__import__("json").loads(text), f"syn{i}")))
    return out


def bench_writer(items) -> list[str]:
    from cadvlm.cad.deepcad_json import read_model
    from cadvlm.cad.model import CADError
    from cadvlm.codec.openecad_writer import write_code

    models = [m for _, _, m in items]
    dt = cpu(lambda: [write_code(m) for m in models], 3)
    print(f"writer: {len(models) / dt:,.0f} models/s ({dt / len(models) * 1e6:.0f} us/model, {len(models)} models)")
    same = total = 0
    for p in sorted((SHARED / "json").glob("*.json")) if SHARED.is_dir() else []:
        ref = (SHARED / "openecad_v2" / f"{p.stem}.py").read_text()
        try:
            code = write_code(read_model(p))
        except CADError:
            code = ""
        total += 1
        same += re.sub(r"\s+", "", code) == re.sub(r"\s+", "", ref)
    print(f"writer: {same}/{total} OpenECAD reference files reproduced (whitespace aside)")
    return [write_code(m) for m in models]


def bench_parser(codes: list[str]) -> None:
    from cadvlm.codec.openecad_parser import parse_code

    sizes = [len(c) for c in codes]
    print(f"answers: {len(codes)}, code length median {statistics.median(sizes):.0f} chars "
          f"(mean {statistics.mean(sizes):.0f}, max {max(sizes)})")
    typical = [c for c in codes if len(c) <= 2 * statistics.median(sizes)]
    for fast in (True, False):
        dt = cpu(lambda: [parse_code(c, fast=fast) for c in typical], 3 if fast else 1)
        print(f"parser ({'fast' if fast else 'ast'} front end): {len(typical) / dt:,.0f} programs/s on "
              f"{len(typical)} typical answers (<= 2x median length), one core")
    dt = cpu(lambda: [parse_code(c) for c in codes], 1)
    print(f"parser: {len(codes) / dt:,.0f} programs/s on all {len(codes)} answers")


def bench_fuzz(n: int) -> None:
    from codec_fuzz import mutate, outcome

    texts = [p.read_text() for p in sorted((SHARED / "openecad_v2").glob("*.py"))] if SHARED.is_dir() else []
    texts = [t for t in texts if t]
    if not texts:
        print("fuzz: skipped (no ../shared/deepcad)")
        return
    rng = random.Random(2024)
    seen, worst, disagree = Counter(), 0.0, 0
    t0 = time.process_time()
    for _ in range(n):
        text = mutate(rng.choice(texts), rng)
        t = time.perf_counter()
        a, b = outcome(text, True), outcome(text, False)  # anything but CADError would raise here
        worst = max(worst, time.perf_counter() - t)
        disagree += (a[0] != b[0]) or (a[1:] != b[1:] if a[0] == "error" else a[1] != b[1])
        seen[a[1] if a[0] == "error" else "ok"] += 1
    print(f"fuzz: {n} cases in {time.process_time() - t0:.1f} s CPU, outcomes {dict(seen.most_common())}, "
          f"front ends disagree {disagree}, slowest case {worst * 1000:.1f} ms")


def bench_convert(items, n_samples: int) -> None:
    from cadvlm.data.convert import ConvertConfig, convert
    from convert_fixture import make_dataset

    texts = [t for _, t, _ in items]
    sources = {f"{i // 1000:04d}/{i:08d}": texts[i % len(texts)] for i in range(n_samples)}
    with tempfile.TemporaryDirectory() as d:
        extracted, rendered = make_dataset(Path(d), sources, "grid", view_size=8,
                                           splits={"train": sorted(sources)[100:], "validation": sorted(sources)[:50],
                                                   "test": sorted(sources)[50:100]})
        for workers in (1, 2):
            t, c = time.perf_counter(), time.process_time()
            m = convert(extracted, rendered, Path(d) / f"out{workers}", ConvertConfig(workers=workers))
            wall, cpu_s = time.perf_counter() - t, time.process_time() - c
            extra = f", {cpu_s:.2f} s CPU (all work in this process)" if workers == 1 else ""
            print(f"convert: {sum(m['samples'].values())} samples in {wall:.2f} s wall with {workers} worker(s)"
                  f"{extra} (read JSON + write code + parse back + PNG headers); skipped {m['skipped']}")
        print(f"convert: answer chars {m['answer_chars']}, tokens {m['answer_tokens']}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--synthetic", type=int, default=120)
    ap.add_argument("--fuzz", type=int, default=10000)
    ap.add_argument("--convert-samples", type=int, default=3300)
    ap.add_argument("--skip-convert", action="store_true")
    args = ap.parse_args()
    items = corpus(args.synthetic)
    codes = bench_writer(items)
    bench_parser(codes)
    bench_fuzz(args.fuzz)
    if not args.skip_convert:
        bench_convert(items, args.convert_samples)


if __name__ == "__main__":
    main()
