"""Procedural DeepCAD-format parts: the pipeline's embedded default data source.

Real DeepCAD is 178K Onshape models; a laptop run needs a small set it can make offline, that
looks like DeepCAD to the rest of the pipeline. This module draws parts the way DeepCAD's look:
about half are one extrude (a plate, disc, polygon, L/T/U section... often with holes in the same
sketch), the rest add features sketched on principal planes or on faces of earlier extrudes
(hole patterns, pockets, counterbores, bosses, hubs, walls, gussets, grooves, notches, side
holes, the odd intersect). Sizes are millimetre-scale numbers a designer would type (metric or
fractional inch), written in metres as DeepCAD does.

Determinism: model i is drawn from `numpy.random.default_rng([seed, i, attempt])`, so it is the
same whatever the number of models, and growing the set keeps earlier models. A draw is kept
only if it passes DeepCAD's limits and builds to one valid solid (through the same JSON the
stage writes, read back); otherwise the next attempt (sub-seed) is drawn.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field, fields

import numpy as np

from cadvlm.cad import synth_shapes as sh
from cadvlm.cad.deepcad_json import dumps, model_to_json, read_model
from cadvlm.cad.limits import Limits, check_limits
from cadvlm.cad.model import Arc, CADError, CADModel, Circle, Extrude, Line, Loop, Plane, Profile
from cadvlm.cad.synth_part import PartBuilder

# Features after the base, and how often each is tried (a feature that does not fit adds nothing).
FEATURES = {
    "holes": 0.26, "boss": 0.32, "pocket": 0.07, "wall": 0.08, "gusset": 0.06, "side_hole": 0.05,
    "notch": 0.05, "groove": 0.05, "hub": 0.04, "intersect": 0.06,
}
FLOAT_DECIMALS = 10  # JSON floats (metres) rounded to 1e-10 m: stable bytes, exact to 0.1 nm


@dataclass(frozen=True)
class SynthConfig:
    """What the generator draws; the `synthesize` section of params.yaml maps onto it."""

    # P(model has 1, 2, ... extrudes). DeepCAD: about half are one extrude, a long tail after.
    extrude_weights: tuple = (0.50, 0.20, 0.11, 0.07, 0.05, 0.04, 0.02, 0.01)
    size_min_mm: float = 10.0  # largest side of the base outline, drawn log-uniformly
    size_max_mm: float = 200.0
    imperial_fraction: float = 0.3  # parts designed in fractional inches (DeepCAD has many)
    max_attempts: int = 30
    check_effect: bool = True  # reject draws with an extrude that leaves the solid unchanged
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_params(cls, params: dict | None) -> "SynthConfig":
        """Build from a params.yaml section, ignoring keys that are not generator settings."""
        params = dict(params or {})
        names = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in params.items() if k in names and k != "limits"}
        if "extrude_weights" in kwargs:
            kwargs["extrude_weights"] = tuple(float(w) for w in kwargs["extrude_weights"])
        return cls(**kwargs)


def model_id(index: int) -> str:
    """File stem of synthetic model `index` ("s0000123")."""
    return f"s{index:07d}"


# --------------------------------------------------------------------------- mm -> metres


def _m(v) -> float:
    return round(float(v) * 1e-3, 9) + 0.0


def _m2(p) -> np.ndarray:
    return np.array([_m(p[0]), _m(p[1])])


def _axis(v) -> np.ndarray:
    return np.array([round(float(x), 12) + 0.0 for x in v])


def to_metres(extrudes: list[Extrude]) -> list[Extrude]:
    """The builder's millimetre extrudes in DeepCAD's metres, rounded to a micrometre's thousandth."""
    out = []
    for ex in extrudes:
        plane = Plane(np.array([_m(v) for v in ex.plane.origin]), _axis(ex.plane.x_axis), _axis(ex.plane.normal))
        loops = []
        for lp in ex.profile.loops:
            curves = []
            for c in lp.curves:
                if isinstance(c, Line):
                    curves.append(Line(_m2(c.start), _m2(c.end)))
                elif isinstance(c, Arc):
                    curves.append(Arc(_m2(c.start), _m2(c.mid), _m2(c.end)))
                else:
                    curves.append(Circle(_m2(c.center), _m(c.radius)))
            loops.append(Loop(curves))
        out.append(Extrude(plane, Profile(loops), ex.operation, ex.extent_type, _m(ex.extent_one),
                           _m(ex.extent_two)))
    return out


# --------------------------------------------------------------------------- drawing one model


def draw_extrude_count(seed: int, index: int, config: SynthConfig) -> int:
    """How many extrudes model `index` aims at (drawn once per model, not per attempt)."""
    rng = np.random.default_rng([seed, index, 1_000_003])
    w = np.asarray(config.extrude_weights, dtype=np.float64)
    return int(rng.choice(len(w), p=w / w.sum())) + 1


def compose(rng: np.random.Generator, n_target: int, config: SynthConfig) -> PartBuilder:
    """Draw one part (millimetres) aiming at n_target extrudes; the builder holds extrudes and features."""
    units = sh.Units("inch" if rng.random() < config.imperial_fraction else "mm")
    pb = PartBuilder(rng, units, (config.size_min_mm, config.size_max_mm))
    inner = None if n_target == 1 else int(pb.pick((0, 1, 2, 4), (0.62, 0.2, 0.08, 0.1)))
    pb.build_base(inner)
    names = list(FEATURES)
    weights = np.array([FEATURES[k] for k in names])
    tries = 0
    while len(pb.extrudes) < n_target and tries < 40:
        budget = n_target - len(pb.extrudes)
        w = weights.copy()
        if pb.walls:
            w[names.index("gusset")] *= 3.0
        name = pb.pick(names, w)
        getattr(pb, "feat_" + name)(budget)
        tries += 1
    return pb


def round_floats(obj, decimals: int = FLOAT_DECIMALS):
    """Every float in a JSON-like structure rounded (and -0.0 made 0.0): same model, same bytes."""
    if isinstance(obj, float):
        return round(obj, decimals) + 0.0
    if isinstance(obj, dict):
        return {k: round_floats(v, decimals) for k, v in obj.items()}
    if isinstance(obj, list):
        return [round_floats(v, decimals) for v in obj]
    return obj


def _single_solid(shape) -> None:
    from OCP.TopAbs import TopAbs_SOLID

    from cadvlm.geometry.solid import count

    n = count(shape, TopAbs_SOLID)
    if n != 1:
        raise CADError("not_one_solid", f"the part falls into {n} solids")


def _check_effect(model: CADModel) -> None:
    """Every extrude after the first must change the volume: a cut in thin air or a boss buried
    in the body teaches the model to write code that does nothing."""
    from cadvlm.geometry.solid import build_solid, volume

    prev = None
    for k in range(1, len(model.extrudes) + 1):
        v = volume(build_solid(CADModel(model.extrudes[:k]), unify=False))
        if prev is not None and abs(v - prev) <= 1e-6 * max(abs(v), abs(prev)):
            raise CADError("no_effect", f"extrude {k - 1} does not change the solid")
        prev = v


def validate(model: CADModel, limits: Limits, check_effect: bool = True) -> tuple[dict, CADModel]:
    """The model's DeepCAD JSON dict (with its bounding box) and the model read back from it.

    CADError when the model is over DeepCAD's limits, or its JSON, read back, does not build one
    valid solid, or (check_effect) one of its extrudes changes nothing: the generator then draws
    again.
    """
    from cadvlm.geometry.solid import bounding_box, build_solid

    check_limits(model, limits)
    data = round_floats(model_to_json(model))
    back = read_model(data, model.model_id)
    shape = build_solid(back)
    _single_solid(shape)
    if check_effect:
        _check_effect(back)
    lo, hi = bounding_box(shape)
    data["properties"] = round_floats({"bounding_box": {
        "type": "BoundingBox3D", "min_point": dict(zip("xyz", map(float, lo))),
        "max_point": dict(zip("xyz", map(float, hi)))}})
    back.bbox = (lo, hi)
    return data, back


@dataclass
class Generated:
    """One drawn model: its JSON dict, the model read back from it, and how it was drawn."""

    index: int
    model_id: str
    data: dict
    model: CADModel
    attempts: int
    features: list
    units: str
    failures: Counter


def generate(index: int, seed: int = 0, config: SynthConfig | None = None) -> Generated:
    """Draw model `index` for `seed`, retrying sub-seeds until it is valid (CADError if none is)."""
    config = config or SynthConfig()
    mid = model_id(index)
    n_target = draw_extrude_count(seed, index, config)
    failures: Counter = Counter()
    for attempt in range(config.max_attempts):
        rng = np.random.default_rng([seed, index, attempt])
        try:
            pb = compose(rng, n_target, config)
        except (ValueError, ZeroDivisionError, FloatingPointError) as exc:  # degenerate draw
            failures[f"compose:{type(exc).__name__}"] += 1
            continue
        if len(pb.extrudes) < n_target and attempt < config.max_attempts // 2:
            failures["short"] += 1
            continue
        model = CADModel(to_metres(pb.extrudes), model_id=mid)
        try:
            data, back = validate(model, config.limits, config.check_effect)
        except CADError as exc:
            failures[exc.reason] += 1
            continue
        return Generated(index, mid, data, back, attempt + 1, pb.features, pb.u.name, failures)
    raise CADError("synth_failed", f"no valid draw in {config.max_attempts} attempts ({dict(failures)})", mid)


def generate_model(index: int, seed: int = 0, config: SynthConfig | None = None) -> CADModel:
    """The CADModel of synthetic model `index` (as read back from its JSON, with its bounding box)."""
    return generate(index, seed, config).model


def model_json_text(index: int, seed: int = 0, config: SynthConfig | None = None) -> str:
    """The exact file content the synthesize stage writes for model `index`."""
    return dumps(generate(index, seed, config).data)


# --------------------------------------------------------------------------- statistics


def model_stats(model: CADModel) -> dict:
    """Counts of one model: extrudes, curve types, operations, extents, loops, planes."""
    curves, ops, exts, planes = Counter(), Counter(), Counter(), Counter()
    loops = []
    for ex in model.extrudes:
        ops[ex.operation.name] += 1
        exts[ex.extent_type.name] += 1
        n = ex.plane.normal
        key = next((f"{'+-'[int(n[i] < 0)]}{'XYZ'[i]}" for i in range(3) if abs(abs(n[i]) - 1) < 1e-9), "oblique")
        planes[key] += 1
        loops.append(len(ex.profile.loops))
        for lp in ex.profile.loops:
            for c in lp.curves:
                curves[type(c).__name__] += 1
    return {"extrudes": len(model.extrudes), "curves": curves, "operations": ops, "extents": exts,
            "planes": planes, "loops": loops}


class StatsAccumulator:
    """Aggregates per-model statistics into the metrics the stage prints and writes."""

    def __init__(self):
        self.n = 0
        self.extrudes = Counter()
        self.curves = Counter()
        self.ops = Counter()
        self.exts = Counter()
        self.planes = Counter()
        self.loops = Counter()
        self.units = Counter()
        self.features = Counter()
        self.attempts = Counter()
        self.failures = Counter()
        self.skipped = Counter()
        self.sizes = []
        self.commands = []

    def add(self, g: Generated) -> None:
        s = model_stats(g.model)
        self.n += 1
        self.extrudes[s["extrudes"]] += 1
        self.curves.update(s["curves"])
        self.ops.update(s["operations"])
        self.exts.update(s["extents"])
        self.planes.update(s["planes"])
        self.loops.update(s["loops"])
        self.units[g.units] += 1
        self.features.update(f.split(":")[0] for f in g.features)
        self.attempts[g.attempts] += 1
        self.failures.update(g.failures)
        lo, hi = g.model.bbox
        self.sizes.append(float(np.max(hi - lo)) * 1000.0)
        from cadvlm.cad.limits import n_commands

        self.commands.append(n_commands(g.model))

    def skip(self, reason: str) -> None:
        self.skipped[reason] += 1

    @staticmethod
    def _share(c: Counter) -> dict:
        total = sum(c.values()) or 1
        return {str(k): round(v / total, 4) for k, v in sorted(c.items(), key=lambda kv: str(kv[0]))}

    def metrics(self) -> dict:
        sizes = np.array(self.sizes) if self.sizes else np.zeros(1)
        cmds = np.array(self.commands) if self.commands else np.zeros(1)
        return {
            "models": self.n,
            "skipped": dict(sorted(self.skipped.items())),
            "extrudes_per_model": {str(k): v for k, v in sorted(self.extrudes.items())},
            "mean_extrudes": round(sum(k * v for k, v in self.extrudes.items()) / max(self.n, 1), 4),
            "curve_types": dict(sorted(self.curves.items())),
            "curve_share": self._share(self.curves),
            "operations": dict(sorted(self.ops.items())),
            "operation_share": self._share(self.ops),
            "extent_types": dict(sorted(self.exts.items())),
            "extent_share": self._share(self.exts),
            "sketch_normals": dict(sorted(self.planes.items())),
            "loops_per_profile": {str(k): v for k, v in sorted(self.loops.items())},
            "units": dict(sorted(self.units.items())),
            "features": dict(sorted(self.features.items())),
            "attempts": {str(k): v for k, v in sorted(self.attempts.items())},
            "rejected_draws": dict(sorted(self.failures.items())),
            "size_mm": {"min": round(float(sizes.min()), 3), "median": round(float(np.median(sizes)), 3),
                        "max": round(float(sizes.max()), 3)},
            "commands": {"mean": round(float(cmds.mean()), 3), "max": int(cmds.max())},
        }


def format_stats(m: dict) -> str:
    """A short human-readable summary of `metrics()` for the stage's log."""
    n = max(m["models"], 1)
    lines = [f"models: {m['models']}  skipped: {m['skipped'] or 0}  units: {m['units']}"]
    lines.append("extrudes per model: " + "  ".join(
        f"{k}:{v} ({100 * v / n:.0f}%)" for k, v in m["extrudes_per_model"].items()) + f"  mean {m['mean_extrudes']}")
    for key in ("curve_share", "operation_share", "extent_share"):
        lines.append(f"{key.replace('_share', 's')}: " + "  ".join(f"{k} {100 * v:.1f}%" for k, v in m[key].items()))
    lines.append(f"sketch normals: {m['sketch_normals']}")
    lines.append(f"loops per profile: {m['loops_per_profile']}")
    lines.append(f"features: {m['features']}")
    lines.append(f"size (mm): {m['size_mm']}  commands: {m['commands']}")
    lines.append(f"attempts: {m['attempts']}  rejected draws: {m['rejected_draws']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the data set


def _work(args):
    index, seed, config = args
    try:
        g = generate(index, seed, config)
    except CADError as exc:
        return index, None, exc.reason, None
    return index, dumps(g.data), None, g


def write_dataset(out_dir, n_models: int, seed: int = 0, config: SynthConfig | None = None, workers: int = 1,
                  progress: bool = True) -> dict:
    """Write models 0..n_models-1 as <out_dir>/<model_id>.json; return the statistics (metrics dict).

    Files are written whole (temp file, then rename); files of other ids in out_dir are removed,
    so the folder is exactly this set.
    """
    from pathlib import Path

    from tqdm import tqdm

    config = config or SynthConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    keep = {model_id(i) + ".json" for i in range(n_models)}
    for p in [*out.glob("*.json"), *out.glob("*.json.tmp")]:
        if p.name not in keep:
            p.unlink()
    stats = StatsAccumulator()
    jobs = [(i, seed, config) for i in range(n_models)]
    workers = (os.cpu_count() or 1) if workers in (0, None) else int(workers)
    bar = tqdm(total=n_models, desc="synthesize", unit="model", disable=not progress)

    def consume(results):
        for index, text, reason, g in results:
            if text is None:
                stats.skip(reason)
            else:
                path = out / (model_id(index) + ".json")
                tmp = path.with_suffix(".json.tmp")
                tmp.write_text(text, encoding="utf-8")
                os.replace(tmp, path)
                stats.add(g)
            bar.update(1)

    if workers > 1 and n_models > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(workers) as pool:
            consume(pool.imap(_work, jobs, chunksize=4))
    else:
        consume(map(_work, jobs))
    bar.close()
    return stats.metrics()


def write_metrics(path, metrics: dict) -> None:
    from pathlib import Path

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")


__all__ = ["SynthConfig", "Generated", "generate", "generate_model", "model_json_text", "model_id", "compose",
           "validate", "write_dataset", "write_metrics", "model_stats", "StatsAccumulator", "format_stats"]
