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
between outlines the picture is smooth shading that supersampling would not change. The first
pass itself skips rays it can answer without Embree: pixels outside the projected convex hull
are misses, and a pixel between two samples on the same plane lies on that plane (depth is
affine in an orthographic view).

Modules: render.cameras (cameras, settings, framing), render.raymesh (the prepared mesh and
Embree), render.shading (ray samples, grey levels, outline tests); this one lays samples out in
pixels and is the entry point (`render_views`, `render_with`), re-exporting the others' names.
"""

from __future__ import annotations

import math

import numpy as np

from cadvlm.render import raymesh
from cadvlm.render.cameras import CAMERAS, VIEW_NAMES, Camera, Framing, RenderSettings, fit_framing
from cadvlm.render.raymesh import PreparedMesh
from cadvlm.render.shading import INK, Samples, to_uint8

__all__ = ["CAMERAS", "VIEW_NAMES", "Camera", "Framing", "PreparedMesh", "RenderSettings", "fit_framing",
           "render_view", "render_views", "render_with"]


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
    t0, r0 = raymesh._clock(), timings.get("raycast", 0.0)
    image = _render_view(mesh, camera, framing, settings, nthreads, timings, _full)
    spent = raymesh._clock() - t0 - (timings.get("raycast", 0.0) - r0)
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

    s = Samples(mesh, camera, px, settings.crease_angle, nthreads)
    # Pixel (i, j) of the box is centred at picture (x0 + j*px, y0 - i*px).
    x0 = (j0 + 0.5) * px - hw + ox
    y0 = hw - (i0 + 0.5) * px + oy
    inside = _hull_mask(xs, ys, x0, y0, px, h, w)
    s.cast_grid(x0 + np.arange(w) * px, y0 - np.arange(h) * px, inside, timings)

    if k == 1:
        gap_h, gap_v = s.grid_gaps()
        ink = _ink(gap_h, gap_v, _ink_offsets(round(settings.line_width)))
        tile = s.shade_u8().reshape(h, w)
        tile[ink] = to_uint8(np.float32(INK))
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
    tile[near_flat] = to_uint8(val)
    image[i0:i1, j0:j1] = tile.reshape(h, w)
    return image


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
    t0 = raymesh._clock()
    mesh = PreparedMesh(vertices, triangles, settings.crease_angle, model_id, nthreads)
    framing = fit_framing(mesh, views, settings.margin)
    timings["shading"] = timings.get("shading", 0.0) + (raymesh._clock() - t0) - mesh.scene_seconds
    timings["raycast"] = timings.get("raycast", 0.0) + mesh.scene_seconds
    images = {name: render_view(mesh, CAMERAS[name], framing, settings, nthreads, timings) for name in views}
    return (images, framing) if return_framing else images
