"""A solid as binary glTF (`part.glb`), the format browsers' 3-D viewers load natively.

trimesh writes the file (a well-kept glTF exporter; open3d 0.19's .glb output does not read
back). The triangles come from `cadvlm.geometry.mesh.tessellate`, which keeps each B-rep face's
vertices apart, so vertex normals averaged within a face are smooth on a cylinder and flat on a
plane, and edges between faces stay sharp. glTF is Y-up in metres; our solids are Z-up in metres,
so (x, y, z) -> (x, z, -y).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLOUR = [0.50, 0.54, 0.60, 1.0]  # steel grey (linear), darker than paper so the part stands out
Z_UP_TO_Y_UP = np.array([[1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, -1.0, 0, 0], [0, 0, 0, 1.0]])


def glb_bytes(verts: np.ndarray, tris: np.ndarray) -> bytes:
    """The .glb file of a triangle mesh (Z-up vertices in metres)."""
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(verts, dtype=np.float64), np.asarray(tris, dtype=np.int64), process=False)
    mesh.apply_transform(Z_UP_TO_Y_UP)
    mesh.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.PBRMaterial(
        name="part", baseColorFactor=COLOUR, metallicFactor=0.0, roughnessFactor=0.6))
    return mesh.export(file_type="glb", include_normals=True)


def export_glb(shape, path) -> Path:
    """Write the solid's tessellation as `path` (.glb), atomically."""
    from cadvlm.geometry.mesh import tessellate
    from cadvlm.render.sheet import write_atomic

    verts, tris = tessellate(shape)
    return write_atomic(path, glb_bytes(verts, tris))
