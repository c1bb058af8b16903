"""What a generated data set looks like, in numbers: the synthesize stage's metrics.

The generator is meant to look like DeepCAD to the rest of the pipeline, so the stage records
the distributions that say whether it does (extrudes per model, curve types, operations, extent
types, sketch normals, loops per profile, sizes, command counts), how the parts were drawn
(units, features, attempts, rejected draws) and every model it had to skip, by reason.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from cadvlm.cad.limits import n_commands
from cadvlm.cad.model import CADModel
from cadvlm.synth.generate import Generated


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
