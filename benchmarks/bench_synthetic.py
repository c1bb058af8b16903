"""Synthetic generator speed: one core per step (drawing, validation, the whole model), then the
stage's own path (write_dataset: time-limited sandbox workers, files written) in wall-clock time.

Usage: python benchmarks/bench_synthetic.py [--n 200] [--seed 0] [--dataset 200] [--workers 1 2]
Prints milliseconds per model for each step and models per second overall, plus how often a
draw is rejected and why, and write_dataset's models per second for each worker count (worker
start-up included). Figures only; no asserts (the machine may be shared).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter

import numpy as np

from cadvlm.cad.model import CADModel
from cadvlm.synth import write_dataset
from cadvlm.synth.generate import SynthConfig, compose, draw_extrude_count, generate, to_metres, validate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dataset", type=int, default=200, help="models for the write_dataset timing (0: skip it)")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()
    cfg = SynthConfig()

    t0 = time.process_time()
    drawn = []
    for i in range(args.n):
        rng = np.random.default_rng([args.seed, i, 0])
        drawn.append(compose(rng, draw_extrude_count(args.seed, i, cfg), cfg))
    t_compose = time.process_time() - t0

    def timed(check_effect: bool):
        t = time.process_time()
        fails = Counter()
        for i, pb in enumerate(drawn):
            try:
                validate(CADModel(to_metres(pb.extrudes), model_id=str(i)), cfg.limits, check_effect)
            except Exception as exc:  # noqa: BLE001 - counted, reported
                fails[getattr(exc, "reason", type(exc).__name__)] += 1
        return time.process_time() - t, fails

    t_valid, fails = timed(False)
    t_effect, _ = timed(True)

    t0 = time.process_time()
    attempts = Counter()
    for i in range(args.n):
        attempts[generate(i, args.seed, cfg).attempts] += 1
    t_all = time.process_time() - t0

    n = args.n
    print(f"synthetic generator, {n} models, seed {args.seed}, CPU time of one process")
    print(f"  draw (compose, mm)             {1000 * t_compose / n:7.2f} ms/model")
    print(f"  validate: JSON, read, build    {1000 * t_valid / n:7.2f} ms/model")
    print(f"  validate + no-op extrude check {1000 * t_effect / n:7.2f} ms/model")
    print(f"  generate (with retries)        {1000 * t_all / n:7.2f} ms/model = {n / t_all:.1f} models/s")
    print(f"  first draws rejected: {dict(fails) or 0};  attempts per model: {dict(sorted(attempts.items()))}")
    for w in args.workers if args.dataset else ():
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            write_dataset(tmp, args.dataset, args.seed, cfg, workers=w, progress=False)
            wall = time.perf_counter() - t
        print(f"  write_dataset, {args.dataset} models, {w} worker(s): {wall:6.1f} s wall = "
              f"{args.dataset / wall:.1f} models/s (sandbox start-up included)")


if __name__ == "__main__":
    main()
