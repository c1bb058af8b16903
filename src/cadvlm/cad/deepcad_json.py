"""DeepCAD raw JSON <-> canonical CADModel.

The reader implements the semantics in DESIGN.md: build order from `sequence`, one extrude per
profile (NewBody then Join), the outer loop found geometrically (the file's `is_outer` is always
true), curves chained end to start, arcs from centre / reference vector / sweep, Symmetric and
TwoSides extents, unreferenced sketches ignored. Every failure is a CADError whose `reason` is a
short key that batch stages count.

Every reference must resolve, or the reason is `bad_reference` (naming the model, the referrer and
the missing id): each `sequence` item's entity must exist with the type the item gives, and each
extrude's `profiles[].sketch` must be a Sketch entity that has `profiles[].profile`. Curves are not
referenced: a profile curve's `curve` field is the id of the sketch curve it was taken from, but
the curve itself is written out in full in every profile that uses it (no file has a curve table),
so that id is a label, not a link, and the reader does not use it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from cadvlm.cad.model import (
    Arc,
    CADError,
    CADModel,
    Circle,
    ExtentType,
    Extrude,
    Line,
    Loop,
    Operation,
    Plane,
    Profile,
)

_OPERATIONS = {
    "NewBodyFeatureOperation": Operation.NEW_BODY,
    "JoinFeatureOperation": Operation.JOIN,
    "CutFeatureOperation": Operation.CUT,
    "IntersectFeatureOperation": Operation.INTERSECT,
}
_EXTENTS = {
    "OneSideFeatureExtentType": ExtentType.ONE_SIDE,
    "SymmetricFeatureExtentType": ExtentType.SYMMETRIC,
    "TwoSidesFeatureExtentType": ExtentType.TWO_SIDES,
}
# Two curve ends closer than this (metres; DeepCAD parts are ~1 mm to ~1 m) are the same point.
JOIN_TOL = 1e-6
# Shorter curves / thinner extrudes than this are degenerate.
MIN_LENGTH = 1e-7


def load_json(source) -> dict:
    """Read a DeepCAD file (path), take its contents (bytes: a file read by the stage and carried
    to a worker on another machine), or accept an already-loaded dict."""
    if isinstance(source, dict):
        return source
    try:
        text = source.decode("utf-8") if isinstance(source, bytes) else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise CADError("unreadable_file", str(exc)) from None
    except UnicodeDecodeError as exc:
        raise CADError("malformed_json", f"not UTF-8 text ({exc.reason})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CADError("malformed_json", f"line {exc.lineno} col {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise CADError("malformed_json", "top level is not a JSON object")
    return data


def model_id_from_path(path) -> str:
    """DeepCAD ids are 'XXXX/XXXXXXXX' (folder/stem) in split files; a lone file gives its stem."""
    p = Path(path)
    return p.stem


def read_model(source, model_id: str | None = None, check_crossing: bool = True) -> CADModel:
    """Parse a DeepCAD JSON file or dict into a CADModel (CADError on any problem).

    check_crossing=False skips the self-crossing loop test (the costliest check) for data that
    extract has already validated.
    """
    if model_id is None and not isinstance(source, (dict, bytes)):
        model_id = model_id_from_path(source)
    try:
        model = _read(load_json(source), check_crossing)
    except CADError as exc:
        raise exc.with_id(model_id) if model_id else exc
    model.model_id = model_id
    return model


def _get(d, key: str, what: str):
    if not isinstance(d, dict):
        raise CADError("missing_key", f"{what} is not an object")
    try:
        return d[key]
    except KeyError:
        raise CADError("missing_key", f"{what} has no '{key}'") from None


def _num(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CADError("bad_value", f"{what} is not a number: {value!r}")
    x = float(value)
    if not math.isfinite(x):
        raise CADError("bad_value", f"{what} is not finite")
    return x


def _xy(d, key: str, what: str) -> tuple[float, float]:
    p = _get(d, key, what)
    return _num(_get(p, "x", f"{what}.{key}"), f"{what}.{key}.x"), _num(_get(p, "y", f"{what}.{key}"), f"{what}.{key}.y")


def _xyz(d, key: str, what: str) -> np.ndarray:
    p = _get(d, key, what)
    return np.array([_num(_get(p, c, f"{what}.{key}"), f"{what}.{key}.{c}") for c in "xyz"])


def _entity(entities: dict, ent_id, kind: str, what: str) -> dict:
    """The entity `ent_id` names, which must exist and be a `kind`: CADError('bad_reference') if not."""
    if not isinstance(ent_id, str) or ent_id not in entities:
        raise CADError("bad_reference", f"{what} names entity {ent_id!r}, which is not in 'entities'")
    ent = entities[ent_id]
    got = ent.get("type") if isinstance(ent, dict) else type(ent).__name__
    if got != kind:
        raise CADError("bad_reference", f"{what} names entity {ent_id!r} as a {kind}, but it is a {got!r}")
    return ent


def _read(data: dict, check_crossing: bool = True) -> CADModel:
    entities = _get(data, "entities", "model")
    sequence = _get(data, "sequence", "model")
    if not isinstance(entities, dict) or not isinstance(sequence, list):
        raise CADError("missing_key", "'entities' must be an object and 'sequence' a list")
    extrudes: list[Extrude] = []
    for k, step in enumerate(sequence):
        what = f"sequence item {k}"
        kind = _get(step, "type", what)
        ent_id = _get(step, "entity", what)
        ent = _entity(entities, ent_id, kind, f"{what} ({kind})")  # every step, sketches included
        if kind == "ExtrudeFeature":
            extrudes.extend(_read_extrude(entities, ent, ent_id, check_crossing))
    if not extrudes:
        raise CADError("no_extrude", "no extrude with a profile: nothing to build")
    bbox = None
    box = data.get("properties", {}).get("bounding_box") if isinstance(data.get("properties"), dict) else None
    if isinstance(box, dict) and "min_point" in box and "max_point" in box:
        try:
            bbox = (_xyz(box, "min_point", "bounding_box"), _xyz(box, "max_point", "bounding_box"))
        except CADError:
            bbox = None
    return CADModel(extrudes=extrudes, bbox=bbox)


def _read_extrude(entities: dict, ent: dict, ent_id: str, check_crossing: bool = True) -> list[Extrude]:
    what = f"extrude {ent_id}"
    refs = _get(ent, "profiles", what)
    if not isinstance(refs, list):
        raise CADError("missing_key", f"{what}: 'profiles' is not a list")
    if not refs:
        return []  # Fusion keeps extrudes whose profile was deleted: nothing to build
    start = ent.get("start_extent", {}).get("type", "ProfilePlaneStartDefinition")
    if start != "ProfilePlaneStartDefinition":
        raise CADError("unsupported_feature", f"{what}: start extent {start!r}")
    op_name = _get(ent, "operation", what)
    ext_name = _get(ent, "extent_type", what)
    if op_name not in _OPERATIONS:
        raise CADError("unsupported_feature", f"{what}: operation {op_name!r}")
    if ext_name not in _EXTENTS:
        raise CADError("unsupported_feature", f"{what}: extent type {ext_name!r}")
    operation, extent_type = _OPERATIONS[op_name], _EXTENTS[ext_name]
    e1 = _num(_get(_get(_get(ent, "extent_one", what), "distance", what), "value", what), f"{what} extent_one")
    e2 = 0.0
    if extent_type == ExtentType.TWO_SIDES:
        e2 = _num(_get(_get(_get(ent, "extent_two", what), "distance", what), "value", what), f"{what} extent_two")
    out = []
    for i, ref in enumerate(refs):
        sketch_id = _get(ref, "sketch", what)
        profile_id = _get(ref, "profile", what)
        sketch = _entity(entities, sketch_id, "Sketch", f"{what} profiles[{i}].sketch")
        plane = read_plane(_get(sketch, "transform", f"sketch {sketch_id}"), f"sketch {sketch_id}")
        profiles = _get(sketch, "profiles", f"sketch {sketch_id}")
        if not isinstance(profiles, dict):
            raise CADError("missing_key", f"sketch {sketch_id}: 'profiles' is not an object")
        if not isinstance(profile_id, str) or profile_id not in profiles:
            raise CADError("bad_reference", f"{what} profiles[{i}].profile names profile {profile_id!r}, "
                                            f"which sketch {sketch_id!r} does not have")
        profile = _read_profile(profiles[profile_id], f"sketch {sketch_id} profile {profile_id}", check_crossing)
        op = Operation.JOIN if (i > 0 and operation == Operation.NEW_BODY) else operation
        extrude = Extrude(plane, profile, op, extent_type, e1, e2)
        lo, hi = extrude.depth_range()
        if hi - lo < MIN_LENGTH:
            raise CADError("zero_extent", f"{what} has zero depth")
        out.append(extrude)
    return out


def read_plane(t: dict, what: str) -> Plane:
    """A sketch transform -> Plane; the axes must be an orthonormal right-handed frame."""
    origin = _xyz(t, "origin", what)
    x, y, z = (_xyz(t, k, what) for k in ("x_axis", "y_axis", "z_axis"))
    # Plain-float checks: this runs for every extrude of every scanned file.
    xs, ys, zs = x.tolist(), y.tolist(), z.tolist()
    for name, v in (("x_axis", xs), ("y_axis", ys), ("z_axis", zs)):
        if abs(math.sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) - 1.0) > 1e-4:
            raise CADError("bad_plane", f"{what}: {name} is not a unit vector")
    zx = (zs[1] * xs[2] - zs[2] * xs[1], zs[2] * xs[0] - zs[0] * xs[2], zs[0] * xs[1] - zs[1] * xs[0])
    if abs(sum(a * b for a, b in zip(xs, zs))) > 1e-4 or max(abs(a - b) for a, b in zip(zx, ys)) > 1e-3:
        raise CADError("bad_plane", f"{what}: axes are not a right-handed orthonormal frame")
    return Plane(origin, x, z)


def read_curve(c: dict, what: str):
    """One DeepCAD curve dict (2-D points in the plane frame) -> Line / Arc / Circle."""
    kind = _get(c, "type", what)
    if kind == "Line3D":
        s = np.array(_xy(c, "start_point", what))
        e = np.array(_xy(c, "end_point", what))
        if np.linalg.norm(e - s) < MIN_LENGTH:
            raise CADError("zero_length_curve", f"{what}: line of zero length")
        return Line(s, e)
    if kind == "Circle3D":
        center = np.array(_xy(c, "center_point", what))
        r = _num(_get(c, "radius", what), f"{what} radius")
        if r < MIN_LENGTH:
            raise CADError("zero_length_curve", f"{what}: circle of radius {r}")
        return Circle(center, r)
    if kind == "Arc3D":
        center = np.array(_xy(c, "center_point", what))
        r = _num(_get(c, "radius", what), f"{what} radius")
        ref = np.array(_xy(c, "reference_vector", what))
        a0 = _num(c.get("start_angle", 0.0), f"{what} start_angle")
        a1 = _num(_get(c, "end_angle", what), f"{what} end_angle")
        sweep = a1 - a0
        norm = np.linalg.norm(ref)
        if r < MIN_LENGTH or norm < 1e-9 or not (1e-9 < sweep < 2 * math.pi - 1e-9):
            raise CADError("zero_length_curve", f"{what}: degenerate arc (radius {r}, sweep {sweep})")
        # Points at angle t from the reference: R(t) @ ref, evaluated the way DeepCAD/OpenECAD do
        # (a rotation of the stored vector), so printed mid points agree with theirs to the last bit.
        rx, ry = ref / norm
        pts = []
        for t in (a0, (a0 + a1) / 2, a1):
            ct, st = math.cos(t), math.sin(t)
            pts.append((center[0] + r * (ct * rx - st * ry), center[1] + r * (st * rx + ct * ry)))
        pts = np.array(pts)
        # Ends from the file (exact, so loops close); mid from centre, reference and sweep.
        s = np.array(_xy(c, "start_point", what))
        e = np.array(_xy(c, "end_point", what))
        tol = max(JOIN_TOL, 1e-4 * r)
        if min(np.linalg.norm(s - pts[0]) + np.linalg.norm(e - pts[2]),
               np.linalg.norm(s - pts[2]) + np.linalg.norm(e - pts[0])) > 2 * tol:
            raise CADError("bad_value", f"{what}: arc end points disagree with centre/reference/sweep")
        return Arc(s, pts[1], e)
    raise CADError("unsupported_curve", f"{what}: curve type {kind!r}")


def _read_profile(p: dict, what: str, check_crossing: bool = True) -> Profile:
    loops_raw = _get(p, "loops", what)
    if not isinstance(loops_raw, list) or not loops_raw:
        raise CADError("empty_profile", f"{what} has no loops")
    loops = []
    for li, lp in enumerate(loops_raw):
        curves_raw = _get(lp, "profile_curves", f"{what} loop {li}")
        if not isinstance(curves_raw, list) or not curves_raw:
            raise CADError("empty_profile", f"{what} loop {li} has no curves")
        curves = [read_curve(c, f"{what} loop {li} curve {ci}") for ci, c in enumerate(curves_raw)]
        loops.append(chain_loop(curves, f"{what} loop {li}", check_crossing))
    return order_loops(loops, what)


def chain_loop(curves: list, what: str = "loop", check_crossing: bool = True) -> Loop:
    """Order and orient curves so each ends where the next starts and the last closes the loop."""
    if any(isinstance(c, Circle) for c in curves):
        if len(curves) != 1:
            raise CADError("open_loop", f"{what}: a circle shares its loop with other curves")
        return Loop(list(curves))
    # Python floats: this loop is O(n^2) in a loop's curves and numpy scalars are slow here.
    ends = [(tuple(c.start.tolist()), tuple(c.end.tolist())) for c in curves]
    remaining = list(range(1, len(curves)))
    order, flips = [0], [False]
    end = ends[0][1]
    while remaining:
        best, best_d, flip = None, JOIN_TOL, False
        for k in remaining:
            (sx, sy), (ex, ey) = ends[k]
            ds = max(abs(sx - end[0]), abs(sy - end[1]))
            de = max(abs(ex - end[0]), abs(ey - end[1]))
            if ds <= best_d:
                best, best_d, flip = k, ds, False
            if de < best_d:
                best, best_d, flip = k, de, True
        if best is None:
            raise CADError("open_loop", f"{what}: curves do not chain (gap after curve {len(order) - 1})")
        remaining.remove(best)
        order.append(best)
        flips.append(flip)
        end = ends[best][0] if flip else ends[best][1]
    start = ends[0][0]
    if max(abs(end[0] - start[0]), abs(end[1] - start[1])) > JOIN_TOL:
        raise CADError("open_loop", f"{what}: the loop does not close")
    if len(order) == 1:
        raise CADError("open_loop", f"{what}: a single {type(curves[0]).__name__.lower()} cannot close a loop")
    loop = Loop([curves[k].reversed() if f else curves[k] for k, f in zip(order, flips)])
    if check_crossing and len(loop.curves) > 3 and _self_crossing(polyline(loop)):
        raise CADError("self_crossing_loop", f"{what}: the loop crosses itself")
    return loop


def polyline(loop: Loop, arc_segments: int = 8) -> np.ndarray:
    """Closed polyline of a loop (last point not repeated): line starts, arcs subdivided."""
    pts = []
    for c in loop.curves:
        if isinstance(c, Line):
            pts.append(c.start[None])
        elif isinstance(c, Arc):
            pts.append(c.sample(arc_segments + 1)[:-1])
        else:
            pts.append(c.sample(4 * arc_segments + 1)[:-1])
    return np.concatenate(pts, axis=0)


def _self_crossing(pts: np.ndarray) -> bool:
    """Do two non-adjacent segments of the closed polyline cross? (vectorised segment test)"""
    n = len(pts)
    if n < 4:
        return False
    a, b = pts, np.roll(pts, -1, axis=0)
    i, j = np.triu_indices(n, k=2)
    keep = ~((i == 0) & (j == n - 1))  # the first and last segments share a point
    i, j = i[keep], j[keep]
    r, s = b[i] - a[i], b[j] - a[j]
    qp = a[j] - a[i]
    den = r[:, 0] * s[:, 1] - r[:, 1] * s[:, 0]
    ok = np.abs(den) > 1e-18  # parallel segments: overlaps show up as open or zero-length loops
    den = np.where(ok, den, 1.0)
    t = (qp[:, 0] * s[:, 1] - qp[:, 1] * s[:, 0]) / den
    u = (qp[:, 0] * r[:, 1] - qp[:, 1] * r[:, 0]) / den
    eps = 1e-9
    return bool(np.any(ok & (t > eps) & (t < 1 - eps) & (u > eps) & (u < 1 - eps)))


def order_loops(loops: list[Loop], what: str = "profile") -> Profile:
    """Put the outer loop first: the one whose bounding box contains all the others."""
    if len(loops) == 1:
        return Profile(loops)
    polys = [polyline(lp) for lp in loops]
    boxes = [(p.min(axis=0), p.max(axis=0)) for p in polys]
    areas = [float(np.prod(hi - lo)) for lo, hi in boxes]
    outer = int(np.argmax(areas))
    lo0, hi0 = boxes[outer]
    tol = JOIN_TOL
    for k, (lo, hi) in enumerate(boxes):
        if k != outer and (np.any(lo < lo0 - tol) or np.any(hi > hi0 + tol)):
            raise CADError("disjoint_loops", f"{what}: loop {k} lies outside the outer loop")
    return Profile([loops[outer]] + [lp for k, lp in enumerate(loops) if k != outer])


# ----------------------------------------------------------------------------------------
# Writer: CADModel -> DeepCAD JSON dict


def _p3(v) -> dict:
    return {"x": float(v[0]), "y": float(v[1]), "z": float(v[2])}


def _p2(v) -> dict:
    return {"x": float(v[0]), "y": float(v[1]), "z": 0.0}


def curve_to_json(c, curve_id: str) -> dict:
    if isinstance(c, Line):
        return {"type": "Line3D", "curve": curve_id, "start_point": _p2(c.start), "end_point": _p2(c.end)}
    if isinstance(c, Circle):
        return {"type": "Circle3D", "curve": curve_id, "center_point": _p2(c.center), "radius": float(c.radius),
                "normal": {"x": 0.0, "y": 0.0, "z": 1.0}}
    center, r = c.circle()
    # DeepCAD arcs run counter-clockwise from start; a clockwise arc is the same arc reversed.
    s, e = (c.start, c.end) if c.ccw else (c.end, c.start)
    ref = (s - center) / r
    return {"type": "Arc3D", "curve": curve_id, "start_point": _p2(s), "end_point": _p2(e),
            "center_point": _p2(center), "radius": float(r), "start_angle": 0.0, "end_angle": float(c.sweep()),
            "reference_vector": _p2(ref), "normal": {"x": 0.0, "y": 0.0, "z": 1.0}}


def _distance(value: float, role: str) -> dict:
    return {"distance": {"type": "ModelParameter", "role": role, "name": "none", "value": float(value)},
            "type": "DistanceExtentDefinition",
            "taper_angle": {"type": "ModelParameter", "role": "TaperAngle", "name": "none", "value": 0.0}}


def model_to_json(model: CADModel, bbox=None) -> dict:
    """CADModel -> DeepCAD JSON dict (one sketch entity per extrude); read_model inverts it."""
    ops = {v: k for k, v in _OPERATIONS.items()}
    exts = {v: k for k, v in _EXTENTS.items()}
    entities, sequence = {}, []
    for i, ex in enumerate(model.extrudes):
        sk_id, ex_id, pr_id = f"sketch_{i}", f"extrude_{i}", f"profile_{i}"
        loops = [{"is_outer": True,
                  "profile_curves": [curve_to_json(c, f"c{i}_{li}_{ci}") for ci, c in enumerate(lp.curves)]}
                 for li, lp in enumerate(ex.profile.loops)]
        pl = ex.plane
        entities[sk_id] = {
            "type": "Sketch", "name": f"Sketch {i + 1}",
            "transform": {"origin": _p3(pl.origin), "x_axis": _p3(pl.x_axis), "y_axis": _p3(pl.y_axis),
                          "z_axis": _p3(pl.normal)},
            "profiles": {pr_id: {"loops": loops, "properties": {}}},
            "reference_plane": {},
        }
        entities[ex_id] = {
            "type": "ExtrudeFeature", "name": f"Extrude {i + 1}",
            "profiles": [{"profile": pr_id, "sketch": sk_id}],
            "operation": ops[Operation(ex.operation)], "extent_type": exts[ExtentType(ex.extent_type)],
            "extent_one": _distance(ex.extent_one, "AlongDistance"),
            "extent_two": _distance(ex.extent_two, "AgainstDistance"),
            "start_extent": {"type": "ProfilePlaneStartDefinition"},
        }
        sequence += [{"index": 2 * i, "type": "Sketch", "entity": sk_id},
                     {"index": 2 * i + 1, "type": "ExtrudeFeature", "entity": ex_id}]
    out = {"entities": entities, "sequence": sequence}
    box = bbox if bbox is not None else model.bbox
    if box is not None:
        out["properties"] = {"bounding_box": {"type": "BoundingBox3D", "min_point": _p3(box[0]),
                                              "max_point": _p3(box[1])}}
    return out


def dumps(data: dict) -> str:
    """Deterministic JSON text (same model, same bytes)."""
    return json.dumps(data, sort_keys=True, indent=1) + "\n"
