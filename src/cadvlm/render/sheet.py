"""Putting views on sheets and sheets in files: the 2x2 grid, contact sheets, PNG bytes.

Pictures are 8-bit grey ("L"): the renderer draws grey only, so RGB would triple the pixels to
compress and the bytes on disk for nothing (a VLM processor converts to RGB when it loads).
PNG bytes depend only on the pixels and the zlib level: Pillow writes no time or text chunks.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import numpy as np

# Third-angle projection (ASME Y14.3), the arrangement a drawing uses: top view above the
# front view, right view to the right of the front view, the iso view in the free corner.
# With one scale and centre for all views, the top and front views share their X columns and
# the front and right views share their Z rows.
GRID_LAYOUT = (("top", "iso"), ("front", "right"))
DIVIDER = 200  # grey of the one-pixel lines between the cells of a grid (0 = none)


def compose_grid(images: dict, layout=GRID_LAYOUT, divider: int = DIVIDER) -> np.ndarray:
    """The views in a grid (rows of view names; a name not in images leaves a white cell)."""
    first = next(iter(images.values()))
    size = first.shape[0]
    rows, cols = len(layout), max(len(r) for r in layout)
    sheet = np.full((rows * size, cols * size), 255, dtype=np.uint8)
    for i, row in enumerate(layout):
        for j, name in enumerate(row):
            if name in images:
                sheet[i * size:(i + 1) * size, j * size:(j + 1) * size] = images[name]
    if divider:
        for i in range(1, rows):
            sheet[i * size, :] = np.minimum(sheet[i * size, :], divider)
        for j in range(1, cols):
            sheet[:, j * size] = np.minimum(sheet[:, j * size], divider)
    return sheet


def encode_png(image: np.ndarray, compress_level: int = 6) -> bytes:
    """PNG bytes of a uint8 grey (H, W) image; deterministic."""
    from PIL import Image

    if image.dtype != np.uint8 or image.ndim != 2:
        raise ValueError(f"expected a uint8 (H, W) image, got {image.dtype} {image.shape}")
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="PNG", compress_level=int(compress_level))
    return buf.getvalue()


TMP_PREFIX = ".tmp-"


def write_atomic(path, data: bytes) -> Path:
    """Write bytes to a temp file beside path, then rename onto it: readers never see half a
    file, and a killed run leaves only a `.tmp-*` file that the render stage sweeps."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def write_json_atomic(path, obj) -> Path:
    """A JSON file with fixed formatting (same object, same bytes), written atomically."""
    return write_atomic(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def files_below(folder: Path, root: Path) -> set[str]:
    """Every file under `folder`, as paths relative to `root` with '/' separators."""
    found = set()
    for parent, _, files in os.walk(folder):
        rel = Path(parent).relative_to(root).as_posix()
        found.update(f"{rel}/{f}" for f in files)
    return found


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow's bundled font: same on every machine
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def contact_sheet(items, columns: int = 6, tile: int = 256, label_height: int = 22,
                  gap: int = 6) -> np.ndarray:
    """Many pictures on one sheet, each scaled into a tile with its label underneath.

    items: (label, uint8 grey image or None) pairs; None draws an empty, labelled tile (a model
    that failed: put the reason in the label).
    """
    from PIL import Image, ImageDraw

    items = list(items)
    if not items:
        raise ValueError("a contact sheet needs at least one picture")
    columns = max(1, min(columns, len(items)))
    rows = -(-len(items) // columns)
    cell_w, cell_h = tile + gap, tile + label_height + gap
    sheet = Image.new("L", (columns * cell_w + gap, rows * cell_h + gap), 255)
    draw = ImageDraw.Draw(sheet)
    font = _font(max(10, label_height - 8))
    for n, (label, image) in enumerate(items):
        x, y = gap + (n % columns) * cell_w, gap + (n // columns) * cell_h
        if image is not None:
            pic = Image.fromarray(image, mode="L")
            scale = tile / max(pic.size)
            if scale != 1:
                pic = pic.resize((max(1, round(pic.width * scale)), max(1, round(pic.height * scale))),
                                 Image.Resampling.BOX if scale < 1 else Image.Resampling.BILINEAR)
            sheet.paste(pic, (x + (tile - pic.width) // 2, y + (tile - pic.height) // 2))
        draw.rectangle([x - 1, y - 1, x + tile, y + tile], outline=190)
        text = str(label)
        while text and draw.textlength(text, font=font) > tile:
            text = text[:-1]
        draw.text((x + 2, y + tile + 3), text, fill=0, font=font)
    return np.asarray(sheet)
