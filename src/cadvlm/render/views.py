"""Orthographic, CAD-style views of a triangle mesh, ray cast on the CPU (open3d / Embree).

Why ray casting: no GPU, no display and no OpenGL context are needed, and Embree gives, per
pixel, the hit distance, the triangle and the barycentric coordinates: everything the look
needs (smooth shading, outlines from depth and normal discontinuities) without a rasteriser.

The look, chosen so a picture reads like a CAD drawing view:
- white background, light grey faces: Lambert shading from a key light above-left of the
  camera plus a weaker headlight (a headlight alone shades the three faces of a box the same
  grey in the iso view); grey levels are interpolated from per-corner smooth normals, averaged
  only over triangles within `crease_angle` of each other, so a tessellated cylinder shades
  as a smooth surface while true CAD edges stay sharp;
- dark outlines wherever neighbouring samples disagree: hit / miss (silhouette), a depth jump
  that the plane of neither sample's triangle explains (an edge in front of a farther
  surface), or triangles turned past the crease angle (a sharp edge between faces).

Anti-aliasing is adaptive supersampling: one ray per pixel, then k x k rays only in the pixels
beside an outline found by that first pass, averaged with a box filter. The result matches
casting k x k rays everywhere up to sub-pixel details (tests bound the difference) for a few
per cent more rays and time (k = 2 costs ~10% over k = 1, full supersampling ~4x the rays):
between outlines the picture is smooth shading that supersampling would not change. The first pass itself skips rays it can answer without Embree: pixels outside the
projected convex hull are misses, and a pixel between two samples on the same plane lies on
that plane (depth is affine in an orthographic view).

Cameras (global frame, Z up): front looks along +Y (X right, Z up), top looks down -Z (X right,
Y up), right looks along -X (Y right, Z up), iso looks along (-1, +1, -1) (Z up in the picture).
All views of a model share one centre (the bounding-box centre) and one scale (the largest
extent any requested view needs, plus the margin), so proportions hold across views and the
views of a third-angle sheet line up.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from cadvlm.cad.model import CADError

VIEW_NAMES = ("front", "top", "right", "iso")

_clock = time.perf_counter  # timings clock (benchmarks on a shared machine may use process_time)

# Grey levels (0 = black, 1 = white).
BACKGROUND = 1.0
INK = 0.13
AMBIENT = 0.50
KEY = 0.34        # key light, from above-left of the camera
HEAD = 0.12       # headlight: keeps faces turned away from the key light readable

# Depth discontinuity tolerance, in pixels of the view: a neighbour's hit farther than this
# from the plane of both triangles is on another surface.
DEPTH_TOL_PX = 0.5
# Triangles whose normal turns less than this from the viewing direction's perpendicular are
# treated as grazing when extrapolating depth (avoids dividing by ~0).
MIN_FACING = 0.05


@dataclass(frozen=True)
class Camera:
    """An orthographic camera: it looks along `direction`; `right` and `up` span the picture."""

    name: str
    direction: tuple[float, float, float]
    right: tuple[float, float, float]
    up: tuple[float, float, float]

    def axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return (np.array(self.direction, dtype=np.float64), np.array(self.right, dtype=np.float64),
                np.array(self.up, dtype=np.float64))

    def to_json(self) -> dict:
        return {"direction": list(self.direction), "right": list(self.right), "up": list(self.up)}


def _unit(*v: float) -> tuple[float, float, float]:
    n = math.sqrt(sum(x * x for x in v))
    return tuple(x / n for x in v)


CAMERAS: dict[str, Camera] = {
    "front": Camera("front", (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)),
    "top": Camera("top", (0.0, 0.0, -1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
    "right": Camera("right", (-1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    # From (+1, -1, +1) towards the origin; right = direction x Z, up = right x direction.
    "iso": Camera("iso", _unit(-1, 1, -1), _unit(1, 1, 0), _unit(-1, 1, 2)),
}


@dataclass(frozen=True)
class RenderSettings:
    """Everything that changes the pixels of a view (and nothing that does not)."""

    size: int = 512               # pixels per view side
    supersample: int = 2          # k: k x k rays per pixel near outlines (1 = off)
    line_width: float = 1.0       # outline width in output pixels
    margin: float = 0.08          # white border: the fitted extent is enlarged by this fraction
    crease_angle: float = 30.0    # degrees: faces meeting at more are a sharp (outlined) edge

    def __post_init__(self):
        if not (16 <= int(self.size) <= 8192):
            raise ValueError(f"render size must be 16..8192 pixels, got {self.size}")
        if not (1 <= int(self.supersample) <= 8):
            raise ValueError(f"supersample must be 1..8, got {self.supersample}")
        if not (0.0 < float(self.line_width) <= 16.0):
            raise ValueError(f"line_width must be in (0, 16], got {self.line_width}")
        if not (0.0 <= float(self.margin) < 1.0):
            raise ValueError(f"margin must be in [0, 1), got {self.margin}")
        if not (1.0 <= float(self.crease_angle) < 90.0):
            raise ValueError(f"crease_angle must be in [1, 90) degrees, got {self.crease_angle}")

    def to_json(self) -> dict:
        return {"size": int(self.size), "supersample": int(self.supersample),
                "line_width": float(self.line_width), "margin": float(self.margin),
                "crease_angle": float(self.crease_angle)}


@dataclass(frozen=True)
class Framing:
    """Where the views look and how much they show: shared by all views of one model."""

    center: np.ndarray    # world point at the centre of every view
    half_width: float     # world length from the picture's centre to its side

    def to_json(self) -> dict:
        return {"center": [float(x) for x in self.center], "half_width": float(self.half_width)}


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


def fit_framing(mesh: PreparedMesh, views, margin: float) -> Framing:
    """One centre and scale for all views: the largest half-extent any view needs, plus margin."""
    half = 0.0
    for name in views:
        _, r, u = CAMERAS[name].axes()
        half = max(half, float(np.abs(mesh.vertices @ r).max()), float(np.abs(mesh.vertices @ u).max()))
    return Framing(center=mesh.center.copy(), half_width=half * (1.0 + margin))


class _Samples:
    """The ray samples of one view: the centre of every pixel of the view's box (row-major),
    then k x k supersamples of the pixels near outlines.

    Stores what Embree returns (t, triangle, barycentrics); grey levels and outline tests are
    derived from per-triangle tables, so per-pixel numpy work is a few gathers.
    """

    def __init__(self, mesh: PreparedMesh, camera: Camera, px: float, crease_angle: float, nthreads: int):
        self.mesh, self.px, self.nthreads = mesh, px, nthreads
        d, r, u = camera.axes()
        self.d, self.r, self.u = d.astype(np.float32), r.astype(np.float32), u.astype(np.float32)
        self.back = np.float32(2.0 * mesh.radius + px)
        fn = mesh.face_normals
        # Per triangle: how depth changes across the picture (for the depth-jump test).
        fd = fn @ self.d
        fd = np.where(np.abs(fd) < MIN_FACING, np.copysign(MIN_FACING, fd), fd)
        self.grad = np.stack([-(fn @ self.r) / fd, -(fn @ self.u) / fd], axis=1).astype(np.float32)
        # Per corner: grey level. Interpolating it (Gouraud) instead of the normal (Phong)
        # differs by a grey level or two at tessellation angles of ~15 degrees.
        cn = mesh.corner_normals.reshape(-1, 3)
        cd = cn @ self.d
        key = -d + 0.55 * u - 0.35 * r
        light = (key / np.linalg.norm(key)).astype(np.float32)
        facing = np.where(cd > 0, -1.0, 1.0).astype(np.float32)  # turn normals to the camera
        g = (AMBIENT + KEY * np.maximum((cn @ light) * facing, 0.0) + HEAD * np.abs(cd)).astype(np.float32)
        g = g.reshape(-1, 3)
        # shade = c0 + u*c1 + v*c2 over a triangle's barycentrics (u, v).
        self.shade_coef = np.stack([g[:, 0], g[:, 1] - g[:, 0], g[:, 2] - g[:, 0]], axis=1)
        # Tables indexed by triangle + 1 (row 0 = no hit): flat triangles shade as one grey.
        self.flat_shade = np.concatenate([[BACKGROUND], g.mean(axis=1)]).astype(np.float32)
        self.curved = np.concatenate([[False], ~mesh.flat])
        self.flat_u8 = _to_uint8(self.flat_shade)
        self.fn = fn
        self.cos_crease = math.cos(math.radians(crease_angle))
        self.tol = np.float32(DEPTH_TOL_PX * px)

    def cast(self, x: np.ndarray, y: np.ndarray, timings: dict):
        """(t, prim, uv) of rays through picture points (x, y), world offsets from the mesh centre."""
        t0 = _clock()
        rays = np.empty((len(x), 6), dtype=np.float32)
        for c in range(3):
            col = np.full(len(x), -self.back * self.d[c], dtype=np.float32)
            if self.r[c]:
                col += x * self.r[c]
            if self.u[c]:
                col += y * self.u[c]
            rays[:, c] = col
            rays[:, 3 + c] = self.d[c]
        out = self.mesh.cast(rays, self.nthreads)
        timings["raycast"] = timings.get("raycast", 0.0) + (_clock() - t0)
        return out

    def cast_grid(self, cx: np.ndarray, cy: np.ndarray, inside: np.ndarray, timings: dict) -> None:
        """The centre samples of a (len(cy), len(cx)) pixel box, casting as few rays as is safe.

        Rays go through every other pixel first. In orthographic projection depth (and a
        triangle's barycentrics) is affine over a plane, so a pixel midway between two samples,
        or amid four, on the same plane of the part is on it too and is filled by averaging;
        only the other pixels get rays. CAD parts are mostly planar faces, so this saves about
        half the rays of a view. What it can miss is a feature narrower than two pixels in
        front of, or cut into, a plane between two samples. Pixels outside `inside` (the
        part's projected convex hull) are misses without a ray.
        """
        h, w = len(cy), len(cx)
        cx, cy = cx.astype(np.float32), cy.astype(np.float32)
        t = np.full((h, w), np.inf, dtype=np.float32)
        prim = np.full((h, w), -1, dtype=np.int32)
        uv = np.zeros((h, w, 2), dtype=np.float32)
        hc, wc = (h + 1) // 2, (w + 1) // 2
        tc = np.full(hc * wc, np.inf, dtype=np.float32)
        pc = np.full(hc * wc, -1, dtype=np.int32)
        uvc = np.zeros((hc * wc, 2), dtype=np.float32)
        go = np.flatnonzero(inside[::2, ::2])
        if go.size:
            tc[go], pc[go], uvc[go] = self.cast(cx[::2][go % wc], cy[::2][go // wc], timings)
        tc, pc, uvc = tc.reshape(hc, wc), pc.reshape(hc, wc), uvc.reshape(hc, wc, 2)
        sc = np.take(self.mesh.surface_ids, pc + 1)  # surface of each sample (0 = none)
        m_tris = len(self.mesh.triangles)  # surface ids above this are curved triangles
        t[::2, ::2], prim[::2, ::2], uv[::2, ::2] = tc, pc, uvc
        known = ~inside
        known[::2, ::2] = True

        def fill(rows, cols, corners):
            ss = [sc[a] for a in corners]
            same = ss[0] > 0
            for s_ in ss[1:]:
                same &= s_ == ss[0]
            if not same.any():
                return
            scale = np.float32(1.0 / len(corners))
            tv = tc[corners[0]].copy()
            for a in corners[1:]:
                tv += tc[a]
            np.copyto(t[rows, cols], tv * scale, where=same)
            # Barycentrics matter on curved triangles only (flat ones shade as one grey).
            same_curved = same & (ss[0] > m_tris)
            if same_curved.any():
                uvv = uvc[corners[0]].copy()
                for a in corners[1:]:
                    uvv += uvc[a]
                np.copyto(uv[rows, cols], uvv * scale, where=same_curved[..., None])
            np.copyto(prim[rows, cols], pc[corners[0]], where=same)
            np.copyto(known[rows, cols], True, where=same)

        A = slice(None, -1)
        B = slice(1, None)
        E = slice(None)
        if wc > 1:  # (even row, odd column): between two samples of a row
            fill(slice(0, None, 2), slice(1, 2 * wc - 2, 2), ((E, A), (E, B)))
        if hc > 1:  # (odd row, even column)
            fill(slice(1, 2 * hc - 2, 2), slice(0, None, 2), ((A, E), (B, E)))
        if hc > 1 and wc > 1:  # (odd, odd): amid four samples
            fill(slice(1, 2 * hc - 2, 2), slice(1, 2 * wc - 2, 2), ((A, A), (A, B), (B, A), (B, B)))
        ri, rj = np.nonzero(~known)
        if ri.size:
            t[ri, rj], prim[ri, rj], uv[ri, rj] = self.cast(cx[rj], cy[ri], timings)
        self.h, self.w = h, w
        self.t, self.prim, self.uv = t.ravel(), prim.ravel(), uv.reshape(-1, 2)

    def add(self, x: np.ndarray, y: np.ndarray, timings: dict) -> None:
        """Append samples through picture points (x, y)."""
        t, prim, uv = self.cast(x.astype(np.float32), y.astype(np.float32), timings)
        self.t = np.concatenate([self.t, t])
        self.prim = np.concatenate([self.prim, prim])
        self.uv = np.concatenate([self.uv, uv])

    def _curved_shade(self, prim: np.ndarray, sel) -> tuple[np.ndarray, np.ndarray | None]:
        """(positions, grey levels) of the samples in sel that hit curved triangles, whose shade
        varies across the triangle (flat triangles are a table lookup)."""
        cur = np.flatnonzero(np.take(self.curved, prim + 1))
        if not cur.size:
            return cur, None
        c = np.take(self.shade_coef, prim[cur], axis=0)
        uv = self.uv[sel][cur]
        return cur, c[:, 0] + uv[:, 0] * c[:, 1] + uv[:, 1] * c[:, 2]

    def shade(self, sel=slice(None)) -> np.ndarray:
        """Grey level of samples sel (a slice): background where nothing is hit."""
        prim = self.prim[sel]
        g = np.take(self.flat_shade, prim + 1)
        cur, levels = self._curved_shade(prim, sel)
        if levels is not None:
            g[cur] = levels
        return g

    def shade_u8(self, sel=slice(None)) -> np.ndarray:
        """shade() as bytes, straight from a byte table where triangles are flat."""
        prim = self.prim[sel]
        g = np.take(self.flat_u8, prim + 1)
        cur, levels = self._curved_shade(prim, sel)
        if levels is not None:
            g[cur] = _to_uint8(levels)
        return g

    def breaks(self, a: np.ndarray, b: np.ndarray, dx, dy) -> np.ndarray:
        """Outline between samples a and b, b sitting (dx, dy) world units from a in the
        picture: one hits and the other does not, or they are on different triangles and
        either the depth jumps more than neither triangle's plane explains or the normals
        turn past the crease angle."""
        pa, pb = np.take(self.prim, a), np.take(self.prim, b)
        out = (pa >= 0) != (pb >= 0)
        sel = np.flatnonzero((pa != pb) & (pa >= 0) & (pb >= 0))
        if sel.size:
            pa, pb = pa[sel], pb[sel]
            if np.ndim(dx):
                dx, dy = dx[sel], dy[sel]
            ga, gb = np.take(self.grad, pa, axis=0), np.take(self.grad, pb, axis=0)
            dt = np.take(self.t, b[sel]) - np.take(self.t, a[sel])
            ea = np.abs(dt - ga[:, 0] * dx - ga[:, 1] * dy)
            eb = np.abs(dt - gb[:, 0] * dx - gb[:, 1] * dy)
            # Orientation-free: a flipped triangle winding is not an edge. Triangles turned by
            # less than the crease angle are one smooth surface (a tessellated cylinder turns
            # ~15 degrees per facet).
            cos = np.abs(np.einsum("ij,ij->i", np.take(self.fn, pa, axis=0), np.take(self.fn, pb, axis=0)))
            out[sel] = (np.minimum(ea, eb) > self.tol) | (cos < self.cos_crease)
        return out

    def grid_gaps(self) -> tuple[np.ndarray, np.ndarray]:
        """Outlines between horizontal / vertical neighbours of the centre samples, as (h, w)
        masks on the left / upper sample (last column / row False)."""
        h, w = self.h, self.w
        prim = self.prim[: h * w].reshape(h, w)
        out = []
        for di, dj in ((0, 1), (1, 0)):
            pa, pb = prim[: h - di, : w - dj], prim[di:, dj:]
            gap = np.zeros((h, w), dtype=bool)
            g = gap[: h - di, : w - dj]
            np.not_equal(pa >= 0, pb >= 0, out=g)
            ci, cj = np.nonzero((pa != pb) & (pa >= 0) & (pb >= 0))
            if ci.size:
                a = ci * w + cj
                g[ci, cj] = self.breaks(a, a + (di * w + dj), np.float32(dj * self.px),
                                        np.float32(-di * self.px))
            out.append(gap)
        return out[0], out[1]


def _hull_mask(xs, ys, x0, y0, px, h, w) -> np.ndarray:
    """(h, w) mask of the box's pixels whose centre may see the part: within the convex hull of
    the projected vertices, widened to each row's band of +-half a pixel and half a pixel
    sideways. A ray through any other pixel cannot hit a triangle: it is a miss, uncast."""
    from scipy.spatial import ConvexHull, QhullError

    pts = np.stack([(xs - x0) / px, (y0 - ys) / px], axis=1)  # (column, row) coordinates
    try:
        hull = pts[ConvexHull(pts).vertices]
    except (QhullError, ValueError):
        return np.ones((h, w), dtype=bool)
    # Split the polygon at its top and bottom vertices into two chains, each monotone in
    # row; per row the left chain gives the hull's first column, the right chain its last.
    top, bottom = int(np.argmin(hull[:, 1])), int(np.argmax(hull[:, 1]))
    rolled = np.roll(hull, -top, axis=0)
    k = (bottom - top) % len(hull)
    chain_a, chain_b = rolled[: k + 1], np.vstack([rolled[k:], rolled[:1]])[::-1]
    r = np.arange(h, dtype=np.float64)
    bands = (r - 0.5, r + 0.5)
    xa = [np.interp(b, chain_a[:, 1], chain_a[:, 0]) for b in bands]
    xb = [np.interp(b, chain_b[:, 1], chain_b[:, 0]) for b in bands]
    lo = np.minimum(np.minimum(*xa), np.minimum(*xb))
    hi = np.maximum(np.maximum(*xa), np.maximum(*xb))
    # On a band the hull's extent is reached at the band's ends or at a vertex inside it.
    vr = np.clip(np.rint(hull[:, 1]).astype(np.int64), 0, h - 1)
    np.minimum.at(lo, vr, hull[:, 0])
    np.maximum.at(hi, vr, hull[:, 0])
    c = np.arange(w)[None, :]
    return (c >= np.floor(lo - 0.5)[:, None]) & (c <= np.ceil(hi + 0.5)[:, None])


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Dilation by a (2r+1) square, separably (shifts and ORs; r is a pixel or two)."""
    out = mask
    for _ in range(r):
        m = out.copy()
        m[1:, :] |= out[:-1, :]
        m[:-1, :] |= out[1:, :]
        out = m.copy()
        out[:, 1:] |= m[:, :-1]
        out[:, :-1] |= m[:, 1:]
    return out


def _ink_offsets(width_samples: int) -> range:
    """Offsets, from the sample left of / above a gap, of the samples a line that wide covers."""
    w = max(1, int(width_samples))
    return range(-(w // 2), w - w // 2)


def _ink(gap_h: np.ndarray, gap_v: np.ndarray, offs) -> np.ndarray:
    """Samples a line covers: gaps between horizontal neighbours (vertical lines) widen
    horizontally, gaps between vertical neighbours widen vertically."""
    h, w = gap_h.shape
    ink = np.zeros((h, w), dtype=bool)
    for o in offs:
        if o >= 0:
            ink[:, : w - o] |= gap_h[:, o:]
            ink[: h - o, :] |= gap_v[o:, :]
        else:
            ink[:, -o:] |= gap_h[:, : w + o]
            ink[-o:, :] |= gap_v[: h + o, :]
    return ink


def render_view(mesh: PreparedMesh, camera: Camera, framing: Framing, settings: RenderSettings,
                nthreads: int = 0, timings: dict | None = None, _full: bool = False) -> np.ndarray:
    """One view as a uint8 (size, size) grey image.

    timings["raycast"] gets the seconds in Embree, timings["shading"] the rest (grey levels,
    outlines, supersample bookkeeping). `_full` casts k x k rays in every pixel: the plain
    supersampling reference that the adaptive result is tested against.
    """
    timings = {} if timings is None else timings
    t0, r0 = _clock(), timings.get("raycast", 0.0)
    image = _render_view(mesh, camera, framing, settings, nthreads, timings, _full)
    spent = _clock() - t0 - (timings.get("raycast", 0.0) - r0)
    timings["shading"] = timings.get("shading", 0.0) + spent
    return image


def _render_view(mesh, camera, framing, settings, nthreads, timings, _full) -> np.ndarray:
    size, k = int(settings.size), int(settings.supersample)
    hw = framing.half_width
    px = 2.0 * hw / size
    _, r, u = camera.axes()
    # Picture coordinates are offsets from the mesh centre (the scene origin); the framing
    # centre may differ from it by (ox, oy).
    off = np.asarray(framing.center, dtype=np.float64) - mesh.center
    ox, oy = float(off @ r), float(off @ u)
    xs, ys = mesh.vertices @ r - ox, mesh.vertices @ u - oy
    # Rays only over the pixels the mesh can cover, plus a ring of one pixel (always a miss).
    j0 = max(int(math.floor((xs.min() + hw) / px)) - 1, 0)
    j1 = min(int(math.ceil((xs.max() + hw) / px)) + 1, size)
    i0 = max(int(math.floor((hw - ys.max()) / px)) - 1, 0)
    i1 = min(int(math.ceil((hw - ys.min()) / px)) + 1, size)
    h, w = i1 - i0, j1 - j0
    image = np.full((size, size), 255, dtype=np.uint8)
    if h < 2 or w < 2:
        return image

    s = _Samples(mesh, camera, px, settings.crease_angle, nthreads)
    # Pixel (i, j) of the box is centred at picture (x0 + j*px, y0 - i*px).
    x0 = (j0 + 0.5) * px - hw + ox
    y0 = hw - (i0 + 0.5) * px + oy
    inside = _hull_mask(xs, ys, x0, y0, px, h, w)
    s.cast_grid(x0 + np.arange(w) * px, y0 - np.arange(h) * px, inside, timings)

    if k == 1:
        gap_h, gap_v = s.grid_gaps()
        ink = _ink(gap_h, gap_v, _ink_offsets(round(settings.line_width)))
        tile = s.shade_u8().reshape(h, w)
        tile[ink] = _to_uint8(np.float32(INK))
        image[i0:i1, j0:j1] = tile
        return image

    # Pixels a line can reach get k x k samples: those beside an outline the centre samples
    # found, widened for lines wider than two pixels (a 1-pixel line centred between two pixel
    # centres stays within those two pixels).
    if _full:
        near = np.ones((h, w), dtype=bool)
    else:
        gap_h, gap_v = s.grid_gaps()
        near = gap_h | gap_v
        near[:, 1:] |= gap_h[:, :-1]
        near[1:, :] |= gap_v[:-1, :]
        near = _dilate(near, max(0, math.ceil(settings.line_width / 2 - 0.5)))
    near_flat = np.flatnonzero(near).astype(np.int32)
    nc, kk = len(near_flat), k * k
    base = h * w
    ci, cj = near_flat // w, near_flat % w
    # Supersample (a, b) of the n-th near pixel is sample base + n*k*k + a*k + b and sits on
    # the supersample grid (H x W) at (I, J) = (ci*k + a, cj*k + b).
    I = (ci[:, None] * k + np.repeat(np.arange(k, dtype=np.int32), k)[None, :]).ravel()
    J = (cj[:, None] * k + np.tile(np.arange(k, dtype=np.int32), k)[None, :]).ravel()
    sub = px / k
    s.add(x0 + (J - (k - 1) / 2) * sub, y0 - (I - (k - 1) / 2) * sub, timings)

    cidx = np.full(h * w, -1, dtype=np.int32)
    cidx[near_flat] = np.arange(nc, dtype=np.int32)
    H, W = h * k, w * k
    offs = _ink_offsets(round(settings.line_width * k))
    P = max(abs(offs[0]), abs(offs[-1]))  # padding, so that offset lookups need no bounds checks
    me = base + np.arange(nc * kk, dtype=np.int32)
    gap_h = np.zeros((H + 2 * P, W + 2 * P), dtype=bool)  # outline between (I, J) and (I, J + 1)
    gap_v = np.zeros((H + 2 * P, W + 2 * P), dtype=bool)  # outline between (I, J) and (I + 1, J)
    for gap, di, dj in ((gap_h, 0, 1), (gap_v, 1, 0)):
        # Clamped at the box's last row / column: the ring of misses there has no outline.
        ii, jj = np.minimum(I + di, H - 1), np.minimum(J + dj, W - 1)
        pix = (ii // k) * w + jj // k
        c = np.take(cidx, pix)
        has = c >= 0
        # The neighbour is a supersample when its pixel has them, else that pixel's centre
        # (no outline nearby: a smooth surface, where the centre stands for the pixel).
        b = np.where(has, base + c * kk + (ii % k) * k + (jj % k), pix)
        # Offset of the neighbour from a, in supersample steps (a centre sits mid-pixel).
        half = np.float32((k - 1) / 2)
        dx = (np.where(has, np.float32(dj), dj + half - jj % k) * sub).astype(np.float32)
        dy = (np.where(has, np.float32(di), di + half - ii % k) * -sub).astype(np.float32)
        gap[I + P, J + P] = s.breaks(me, b, dx, dy)

    ink = np.zeros(nc * kk, dtype=bool)
    for o in offs:
        ink |= gap_h[I + P, J + (P + o)]
        ink |= gap_v[I + (P + o), J + P]
    val = np.where(ink, np.float32(INK), s.shade(slice(base, None))).reshape(nc, kk).mean(axis=1)
    tile = s.shade_u8(slice(0, base))
    tile[near_flat] = _to_uint8(val)
    image[i0:i1, j0:j1] = tile.reshape(h, w)
    return image


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Grey levels in [0, 1] (all the renderer makes) to bytes, rounding to nearest."""
    return (image * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


def render_views(vertices, triangles, size: int = 512, views=VIEW_NAMES, supersample: int = 2,
                 line_width: float = 1.0, margin: float = 0.08, crease_angle: float = 30.0,
                 nthreads: int = 0, model_id: str | None = None, timings: dict | None = None,
                 return_framing: bool = False):
    """Render the named views of a triangle mesh: {view: uint8 (size, size) grey image}.

    Raises CADError (reason empty_mesh / bad_mesh / degenerate_bbox) on meshes that cannot make
    a picture. `nthreads` is Embree's thread count (0 = all cores; 1 inside worker processes).
    With return_framing, returns (images, framing).
    """
    settings = RenderSettings(size=size, supersample=supersample, line_width=line_width,
                              margin=margin, crease_angle=crease_angle)
    return render_with(vertices, triangles, settings, views, nthreads, model_id, timings, return_framing)


def render_with(vertices, triangles, settings: RenderSettings, views=VIEW_NAMES, nthreads: int = 0,
                model_id: str | None = None, timings: dict | None = None, return_framing: bool = False):
    """render_views with a RenderSettings object (what the stage uses)."""
    unknown = [v for v in views if v not in CAMERAS]
    if unknown or not views:
        raise ValueError(f"unknown views {unknown}; choose from {list(CAMERAS)}")
    timings = {} if timings is None else timings
    t0 = _clock()
    mesh = PreparedMesh(vertices, triangles, settings.crease_angle, model_id, nthreads)
    framing = fit_framing(mesh, views, settings.margin)
    timings["shading"] = timings.get("shading", 0.0) + (_clock() - t0) - mesh.scene_seconds
    timings["raycast"] = timings.get("raycast", 0.0) + mesh.scene_seconds
    images = {name: render_view(mesh, CAMERAS[name], framing, settings, nthreads, timings) for name in views}
    return (images, framing) if return_framing else images
