"""Can this partial answer still become a compact program that parses and builds? (for decoding)

Constrained decoding (`cadvlm.model.constrain`) asks this of every token it lets the model write:
`AnswerPrefix(bits).ok(text)` is True when `text` is the start of some answer that
`parse_compact` accepts, in the canonical form the writer produces (the answer sentence, the
python fence, one statement per line, single spaces, `end`, the closing fence). Besides the grammar
(words, arity, the order of statements, integers on the grid) it checks the cheap geometric rule
the tiny model breaks most: a curve that ends where the previous one ended (zero length, the
reader's `zero_length_curve`), also across the loop's closing, and a circle of radius 0. What it
cannot see line by line (a loop crossing itself, a collinear arc, a cut that removes everything)
is still the builder's to reject.

Complete lines are parsed once and their state kept (`_state` is memoised on the text up to the
last newline), so checking one more token costs the length of the current line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from cadvlm.codec.answer import ANSWER_PREFIX
from cadvlm.codec.compact import ARITY, DEFAULT_BITS, DIR_LEVELS, OPS, TYPES

HEADER = ANSWER_PREFIX + "```python\n"
FOOTER = "```"
CURVES = ("line", "arc", "circle")


@dataclass(frozen=True)
class _State:
    """Where a program stands after its complete lines."""

    last: str = ""  # the previous statement's word ("" at the start)
    loop: tuple = ()  # the current loop's curves: ((word, end point), ...)
    ended: bool = False

    def allowed(self) -> tuple[str, ...]:
        """The words the next statement may start with."""
        if self.ended:
            return ()
        after = {"": ("size", "plane"), "size": ("plane",), "plane": ("loop",), "loop": CURVES,
                 "circle": ("loop", "extrude"), "extrude": ("plane", "end")}
        if self.last in ("line", "arc"):
            return ("line", "arc") + (("loop", "extrude") if self.closes() else ())
        return after[self.last]

    def closes(self) -> bool:
        """The current loop may end here: its first curve (from the last end) has a length."""
        ends = [p for _, p in self.loop]
        if len(self.loop) == 2 and all(w == "line" for w, _ in self.loop):
            return False  # two lines there and back: no area
        return len(ends) >= 2 and ends[0] != ends[-1]


@dataclass
class AnswerPrefix:
    """`ok(text)`: text can still grow into a valid compact answer; `done(text)`: it is one."""

    bits: int = DEFAULT_BITS
    top: int = field(init=False)

    def __post_init__(self):
        self.top = 2 ** self.bits - 1
        self._state = lru_cache(maxsize=4096)(self._parse_lines)

    def ok(self, text: str) -> bool:
        if len(text) <= len(HEADER):
            return HEADER.startswith(text)
        if not text.startswith(HEADER):
            return False
        code = text[len(HEADER):]
        cut = code.rfind("\n") + 1
        state = self._state(code[:cut])
        if state is None:
            return False
        tail = code[cut:]
        if state.ended:
            return FOOTER.startswith(tail)
        return self._partial_ok(state, tail)

    def done(self, text: str) -> bool:
        """A whole answer: `end` written and the fence closed."""
        if not text.endswith("\n" + FOOTER) or not text.startswith(HEADER):
            return False
        state = self._state(text[len(HEADER):-len(FOOTER)])
        return state is not None and state.ended

    # -- complete lines -------------------------------------------------------------------------

    def _parse_lines(self, code: str) -> _State | None:
        """State after these complete lines (each ending with a newline), None when invalid."""
        if not code:
            return _State()
        head, _, line = code[:-1].rpartition("\n")
        state = self._state(head + "\n" if head else "")
        return None if state is None else self._step(state, line)

    def _step(self, s: _State, line: str) -> _State | None:
        words = line.split(" ")
        word, args = words[0], words[1:]
        if word not in s.allowed() or not self._args_ok(word, args, complete=True):
            return None  # allowed() already refuses loop / extrude where the loop cannot close
        if word in CURVES:
            nums = [int(a) for a in args]
            if word == "circle":
                return None if nums[2] == 0 else _State("circle", ((word, None),))
            end = (nums[-2], nums[-1])
            if s.loop and s.loop[-1][1] == end:
                return None  # zero length
            return _State(word, s.loop + ((word, end),))
        return _State(word, (), ended=word == "end")  # size, plane, loop, extrude, end

    # -- the line being written -----------------------------------------------------------------

    def _partial_ok(self, s: _State, tail: str) -> bool:
        words = tail.split(" ")
        if len(words) == 1:  # the first word, maybe unfinished
            return any(w.startswith(words[0]) for w in s.allowed())
        word, args = words[0], words[1:]
        if word not in s.allowed():
            return False
        if not self._args_ok(word, args, complete=False):
            return False
        if word in ("line", "arc") and s.loop and len(args) == ARITY[word] and args[-1]:
            # the end's x is written and y is being written: some y must still avoid the last end
            px, py = s.loop[-1][1]
            if int(args[-2]) == px:
                return any(v != py for v in self._completions(args[-1]))
        return True

    def _completions(self, digits: str):
        """The grid values an unfinished integer can still become (written without leading zeros)."""
        v, step = int(digits), 1
        if digits.startswith("0"):
            yield from ([0] if digits == "0" else [])
            return
        while v <= self.top:
            yield from range(v, min(v + step, self.top + 1))
            v, step = v * 10, step * 10

    def _args_ok(self, word: str, args: list[str], complete: bool) -> bool:
        """Arguments of `word` (the last one may be unfinished unless `complete`)."""
        if word == "extrude":
            return self._extrude_ok(args, complete)
        limits = [DIR_LEVELS - 1 if word == "plane" and i >= 3 else self.top for i in range(ARITY[word])]
        return self._nums_ok(args, limits, complete)

    def _extrude_ok(self, args: list[str], complete: bool) -> bool:
        if not args:
            return not complete
        words = [(args[0], OPS), (args[1] if len(args) > 1 else None, TYPES)]
        for i, (w, choices) in enumerate(words):
            if w is None:
                return not complete
            unfinished = i == len(args) - 1 and not complete
            if not (w in choices or (unfinished and any(c.startswith(w) for c in choices))):
                return False
        extents = 2 if args[1] == "two" else 1
        return self._nums_ok(args[2:], [self.top] * extents, complete)

    @staticmethod
    def _nums_ok(nums: list[str], limits: list[int], complete: bool) -> bool:
        """Integers, one per limit, each at most its limit; the last may be unfinished (even empty)
        unless `complete`."""
        if len(nums) > len(limits) or (complete and len(nums) != len(limits)):
            return False
        for i, (a, limit) in enumerate(zip(nums, limits)):
            if not a:
                if complete or i != len(nums) - 1:
                    return False
            elif not (a.isascii() and a.isdigit()) or int(a) > limit:
                return False
        return True
