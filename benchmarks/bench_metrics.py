"""Cost of the evaluation metrics per pair, on the real DeepCAD samples (prints figures).

    python benchmarks/bench_metrics.py [--repeat 3]

For each buildable sample in ../shared/deepcad/json it scores the solid against itself (the
oracle pair) and against the next sample (a wrong pair), and prints per stage: prepare (mesh,
normalise, sample 8,192 points), Chamfer (two KD-tree queries), IoU (boolean Common + volume).
"Pair" = prepare both + Chamfer + IoU, the cost of scoring one fresh prediction on one core.
It also prints how much the metric mesh's coarser deflection moves Chamfer x1000 against a fine
mesh, the reason the cheaper setting is acceptable.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from cadvlm import metrics
from cadvlm.cad.deepcad_json import read_model
from cadvlm.cad.model import Arc, CADError, CADModel, Circle, Extrude, Line, Loop, Profile
from cadvlm.geometry.solid import build_solid

DEEPCAD = Path(__file__).resolve().parents[2] / "shared" / "deepcad" / "json"


def perturbed(model: CADModel, rel: float, seed: int = 0) -> CADModel:
    """A near miss of the model, like a decent prediction: each profile scaled about its plane
    origin and shifted, each depth scaled, by ~rel (one affine map per profile keeps loops closed)."""
    rng = np.random.default_rng(seed)
    size = max(float(np.max(np.abs(c.sample(4)))) for e in model.extrudes for lp in e.profile.loops
               for c in lp.curves) or 1.0
    out = []
    for e in model.extrudes:
        k = 1 + rng.uniform(-rel, rel)
        d = rng.uniform(-rel, rel, 2) * size

        def f(p):
            return np.asarray(p) * k + d

        def curve(c):
            if isinstance(c, Line):
                return Line(f(c.start), f(c.end))
            if isinstance(c, Arc):
                return Arc(f(c.start), f(c.mid), f(c.end))
            return Circle(f(c.center), c.radius * k)

        loops = [Loop([curve(c) for c in lp.curves]) for lp in e.profile.loops]
        kd = 1 + rng.uniform(-rel, rel)
        out.append(Extrude(e.plane, Profile(loops), e.operation, e.extent_type, e.extent_one * kd, e.extent_two * kd))
    return CADModel(out, model.model_id)


def _ms(f, repeat):
    """Best CPU time of `repeat` calls, ms. CPU time of this process (everything here runs on one
    thread), not wall time: the figure stays meaningful on a machine shared with other jobs."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.process_time()
        out = f()
        best = min(best, time.process_time() - t)
    return best * 1000, out


def _pair(pred_shape, truth: metrics.PreparedSolid, repeat: int):
    """(ms prepare pred, ms chamfer, ms iou, cd x1000, iou) of one prediction against a truth."""
    t_prep, p = _ms(lambda: metrics.prepare(pred_shape, seed=1), repeat)
    t_ch, cd = _ms(lambda: metrics.chamfer(p, truth), repeat)
    t_iou, v = _ms(lambda: metrics.iou(p, truth), repeat)
    return t_prep, t_ch, t_iou, cd * metrics.CHAMFER_SCALE, v


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--near", type=float, default=0.03, help="relative perturbation of the near pair")
    args = ap.parse_args()
    models, shapes = {}, {}
    for p in sorted(DEEPCAD.glob("*.json")):
        try:
            models[p.stem] = read_model(p)
            shapes[p.stem] = build_solid(models[p.stem])
        except CADError:
            models.pop(p.stem, None)
    ids = list(shapes)
    print(f"{len(ids)} buildable samples from {DEEPCAD}; best of {args.repeat} runs, CPU ms on one core.")
    print("self = the truth rebuilt (oracle), near = every profile and depth perturbed by "
          f"~{args.near:.0%}, next = another model. pair = prepare both + Chamfer + IoU.")
    print(f"{'id':>9} {'prep':>5} {'chamf':>5} | {'iou':>5} {'pair':>5} {'CD':>6} {'IoU':>6} | "
          f"{'iou':>5} {'pair':>5} {'CD':>6} {'IoU':>6} | {'iou':>5} {'pair':>5} {'CD':>7} {'IoU':>6} | mesh dCD")
    print(f"{'':>9} {'':>5} {'':>5} | {'self':^25} | {'near':^25} | {'next':^26} |")
    cost = {"self": [], "near": [], "next": []}
    parts = {"prepare": [], "chamfer": [], "iou": []}
    floors = []
    for i, k in enumerate(ids):
        t_truth, truth = _ms(lambda: metrics.prepare(shapes[k], seed=0), args.repeat)
        cols = []
        for kind, pred in (("self", build_solid(models[k])),
                           ("near", _near(models[k], args.near)),
                           ("next", shapes[ids[(i + 1) % len(ids)]])):
            if pred is None:
                cols.append(f"{'-':>5} {'-':>5} {'-':>6} {'-':>6}")
                continue
            t_prep, t_ch, t_iou, cd, v = _pair(pred, truth, args.repeat)
            pair = t_truth + t_prep + t_ch + t_iou
            cost[kind].append(pair)
            parts["prepare"].append(t_prep)
            parts["chamfer"].append(t_ch)
            parts["iou"].append(t_iou)
            if kind == "self":
                floors.append(cd)
            cols.append(f"{t_iou:5.1f} {pair:5.1f} {cd:6.3f} {v:6.4f}" if kind != "next"
                        else f"{t_iou:5.1f} {pair:5.1f} {cd:7.2f} {v:6.4f}")
        print(f"{k[-8:]:>9} {t_truth:5.1f} {t_ch:5.1f} | " + " | ".join(cols) + f" | {_mesh_bias(models[k], truth):+.4f}")
    print()
    for kind, v in cost.items():
        print(f"pair cost {kind:>4} (ms): median {statistics.median(v):6.1f}  mean {statistics.mean(v):6.1f}  "
              f"max {max(v):6.1f}  (n={len(v)})")
    for kind, v in parts.items():
        print(f"  {kind:>8} (ms): median {statistics.median(v):6.1f}  mean {statistics.mean(v):6.1f}")
    print(f"oracle sampling floor, CD x1000: median {statistics.median(floors):.4f}, mean {np.mean(floors):.4f}")


def _near(model, rel):
    try:
        return build_solid(perturbed(model, rel))
    except CADError:
        return None


def _mesh_bias(model, truth) -> float:
    """CD x1000 of a fresh sample on a 20x finer mesh minus that of the metric mesh (same seed)."""
    saved = metrics.METRIC_REL_DEFLECTION, metrics.METRIC_ANGULAR_DEFLECTION
    try:
        metrics.METRIC_REL_DEFLECTION, metrics.METRIC_ANGULAR_DEFLECTION = 1e-4, 0.1
        fine = metrics.prepare(build_solid(model), seed=1)
    finally:
        metrics.METRIC_REL_DEFLECTION, metrics.METRIC_ANGULAR_DEFLECTION = saved
    coarse = metrics.prepare(build_solid(model), seed=1)
    return (metrics.chamfer(fine, truth) - metrics.chamfer(coarse, truth)) * metrics.CHAMFER_SCALE


if __name__ == "__main__":
    main()
