"""Shared pieces of the serve tests: a model folder without weights, a scripted generate function,
pictures (good and bad), and a real uvicorn server on 127.0.0.1 in a thread.

The scripted generator answers by the prompt, so a test picks the model's behaviour per request:
the default answer is a valid plate with a hole; a prompt containing "garbage" gets unreadable
code, "slow" sleeps past the generation limit and returns a cut answer, "block" waits for
`RELEASE` (to hold the generator busy while the queue fills).
"""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from pathlib import Path

from PIL import Image

PLATE = ("SketchPlane0 = add_sketchplane(\n\torigin= [0., 0., 0.], normal= [0., 0., 1.], x_axis= [1., 0., 0.])\n"
         "Loops0 = []\nCurves0_0 = []\n"
         "Line0_0_0 = add_line(start= [0., 0.], end= [40., 0.])\n"
         "Line0_0_1 = add_line(start= [40., 0.], end= [40., 20.])\n"
         "Line0_0_2 = add_line(start= [40., 20.], end= [0., 20.])\n"
         "Line0_0_3 = add_line(start= [0., 20.], end= [0., 0.])\n"
         "Loop0_0 = add_loop(Curves0_0)\nCurves0_1 = []\n"
         "Circle0_1_0 = add_circle(center= [10., 10.], radius= 4.)\n"
         "Loop0_1 = add_loop(Curves0_1)\nProfile0 = add_profile(Loops0)\n"
         "Sketch0 = add_sketch(sketch_plane= SketchPlane0, profile= Profile0)\n"
         "Extrude0 = add_extrude(sketch= Sketch0,\n\toperation= 0, type= 0, extent_one= 5., extent_two= 0.)\n")
GOOD = "Of course, here are the codes:\n```python\n" + PLATE + "```"
GARBAGE = "Of course, here are the codes:\n```python\nSketchPlane0 = add_sketchplane(origin= [0., 0.\n```"
RELEASE = threading.Event()


class ScriptedGenerate:
    """A GenerateFn whose answers depend on the prompt; it records every call's batch size."""

    def __init__(self):
        self.calls: list[int] = []
        self.lock = threading.Lock()

    def __call__(self, images, prompt, max_new_tokens, max_time):
        with self.lock:
            self.calls.append(len(images))
        if "block" in prompt:
            RELEASE.wait(20)
        if "slow" in prompt:
            time.sleep(max_time + 0.05)
            return [GOOD[: len(GOOD) // 2] for _ in images]  # cut mid-code, as max_time leaves it
        if "garbage" in prompt:
            return [GARBAGE for _ in images]
        time.sleep(0.002 * len(images) + 0.01)
        return [GOOD for _ in images]


def model_dir(path: Path) -> Path:
    """A model folder holding only the manifest (OpenECAD v2, 2x2 grid of four 128 px views)."""
    from cadvlm.model.manifest import ModelManifest

    ModelManifest("full", None, render={"size": 128}).write(path)
    return path


def png_bytes(size=(256, 256), colour="white", mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, colour).save(buf, "PNG")
    return buf.getvalue()


def sheet_png(size: int = 128) -> bytes:
    """The render stage's 2x2 sheet of the plate (what the page's user would drop)."""
    from cadvlm.codec.format import CodeFormat
    from cadvlm.geometry.solid import build_solid
    from cadvlm.rebuild import grid_picture
    from cadvlm.render.sheet import encode_png

    model = CodeFormat("openecad").parse(PLATE, "plate")
    return encode_png(grid_picture(build_solid(model), size))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A few hundred bytes declaring width x height pixels (a decompression bomb's header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    idat = zlib.compress(b"\0" * 4096, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def truncated_png() -> bytes:
    import numpy as np

    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (200, 200), dtype=np.uint8)).save(buf, "PNG")
    data = buf.getvalue()
    return data[: len(data) // 2]


def corrupt_png() -> bytes:
    """A PNG whose pixel data is overwritten with junk (the header still reads)."""
    import numpy as np

    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (200, 200), dtype=np.uint8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    start = data.index(b"IDAT") + 40
    data[start:start + 400] = bytes(rng.integers(0, 255, 400, dtype=np.uint8))
    return bytes(data)


class ServerThread:
    """A real uvicorn server for an app on 127.0.0.1 (a free port), running in a thread."""

    def __init__(self, app):
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    timeout_graceful_shutdown=5))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def wait_workers_ready(app, timeout: float = 120.0) -> None:
    """Block until every build worker of the app has started (so timings measure requests only)."""
    if not app.state.builds.warmed.wait(timeout):
        raise RuntimeError("build workers did not start")
