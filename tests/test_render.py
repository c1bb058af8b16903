"""The renderer on meshes with known answers: cameras, shared scale, outlines, holes, bad input."""

import io

import numpy as np
import pytest

from cadvlm.cad.model import CADError
from cadvlm.render.sheet import GRID_LAYOUT, compose_grid, contact_sheet, encode_png, write_atomic
from cadvlm.render.views import (CAMERAS, VIEW_NAMES, Framing, PreparedMesh, RenderSettings, fit_framing,
                                 render_view, render_views)

SIZE = 128


def box(lo, hi):
    """Closed, outward-facing box mesh."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    v = np.array([[lo[0] if i & 1 == 0 else hi[0], lo[1] if i & 2 == 0 else hi[1], lo[2] if i & 4 == 0 else hi[2]]
                  for i in range(8)])
    quads = [(0, 2, 3, 1), (4, 5, 7, 6), (0, 1, 5, 4), (2, 6, 7, 3), (0, 4, 6, 2), (1, 3, 7, 5)]
    tris = [t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))]
    return v, np.array(tris, dtype=np.int32)


def merge(*meshes):
    vs, ts, off = [], [], 0
    for v, t in meshes:
        vs.append(v)
        ts.append(t + off)
        off += len(v)
    return np.concatenate(vs), np.concatenate(ts)


def plate_with_hole(side=2.0, thick=0.4, radius=0.4, n=128):
    """Square plate (z in [0, thick]) with a round through hole along Z: a closed mesh."""
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    circle = np.stack([radius * np.cos(ang), radius * np.sin(ang)], 1)
    dirs = np.stack([np.cos(ang), np.sin(ang)], 1)
    square = dirs / np.abs(dirs).max(1, keepdims=True) * side / 2
    pts = [np.c_[circle, np.full(n, thick)], np.c_[square, np.full(n, thick)],
           np.c_[circle, np.zeros(n)], np.c_[square, np.zeros(n)]]
    v = np.concatenate(pts)
    tc, ts, bc, bs = (np.arange(n) + k * n for k in range(4))
    j = (np.arange(n) + 1) % n
    i = np.arange(n)
    tris = np.concatenate([
        np.c_[tc[i], ts[i], ts[j]], np.c_[tc[i], ts[j], tc[j]],      # top
        np.c_[bc[i], bs[j], bs[i]], np.c_[bc[i], bc[j], bs[j]],      # bottom
        np.c_[tc[i], tc[j], bc[j]], np.c_[tc[i], bc[j], bc[i]],      # hole wall
        np.c_[ts[i], bs[i], bs[j]], np.c_[ts[i], bs[j], ts[j]],      # outer wall
    ])
    return v, tris.astype(np.int32)


def extent(img, thresh=250):
    """(row0, row1, col0, col1) of the non-white pixels."""
    rows = np.flatnonzero((img < thresh).any(axis=1))
    cols = np.flatnonzero((img < thresh).any(axis=0))
    return rows[0], rows[-1], cols[0], cols[-1]


def centroid(mask):
    r, c = np.nonzero(mask)
    return r.mean(), c.mean()


@pytest.fixture(scope="module")
def marked_box():
    """A 2 x 1 x 1 box with a marker cube on top at +X, +Y: tells where each axis goes."""
    return merge(box((0, 0, 0), (2, 1, 1)), box((1.6, 0.6, 1.0), (2.0, 1.0, 1.4)))


@pytest.fixture(scope="module")
def marked_views(marked_box):
    return render_views(*marked_box, size=SIZE, supersample=1, nthreads=1)


def test_views_are_grey_images_of_the_requested_size(marked_views):
    assert set(marked_views) == set(VIEW_NAMES)
    for img in marked_views.values():
        assert img.dtype == np.uint8 and img.shape == (SIZE, SIZE)
        assert img[0, 0] == 255 and img.min() < 80  # white background, dark outlines


def test_cameras_put_the_axes_where_the_design_says(marked_views):
    front, top, right = marked_views["front"], marked_views["top"], marked_views["right"]
    # Front: X right, Z up -> the marker (high X, high Z) sits top-right of the part.
    r0, r1, c0, c1 = extent(front)
    marker = front[r0 + 2, :] < 250
    assert np.flatnonzero(marker).mean() > (c0 + c1) / 2
    # Top: X right, Y up -> the marker (high X, high Y) is a dark-outlined square at the top right:
    # the top view shows it as a square whose outline lies in the upper right quarter.
    r0, r1, c0, c1 = extent(top)
    sub = top[r0:r1 + 1, c0:c1 + 1]
    h, w = sub.shape
    inner = sub[2:-2, 2:-2] < 100  # outlines inside the part's silhouette
    rr, cc = centroid(inner)
    assert rr + 2 < h / 2 and cc + 2 > w / 2
    # Right: camera at +X, Y right, Z up -> the marker (high Y, high Z) is top-right.
    r0, r1, c0, c1 = extent(right)
    marker = right[r0 + 2, :] < 250
    assert np.flatnonzero(marker).mean() > (c0 + c1) / 2


def test_one_scale_for_all_views(marked_views):
    """Widths along a shared axis agree between views (pixels), proportions hold."""
    f = extent(marked_views["front"])
    t = extent(marked_views["top"])
    r = extent(marked_views["right"])
    x_front, x_top = f[3] - f[2], t[3] - t[2]
    z_front, z_right = f[1] - f[0], r[1] - r[0]
    y_top, y_right = t[1] - t[0], r[3] - r[2]
    assert abs(x_front - x_top) <= 1 and abs(z_front - z_right) <= 1 and abs(y_top - y_right) <= 1
    assert x_front / y_top == pytest.approx(2.0, rel=0.05)
    # Front and top views share their X columns, front and right their Z rows (third angle).
    assert abs(f[2] - t[2]) <= 1 and abs(f[0] - r[0]) <= 1


def test_fit_uses_the_largest_view_with_margin(marked_box):
    mesh = PreparedMesh(*marked_box)
    fr = fit_framing(mesh, VIEW_NAMES, 0.1)
    half = max(np.abs(mesh.vertices @ CAMERAS[v].axes()[k]).max() for v in VIEW_NAMES for k in (1, 2))
    assert fr.half_width == pytest.approx(1.1 * half)
    img = render_view(mesh, CAMERAS["iso"], fr, RenderSettings(size=SIZE, supersample=1, margin=0.1))
    r0, r1, c0, c1 = extent(img)
    assert min(r0, c0, SIZE - 1 - r1, SIZE - 1 - c1) >= 2  # the widest view still has a border


def test_hole_is_a_round_white_disc_in_the_top_view():
    v, t = plate_with_hole()
    img = render_views(v, t, size=256, views=("top", "front"), supersample=2, nthreads=1)["top"]
    # Plate spans 2 units; the hole's radius 0.4 -> 0.2 of the plate's width in pixels.
    r0, r1, c0, c1 = extent(img)
    plate_px = c1 - c0
    cy, cx = (r0 + r1) / 2, (c0 + c1) / 2
    radius_px = 0.2 * plate_px
    yy, xx = np.mgrid[:256, :256]
    dist = np.hypot(yy - cy, xx - cx)
    assert (img[dist < radius_px - 3] == 255).all()                   # see-through inside
    for a in np.radians(np.arange(0, 360, 5)):                        # outlined all round
        rs = radius_px + np.arange(-2.0, 2.01, 0.5)
        ys, xs = np.rint(cy - rs * np.sin(a)).astype(int), np.rint(cx + rs * np.cos(a)).astype(int)
        assert img[ys, xs].min() < 170  # an anti-aliased 1 px line: ~half ink on 2 pixels
    face = img[(dist > radius_px + 4) & (dist < radius_px + 20)]
    assert 200 < np.median(face) < 250                                 # light grey face
    # Round: the outline's distance from the centre varies by about a pixel at most.
    dark = (img < 128) & (dist < radius_px + 4)
    d = dist[dark]
    assert d.max() - d.min() < 3.0


def test_front_view_of_a_plate_shows_no_hole_and_smooth_shading_keeps_the_face_clean():
    v, t = plate_with_hole()
    img = render_views(v, t, size=256, views=("front",), supersample=2, nthreads=1)["front"]
    r0, r1, c0, c1 = extent(img)
    inside = img[r0 + 3:r1 - 2, c0 + 3:c1 - 2]
    assert inside.min() > 150  # no outline across the face (the hole is hidden)


def test_cylinder_facets_are_not_outlined():
    """A tessellated cylinder's side turns ~6 degrees per facet: one smooth surface."""
    import open3d as o3d

    m = o3d.geometry.TriangleMesh.create_cylinder(0.5, 1.0, resolution=64, split=1)
    v, t = np.asarray(m.vertices), np.asarray(m.triangles)
    img = render_views(v, t, size=256, views=("front",), supersample=2, nthreads=1)["front"]
    r0, r1, c0, c1 = extent(img)
    inside = img[r0 + 3:r1 - 2, c0 + 4:c1 - 3]
    assert inside.min() > 90
    # Shading varies across the side (it is curved) but smoothly: no jump between columns.
    row = inside[inside.shape[0] // 2].astype(int)
    assert row.max() - row.min() > 20 and np.abs(np.diff(row)).max() <= 6


def test_adaptive_supersampling_matches_full_supersampling(marked_box):
    v, t = plate_with_hole()
    for mesh_arrays in (marked_box, (v, t)):
        mesh = PreparedMesh(*mesh_arrays)
        settings = RenderSettings(size=160, supersample=3)
        framing = fit_framing(mesh, VIEW_NAMES, settings.margin)
        for name in ("iso", "top"):
            a = render_view(mesh, CAMERAS[name], framing, settings, nthreads=1).astype(int)
            b = render_view(mesh, CAMERAS[name], framing, settings, nthreads=1, _full=True).astype(int)
            diff = np.abs(a - b)
            assert diff.mean() < 0.3, (name, diff.mean())
            assert (diff > 40).mean() < 0.002, (name, (diff > 40).mean())


def test_supersampling_antialiases_outlines(marked_box):
    """Without supersampling a picture has one grey per face plus ink and white; with it, the
    pixels an outline crosses take intermediate greys."""
    hard = render_views(*marked_box, size=SIZE, views=("iso",), supersample=1, nthreads=1)["iso"]
    soft = render_views(*marked_box, size=SIZE, views=("iso",), supersample=3, nthreads=1)["iso"]
    assert len(np.unique(hard)) <= 6
    assert len(np.unique(soft)) >= 20


def test_line_width_thickens_outlines(marked_box):
    dark = {w: (render_views(*marked_box, size=SIZE, views=("front",), supersample=2, line_width=w,
                             nthreads=1)["front"] < 128).sum() for w in (1, 3)}
    assert dark[3] > 2 * dark[1]


def test_same_mesh_same_pixels(marked_box):
    a = render_views(*marked_box, size=SIZE, nthreads=1)
    b = render_views(*marked_box, size=SIZE, nthreads=0)
    for name in VIEW_NAMES:
        assert np.array_equal(a[name], b[name])
        assert encode_png(a[name]) == encode_png(b[name])


def test_triangle_winding_does_not_matter(marked_box):
    v, t = marked_box
    a = render_views(v, t, size=SIZE, nthreads=1)
    b = render_views(v, t[:, ::-1].copy(), size=SIZE, nthreads=1)
    for name in VIEW_NAMES:
        assert np.abs(a[name].astype(int) - b[name].astype(int)).max() <= 1


@pytest.mark.parametrize("vertices,triangles,reason", [
    (np.zeros((0, 3)), np.zeros((0, 3), np.int32), "empty_mesh"),
    (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], float), np.array([[0, 1, 2], [1, 3, 2]]),
     "degenerate_bbox"),
    (np.array([[0, 0, 0], [1, 0, 0], [0, np.nan, 1]], float), np.array([[0, 1, 2]]), "bad_mesh"),
    (np.array([[0, 0, 0], [1, 0, 0], [0, 1, 1]], float), np.array([[0, 1, 5]]), "bad_mesh"),
    (np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2]], float), np.array([[0, 1, 2]]), "empty_mesh"),
])
def test_bad_meshes_raise_typed_errors(vertices, triangles, reason):
    with pytest.raises(CADError) as err:
        render_views(vertices, triangles, size=32, model_id="m1")
    assert err.value.reason == reason and err.value.model_id == "m1"


def test_bad_settings_are_refused(marked_box):
    with pytest.raises(ValueError):
        render_views(*marked_box, size=8)
    with pytest.raises(ValueError):
        render_views(*marked_box, views=("front", "back"))
    with pytest.raises(ValueError):
        RenderSettings(supersample=0)


def test_grid_places_views_third_angle():
    size = 8
    imgs = {name: np.full((size, size), 10 * (i + 1), np.uint8) for i, name in enumerate(VIEW_NAMES)}
    sheet = compose_grid(imgs, divider=0)
    assert sheet.shape == (2 * size, 2 * size)
    assert GRID_LAYOUT == (("top", "iso"), ("front", "right"))
    for i, row in enumerate(GRID_LAYOUT):
        for j, name in enumerate(row):
            assert (sheet[i * size:(i + 1) * size, j * size:(j + 1) * size] == imgs[name]).all()
    with_div = compose_grid(imgs)
    assert (with_div[size, :] <= 200).all() and (with_div[:, size] <= 200).all()


def test_png_is_grey_deterministic_and_has_no_time_chunk():
    from PIL import Image

    img = (np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64)
    a, b = encode_png(img, 6), encode_png(img.copy(), 6)
    assert a == b and b"tIME" not in a and b"tEXt" not in a
    with Image.open(io.BytesIO(a)) as im:
        assert im.mode == "L" and np.array_equal(np.asarray(im), img)


def test_write_atomic_leaves_no_partial_file(tmp_path):
    target = tmp_path / "sub" / "x.png"
    write_atomic(target, b"abc")
    assert target.read_bytes() == b"abc"

    with pytest.raises(TypeError):
        write_atomic(tmp_path / "sub" / "y.png", object())  # fails mid-write
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["x.png"]


def test_contact_sheet_tiles_and_labels():
    imgs = [(f"m{i}", np.full((40, 60), 100, np.uint8)) for i in range(5)] + [("bad: build_failed", None)]
    sheet = contact_sheet(imgs, columns=4, tile=50)
    assert sheet.dtype == np.uint8 and sheet.ndim == 2
    assert sheet.shape[1] > sheet.shape[0]  # 4 columns, 2 rows
    assert (sheet < 50).any()  # label text


def test_framing_json_round_trip(marked_box):
    mesh = PreparedMesh(*marked_box)
    fr = fit_framing(mesh, ("front",), 0.0)
    j = fr.to_json()
    assert Framing(np.array(j["center"]), j["half_width"]).half_width == fr.half_width


def test_hull_culling_changes_no_pixel(marked_box, monkeypatch):
    """Rays outside the projected hull are skipped; casting them all gives the same picture."""
    import cadvlm.render.views as views

    v, t = plate_with_hole()
    meshes = [marked_box, (v, t), (v[:, [2, 0, 1]], t)]
    culled = [render_views(*m, size=SIZE, nthreads=1) for m in meshes]
    monkeypatch.setattr(views, "_hull_mask", lambda xs, ys, x0, y0, px, h, w: np.ones((h, w), bool))
    full = [render_views(*m, size=SIZE, nthreads=1) for m in meshes]
    for a, b in zip(culled, full):
        for name in VIEW_NAMES:
            assert np.array_equal(a[name], b[name]), name
