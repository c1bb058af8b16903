"""A pocket: one blind cut of a shaped area into a face, whose floor becomes a new face.

Kept apart from holes because it draws differently (one larger shape, always blind) and leaves a
`pocket` face that later holes may be drilled into.
"""

from __future__ import annotations

from cadvlm.synth.placement import place, shape_at


def add_pocket(pb, budget: int) -> int:
    faces = pb.faces_of("top", "bottom", "boss", min_depth=1.5)
    if not faces:
        return 0
    face = pb.pick(faces, [3.0 if f.kind == "top" else 1.0 for f in faces])
    kind = pb.pick(("rrect", "rect", "circle", "obround", "hexagon"), (0.4, 0.2, 0.25, 0.1, 0.05))
    m = float(min(face.size))
    size = pb.u.length(pb.rng, m * 0.2, m * 0.6)
    extent = size * (3.0 if kind == "obround" else 2.0 if kind in ("rect", "rrect") else 1.0)
    long_x = bool(face.size[0] >= face.size[1])
    placed = place(pb, face, 1, lambda c: shape_at(pb, kind, size, c, long_x), extent, max(1.0, 0.12 * m))
    if not placed:
        return 0
    depth = pb.u.nice(face.depth * pb.uniform(0.2, 0.7))
    if depth >= face.depth:
        return 0
    pb.cut(face, [placed[0]], depth, through=False, pocket_face=True)
    pb.features.append(f"pocket:{kind}")
    return 1
