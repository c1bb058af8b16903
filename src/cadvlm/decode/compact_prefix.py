"""Can this partial answer still become a compact program that parses and builds? (for decoding)

Constrained decoding (`cadvlm.decode.constrain`) asks this of every token it lets the model write:
`AnswerPrefix(bits).ok(text)` is True when `text` is the start of some answer that
`parse_compact` accepts, in the canonical form the writer produces (the answer sentence, the
python fence, one statement per line, single spaces, `end`, the closing fence). Besides the grammar
(words, arity, the order of statements, integers on the grid) it checks the cheap geometric rules
the tiny model breaks most, each the reason of some answers that failed to build:
- a curve that ends where the previous one ended (zero length, the reader's `zero_length_curve`),
  also across the loop's closing, or at an earlier corner of its loop (the reader cannot chain a
  loop through one point twice), and a circle of radius 0;
- lines of one loop that cross or overlap each other, or turn straight back along the previous
  line (a spike), also the loop's closing line; arcs that cross a line of their loop;
- an arc whose start, middle and end lie on one line (the reader's collinear arc);
- a hole outside its profile: the writer puts the outer loop first, and every later point lies
  inside it (a polygon or a circle; outer loops with arcs are not checked);
- holes that are circles and overlap, touch or repeat each other, leave an outer circle, or touch
  a straight outer edge: such faces fail OpenCascade's shape check;
- a loop longer than the training data's longest (`max_loop_curves`, when the model folder says
  it): a model that rambles on in a loop is made to close it, with a last curve that lets it close.
A loop's first arc starts where its last curve will end, so it is checked for neither the
collinear nor the crossing rule. Two rules are stricter than the reader, the price of refusing
failures the tiny model often makes: of the default's 1,148 answers one has a circle hole touching
a straight edge, and of the 23 real DeepCAD samples one has a spike; both build (and one real
sample has a loop of 16 curves, longer than any the default's training answers have).
What it cannot see line by line (two arcs crossing, a cut that removes everything) is still the
builder's to reject.

Complete lines are parsed once and their state kept (`_state` is memoised on the text up to the
last newline), so checking one more token costs the length of the current line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

from cadvlm.cad.model import CADError, circle_through
from cadvlm.codec.answer import ANSWER_PREFIX
from cadvlm.codec.compact import ARITY, DEFAULT_BITS, DIR_LEVELS, OPS, TYPES

HEADER = ANSWER_PREFIX + "```python\n"
FOOTER = "```"
CURVES = ("line", "arc", "circle")


def _turn(a, b, c) -> int:
    """Sign of the turn a -> b -> c: 1 left, -1 right, 0 straight."""
    v = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return (v > 0) - (v < 0)


def _meet(p, q, a, b) -> bool:
    """Do segments pq and ab cross at a point inside both, or overlap along a stretch? (touching: no)"""
    tp, tq = _turn(a, b, p), _turn(a, b, q)
    if tp == tq == 0 == _turn(p, q, a):  # on one line: do their spans share more than a point?
        k = 0 if p[0] != q[0] else 1
        return max(min(p[k], q[k]), min(a[k], b[k])) < min(max(p[k], q[k]), max(a[k], b[k]))
    return _turn(p, q, a) * _turn(p, q, b) < 0 and tp * tq < 0


def _back(a, b, c) -> bool:
    """Does b -> c turn straight back along a -> b (a spike)?"""
    u, v = (b[0] - a[0], b[1] - a[1]), (c[0] - b[0], c[1] - b[1])
    return u[0] * v[1] == u[1] * v[0] and u[0] * v[0] + u[1] * v[1] < 0


def _inside(poly, x, y, r=0) -> bool:
    """Is (x, y) inside the polygon, at no less than r from every edge? (even-odd rule; a hole
    may touch its outer loop: the 8-bit grid makes real holes touch)"""
    inside = False
    for (ax, ay), (bx, by) in zip(poly, poly[1:] + poly[:1]):
        if (ay > y) != (by > y) and x < ax + (y - ay) * (bx - ax) / (by - ay):
            inside = not inside
        dx, dy = bx - ax, by - ay
        t = max(0.0, min(1.0, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)))
        if (x - ax - t * dx) ** 2 + (y - ay - t * dy) ** 2 < r * r:
            return False  # a circle of radius r would cross the edge
    return inside


def _arc_cuts(arc: tuple, a: tuple, b: tuple) -> bool:
    """Does segment ab cross the arc (start, middle, end) away from both their ends? Touching at an
    end (a neighbour's shared corner) is not crossing, nor is a circle that passes less than half a
    level beyond the line: rounded ends tangent to straight sides dip that much on the grid (a real
    DeepCAD slot does) and build."""
    (sx, sy), (mx, my), (ex, ey) = arc
    try:
        centre, radius = circle_through(*arc)
    except CADError:  # collinear: no circle
        return False
    cx, cy, r2 = float(centre[0]), float(centre[1]), radius * radius
    dx, dy = b[0] - a[0], b[1] - a[1]
    qa, qb = dx * dx + dy * dy, 2.0 * (dx * (a[0] - cx) + dy * (a[1] - cy))
    disc = qb * qb - 4.0 * qa * ((a[0] - cx) ** 2 + (a[1] - cy) ** 2 - r2)
    if qa == 0 or disc < 0:
        return False
    if radius - abs(dx * (cy - a[1]) - dy * (cx - a[0])) / math.sqrt(qa) < 0.5:
        return False  # the circle's cap beyond the line is shallower than half a level
    turn = 2.0 * math.pi
    start = math.atan2(sy - cy, sx - cx)
    span, via = (math.atan2(ey - cy, ex - cx) - start) % turn, (math.atan2(my - cy, mx - cx) - start) % turn
    eps = 1e-9
    for t in ((-qb - math.sqrt(disc)) / (2 * qa), (-qb + math.sqrt(disc)) / (2 * qa)):
        if eps < t < 1 - eps:
            at = (math.atan2(a[1] + t * dy - cy, a[0] + t * dx - cx) - start) % turn
            if (eps < at < span - eps) if via < span else (span + eps < at < turn - eps):
                return True
    return False


@dataclass(frozen=True)
class _State:
    """Where a program stands after its complete lines."""

    last: str = ""  # the previous statement's word ("" at the start)
    loop: tuple = ()  # the current loop's curves: ((word, end point), ...); a circle: (("circle", (x, y, r)),)
    ended: bool = False
    # the sketch's first loop, once closed: ("poly", points) | ("circle", x, y, r) | ("free",)
    outer: tuple | None = None
    holes: tuple = ()  # circles among the later loops of the sketch: ((x, y, r), ...)
    cap: int | None = None  # curves a loop may have (AnswerPrefix.max_loop_curves)
    arcs: tuple = ()  # the current loop's arcs whose start is known: ((start, middle, end), ...)

    @cached_property
    def _box(self) -> tuple:
        """The outer loop's box, worked out once per state (point checks scan many values)."""
        o = self.outer
        if o[0] == "circle":
            return o[1] - o[3], o[2] - o[3], o[1] + o[3], o[2] + o[3]
        xs, ys = [p[0] for p in o[1]], [p[1] for p in o[1]]
        return min(xs), min(ys), max(xs), max(ys)

    def point_ok(self, x: int, y: int | None = None, r: int = 0) -> bool:
        """A point of a later loop (or a circle's centre, r its radius) lies inside the outer
        loop (touching it is allowed); y None: only x is known yet, checked against the outer
        loop's box. Always true in the outer loop itself, and for an outer loop with arcs (not
        checked)."""
        o = self.outer
        if o is None or o[0] == "free":
            return True
        x0, y0, x1, y1 = self._box
        if not x0 <= x - r <= x + r <= x1:
            return False
        if y is None:
            return True
        if o[0] == "circle":
            return o[3] > r and (x - o[1]) ** 2 + (y - o[2]) ** 2 <= (o[3] - r) ** 2
        return y0 <= y - r <= y + r <= y1 and _inside(o[1], x, y, r)

    def edge_gap(self) -> int:
        """Grid levels a circle hole keeps from the outer loop: one from a straight edge (a hole
        touching one mostly fails OpenCascade's check), none from an outer circle (rings one level
        wide are common and build)."""
        return 1 if self.outer is not None and self.outer[0] == "poly" else 0

    def hole_ok(self, x: int, y: int, r: int) -> bool:
        """A circle of a later loop stays inside the outer loop and clear of the other circle holes."""
        if r <= 0:
            return False
        if self.outer is None:
            return True
        clear = all((x - hx) ** 2 + (y - hy) ** 2 > (r + hr) ** 2 for hx, hy, hr in self.holes)
        return clear and self.point_ok(x, y, r + self.edge_gap())

    def curve_point_ok(self, word: str, q: tuple, end: bool = True) -> bool:
        """q as a point of the loop's next curve (its end point when `end`, else an arc's middle):
        inside the outer loop, not where the previous curve ended (zero length; a middle there
        leaves every end collinear), an end not at an earlier corner of the loop, and for a line
        clear of the loop's other lines (`line_ok`)."""
        if not self.point_ok(*q):
            return False
        if not self.loop:
            return True
        if self.loop[-1][1] == q:
            return False  # zero length, or an arc's middle on its start (no end could bend it)
        if not end:
            return True
        if any(p == q for _, p in self.loop[:-1]):
            return False  # back at an earlier corner: the reader cannot chain a loop through one point twice
        return word != "line" or self.line_ok(q)

    def after_curve(self, word: str, end: tuple, mid: tuple | None = None) -> _State:
        """The state once the loop's next curve (a line, or an arc through `mid`) ends at `end`."""
        arcs = self.arcs + ((self.loop[-1][1], mid, end),) if word == "arc" and self.loop else self.arcs
        return replace(self, last=word, loop=self.loop + ((word, end),), arcs=arcs)

    def end_ok(self, word: str, q: tuple, mid: tuple | None = None) -> bool:
        """q as the end of the loop's next curve (`curve_point_ok`; an arc's `mid` when known); when
        that curve is the last the cap allows, the loop must then be able to close, or decoding
        would reach a dead end."""
        if not self.curve_point_ok(word, q):
            return False
        if self.cap is None or len(self.loop) + 1 < self.cap:
            return True
        return self.after_curve(word, q, mid).closes()

    def arc_end_ok(self, mid: tuple, end: tuple) -> bool:
        """`end` as the end of the loop's next curve, an arc through `mid` (`end_ok` and `arc_ok`)."""
        return self.end_ok("arc", end, mid) and self.arc_ok(mid, end)

    def arc_ok(self, mid: tuple, end: tuple) -> bool:
        """An arc of the current loop through mid to end bends (its start, the previous curve's end,
        mid and end are not on one line: the reader's collinear arc) and crosses no line of the
        loop. The loop's first arc starts where its last curve will end, not known yet: not checked."""
        if not self.loop:
            return True
        p = self.loop[-1][1]
        if _turn(p, mid, end) == 0:
            return False
        return not any(w == "line" and _arc_cuts((p, mid, end), self.loop[i - 1][1], q)
                       for i, (w, q) in enumerate(self.loop[1:], 1))

    def line_ok(self, q: tuple) -> bool:
        """A line of the current loop to q neither turns straight back along the previous line nor
        crosses or overlaps an earlier line of the loop (the first curve's start is not known yet)."""
        loop = self.loop
        p = loop[-1][1]
        if len(loop) >= 2 and loop[-1][0] == "line" and _back(loop[-2][1], p, q):
            return False
        return not self._hits(p, q, 1)

    def _hits(self, p: tuple, q: tuple, start: int) -> bool:
        """Does segment pq cross or overlap a line of the loop from its curve `start` on (the last
        curve excluded: it ends where pq starts), or cross any of its arcs?"""
        return any(w == "line" and _meet(self.loop[i - 1][1], end, p, q)
                   for i, (w, end) in enumerate(self.loop[start:-1], start)) or \
            any(_arc_cuts(arc, p, q) for arc in self.arcs)

    def outline(self) -> tuple:
        """The current loop as an outer loop (for the loops after it)."""
        if self.loop[0][0] == "circle":
            return ("circle",) + self.loop[0][1]
        if any(w == "arc" for w, _ in self.loop):
            return ("free",)
        return ("poly", tuple(p for _, p in self.loop))

    def allowed(self) -> tuple[str, ...]:
        """The words the next statement may start with."""
        if self.ended:
            return ()
        after = {"": ("size", "plane"), "size": ("plane",), "plane": ("loop",), "loop": CURVES,
                 "circle": ("loop", "extrude"), "extrude": ("plane", "end")}
        if self.last in ("line", "arc"):
            more = ("line", "arc") if self.cap is None or len(self.loop) < self.cap else ()
            return more + (("loop", "extrude") if self.closes() else ())
        return after[self.last]

    def closes(self) -> bool:
        """The current loop may end here: its first curve (from the last end) has a length, and
        when it is a line it turns straight back along neither neighbour (two lines there and back
        have no area), crosses or overlaps no other line of the loop and crosses none of its arcs."""
        loop = self.loop
        if len(loop) < 2 or loop[0][1] == loop[-1][1]:
            return False
        if loop[0][0] != "line":
            return True
        first, last = loop[0][1], loop[-1][1]
        if (loop[-1][0] == "line" and _back(loop[-2][1], last, first)) or (
                loop[1][0] == "line" and _back(last, first, loop[1][1])):
            return False
        return not self._hits(last, first, 2)


@dataclass
class AnswerPrefix:
    """`ok(text)`: text can still grow into a valid compact answer; `done(text)`: it is one."""

    bits: int = DEFAULT_BITS
    max_loop_curves: int | None = None  # a loop this long must close (the training data's longest)
    top: int = field(init=False)

    def __post_init__(self):
        self.top = 2 ** self.bits - 1
        self._state = lru_cache(maxsize=4096)(self._parse_lines)
        self._x_ok = lru_cache(maxsize=65536)(self._line_x_ok)
        self._arc_x_ok = lru_cache(maxsize=65536)(self._arc_end_x_ok)

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
            return _State(cap=self.max_loop_curves)
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
                if not s.hole_ok(*nums):
                    return None  # radius 0, outside the outer loop, or over another hole
                holes = s.holes + ((tuple(nums),) if s.outer is not None else ())
                return _State("circle", ((word, tuple(nums)),), outer=s.outer, holes=holes, cap=s.cap)
            points = list(zip(nums[::2], nums[1::2]))
            if word == "arc":
                ok = s.curve_point_ok(word, points[0], end=False) and s.arc_end_ok(*points)
            else:
                ok = s.end_ok(word, points[0])
            if not ok:  # outside the outer loop, zero length, across the loop's curves, straight, or unclosable
                return None
            return s.after_curve(word, points[-1], points[0] if word == "arc" else None)
        if word == "loop":  # the loop before it, if any, is closed: the first one is the outer loop
            outer = s.outer if s.outer is not None or not s.loop else s.outline()
            return _State(word, (), outer=outer, holes=s.holes, cap=s.cap)
        return _State(word, (), ended=word == "end", cap=s.cap)  # size, plane, extrude, end: a new sketch starts clean

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
        if word not in CURVES:
            return True
        done = [int(a) for a in args[:-1]]  # the numbers already followed by a space
        # The number being written: what its digits can still become (any value before the first
        # digit). Each check below asks for one value that keeps the answer valid, looking one
        # number ahead where that matters, so decoding never writes a number no next one can follow.
        values = self._completions(args[-1]) if args[-1] else range(self.top + 1)
        if word in ("line", "arc"):
            if not all(s.curve_point_ok(word, p, end=False) for p in zip(done[::2], done[1::2])):
                return False
            if len(args) % 2:  # a point's x
                if word == "line":
                    return any(self._x_ok(s, v) for v in values)
                if len(args) == 3:  # an arc's end x: some y must make a valid end through this middle
                    return any(self._arc_x_ok(s, tuple(done), v) for v in values)
                return any(s.point_ok(v) for v in values)
            end = len(args) == ARITY[word]  # a point's y: the end point's, or an arc's middle
            if word == "arc" and end:
                mid = tuple(done[:2])
                return any(s.arc_end_ok(mid, (done[-1], v)) for v in values)
            if end:
                return any(s.end_ok(word, (done[-1], v)) for v in values)
            return any(s.curve_point_ok(word, (done[-1], v), end=False) for v in values)
        if s.outer is None:  # the outer circle: any centre, a radius of at least 1
            return len(args) < 3 or any(v > 0 for v in values)
        room = 1 + s.edge_gap()  # a hole: the centre must leave room for a radius of 1 at least
        if len(args) == 1:
            return any(s.point_ok(v, r=room) for v in values)
        if len(args) == 2:
            return any(s.hole_ok(done[0], v, 1) for v in values)
        radius = min((v for v in values if v > 0), default=0)  # the smallest the digits can still mean
        return s.hole_ok(*done, radius)

    def _line_x_ok(self, s: _State, x: int) -> bool:
        """Some y makes (x, y) a valid end for the current loop's next line (memoised per state and x)."""
        return any(s.end_ok("line", (x, y)) for y in range(self.top + 1))

    def _arc_end_x_ok(self, s: _State, mid: tuple, x: int) -> bool:
        """Some y makes (x, y) a valid end for an arc through `mid` (memoised per state, middle and x)."""
        return any(s.arc_end_ok(mid, (x, y)) for y in range(self.top + 1))

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
