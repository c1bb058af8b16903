"""Conversation loading, validation, answer-only labels and the collator (train stage inputs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cadvlm.data.collator import VisionTextCollator
from cadvlm.data.conversations import (
    IGNORE_INDEX,
    ConversationDataset,
    ConversationError,
    load_conversations,
)
from cadvlm.model.load import load_base
from cadvlm.model.tiny import build_tiny_base
from fake_data import write_fake_dataset

TINY = {"vocab_size": 400, "image_size": 32, "patch_size": 16, "vision_hidden_size": 16, "vision_layers": 1,
        "vision_heads": 2, "hidden_size": 32, "intermediate_size": 64, "layers": 1, "heads": 2}


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    root = tmp_path_factory.mktemp("fake")
    return write_fake_dataset(root, 12, 4, seed=1, max_chars=1200, image_size=128)


@pytest.fixture(scope="module")
def processor(fake, tmp_path_factory):
    recs = load_conversations(fake / "converted" / "train.json", fake / "rendered")
    base = build_tiny_base(tmp_path_factory.mktemp("tiny"), [r.answer for r in recs], TINY, seed=0)
    return load_base(base)[1]


def _write(tmp_path, items, fake) -> Path:
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(items))
    return p


def _good_item(fake) -> dict:
    return json.loads((fake / "converted" / "train.json").read_text())[0]


def test_fake_dataset_loads(fake):
    recs = load_conversations(fake / "converted" / "train.json", fake / "rendered")
    assert len(recs) == 12
    r = recs[0]
    assert r.image.is_file() and r.image_size == (128, 128)
    assert "<image>" not in r.prompt and r.prompt
    assert r.answer.startswith("Of course, here are the codes:\n```python\n") and r.answer.endswith("\n```")


@pytest.mark.parametrize("mutate, reason", [
    (lambda it: it.update(image="nope.png"), "image not found"),
    (lambda it: it.update(conversations=[]), "empty or missing 'conversations'"),
    (lambda it: it["conversations"][0].update(value="Write the code."), "no <image> token"),
    (lambda it: it["conversations"][1].update(value="  "), "empty gpt answer"),
    (lambda it: it["conversations"].reverse(), "first turn is not from 'human'"),
])
def test_bad_samples_named(fake, tmp_path, mutate, reason):
    item = _good_item(fake)
    mutate(item)
    path = _write(tmp_path, [_good_item(fake), item], fake)
    with pytest.raises(ConversationError) as err:
        load_conversations(path, fake / "rendered")
    msg = str(err.value)
    assert str(path) in msg and reason in msg and item["id"] in msg and "1 bad sample" in msg


def test_unreadable_image_named(fake, tmp_path):
    bad = tmp_path / "img"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    item = _good_item(fake)
    item["image"] = "broken.png"
    path = _write(tmp_path, [item], fake)
    with pytest.raises(ConversationError, match=r"unreadable image .*broken\.png"):
        load_conversations(path, bad)


def test_not_a_list_and_bad_json(tmp_path):
    p = tmp_path / "x.json"
    p.write_text("{")
    with pytest.raises(ConversationError, match="invalid JSON"):
        load_conversations(p, tmp_path)
    p.write_text("{}")
    with pytest.raises(ConversationError, match="expected a JSON list"):
        load_conversations(p, tmp_path)


def test_labels_cover_only_the_answer(fake, processor):
    recs = load_conversations(fake / "converted" / "train.json", fake / "rendered")
    ds = ConversationDataset(recs, processor)
    batch = VisionTextCollator(processor.tokenizer.pad_token_id)([ds[i] for i in range(4)])
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<image>")
    assert (batch["input_ids"] == image_id).sum(dim=1).tolist() == [4] * 4  # 32 px / 16 px patches
    assert (batch["labels"][batch["input_ids"] == image_id] == IGNORE_INDEX).all()
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE_INDEX).all()
    for i, rec in enumerate(ds.items[:4]):
        ids, labels = batch["input_ids"][i], batch["labels"][i]
        kept = labels[labels != IGNORE_INDEX]
        # the loss sees exactly the answer plus the end-of-turn token, nothing of the prompt
        assert tok.decode(kept) == rec[0].answer + "</s>"
        first = int((labels != IGNORE_INDEX).nonzero()[0])
        assert tok.decode(ids[:first]).endswith("ASSISTANT:\n")
        assert rec[0].prompt in tok.decode(ids[:first])


def test_collator_pads_to_batch_max(fake, processor):
    recs = load_conversations(fake / "converted" / "train.json", fake / "rendered")
    ds = ConversationDataset(recs, processor)
    items = [ds[i] for i in range(3)]
    batch = VisionTextCollator(processor.tokenizer.pad_token_id)(items)
    assert batch["input_ids"].shape == (3, max(len(x["input_ids"]) for x in items))
    assert batch["pixel_values"].shape == (3, 3, 32, 32)
    assert batch["attention_mask"].sum(dim=1).tolist() == [len(x["input_ids"]) for x in items]
    assert [int(x) for x in batch["attention_mask"].sum(1)] == [ds.lengths[i] for i in range(3)]
    padded = VisionTextCollator(processor.tokenizer.pad_token_id, pad_to_multiple_of=8)(items)
    assert padded["input_ids"].shape[1] % 8 == 0


def test_too_long_dropped_and_counted(fake, processor):
    recs = load_conversations(fake / "converted" / "train.json", fake / "rendered")
    full = ConversationDataset(recs, processor)
    limit = sorted(full.lengths)[len(full.lengths) // 2]
    cut = ConversationDataset(recs, processor, max_length=limit)
    assert cut.dropped_too_long == sum(n > limit for n in full.lengths) > 0
    assert len(cut) + cut.dropped_too_long == len(recs)
    assert all(len(cut[i]["input_ids"]) <= limit for i in range(len(cut)))
    assert torch.equal(cut[0]["input_ids"], full[full.items.index(cut.items[0])]["input_ids"])  # never truncated
