"""The ray samples of one view: casting them, their grey levels, and the outline tests.

Why a module of its own: this is the look of a picture, apart from how samples are laid out in
pixels (render.views decides that: hull culling, adaptive supersampling, ink width):
- white background, light grey faces: Lambert shading from a key light above-left of the
  camera plus a weaker headlight (a headlight alone shades the three faces of a box the same
  grey in the iso view); grey levels are interpolated from per-corner smooth normals, averaged
  only over triangles within `crease_angle` of each other (render.raymesh), so a tessellated
  cylinder shades as a smooth surface while true CAD edges stay sharp;
- dark outlines wherever neighbouring samples disagree: hit / miss (silhouette), a depth jump
  that the plane of neither sample's triangle explains (an edge in front of a farther
  surface), or triangles turned past the crease angle (a sharp edge between faces).
"""

from __future__ import annotations

import math

import numpy as np

from cadvlm.render import raymesh
from cadvlm.render.cameras import Camera
from cadvlm.render.raymesh import PreparedMesh

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


class Samples:
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
        self.flat_u8 = to_uint8(self.flat_shade)
        self.fn = fn
        self.cos_crease = math.cos(math.radians(crease_angle))
        self.tol = np.float32(DEPTH_TOL_PX * px)

    def cast(self, x: np.ndarray, y: np.ndarray, timings: dict):
        """(t, prim, uv) of rays through picture points (x, y), world offsets from the mesh centre."""
        t0 = raymesh._clock()
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
        timings["raycast"] = timings.get("raycast", 0.0) + (raymesh._clock() - t0)
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
            g[cur] = to_uint8(levels)
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


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Grey levels in [0, 1] (all the renderer makes) to bytes, rounding to nearest."""
    return (image * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)
