"""Decoding constrained to the compact language: the model writes its most likely *valid* answer.

A `transformers` LogitsProcessor. At every step, for every row, it walks that row's tokens from the
most to the least likely and keeps the first whose text still leads to a program
(`cadvlm.decode.compact_prefix.AnswerPrefix`: grammar, grid, statement order, and the loop rules
the builder would otherwise reject: no zero-length curve, no crossing or spike, holes inside
their outer loop and clear of each other); all other tokens get -inf. End-of-sequence is allowed only after a whole answer. Greedy
decoding so becomes "the best valid token each step"; the model's own choice is kept
whenever it is valid, which on a trained model is nearly every step, so the cost is one prefix
check per row and step.

Why: the tiny model's invalid answers were almost all a line repeating the previous one (a curve of
zero length) or a loop closed on its own start, each one wrong token in a hundred. Here its next
best token takes that place. The answer is still the model's: nothing is repaired afterwards, and
what the prefix check cannot see (a loop crossing itself) still fails to build and is counted.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from cadvlm.decode.compact_prefix import AnswerPrefix


class CompactConstraint(LogitsProcessor):
    """Mask every token that would make a row's answer unable to become a compact program."""

    def __init__(self, tokenizer, prompt_len: int, bits: int, eos_ids: list[int], max_loop_curves: int | None = None):
        self.prompt_len = prompt_len
        self.check = AnswerPrefix(bits, max_loop_curves)
        self.eos = set(int(i) for i in eos_ids)
        special = set(tokenizer.all_special_ids)
        # the text of each token alone (byte-level BPE: exact for the ASCII the answers use)
        self.pieces = [None if i in special else tokenizer.decode([i]) for i in range(len(tokenizer))]
        self.texts: dict[int, tuple[int, str]] = {}  # row -> (tokens seen, their text)

    def _piece(self, t: int) -> str | None:
        """A token's text; None for special tokens and ids past the tokenizer (padded embeddings)."""
        return self.pieces[t] if t < len(self.pieces) else None

    def _text(self, row: int, ids: torch.Tensor) -> str | None:
        seen, text = self.texts.get(row, (0, ""))
        for t in ids[seen:].tolist():
            piece = self._piece(t)
            if piece is None:  # an end token: the row is finished
                return None
            text += piece
        self.texts[row] = (len(ids), text)
        return text

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        out = torch.full_like(scores, float("-inf"))
        for row in range(input_ids.shape[0]):
            text = self._text(row, input_ids[row, self.prompt_len:])
            if text is None:
                out[row] = scores[row]
                continue
            best = self._best_valid(text, scores[row])
            if best is None:  # no token continues a program: leave the row to fail (it is counted as invalid)
                out[row] = scores[row]
            else:
                out[row, best] = scores[row, best]
        return out

    def _best_valid(self, text: str, row_scores: torch.Tensor) -> int | None:
        for t in torch.argsort(row_scores, descending=True).tolist():
            if t in self.eos:
                if self.check.done(text):
                    return t
            elif (piece := self._piece(t)) is not None and self.check.ok(text + piece):
                return t
        return None
