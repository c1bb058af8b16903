"""Decoding kept to valid compact programs: the prefix check and the logits processor."""

from __future__ import annotations

import pytest
import torch

from cadvlm.codec.answer import wrap_answer
from cadvlm.codec.compact import write_compact
from cadvlm.decode.compact_prefix import HEADER, AnswerPrefix
from cadvlm.synth import generate_model

PLATE = "size 191 96 10\nplane 128 128 128 127 127 254 254 127 127\nloop\n"
OPEN = PLATE + "line 20 30\nline 60 30\nline 60 60\n"  # three sides of a box


@pytest.fixture(scope="module")
def answers():
    return [wrap_answer(write_compact(generate_model(i))) for i in range(40)]


def test_every_prefix_of_a_written_answer_is_accepted(answers):
    check = AnswerPrefix(8)
    for a in answers:
        assert all(check.ok(a[:k]) for k in range(len(a) + 1)), a
        assert check.done(a) and not check.done(a[:-1])


@pytest.mark.parametrize("text, why", [
    ("Of course, here is", "not the answer sentence"),
    (PLATE + "line 20 30\nline 20 30", "a line of zero length"),
    (PLATE + "line 20 30\nline 20 3", "still could be 3x, so fine") ,
    (PLATE + "line 20 30\nline 40 30\nextrude", "two lines there and back have no area"),
    (PLATE + "line 20 30\nline 40 30\nline 40 50\nline 20 30\nloop", "the loop closes on its own start"),
    (PLATE + "line 256", "off the 8-bit grid"),
    (PLATE + "circle 128 128 0\n", "a circle of radius 0"),
    (PLATE + "circle 128 128 9\nline", "a circle shares its loop"),
    (PLATE + "extrude", "an empty loop"),
    ("size 1 2 3\nloop", "a loop before any plane"),
    ("plane 1 2 3 4 5 6 7 8 255", "a direction level off its grid"),
    (PLATE + "circle 128 128 9\nextrude new tw 3", "two extents expected"),
    (PLATE + "circle 128 128 9\nextrude new one 3 4", "one extent expected"),
    (PLATE + "circle 128 128 9\nextrude new one 3\nend\n```\nmore", "text after the fence"),
    (PLATE + "line  20", "two spaces"),
    (OPEN + "line 40 10\n", "a line across an earlier one"),
    (OPEN + "line 40 10", "still could be 100..109, clear of the first line"),
    (PLATE + "line 20 30\nline 60 30\nline 20 60\nline 60 60\nextrude", "a bowtie: the closing line crosses"),
    (OPEN + "line 60 40\n", "a spike: straight back along the previous line"),
    (PLATE + "line 200 50\nline 200 100\nline 150 100\nline 150 50\nline 100 50\nline 100 100\nline 50 100\n"
     "line 50 50\nextrude", "the closing line runs over an earlier one"),
    (PLATE + "line 20 30\narc 40 30 60 30\n", "an arc through three points of one line"),
    (PLATE + "line 20 30\narc 40 50 60 30\n", "still could be a loop: this arc bends"),
    (PLATE + "line 20 30\narc 20 50 20 ", "an arc's end x on the line of its start and middle: no y bends it"),
    (PLATE + "line 20 30\narc 20 50 21 ", "still could be a bending arc"),
    (PLATE + "line 20 30\narc 20 30 ", "an arc's middle on its start: every end would be collinear"),
    (OPEN + "line 90 90\nline 90 30\nline 60 30\n", "back at an earlier corner: the loop cannot be chained"),
    (OPEN + "arc 40 45 50 20\n", "an arc that swings across the loop's first line"),
    (OPEN + "arc 40 80 20 60\n", "still could be a loop: this arc bulges away from the lines"),
    (PLATE + "line 20 30\narc 40 80 60 30\nline 40 100\n", "a line across the arc before it"),
])
def test_what_cannot_become_a_program_is_refused(text, why):
    """Each text is refused for the reason given; those that 'still could be' something are accepted."""
    full = text if text.startswith("Of") else HEADER + text
    expected = why.startswith("still could be")
    assert AnswerPrefix(8).ok(full) is expected, why


def test_a_loop_as_long_as_the_training_data_allows_must_close():
    """With max_loop_curves 3 a third curve is the last of its loop: only loop or extrude may follow."""
    three = HEADER + PLATE + "line 20 30\nline 60 30\nline 60 60\n"
    assert AnswerPrefix(8).ok(three + "line")
    assert not AnswerPrefix(8, 3).ok(three + "line") and not AnswerPrefix(8, 3).ok(three + "arc")
    assert AnswerPrefix(8, 3).ok(three + "extrude new one 140\nend\n```")
    assert AnswerPrefix(8, 3).ok(three + "loop\n")
    # the last curve the cap allows must leave the loop closable: from (70, 40) the closing line
    # would cross the side at x = 60, a dead end with no valid next word
    assert AnswerPrefix(8).ok(three + "line 70 40\n")
    assert not AnswerPrefix(8, 4).ok(three + "line 70 40\n") and AnswerPrefix(8, 4).ok(three + "line 20 60\n")
    # an arc as the last curve counts too: the closing line from (70, 121) back to (188, 103) would
    # cross it (OpenCascade's shape check rejects that loop)
    bulge = HEADER + PLATE + "line 188 103\nline 128 100\narc 126 184 70 121\n"
    assert AnswerPrefix(8).ok(bulge) and AnswerPrefix(8, 4).ok(bulge) and not AnswerPrefix(8, 3).ok(bulge)


SQUARE = PLATE + "line 200 50\nline 200 200\nline 50 200\nline 50 50\nloop\n"  # outer box 50..200
RING = PLATE + "circle 128 128 60\nloop\n"  # outer circle
ELL = PLATE + "line 200 50\nline 200 100\nline 100 100\nline 100 200\nline 50 200\nline 50 50\nloop\n"  # notch x, y > 100


@pytest.mark.parametrize("text, ok, why", [
    (SQUARE + "circle 100 100 20\nloop\ncircle 150 150 20\nextrude", True, "two holes apart"),
    (SQUARE + "circle 100 100 20\nloop\ncircle 100 100 20", False, "the same hole twice"),
    (SQUARE + "circle 100 100 20\nloop\ncircle 100 100 5", False, "a hole inside a hole"),
    (SQUARE + "circle 100 100 20\nloop\ncircle 130 100 10", False, "holes touching"),
    (SQUARE + "circle 100 100 20\nloop\ncircle 131 100 10\n", True, "holes one level apart"),
    (SQUARE + "circle 60 100 11", False, "a hole over the outer edge"),
    (SQUARE + "circle 100 100 3\nloop\ncircle 100 100", False, "no radius clears the hole from there"),
    (SQUARE + "circle 100 100 3\nloop\ncircle 100 105", True, "radius 1 clears it"),
    (SQUARE + "circle 100 100 3\nloop\ncircle 100 10", True, "10x can still clear it"),
    (SQUARE + "circle 20", False, "no centre 20 or 20x fits the box"),
    (SQUARE + "line 100 60\nline 100 50\nline 100", False, "no y can follow x = 100: outside, zero length or a spike"),
    (SQUARE + "line 100 60\nline 100 50\nline 10", True, "x can still be 101..109"),
    (SQUARE + "circle 100 100 3\nloop\ncircle 100 100 ", False, "no radius clears the hole"),
    (SQUARE + "line 210", False, "a hole's point outside the outer box"),
    (SQUARE + "line 100 5", True, "5 can still become 50..59, inside"),
    (SQUARE + "line 100 4", False, "4, 40..49 and 400+ are all outside"),
    (SQUARE + "line 60 60\nline 90 60\nline 90 90\nline 60 90\nloop\ncircle 150 150 20\n", True,
     "a square hole, then a round one"),
    (SQUARE + "circle 61 100 10\n", True, "a hole one level from the outer edge"),
    (SQUARE + "circle 60 100 10", False, "a hole touching a straight outer edge"),
    (RING + "circle 128 128 59\n", True, "a ring one level wide (real parts have them)"),
    (ELL + "circle 150 150 10", False, "a hole in the L's notch, inside its box"),
    (ELL + "circle 75 150 10\nloop\nline 150 60\nline 150 90\nline 120 90\nextrude", True, "holes in the L"),
    (ELL + "line 150 150", False, "a hole's corner in the notch"),
    (RING + "circle 128 128 30\nextrude", True, "an annulus"),
    (RING + "circle 128 128 60", False, "a hole as big as its outer circle"),
    (RING + "circle 170 128 20", False, "a hole crossing the outer circle"),
])
def test_holes_stay_inside_the_profile_and_clear_of_each_other(text, ok, why):
    assert AnswerPrefix(8).ok(HEADER + text) is ok, why


def test_an_unfinished_number_is_judged_by_what_it_can_become():
    check = AnswerPrefix(8)
    last = HEADER + PLATE + "line 156 79\n"
    assert not check.ok(last + "line 156 79")  # only 79 (zero length) or 79x > 255
    assert check.ok(last + "line 156 7") and check.ok(last + "line 155 79")
    assert check.ok(last + "line 156 25") and not check.ok(last + "line 156 256")
    assert sorted(check._completions("25")) == [25, 250, 251, 252, 253, 254, 255]
    assert list(check._completions("0")) == [0] and list(check._completions("07")) == []


@pytest.fixture(scope="module")
def tokenizer(answers):
    from cadvlm.model.tiny import train_tokenizer

    return train_tokenizer(answers * 3, 400)


def _scores_preferring(tokenizer, text: str) -> torch.Tensor:
    """Logits that rank tokens by how well they spell `text`, the first one best."""
    scores = torch.zeros(1, len(tokenizer))
    ids = tokenizer.encode(text, add_special_tokens=False)
    for rank, t in enumerate(ids[:3]):
        scores[0, t] = 10.0 - rank
    return scores


def test_the_processor_replaces_a_zero_length_line_by_the_next_best_valid_token(tokenizer):
    from cadvlm.decode.constrain import CompactConstraint

    prompt = [tokenizer.bos_token_id, 5, 6]
    so_far = HEADER + PLATE + "line 156 79\nline 156 "
    ids = torch.tensor([prompt + tokenizer.encode(so_far, add_special_tokens=False)])
    scores = _scores_preferring(tokenizer, "79")  # the model wants the zero-length line
    scores[0, tokenizer.encode("80", add_special_tokens=False)[0]] = 5.0
    proc = CompactConstraint(tokenizer, len(prompt), 8, [tokenizer.eos_token_id])
    out = proc(ids, scores.clone())
    best = int(out[0].argmax())
    assert tokenizer.decode([best]) != "79"
    assert AnswerPrefix(8).ok(so_far + tokenizer.decode([best]))
    assert torch.isinf(out[0]).sum() == len(tokenizer) - 1  # greedy: exactly one token left


def test_the_processor_allows_the_end_only_after_a_whole_answer(tokenizer):
    from cadvlm.decode.constrain import CompactConstraint

    eos = tokenizer.eos_token_id
    whole = HEADER + PLATE + "circle 128 128 9\nextrude new one 30\nend\n```"
    for text, can_end in ((whole, True), (whole[:-3], False)):
        ids = torch.tensor([[1] + tokenizer.encode(text, add_special_tokens=False)])
        scores = torch.zeros(1, len(tokenizer))
        scores[0, eos] = 10.0
        out = CompactConstraint(tokenizer, 1, 8, [eos])(ids, scores)
        assert (int(out[0].argmax()) == eos) is can_end


def test_constrained_greedy_answers_of_an_untrained_model_stay_valid_prefixes(tmp_path):
    """Random weights write random tokens; kept to the grammar, every answer is a valid prefix."""
    from fake_data import write_untrained_model
    from PIL import Image

    from cadvlm.codec.format import CodeFormat
    from cadvlm.decode.generate import generate_code
    from cadvlm.model.load import load_trained

    folder = write_untrained_model(tmp_path / "m", code=CodeFormat("compact", 8))
    model, processor = load_trained(folder)
    pics = [Image.new("RGB", (64, 64), (255 - 40 * i,) * 3) for i in range(3)]
    free = generate_code(model, processor, pics, "Draw it.", max_new_tokens=120, batch_size=3)
    kept = generate_code(model, processor, pics, "Draw it.", max_new_tokens=120, batch_size=3,
                         constrain=CodeFormat("compact", 8))
    check = AnswerPrefix(8)
    assert all(check.ok(a) for a in kept) and len("".join(kept)) > 60
    assert not all(check.ok(a) for a in free)  # the constraint did something
