"""Uploaded bytes -> the picture the model reads, refusing bad input early and by name.

Why decode here and not with `cadvlm.predict.load_picture`: uploads are bytes, not files, and a
server must refuse a decompression bomb (a few KB declaring 100,000 x 100,000 pixels) from the
header alone, before Pillow allocates anything. Everything after decoding is predict's: the same
`fit_square` / `compose_views`, so a served picture is exactly what `cadvlm predict` would feed.
"""

from __future__ import annotations

import io

from cadvlm.model.manifest import GRID_VIEWS, ModelManifest


class BadInput(ValueError):
    """A request the server refuses (HTTP 422 unless `status` says otherwise); the text says why."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


def open_picture(data: bytes, label: str, max_pixels: int, max_side: int):
    """A fully decoded PIL picture from upload bytes, or BadInput naming `label` and the problem."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise BadInput(f"{label}: the file is empty")
    try:
        im = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError:
        raise BadInput(f"{label}: not a picture (send PNG, JPEG, WebP, BMP, GIF or TIFF)") from None
    except Image.DecompressionBombError as exc:
        raise BadInput(f"{label}: refused before decoding: {exc}") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadInput(f"{label}: unreadable picture header ({exc})") from None
    w, h = im.size
    if w < 1 or h < 1:
        raise BadInput(f"{label}: the picture has no pixels ({w}x{h})")
    if w * h > max_pixels or max(w, h) > max_side:
        raise BadInput(f"{label}: {w}x{h} pixels is over the limit ({max_pixels:,} pixels, {max_side:,} a side); "
                       "refused before decoding")
    try:
        im.load()  # decode every pixel now: truncated or corrupt data fails here, not in the model
    except Image.DecompressionBombError as exc:
        raise BadInput(f"{label}: refused: {exc}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BadInput(f"{label}: truncated or corrupt picture ({exc})") from None
    return im


def model_input(manifest: ModelManifest, image=None, views: dict | None = None, view: str | None = None):
    """(RGB picture for the model, view name or None for a grid) from one picture or named views.

    `image`: the 2x2 sheet the render stage makes (or, for a separate-layout model, one view,
    named by `view`). `views`: {front/top/right/iso: picture}, composed into the render stage's
    grid exactly as `cadvlm predict --front ...` does; a view left out stays white.
    """
    from PIL import Image

    from cadvlm.predict import PictureError, compose_views

    views = views or {}
    if (image is None) == (not views):
        raise BadInput("send either `image` (a picture of the part: the 2x2 sheet of views) or "
                       "`front`, `top`, `right` (and optionally `iso`), not both and not neither")
    if view is not None and view not in manifest.views:
        raise BadInput(f"view {view!r} is not one this model was trained on ({', '.join(manifest.views)})")
    if image is not None:
        if manifest.layout == "separate" and view is None:
            view = manifest.views[0]
        return image.convert("RGB"), (view if manifest.layout == "separate" else None)
    if view is not None:
        raise BadInput("`view` names a single `image`; it does not combine with front/top/right/iso")
    unknown = set(views) - set(GRID_VIEWS)
    if unknown:
        raise BadInput(f"unknown views {sorted(unknown)}; use {', '.join(GRID_VIEWS)}")
    if manifest.layout != "grid":  # separate views, or one imported picture: no sheet to compose
        if len(views) != 1:
            raise BadInput("this model reads one picture at a time: send one of front/top/right/iso, or `image`")
        (name, pic), = views.items()
        return pic.convert("RGB"), (name if manifest.layout == "separate" else None)
    try:
        grid = compose_views(views, manifest.view_size)
    except PictureError as exc:
        raise BadInput(str(exc)) from None
    return Image.fromarray(grid).convert("RGB"), None
