"""Procedural DeepCAD-format parts, one model at a time: the generator's entry point.

Real DeepCAD is 178K Onshape models; a laptop run needs a small set it can make offline, that
looks like DeepCAD to the rest of the pipeline. Parts are drawn the way DeepCAD's look: about
half are one extrude (a plate, disc, polygon, L/T/U section... often with holes in the same
sketch), the rest add features sketched on principal planes or on faces of earlier extrudes
(hole patterns, pockets, counterbores, bosses, hubs, walls, gussets, grooves, notches, side
holes, the odd intersect). Sizes are millimetre-scale numbers a designer would type (metric or
fractional inch), written in metres as DeepCAD does.

This module is where the pieces meet: the settings (`SynthConfig`), the table of feature
families and how often each is tried (`FEATURES`, `FEATURE_ADDERS`), composing one part,
converting it to metres, validating it as a solid, and the retry loop (`generate`).

Determinism: model i is drawn from `numpy.random.default_rng([seed, i, attempt])`, so it is the
same whatever the number of models, and growing the set keeps earlier models. A draw is kept
only if it passes DeepCAD's limits and builds to one valid solid (through the same JSON the
stage writes, read back); otherwise the next attempt (sub-seed) is drawn.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, fields

import numpy as np

from cadvlm.cad.deepcad_json import dumps, model_to_json, read_model
from cadvlm.cad.limits import Limits, check_limits
from cadvlm.cad.model import Arc, CADError, CADModel, Circle, Extrude, Line, Loop, Plane, Profile
from cadvlm.synth import shapes as sh
from cadvlm.synth.base import build_base
from cadvlm.synth.bosses import add_bosses, add_hub
from cadvlm.synth.builder import PartBuilder
from cadvlm.synth.edge_cuts import add_groove, add_notch, add_side_holes
from cadvlm.synth.holes import add_holes
from cadvlm.synth.intersect import add_intersect
from cadvlm.synth.pockets import add_pocket
from cadvlm.synth.walls import add_gussets, add_wall

# Features after the base, and how often each is tried (a feature that does not fit adds nothing).
FEATURES = {
    "holes": 0.26, "boss": 0.32, "pocket": 0.07, "wall": 0.08, "gusset": 0.06, "side_hole": 0.05,
    "notch": 0.05, "groove": 0.05, "hub": 0.04, "intersect": 0.06,
}
FLOAT_DECIMALS = 10  # JSON floats (metres) rounded to 1e-10 m: stable bytes, exact to 0.1 nm

# How each feature is added: fn(builder, budget) -> extrudes added (0 when it does not fit).
FEATURE_ADDERS = {
    "holes": add_holes, "boss": add_bosses, "pocket": add_pocket, "wall": add_wall, "gusset": add_gussets,
    "side_hole": add_side_holes, "notch": add_notch, "groove": add_groove, "hub": add_hub,
    "intersect": add_intersect,
}


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
    build_base(pb, inner)
    names = list(FEATURES)
    weights = np.array([FEATURES[k] for k in names])
    tries = 0
    while len(pb.extrudes) < n_target and tries < 40:
        budget = n_target - len(pb.extrudes)
        w = weights.copy()
        if pb.walls:
            w[names.index("gusset")] *= 3.0
        name = pb.pick(names, w)
        FEATURE_ADDERS[name](pb, budget)
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
