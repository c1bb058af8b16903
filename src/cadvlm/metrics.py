"""Geometric and command-level metrics between a predicted and a ground-truth CAD model.

The protocol is the one published image-to-CAD work reports on the DeepCAD test set (cadrille,
CAD-Recode, CADEvolve), so our numbers sit in the same table:

- both solids are normalised the same way, each on its own: the bounding box is centred at the
  origin and scaled so its longest side is 1 (no rotation alignment: orientation must be right);
- Chamfer distance: 8,192 points sampled uniformly on each surface, the mean squared distance to
  the nearest point of the other cloud taken both ways and summed; reported x1000;
- IoU from exact volumes: OpenCascade's boolean Common of the two normalised solids, and
  union = vol(a) + vol(b) - vol(a & b) (the same number a Fuse would give, for half the cost);
- command accuracy from the two construction sequences (see `command_accuracy`).

The truth cloud is sampled with `seed` and the prediction with `seed + 1`, so even a perfect
prediction has a small non-zero Chamfer distance (the sampling floor), as in published work.
Everything is deterministic: same shapes and seed, same numbers.

Why a coarser mesh than rendering: the points are drawn from a tessellation, whose chord error
(here <= 2e-3 of the diagonal, plus circles cut every 0.5 rad) only moves CD x1000 by ~0.01
(see benchmarks/bench_metrics.py) while meshing is the largest cost of a pair.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
from scipy.spatial import cKDTree

from cadvlm.cad.model import Arc, CADError, CADModel, Circle, Line

CHAMFER_POINTS = 8192
CHAMFER_SCALE = 1000.0  # reported Chamfer distance = raw x 1000
METRIC_REL_DEFLECTION = 2e-3
METRIC_ANGULAR_DEFLECTION = 0.5


class PreparedSolid:
    """A solid moved into the unit cube, with what the pairwise metrics need, computed once.

    Scoring many predictions against one truth (or one constant answer against many truths)
    reuses these: the pairwise cost is then one boolean and two nearest-neighbour queries. The
    normalised B-rep and its volume are made on first use: Chamfer alone does not need them.
    """

    def __init__(self, source, points: np.ndarray, center: np.ndarray, scale: float):
        self.source = source  # TopoDS_Shape, original placement and size
        self.points = points  # (n, 3) normalised surface samples
        self.tree = cKDTree(points)
        self.center = center  # normalised = (original - center) * scale
        self.scale = scale

    @cached_property
    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) corners of the surface samples' box (normalised units)."""
        return self.points.min(axis=0), self.points.max(axis=0)

    @cached_property
    def shape(self):
        """The normalised B-rep (gp_Trsf: translation then uniform scale)."""
        from cadvlm.geometry.solid import transformed

        return transformed(self.source, self.center, self.scale)

    @cached_property
    def volume(self) -> float:
        from cadvlm.geometry.solid import volume

        return volume(self.source) * self.scale ** 3


def normalisation(shape) -> tuple[np.ndarray, float]:
    """(center, scale) that map the shape's exact bounding box into the unit cube at the origin."""
    from cadvlm.geometry.solid import bounding_box

    lo, hi = bounding_box(shape)
    longest = float(np.max(hi - lo))
    if not np.isfinite(longest) or longest <= 0:
        raise CADError("empty_solid", "the solid has an empty bounding box")
    return (lo + hi) / 2.0, 1.0 / longest


def normalise(shape):
    """The shape centred and scaled so the longest side of its bounding box is 1."""
    from cadvlm.geometry.solid import transformed

    center, scale = normalisation(shape)
    return transformed(shape, center, scale)


def prepare(shape, n_points: int = CHAMFER_POINTS, seed: int = 0) -> PreparedSolid:
    """Normalise a valid solid and sample its surface (CADError 'empty_solid' when it has no area)."""
    from cadvlm.geometry.mesh import sample_points, tessellate

    center, scale = normalisation(shape)
    # Mesh the original: the deflection is relative to the part's size, so this equals meshing
    # the normalised copy, and the copy then needs no triangulation of its own.
    verts, tris = tessellate(shape, METRIC_REL_DEFLECTION, METRIC_ANGULAR_DEFLECTION)
    verts = (verts - center) * scale
    return PreparedSolid(shape, sample_points(verts, tris, n_points, seed), center, scale)


def chamfer(a: PreparedSolid, b: PreparedSolid) -> float:
    """Mean squared nearest-neighbour distance a->b plus b->a, in normalised units (not x1000)."""
    d_ab, _ = b.tree.query(a.points, k=1)
    d_ba, _ = a.tree.query(b.points, k=1)
    return float(np.mean(d_ab ** 2) + np.mean(d_ba ** 2))


DEEPCAD_SIZE = 0.75  # DeepCAD scales each part so the largest |coordinate| of its box is this


def chamfer_deepcad(pred: PreparedSolid, truth: PreparedSolid) -> float:
    """Chamfer in DeepCAD's convention (its evaluate_ae_cd.py), not x1000: neither solid is
    normalised on its own; both stay where the code put them, in the truth's frame, scaled as
    DeepCAD scales its data (the truth's largest |coordinate| becomes 0.75, no centring). So a part
    that is right but off-centre or off-size is charged for it, which the unit-cube protocol
    forgives. Meaningful only when the code is in the truth's frame (OpenECAD and CadQuery written
    from DeepCAD JSON are; compact code and other systems' normalised outputs are not)."""
    from cadvlm.geometry.solid import bounding_box

    lo, hi = bounding_box(truth.source)
    s = DEEPCAD_SIZE / float(np.max(np.abs(np.concatenate([lo, hi]))))
    a = (pred.points / pred.scale + pred.center) * s
    b = (truth.points / truth.scale + truth.center) * s
    d_ab, _ = cKDTree(b).query(a, k=1)
    d_ba, _ = cKDTree(a).query(b, k=1)
    return float(np.mean(d_ab ** 2) + np.mean(d_ba ** 2))


def _shape_list(shape):
    from OCP.collections import List_TopoDS_Shape

    out = List_TopoDS_Shape()
    out.Append(shape)
    return out


def iou(a: PreparedSolid, b: PreparedSolid) -> float:
    """Volume IoU of two normalised solids from an exact boolean Common.

    CADError('iou_failed') when OpenCascade cannot intersect them; callers may then fall back to
    `iou_occupancy`.
    """
    from OCP.BRepAlgoAPI import BRepAlgoAPI_Common
    from OCP.TopAbs import TopAbs_SOLID

    from cadvlm.geometry.solid import count, volume

    try:
        op = BRepAlgoAPI_Common()
        op.SetArguments(_shape_list(a.shape))
        op.SetTools(_shape_list(b.shape))
        op.SetRunParallel(False)  # one core per sample: the stage parallelises over samples
        op.SetToFillHistory(False)  # only the volume is wanted: ~2x faster on simple pairs
        op.SetNonDestructive(True)  # prepared solids are cached and reused across pairs
        op.Build()
        result = op.Shape() if op.IsDone() else None
        inter = volume(result) if result is not None else None
    except Exception as exc:  # OCC raises Standard_Failure on degenerate input
        raise CADError("iou_failed", f"boolean common raised {type(exc).__name__}") from None
    if inter is None:
        raise CADError("iou_failed", "boolean common failed")
    # Common can report success with a wrong result on solids whose faces nearly coincide (a
    # truth against its own code on a 10-bit grid: 10 of 300 synthetic parts came back empty or
    # as a sliver, scoring a near-perfect answer 0). Two checks send such pairs to the fallback:
    # |A & B| >= |A| + |B| - |box of A and B| always holds, so a result below it is wrong; and
    # an empty result for solids whose boxes overlap is suspect (the fallback then finds ~0 if
    # they truly do not meet).
    if inter < a.volume + b.volume - _union_box_volume(a, b):
        raise CADError("iou_failed", f"boolean common gave {inter:.3g}, less than the volumes allow")
    if count(result, TopAbs_SOLID) == 0 and _boxes_overlap(a, b):
        raise CADError("iou_failed", "boolean common returned nothing for overlapping solids")
    union = a.volume + b.volume - inter
    # inter can exceed min(volume) by integration error; clamp to the meaningful range.
    return float(min(max(inter / union, 0.0), 1.0)) if union > 0 else 0.0


def _boxes_overlap(a: PreparedSolid, b: PreparedSolid, margin: float = 1e-3) -> bool:
    """Whether the boxes of the two solids' surface samples overlap by more than `margin` in
    every axis (unit-cube units): then an empty intersection is possible but not likely."""
    lo, hi = np.maximum(a.box[0], b.box[0]), np.minimum(a.box[1], b.box[1])
    return bool(np.all(hi - lo > margin))


def _union_box_volume(a: PreparedSolid, b: PreparedSolid, pad: float = 0.01) -> float:
    """Volume of the box around both solids' surface samples, padded on every side so that it
    holds the solids themselves (samples miss the extreme corners by a little)."""
    lo, hi = np.minimum(a.box[0], b.box[0]) - pad, np.maximum(a.box[1], b.box[1]) + pad
    return float(np.prod(hi - lo))


def iou_occupancy(a: PreparedSolid, b: PreparedSolid, resolution: int = 64) -> float:
    """Approximate IoU on a regular grid over the unit cube (open3d ray-cast occupancy).

    A fallback for the rare pair whose exact boolean fails, so a valid prediction is never
    dropped from the IoU mean (which would flatter the model).
    """
    import open3d as o3d

    from cadvlm.geometry.mesh import tessellate

    ax = (np.arange(resolution) + 0.5) / resolution - 0.5
    grid = np.stack(np.meshgrid(ax, ax, ax, indexing="ij"), axis=-1).reshape(-1, 3).astype(np.float32)
    occ = []
    for s in (a, b):
        verts, tris = tessellate(s.shape, METRIC_REL_DEFLECTION, METRIC_ANGULAR_DEFLECTION)
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(verts.astype(np.float32), tris.astype(np.uint32))
        occ.append(scene.compute_occupancy(o3d.core.Tensor(grid)).numpy() > 0.5)
    union = np.logical_or(*occ).sum()
    return float(np.logical_and(*occ).sum() / union) if union else 0.0


def compare(pred: PreparedSolid, truth: PreparedSolid, with_iou: bool = True) -> dict:
    """{'chamfer': CD x1000, 'iou': IoU in [0, 1] or None, 'iou_exact': bool} for one pair."""
    out = {"chamfer": chamfer(pred, truth) * CHAMFER_SCALE, "iou": None, "iou_exact": None}
    if with_iou:
        try:
            out["iou"], out["iou_exact"] = iou(pred, truth), True
        except CADError:
            out["iou"], out["iou_exact"] = iou_occupancy(pred, truth), False
    return out


def score_shapes(pred_shape, truth_shape, seed: int = 0, n_points: int = CHAMFER_POINTS) -> dict:
    """Chamfer x1000 and IoU of two solids (truth sampled with seed, prediction with seed + 1)."""
    return compare(prepare(pred_shape, n_points, seed + 1), prepare(truth_shape, n_points, seed))


# --- command-level accuracy -----------------------------------------------------------------

def _curve_token(curve) -> str:
    if isinstance(curve, Line):
        return "L"
    if isinstance(curve, Arc):
        return "A"
    if isinstance(curve, Circle):
        return "R"
    raise TypeError(f"unknown curve {type(curve).__name__}")


def command_tokens(model: CADModel) -> list[str]:
    """DeepCAD's command sequence: per extrude, per loop 'SOL' then one token per curve (L, A,
    R = circle), then 'E'; finally 'EOS'. Its length is DeepCAD's command count."""
    out = []
    for ex in model.extrudes:
        for loop in ex.profile.loops:
            out.append("SOL")
            out.extend(_curve_token(c) for c in loop.curves)
        out.append("E")
    out.append("EOS")
    return out


def curve_tokens(model: CADModel) -> list[str]:
    return [_curve_token(c) for ex in model.extrudes for lp in ex.profile.loops for c in lp.curves]


def _aligned(pred: list, truth: list) -> float:
    """Share of positions that agree when two sequences are laid side by side from the start,
    over the longer length (missing or extra items count as wrong); 1 for two empty lists."""
    n = max(len(pred), len(truth))
    if n == 0:
        return 1.0
    return sum(p == t for p, t in zip(pred, truth)) / n


def command_accuracy(pred: CADModel, truth: CADModel) -> dict:
    """Per-model agreement of the construction sequences, each in [0, 1]:

    - command: DeepCAD-style command-type accuracy over the aligned `command_tokens` sequences;
    - curve_type: the aligned sequence of curve types (line / arc / circle) over all loops;
    - extrude_count, curve_count: 1 when the number of extrudes / curves is exactly right;
    - operation, extent_type: aligned per-extrude boolean operation / extent type.
    """
    ops_p = [int(e.operation) for e in pred.extrudes]
    ops_t = [int(e.operation) for e in truth.extrudes]
    ext_p = [int(e.extent_type) for e in pred.extrudes]
    ext_t = [int(e.extent_type) for e in truth.extrudes]
    cp, ct = curve_tokens(pred), curve_tokens(truth)
    return {
        "command": _aligned(command_tokens(pred), command_tokens(truth)),
        "curve_type": _aligned(cp, ct),
        "extrude_count": float(len(pred.extrudes) == len(truth.extrudes)),
        "curve_count": float(len(cp) == len(ct)),
        "operation": _aligned(ops_p, ops_t),
        "extent_type": _aligned(ext_p, ext_t),
    }


COMMAND_KEYS = ("command", "curve_type", "extrude_count", "curve_count", "operation", "extent_type")
