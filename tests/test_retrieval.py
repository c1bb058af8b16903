"""The bank of training pictures a model folder carries (`cadvlm.model.retrieval`): it goes through a folder
and back unchanged (same bytes when written twice), answers a lookup the same from paths, PIL
pictures and arrays, gives evaluate's nearest baseline exactly its old numbers, and a bank file
that is missing or broken (or a model whose pictures no renderer drew) is refused with the reason
named."""

from __future__ import annotations

import zipfile
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from cadvlm.eval.baselines import nearest_answers
from cadvlm.model.retrieval import (BANK_FILE, RETRIEVAL_PX, RetrievalBank, RetrievalError, bank_for_compare,
                                    carry_bank, ink)

BOXES = [(0, 0, 128, 128), (128, 128, 256, 256), (0, 100, 256, 156), (0, 0, 128, 128)]  # the last repeats the first


@pytest.fixture
def train(tmp_path):
    """Training records: a dark box on white each; two share their answer, two their picture."""
    out = []
    for i, box in enumerate(BOXES):
        im = Image.new("RGB", (256, 256), "white")
        im.paste((40, 40, 40), box)
        im.save(tmp_path / f"t{i}.png")
        out.append(SimpleNamespace(id=f"s{i}", image=tmp_path / f"t{i}.png", answer=f"answer {min(i, 2)}"))
    return out


def test_the_bank_goes_through_a_folder_unchanged(train, tmp_path):
    bank = RetrievalBank.from_records(train)
    assert len(bank) == 4 and bank.answers == ["answer 0", "answer 1", "answer 2"]  # distinct answers, stored once
    assert [bank.answer(i) for i in range(4)] == [r.answer for r in train]
    (tmp_path / "a").mkdir()
    path = bank.save(tmp_path / "a")
    back = RetrievalBank.load(tmp_path / "a")
    assert np.array_equal(back.grey, bank.grey) and back.grey.dtype == np.uint8
    assert back.grey.shape == (4, RETRIEVAL_PX * RETRIEVAL_PX)
    assert back.answers == bank.answers and back.ids == bank.ids and back.answer_of.tolist() == [0, 1, 2, 2]
    (tmp_path / "b").mkdir()
    assert RetrievalBank.from_records(train).save(tmp_path / "b").read_bytes() == path.read_bytes()  # same bytes
    assert carry_bank(tmp_path / "a", tmp_path / "b") and not carry_bank(tmp_path, tmp_path / "b")
    # a lookup reads paths, PIL pictures (any mode) and grey arrays alike
    paths = [r.image for r in reversed(train)]
    pil = [Image.open(p).convert("RGBA") for p in paths]
    arrays = [np.asarray(Image.open(p).convert("L")) for p in paths]
    assert back.nearest(paths, 4) == back.nearest(pil, 4) == back.nearest(arrays, 4)
    assert back.nearest(paths, 2)[0] == [0, 3]  # a tie goes to the earlier training picture


def test_evaluate_nearest_baseline_keeps_its_numbers(train, tmp_path):
    """The thumbnails compare exactly the floats evaluate computed before the bank existed, and a
    bank read back from a folder answers as evaluate's own lookup does (order and ties)."""
    for r in train:
        with Image.open(r.image) as im:
            before = 1.0 - np.asarray(im.convert("L").resize((32, 32), Image.BILINEAR), np.float32).ravel() / 255.0
        now = ink(RetrievalBank.build([r.image], ["x"]).grey[0])
        assert now.dtype == np.float32 and np.array_equal(now, before)
    queries = []
    for i, (x0, y0, x1, y1) in enumerate(BOXES[:3]):
        im = Image.new("RGB", (256, 256), "white")
        im.paste((40, 40, 40), (x0 + 6, y0 + 4, x1 + 6, y1 + 4))
        im.save(tmp_path / f"q{i}.png")
        queries.append(SimpleNamespace(image=tmp_path / f"q{i}.png"))
    got = nearest_answers(train, queries, 4)
    assert [g[0] for g in got] == ["answer 0", "answer 1", "answer 2"]
    RetrievalBank.from_records(train).save(tmp_path)
    assert RetrievalBank.load(tmp_path).nearest_answers([q.image for q in queries], 4) == got


def test_a_missing_or_broken_bank_is_refused_by_name(train, tmp_path):
    with pytest.raises(RetrievalError, match="no training pictures") as err:
        RetrievalBank.load(tmp_path)
    assert err.value.reason == "missing"
    (tmp_path / BANK_FILE).write_bytes(b"not a zip")
    with pytest.raises(RetrievalError, match="unreadable") as err:
        RetrievalBank.load(tmp_path)
    assert err.value.reason == "unreadable"
    bank = RetrievalBank.from_records(train)
    bank.grey = bank.grey[:, :100]  # thumbnails of the wrong size
    bank.save(tmp_path)
    with pytest.raises(RetrievalError, match="expected uint8") as err:
        RetrievalBank.load(tmp_path)
    assert err.value.reason == "malformed"
    with zipfile.ZipFile(tmp_path / BANK_FILE, "w") as zf:  # a zip of arrays, but not a bank's
        zf.writestr("other.npy", b"")
    with pytest.raises(RetrievalError, match="not a retrieval bank"):
        RetrievalBank.load(tmp_path)
    RetrievalBank.from_records(train).save(tmp_path)
    assert len(bank_for_compare(tmp_path, SimpleNamespace(pictures="rendered"))) == 4
    with pytest.raises(RetrievalError, match="no renderer to copy") as err:  # a model trained on imported pictures
        bank_for_compare(tmp_path, SimpleNamespace(pictures="imported"))
    assert err.value.reason == "no_renderer"
