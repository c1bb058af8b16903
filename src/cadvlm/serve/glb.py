"""A solid as binary glTF (`part.glb`), the format browsers' 3-D viewers load natively.

Why here and written directly: glTF 2.0 binary is a short JSON header plus three arrays
(positions, normals, triangle indices), and numpy writes it in a few lines with no extra
dependency; only the page needs it, so it lives on the serve path. The triangles come from
`cadvlm.geometry.mesh.tessellate`, which keeps each B-rep face's vertices apart: normals averaged
within a face are smooth on a cylinder and flat on a plane, and edges between faces stay sharp.
glTF is Y-up in metres; our solids are Z-up in metres, so (x, y, z) -> (x, z, -y).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

_FLOAT, _UINT = 5126, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
COLOUR = [0.50, 0.54, 0.60, 1.0]  # steel grey (linear), darker than paper so the part stands out


def vertex_normals(verts: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Unit normals per vertex: the area-weighted mean of the normals of the triangles around it."""
    a, b, c = (verts[tris[:, k]] for k in range(3))
    face_n = np.cross(b - a, c - a)
    n = np.zeros_like(verts)
    for k in range(3):
        np.add.at(n, tris[:, k], face_n)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    return np.where(length > 0, n / np.where(length > 0, length, 1), [0.0, 1.0, 0.0])


def glb_bytes(verts: np.ndarray, tris: np.ndarray) -> bytes:
    """The .glb file of a triangle mesh (Z-up vertices in metres)."""
    pos = np.ascontiguousarray(np.asarray(verts, dtype=np.float64)[:, [0, 2, 1]] * [1, 1, -1], dtype=np.float32)
    idx = np.ascontiguousarray(tris, dtype=np.uint32)
    nrm = vertex_normals(pos.astype(np.float64), idx).astype(np.float32)
    blobs = [pos.tobytes(), nrm.tobytes(), idx.tobytes()]  # each a multiple of 4 bytes
    offsets = np.cumsum([0] + [len(b) for b in blobs]).tolist()
    doc = {
        "asset": {"version": "2.0", "generator": "cadvlm"},
        "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, "name": "part"}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0, "NORMAL": 1}, "indices": 2, "material": 0,
                                    "mode": 4}]}],
        "materials": [{"name": "part", "pbrMetallicRoughness": {"baseColorFactor": COLOUR, "metallicFactor": 0.0,
                                                                "roughnessFactor": 0.6}}],
        "buffers": [{"byteLength": offsets[-1]}],
        "bufferViews": [
            {"buffer": 0, "byteOffset": offsets[0], "byteLength": len(blobs[0]), "target": _ARRAY_BUFFER},
            {"buffer": 0, "byteOffset": offsets[1], "byteLength": len(blobs[1]), "target": _ARRAY_BUFFER},
            {"buffer": 0, "byteOffset": offsets[2], "byteLength": len(blobs[2]), "target": _ELEMENT_ARRAY_BUFFER},
        ],
        "accessors": [
            {"bufferView": 0, "componentType": _FLOAT, "count": len(pos), "type": "VEC3",
             "min": pos.min(axis=0).tolist(), "max": pos.max(axis=0).tolist()},
            {"bufferView": 1, "componentType": _FLOAT, "count": len(nrm), "type": "VEC3"},
            {"bufferView": 2, "componentType": _UINT, "count": int(idx.size), "type": "SCALAR"},
        ],
    }
    js = json.dumps(doc, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 4)
    binary = b"".join(blobs)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return (struct.pack("<4sII", b"glTF", 2, total) + struct.pack("<I4s", len(js), b"JSON") + js
            + struct.pack("<I4s", len(binary), b"BIN\0") + binary)


def read_glb(data: bytes) -> tuple[dict, bytes]:
    """(JSON document, binary chunk) of a .glb; raises ValueError when the container is malformed."""
    if len(data) < 20:
        raise ValueError("too short for a glTF binary")
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    if magic != b"glTF" or version != 2 or total != len(data):
        raise ValueError("not a glTF 2.0 binary")
    n, kind = struct.unpack_from("<I4s", data, 12)
    if kind != b"JSON":
        raise ValueError("first chunk is not JSON")
    doc = json.loads(data[20:20 + n])
    rest = 20 + n
    binary = b""
    if rest < len(data):
        m, kind = struct.unpack_from("<I4s", data, rest)
        if kind != b"BIN\0":
            raise ValueError("second chunk is not BIN")
        binary = data[rest + 8:rest + 8 + m]
    return doc, binary


def export_glb(shape, path) -> Path:
    """Write the solid's tessellation as `path` (.glb), atomically."""
    from cadvlm.geometry.mesh import tessellate
    from cadvlm.render.sheet import write_atomic

    verts, tris = tessellate(shape)
    return write_atomic(path, glb_bytes(verts, tris))
