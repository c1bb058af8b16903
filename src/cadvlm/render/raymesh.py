"""A triangle mesh made ready to ray cast with Embree (open3d), and the renderer's clock.

Why ray casting: no GPU, no display and no OpenGL context are needed, and Embree gives, per
pixel, the hit distance, the triangle and the barycentric coordinates: everything the look
needs (smooth shading, outlines from depth and normal discontinuities) without a rasteriser.

Why a module of its own: preparing a mesh is done once per model and shared by all its views:
checking it, centring it (single precision stays fine-grained where the picture is), per-corner
normals smoothed only within the crease angle (vertices welded by position first), one surface
id per planar face, and the Embree scene. render.shading and render.views use it.
"""

from __future__ import annotations

import math
import time

import numpy as np

from cadvlm.cad.model import CADError

# The clock of every renderer timing (this module's, render.shading's and render.views'):
# benchmarks on a shared machine may swap it for time.process_time.
_clock = time.perf_counter


class PreparedMesh:
    """A mesh ready to ray cast: Embree scene of the centred triangles and per-corner normals.

    Vertices are shifted so the bounding-box centre is the origin before they go to float32,
    which keeps single precision fine-grained where the picture is.
    """

    def __init__(self, vertices, triangles, crease_angle: float = 30.0, model_id: str | None = None,
                 nthreads: int = 0):
        verts, tris = _validated(vertices, triangles, model_id)
        lo, hi = verts.min(axis=0), verts.max(axis=0)
        extent = hi - lo
        diag = float(np.linalg.norm(extent))
        if not diag > 0 or float(extent.min()) <= 1e-6 * diag:
            raise CADError("degenerate_bbox", f"bounding box {extent.tolist()} is flat", model_id)
        self.center = 0.5 * (lo + hi)
        self.radius = 0.5 * diag
        self.vertices = verts - self.center  # float64, centred
        face_n, corner_n, keep = _normals(self.vertices, tris, math.radians(crease_angle))
        if not keep.any():
            raise CADError("empty_mesh", "every triangle has zero area", model_id)
        self.triangles = tris[keep]
        self.face_normals = face_n[keep].astype(np.float32)
        self.corner_normals = corner_n[keep].astype(np.float32)
        self.flat, self.surface_ids = _surfaces(self.vertices, self.triangles, self.face_normals,
                                                self.corner_normals)
        import open3d as o3d

        t0 = _clock()
        self._o3c = o3d.core
        self.scene = o3d.t.geometry.RaycastingScene(nthreads=nthreads)
        self.scene.add_triangles(o3d.core.Tensor(self.vertices.astype(np.float32)),
                                 o3d.core.Tensor(self.triangles.astype(np.uint32)))
        self.scene_seconds = _clock() - t0

    def cast(self, rays: np.ndarray, nthreads: int = 0):
        """(t, prim, uv) for rays (n, 6) float32; prim = -1 and t = inf where nothing is hit."""
        out = self.scene.cast_rays(self._o3c.Tensor.from_numpy(np.ascontiguousarray(rays)), nthreads=nthreads)
        t = out["t_hit"].numpy()
        prim = out["primitive_ids"].numpy().view(np.int32)  # INVALID_ID (2**32 - 1) -> -1
        return t, prim, out["primitive_uvs"].numpy()


def _validated(vertices, triangles, model_id):
    verts = np.asarray(vertices, dtype=np.float64)
    tris = np.asarray(triangles)
    if verts.ndim != 2 or verts.shape[1] != 3 or tris.ndim != 2 or tris.shape[1] != 3:
        raise CADError("bad_mesh", f"expected (N,3) vertices and (M,3) triangles, got {verts.shape} "
                       f"and {tris.shape}", model_id)
    if len(verts) == 0 or len(tris) == 0:
        raise CADError("empty_mesh", "the mesh has no triangles", model_id)
    if not np.isfinite(verts).all():
        raise CADError("bad_mesh", "vertices are not all finite", model_id)
    if not np.issubdtype(tris.dtype, np.integer) or tris.min() < 0 or tris.max() >= len(verts):
        raise CADError("bad_mesh", "triangle indices out of range", model_id)
    # Only vertices used by triangles count for the bounding box.
    used = np.unique(tris)
    if len(used) < len(verts):
        remap = np.full(len(verts), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        verts, tris = verts[used], remap[tris]
    return verts, tris.astype(np.int64)


def _normals(verts: np.ndarray, tris: np.ndarray, crease: float):
    """Face normals, per-corner smooth normals and the mask of triangles with area.

    A corner's normal is the angle-weighted mean of the normals of the triangles around its
    vertex position that turn less than `crease` from its own triangle. Vertices are welded by
    position first: the tessellator emits each B-rep face with its own vertices.
    """
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    cross = np.cross(b - a, c - a)
    area2 = np.linalg.norm(cross, axis=1)
    scale = float(np.abs(verts).max()) or 1.0
    keep = area2 > (1e-12 * scale * scale)
    face_n = np.zeros_like(cross)
    face_n[keep] = cross[keep] / area2[keep, None]
    m = len(tris)

    # Corner angles (weights): angle at corner 0 between (b - a) and (c - a), and so on.
    def angle(p, q, r):
        u, v = q - p, r - p
        return np.arctan2(np.linalg.norm(np.cross(u, v), axis=1), np.einsum("ij,ij->i", u, v))

    weight = np.stack([angle(a, b, c), angle(b, c, a), angle(c, a, b)], axis=1)
    weight[~keep] = 0.0

    # Weld by position (quantised to ~1e-7 of the part size).
    q = np.round(verts / (scale * 1e-7)).astype(np.int64)
    _, weld = np.unique(q, axis=0, return_inverse=True)
    corner_v = weld.reshape(-1)[tris].reshape(-1)            # welded vertex of each corner (3m)
    corner_f = np.repeat(np.arange(m), 3)
    order = np.argsort(corner_v, kind="stable")
    sorted_v = corner_v[order]
    starts = np.flatnonzero(np.r_[True, sorted_v[1:] != sorted_v[:-1]])
    sizes = np.diff(np.r_[starts, len(sorted_v)])
    # Every ordered pair of corners sharing a vertex: sum of size^2 pairs.
    grp = np.repeat(np.arange(len(starts)), sizes)          # group of each sorted position
    rep = sizes[grp]
    pa = np.repeat(np.arange(len(sorted_v)), rep)
    first = np.repeat(np.cumsum(rep) - rep, rep)
    pb = np.repeat(starts[grp], rep) + (np.arange(len(pa)) - first)
    ca, cb = order[pa], order[pb]
    fa, fb = corner_f[ca], corner_f[cb]
    ok = np.einsum("ij,ij->i", face_n[fa], face_n[fb]) >= math.cos(crease)
    ca, fb, w = ca[ok], fb[ok], weight.reshape(-1)[cb[ok]]
    acc = np.stack([np.bincount(ca, weights=w * face_n[fb, k], minlength=3 * m) for k in range(3)],
                   axis=1).astype(np.float64)  # (bincount of nothing is an int array)
    norm = np.linalg.norm(acc, axis=1)
    flat = norm <= 1e-12
    acc[~flat] /= norm[~flat, None]
    acc[flat] = np.repeat(face_n, 3, axis=0)[flat]
    return face_n, acc.reshape(m, 3, 3), keep


def _surfaces(verts, tris, face_n, corner_n):
    """Flat triangles (corner normals = face normal) and a surface id per triangle, + 1 so
    that row 0 stands for "no hit": flat triangles on one plane share an id (a planar CAD face
    is one surface however it is triangulated); any other triangle is its own surface."""
    m = len(tris)
    flat = (np.einsum("ijk,ik->ij", corner_n, face_n) > 1.0 - 1e-6).all(axis=1)
    ids = np.arange(m, dtype=np.int64) + m  # curved: unique
    fi = np.flatnonzero(flat)
    if fi.size:
        scale = float(np.abs(verts).max()) or 1.0
        n = face_n[fi].astype(np.float64)
        dist = np.einsum("ij,ij->i", n, verts[tris[fi, 0]])
        key = np.concatenate([np.round(n * 1e5), np.round(dist / (scale * 1e-6))[:, None]], axis=1)
        _, plane = np.unique(key.astype(np.int64), axis=0, return_inverse=True)
        ids[fi] = plane.reshape(-1)
    return flat, np.concatenate([[0], ids + 1]).astype(np.int64)
