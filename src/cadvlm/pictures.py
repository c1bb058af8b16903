"""Picture files: their size from the header alone, and the record of imported pictures.

Pictures reach the pipeline two ways: the render stage draws PNGs, or a dataset that ships its own
pictures (an OpenECAD set, `data.source: openecad`) has them imported as they are (JPEG). The
extract stage writes, beside the chosen parts, `pictures.json` = {id: {"file" (relative to the
extracted folder), "kind", "size": [w, h], "format", "prompt"}}; the render stage copies those
files and the convert stage takes each part's prompt and kind from it. This module is that
contract, below all three.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

PICTURES_FILE = "pictures.json"
PICTURES_DIR = "pictures"
# Kinds of imported picture: one view from near (1, 1, 1); a transparent view; a 2x2 sheet of views.
KINDS = ("iso", "transparent", "grid")
# OpenECAD's 2x2 sheet (Bethany/step2img.py in github.com/Yuki-Kokomi/OpenECAD_Project): four views
# pasted at (0,0), (w,0), (0,h), (w,h) in the order of its directions (1,1,1), (1,0,0), (0,1,0),
# (0,0,1), named as this project's cameras would name them (+X right, +Z top; +Y has none: back).
OPENECAD_SHEET = (("iso", "right"), ("back", "top"))
OPENECAD_GRID_SIZE = (1280, 960)  # two 640x480 views across, two down


def picture_kind(prompt: str, size) -> str:
    """`iso`, `transparent` or `grid` from an OpenECAD record's prompt (its three wordings) and size."""
    text = prompt.lower()
    if "transparent" in text:
        return "transparent"
    if "orthographic" in text or "4 views" in text or tuple(size) == OPENECAD_GRID_SIZE:
        return "grid"
    return "iso"


def read_pictures(extracted) -> dict | None:
    """The pictures.json of an extracted subset, or None when its pictures are to be rendered."""
    path = Path(extracted) / PICTURES_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, ...): not 0xC4 (DHT), 0xC8 (JPG), 0xCC (DAC).
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _png(head: bytes) -> tuple[int, int] | None:
    if len(head) < 33 or head[12:16] != b"IHDR" or head[8:12] != b"\x00\x00\x00\r":
        return None
    w, h = struct.unpack(">II", head[16:24])
    if w == 0 or h == 0 or head[24] not in (1, 2, 4, 8, 16) or head[25] not in (0, 2, 3, 4, 6):
        return None
    return w, h


def _jpeg(f) -> tuple[int, int] | None:
    """Walk the marker segments after SOI up to the first start-of-frame (a few hundred bytes)."""
    while True:
        if f.read(1) != b"\xff":
            return None
        b = f.read(1)
        while b == b"\xff":  # fill bytes before a marker
            b = f.read(1)
        if not b:
            return None
        marker = b[0]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            continue
        if marker == 0xD9 or marker == 0xDA:  # end of image / scan data before any frame header
            return None
        seg = f.read(2)
        if len(seg) < 2:
            return None
        length = struct.unpack(">H", seg)[0]
        if length < 2:
            return None
        if marker in _SOF:
            body = f.read(5)
            if len(body) < 5:
                return None
            h, w = struct.unpack(">HH", body[1:5])
            return (w, h) if w and h else None
        f.seek(length - 2, 1)


def picture_size(path) -> tuple[int, int] | None:
    """(width, height) of a PNG (its IHDR) or a JPEG (its frame header), None when neither.

    The check PIL's open does, without PIL's per-file setup (3,300 pictures in ~30 ms).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(33)
            if head[:8] == _PNG_SIGNATURE:
                return _png(head)
            if head[:3] == b"\xff\xd8\xff":
                f.seek(2)
                return _jpeg(f)
    except OSError:
        return None
    return None
