"""Upload bytes -> the model's picture: refusals by name, and the composition predict would do."""

from __future__ import annotations

import pytest
from serve_helpers import bomb_png, png_bytes, truncated_png

from cadvlm.serve.pictures import BadInput, model_input, open_picture


def test_open_picture_refuses_by_name():
    assert open_picture(png_bytes((30, 20)), "image", 10_000, 100).size == (30, 20)
    for data, words in ((b"", "empty"), (b"GIF89a nonsense", "front: "), (b"hello", "not a picture"),
                        (truncated_png(), "truncated"), (bomb_png(), "refused"), (png_bytes((900, 20)), "over the limit")):
        with pytest.raises(BadInput) as e:
            open_picture(data, "front", 100_000, 500)
        assert str(e.value).startswith("front:") and words in str(e.value), (words, str(e.value))


def test_model_input_by_layout():
    from PIL import Image

    from cadvlm.model.manifest import ModelManifest

    grid = ModelManifest("full", None, render={"size": 64})
    pic = Image.new("L", (50, 20), 128)
    im, view = model_input(grid, views={"front": pic, "top": pic})
    assert im.size == (128, 128) and im.mode == "RGB" and view is None
    im, view = model_input(grid, image=pic)
    assert im.size == (50, 20) and view is None
    for kwargs in ({}, {"image": pic, "views": {"front": pic}}, {"views": {"side": pic}}, {"image": pic, "view": "side"}):
        with pytest.raises(BadInput):
            model_input(grid, **kwargs)
    separate = ModelManifest("full", None, layout="separate", views=("front", "iso"))
    assert model_input(separate, image=pic)[1] == "front"
    assert model_input(separate, image=pic, view="iso")[1] == "iso"
    assert model_input(separate, views={"iso": pic})[1] == "iso"
    with pytest.raises(BadInput):
        model_input(separate, views={"iso": pic, "front": pic})
